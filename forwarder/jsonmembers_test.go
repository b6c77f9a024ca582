package forwarder_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// referenceParseEvent is ParseEvent as it was written with encoding/json
// decoding the whole object into a map: slower, but plainly right. The fuzz
// target below holds the member walk to it.
func referenceParseEvent(body []byte) (forwarder.Event, error) {
	var ev forwarder.Event
	if !utf8.Valid(body) {
		return ev, fmt.Errorf("%w: body is not valid UTF-8", forwarder.ErrInvalidEvent)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return ev, fmt.Errorf("%w: not a JSON object", forwarder.ErrInvalidEvent)
	}
	field := func(name string) (string, error) {
		var s string
		if raw, ok := fields[name]; ok && json.Unmarshal(raw, &s) != nil {
			return "", fmt.Errorf("%w: field %q is not a string", forwarder.ErrInvalidEvent, name)
		}
		if s == "" {
			return "", fmt.Errorf("%w: field %q is missing or empty", forwarder.ErrInvalidEvent, name)
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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := forwarder.ParseEvent(body)
		want, wantErr := referenceParseEvent(body)
		if (gotErr == nil) != (wantErr == nil) || got != want {
			t.Fatalf("ParseEvent(%q) = %+v, %v; reference gives %+v, %v", body, got, gotErr, want, wantErr)
		}
		if gotErr != nil && !errors.Is(gotErr, forwarder.ErrInvalidEvent) {
			t.Fatalf("got error %v, want ErrInvalidEvent", gotErr)
		}
	})
}
