package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Store is what the handler needs of NATS, in the handler's own terms: no
// NATS type crosses it. Every error it returns means the store is
// unavailable for now, and is answered 503 (see unavailable).
type Store interface {
	Ready() error
	Seen(ctx context.Context, key string) (bool, error)
	// Publish stores the message and returns its stream sequence, and
	// whether the stream already held its Nats-Msg-Id.
	Publish(ctx context.Context, subject string, header map[string][]string, body []byte) (seq uint64, duplicate bool, err error)
	// Mark sends the mark of key without waiting for it to be stored: the
	// store handles its outcome, and asks for the mark repair when it
	// fails. It waits only for room among the marks in flight, until ctx
	// ends or for nats.publish_timeout at most; an error means the mark was
	// not sent.
	Mark(ctx context.Context, key string, seq uint64) error
	// MaxPayload is the largest message the server takes, headers
	// included; 0 while unknown.
	MaxPayload() int64
}

// stored is the stream's acknowledgement of a publish.
type stored struct {
	Seq       uint64
	Duplicate bool // the stream already held this Nats-Msg-Id
}

// Config is what the handler reads: the http section, and the few keys of
// other sections the request path needs.
type Config struct {
	HTTP HTTPConfig
	// Tolerance is webhook.tolerance; 0 disables the timestamp check.
	Tolerance time.Duration
	// DedupTTL is dedup.ttl, how long a mark lives (0: for ever): a replay
	// that ignores the tolerance refuses what was signed longer ago.
	DedupTTL time.Duration
	// Stream and SubjectPrefix are stream.name and stream.subject_prefix.
	Stream        string
	SubjectPrefix string
	// DedupKey is dedup.key, DedupKeyEvent or DedupKeyDelivery; Bucket is
	// dedup.bucket, named in the spans.
	DedupKey string
	Bucket   string
	// Allow is events.allow; empty forwards every type.
	Allow          []string
	PublishTimeout time.Duration
	// Endpoint is the endpoint this handler serves.
	Endpoint Endpoint
}

// EventsConfig filters which event types are forwarded.
type EventsConfig struct {
	Allow []string `yaml:"allow"`
}

// Dedup key sources for dedup.key.
const (
	DedupKeyDelivery = "delivery"
	DedupKeyEvent    = "event"
)

// SecretSource returns the secrets accepted now; *secrets.Set implements it.
type SecretSource interface {
	Current() [][]byte
}

// Handler serves the webhook path: verify, deduplicate, publish, answer.
type Handler struct {
	cfg     Config
	secrets SecretSource
	store   Store
	log     *zap.Logger
	metrics *telemetry.Metrics
	now     func() time.Time
	allow   map[string]bool // nil: every type is forwarded
	keep    Keeper          // nil: rejected requests are not kept
	tracer  trace.Tracer    // nil: tracing is off

	streamJSON []byte                 // the stream name as a JSON string
	keyIDs     atomic.Pointer[keyIDs] // of the secrets accepted last
}

// NewHandler returns the webhook handler. metrics may be nil; so may tp,
// which turns tracing off.
func NewHandler(cfg Config, secrets SecretSource, store Store, log *zap.Logger, m *telemetry.Metrics, tp trace.TracerProvider) *Handler {
	h := &Handler{cfg: cfg, secrets: secrets, store: store, log: log, metrics: m, now: time.Now}
	h.tracer = newTracer(tp)
	h.streamJSON, _ = json.Marshal(cfg.Stream)
	if len(cfg.Allow) > 0 {
		h.allow = map[string]bool{}
		for _, t := range cfg.Allow {
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
	event      zautic.Event
	subject    string
	key        string // the dedup key, as received
	kvKeys     kvKeys // the KV keys looked up and marked
	signed     zautic.Verified
	outcome    string
	ack        stored // Seq is 0 until the stream has acknowledged (sequences start at 1)
	receivedAt time.Time
	keyID      string // the key id of the secret that matched
	dryRun     bool   // look up, change nothing (replay)
	// window, when set, refuses a verified request signed outside it (a
	// replay that ignores the tolerance: errSignedInFuture,
	// errBeyondDedupTTL).
	window     *signedWindow
	kept       bool   // stored in the quarantine
	tracestate string // the request's, which tracing copies to the message

	addedTokens string // the subject's tokens beside the prefix and the type
}

// bodyBuffers recycles request bodies. Nothing holds a body past the
// answer: PublishMsg has copied it into the connection's buffer when it
// returns, and the event's fields are copied out of it.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps the pool from holding on to the rare large bodies.
const maxPooledBody = ordinaryBodyBytes + bytes.MinRead

// Handle is the Echo handler for POST on http.path. Its steps follow the
// README: read body, verify, parse, subject, dedup, publish, mark, answer.
func (h *Handler) Handle(c echo.Context) error {
	start := time.Now()
	span := h.startRequestSpan(c)
	req := c.Request()
	// The RequestID middleware has set the response header: the incoming
	// X-Request-Id, or a generated one.
	d := &delivery{requestID: c.Response().Header().Get(echo.HeaderXRequestID), deliveryID: req.Header.Get(zautic.RequestDeliveryIDHeader), receivedAt: h.now()}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	err := h.process(c, d, buf)
	h.record(c.Request().Context(), d, err, time.Since(start))
	if span != nil {
		defer h.endRequestSpan(span, d, err)
	}
	if err != nil {
		return answerError(c, err, d.kept)
	}
	return h.answer(c, d)
}

func (h *Handler) process(c echo.Context, d *delivery, buf *bytes.Buffer) error {
	req := c.Request()
	body, err := readBody(c.Response(), req, h.cfg.HTTP, buf)
	if err != nil {
		return err
	}
	d.tracestate = req.Header.Get("Tracestate")
	signature, err := signatureHeader(req.Header)
	if err != nil {
		return err
	}
	err = h.deliver(req.Context(), d, body, signature, h.cfg.Tolerance)
	return h.keepRejected(req.Context(), d, err, req.Header, body)
}

// signatureHeader is the request's one X-Zautic-Signature value. Several
// are ambiguous: which one the sender meant, and which one a proxy added,
// cannot be told, so the request is refused rather than verified on the
// first (ErrInvalidHeader, 400, not kept).
func signatureHeader(header http.Header) (string, error) {
	values := header.Values(zautic.RequestSignatureHeader)
	if len(values) > 1 {
		return "", fmt.Errorf("%w: %d X-Zautic-Signature headers, want one (several v1 values go in one header, comma-separated)",
			zautic.ErrInvalidHeader, len(values))
	}
	if len(values) == 0 {
		return "", nil
	}
	return values[0], nil
}

// deliver runs a whole body through the rest of the path: verify (with the
// tolerance measured at d.receivedAt), parse, subject, allow, dedup,
// publish, mark. Requests and replays of quarantined entries share it.
func (h *Handler) deliver(ctx context.Context, d *delivery, body []byte, signature string, tolerance time.Duration) error {
	if err := h.verify(d, body, signature, tolerance); err != nil {
		return err
	}
	if err := d.window.check(d.signed.Timestamp); err != nil {
		return err
	}
	var err error
	if d.event, err = zautic.ParseEvent(body); err != nil {
		return err
	}
	if err = h.render(d, body); err != nil {
		return err
	}
	if !h.allowed(d.event.Type) {
		d.outcome = telemetry.OutcomeIgnored
		return nil
	}
	d.key = h.dedupKey(d)
	d.kvKeys = h.kvKeys(d, body)
	mh := messageHeaders.Get().(*messageHeader)
	defer messageHeaders.Put(mh)
	header := mh.build(d, h.messageID(d))
	h.applyEndpoint(header, d, body)
	if err := fitsPayload(header, body, h.cfg.Stream, h.traceHeaderBytes(d.tracestate), h.store.MaxPayload()); err != nil {
		return err
	}
	return h.forward(ctx, d, header, body)
}

// verify checks the signature against the secrets accepted now and notes
// which one matched.
func (h *Handler) verify(d *delivery, body []byte, signature string, tolerance time.Duration) error {
	accepted := h.secrets.Current()
	var err error
	if d.signed, err = zautic.VerifySignature(body, signature, accepted, tolerance, d.receivedAt); err != nil {
		return err
	}
	d.keyID = h.keyID(accepted, d.signed.Secret)
	h.metrics.SignatureVerified(d.keyID)
	return nil
}

// keyIDs are the key ids of a list of secrets that SecretSource.Current
// returned: a reload makes a new list, so the list's identity tells whether
// they still apply.
type keyIDs struct {
	secrets [][]byte
	ids     []string
}

// keyID is the key id of accepted[i], computed once per list of secrets
// rather than per request (a SHA-256 and a string).
func (h *Handler) keyID(accepted [][]byte, i int) string {
	k := h.keyIDs.Load()
	if k == nil || len(k.secrets) != len(accepted) || &k.secrets[0] != &accepted[0] {
		k = &keyIDs{secrets: accepted, ids: secrets.KeyIDs(accepted)}
		h.keyIDs.Store(k)
	}
	return k.ids[i]
}

// forward runs the NATS steps in the order that loses nothing: a failed
// attempt marks nothing, so the sender's retry publishes again, and the
// stream's duplicate window absorbs a publish whose mark was lost until the
// mark repair recreates it.
func (h *Handler) forward(ctx context.Context, d *delivery, header map[string][]string, body []byte) error {
	if err := h.store.Ready(); err != nil {
		return unavailable(err)
	}
	// One deadline for the lookup and the publish together: a request that
	// cannot get through to NATS is answered 503 within nats.publish_timeout,
	// however that time is split between the two steps.
	natsCtx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	seen, err := h.seen(natsCtx, &d.kvKeys)
	if err != nil {
		return unavailable(err)
	}
	if seen {
		d.outcome = telemetry.OutcomeDuplicate
		return nil
	}
	if d.dryRun {
		d.outcome = telemetry.OutcomeWouldPublish
		return nil
	}
	if d.ack, err = h.publish(natsCtx, d, header, body); err != nil {
		return unavailable(err)
	}
	d.outcome = telemetry.OutcomePublished
	if d.ack.Duplicate {
		d.outcome = telemetry.OutcomeDuplicate
	}
	for _, key := range d.kvKeys.list() {
		h.mark(ctx, d, key)
	}
	return nil
}

func (h *Handler) publish(ctx context.Context, d *delivery, header map[string][]string, body []byte) (stored, error) {
	start := time.Now()
	ack, err := h.send(ctx, d.subject, header, body)
	if err == nil && !ack.Duplicate {
		h.metrics.EventPublished(d.event.Type, time.Since(start).Seconds())
	}
	return ack, err
}

// mark sends the delivery's mark; the answer does not wait for it to be
// stored, since the event already is. A mark that could not even be sent is
// logged and counted here, and does not fail the request either.
func (h *Handler) mark(ctx context.Context, d *delivery, kvKey string) {
	// The mark belongs to the stored event, not to the request: a client
	// that hangs up does not stop it. Mark bounds its wait for room by
	// nats.publish_timeout itself, and makes a timer only when it must wait.
	ctx, span := h.markSpan(context.WithoutCancel(ctx))
	err := h.store.Mark(ctx, kvKey, d.ack.Seq)
	endMarkSpan(span, err)
	if err != nil {
		h.metrics.MarkFailed()
		h.log.Warn("mark delivery failed; the stream's duplicate window still guards it",
			zap.String("request_id", d.requestID), zap.String("delivery_id", d.deliveryID),
			zap.String("event_id", d.event.ID), zap.Error(err))
	}
}

// messageHeader is the header of a published message, recycled through
// messageHeaders: the map and the array of its values are made once, not per
// event. Nothing holds the header past deliver: Publish has written it to
// the connection when it returns (nats.go encodes it into the request).
type messageHeader struct {
	header map[string][]string
	values [6]string
	// The signed t as text, kept for the next event signed in the same second.
	t     int64
	tText string
}

// messageHeaders recycles messageHeader; deliver puts one back once its
// event is published.
var messageHeaders = sync.Pool{New: func() any {
	return &messageHeader{header: make(map[string][]string, 8)} // the values, the expected stream and the trace context
}}

// build fills mh as the header of d's message, with msgID as its
// Nats-Msg-Id, and returns it.
func (mh *messageHeader) build(d *delivery, msgID string) map[string][]string {
	if d.signed.Timestamp != mh.t || mh.tText == "" {
		mh.t, mh.tText = d.signed.Timestamp, strconv.FormatInt(d.signed.Timestamp, 10)
	}
	// One array holds every header value, instead of a slice per Set; the
	// keys are already canonical. Capacity 1 keeps an append from spilling
	// into the next value.
	mh.values = [...]string{msgID, d.event.Type, d.event.ID, mh.tText, "application/json", d.deliveryID}
	values := &mh.values
	header := mh.header
	clear(header) // the previous event's, trace context and expected stream included
	header[zautic.MessageIDHeader] = values[0:1:1]
	header[zautic.MessageEventTypeHeader] = values[1:2:2]
	header[zautic.MessageEventIDHeader] = values[2:3:3]
	header[zautic.MessageTimestampHeader] = values[3:4:4]
	header["Content-Type"] = values[4:5:5]
	if d.deliveryID != "" {
		header[zautic.MessageDeliveryIDHeader] = values[5:6:6]
	}
	return header
}

// answer writes {"status":…} and, for a published event, its subject,
// stream and sequence. It is built by hand, since it is written once per
// event: the outcome is a constant, the subject is made of validated tokens,
// and the stream name, which the PubAck repeats (publish expects it), is
// quoted once by NewHandler.
func (h *Handler) answer(c echo.Context, d *delivery) error {
	buf := answerBuffers.Get().(*[]byte)
	defer answerBuffers.Put(buf) // Write has copied it into the connection's buffer
	b := (*buf)[:0]
	b = append(b, `{"status":"`...)
	b = append(b, d.outcome...)
	b = append(b, '"')
	if d.outcome == telemetry.OutcomePublished {
		b = append(b, `,"subject":"`...)
		b = append(b, d.subject...)
		b = append(b, `","stream":`...)
		b = append(b, h.streamJSON...)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, d.ack.Seq, 10)
	}
	b = append(b, "}\n"...)
	res := c.Response()
	// One shared value instead of Header().Set's canonicalization and slice.
	res.Header()[echo.HeaderContentType] = jsonContentType
	res.WriteHeader(http.StatusOK)
	_, err := res.Write(b)
	*buf = b
	return err
}

// answerBuffers recycles the answers' bytes: a stream name and subject of
// ordinary length fit in 128 bytes, a longer one grows its buffer once.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// jsonContentType is the Content-Type of every answer; never modified.
var jsonContentType = []string{echo.MIMEApplicationJSON}

// record writes the one log line and the metrics of a delivery.
func (h *Handler) record(ctx context.Context, d *delivery, err error, took time.Duration) {
	outcome, reason := d.outcome, ""
	if err != nil {
		r := classify(err)
		outcome, reason = r.outcome, r.reason
	}
	sc, sampled := h.sampledSpan(ctx)
	if sampled {
		h.metrics.RequestTraced(outcome, reason, took.Seconds(), sc)
	} else {
		h.metrics.Request(outcome, reason, took.Seconds())
	}
	line := h.log.Check(zap.InfoLevel, "delivery")
	if line == nil {
		return
	}
	// Room for seq, reason and the trace, recycled: the line is encoded when
	// Write returns, and nothing keeps the fields.
	buf := logFields.Get().(*[]zap.Field)
	defer func() { clear(*buf); logFields.Put(buf) }() // no string of this request stays reachable
	fields := (*buf)[:0]
	fields = append(fields,
		zap.String("request_id", d.requestID),
		zap.String("delivery_id", d.deliveryID),
		zap.String("event_id", d.event.ID),
		zap.String("type", d.event.Type),
		zap.String("subject", d.subject),
		zap.String("outcome", outcome),
		zap.Duration("duration", took),
	)
	if d.ack.Seq != 0 {
		fields = append(fields, zap.Uint64("seq", d.ack.Seq))
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
	if sampled {
		fields = append(fields, traceFields(sc)...)
	}
	line.Write(fields...)
	*buf = fields
}

// logFields recycles the fields of the delivery log lines.
var logFields = sync.Pool{New: func() any { f := make([]zap.Field, 0, 11); return &f }}

// allowed reports whether events.allow lets eventType through.
func (h *Handler) allowed(eventType string) bool {
	return h.allow == nil || h.allow[eventType]
}
