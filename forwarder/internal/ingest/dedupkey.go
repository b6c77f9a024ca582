package forwarder

import (
	"crypto/sha256"
	"encoding/hex"
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
