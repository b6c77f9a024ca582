package ingest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Keeper keeps a rejected request that may verify later (the quarantine).
// It returns nil when it did, or why it did not, and must stay quick when it
// cannot. A kept request is answered 400 (it waits in the quarantine); one
// that could not be kept is answered 503 with Retry-After, so that Zautic
// keeps it and retries: a genuine delivery signed with a secret not yet
// configured is then never lost to a full or unavailable quarantine.
type Keeper interface {
	Keep(ctx context.Context, r Rejected) error
}

// errNotKept is returned when a request the quarantine would keep could not
// be kept.
var errNotKept = errors.New("not quarantined")

// notKeptError is a rejection the keeper could not keep: the answer names
// both, and it is classified as errNotKept before the rejection itself.
type notKeptError struct {
	rejected error
	cause    error
}

func (e *notKeptError) Error() string {
	return e.rejected.Error() + "; not quarantined: " + e.cause.Error() + "; retry later"
}
func (e *notKeptError) Unwrap() []error { return []error{errNotKept, e.rejected, e.cause} }

// Rejected is a request rejected for Reason, as received. Header and Body
// are the request's: a Keeper copies what it keeps before it returns.
type Rejected struct {
	Reason     string // telemetry.ReasonSignatureMismatch or telemetry.ReasonTimestampOld
	RequestID  string
	DeliveryID string
	Endpoint   string // the named endpoint that received it; "" for the default
	ReceivedAt time.Time
	Header     http.Header
	Body       []byte
}

// keepRejected hands a request rejected with err to the keeper when it may
// verify later, and returns the error to answer with: err itself, or err as
// not kept.
func (h *Handler) keepRejected(ctx context.Context, d *delivery, err error, header http.Header, body []byte) error {
	reason := quarantineReason(err)
	if reason == "" || h.keep == nil {
		return err
	}
	kerr := h.keep.Keep(ctx, Rejected{Reason: reason, RequestID: d.requestID, DeliveryID: d.deliveryID, Endpoint: h.cfg.Endpoint.Name,
		ReceivedAt: d.receivedAt, Header: header, Body: body})
	if kerr != nil {
		return &notKeptError{rejected: err, cause: kerr}
	}
	d.kept = true
	return err
}

// KeepRejected makes h hand the requests that may verify later to k. Call
// it before serving.
func (h *Handler) KeepRejected(k Keeper) { h.keep = k }

// quarantineReason is the reason err is kept for, or "" when a request
// rejected with err can never verify and is not kept.
func quarantineReason(err error) string {
	switch {
	case errors.Is(err, zautic.ErrNoValidSignature):
		return telemetry.ReasonSignatureMismatch
	case errors.Is(err, zautic.ErrTooOld):
		return telemetry.ReasonTimestampOld
	}
	return ""
}
