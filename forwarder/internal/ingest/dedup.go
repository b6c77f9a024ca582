package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// dedupKey is what decides whether a request is new. Under dedup.key
// "event" (the default) it is the event id from the signed body; under
// "delivery" it is the unsigned X-Zautic-Delivery-Id, or the event id when
// the request has none.
func (h *webhookHandler) dedupKey(d *delivery) string {
	if h.cfg.Dedup.Key == DedupKeyEvent || d.deliveryID == "" {
		return d.event.ID
	}
	return d.deliveryID
}

// kvKeys are the KV keys of a delivery: the dedup key's, and under dedup.key
// "delivery" the accepted signature's. A fixed array, not a slice, so that
// the delivery, which holds them, need not leave the stack.
type kvKeys struct {
	keys [2]string
	n    int
}

func (k *kvKeys) list() []string { return k.keys[:k.n] }

// kvKeys are the KV keys looked up before the publish and marked after it.
// Under dedup.key "delivery" the delivery id is not signed: anyone who saw a
// signed request could replay it with another delivery id. So the signed
// content itself is remembered too, and a request whose signature was
// already accepted is a duplicate whatever its delivery id; a genuine
// re-delivery is signed anew, with another t, and goes through.
func (h *webhookHandler) kvKeys(d *delivery, body []byte) kvKeys {
	k := kvKeys{keys: [2]string{KVKey(d.key)}, n: 1}
	if h.cfg.Dedup.Key == DedupKeyDelivery {
		k.keys[1], k.n = signatureKey(d.signed.Timestamp, body), 2
	}
	return k
}

// seen reports whether any of keys is in the dedup bucket.
func (h *webhookHandler) seen(ctx context.Context, keys *kvKeys) (bool, error) {
	for _, key := range keys.list() {
		if seen, err := h.lookUp(ctx, key); err != nil || seen {
			return seen, err
		}
	}
	return false, nil
}

// signatureKey names an accepted signature by the text its v1 covers, the
// literal t and the body: every v1 that verifies for a request is an HMAC of
// exactly that text, so a replay cannot escape by dropping or reordering v1
// values signed with other secrets. The "sig." form cannot meet a plain
// KVKey (no dot) nor a mapped one ("sha256.").
func signatureKey(t int64, body []byte) string {
	h := sha256.New()
	var prefix [24]byte
	h.Write(strconv.AppendInt(prefix[:0], t, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return "sig." + hex.EncodeToString(h.Sum(nil))
}

// messageID is the Nats-Msg-Id of a dedup key. nats.go writes headers the
// way net/http does, trimming white space and turning CR and LF into spaces,
// so " evt_1", "evt_1 " and "evt_1\r\n" would all reach the stream as
// "evt_1" and dedup as one. A key a header cannot carry exactly is sent in
// the mapped form of its KV key instead, so that two different keys never
// meet. Keys that already look mapped are mapped too, for the same reason.
func messageID(key string) string {
	if headerSafe(key) && !strings.HasPrefix(key, mappedKeyPrefix) {
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

// kvKeyOfMessageID is the KV key of the dedup key a message's Nats-Msg-Id
// carries: a mapped id is the KV key itself (messageID maps every key that
// starts with the prefix, so no id carried as received does), any other is
// mapped as the request path maps it.
func kvKeyOfMessageID(id string) string {
	if strings.HasPrefix(id, mappedKeyPrefix) {
		return id
	}
	return KVKey(id)
}
