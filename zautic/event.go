package zautic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

var (
	// ErrInvalidEvent is returned when the body is not valid UTF-8, not a JSON
	// object, or lacks a non-empty string id or type, or when the id or type
	// holds a lone UTF-16 surrogate escape ("\ud800"), which encodes no
	// character.
	ErrInvalidEvent = errors.New("invalid event")
)

// Event holds the fields of a Zautic event that the forwarder routes on. The
// body itself is forwarded unchanged.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// ParseEvent checks that body is UTF-8 and a JSON object with non-empty string
// fields id and type, matched by their exact names. If not, an error wrapping
// ErrInvalidEvent is returned.
func ParseEvent(body []byte) (Event, error) {
	var ev Event
	if !utf8.Valid(body) {
		return ev, fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidEvent)
	}
	if !isJSONObject(body) {
		return ev, fmt.Errorf("%w: body is not a JSON object", ErrInvalidEvent)
	}
	if !json.Valid(body) {
		var raw json.RawMessage
		return ev, fmt.Errorf("%w: %s", ErrInvalidEvent, describeJSONError(json.Unmarshal(body, &raw)))
	}
	// Decoding into Event would also take "ID" or "Type" (encoding/json
	// matches names case-insensitively), so that a body holding both "type"
	// and "Type" would be routed on a field other consumers do not read.
	// Walking the members finds the exact names without reflection.
	id, typ := topLevelMembers(body, "id", "type")
	var err error
	if ev.ID, err = stringField(id, "id"); err != nil {
		return ev, err
	}
	if ev.Type, err = stringField(typ, "type"); err != nil {
		return ev, err
	}
	return ev, nil
}

// stringField returns the non-empty string in raw, the JSON value of the
// member name (nil when absent).
func stringField(raw []byte, name string) (string, error) {
	var s string
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] != '"':
		return "", fmt.Errorf("%w: field %q must be a string, not %s", ErrInvalidEvent, name, jsonKind(raw))
	case bytes.IndexByte(raw, '\\') < 0:
		s = string(raw[1 : len(raw)-1])
	default: // escaped; valid JSON, so decoding cannot fail
		// encoding/json decodes a lone surrogate escape to U+FFFD, so
		// "\ud800" and "\udc00" would be one id: one event to the dedup.
		if esc, ok := loneSurrogate(raw); ok {
			return "", fmt.Errorf("%w: field %q holds the lone UTF-16 surrogate escape %s, which encodes no character", ErrInvalidEvent, name, esc)
		}
		var unescaped string
		_ = json.Unmarshal(raw, &unescaped)
		s = unescaped
	}
	if s == "" {
		return "", fmt.Errorf("%w: missing or empty string field %q", ErrInvalidEvent, name)
	}
	return s, nil
}

// jsonKind names the kind of a valid JSON value by its first byte.
func jsonKind(raw []byte) string {
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	default:
		return "number"
	}
}

// isJSONObject reports whether the first non-space byte opens an object; it
// keeps null, arrays and scalars, which json.Unmarshal accepts into a struct
// or reports vaguely, out.
func isJSONObject(body []byte) bool {
	for _, b := range body {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)
	}
	return "malformed JSON: " + err.Error()
}
