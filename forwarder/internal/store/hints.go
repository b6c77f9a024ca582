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

// withHint appends to err what fixes it: for a storage refusal, lowering
// the reservations of keys (such as "quarantine.max_bytes"); for 10113,
// setting stream.max_bytes and dedup.max_bytes.
func withHint(err error, keys string) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case errCodeMaxBytesRequired:
		return fmt.Errorf("%w (the account requires max_bytes on every stream: set stream.max_bytes and dedup.max_bytes)", err)
	case errCodeStorageResourcesExceeded, errCodeAccountResourcesExceeded, errCodeInsufficientResources:
		return fmt.Errorf("%w (lower %s)", err, keys)
	}
	return err
}

// streamFull reports whether a publish was refused because the event
// stream holds stream.max_bytes: with discard new, the server refuses the
// message ("maximum bytes exceeded") rather than drop an old one.
func (b *Broker) streamFull(err error) bool {
	var apiErr *jetstream.APIError
	return b.cfg.Stream.MaxBytes > 0 && errors.As(err, &apiErr) &&
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes")
}

// undoubled is an error whose text has nats.go's doubled prefix removed:
// a publish refused by the stream reads "nats: nats: API error: …", since
// the API error's own text starts with the prefix its wrapper adds again.
type undoubled struct{ err error }

func (e undoubled) Error() string { return strings.ReplaceAll(e.err.Error(), "nats: nats: ", "nats: ") }
func (e undoubled) Unwrap() error { return e.err }

// undouble returns err with the doubled prefix removed from its text.
func undouble(err error) error {
	if err == nil || !strings.Contains(err.Error(), "nats: nats: ") {
		return err
	}
	return undoubled{err}
}
