package forwarder_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/zautic/zautic-forwarder/forwarder"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    forwarder.Event
		wantErr error
		reason  string
	}{
		{name: "quickstart sample", body: `{"id":"evt_5f3c","type":"message.delivered","created":1767432000,"data":{"object":{"device_id":114}}}`,
			want: forwarder.Event{ID: "evt_5f3c", Type: "message.delivered"}},
		{name: "leading white space", body: " \n\t{\"id\":\"a\",\"type\":\"b\"}", want: forwarder.Event{ID: "a", Type: "b"}},
		{name: "unicode id", body: `{"id":"évt ✓","type":"webhook.test"}`, want: forwarder.Event{ID: "évt ✓", Type: "webhook.test"}},
		{name: "invalid UTF-8", body: "{\"id\":\"\xff\",\"type\":\"x\"}", wantErr: forwarder.ErrInvalidEvent, reason: "not valid UTF-8"},
		{name: "array", body: `[{"id":"a","type":"b"}]`, wantErr: forwarder.ErrInvalidEvent, reason: "not a JSON object"},
		{name: "null", body: `null`, wantErr: forwarder.ErrInvalidEvent, reason: "not a JSON object"},
		{name: "string", body: `"x"`, wantErr: forwarder.ErrInvalidEvent, reason: "not a JSON object"},
		{name: "empty body", body: ``, wantErr: forwarder.ErrInvalidEvent, reason: "not a JSON object"},
		{name: "empty object", body: `{}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "id"`},
		{name: "id not string", body: `{"id":5,"type":"b"}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "id" must be a string, not number`},
		{name: "type not string", body: `{"id":"a","type":{"x":1}}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "type" must be a string, not object`},
		{name: "empty id", body: `{"id":"","type":"b"}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "id"`},
		{name: "empty type", body: `{"id":"a","type":""}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "type"`},
		{name: "missing type", body: `{"id":"a"}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "type"`},
		{name: "null type", body: `{"id":"a","type":null}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "type"`},
		{name: "id as array", body: `{"id":["a"],"type":"b"}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "id" must be a string, not array`},
		{name: "type as bool", body: `{"id":"a","type":true}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "type" must be a string, not bool`},
		{name: "names differ in case", body: `{"ID":"a","Type":"b"}`, wantErr: forwarder.ErrInvalidEvent, reason: `field "id"`},
		{name: "exact name wins over other case", body: `{"id":"a","type":"message.sent","Type":"other"}`, want: forwarder.Event{ID: "a", Type: "message.sent"}},
		{name: "duplicate field: last wins, as in JavaScript", body: `{"id":"a","type":"first","type":"last"}`, want: forwarder.Event{ID: "a", Type: "last"}},
		{name: "malformed JSON", body: `{"id":"a",}`, wantErr: forwarder.ErrInvalidEvent, reason: "malformed JSON at byte"},
		{name: "truncated JSON", body: `{"id":"a","type":"b"`, wantErr: forwarder.ErrInvalidEvent, reason: "malformed JSON"},
		{name: "trailing garbage", body: `{"id":"a","type":"b"} x`, wantErr: forwarder.ErrInvalidEvent, reason: "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forwarder.ParseEvent([]byte(tt.body))
			if checkError(t, err, tt.wantErr, tt.reason) {
				return
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSubjectForDocumentedTypes(t *testing.T) {
	if got := len(forwarder.DocumentedTypes); got != 23 {
		t.Fatalf("got %d documented types, want 23", got)
	}
	for _, typ := range forwarder.DocumentedTypes {
		t.Run(typ, func(t *testing.T) {
			got, err := forwarder.SubjectFor("zautic", typ)
			if err != nil {
				t.Fatalf("SubjectFor: %v", err)
			}
			if want := "zautic." + typ; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestSubjectFor(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		typ     string
		want    string
		wantErr error
		reason  string
	}{
		{name: "unknown but valid type", prefix: "zautic", typ: "invoice.paid", want: "zautic.invoice.paid"},
		{name: "single token", prefix: "zautic", typ: "ping", want: "zautic.ping"},
		{name: "dashes underscores digits", prefix: "acme.zautic", typ: "a-b_C.9", want: "acme.zautic.a-b_C.9"},
		{name: "exactly max length", prefix: "zautic", typ: strings.Repeat("a", forwarder.MaxTypeLength), want: "zautic." + strings.Repeat("a", forwarder.MaxTypeLength)},
		{name: "space", prefix: "zautic", typ: "message delivered", wantErr: forwarder.ErrInvalidType, reason: `character ' ' at byte 7`},
		{name: "tab", prefix: "zautic", typ: "message\t", wantErr: forwarder.ErrInvalidType, reason: `character '\t' at byte 7`},
		{name: "star wildcard", prefix: "zautic", typ: "message.*", wantErr: forwarder.ErrInvalidType, reason: `character '*' at byte 8`},
		{name: "full wildcard", prefix: "zautic", typ: ">", wantErr: forwarder.ErrInvalidType, reason: `character '>' at byte 0`},
		{name: "empty type", prefix: "zautic", typ: "", wantErr: forwarder.ErrInvalidType, reason: "empty token"},
		{name: "empty middle token", prefix: "zautic", typ: "message..delivered", wantErr: forwarder.ErrInvalidType, reason: "empty token"},
		{name: "leading dot", prefix: "zautic", typ: ".message", wantErr: forwarder.ErrInvalidType, reason: "empty token"},
		{name: "trailing dot", prefix: "zautic", typ: "message.", wantErr: forwarder.ErrInvalidType, reason: "empty token"},
		{name: "non-ASCII", prefix: "zautic", typ: "message.délivré", wantErr: forwarder.ErrInvalidType, reason: `character 'é' at byte 9`},
		{name: "invalid UTF-8", prefix: "zautic", typ: "message.\xff", wantErr: forwarder.ErrInvalidType, reason: "byte 0xff (not UTF-8) at byte 8"},
		{name: "control character", prefix: "zautic", typ: "a\x00b", wantErr: forwarder.ErrInvalidType, reason: `character '\x00' at byte 1`},
		{name: "too long", prefix: "zautic", typ: strings.Repeat("a", forwarder.MaxTypeLength+1), wantErr: forwarder.ErrInvalidType, reason: "256 bytes, longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := forwarder.SubjectFor(tt.prefix, tt.typ)
			if checkError(t, err, tt.wantErr, tt.reason) {
				return
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

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
			got := forwarder.KVKey(tt.key)
			assertValidKVKey(t, got)
			if gotHashed := hashed.MatchString(got); gotHashed != tt.hashed {
				t.Fatalf("KVKey(%q) = %q: got hashed %v, want %v", tt.key, got, gotHashed, tt.hashed)
			}
			if !tt.hashed && got != tt.key {
				t.Errorf("got %q, want the key kept as %q", got, tt.key)
			}
			if again := forwarder.KVKey(tt.key); again != got {
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
		got := forwarder.KVKey(k)
		if prev, ok := seen[got]; ok {
			t.Errorf("KVKey(%q) and KVKey(%q) are both %q", prev, k, got)
		}
		seen[got] = k
	}
}

// checkError fails t unless err is wantErr (nil included) and, when it is an
// error, mentions reason. It reports whether there was an error, so that a
// table test stops checking the result.
func checkError(t *testing.T, err, wantErr error, reason string) bool {
	t.Helper()
	if !errors.Is(err, wantErr) {
		t.Fatalf("got error %v, want %v", err, wantErr)
	}
	if err != nil && !strings.Contains(err.Error(), reason) {
		t.Errorf("got error %q, want it to mention %q", err, reason)
	}
	return err != nil
}
