package zautic

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEvent(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Event
		wantErr error
		reason  string
	}{
		{name: "quickstart sample", body: `{"id":"evt_5f3c","type":"message.delivered","created":1767432000,"data":{"object":{"device_id":114}}}`,
			want: Event{ID: "evt_5f3c", Type: "message.delivered"}},
		{name: "leading white space", body: " \n\t{\"id\":\"a\",\"type\":\"b\"}", want: Event{ID: "a", Type: "b"}},
		{name: "unicode id", body: `{"id":"évt ✓","type":"webhook.test"}`, want: Event{ID: "évt ✓", Type: "webhook.test"}},
		{name: "invalid UTF-8", body: "{\"id\":\"\xff\",\"type\":\"x\"}", wantErr: ErrInvalidEvent, reason: "not valid UTF-8"},
		{name: "array", body: `[{"id":"a","type":"b"}]`, wantErr: ErrInvalidEvent, reason: "not a JSON object"},
		{name: "null", body: `null`, wantErr: ErrInvalidEvent, reason: "not a JSON object"},
		{name: "string", body: `"x"`, wantErr: ErrInvalidEvent, reason: "not a JSON object"},
		{name: "empty body", body: ``, wantErr: ErrInvalidEvent, reason: "not a JSON object"},
		{name: "empty object", body: `{}`, wantErr: ErrInvalidEvent, reason: `field "id"`},
		{name: "id not string", body: `{"id":5,"type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id" must be a string, not number`},
		{name: "type not string", body: `{"id":"a","type":{"x":1}}`, wantErr: ErrInvalidEvent, reason: `field "type" must be a string, not object`},
		{name: "empty id", body: `{"id":"","type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id"`},
		{name: "empty type", body: `{"id":"a","type":""}`, wantErr: ErrInvalidEvent, reason: `field "type"`},
		{name: "missing type", body: `{"id":"a"}`, wantErr: ErrInvalidEvent, reason: `field "type"`},
		{name: "null type", body: `{"id":"a","type":null}`, wantErr: ErrInvalidEvent, reason: `field "type"`},
		{name: "id as array", body: `{"id":["a"],"type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id" must be a string, not array`},
		{name: "type as bool", body: `{"id":"a","type":true}`, wantErr: ErrInvalidEvent, reason: `field "type" must be a string, not bool`},
		{name: "names differ in case", body: `{"ID":"a","Type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id"`},
		{name: "exact name wins over other case", body: `{"id":"a","type":"message.sent","Type":"other"}`, want: Event{ID: "a", Type: "message.sent"}},
		{name: "duplicate field: last wins, as in JavaScript", body: `{"id":"a","type":"first","type":"last"}`, want: Event{ID: "a", Type: "last"}},
		{name: "surrogate pair", body: `{"id":"evt_\ud83d\ude00","type":"b"}`, want: Event{ID: "evt_😀", Type: "b"}},
		{name: "escaped backslash before u", body: `{"id":"evt_\\ud800","type":"b"}`, want: Event{ID: `evt_\ud800`, Type: "b"}},
		{name: "U+FFFD itself", body: `{"id":"evt_\ufffd�","type":"b"}`, want: Event{ID: "evt_��", Type: "b"}},
		{name: "lone high surrogate", body: `{"id":"\ud800","type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id" holds the lone UTF-16 surrogate escape \ud800`},
		{name: "lone low surrogate", body: `{"id":"\udc00","type":"b"}`, wantErr: ErrInvalidEvent, reason: `field "id" holds the lone UTF-16 surrogate escape \udc00`},
		{name: "high surrogate then a letter", body: `{"id":"evt_\uD800x","type":"b"}`, wantErr: ErrInvalidEvent, reason: `escape \uD800`},
		{name: "high surrogate then another escape", body: `{"id":"evt_\ud800\n","type":"b"}`, wantErr: ErrInvalidEvent, reason: `escape \ud800`},
		{name: "two high surrogates", body: `{"id":"evt_\ud800\ud801\udc00","type":"b"}`, wantErr: ErrInvalidEvent, reason: `escape \ud800`},
		{name: "lone surrogate in type", body: `{"id":"a","type":"message.\udfff"}`, wantErr: ErrInvalidEvent, reason: `field "type" holds the lone UTF-16 surrogate escape \udfff`},
		{name: "malformed JSON", body: `{"id":"a",}`, wantErr: ErrInvalidEvent, reason: "malformed JSON at byte"},
		{name: "truncated JSON", body: `{"id":"a","type":"b"`, wantErr: ErrInvalidEvent, reason: "malformed JSON"},
		{name: "trailing garbage", body: `{"id":"a","type":"b"} x`, wantErr: ErrInvalidEvent, reason: "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent([]byte(tt.body))
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
	if got := len(DocumentedTypes()); got != 23 {
		t.Fatalf("got %d documented types, want 23", got)
	}
	for _, typ := range DocumentedTypes() {
		t.Run(typ, func(t *testing.T) {
			got, err := SubjectFor("zautic", typ)
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
		{name: "exactly max length", prefix: "zautic", typ: strings.Repeat("a", MaxTypeLength), want: "zautic." + strings.Repeat("a", MaxTypeLength)},
		{name: "space", prefix: "zautic", typ: "message delivered", wantErr: ErrInvalidType, reason: `character ' ' at byte 7`},
		{name: "tab", prefix: "zautic", typ: "message\t", wantErr: ErrInvalidType, reason: `character '\t' at byte 7`},
		{name: "star wildcard", prefix: "zautic", typ: "message.*", wantErr: ErrInvalidType, reason: `character '*' at byte 8`},
		{name: "full wildcard", prefix: "zautic", typ: ">", wantErr: ErrInvalidType, reason: `character '>' at byte 0`},
		{name: "empty type", prefix: "zautic", typ: "", wantErr: ErrInvalidType, reason: "empty token"},
		{name: "empty middle token", prefix: "zautic", typ: "message..delivered", wantErr: ErrInvalidType, reason: "empty token"},
		{name: "leading dot", prefix: "zautic", typ: ".message", wantErr: ErrInvalidType, reason: "empty token"},
		{name: "trailing dot", prefix: "zautic", typ: "message.", wantErr: ErrInvalidType, reason: "empty token"},
		{name: "non-ASCII", prefix: "zautic", typ: "message.délivré", wantErr: ErrInvalidType, reason: `character 'é' at byte 9`},
		{name: "invalid UTF-8", prefix: "zautic", typ: "message.\xff", wantErr: ErrInvalidType, reason: "byte 0xff (not UTF-8) at byte 8"},
		{name: "control character", prefix: "zautic", typ: "a\x00b", wantErr: ErrInvalidType, reason: `character '\x00' at byte 1`},
		{name: "too long", prefix: "zautic", typ: strings.Repeat("a", MaxTypeLength+1), wantErr: ErrInvalidType, reason: "256 bytes, longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubjectFor(tt.prefix, tt.typ)
			if checkError(t, err, tt.wantErr, tt.reason) {
				return
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
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
