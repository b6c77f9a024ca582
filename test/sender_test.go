package test

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

// zauticEvent is one event to deliver: its body, and the delivery id that
// every attempt and every copy of its delivery carries.
type zauticEvent struct {
	ID         string
	Type       string
	DeliveryID string
	Body       []byte
}

// newEvents returns n message.delivered events with ids "evt_<prefix>_<i>"
// and delivery ids "dlv_<prefix>_<i>".
func newEvents(prefix string, n int) []zauticEvent {
	events := make([]zauticEvent, n)
	for i := range events {
		id := fmt.Sprintf("evt_%s_%d", prefix, i)
		events[i] = zauticEvent{
			ID:         id,
			Type:       "message.delivered",
			DeliveryID: fmt.Sprintf("dlv_%s_%d", prefix, i),
			Body:       sampleEvent(id, "message.delivered"),
		}
	}
	return events
}

// Backoff bounds of the sender: short enough that a test rides out an
// outage quickly, long enough not to spin.
const (
	senderMinBackoff = 5 * time.Millisecond
	senderMaxBackoff = 200 * time.Millisecond
)

// sender delivers events the way Zautic does: a delivery is retried, with
// the same delivery id and a fresh signature, on a timeout, a transport
// error, 429 or 5xx, with jittered exponential backoff, until it is answered
// 2xx. Any other status ends the delivery, since Zautic does not retry it.
//
// Set the exported fields before Send; the counters may be read while Send
// runs, to time a fault to the progress of the load.
type sender struct {
	// URLs are the webhook URLs. The copies of an event go first to
	// different URLs (as far as there are enough), every retry to one picked
	// at random.
	URLs []string
	// Concurrency is the number of events in progress at once.
	Concurrency int
	// Copies delivers each event this many times at the same moment, as
	// independent deliveries with the same delivery id and their own
	// retries: 2 is "send to two at once", 3 a duplicate storm.
	Copies int
	// MaxAttempts bounds the attempts of one delivery.
	MaxAttempts int
	// Timeout bounds one attempt, as Zautic's own request timeout does.
	Timeout time.Duration

	acked   atomic.Int64 // deliveries answered 2xx
	refused atomic.Int64 // attempts answered 429 or 5xx, or not answered
}

// newSender returns a sender to urls with 32 events in flight and one copy
// of each.
func newSender(urls ...string) *sender {
	return &sender{URLs: urls, Concurrency: 32, Copies: 1, MaxAttempts: 2000, Timeout: 15 * time.Second}
}

// Acked is the number of deliveries answered 2xx so far.
func (s *sender) Acked() int64 { return s.acked.Load() }

// Refused is the number of attempts answered 429 or 5xx, or not answered,
// so far.
func (s *sender) Refused() int64 { return s.refused.Load() }

// sendReport is what one Send observed.
type sendReport struct {
	// Acked holds every event id that some attempt got a 2xx for.
	Acked map[string]bool
	// Failed lists, for each delivery that ended without a 2xx, the event id
	// and why.
	Failed []string
	// Statuses counts the answers of all attempts by status code.
	Statuses map[int]int
	// Outcomes counts the 2xx answers by their status field: published, or
	// duplicate for a delivery the forwarder had already stored.
	Outcomes map[string]int
	// TransportErrors counts attempts that got no HTTP answer.
	TransportErrors int
	// NoRetryAfter counts 429 and 503 answers without a Retry-After header.
	NoRetryAfter int
	// SlowestRefusal is the longest an attempt waited for a 429 or 5xx.
	SlowestRefusal time.Duration
}

// UnexpectedStatuses lists the status codes seen that are not in allowed.
func (r *sendReport) UnexpectedStatuses(allowed ...int) map[int]int {
	out := map[int]int{}
	for status, n := range r.Statuses {
		ok := false
		for _, a := range allowed {
			ok = ok || status == a
		}
		if !ok {
			out[status] = n
		}
	}
	return out
}

// Send delivers every event and returns when each delivery got a 2xx, was
// refused for good, ran out of attempts, or ctx ended.
func (s *sender) Send(ctx context.Context, events []zauticEvent) *sendReport {
	// One transport for the whole run, keeping a connection per request in
	// flight, so that connections are reused rather than churned.
	transport := &http.Transport{MaxIdleConnsPerHost: s.Concurrency * s.Copies}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	r := &sendReport{Acked: map[string]bool{}, Statuses: map[int]int{}, Outcomes: map[string]int{}}
	var mu sync.Mutex
	queue := make(chan zauticEvent)
	var workers sync.WaitGroup
	for range s.Concurrency {
		workers.Go(func() {
			for ev := range queue {
				s.sendCopies(ctx, client, ev, r, &mu)
			}
		})
	}
	for _, ev := range events {
		queue <- ev
	}
	close(queue)
	workers.Wait()
	return r
}

// sendCopies starts the copies of one event's delivery together, each to
// its own URL, and waits for all of them.
func (s *sender) sendCopies(ctx context.Context, client *http.Client, ev zauticEvent, r *sendReport, mu *sync.Mutex) {
	start := make(chan struct{})
	offset := rand.IntN(len(s.URLs))
	var copies sync.WaitGroup
	for i := range s.Copies {
		first := s.URLs[(offset+i)%len(s.URLs)]
		copies.Go(func() {
			<-start
			s.deliver(ctx, client, ev, first, r, mu)
		})
	}
	close(start)
	copies.Wait()
}

// deliver sends one delivery to url and retries it until it is answered 2xx
// or given up.
func (s *sender) deliver(ctx context.Context, client *http.Client, ev zauticEvent, url string, r *sendReport, mu *sync.Mutex) {
	backoff := senderMinBackoff
	for attempt := 1; attempt <= s.MaxAttempts; attempt++ {
		a := s.attempt(ctx, client, url, ev)
		mu.Lock()
		r.record(ev, a)
		mu.Unlock()
		switch {
		case a.status >= 200 && a.status < 300:
			s.acked.Add(1)
			return
		case a.retryable():
			s.refused.Add(1)
		default:
			r.fail(mu, ev, fmt.Sprintf("answered %d, which is not retried", a.status))
			return
		}
		if !sleepCtx(ctx, backoff/2+rand.N(backoff/2+1)) {
			r.fail(mu, ev, fmt.Sprintf("gave up after %d attempts: %v (last: %d %v)", attempt, ctx.Err(), a.status, a.err))
			return
		}
		backoff = min(2*backoff, senderMaxBackoff)
		url = s.URLs[rand.IntN(len(s.URLs))]
	}
	r.fail(mu, ev, fmt.Sprintf("no 2xx in %d attempts", s.MaxAttempts))
}

// attemptResult is the outcome of one HTTP request.
type attemptResult struct {
	status     int // 0 when no answer came
	outcome    string
	retryAfter string
	took       time.Duration
	err        error
}

// retryable reports whether Zautic would retry after this outcome.
func (a attemptResult) retryable() bool {
	return a.status == 0 || a.status == http.StatusTooManyRequests || a.status >= 500
}

func (r *sendReport) record(ev zauticEvent, a attemptResult) {
	switch {
	case a.status == 0:
		r.TransportErrors++
		return
	case a.status >= 200 && a.status < 300:
		r.Acked[ev.ID] = true
		r.Outcomes[a.outcome]++
	case a.status == http.StatusTooManyRequests || a.status >= 500:
		r.SlowestRefusal = max(r.SlowestRefusal, a.took)
		if a.retryAfter == "" && (a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable) {
			r.NoRetryAfter++
		}
	}
	r.Statuses[a.status]++
}

func (r *sendReport) fail(mu *sync.Mutex, ev zauticEvent, why string) {
	mu.Lock()
	defer mu.Unlock()
	r.Failed = append(r.Failed, ev.ID+": "+why)
}

// attempt sends one signed request for ev to url.
func (s *sender) attempt(ctx context.Context, client *http.Client, url string, ev zauticEvent) attemptResult {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Body))
	if err != nil {
		return attemptResult{err: err}
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(zautic.RequestEventHeader, ev.Type)
	req.Header.Set(zautic.RequestDeliveryIDHeader, ev.DeliveryID)
	req.Header.Set(zautic.RequestTimestampHeader, strconv.FormatInt(ts, 10))
	req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(testSecret), ts, ev.Body))
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return attemptResult{took: time.Since(start), err: err}
	}
	// Read to the end so that the connection is reused.
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	a := attemptResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start), err: err}
	var answer struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(raw, &answer) == nil {
		a.outcome = answer.Status
	}
	return a
}

// sleepCtx sleeps for d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
