package zautic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is the replay window Zautic's documentation recommends.
const DefaultTolerance = 5 * time.Minute

var (
	// ErrNotSigned is returned when the signature header is missing or empty.
	ErrNotSigned = errors.New("missing X-Zautic-Signature header")
	// ErrInvalidHeader is returned when the signature header has no timestamp,
	// several timestamps, a timestamp that is not digits only without leading
	// zeros, or no usable v1.
	ErrInvalidHeader = errors.New("malformed X-Zautic-Signature header")
	// ErrNoValidSignature is returned when no v1 value matches any secret.
	ErrNoValidSignature = errors.New("no v1 signature matches the body")
	// ErrTooOld is returned when the signed timestamp is further from now than
	// the tolerance, in either direction.
	ErrTooOld = errors.New("signature timestamp outside tolerance")
)

// signedHeader is a parsed X-Zautic-Signature value.
type signedHeader struct {
	// Timestamp is the signed t, in unix seconds.
	Timestamp int64
	// Signatures holds every well-formed v1 value, decoded from hex.
	Signatures [][]byte
}

// parseSignatureHeader parses "t=<unix>,v1=<hex>[,v1=<hex>…]". Spaces after
// commas are tolerated, unknown keys are ignored (other schemes), and v1 values
// that are not 64 hex characters are skipped, as Stripe's verifier does.
func parseSignatureHeader(header string) (signedHeader, error) {
	var sh signedHeader
	if strings.TrimSpace(header) == "" {
		return sh, ErrNotSigned
	}
	seenT := false
	for part := range strings.SplitSeq(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch key {
		case "t":
			if seenT {
				return sh, fmt.Errorf("%w: more than one t", ErrInvalidHeader)
			}
			seenT = true
			ts, err := parseTimestamp(value)
			if err != nil {
				return sh, err
			}
			sh.Timestamp = ts
		case "v1":
			if sig, ok := decodeSignature(value); ok {
				sh.Signatures = append(sh.Signatures, sig)
			}
		}
	}
	if !seenT {
		return sh, fmt.Errorf("%w: no t", ErrInvalidHeader)
	}
	if len(sh.Signatures) == 0 {
		return sh, fmt.Errorf("%w: no v1 of 64 hex characters", ErrInvalidHeader)
	}
	return sh, nil
}

// parseTimestamp accepts t only in its canonical form, digits without a sign
// or leading zeros, so that the text the HMAC covers (re-formatted from the
// number by ComputeSignature) is exactly the text that was sent: "+1767432000"
// or "001767432000" would otherwise verify against "1767432000", making the
// header malleable.
func parseTimestamp(value string) (int64, error) {
	if value == "" || strings.Trim(value, "0123456789") != "" {
		return 0, fmt.Errorf("%w: t is not an integer of digits only", ErrInvalidHeader)
	}
	if len(value) > 1 && value[0] == '0' {
		return 0, fmt.Errorf("%w: t has leading zeros", ErrInvalidHeader)
	}
	ts, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: t is not an integer: out of int64 range", ErrInvalidHeader)
	}
	return ts, nil
}

func decodeSignature(value string) ([]byte, bool) {
	if len(value) != 2*sha256.Size {
		return nil, false
	}
	sig, err := hex.DecodeString(value)
	return sig, err == nil
}

// ComputeSignature returns HMAC-SHA256(secret, "<t>." + body), the raw v1 bytes.
func ComputeSignature(secret []byte, t int64, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	var prefix [24]byte
	mac.Write(strconv.AppendInt(prefix[:0], t, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Sign returns the X-Zautic-Signature value for body signed at t with secret,
// exactly as Zautic sends it: "t=<t>,v1=<hex>".
func Sign(secret []byte, t int64, body []byte) string {
	return "t=" + strconv.FormatInt(t, 10) + ",v1=" + hex.EncodeToString(ComputeSignature(secret, t, body))
}

// SignatureTimestamp returns the t of an X-Zautic-Signature header without
// verifying it: what the header claims, signed only once a v1 verifies. It
// returns ErrNotSigned or ErrInvalidHeader as VerifySignature does.
func SignatureTimestamp(header string) (int64, error) {
	sh, err := parseSignatureHeader(header)
	return sh.Timestamp, err
}

// SignedTime returns t, the unix seconds of a signature header, as a time
// in UTC, and false when RFC 3339 cannot write it: before 1970 or after
// 9999-12-31T23:59:59Z. t is any int64 a header carries, and time.Time's
// MarshalJSON fails on years beyond 9999, so whatever shows a signature's
// time goes through here rather than through time.Unix.
func SignedTime(t int64) (time.Time, bool) {
	if t < 0 || t > maxRFC3339Unix {
		return time.Time{}, false
	}
	return time.Unix(t, 0).UTC(), true
}

// Verified describes a signature header that checked out.
type Verified struct {
	// Timestamp is the signed t, in unix seconds. VerifySignature sets it
	// also when the only fault is ErrTooOld or ErrNoValidSignature.
	Timestamp int64
	// Secret is the index, in the secrets given, of the secret that matched.
	Secret int
	// Signature is the v1 value that matched, decoded from hex.
	Signature []byte
}

// VerifySignature checks header against body for any of secrets. It compares
// in constant time against every v1 and every secret. If the header is
// missing, ErrNotSigned is returned; if it is malformed, ErrInvalidHeader; if
// nothing matches, ErrNoValidSignature; if the signed time is more than
// tolerance away from now, ErrTooOld. A tolerance of zero or less disables
// the time check.
func VerifySignature(body []byte, header string, secrets [][]byte, tolerance time.Duration, now time.Time) (Verified, error) {
	sh, err := parseSignatureHeader(header)
	if err != nil {
		return Verified{}, err
	}
	v := matchSignature(body, sh, secrets)
	if v.Signature == nil {
		return v, ErrNoValidSignature
	}
	if tolerance > 0 && outsideTolerance(sh.Timestamp, now, tolerance) {
		return v, ErrTooOld
	}
	return v, nil
}

// matchSignature returns the first secret and v1 that match, with Signature
// nil when none does.
func matchSignature(body []byte, sh signedHeader, secrets [][]byte) Verified {
	v := Verified{Timestamp: sh.Timestamp, Secret: -1}
	for i, secret := range secrets {
		expected := ComputeSignature(secret, sh.Timestamp, body)
		for _, sig := range sh.Signatures {
			// No early exit: the time spent does not reveal which pair matched.
			if hmac.Equal(expected, sig) && v.Signature == nil {
				v.Secret, v.Signature = i, sig
			}
		}
	}
	return v
}

func outsideTolerance(ts int64, now time.Time, tolerance time.Duration) bool {
	// Bounds instead of |now-ts|, which overflows for hostile values of t.
	n, tol := now.Unix(), int64(tolerance/time.Second)
	return ts < n-tol || ts > n+tol
}
