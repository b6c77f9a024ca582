package zautic

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// Run a target with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzSubjectTemplateRender$' -fuzztime 30s ./zautic/

// The documented token rule, written independently of the code under test,
// applied to a value as encoding/json decodes it with UseNumber.
var (
	safeTokenRule    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	jsonIntegerRule  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	placeholderInner = regexp.MustCompile(`\{[^{}]*\}`)
)

func referenceStringToken(s string) string {
	switch {
	case s == "":
		return "_"
	case safeTokenRule.MatchString(s) && s != "_":
		return s
	default:
		return hashOf(s)
	}
}

func referenceToken(v any) string {
	switch v := v.(type) {
	case string:
		return referenceStringToken(v)
	case json.Number:
		switch {
		case !jsonIntegerRule.MatchString(string(v)):
			return "_"
		case v == "-0":
			return "0"
		default:
			return referenceStringToken(string(v))
		}
	default:
		return "_"
	}
}

// referencePathToken decodes the whole body with encoding/json and follows
// path through its objects.
func referencePathToken(t *testing.T, body []byte, path string) string {
	t.Helper()
	v := decodeJSONValue(t, body)
	for seg := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "_"
		}
		if v, ok = obj[seg]; !ok {
			return "_"
		}
	}
	return referenceToken(v)
}

func decodeJSONValue(t *testing.T, value []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("valid JSON %q does not decode: %v", value, err)
	}
	return v
}

// checkSubject fails unless subject is wantTokens tokens, each safe or
// hashed: no wildcard, no white space, no empty token.
func checkSubject(t *testing.T, subject string, wantTokens int) []string {
	t.Helper()
	tokens := strings.Split(subject, ".")
	if len(tokens) != wantTokens {
		t.Fatalf("subject %q has %d tokens, want %d", subject, len(tokens), wantTokens)
	}
	for _, tok := range tokens {
		checkValueToken(t, tok)
	}
	return tokens
}

func FuzzSubjectTokenForJSON(f *testing.F) {
	for _, seed := range []string{
		`114`, `"114"`, `-114`, `-0`, `0`, `1.0`, `1e3`, `99999999999999999999`, `"a.b"`, `"*"`, `">"`, `" "`, `"a\tb"`,
		`"\udc80"`, `"\ud83d\ude00"`, `"_"`, `""`, `null`, `true`, `{"a":"b"}`, `[1]`, `"` + strings.Repeat("x", 1024) + `"`,
		"\"\xff\"", `"\u0000"`, ` "x" `, `"~0123456789abcdef0123456789abcdef"`, `"abc`, `01`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		tok := SubjectTokenForJSON(value)
		checkValueToken(t, tok)
		if json.Valid(value) {
			if want := referenceToken(decodeJSONValue(t, value)); tok != want {
				t.Fatalf("SubjectTokenForJSON(%q) = %q, want %q", value, tok, want)
			}
		}
		if s := string(value); SubjectTokenForString(s) != referenceStringToken(s) {
			t.Fatalf("SubjectTokenForString(%q) = %q, want %q", s, SubjectTokenForString(s), referenceStringToken(s))
		}
	})
}

// fuzzTemplate reads five paths: nested, top-level, an object, and one the
// seeds rarely have.
const fuzzTemplate = "{prefix}.{type}.{data.object.device_id}.{data.object.phone}.v1.{id}.{data.object}.{a.b.c.d}"

func FuzzSubjectTemplateRender(f *testing.F) {
	for _, seed := range []string{
		quickstartBody,
		`{"id":"a.b","data":{"object":{"device_id":"*","phone":">"}}}`,
		`{"id":" ","data":{"object":{"device_id":"\udc80","phone":"` + strings.Repeat("9", 1024) + `"}}}`,
		`{"data":{"object":{"device_id":1.5,"phone":[1,2]}},"data":{"object":{"device_id":-0}}}`,
		`{"a":{"b":{"c":{"d":"_"}}},"d\u0061ta":{"object":{"device_id":"x","device_id":null}}}`,
		`{"data":{"object":{"device_id":"{\"x\":1}","phone":"a\"b"}}}`,
		`[{"id":"x"}]`, `{"id":`, `{`, ``, `{"id" "x"}`, `{"id":"x",}`, "{\"id\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	tmpl, err := ParseSubjectTemplate(fuzzTemplate)
	if err != nil {
		f.Fatal(err)
	}
	paths := map[int]string{4: "data.object.device_id", 5: "data.object.phone", 7: "id", 8: "data.object", 9: "a.b.c.d"}
	f.Fuzz(func(t *testing.T, body []byte) {
		subject, added, err := tmpl.Render("zautic.acme", "message.delivered", body)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		tokens := checkSubject(t, subject, 10)
		if got := strings.Join(tokens[:4], "."); got != "zautic.acme.message.delivered" || tokens[6] != "v1" {
			t.Fatalf("subject %q does not keep the prefix, the type and the literal", subject)
		}
		if want := strings.Join(tokens[4:], "."); added != want {
			t.Fatalf("got added %q, want %q", added, want)
		}
		if !json.Valid(body) {
			return
		}
		for i, path := range paths {
			if want := referencePathToken(t, body, path); tokens[i] != want {
				t.Fatalf("body %q: token of %s is %q, want %q", body, path, tokens[i], want)
			}
		}
	})
}

func FuzzParseSubjectTemplate(f *testing.F) {
	for _, seed := range []string{
		DefaultSubjectTemplate, fuzzTemplate, "{prefix}.{data.object.device_id}.{type}", "{prefix}.x{type}", "{prefix}.{type",
		"{prefix}.{type}.*", "{prefix}.{type}.>", "{prefix}.{Type}", "{prefix}..{type}", "{prefix}.{type}.{}", "{prefix}.{type}.{a..b}",
		"{type}.{prefix}", "{prefix}.{{type}}", "{prefix}.{type}.{ a }", "{prefix}.{type}.é", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseSubjectTemplate(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSubjectTemplate) {
				t.Fatalf("got error %v, want ErrInvalidSubjectTemplate", err)
			}
			return
		}
		if tmpl.String() != s {
			t.Fatalf("got String %q, want %q", tmpl, s)
		}
		if !strings.HasPrefix(s, "{prefix}.") || strings.Count(s, "{prefix}") != 1 || strings.Count(s, "{type}") != 1 {
			t.Fatalf("accepted %q without {prefix} first and once, {type} once", s)
		}
		// Every placeholder is one token; {prefix} and {type} add one each here.
		want := strings.Count(placeholderInner.ReplaceAllString(s, "x"), ".") + 1 + 2
		subject, err := tmpl.Subject("zautic.acme", "message.delivered", []byte(quickstartBody))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(subject, "zautic.acme.") {
			t.Fatalf("subject %q does not start with the prefix", subject)
		}
		checkSubject(t, subject, want)
	})
}
