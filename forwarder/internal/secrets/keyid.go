package secrets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// KeyID names a secret without revealing it: the first 8 hex characters of
// its SHA-256. Operators compare it across replicas and retire a secret when
// its zautic_forwarder_signatures_verified_total stops moving.
func KeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:4])
}

// KeyIDs names each of secrets with its KeyID, in order.
func KeyIDs(secrets [][]byte) []string {
	ids := make([]string, len(secrets))
	for i, secret := range secrets {
		ids[i] = KeyID(secret)
	}
	return ids
}

// sameSecretSet reports whether a and b hold the same secrets, in any order.
func sameSecretSet(a, b [][]byte) bool {
	sorted := func(s [][]byte) [][]byte {
		s = slices.Clone(s)
		slices.SortFunc(s, bytes.Compare)
		return slices.CompactFunc(s, bytes.Equal)
	}
	return slices.EqualFunc(sorted(a), sorted(b), bytes.Equal)
}
