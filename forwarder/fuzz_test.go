package forwarder_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// Plain `go test` runs the f.Add seeds and testdata/fuzz/<FuzzName>/; run a
// target with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzHandler$' -fuzztime 2m ./forwarder/

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
		sh, err := forwarder.ParseSignatureHeader(header)
		if err != nil {
			if !errors.Is(err, forwarder.ErrNotSigned) && !errors.Is(err, forwarder.ErrInvalidHeader) {
				t.Fatalf("got error %v, want ErrNotSigned or ErrInvalidHeader", err)
			}
		} else {
			checkParsedHeader(t, sh)
		}
		_, err = forwarder.VerifySignature([]byte(header), header, secrets, 5*time.Minute, time.Now())
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
func checkParsedHeader(t *testing.T, sh forwarder.SignedHeader) {
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
	again, err := forwarder.ParseSignatureHeader(canonical)
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
	for _, e := range []error{forwarder.ErrNotSigned, forwarder.ErrInvalidHeader, forwarder.ErrNoValidSignature, forwarder.ErrTooOld} {
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
	for _, typ := range forwarder.DocumentedTypes {
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
		subject, err := forwarder.SubjectFor(prefix, typ)
		wantOK := subjectTypeRule.MatchString(typ) && len(typ) <= forwarder.MaxTypeLength
		if err != nil {
			if !errors.Is(err, forwarder.ErrInvalidType) {
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
		if forwarder.ValidateSubjectTokens(prefix) != nil {
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

// plainKVKeyRule is the documented rule for a key kept as it is.
var plainKVKeyRule = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

func FuzzKVKey(f *testing.F) {
	for _, seed := range []string{"dlv_1", "", "a.b", "dlv 1", "délivery", strings.Repeat("k", 128), strings.Repeat("k", 129), "sha256." + strings.Repeat("0", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got := forwarder.KVKey(key)
		assertValidKVKey(t, got)
		want := key
		if !plainKVKeyRule.MatchString(key) {
			sum := sha256.Sum256([]byte(key))
			want = "sha256." + hex.EncodeToString(sum[:])
		}
		if got != want {
			t.Fatalf("KVKey(%q): got %q, want %q", key, got, want)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		`{"id":"evt_1","type":"message.delivered"}`, `{}`, `[]`, `null`, `{"id":1}`, `{"id":"a","type":""}`,
		"{\"id\":\"\xff\"}", `{"id":"a","type":"b","id":"c"}`, `{"ID":"a","TYPE":"b"}`, ` {"id":"a","type":"b"} `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := forwarder.ParseEvent(body)
		if err != nil {
			if !errors.Is(err, forwarder.ErrInvalidEvent) {
				t.Fatalf("got error %v, want ErrInvalidEvent", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted %q with an empty id or type: %+v", body, ev)
		}
		var obj map[string]any
		if !utf8.Valid(body) || json.Unmarshal(body, &obj) != nil {
			t.Fatalf("accepted %q, which is not a UTF-8 JSON object", body)
		}
	})
}

// Fuzz modes: how FuzzHandler turns its input into a request.
const (
	modeRaw           = iota // the body and the signature header as given
	modeSigned               // the body, correctly signed now
	modeSignedEvent          // an event with the input as id and type, correctly signed now
	modeSignedPlusRaw        // a correct signature followed by the header as given
	modeSignedTooOld         // the body, correctly signed an hour ago
	fuzzModes
)

// fuzzRequest builds the body and the X-Zautic-Signature header of one
// FuzzHandler input.
func fuzzRequest(data []byte, header string, mode uint8) ([]byte, string) {
	now := time.Now().Unix()
	secret := []byte(handlerSecret)
	switch mode % fuzzModes {
	case modeSigned:
		return data, forwarder.Sign(secret, now, data)
	case modeSignedEvent:
		body, _ := json.Marshal(map[string]any{"id": string(data), "type": header, "data": map[string]int{"n": len(data)}})
		return body, forwarder.Sign(secret, now, body)
	case modeSignedPlusRaw:
		return data, forwarder.Sign(secret, now, data) + "," + header
	case modeSignedTooOld:
		return data, forwarder.Sign(secret, now-3600, data)
	default:
		return data, header
	}
}

// headerValue keeps what net/http lets through as a header value: no
// control characters, no surrounding white space.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.Trim(s, " \t")
}

// handlerStatuses are the only statuses a POST may get from one client.
var handlerStatuses = map[int]bool{
	http.StatusOK:                          true,
	http.StatusBadRequest:                  true,
	http.StatusRequestEntityTooLarge:       true,
	http.StatusRequestHeaderFieldsTooLarge: true,
	http.StatusServiceUnavailable:          true,
}

// FuzzHandler drives the whole handler, against one in-process nats-server
// per fuzz process, with random bodies and signature headers, and with
// correctly signed bodies derived from the input so that the publishing
// path runs too.
func FuzzHandler(f *testing.F) {
	sample := eventBody("evt_fuzz_1", "message.delivered")
	sig := strings.Repeat("00", 32)
	f.Add(sample, "", "dlv_fuzz_1", uint8(modeSigned))
	f.Add(sample, "", "dlv_fuzz_1", uint8(modeSigned)) // the same delivery: a duplicate
	f.Add(sample, "t=1,v1="+sig, "dlv_fuzz_2", uint8(modeRaw))
	f.Add(sample, "v0=x,v1=zz", "dlv_fuzz_3", uint8(modeSignedPlusRaw))
	f.Add(sample, "t=1", "dlv_fuzz_4", uint8(modeSignedPlusRaw))
	f.Add(sample, "", "dlv_fuzz_5", uint8(modeSignedTooOld))
	f.Add([]byte("evt_fuzz_2"), "campaign.completed", "", uint8(modeSignedEvent))
	f.Add([]byte("evt fuzz ✓"), "invoice.paid", "dlv with spaces ✓", uint8(modeSignedEvent))
	f.Add([]byte("evt_fuzz_3"), "message.>", "dlv_fuzz_6", uint8(modeSignedEvent))
	f.Add([]byte(""), "webhook.test", "", uint8(modeSignedEvent))
	f.Add([]byte("{\"id\":\"\xff\"}"), "", "", uint8(modeSigned))
	f.Add([]byte(`[1,2]`), "t=99999999999999999999,v1="+sig, "\x00\r\n", uint8(modeRaw))

	h := newHandlerHarness(f, harnessOptions{log: zap.NewNop()})
	f.Fuzz(func(t *testing.T, data []byte, header, deliveryID string, mode uint8) {
		h := *h
		h.t = t
		body, sigHeader := fuzzRequest(data, header, mode)
		deliveryID = headerValue(deliveryID)
		_, verifyErr := forwarder.VerifySignature(body, sigHeader, [][]byte{[]byte(handlerSecret)}, h.cfg.Webhook.Tolerance, time.Now())

		req := httptest.NewRequest(http.MethodPost, h.cfg.HTTP.Path, bytes.NewReader(body))
		req.Header.Set(forwarder.SignatureHeader, sigHeader)
		if deliveryID != "" {
			req.Header.Set(forwarder.DeliveryIDHeader, deliveryID)
		}
		before := h.count()
		a := h.serve(req)
		published := h.count() - before

		if !handlerStatuses[a.status] {
			t.Fatalf("got status %d (%s), want one of 200, 400, 413, 431, 503", a.status, a.raw)
		}
		if a.status != http.StatusOK {
			a.errorText(t)
		}
		if verifyErr != nil && (a.status == http.StatusOK || published != 0) {
			t.Fatalf("signature does not verify (%v) but got %d %s and %d messages published", verifyErr, a.status, a.raw, published)
		}
		wantPublished := uint64(0)
		if a.status == http.StatusOK && a.body["status"] == "published" {
			wantPublished = 1
		}
		if published != wantPublished {
			t.Fatalf("got %d messages published with answer %d %s, want %d", published, a.status, a.raw, wantPublished)
		}
	})
}
