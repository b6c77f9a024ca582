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
// It reports whether it did, and must stay quick when it cannot: the
// request is answered 400 either way.
type Keeper interface {
	Keep(ctx context.Context, r Rejected) bool
}

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
