package zautic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// referenceParseEvent is ParseEvent as it was written with encoding/json
// decoding the whole object into a map: slower, but plainly right. The fuzz
// target below holds the member walk to it.
func referenceParseEvent(body []byte) (Event, error) {
	var ev Event
	if !utf8.Valid(body) {
		return ev, fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidEvent)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return ev, fmt.Errorf("%w: not a JSON object", ErrInvalidEvent)
	}
	field := func(name string) (string, error) {
		var s string
		if raw, ok := fields[name]; ok && json.Unmarshal(raw, &s) != nil {
			return "", fmt.Errorf("%w: field %q is not a string", ErrInvalidEvent, name)
		}
		if s == "" {
			return "", fmt.Errorf("%w: field %q is missing or empty", ErrInvalidEvent, name)
		}
		// encoding/json decodes a lone surrogate escape to U+FFFD: more of
		// them than the raw value spells means one was there.
		raw := fields[name]
		spelt := bytes.Count(raw, []byte("\uFFFD")) + bytes.Count(bytes.ToLower(raw), []byte(`\ufffd`))
		if strings.Count(s, "\uFFFD") > spelt {
			return "", fmt.Errorf("%w: field %q holds a lone surrogate escape", ErrInvalidEvent, name)
		}
		return s, nil
	}
	var err error
	if ev.ID, err = field("id"); err != nil {
		return ev, err
	}
	ev.Type, err = field("type")
	return ev, err
}

func FuzzParseEventMatchesReference(f *testing.F) {
	for _, seed := range []string{
		`{"id":"evt_1","type":"message.delivered","data":{"object":{"id":"inner","type":"x"}}}`,
		`{"id":"a","type":"b","id":"c"}`, `{"ID":"a","Type":"b"}`, `{"\u0069d":"a","typ\u0065":"b"}`,
		`{"id":"a\"b","type":"c\\d"}`, `{"id":"\u00e9","type":"b"}`, `{"x":[1,{"id":"no"}],"id":"a","type":"b"}`,
		` { "id" : "a" , "type" : "b" } `, `{"id":null,"type":"b"}`, `{"id":1e3,"type":"b"}`, `{"id":true,"type":"b"}`,
		`{"id":"a","type":"b",}`, `{"id":"a"`, `{"a\\":"x","id":"a","type":"b"}`, `{"id":"","type":"b"}`, `[]`, `{}`,
		`{"id":"\ud800","type":"b"}`, `{"id":"\udc00","type":"b"}`, `{"id":"\ud83d\ude00","type":"b"}`,
		`{"id":"\\ud800","type":"\ud800\ud800\udc00"}`, `{"id":"\ufffd","type":"\ud800\ufffd"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := ParseEvent(body)
		want, wantErr := referenceParseEvent(body)
		if (gotErr == nil) != (wantErr == nil) || got != want {
			t.Fatalf("ParseEvent(%q) = %+v, %v; reference gives %+v, %v", body, got, gotErr, want, wantErr)
		}
		if gotErr != nil && !errors.Is(gotErr, ErrInvalidEvent) {
			t.Fatalf("got error %v, want ErrInvalidEvent", gotErr)
		}
	})
}
