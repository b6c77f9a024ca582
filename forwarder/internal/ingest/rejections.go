package ingest

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	// errOverloaded is returned when http.max_in_flight requests are already
	// in progress.
	errOverloaded = errors.New("overloaded")
	// errHeadersTooLarge is returned when the headers exceed
	// http.max_header_bytes.
	errHeadersTooLarge = errors.New("request headers too large")
	// errBodyTooLarge is returned when the body exceeds http.max_body_bytes,
	// or the message the NATS server's max_payload.
	errBodyTooLarge = errors.New("body too large")
	// errMessageHeadersTooLarge is returned when the message's headers
	// exceed what JetStream stores (maxHeaderBytes).
	errMessageHeadersTooLarge = errors.New("message headers too large")
	// errReadBody is returned when the body cannot be read to its end.
	errReadBody = errors.New("read body")
	// errBodyTooSlow is returned when the body arrives slower than
	// http.min_body_rate.
	errBodyTooSlow = errors.New("body too slow")
	// errBodyMemory is returned when the body does not fit in what is left
	// of http.max_body_memory.
	errBodyMemory = errors.New("overloaded")
	// errUnavailable is returned when the store cannot take or answer a
	// step now (NATS not ready, the bucket unreadable, no PubAck): a retry
	// may succeed.
	errUnavailable = errors.New("store unavailable")
)

// storeError is a store's error, answered with the store's own message
// and classified as errUnavailable: the store answers in its terms and
// knows nothing of statuses.
type storeError struct{ err error }

func (e *storeError) Error() string   { return e.err.Error() }
func (e *storeError) Unwrap() []error { return []error{errUnavailable, e.err} }

// unavailable marks err, which a Store returned, as errUnavailable.
func unavailable(err error) error { return &storeError{err: err} }

// reasonBodyMemory is the reason label of a request answered 429 because
// its body did not fit in http.max_body_memory.
const reasonBodyMemory = "body_memory"

// reasonNotQuarantined is the reason label of a request the quarantine
// would have kept but could not (rate, full, unavailable): answered 503.
const reasonNotQuarantined = "not_quarantined"

// notKeptRetryAfter is the Retry-After of a request that could not be kept:
// long enough for the rate limit's bucket to refill, short beside
// quarantine.max_age.
const notKeptRetryAfter = "60"

// rejection is what a request path error becomes: the status, the outcome
// and reason labels of the metrics, and the Retry-After in seconds (a
// retryable status only).
type rejection struct {
	err        error
	status     int
	outcome    string
	reason     string
	retryAfter string
}

// rejections maps the request path's sentinel errors to their answer, in one
// place; the first match wins. Zautic retries 429 and 5xx, never other 4xx.
var rejections = []rejection{
	{errOverloaded, http.StatusTooManyRequests, telemetry.OutcomeOverloaded, "", "1"},
	{errBodyMemory, http.StatusTooManyRequests, telemetry.OutcomeOverloaded, reasonBodyMemory, "1"},
	{errHeadersTooLarge, http.StatusRequestHeaderFieldsTooLarge, telemetry.OutcomeRejected, "headers_too_large", ""},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, telemetry.OutcomeRejected, "body_too_large", ""},
	{errMessageHeadersTooLarge, http.StatusRequestEntityTooLarge, telemetry.OutcomeRejected, "message_headers_too_large", ""},
	{errBodyTooSlow, http.StatusRequestTimeout, telemetry.OutcomeRejected, "body_too_slow", ""},
	{errReadBody, http.StatusBadRequest, telemetry.OutcomeRejected, "read_body", ""},
	{errNotKept, http.StatusServiceUnavailable, telemetry.OutcomeUnavailable, reasonNotQuarantined, notKeptRetryAfter},
	{zautic.ErrNotSigned, http.StatusBadRequest, telemetry.OutcomeRejected, "signature_missing", ""},
	{zautic.ErrInvalidHeader, http.StatusBadRequest, telemetry.OutcomeRejected, "signature_malformed", ""},
	{zautic.ErrNoValidSignature, http.StatusBadRequest, telemetry.OutcomeRejected, telemetry.ReasonSignatureMismatch, ""},
	{zautic.ErrTooOld, http.StatusBadRequest, telemetry.OutcomeRejected, telemetry.ReasonTimestampOld, ""},
	{zautic.ErrInvalidEvent, http.StatusBadRequest, telemetry.OutcomeRejected, "invalid_event", ""},
	{zautic.ErrInvalidType, http.StatusBadRequest, telemetry.OutcomeRejected, "invalid_type", ""},
	{errUnavailable, http.StatusServiceUnavailable, telemetry.OutcomeUnavailable, "", "2"},
}

// unexpected answers an error no entry names.
var unexpected = rejection{status: http.StatusInternalServerError, outcome: telemetry.OutcomeUnavailable, retryAfter: "2"}

func classify(err error) rejection {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r
		}
	}
	return unexpected
}

// LabelledOutcomes are the outcome and reason label pairs of the requests
// that the table gives a reason, rejected or not.
func LabelledOutcomes() [][2]string {
	var pairs [][2]string
	for _, r := range rejections {
		if r.reason != "" {
			pairs = append(pairs, [2]string{r.outcome, r.reason})
		}
	}
	return pairs
}

// answerError writes err's status, its Retry-After, and {"error": err},
// with "quarantined":true when the rejected request was kept and
// "quarantined":false when it would have been but could not.
func answerError(c echo.Context, err error, kept bool) error {
	r := classify(err)
	if r.retryAfter != "" {
		c.Response().Header().Set("Retry-After", r.retryAfter)
	}
	answer := adminapi.ErrorAnswer{Error: err.Error()}
	switch {
	case kept:
		answer.Quarantined = &kept
	case errors.Is(err, errNotKept):
		answer.Quarantined = new(bool)
	}
	return c.JSON(r.status, answer)
}
