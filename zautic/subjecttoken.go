package zautic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The rule that turns a value of the signed body into one subject token, so
// that a hostile value can neither add tokens nor a wildcard:
//
//   - a string of 1 to MaxSubjectTokenLength bytes, each one of [A-Za-z0-9_-],
//     is its own token, except "_" itself;
//   - an integer is its decimal digits, as a string would be, so that 114 and
//     "114" give the same token;
//   - missing, null, "", and every other kind (object, array, bool, a number
//     with a fraction or an exponent) give MissingSubjectToken, "_";
//   - any other string, "_" included, gives "~" and the first 32 hex digits
//     (128 bits) of the SHA-256 of its UTF-8 bytes: a token that no safe
//     value and no wildcard can equal, since "~" is not a safe byte.
const (
	// MissingSubjectToken stands for a value that is missing, null, empty or
	// neither a string nor an integer.
	MissingSubjectToken = "_"
	// MaxSubjectTokenLength bounds, in bytes, a value that is its own token;
	// a longer one is hashed.
	MaxSubjectTokenLength = 64
	// hashedTokenMark starts every hashed token.
	hashedTokenMark = '~'
	// hashedTokenBytes is how many bytes of the SHA-256 a hashed token keeps.
	hashedTokenBytes = 16
)

// hashedToken holds "~" and 32 hex digits, so that rendering a subject needs
// no allocation for a hashed value.
type hashedToken [1 + 2*hashedTokenBytes]byte

// SubjectTokenForString returns the subject token of the string value s: s
// itself when it is 1 to MaxSubjectTokenLength bytes of [A-Za-z0-9_-] other
// than "_"; MissingSubjectToken for ""; otherwise "~" followed by the first
// 32 lower-case hex digits of SHA-256(s). The hash is over the bytes of s as
// they are: a string decoded from JSON has its lone surrogate escapes
// ("\udc80") already replaced by U+FFFD, as encoding/json and JavaScript's
// TextEncoder do, and a consumer that decodes JSON otherwise must do the same.
func SubjectTokenForString(s string) string {
	switch {
	case s == "":
		return MissingSubjectToken
	case isSafeSubjectToken(s):
		return s
	default:
		var tok hashedToken
		return string(tok.of(sha256.Sum256([]byte(s))))
	}
}

// SubjectTokenForInt returns the subject token of the integer value n: its
// decimal digits, with a leading "-" when negative. A JSON integer beyond
// int64 is a token too: SubjectTokenForString of its digits.
func SubjectTokenForInt(n int64) string {
	return strconv.FormatInt(n, 10)
}

// SubjectTokenForJSON returns the subject token of value, one JSON value as
// it appears in the body (surrounding white space is ignored): the token of
// the decoded string for a string; for an integer literal (no fraction, no
// exponent, so neither 1.0 nor 1e3), the token of its digits, with -0 read
// as 0; MissingSubjectToken for an empty value, null, a number with a
// fraction or an exponent, true, false, an object, an array or anything
// that is not valid JSON. A subject template maps each path's value with it.
func SubjectTokenForJSON(value []byte) string {
	var tok hashedToken
	return string(tokenForJSON(value, &tok))
}

// tokenForJSON is SubjectTokenForJSON without allocating for the common
// values: the token is a part of value, a constant, or the bytes of tok.
func tokenForJSON(value []byte, tok *hashedToken) []byte {
	value = bytes.Trim(value, " \t\r\n")
	switch {
	case len(value) == 0:
		return missingToken
	case value[0] == '"':
		s, ok := jsonStringValue(value)
		if !ok {
			return missingToken
		}
		return tokenForText(s, tok)
	case isJSONInteger(value):
		if string(value) == "-0" {
			return zeroToken
		}
		return tokenForText(value, tok)
	default:
		return missingToken
	}
}

var (
	missingToken = []byte(MissingSubjectToken)
	zeroToken    = []byte("0")
)

// tokenForText maps the bytes of a string value, or of an integer's digits.
func tokenForText(s []byte, tok *hashedToken) []byte {
	switch {
	case len(s) == 0:
		return missingToken
	case isSafeSubjectToken(s):
		return s
	default:
		return tok.of(sha256.Sum256(s))
	}
}

// of fills tok with the hashed form of sum and returns it.
func (tok *hashedToken) of(sum [sha256.Size]byte) []byte {
	tok[0] = hashedTokenMark
	hex.Encode(tok[1:], sum[:hashedTokenBytes])
	return tok[:]
}

// isSafeSubjectToken reports whether s can be its own token: short, made of
// [A-Za-z0-9_-], and not "_", which stands for a missing value.
func isSafeSubjectToken[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > MaxSubjectTokenLength || string(s) == MissingSubjectToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

// jsonStringValue decodes the JSON string raw: the bytes between the quotes
// when nothing needs decoding, else encoding/json's reading, which replaces
// invalid UTF-8 and lone surrogates with U+FFFD. ok is false when raw is not
// a JSON string.
func jsonStringValue(raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	if inner := raw[1 : len(raw)-1]; isPlainJSONStringContent(inner) {
		return inner, true
	}
	var decoded string
	if json.Unmarshal(raw, &decoded) != nil {
		return nil, false
	}
	return []byte(decoded), true
}

// isPlainJSONStringContent reports whether b, the inside of a JSON string,
// is already its decoded value: UTF-8 without escapes, quotes or control
// characters.
func isPlainJSONStringContent(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c == '"' || c < 0x20 {
			return false
		}
	}
	return utf8.Valid(b)
}

// isJSONInteger reports whether b is a JSON number without fraction or
// exponent: -?(0|[1-9][0-9]*).
func isJSONInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
