package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// userAgent tells the receiver's logs that these are simulated requests.
const userAgent = "zautic-forwarder-simulator"

// maxPrepared bounds the deliveries built and signed before a run starts;
// longer runs build the rest as they go, at a few microseconds each.
const maxPrepared = 200_000

// resignAfter is the age after which a prepared signature is renewed, well
// inside the forwarder's default five-minute tolerance.
const resignAfter = time.Minute

// maxCapturedBody bounds each response body kept with Options.Capture.
const maxCapturedBody = 64 << 10

// HTTPDoer sends one request; *http.Client implements it.
type HTTPDoer interface {
	Do(req *http.Request) (*http.Response, error)
}

// NewHTTPClient returns a client whose keep-alive pool holds one connection
// per worker, so that a load run reuses connections instead of dialling.
func NewHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(concurrency, 1)
	tr.MaxIdleConnsPerHost = max(concurrency, 1)
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Runner sends a planned run of signed webhooks. Build it with NewRunner,
// which prepares the bodies, and call Run once.
type Runner struct {
	opts     Options
	types    []string
	plan     plan
	fixed    fixedBody
	prepared []*delivery
}

// delivery is one signed request, ready to send; attempts share it read-only.
type delivery struct {
	eventType  string
	eventID    string
	deliveryID string
	body       []byte
	header     http.Header
	signedAt   time.Time
}

// fixedBody is what can be read from Options.Body; a body that is not an
// event is still sent, without X-Zautic-Event.
type fixedBody struct {
	eventType string
	eventID   string
}

// NewRunner validates opts and builds and signs the run's deliveries (up to
// a bound), so that Run measures sending only. Invalid options wrap
// ErrInvalidOption; unknown types wrap ErrUnknownType.
func NewRunner(opts Options) (*Runner, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := &Runner{opts: opts, plan: plan{fraction: opts.Duplicates, seed: opts.Generator.seeds[3]}}
	if opts.Body != nil {
		r.fixed = parseFixedBody(opts.Body)
	} else {
		types, err := ExpandTypes(opts.Types)
		if err != nil {
			return nil, err
		}
		r.types = types
	}
	if r.opts.Count == 0 && r.opts.Duration == 0 {
		r.opts.Count = max(len(r.types), 1) // one per type; one of a fixed body
	}
	if r.opts.Client == nil {
		r.opts.Client = NewHTTPClient(opts.Concurrency, opts.Timeout)
	}
	return r, r.prepare()
}

func parseFixedBody(body []byte) fixedBody {
	var ev struct {
		ID   any `json:"id"`
		Type any `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	id, _ := ev.ID.(string)
	typ, _ := ev.Type.(string)
	return fixedBody{eventType: typ, eventID: id}
}

func (r *Runner) prepare() error {
	if r.opts.Count == 0 {
		return nil
	}
	distinct := r.plan.distinct(r.opts.Count)
	if distinct > maxPrepared {
		return nil
	}
	now := time.Now()
	r.prepared = make([]*delivery, distinct)
	for d := range r.prepared {
		del, err := r.build(d, now)
		if err != nil {
			return err
		}
		r.prepared[d] = del
	}
	return nil
}

// build makes delivery number d, signed at now.
func (r *Runner) build(d int, now time.Time) (*delivery, error) {
	g := r.opts.Generator
	del := &delivery{deliveryID: g.DeliveryID(uint64(d))}
	if r.opts.Body != nil {
		del.eventType, del.eventID, del.body = r.fixed.eventType, r.fixed.eventID, r.opts.Body
	} else {
		del.eventType = r.types[d%len(r.types)]
		del.eventID = g.EventID(uint64(d))
		body, err := g.Payload(del.eventType, uint64(d))
		if err != nil {
			return nil, err
		}
		del.body = body
	}
	r.sign(del, now)
	return del, nil
}

// sign sets the headers of del, signed at now with the verifier's code.
func (r *Runner) sign(del *delivery, now time.Time) {
	t := now.Unix()
	h := make(http.Header, 6)
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{userAgent}
	if del.eventType != "" {
		h[zautic.RequestEventHeader] = []string{del.eventType}
	}
	h[zautic.RequestDeliveryIDHeader] = []string{del.deliveryID}
	h[zautic.RequestTimestampHeader] = []string{strconv.FormatInt(t, 10)}
	h[zautic.RequestSignatureHeader] = []string{zautic.Sign(r.opts.Secret, t, del.body)}
	del.header, del.signedAt = h, now
}

// delivery returns delivery d with a signature young enough to pass.
func (r *Runner) delivery(d int) (*delivery, error) {
	now := time.Now()
	if d >= len(r.prepared) {
		return r.build(d, now)
	}
	return r.fresh(r.prepared[d], now), nil
}

// fresh returns del, or a re-signed copy once its signature is old.
func (r *Runner) fresh(del *delivery, now time.Time) *delivery {
	if now.Sub(del.signedAt) < resignAfter {
		return del
	}
	renewed := *del
	r.sign(&renewed, now)
	return &renewed
}

// Run sends the planned requests and returns what happened. It returns
// ctx's error, with the summary of what was sent, when ctx ends first.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	workers := r.opts.Concurrency
	if r.opts.Count > 0 {
		workers = min(workers, r.opts.Count)
	}
	var next atomic.Int64
	start := time.Now()
	sched := schedule{start: start, rate: r.opts.Rate}
	if r.opts.Duration > 0 {
		sched.deadline = start.Add(r.opts.Duration)
	}
	stats := make([]workerStats, workers)
	var wg sync.WaitGroup
	for w := range stats {
		wg.Go(func() { r.work(ctx, &next, sched, &stats[w]) })
	}
	wg.Wait()
	return summarize(stats, time.Since(start)), ctx.Err()
}

// schedule says when request i may start.
type schedule struct {
	start    time.Time
	rate     float64
	deadline time.Time // zero: none
}

func (s schedule) at(i int) time.Time {
	if s.rate <= 0 {
		return s.start
	}
	return s.start.Add(time.Duration(float64(i) / s.rate * float64(time.Second)))
}

// wait blocks until request i may start; false means it must not.
func (s schedule) wait(ctx context.Context, i int, timer *time.Timer) bool {
	at := s.at(i)
	if !s.deadline.IsZero() && (at.After(s.deadline) || time.Now().After(s.deadline)) {
		return false
	}
	if d := time.Until(at); d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
	return ctx.Err() == nil
}

func (r *Runner) work(ctx context.Context, next *atomic.Int64, sched schedule, st *workerStats) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	st.byStatus = map[string]int{}
	for {
		i := int(next.Add(1) - 1)
		if r.opts.Count > 0 && i >= r.opts.Count {
			return
		}
		if !sched.wait(ctx, i, timer) {
			return
		}
		r.send(ctx, i, st)
	}
}

// send delivers request i, retrying as configured, and records the outcome.
func (r *Runner) send(ctx context.Context, i int, st *workerStats) {
	d, duplicate := r.plan.delivery(i)
	del, err := r.delivery(d)
	res := result{err: err}
	if err == nil {
		res = r.deliver(ctx, del, st)
	}
	st.record(i, del, duplicate, res, r.opts.Capture)
}

// result is the final answer to one request, after its retries.
type result struct {
	status   int // 0 when no answer came
	body     []byte
	err      error
	attempts int
}

func (res result) ok() bool { return res.status >= 200 && res.status < 300 }

// retryable is Zautic's rule: 5xx, 429, timeouts and no answer are retried.
func (res result) retryable() bool {
	return res.err != nil || res.status >= 500 || res.status == http.StatusTooManyRequests
}

func (r *Runner) deliver(ctx context.Context, del *delivery, st *workerStats) result {
	for attempt := 0; ; attempt++ {
		res, retryAfter := r.attempt(ctx, del, st)
		res.attempts = attempt + 1
		if res.ok() || !res.retryable() || attempt >= r.opts.Retry.MaxRetries || ctx.Err() != nil {
			return res
		}
		st.retries++
		if !sleep(ctx, r.opts.Retry.wait(attempt, retryAfter)) {
			return res
		}
		del = r.fresh(del, time.Now())
	}
}

// attempt sends del once and returns the answer and its Retry-After.
func (r *Runner) attempt(ctx context.Context, del *delivery, st *workerStats) (result, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.opts.URL, bytes.NewReader(del.body))
	if err != nil {
		return result{err: err}, 0
	}
	req.Header = del.header
	start := time.Now()
	resp, err := r.opts.Client.Do(req)
	st.attempts++
	if err != nil {
		return result{err: err}, 0
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode}
	// Failures keep the start of their body: it says why.
	if r.opts.Capture || !res.ok() {
		res.body, err = io.ReadAll(io.LimitReader(resp.Body, maxCapturedBody))
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return result{err: fmt.Errorf("read answer %d: %w", resp.StatusCode, err)}, 0
	}
	st.latencies = append(st.latencies, time.Since(start))
	return res, retryAfter(resp.Header.Get("Retry-After"))
}

// retryAfter reads a Retry-After in seconds; dates and junk count as none.
func retryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(v)
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// wait is the pause before retry number attempt+1: exponential backoff with
// ±20% jitter, or the server's longer Retry-After, capped at MaxBackoff.
func (p RetryPolicy) wait(attempt int, retryAfter time.Duration) time.Duration {
	d := p.Backoff << min(attempt, 30)
	if d <= 0 || d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	d = max(d, retryAfter)
	return min(d, p.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
