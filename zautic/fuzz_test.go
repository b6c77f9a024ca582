package zautic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Plain `go test` runs the f.Add seeds and testdata/fuzz/<FuzzName>/; run a
// target with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzParseEvent$' -fuzztime 2m ./zautic/

func FuzzParseSignatureHeader(f *testing.F) {
	sig := strings.Repeat("ab", 32)
	for _, seed := range []string{
		"t=1700000000,v1=" + sig,
		"t=1, v1=" + sig + ", v1=" + strings.Repeat("0", 64),
		"t=1,v0=" + sig + ",scheme2=x,v1=" + sig,
		"t=-9223372036854775808,v1=" + sig,
		"t=+7,v1=" + sig,
		"t=1,t=2,v1=" + sig,
		"t=99999999999999999999,v1=" + sig,
		"v1=" + sig,
		"t=1,v1=" + sig[:63],
		"t==1,v1==" + sig,
		",,,=,",
		"",
	} {
		f.Add(seed)
	}
	secrets := [][]byte{[]byte("fuzz-secret")}
	f.Fuzz(func(t *testing.T, header string) {
		sh, err := parseSignatureHeader(header)
		if err != nil {
			if !errors.Is(err, ErrNotSigned) && !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("got error %v, want ErrNotSigned or ErrInvalidHeader", err)
			}
		} else {
			checkParsedHeader(t, sh)
		}
		_, err = VerifySignature([]byte(header), header, secrets, 5*time.Minute, time.Now())
		if err == nil {
			t.Fatalf("header %q verified without the secret", header)
		}
		if !isSignatureError(err) {
			t.Fatalf("VerifySignature: got error %v, want one of the signature sentinels", err)
		}
	})
}

// checkParsedHeader checks every signature's size and that writing the
// header back in canonical form parses to the same values.
func checkParsedHeader(t *testing.T, sh signedHeader) {
	t.Helper()
	if len(sh.Signatures) == 0 {
		t.Fatal("parsed without a signature")
	}
	canonical := "t=" + strconv.FormatInt(sh.Timestamp, 10)
	for _, s := range sh.Signatures {
		if len(s) != sha256.Size {
			t.Fatalf("got a %d-byte signature, want %d", len(s), sha256.Size)
		}
		canonical += ",v1=" + hex.EncodeToString(s)
	}
	again, err := parseSignatureHeader(canonical)
	if err != nil {
		t.Fatalf("canonical form %q does not parse: %v", canonical, err)
	}
	if again.Timestamp != sh.Timestamp {
		t.Fatalf("timestamp does not round-trip: got %d, want %d", again.Timestamp, sh.Timestamp)
	}
	if len(again.Signatures) != len(sh.Signatures) {
		t.Fatalf("got %d signatures after the round trip, want %d", len(again.Signatures), len(sh.Signatures))
	}
	for i := range again.Signatures {
		if !bytes.Equal(again.Signatures[i], sh.Signatures[i]) {
			t.Fatalf("signature %d does not round-trip", i)
		}
	}
}

func isSignatureError(err error) bool {
	for _, e := range []error{ErrNotSigned, ErrInvalidHeader, ErrNoValidSignature, ErrTooOld} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// subjectTypeRule is the documented rule for an event type, written
// independently of the code under test.
var subjectTypeRule = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func FuzzSubjectFor(f *testing.F) {
	for _, typ := range DocumentedTypes() {
		f.Add("zautic", typ)
	}
	for _, seed := range [][2]string{
		{"zautic", "message.*"}, {"zautic", ">"}, {"zautic", "a..b"}, {"zautic", ".a"}, {"zautic", "a."},
		{"zautic", "a b"}, {"zautic", "délivré"}, {"zautic", "\xff"}, {"zautic", ""},
		{"zautic", strings.Repeat("a", 256)}, {"acme.zautic", "x-y_z.9"}, {"bad prefix", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, prefix, typ string) {
		subject, err := SubjectFor(prefix, typ)
		wantOK := subjectTypeRule.MatchString(typ) && len(typ) <= MaxTypeLength
		if err != nil {
			if !errors.Is(err, ErrInvalidType) {
				t.Fatalf("got error %v, want ErrInvalidType", err)
			}
			if wantOK {
				t.Fatalf("valid type %q refused: %v", typ, err)
			}
			return
		}
		if !wantOK {
			t.Fatalf("invalid type %q accepted as %q", typ, subject)
		}
		if subject != prefix+"."+typ {
			t.Fatalf("got %q, want %q", subject, prefix+"."+typ)
		}
		if ValidateSubjectTokens(prefix) != nil {
			return // an invalid prefix is refused by Config.Validate
		}
		if strings.ContainsAny(subject, " \t\r\n*>") {
			t.Fatalf("subject %q has a space or a wildcard", subject)
		}
		for tok := range strings.SplitSeq(subject, ".") {
			if tok == "" {
				t.Fatalf("subject %q has an empty token", subject)
			}
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		`{"id":"evt_1","type":"message.delivered"}`, `{}`, `[]`, `null`, `{"id":1}`, `{"id":"a","type":""}`,
		"{\"id\":\"\xff\"}", `{"id":"a","type":"b","id":"c"}`, `{"ID":"a","TYPE":"b"}`, ` {"id":"a","type":"b"} `,
		`{"id":"\ud800","type":"b"}`, `{"id":"\udc00","type":"b"}`, `{"id":"\ud83d\ude00","type":"b"}`, `{"id":"\\ud800","type":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("got error %v, want ErrInvalidEvent", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted %q with an empty id or type: %+v", body, ev)
		}
		// A lone surrogate escape decodes to U+FFFD: one that the body
		// does not spell itself was let through, and two ids collide.
		spelt := bytes.Contains(body, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`))
		if strings.ContainsRune(ev.ID+ev.Type, utf8.RuneError) && !spelt {
			t.Fatalf("accepted %q as %+v: a U+FFFD the body does not spell", body, ev)
		}
		var obj map[string]any
		if !utf8.Valid(body) || json.Unmarshal(body, &obj) != nil {
			t.Fatalf("accepted %q, which is not a UTF-8 JSON object", body)
		}
	})
}
