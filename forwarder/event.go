package forwarder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

var (
	// ErrInvalidEvent is returned when the body is not valid UTF-8, not a JSON
	// object, or lacks a non-empty string id or type.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrInvalidType is returned when an event type cannot be a subject suffix.
	ErrInvalidType = errors.New("invalid event type")
)

// MaxTypeLength bounds the event type, and so the subject, in bytes.
const MaxTypeLength = 255

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

// SubjectFor returns "<prefix>.<eventType>". Every dot-separated token of the
// type must be non-empty and made of [A-Za-z0-9_-] only, so that a type can
// never inject wildcards or extra tokens; otherwise an error wrapping
// ErrInvalidType names the problem.
func SubjectFor(prefix, eventType string) (string, error) {
	if err := ValidateSubjectTokens(eventType); err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrInvalidType, truncate(eventType, 64), err)
	}
	if len(eventType) > MaxTypeLength {
		return "", fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidType, len(eventType), MaxTypeLength)
	}
	return prefix + "." + eventType, nil
}

// ValidateSubjectTokens checks that s is one or more dot-separated tokens of
// [A-Za-z0-9_-]. It validates both event types and the subject prefix.
func ValidateSubjectTokens(s string) error {
	tokenLen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if tokenLen == 0 {
				return errors.New("empty token")
			}
			tokenLen = 0
		case isTokenByte(c):
			tokenLen++
		default:
			return fmt.Errorf("%s at byte %d is not one of [A-Za-z0-9_-]", describeByteAt(s, i), i)
		}
	}
	if tokenLen == 0 {
		return errors.New("empty token")
	}
	return nil
}

// describeByteAt names the character starting at s[i]: the whole rune for
// UTF-8, so that "é" is not reported as its first byte "Ã", and the raw byte
// for anything else.
func describeByteAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x (not UTF-8)", s[i])
	}
	return fmt.Sprintf("character %q", r)
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

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
		if c := key[i]; !isTokenByte(c) && c != '=' {
			return false
		}
	}
	return true
}
