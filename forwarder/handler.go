package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Zautic's request headers, and the headers set on each published message.
const (
	DeliveryIDHeader = "X-Zautic-Delivery-Id"

	HeaderMsgID      = jetstream.MsgIDHeader
	HeaderEventType  = "Zautic-Event-Type"
	HeaderEventID    = "Zautic-Event-Id"
	HeaderDeliveryID = "Zautic-Delivery-Id"
	HeaderTimestamp  = "Zautic-Timestamp"
)

var (
	// ErrBodyTooLarge is returned when the body exceeds http.max_body_bytes.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrReadBody is returned when the body cannot be read to its end.
	ErrReadBody = errors.New("read body")
)

// broker is what the handler needs from NATS; *Broker implements it.
type broker interface {
	Ready() error
	Seen(ctx context.Context, key string) (bool, error)
	Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error)
	Mark(ctx context.Context, key string, ack *jetstream.PubAck) error
	Quarantine(ctx context.Context, reason string, header http.Header, body []byte) (uint64, error)
}

// secretSource returns the secrets accepted now; *Secrets implements it.
type secretSource interface {
	Current() [][]byte
}

// Handler serves the webhook path: verify, deduplicate, publish, answer.
type Handler struct {
	cfg     Config
	secrets secretSource
	broker  broker
	log     *zap.Logger
	metrics *Metrics
	now     func() time.Time
	allow   map[string]bool // nil: every type is forwarded
	keep    *quarantiner    // nil: quarantine disabled

	streamJSON []byte // the stream name as a JSON string
}

// NewHandler returns the webhook handler. metrics may be nil.
func NewHandler(cfg Config, secrets secretSource, b broker, log *zap.Logger, m *Metrics) *Handler {
	h := &Handler{cfg: cfg, secrets: secrets, broker: b, log: log, metrics: m, now: time.Now}
	h.streamJSON, _ = json.Marshal(cfg.Stream.Name)
	h.keep = newQuarantiner(cfg, b, log, m)
	if len(cfg.Events.Allow) > 0 {
		h.allow = map[string]bool{}
		for _, t := range cfg.Events.Allow {
			h.allow[t] = true
		}
	}
	return h
}

// delivery is what one request learns on its way; it becomes the log line,
// the metrics and the answer.
type delivery struct {
	requestID  string
	deliveryID string
	event      Event
	subject    string
	key        string
	timestamp  int64
	outcome    string
	ack        *jetstream.PubAck
	receivedAt time.Time
	keyID      string // the key id of the secret that matched
	dryRun     bool   // look up, change nothing (replay)
	kept       bool   // stored in the quarantine
}

// bodyBuffers recycles request bodies. Nothing holds a body past the
// answer: PublishMsg has copied it into the connection's buffer when it
// returns, and the event's fields are copied out of it.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps the pool from holding on to the rare large bodies.
const maxPooledBody = 64 << 10

// Handle is the Echo handler for POST on http.path. Its steps follow the
// README: read body, verify, parse, subject, dedup, publish, mark, answer.
func (h *Handler) Handle(c echo.Context) error {
	start := time.Now()
	req := c.Request()
	// The RequestID middleware has set the response header: the incoming
	// X-Request-Id, or a generated one.
	d := &delivery{requestID: c.Response().Header().Get(echo.HeaderXRequestID), deliveryID: req.Header.Get(DeliveryIDHeader), receivedAt: h.now()}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	err := h.process(c, d, buf)
	h.record(c, d, err, time.Since(start))
	if err != nil {
		return h.answerError(c, err, d.kept)
	}
	return h.answer(c, d)
}

func (h *Handler) process(c echo.Context, d *delivery, buf *bytes.Buffer) error {
	req := c.Request()
	body, err := readBody(c.Response(), req, h.cfg.HTTP.MaxBodyBytes, buf)
	if err != nil {
		return err
	}
	err = h.deliver(req.Context(), d, body, req.Header.Get(SignatureHeader), h.cfg.Webhook.Tolerance)
	if reason := quarantineReason(err); reason != "" {
		d.kept = h.keep.keep(req.Context(), d, reason, req, body)
	}
	return err
}

// deliver runs a whole body through the rest of the path: verify (with the
// tolerance measured at d.receivedAt), parse, subject, allow, dedup,
// publish, mark. Requests and replays of quarantined entries share it.
func (h *Handler) deliver(ctx context.Context, d *delivery, body []byte, signature string, tolerance time.Duration) error {
	if err := h.verify(d, body, signature, tolerance); err != nil {
		return err
	}
	var err error
	if d.event, err = ParseEvent(body); err != nil {
		return err
	}
	if d.subject, err = SubjectFor(h.cfg.Stream.SubjectPrefix, d.event.Type); err != nil {
		return err
	}
	if !h.allowed(d.event.Type) {
		d.outcome = OutcomeIgnored
		return nil
	}
	d.key = h.dedupKey(d)
	return h.forward(ctx, d, body)
}

// verify checks the signature against the secrets accepted now and notes
// which one matched.
func (h *Handler) verify(d *delivery, body []byte, signature string, tolerance time.Duration) error {
	secrets := h.secrets.Current()
	ts, matched, err := VerifySignatureKey(body, signature, secrets, tolerance, d.receivedAt)
	d.timestamp = ts
	if err != nil {
		return err
	}
	d.keyID = KeyID(secrets[matched])
	h.metrics.signatureVerified(d.keyID)
	return nil
}

// forward runs the NATS steps in the order that loses nothing: a failed
// attempt marks nothing, so the sender's retry publishes again, and the
// stream's duplicate window absorbs a publish whose mark was lost.
func (h *Handler) forward(ctx context.Context, d *delivery, body []byte) error {
	if err := h.broker.Ready(); err != nil {
		return err
	}
	// One deadline for the lookup and the publish together: a request that
	// cannot get through to NATS is answered 503 within nats.publish_timeout,
	// however that time is split between the two steps.
	natsCtx, cancel := context.WithTimeout(ctx, h.cfg.NATS.PublishTimeout)
	defer cancel()
	kvKey := KVKey(d.key)
	seen, err := h.broker.Seen(natsCtx, kvKey)
	if err != nil {
		return err
	}
	if seen {
		d.outcome = OutcomeDuplicate
		return nil
	}
	if d.dryRun {
		d.outcome = OutcomeWouldPublish
		return nil
	}
	if d.ack, err = h.publish(natsCtx, d, body); err != nil {
		return err
	}
	d.outcome = OutcomePublished
	if d.ack.Duplicate {
		d.outcome = OutcomeDuplicate
	}
	h.mark(ctx, d, kvKey)
	return nil
}

func (h *Handler) publish(ctx context.Context, d *delivery, body []byte) (*jetstream.PubAck, error) {
	start := time.Now()
	ack, err := h.broker.Publish(ctx, newMessage(d, body))
	if err == nil && !ack.Duplicate {
		h.metrics.eventPublished(d.event.Type, time.Since(start).Seconds())
	}
	return ack, err
}

// mark records the delivery; a failure is logged and counted but does not
// fail the request, since the event is already stored.
func (h *Handler) mark(ctx context.Context, d *delivery, kvKey string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.NATS.PublishTimeout)
	defer cancel()
	if err := h.broker.Mark(ctx, kvKey, d.ack); err != nil {
		h.metrics.markFailed()
		h.log.Warn("mark delivery failed; the stream's duplicate window still guards it",
			zap.String("request_id", d.requestID), zap.String("delivery_id", d.deliveryID),
			zap.String("event_id", d.event.ID), zap.Error(err))
	}
}

func newMessage(d *delivery, body []byte) *nats.Msg {
	// One array holds every header value, instead of a slice per Set; the
	// keys are already canonical. Capacity 1 keeps an append from spilling
	// into the next value.
	values := [...]string{d.key, d.event.Type, d.event.ID, strconv.FormatInt(d.timestamp, 10), "application/json", d.deliveryID}
	header := make(nats.Header, len(values)+1) // +1: the expected stream, set by Publish
	header[HeaderMsgID] = values[0:1:1]
	header[HeaderEventType] = values[1:2:2]
	header[HeaderEventID] = values[2:3:3]
	header[HeaderTimestamp] = values[3:4:4]
	header["Content-Type"] = values[4:5:5]
	if d.deliveryID != "" {
		header[HeaderDeliveryID] = values[5:6:6]
	}
	return &nats.Msg{Subject: d.subject, Data: body, Header: header}
}

// dedupKey is the delivery id, or the event id when the request has none or
// dedup.key is "event".
func (h *Handler) dedupKey(d *delivery) string {
	if h.cfg.Dedup.Key == DedupKeyEvent || d.deliveryID == "" {
		return d.event.ID
	}
	return d.deliveryID
}

// readBody reads at most limit bytes into buf. A declared or actual larger
// body is ErrBodyTooLarge; it is never buffered beyond the limit.
func readBody(w http.ResponseWriter, req *http.Request, limit int64, buf *bytes.Buffer) ([]byte, error) {
	if req.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, req.ContentLength, limit)
	}
	if req.ContentLength > 0 {
		buf.Grow(int(req.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%w: exceeds %d bytes", ErrBodyTooLarge, limit)
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: %w", ErrReadBody, err)
	}
	return buf.Bytes(), nil
}

// errorStatus maps the request path's sentinel errors to a status and the
// bounded reason label of the metrics; the first match wins.
var errorStatus = []struct {
	err    error
	status int
	reason string
}{
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large"},
	{ErrReadBody, http.StatusBadRequest, "read_body"},
	{ErrNotSigned, http.StatusBadRequest, "signature_missing"},
	{ErrInvalidHeader, http.StatusBadRequest, "signature_malformed"},
	{ErrNoValidSignature, http.StatusBadRequest, "signature_mismatch"},
	{ErrTooOld, http.StatusBadRequest, "timestamp_out_of_tolerance"},
	{ErrInvalidEvent, http.StatusBadRequest, "invalid_event"},
	{ErrInvalidType, http.StatusBadRequest, "invalid_type"},
	{ErrNotReady, http.StatusServiceUnavailable, ""},
	{ErrDedupRead, http.StatusServiceUnavailable, ""},
	{ErrPublish, http.StatusServiceUnavailable, ""},
}

// RetryAfterUnavailable is the Retry-After, in seconds, of a 503.
const RetryAfterUnavailable = "2"

func classify(err error) (status int, outcome, reason string) {
	for _, e := range errorStatus {
		if errors.Is(err, e.err) {
			if e.status == http.StatusServiceUnavailable {
				return e.status, OutcomeUnavailable, ""
			}
			return e.status, OutcomeRejected, e.reason
		}
	}
	return http.StatusInternalServerError, OutcomeUnavailable, ""
}

func (h *Handler) answerError(c echo.Context, err error, kept bool) error {
	status, _, _ := classify(err)
	if status >= http.StatusInternalServerError {
		c.Response().Header().Set("Retry-After", RetryAfterUnavailable)
	}
	return c.JSON(status, errorBody{Error: err.Error(), Quarantined: kept})
}

type errorBody struct {
	Error       string `json:"error"`
	Quarantined bool   `json:"quarantined,omitempty"`
}

// answer writes {"status":…} and, for a published event, its subject,
// stream and sequence. It is built by hand, since it is written once per
// event: the outcome is a constant, the subject is made of validated tokens,
// and the stream name, which the PubAck repeats (publish expects it), is
// quoted once by NewHandler.
func (h *Handler) answer(c echo.Context, d *delivery) error {
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"`...)
	b = append(b, d.outcome...)
	b = append(b, '"')
	if d.outcome == OutcomePublished {
		b = append(b, `,"subject":"`...)
		b = append(b, d.subject...)
		b = append(b, `","stream":`...)
		b = append(b, h.streamJSON...)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, d.ack.Sequence, 10)
	}
	b = append(b, "}\n"...)
	return c.JSONBlob(http.StatusOK, b)
}

// record writes the one log line and the metrics of a delivery.
func (h *Handler) record(c echo.Context, d *delivery, err error, took time.Duration) {
	outcome, reason := d.outcome, ""
	if err != nil {
		_, outcome, reason = classify(err)
	}
	h.metrics.request(outcome, reason, took.Seconds())
	line := h.log.Check(zap.InfoLevel, "delivery")
	if line == nil {
		return
	}
	fields := []zap.Field{
		zap.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		zap.String("delivery_id", d.deliveryID),
		zap.String("event_id", d.event.ID),
		zap.String("type", d.event.Type),
		zap.String("subject", d.subject),
		zap.String("outcome", outcome),
		zap.Duration("duration", took),
	}
	if d.ack != nil {
		fields = append(fields, zap.Uint64("seq", d.ack.Sequence))
	}
	if d.keyID != "" {
		fields = append(fields, zap.String("key_id", d.keyID))
	}
	if err != nil {
		fields = append(fields, zap.String("reason", err.Error()))
	}
	if d.kept {
		fields = append(fields, zap.Bool("quarantined", true))
	}
	line.Write(fields...)
}

// allowed reports whether events.allow lets eventType through.
func (h *Handler) allowed(eventType string) bool {
	return h.allow == nil || h.allow[eventType]
}
