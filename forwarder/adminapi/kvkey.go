package adminapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPlainKVKey bounds the keys stored as they are; longer ones are hashed.
const maxPlainKVKey = 128

// KVKey maps a dedup key to a JetStream KV key. Keys made only of
// [A-Za-z0-9_=-] and at most 128 bytes long are kept as they are; any other
// key becomes "sha256.<hex>". The dot in that form cannot occur in a kept key,
// so the two forms never collide.
func KVKey(key string) string {
	if len(key) > 0 && len(key) <= maxPlainKVKey && isPlainKVKey(key) {
		return key
	}
	return mappedKey(key)
}

// mappedKeyPrefix starts the mapped form of a key.
const mappedKeyPrefix = "sha256."

// SignatureKeyPrefix starts the KV key of an accepted signature (dedup.key
// "delivery"), which is also the Nats-Msg-Id of the message it published.
// Its dot cannot occur in a kept key, so it never meets a dedup key.
const SignatureKeyPrefix = "sig."

// mappedKey is "sha256.<hex>" of key, the form of the keys that cannot be
// carried as they are.
func mappedKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return mappedKeyPrefix + hex.EncodeToString(sum[:])
}

func isPlainKVKey(key string) bool {
	for i := 0; i < len(key); i++ {
		if !isPlainKVByte(key[i]) {
			return false
		}
	}
	return true
}

func isPlainKVByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '='
}

// MessageID is the Nats-Msg-Id of a dedup key. nats.go writes headers the
// way net/http does, trimming white space and turning CR and LF into spaces,
// so " evt_1", "evt_1 " and "evt_1\r\n" would all reach the stream as
// "evt_1" and dedup as one. A key a header cannot carry exactly is sent in
// the mapped form of its KV key instead, so that two different keys never
// meet. Keys that already look mapped, or like a signature's key, are
// mapped too, for the same reason.
func MessageID(key string) string {
	if headerSafe(key) && !strings.HasPrefix(key, mappedKeyPrefix) && !strings.HasPrefix(key, SignatureKeyPrefix) {
		return key
	}
	return mappedKey(key)
}

// headerSafe reports whether a header carries value exactly: valid UTF-8,
// no control characters, no white space at either end.
func headerSafe(value string) bool {
	if value == "" || !utf8.ValidString(value) {
		return false
	}
	first, _ := utf8.DecodeRuneInString(value)
	last, _ := utf8.DecodeLastRuneInString(value)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return false
	}
	return !strings.ContainsFunc(value, unicode.IsControl)
}

// KVKeyOfMessageID is the KV key of the dedup key a message's Nats-Msg-Id
// carries: a mapped id or a signature's key is the KV key itself
// (MessageID maps every key that starts with either prefix, so no id
// carried as received does), any other is mapped as the request path maps
// it.
func KVKeyOfMessageID(id string) string {
	if strings.HasPrefix(id, mappedKeyPrefix) || strings.HasPrefix(id, SignatureKeyPrefix) {
		return id
	}
	return KVKey(id)
}

// EndpointKey scopes a KV key or a Nats-Msg-Id (KVKey's or MessageID's
// form) to the named endpoint: "<endpoint>.<key>", so that two Zautic
// accounts' identical event ids never merge. The default endpoint's keys
// are not scoped.
func EndpointKey(endpoint, key string) string {
	if endpoint == "" {
		return key
	}
	return endpoint + "." + key
}
