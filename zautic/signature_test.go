package zautic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// knownVector was computed outside Go, with
//
//	printf '%s' '1700000000.{"id":"evt_1","type":"message.delivered"}' | openssl dgst -sha256 -hmac whsec_test -hex
//
// so that the signer is checked against something other than itself.
var knownVector = struct {
	secret string
	t      int64
	body   string
	v1     string
}{
	secret: "whsec_test",
	t:      1700000000,
	body:   `{"id":"evt_1","type":"message.delivered"}`,
	v1:     "cebf924d8e4237db8f7cc65f16141ca7f25b8bbf1c3fea75e47d77686d95e468",
}

func TestComputeSignatureKnownVector(t *testing.T) {
	got := hex.EncodeToString(ComputeSignature([]byte(knownVector.secret), knownVector.t, []byte(knownVector.body)))
	if got != knownVector.v1 {
		t.Errorf("got %s, want %s", got, knownVector.v1)
	}
}

func TestComputeSignatureMatchesCryptoHMAC(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		t      int64
		body   string
	}{
		{"quickstart sample", "s3cret", 1767432000, `{"id":"evt_5f3c","type":"message.delivered"}`},
		{"empty body", "s3cret", 1, ""},
		{"negative t", "s3cret", -42, "{}"},
		{"max int64 t", "k", math.MaxInt64, "x"},
		{"min int64 t", "k", math.MinInt64, "x"},
		{"binary secret and body", "\x00\xff", 7, "\x00\x01\x02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac := hmac.New(sha256.New, []byte(tt.secret))
			mac.Write([]byte(strconv.FormatInt(tt.t, 10) + "." + tt.body))
			want := mac.Sum(nil)
			got := ComputeSignature([]byte(tt.secret), tt.t, []byte(tt.body))
			if !bytes.Equal(got, want) {
				t.Errorf("got %x, want %x", got, want)
			}
		})
	}
}

func TestSignFormat(t *testing.T) {
	got := Sign([]byte(knownVector.secret), knownVector.t, []byte(knownVector.body))
	want := "t=1700000000,v1=" + knownVector.v1
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseSignatureHeader(t *testing.T) {
	sigA := strings.Repeat("ab", 32)
	sigB := strings.Repeat("0F", 32)
	decA, _ := hex.DecodeString(sigA)
	decB, _ := hex.DecodeString(sigB)
	tests := []struct {
		name    string
		header  string
		wantT   int64
		wantSig [][]byte
		wantErr error
		reason  string // substring of the error message
	}{
		{name: "quickstart format", header: "t=1700000000,v1=" + sigA, wantT: 1700000000, wantSig: [][]byte{decA}},
		{name: "v1 before t", header: "v1=" + sigA + ",t=5", wantT: 5, wantSig: [][]byte{decA}},
		{name: "several v1", header: "t=1,v1=" + sigA + ",v1=" + sigB, wantT: 1, wantSig: [][]byte{decA, decB}},
		{name: "spaces after commas", header: "t=1, v1=" + sigA + ",  v1=" + sigB, wantT: 1, wantSig: [][]byte{decA, decB}},
		{name: "unknown keys ignored", header: "t=1,v0=" + sigB + ",scheme2=xyz,v1=" + sigA, wantT: 1, wantSig: [][]byte{decA}},
		{name: "part without equals ignored", header: "t=1,garbage,v1=" + sigA, wantT: 1, wantSig: [][]byte{decA}},
		{name: "short v1 skipped", header: "t=1,v1=abcd,v1=" + sigA, wantT: 1, wantSig: [][]byte{decA}},
		{name: "long v1 skipped", header: "t=1,v1=" + sigA + "00,v1=" + sigB, wantT: 1, wantSig: [][]byte{decB}},
		{name: "non-hex v1 skipped", header: "t=1,v1=" + strings.Repeat("zz", 32) + ",v1=" + sigA, wantT: 1, wantSig: [][]byte{decA}},
		{name: "zero t", header: "t=0,v1=" + sigA, wantT: 0, wantSig: [][]byte{decA}},
		{name: "max int64 t", header: "t=9223372036854775807,v1=" + sigA, wantT: math.MaxInt64, wantSig: [][]byte{decA}},
		{name: "missing", header: "", wantErr: ErrNotSigned},
		{name: "blank", header: "   ", wantErr: ErrNotSigned},
		{name: "no t", header: "v1=" + sigA, wantErr: ErrInvalidHeader, reason: "no t"},
		{name: "two t", header: "t=1,t=2,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "more than one t"},
		{name: "t not integer", header: "t=abc,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "t is not an integer"},
		{name: "t empty", header: "t=,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "t is not an integer"},
		{name: "t float", header: "t=1.5,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "t is not an integer"},
		{name: "t overflows int64", header: "t=9223372036854775808,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "t is not an integer"},
		{name: "negative t", header: "t=-5,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "digits only"},
		{name: "t with a plus sign", header: "t=+1767432000,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "digits only"},
		{name: "t with leading zeros", header: "t=001767432000,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "leading zeros"},
		{name: "t with a single leading zero", header: "t=01,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "leading zeros"},
		{name: "t with a space inside", header: "t=17 67,v1=" + sigA, wantErr: ErrInvalidHeader, reason: "digits only"},
		{name: "no v1", header: "t=1", wantErr: ErrInvalidHeader, reason: "no v1"},
		{name: "only unusable v1", header: "t=1,v1=abc,v0=" + sigA, wantErr: ErrInvalidHeader, reason: "no v1"},
		{name: "not key value at all", header: "hello", wantErr: ErrInvalidHeader, reason: "no t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSignatureHeader(tt.header)
			if checkError(t, err, tt.wantErr, tt.reason) {
				return
			}
			if got.Timestamp != tt.wantT {
				t.Errorf("got t %d, want %d", got.Timestamp, tt.wantT)
			}
			if len(got.Signatures) != len(tt.wantSig) {
				t.Fatalf("got %d signatures, want %d", len(got.Signatures), len(tt.wantSig))
			}
			for i := range got.Signatures {
				if !bytes.Equal(got.Signatures[i], tt.wantSig[i]) {
					t.Errorf("signature %d: got %x, want %x", i, got.Signatures[i], tt.wantSig[i])
				}
			}
		})
	}
}

// signCase describes one verification by its differences from a request
// correctly signed now with the first secret.
type signCase struct {
	name      string
	header    func(body []byte) string
	body      []byte // the body received, when it differs from the one signed
	secrets   []string
	tolerance time.Duration
	wantErr   error
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_767_432_000, 0)
	body := []byte(`{"id":"evt_1","type":"message.delivered"}`)
	const tol = 5 * time.Minute
	signedAt := func(secret string, at time.Time) func([]byte) string {
		return func(b []byte) string { return Sign([]byte(secret), at.Unix(), b) }
	}
	signed := func(secret string) func([]byte) string { return signedAt(secret, now) }
	fixed := func(h string) func([]byte) string { return func([]byte) string { return h } }
	v1Of := func(secret string, at int64) string {
		return hex.EncodeToString(ComputeSignature([]byte(secret), at, body))
	}
	ts := strconv.FormatInt(now.Unix(), 10)

	tests := []signCase{
		{name: "valid", header: signed("s1"), secrets: []string{"s1"}, tolerance: tol},
		{name: "several v1 one matching", header: fixed("t=" + ts + ",v1=" + v1Of("other", now.Unix()) + ",v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol},
		{name: "spaces and unknown schemes", header: fixed("t=" + ts + ", v0=" + v1Of("s1", now.Unix()) + ", v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol},
		{name: "rotation: second secret matches", header: signed("new"), secrets: []string{"old", "new"}, tolerance: tol},
		{name: "rotation: first secret matches", header: signed("old"), secrets: []string{"old", "new"}, tolerance: tol},
		{name: "missing header", header: fixed(""), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNotSigned},
		{name: "malformed header", header: fixed("t=x,v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrInvalidHeader},
		{name: "wrong secret", header: signed("wrong"), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNoValidSignature},
		{name: "no secrets", header: signed("s1"), secrets: nil, tolerance: tol, wantErr: ErrNoValidSignature},
		{name: "body altered by one byte", header: signed("s1"), body: flipLastByte(body), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNoValidSignature},
		{name: "body with trailing newline", header: signed("s1"), body: append(bytes.Clone(body), '\n'), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNoValidSignature},
		{name: "t altered after signing", header: fixed("t=" + strconv.FormatInt(now.Unix()+1, 10) + ",v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNoValidSignature},
		{name: "past: exactly at tolerance", header: signedAt("s1", now.Add(-tol)), secrets: []string{"s1"}, tolerance: tol},
		{name: "past: one second beyond", header: signedAt("s1", now.Add(-tol-time.Second)), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrTooOld},
		{name: "future: exactly at tolerance", header: signedAt("s1", now.Add(tol)), secrets: []string{"s1"}, tolerance: tol},
		{name: "future: one second beyond", header: signedAt("s1", now.Add(tol+time.Second)), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrTooOld},
		{name: "tolerance zero disables the check", header: signedAt("s1", now.Add(-1000*time.Hour)), secrets: []string{"s1"}, tolerance: 0},
		{name: "max int64 t rejected", header: signedTS("s1", math.MaxInt64), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrTooOld},
		{name: "min int64 t is malformed", header: signedTS("s1", math.MinInt64), secrets: []string{"s1"}, tolerance: math.MaxInt64, wantErr: ErrInvalidHeader},
		// The v1 of the canonical number, under another spelling of t: the
		// HMAC covers the literal text, so neither verifies.
		{name: "t re-spelt with a plus sign", header: fixed("t=+" + ts + ",v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrInvalidHeader},
		{name: "t re-spelt with leading zeros", header: fixed("t=00" + ts + ",v1=" + v1Of("s1", now.Unix())), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrInvalidHeader},
		{name: "max int64 t without tolerance", header: signedTS("s1", math.MaxInt64), secrets: []string{"s1"}, tolerance: 0},
		{name: "wrong secret and too old: mismatch wins", header: signedAt("wrong", now.Add(-time.Hour)), secrets: []string{"s1"}, tolerance: tol, wantErr: ErrNoValidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := body
			if tt.body != nil {
				received = tt.body
			}
			header := tt.header(body)
			_, err := VerifySignature(received, header, toBytes(tt.secrets), tt.tolerance, now)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifySignatureReports checks what a verification says besides its
// error: the signed t, which secret matched and which v1 it matched.
func TestVerifySignatureReports(t *testing.T) {
	now := time.Unix(1_767_432_000, 0)
	body := []byte(`{}`)
	ts := now.Unix() - 3
	oldSig := ComputeSignature([]byte("old"), ts, body)
	newSig := ComputeSignature([]byte("new"), ts, body)
	tests := []struct {
		name       string
		header     string
		secrets    []string
		wantErr    error
		wantSecret int
		wantSig    []byte
	}{
		{name: "first secret", header: Sign([]byte("old"), ts, body), secrets: []string{"old", "new"}, wantSecret: 0, wantSig: oldSig},
		{name: "second secret", header: Sign([]byte("new"), ts, body), secrets: []string{"old", "new"}, wantSecret: 1, wantSig: newSig},
		{name: "two v1, second matches", header: fmt.Sprintf("t=%d,v1=%x,v1=%x", ts, oldSig, newSig), secrets: []string{"new"}, wantSecret: 0, wantSig: newSig},
		{name: "no match", header: Sign([]byte("other"), ts, body), secrets: []string{"old"}, wantErr: ErrNoValidSignature, wantSecret: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifySignature(body, tt.header, toBytes(tt.secrets), time.Minute, now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got.Timestamp != ts || got.Secret != tt.wantSecret || !bytes.Equal(got.Signature, tt.wantSig) {
				t.Errorf("got %+v, want t %d, secret %d, signature %x", got, ts, tt.wantSecret, tt.wantSig)
			}
		})
	}
}

func signedTS(secret string, ts int64) func([]byte) string {
	return func(b []byte) string { return Sign([]byte(secret), ts, b) }
}

func flipLastByte(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)-1] ^= 0x01
	return out
}

func toBytes(list []string) [][]byte {
	var out [][]byte
	for _, s := range list {
		out = append(out, []byte(s))
	}
	return out
}

// TestSignedTime: a t that RFC 3339 cannot write (after year 9999, where
// time.Time's MarshalJSON fails) has no time; every other t has, and
// encodes.
func TestSignedTime(t *testing.T) {
	tests := []struct {
		t      int64
		wantOK bool
	}{
		{0, true},
		{1767432000, true},
		{253402300799, true}, // 9999-12-31T23:59:59Z
		{253402300800, false},
		{math.MaxInt64, false},
		{-1, false},
	}
	for _, tt := range tests {
		at, ok := SignedTime(tt.t)
		if ok != tt.wantOK {
			t.Errorf("SignedTime(%d): got ok %v, want %v", tt.t, ok, tt.wantOK)
			continue
		}
		if !ok {
			continue
		}
		if _, err := at.MarshalJSON(); err != nil || at.Unix() != tt.t || at.Location() != time.UTC {
			t.Errorf("SignedTime(%d): got %v (MarshalJSON: %v), want that t in UTC", tt.t, at, err)
		}
	}
}
