package admin

import (
	"fmt"
	"net/http"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// scanRetryAfter is the Retry-After of a lookup refused for want of a
// slot: a scan takes a second or a few.
const scanRetryAfter = "1"

// scanSlots bounds the reads of the stream and the quarantine running at
// once (admin.max_concurrent_scans): each holds a reading consumer on the
// server and up to a fetch's bytes in this process, so that any number of
// lookups cost at most a few of them.
type scanSlots chan struct{}

func newScanSlots(n int) scanSlots { return make(scanSlots, max(n, 1)) }

// limit serves next in a free slot, or answers 429 at once: a waiting
// lookup would hold its connection and its memory for nothing.
func (s scanSlots) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s <- struct{}{}:
		default:
			w.Header().Set("Retry-After", scanRetryAfter)
			telemetry.WriteJSON(w, http.StatusTooManyRequests, adminapi.ErrorAnswer{
				Error: fmt.Sprintf("%d scans of the stream are running (admin.max_concurrent_scans); retry later", cap(s)),
			})
			return
		}
		defer func() { <-s }()
		next.ServeHTTP(w, r)
	})
}
