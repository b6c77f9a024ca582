package ingest

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestIgnoringToleranceWindow checks the signed t a replay ignoring the
// tolerance accepts, at the bounds and for hostile values of t, which are
// compared as integers: the text names the t, never an overflowed date.
func TestIgnoringToleranceWindow(t *testing.T) {
	now := time.Unix(1767432000, 0)
	n := now.Unix()
	const tol, ttl = 300, 3600
	tests := []struct {
		name      string
		ttl       time.Duration
		tolerance time.Duration
		t         int64
		wantErr   error
		wantText  string
	}{
		{"now", ttl * time.Second, tol * time.Second, n, nil, ""},
		{"at the newest bound", ttl * time.Second, tol * time.Second, n + tol, nil, ""},
		{"past the newest bound", ttl * time.Second, tol * time.Second, n + tol + 1, errSignedInFuture, "signed at 2026-01-03T09:25:01Z"},
		{"year 10000", ttl * time.Second, tol * time.Second, 253402300800, errSignedInFuture, "signed at t=253402300800"},
		{"the largest int64", ttl * time.Second, tol * time.Second, math.MaxInt64, errSignedInFuture, "signed at t=9223372036854775807"},
		{"at the oldest bound", ttl * time.Second, tol * time.Second, n - (ttl - tol), nil, ""},
		{"past the oldest bound", ttl * time.Second, tol * time.Second, n - (ttl - tol) - 1, errBeyondDedupTTL, "signed at 2026-01-03T08:24:59Z"},
		{"t 0", ttl * time.Second, tol * time.Second, 0, errBeyondDedupTTL, "signed at 1970-01-01T00:00:00Z"},
		{"dedup.ttl 0: no oldest bound", 0, tol * time.Second, 0, nil, ""},
		{"webhook.tolerance 0: no newest bound", ttl * time.Second, 0, math.MaxInt64, nil, ""},
		{"webhook.tolerance 0: the oldest bound is dedup.ttl", ttl * time.Second, 0, n - ttl - 1, errBeyondDedupTTL, "dedup.ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{cfg: Config{DedupTTL: tt.ttl, Tolerance: tt.tolerance}}
			err := h.ignoringToleranceWindow(now).check(tt.t)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}
