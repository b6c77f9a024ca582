package zautic

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalidType is returned when an event type cannot be a subject suffix.
var ErrInvalidType = errors.New("invalid event type")

// MaxTypeLength bounds the event type, and so the subject, in bytes.
const MaxTypeLength = 255

// SubjectFor returns "<prefix>.<eventType>". Every dot-separated token of the
// type must be non-empty and made of [A-Za-z0-9_-] only, so that a type can
// never inject wildcards or extra tokens; otherwise an error wrapping
// ErrInvalidType names the problem.
func SubjectFor(prefix, eventType string) (string, error) {
	if err := checkEventType(eventType); err != nil {
		return "", err
	}
	return prefix + "." + eventType, nil
}

// checkEventType is SubjectFor's rule for a type, shared with the templates.
func checkEventType(eventType string) error {
	if err := ValidateSubjectTokens(eventType); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidType, truncate(eventType, 64), err)
	}
	if len(eventType) > MaxTypeLength {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidType, len(eventType), MaxTypeLength)
	}
	return nil
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
