package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

const testSecret = "sim-secret"

// receiver is a webhook endpoint that verifies every request with the
// forwarder's own verifier and remembers what it got.
type receiver struct {
	t         *testing.T
	failFirst int // answer 503 to the first failFirst attempts of each delivery

	mu       sync.Mutex
	attempts map[string]int    // by delivery id
	bodies   map[string][]byte // first body of each delivery id
	types    map[string]int    // by X-Zautic-Event
	requests int
	problems []string
}

func newReceiver(t *testing.T, failFirst int) (*receiver, string) {
	t.Helper()
	rc := &receiver{t: t, failFirst: failFirst, attempts: map[string]int{}, bodies: map[string][]byte{}, types: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL + "/webhooks/zautic"
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, err := zautic.VerifySignature(body, r.Header.Get(zautic.RequestSignatureHeader), [][]byte{[]byte(testSecret)}, 5*time.Minute, time.Now())
	if err != nil {
		http.Error(w, `{"error":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	id := r.Header.Get(zautic.RequestDeliveryIDHeader)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.check(r, body, ts.Timestamp)
	rc.requests++
	rc.attempts[id]++
	rc.types[r.Header.Get(zautic.RequestEventHeader)]++
	if first, ok := rc.bodies[id]; ok && !bytes.Equal(first, body) {
		rc.problems = append(rc.problems, "delivery "+id+" re-sent with another body")
	} else if !ok {
		rc.bodies[id] = body
	}
	if rc.attempts[id] <= rc.failFirst {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":"try later"}`, http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, `{"status":"published"}`)
}

// check notes every header that differs from what Zautic sends.
func (rc *receiver) check(r *http.Request, body []byte, ts int64) {
	ev, _ := zautic.ParseEvent(body)
	want := map[string]string{
		"Content-Type":                "application/json",
		zautic.RequestEventHeader:     ev.Type,
		zautic.RequestTimestampHeader: strconv.FormatInt(ts, 10),
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			rc.problems = append(rc.problems, k+": got "+got+", want "+v)
		}
	}
	if r.Header.Get(zautic.RequestDeliveryIDHeader) == "" {
		rc.problems = append(rc.problems, "no delivery id")
	}
}

func (rc *receiver) assertClean(t *testing.T) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.problems {
		t.Error(p)
	}
}

func newTestRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = []byte(testSecret)
	}
	r, err := NewRunner(opts)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	return r
}

func runOK(t *testing.T, opts Options) Summary {
	t.Helper()
	s, err := newTestRunner(t, opts).Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Err() != nil {
		t.Fatalf("summary: %v", s.Err())
	}
	return s
}

func TestRunnerSendsEveryTypeOnce(t *testing.T) {
	rc, url := newReceiver(t, 0)
	s := runOK(t, Options{URL: url, Types: []string{AllTypes}, Concurrency: 4})
	if s.Sent != 23 || s.OK != 23 || s.Deliveries != 23 || s.ByStatus["200"] != 23 || s.Attempts != 23 {
		t.Errorf("got %+v, want 23 requests, 23 ok, 23 deliveries, 23 attempts", s)
	}
	for _, typ := range zautic.DocumentedTypes() {
		if rc.types[typ] != 1 {
			t.Errorf("type %s: got %d requests, want 1", typ, rc.types[typ])
		}
	}
	rc.assertClean(t)
}

func TestRunnerRoundRobinCount(t *testing.T) {
	rc, url := newReceiver(t, 0)
	runOK(t, Options{URL: url, Types: []string{"message.sent", "message.read", "device.connected"}, Count: 10, Concurrency: 3})
	want := map[string]int{"message.sent": 4, "message.read": 3, "device.connected": 3}
	for typ, n := range want {
		if rc.types[typ] != n {
			t.Errorf("%s: got %d requests, want %d", typ, rc.types[typ], n)
		}
	}
	rc.assertClean(t)
}

func TestRunnerDuplicates(t *testing.T) {
	tests := []struct {
		name       string
		count      int
		duplicates float64
		distinct   int
	}{
		{"none", 40, 0, 40},
		{"half", 400, 0.5, 200},
		{"a quarter", 100, 0.25, 75},
		{"most", 50, 0.9, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, url := newReceiver(t, 0)
			s := runOK(t, Options{URL: url, Types: []string{"message.delivered"}, Count: tt.count, Concurrency: 8, Duplicates: tt.duplicates})
			if len(rc.attempts) != tt.distinct || rc.requests != tt.count {
				t.Errorf("receiver got %d requests for %d delivery ids, want %d for %d", rc.requests, len(rc.attempts), tt.count, tt.distinct)
			}
			if s.Deliveries != tt.distinct || s.Duplicates != tt.count-tt.distinct || s.OK != tt.count {
				t.Errorf("got %d deliveries, %d duplicates, %d ok, want %d, %d, %d", s.Deliveries, s.Duplicates, s.OK, tt.distinct, tt.count-tt.distinct, tt.count)
			}
			rc.assertClean(t)
		})
	}
}

func TestRunnerRetries(t *testing.T) {
	tests := []struct {
		name         string
		failFirst    int
		maxRetries   int
		wantOK       int
		wantRetries  int
		wantAttempts int
		wantStatus   string
	}{
		{"no retry configured", 1, 0, 0, 0, 5, "503"},
		{"retries until accepted", 2, 3, 5, 10, 15, "200"},
		{"gives up at the limit", 3, 2, 0, 10, 15, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, url := newReceiver(t, tt.failFirst)
			s, err := newTestRunner(t, Options{URL: url, Count: 5, Concurrency: 2,
				Retry: RetryPolicy{MaxRetries: tt.maxRetries, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if s.OK != tt.wantOK || s.Retries != tt.wantRetries || s.Attempts != tt.wantAttempts || s.ByStatus[tt.wantStatus] != 5 {
				t.Errorf("got ok %d, retries %d, attempts %d, by status %v; want %d, %d, %d, %s=5",
					s.OK, s.Retries, s.Attempts, s.ByStatus, tt.wantOK, tt.wantRetries, tt.wantAttempts, tt.wantStatus)
			}
			if (s.Err() == nil) != (tt.wantOK == 5) {
				t.Errorf("got Err() %v with %d ok of 5", s.Err(), s.OK)
			}
			if len(rc.attempts) != 5 {
				t.Errorf("got %d delivery ids, want 5: retries must reuse the delivery id", len(rc.attempts))
			}
			rc.assertClean(t)
		})
	}
}

func TestRunnerDoesNotRetryRejections(t *testing.T) {
	_, url := newReceiver(t, 0)
	s, err := newTestRunner(t, Options{URL: url, Secret: []byte("wrong"), Count: 3,
		Retry: RetryPolicy{MaxRetries: 5, Backoff: time.Millisecond}}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempts != 3 || s.Failed != 3 || s.ByStatus["400"] != 3 {
		t.Errorf("got attempts %d, failed %d, by status %v; want 3 attempts, 3 failed, 400=3", s.Attempts, s.Failed, s.ByStatus)
	}
	if !strings.Contains(s.FirstError, "HTTP 400") || !strings.Contains(s.FirstError, "signature") {
		t.Errorf("got first error %q, want the 400 and its reason", s.FirstError)
	}
}

func TestRunnerRetriesTimeouts(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-r.Context().Done() // hold the first attempt until the client gives up
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	s := runOK(t, Options{URL: srv.URL, Count: 1, Timeout: time.Second,
		Retry: RetryPolicy{MaxRetries: 3, Backoff: time.Millisecond}})
	// A busy machine may time out a later attempt too; the first always does.
	if s.Retries < 1 || s.Attempts != s.Retries+1 || s.OK != 1 {
		t.Errorf("got %d retries, %d attempts, %d ok; want the timed-out attempt retried to a 200", s.Retries, s.Attempts, s.OK)
	}
}

func TestRunnerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/webhooks/zautic"
	_ = ln.Close()
	s, err := newTestRunner(t, Options{URL: url, Count: 2}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 2 || s.ByStatus[StatusError] != 2 || s.Attempts != 2 {
		t.Errorf("got failed %d, by status %v, attempts %d; want 2 failed with no answer", s.Failed, s.ByStatus, s.Attempts)
	}
	if !strings.Contains(s.FirstError, "connection refused") || !strings.Contains(s.Err().Error(), "2 of 2 requests got no 2xx") {
		t.Errorf("got %q / %v, want connection refused and a count", s.FirstError, s.Err())
	}
}

func TestRunnerRateAndDuration(t *testing.T) {
	rc, url := newReceiver(t, 0)
	// The rate limiter guarantees a lower bound on the elapsed time.
	s := runOK(t, Options{URL: url, Count: 5, Concurrency: 5, Rate: 50})
	if s.Elapsed < 80*time.Millisecond {
		t.Errorf("5 requests at 50/s took %s, want at least 80ms", s.Elapsed)
	}
	// Duration without count: as many as the rate allows in that time.
	s = runOK(t, Options{URL: url, Duration: 300 * time.Millisecond, Rate: 20, Concurrency: 2})
	if s.Sent < 1 || s.Sent > 7 {
		t.Errorf("300ms at 20/s sent %d requests, want 1 to 7", s.Sent)
	}
	rc.assertClean(t)
}

// TestScheduleAdmitsRateTimesDuration counts the requests a schedule
// starts: rate times duration, the deadline itself excluded.
func TestScheduleAdmitsRateTimesDuration(t *testing.T) {
	start := time.Unix(1767432000, 0)
	tests := []struct {
		rate     float64
		duration time.Duration
		want     int
	}{
		{20, 2 * time.Second, 40},
		{3, time.Second, 3},
		{0.5, 2 * time.Second, 1},
		{1000, 10 * time.Millisecond, 10},
	}
	for _, tt := range tests {
		s := schedule{start: start, rate: tt.rate, deadline: start.Add(tt.duration)}
		got := 0
		for i := 0; i < 10*tt.want+10 && s.admits(i); i++ {
			got++
		}
		if got != tt.want {
			t.Errorf("rate %v for %s: got %d requests, want %d", tt.rate, tt.duration, got, tt.want)
		}
	}
}

func TestRunnerCancelled(t *testing.T) {
	_, url := newReceiver(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := newTestRunner(t, Options{URL: url, Count: 100, Rate: 10}).Run(ctx)
	if !errors.Is(err, context.Canceled) || s.Sent != 0 {
		t.Errorf("got %d sent, error %v; want 0 and context.Canceled", s.Sent, err)
	}
}

func TestRunnerFixedBodyAndCapture(t *testing.T) {
	rc, url := newReceiver(t, 0)
	body := []byte(`{"id":"evt_own","type":"message.read","data":{"object":{}}}` + "\n")
	s := runOK(t, Options{URL: url, Body: body, Count: 3, Capture: true})
	if len(s.Responses) != 3 {
		t.Fatalf("got %d responses, want 3", len(s.Responses))
	}
	for i, r := range s.Responses {
		if r.Request != i || r.Status != 200 || r.EventType != "message.read" || r.EventID != "evt_own" || r.Body != `{"status":"published"}` {
			t.Errorf("response %d: got %+v", i, r)
		}
		if !bytes.Equal(rc.bodies[r.DeliveryID], body) {
			t.Errorf("body of %s: got %q, want the file unchanged", r.DeliveryID, rc.bodies[r.DeliveryID])
		}
	}
	if rc.types["message.read"] != 3 {
		t.Errorf("got X-Zautic-Event counts %v, want message.read=3", rc.types)
	}
}

func TestNewRunnerRejectsBadOptions(t *testing.T) {
	good := Options{URL: DefaultURL, Secret: []byte("s")}
	tests := []struct {
		name   string
		change func(*Options)
		want   error
		says   string
	}{
		{"relative url", func(o *Options) { o.URL = "/webhooks/zautic" }, ErrInvalidOption, "url"},
		{"ftp url", func(o *Options) { o.URL = "ftp://localhost/x" }, ErrInvalidOption, "url"},
		{"no secret", func(o *Options) { o.Secret = nil }, ErrInvalidOption, "secret"},
		{"negative count", func(o *Options) { o.Count = -1 }, ErrInvalidOption, "count"},
		{"negative concurrency", func(o *Options) { o.Concurrency = -2 }, ErrInvalidOption, "concurrency"},
		{"negative rate", func(o *Options) { o.Rate = -1 }, ErrInvalidOption, "rate"},
		{"NaN rate", func(o *Options) { o.Rate = math.NaN() }, ErrInvalidOption, "rate"},
		{"infinite rate", func(o *Options) { o.Rate = math.Inf(1) }, ErrInvalidOption, "rate"},
		{"rate too low to schedule", func(o *Options) { o.Rate = 1e-300 }, ErrInvalidOption, "rate must be 0 (unlimited) or at least 0.001"},
		{"duplicates of 1", func(o *Options) { o.Duplicates = 1 }, ErrInvalidOption, "duplicates"},
		{"negative duplicates", func(o *Options) { o.Duplicates = -0.1 }, ErrInvalidOption, "duplicates"},
		{"NaN duplicates", func(o *Options) { o.Duplicates = math.NaN() }, ErrInvalidOption, "duplicates"},
		{"negative retries", func(o *Options) { o.Retry.MaxRetries = -1 }, ErrInvalidOption, "retries"},
		{"unknown type", func(o *Options) { o.Types = []string{"message.bounced"} }, ErrUnknownType, "message.bounced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := good
			tt.change(&opts)
			_, err := NewRunner(opts)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("got %v, want %v naming %q", err, tt.want, tt.says)
			}
		})
	}
}

func TestFreshRenewsOldSignatures(t *testing.T) {
	r := newTestRunner(t, Options{URL: DefaultURL, Count: 1})
	del := r.prepared[0]
	if got := r.fresh(del, del.signedAt.Add(time.Second)); got != del {
		t.Errorf("a young signature was renewed")
	}
	later := del.signedAt.Add(2 * resignAfter)
	renewed := r.fresh(del, later)
	if renewed == del || renewed.header.Get(zautic.RequestTimestampHeader) != strconv.FormatInt(later.Unix(), 10) {
		t.Fatalf("got timestamp %q, want a copy signed at %d", renewed.header.Get(zautic.RequestTimestampHeader), later.Unix())
	}
	if _, err := zautic.VerifySignature(renewed.body, renewed.header.Get(zautic.RequestSignatureHeader), [][]byte{[]byte(testSecret)}, time.Minute, later); err != nil {
		t.Errorf("renewed signature does not verify: %v", err)
	}
	if del.header.Get(zautic.RequestTimestampHeader) == renewed.header.Get(zautic.RequestTimestampHeader) {
		t.Errorf("the shared prepared delivery was modified")
	}
}

func TestRetryWait(t *testing.T) {
	p := RetryPolicy{MaxRetries: 5, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	tests := []struct {
		attempt    int
		retryAfter time.Duration
		low, high  time.Duration
	}{
		{0, 0, 80 * time.Millisecond, 120 * time.Millisecond},
		{2, 0, 320 * time.Millisecond, 480 * time.Millisecond},
		{10, 0, 800 * time.Millisecond, time.Second},
		{0, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{0, time.Minute, time.Second, time.Second},
		{62, 0, 800 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 20 {
			if got := p.wait(tt.attempt, tt.retryAfter); got < tt.low || got > tt.high {
				t.Fatalf("wait(%d, %s): got %s, want %s to %s", tt.attempt, tt.retryAfter, got, tt.low, tt.high)
			}
		}
	}
}

func TestSummaryJSON(t *testing.T) {
	rc, url := newReceiver(t, 0)
	s := runOK(t, Options{URL: url, Count: 4})
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sent", "deliveries", "duplicates", "attempts", "retries", "ok", "failed", "by_status", "elapsed_seconds", "events_per_second", "latency_ms"} {
		if _, ok := got[k]; !ok {
			t.Errorf("summary JSON lacks %q: %s", k, raw)
		}
	}
	lat, _ := got["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("latency_ms.%s: got %v, want a positive number of milliseconds", k, lat[k])
		}
	}
	var back Summary
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("summary JSON does not read back: %v", err)
	}
	if diff := back.Latency.Max - s.Latency.Max; back.Sent != 4 || diff < -time.Microsecond || diff > time.Microsecond {
		t.Errorf("read back %d sent, max %s; want 4, %s", back.Sent, back.Latency.Max, s.Latency.Max)
	}
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sent:     4 requests (4 deliveries, 0 duplicates), 0 retries", "status:   200=4", "events/s", "p50", "p99", "max", "4 ok, 0 failed"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	rc.assertClean(t)
}

// BenchmarkRunner measures the generator alone, against a server that
// answers at once: the ceiling a load run can reach on this machine.
func BenchmarkRunner(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"status":"published"}`)
	}))
	b.Cleanup(srv.Close)
	r, err := NewRunner(Options{URL: srv.URL, Secret: []byte(testSecret), Types: []string{AllTypes}, Count: b.N, Concurrency: 16, Duplicates: 0.1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	s, err := r.Run(context.Background())
	if err != nil || s.Err() != nil {
		b.Fatalf("%v %v", err, s.Err())
	}
	b.ReportMetric(s.EventsPerSecond, "events/s")
}
