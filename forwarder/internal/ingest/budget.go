package ingest

import (
	"fmt"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
)

// ordinaryBodyBytes is the largest body counted as an ordinary delivery:
// Zautic's events are a few hundred bytes to a few KB. A quarter of
// http.max_body_memory is kept for such bodies, so that a flood of large
// declared bodies never turns an ordinary delivery away.
const ordinaryBodyBytes = 64 << 10

// largeShare is what bodies above ordinaryBodyBytes may hold together: the
// budget less the quarter kept for ordinary bodies.
func largeShare(total int64) int64 { return total - total/4 }

// BodyMemoryTooSmall reports whether a budget of total bytes could never
// admit a body of maxBody bytes.
func BodyMemoryTooSmall(total, maxBody int64) bool {
	if maxBody <= ordinaryBodyBytes {
		return total < max(maxBody, 1)
	}
	return largeShare(total) < maxBody
}

// bodyBudget counts the bytes that admitted request bodies may hold. A
// request reserves its share before its body is read and returns it after
// the answer; one that does not fit is refused at once, so the bytes of
// bodies held together never exceed total.
type bodyBudget struct {
	total      int64
	largeTotal int64 // what bodies above ordinaryBodyBytes may hold together
	metrics    *telemetry.Metrics

	mu        sync.Mutex
	used      int64
	largeUsed int64
}

func newBodyBudget(total int64, m *telemetry.Metrics) *bodyBudget {
	return &bodyBudget{total: total, largeTotal: largeShare(total), metrics: m}
}

// reserve takes n bytes from the budget and reports whether they fit.
func (b *bodyBudget) reserve(n int64) bool {
	large := n > ordinaryBodyBytes
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total || large && b.largeUsed+n > b.largeTotal {
		return false
	}
	b.used += n
	if large {
		b.largeUsed += n
	}
	b.metrics.SetBodyMemory(b.used)
	return true
}

// release returns n bytes taken by reserve.
func (b *bodyBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if n > ordinaryBodyBytes {
		b.largeUsed -= n
	}
	b.metrics.SetBodyMemory(b.used)
}

// bodyCharge is what a request's body may grow to in memory: its declared
// length, or maxBody when it declares none (chunked). A body declared above
// maxBody costs nothing: it is answered 413 without being read.
func bodyCharge(contentLength, maxBody int64) int64 {
	switch {
	case contentLength < 0:
		return maxBody
	case contentLength > maxBody:
		return 0
	}
	return contentLength
}

// limitBodyMemory answers 429 with Retry-After, before the body is read,
// when the request's body does not fit in what is left of the budget.
func limitBodyMemory(cfg HTTPConfig, budget *bodyBudget, m *telemetry.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			n := bodyCharge(c.Request().ContentLength, cfg.MaxBodyBytes)
			if n == 0 {
				return next(c)
			}
			if !budget.reserve(n) {
				return rejectEarly(c, m, fmt.Errorf(
					"%w: a body of up to %d bytes does not fit in what request bodies may hold now (http.max_body_memory %d)",
					errBodyMemory, n, cfg.MaxBodyMemory))
			}
			defer budget.release(n)
			return next(c)
		}
	}
}
