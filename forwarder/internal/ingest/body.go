package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// readBody reads req's body into buf, at most cfg.MaxBodyBytes of it. A
// declared or actual larger body is errBodyTooLarge; one slower than
// cfg.MinBodyRate is errBodyTooSlow. buf grows as bytes arrive, never
// beyond the declared length: a Content-Length is a promise the sender may
// not keep, and memory is not reserved for bytes that have not come.
func readBody(w http.ResponseWriter, req *http.Request, cfg HTTPConfig, buf *bytes.Buffer) ([]byte, error) {
	limit := cfg.MaxBodyBytes
	if req.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", errBodyTooLarge, req.ContentLength, limit)
	}
	// bound leaves room to read the end of a body of the declared (or the
	// largest) length without growing the buffer for it.
	bound := limit
	if req.ContentLength >= 0 {
		bound = req.ContentLength
	}
	bound += bytes.MinRead
	floor := startRateFloor(w, req, cfg)
	r := http.MaxBytesReader(w, req.Body, limit)
	for {
		if buf.Available() == 0 && !growBody(buf, bound) {
			// The body runs past its Content-Length: net/http never lets it,
			// but a handler may be served otherwise. Read on to the limit.
			if bound = limit + bytes.MinRead; !growBody(buf, bound) {
				return nil, fmt.Errorf("%w: exceeds %d bytes", errBodyTooLarge, limit)
			}
		}
		floor.before(int64(buf.Len()))
		space := buf.AvailableBuffer()[:buf.Available()]
		n, err := r.Read(space)
		buf.Write(space[:n]) // the bytes are in place already; this only counts them
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			floor.end()
			return buf.Bytes(), nil
		}
		return nil, readBodyError(err, buf.Len(), &floor, cfg)
	}
}

// readBodyError classifies a failed read. It is apart from readBody because
// errors.As makes its target escape: one allocation per request otherwise.
func readBodyError(err error, read int, floor *rateFloor, cfg HTTPConfig) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: exceeds %d bytes", errBodyTooLarge, cfg.MaxBodyBytes)
	case floor.cutOff(err):
		return fmt.Errorf("%w: %d bytes in %s, under http.min_body_rate of %d bytes/s",
			errBodyTooSlow, read, time.Since(floor.start).Round(time.Millisecond), cfg.MinBodyRate)
	}
	return fmt.Errorf("%w: %w", errReadBody, err)
}

// growBody gives buf more room, to an ordinary body's size or twice its
// capacity, but never more than bound in all; false when it holds bound
// already. An ordinary body gets its whole buffer at once; a large one
// grows by doubling as it arrives.
func growBody(buf *bytes.Buffer, bound int64) bool {
	size := min(int64(max(2*buf.Cap(), ordinaryBodyBytes+bytes.MinRead)), bound)
	if size <= int64(buf.Len()) {
		return false
	}
	grown := make([]byte, buf.Len(), size)
	copy(grown, buf.Bytes())
	*buf = *bytes.NewBuffer(grown)
	return true
}

// readDeadliner is the part of net/http's response writer that moves the
// connection's read deadline.
type readDeadliner interface {
	SetReadDeadline(deadline time.Time) error
}

// rateFloor cuts off a body that arrives slower than http.min_body_rate on
// average, after a grace of http.read_header_timeout (a sender on a slow
// link gets as long to start its body as to send its headers): before each
// read, the connection's read deadline is set to when the bytes received so
// far would have been due.
// The server's read timeout still bounds the whole body. The zero value
// does nothing (no body, the floor disabled, or no connection underneath).
type rateFloor struct {
	conn  readDeadliner
	start time.Time
	grace time.Duration
	last  time.Time // http.read_timeout from the start: the floor never extends it
	rate  float64   // bytes per second
	set   time.Time // the deadline in force
}

func startRateFloor(w http.ResponseWriter, req *http.Request, cfg HTTPConfig) rateFloor {
	if cfg.MinBodyRate <= 0 || req.ContentLength == 0 {
		return rateFloor{}
	}
	conn := connOf(w)
	if conn == nil {
		return rateFloor{}
	}
	start := time.Now()
	return rateFloor{conn: conn, start: start, grace: cfg.ReadHeaderTimeout, last: start.Add(cfg.ReadTimeout), rate: float64(cfg.MinBodyRate)}
}

// connOf finds the connection's read deadline through the writers that
// wrap net/http's (Echo's Response among them); nil when there is none, as
// under httptest.ResponseRecorder.
func connOf(w http.ResponseWriter) readDeadliner {
	for {
		switch t := w.(type) {
		case readDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// before sets the read deadline for a read after received bytes.
func (f *rateFloor) before(received int64) {
	if f.conn == nil {
		return
	}
	due := f.start.Add(f.grace + time.Duration(float64(received)/f.rate*float64(time.Second)))
	if due.After(f.last) {
		due = f.last
	}
	if !due.Equal(f.set) {
		f.set = due
		_ = f.conn.SetReadDeadline(due)
	}
}

// end clears the read deadline once the body is read: net/http goes on
// reading the connection in the background while the event is published,
// and a deadline passing then would cancel the request's context. net/http
// sets the next request's deadlines itself. A body that failed keeps its
// deadline, so that net/http, which would read what is left of it before
// answering, gives up at once and closes the connection instead.
func (f *rateFloor) end() {
	if f.conn != nil {
		_ = f.conn.SetReadDeadline(time.Time{})
	}
}

// cutOff reports whether err is the floor's deadline passing, rather than
// the server's read timeout or a failure of the client.
func (f *rateFloor) cutOff(err error) bool {
	return f.conn != nil && errors.Is(err, os.ErrDeadlineExceeded) && f.set.Before(f.last)
}
