package forwarder

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	// errOverloaded is returned when http.max_in_flight requests are already
	// in progress.
	errOverloaded = errors.New("overloaded")
	// errHeadersTooLarge is returned when the headers exceed
	// http.max_header_bytes.
	errHeadersTooLarge = errors.New("request headers too large")
	// errBodyTooLarge is returned when the body exceeds http.max_body_bytes.
	errBodyTooLarge = errors.New("body too large")
	// errReadBody is returned when the body cannot be read to its end.
	errReadBody = errors.New("read body")
	// errBodyTooSlow is returned when the body arrives slower than
	// http.min_body_rate.
	errBodyTooSlow = errors.New("body too slow")
	// errBodyMemory is returned when the body does not fit in what is left
	// of http.max_body_memory.
	errBodyMemory = errors.New("overloaded")
)

// reasonBodyMemory is the reason label of a request answered 429 because
// its body did not fit in http.max_body_memory.
const reasonBodyMemory = "body_memory"

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
	{errOverloaded, http.StatusTooManyRequests, outcomeOverloaded, "", "1"},
	{errBodyMemory, http.StatusTooManyRequests, outcomeOverloaded, reasonBodyMemory, "1"},
	{errHeadersTooLarge, http.StatusRequestHeaderFieldsTooLarge, outcomeRejected, "headers_too_large", ""},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, outcomeRejected, "body_too_large", ""},
	{errBodyTooSlow, http.StatusRequestTimeout, outcomeRejected, "body_too_slow", ""},
	{errReadBody, http.StatusBadRequest, outcomeRejected, "read_body", ""},
	{zautic.ErrNotSigned, http.StatusBadRequest, outcomeRejected, "signature_missing", ""},
	{zautic.ErrInvalidHeader, http.StatusBadRequest, outcomeRejected, "signature_malformed", ""},
	{zautic.ErrNoValidSignature, http.StatusBadRequest, outcomeRejected, reasonSignatureMismatch, ""},
	{zautic.ErrTooOld, http.StatusBadRequest, outcomeRejected, reasonTimestampOld, ""},
	{zautic.ErrInvalidEvent, http.StatusBadRequest, outcomeRejected, "invalid_event", ""},
	{zautic.ErrInvalidType, http.StatusBadRequest, outcomeRejected, "invalid_type", ""},
	{errNotReady, http.StatusServiceUnavailable, outcomeUnavailable, "", "2"},
	{errDedupRead, http.StatusServiceUnavailable, outcomeUnavailable, "", "2"},
	{errPublish, http.StatusServiceUnavailable, outcomeUnavailable, "", "2"},
}

// unexpected answers an error no entry names.
var unexpected = rejection{status: http.StatusInternalServerError, outcome: outcomeUnavailable, retryAfter: "2"}

func classify(err error) rejection {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r
		}
	}
	return unexpected
}

// labelledOutcomes are the outcome and reason label pairs of the requests
// that the table gives a reason, rejected or not.
func labelledOutcomes() [][2]string {
	var pairs [][2]string
	for _, r := range rejections {
		if r.reason != "" {
			pairs = append(pairs, [2]string{r.outcome, r.reason})
		}
	}
	return pairs
}

// answerError writes err's status, its Retry-After, and {"error": err},
// with "quarantined":true when the rejected request was kept.
func answerError(c echo.Context, err error, kept bool) error {
	r := classify(err)
	if r.retryAfter != "" {
		c.Response().Header().Set("Retry-After", r.retryAfter)
	}
	return c.JSON(r.status, errorBody{Error: err.Error(), Quarantined: kept})
}

type errorBody struct {
	Error       string `json:"error"`
	Quarantined bool   `json:"quarantined,omitempty"`
}
