package adminapi

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// kvKeyRule is the key rule of nats.go's KV: these characters, and no dot at
// either end.
var kvKeyRule = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func assertValidKVKey(t *testing.T, key string) {
	t.Helper()
	if !kvKeyRule.MatchString(key) || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") {
		t.Errorf("KV key %q is not a valid NATS KV key", key)
	}
}

func TestKVKey(t *testing.T) {
	hashed := regexp.MustCompile(`^sha256\.[0-9a-f]{64}$`)
	tests := []struct {
		name   string
		key    string
		hashed bool
	}{
		{name: "delivery id", key: "dlv_01HZX3", hashed: false},
		{name: "event id", key: "evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b", hashed: false},
		{name: "dashes and equals", key: "a-b=c_D9", hashed: false},
		{name: "exactly 128 bytes", key: strings.Repeat("k", 128), hashed: false},
		{name: "129 bytes", key: strings.Repeat("k", 129), hashed: true},
		{name: "500 bytes", key: strings.Repeat("k", 500), hashed: true},
		{name: "empty", key: "", hashed: true},
		{name: "spaces", key: "dlv 1 2", hashed: true},
		{name: "dot", key: "dlv.1", hashed: true},
		{name: "leading dot", key: ".dlv", hashed: true},
		{name: "slash", key: "a/b", hashed: true},
		{name: "colon", key: "urn:dlv:1", hashed: true},
		{name: "wildcards", key: "a*>", hashed: true},
		{name: "unicode", key: "délivery-✓", hashed: true},
		{name: "looks like the hashed form", key: "sha256." + strings.Repeat("0", 64), hashed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := KVKey(tt.key)
			assertValidKVKey(t, got)
			if gotHashed := hashed.MatchString(got); gotHashed != tt.hashed {
				t.Fatalf("KVKey(%q) = %q: got hashed %v, want %v", tt.key, got, gotHashed, tt.hashed)
			}
			if !tt.hashed && got != tt.key {
				t.Errorf("got %q, want the key kept as %q", got, tt.key)
			}
			if again := KVKey(tt.key); again != got {
				t.Errorf("not deterministic: got %q then %q", got, again)
			}
		})
	}
}

// TestKVKeyNoCollision checks that distinct keys, plain or hashed, never map
// to one KV key; in particular a plain key cannot spell a hashed one.
func TestKVKeyNoCollision(t *testing.T) {
	keys := []string{
		"a", "A", "a ", " a", "a.b", "a_b", "a-b", "a=b", "a/b",
		strings.Repeat("x", 128), strings.Repeat("x", 129),
		"sha256." + strings.Repeat("ab", 32), "sha256_" + strings.Repeat("ab", 32),
		"é", "e\u0301", "",
	}
	seen := map[string]string{}
	for _, k := range keys {
		got := KVKey(k)
		if prev, ok := seen[got]; ok {
			t.Errorf("KVKey(%q) and KVKey(%q) are both %q", prev, k, got)
		}
		seen[got] = k
	}
}

// plainKVKeyRule is the documented rule for a key kept as it is.
var plainKVKeyRule = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

func FuzzKVKey(f *testing.F) {
	for _, seed := range []string{"dlv_1", "", "a.b", "dlv 1", "délivery", strings.Repeat("k", 128), strings.Repeat("k", 129), "sha256." + strings.Repeat("0", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got := KVKey(key)
		assertValidKVKey(t, got)
		want := key
		if !plainKVKeyRule.MatchString(key) {
			sum := sha256.Sum256([]byte(key))
			want = "sha256." + hex.EncodeToString(sum[:])
		}
		if got != want {
			t.Fatalf("KVKey(%q): got %q, want %q", key, got, want)
		}
	})
}
