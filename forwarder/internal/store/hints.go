package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// What an operator can do about the server's storage errors: the server
// says what is wrong, in its terms; these name the keys that fix it.

// errCodeMaxBytesRequired is the server's answer to a stream without
// max_bytes in an account that requires it (max_bytes_required).
const errCodeMaxBytesRequired = 10113

// apiErrorCode is the JetStream error code err carries, or 0.
func apiErrorCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// withHint appends what to do to err, keeping it matchable.
func withHint(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// resourcesHint says what fixes a failure to create or update the event
// stream or the dedup bucket.
func resourcesHint(err error) string {
	switch apiErrorCode(err) {
	case errCodeMaxBytesRequired:
		return "the account requires max_bytes on every stream: set stream.max_bytes and dedup.max_bytes"
	case errCodeStorageResourcesExceeded, errCodeAccountResourcesExceeded, errCodeInsufficientResources:
		return "lower stream.max_bytes or dedup.max_bytes, or raise the account's or the server's storage limit"
	}
	return ""
}

// quarantineHint says what fixes a failure to create the quarantine stream.
func quarantineHint(err error) string {
	switch apiErrorCode(err) {
	case errCodeStorageResourcesExceeded, errCodeAccountResourcesExceeded, errCodeInsufficientResources:
		return "lower quarantine.max_bytes, or set quarantine.enabled: false"
	}
	return ""
}

// streamFull reports whether a publish was refused because the event
// stream holds stream.max_bytes: with discard new, the server refuses the
// message ("maximum bytes exceeded") rather than drop an old one.
func (b *Broker) streamFull(err error) bool {
	var apiErr *jetstream.APIError
	return b.cfg.Stream.MaxBytes > 0 && errors.As(err, &apiErr) &&
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes")
}

// streamFullHint says what to do about a full event stream.
func (b *Broker) streamFullHint() string {
	return fmt.Sprintf("stream %q holds stream.max_bytes (%d) and refuses new events until some age out: "+
		"raise stream.max_bytes, or shorten stream.max_age", b.cfg.Stream.Name, b.cfg.Stream.MaxBytes)
}

// undoubled is an error whose text has nats.go's doubled prefix removed:
// a publish refused by the stream reads "nats: nats: API error: …", since
// the API error's own text starts with the prefix its wrapper adds again.
type undoubled struct{ err error }

func (e undoubled) Error() string { return strings.ReplaceAll(e.err.Error(), "nats: nats: ", "nats: ") }
func (e undoubled) Unwrap() error { return e.err }

// undouble returns err with the doubled prefix removed from its text, or
// err itself when there is none to remove.
func undouble(err error) error {
	if err == nil || !strings.Contains(err.Error(), "nats: nats: ") {
		return err
	}
	return undoubled{err}
}
