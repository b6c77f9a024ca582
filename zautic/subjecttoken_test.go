package zautic

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// hashedTokenRule is the documented form of a hashed token, written
// independently of the code under test.
var hashedTokenRule = regexp.MustCompile(`^~[0-9a-f]{32}$`)

// hashOf is the documented hashed token of s.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "~" + hex.EncodeToString(sum[:])[:32]
}

// checkValueToken fails unless tok is one token a value can map to: safe
// bytes, or a hashed token.
func checkValueToken(t *testing.T, tok string) {
	t.Helper()
	if hashedTokenRule.MatchString(tok) {
		return
	}
	if err := ValidateSubjectTokens(tok); err != nil || strings.Contains(tok, ".") || len(tok) > MaxSubjectTokenLength {
		t.Fatalf("token %q is neither safe nor hashed (%v)", tok, err)
	}
}

func TestSubjectTokenForJSON(t *testing.T) {
	long := strings.Repeat("a", MaxSubjectTokenLength)
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{name: "device id", value: `114`, want: "114"},
		{name: "device id as a string", value: `"114"`, want: "114"},
		{name: "phone", value: `"919876543210"`, want: "919876543210"},
		{name: "safe string", value: `"3EB0DC15F6ACF859FB492F"`, want: "3EB0DC15F6ACF859FB492F"},
		{name: "dash and underscore", value: `"a-b_c"`, want: "a-b_c"},
		{name: "white space around the value", value: " \t\"x\"\n", want: "x"},
		{name: "escaped safe string", value: `"\u0061b"`, want: "ab"},
		{name: "64 bytes", value: `"` + long + `"`, want: long},
		{name: "65 bytes", value: `"` + long + `a"`, want: hashOf(long + "a")},
		{name: "1 KB", value: `"` + strings.Repeat("x", 1024) + `"`, want: hashOf(strings.Repeat("x", 1024))},
		{name: "dot", value: `"a.b"`, want: hashOf("a.b")},
		{name: "star", value: `"*"`, want: hashOf("*")},
		{name: "greater than", value: `">"`, want: hashOf(">")},
		{name: "tail wildcard token", value: `"a.>"`, want: hashOf("a.>")},
		{name: "space", value: `"a b"`, want: hashOf("a b")},
		{name: "tab, escaped", value: `"a\tb"`, want: hashOf("a\tb")},
		{name: "newline, escaped", value: `"a\nb"`, want: hashOf("a\nb")},
		{name: "tilde", value: `"~x"`, want: hashOf("~x")},
		{name: "dollar", value: `"$SYS"`, want: hashOf("$SYS")},
		{name: "non-ASCII", value: `"délivré"`, want: hashOf("délivré")},
		{name: "non-ASCII, escaped", value: `"d\u00e9livr\u00e9"`, want: hashOf("délivré")},
		{name: "lone low surrogate", value: `"\udc80"`, want: hashOf("\uFFFD")},
		{name: "lone high surrogate", value: `"a\ud83db"`, want: hashOf("a\uFFFDb")},
		{name: "surrogate pair", value: `"\ud83d\ude00"`, want: hashOf("😀")},
		{name: "invalid UTF-8 byte", value: "\"a\xffb\"", want: hashOf("a\uFFFDb")},
		{name: "underscore is not missing", value: `"_"`, want: hashOf("_")},
		{name: "two underscores", value: `"__"`, want: "__"},
		{name: "hashed form as a value", value: `"` + hashOf("a.b") + `"`, want: hashOf(hashOf("a.b"))},
		{name: "negative integer", value: `-114`, want: "-114"},
		{name: "zero", value: `0`, want: "0"},
		{name: "minus zero", value: `-0`, want: "0"},
		{name: "beyond int64", value: `99999999999999999999`, want: "99999999999999999999"},
		{name: "65 digits", value: strings.Repeat("9", 65), want: hashOf(strings.Repeat("9", 65))},
		{name: "fraction", value: `1.0`, want: "_"},
		{name: "exponent", value: `1e3`, want: "_"},
		{name: "negative exponent", value: `-1E-3`, want: "_"},
		{name: "leading zero, not JSON", value: `0114`, want: "_"},
		{name: "plus sign, not JSON", value: `+1`, want: "_"},
		{name: "empty string", value: `""`, want: "_"},
		{name: "null", value: `null`, want: "_"},
		{name: "missing", value: ``, want: "_"},
		{name: "true", value: `true`, want: "_"},
		{name: "false", value: `false`, want: "_"},
		{name: "object", value: `{"a":1}`, want: "_"},
		{name: "array", value: `[1,2]`, want: "_"},
		{name: "unterminated string", value: `"abc`, want: "_"},
		{name: "bad escape", value: `"a\qb"`, want: "_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SubjectTokenForJSON([]byte(tt.value))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			checkValueToken(t, got)
		})
	}
}

func TestSubjectTokenForString(t *testing.T) {
	tests := []struct {
		s    string
		want string
	}{
		{s: "114", want: "114"},
		{s: "", want: "_"},
		{s: "_", want: hashOf("_")},
		{s: "a.b", want: hashOf("a.b")},
		{s: "*", want: hashOf("*")},
		{s: ">", want: hashOf(">")},
		{s: " ", want: hashOf(" ")},
		{s: "\xff", want: hashOf("\xff")},
		{s: strings.Repeat("z", 65), want: hashOf(strings.Repeat("z", 65))},
	}
	for _, tt := range tests {
		if got := SubjectTokenForString(tt.s); got != tt.want {
			t.Errorf("SubjectTokenForString(%q): got %q, want %q", tt.s, got, tt.want)
		}
	}
}

// The Go functions give a consumer the token the forwarder computed from the
// JSON, whichever way the value was decoded.
func TestSubjectTokenFunctionsAgreeWithJSON(t *testing.T) {
	tests := []struct {
		json string
		got  string
	}{
		{json: `114`, got: SubjectTokenForInt(114)},
		{json: `-9223372036854775808`, got: SubjectTokenForInt(-9223372036854775808)},
		{json: `9223372036854775807`, got: SubjectTokenForInt(9223372036854775807)},
		{json: `18446744073709551615`, got: SubjectTokenForString("18446744073709551615")},
		{json: `"114"`, got: SubjectTokenForString("114")},
		{json: `"a.b"`, got: SubjectTokenForString("a.b")},
		{json: `"\udc80"`, got: SubjectTokenForString("\uFFFD")},
	}
	for _, tt := range tests {
		if want := SubjectTokenForJSON([]byte(tt.json)); tt.got != want {
			t.Errorf("%s: the Go function gives %q, SubjectTokenForJSON %q", tt.json, tt.got, want)
		}
	}
}
