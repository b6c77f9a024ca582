package natsconn

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// ErrNotConnectedYet is wrapped by Failures.Reason before a connection
// attempt has failed or succeeded: no cause is known yet, so none is logged.
var ErrNotConnectedYet = errors.New("not connected")

// Failures says why a connection is down, the same from its handlers and
// from a periodic check so that the reason does not flap. The connection's
// handlers feed it: Failed from the reconnect error handler, Connected from
// the connect and reconnect handlers.
type Failures struct {
	log  *ErrorLog
	last atomic.Pointer[error] // the last failed attempt's
}

// NewFailures returns Failures that log each named cause on log, which the
// connection's error handler may share: a rejected reconnection reaches
// both, and is then logged once.
func NewFailures(log *ErrorLog) *Failures { return &Failures{log: log} }

// Failed records a failed connection attempt.
func (f *Failures) Failed(err error) { f.last.Store(&err) }

// Connected forgets the failed attempts.
func (f *Failures) Connected() { f.last.Store(nil) }

// Reason is why nc is down: the client's last error (set by a rejected
// handshake, which no handler reports while the first connection is still
// being attempted), else the last failed attempt's, else the servers tried,
// wrapped in ErrNotConnectedYet. A named cause is logged too, at most once
// per cause every ErrorLogEvery. It takes nc because the handlers may run
// before nats.Connect has returned it.
func (f *Failures) Reason(nc *nats.Conn) error {
	err := nc.LastError()
	if err == nil {
		if last := f.last.Load(); last != nil {
			err = *last
		}
	}
	if err == nil {
		return fmt.Errorf("%w to %s", ErrNotConnectedYet, RedactURLs(strings.Join(nc.Opts.Servers, ",")))
	}
	cause := Cause(err)
	f.log.Report("nats connection failed; retrying", cause, err)
	return fmt.Errorf("connect: %s: %w", cause, err)
}
