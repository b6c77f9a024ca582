package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StatusError is the ByStatus key of requests that got no HTTP answer.
const StatusError = "error"

// Summary is what a run did. Every request counts once, whatever its
// retries; ByStatus holds each request's final answer.
type Summary struct {
	// Sent is the number of requests, duplicates included.
	Sent int `json:"sent"`
	// Deliveries is the number of distinct delivery ids among them.
	Deliveries int `json:"deliveries"`
	// Duplicates is the number of requests that re-sent an earlier delivery.
	Duplicates int `json:"duplicates"`
	// Attempts counts every HTTP request made, retries included.
	Attempts int `json:"attempts"`
	// Retries is Attempts that repeated an unanswered or failed attempt.
	Retries int `json:"retries"`
	// OK is the number of requests whose final answer was a 2xx.
	OK int `json:"ok"`
	// Failed is the number of requests whose final answer was not a 2xx.
	Failed int `json:"failed"`
	// ByStatus counts final answers by HTTP status code, or StatusError.
	ByStatus map[string]int `json:"by_status"`
	// Elapsed is the time from the first request to the last answer.
	Elapsed time.Duration `json:"-"`
	// ElapsedSeconds is Elapsed for JSON.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// EventsPerSecond is Sent divided by Elapsed.
	EventsPerSecond float64 `json:"events_per_second"`
	// Latency describes the attempts that got an answer.
	Latency Latency `json:"latency_ms"`
	// FirstError is the first failure seen: a transport error, or a non-2xx
	// status with its body.
	FirstError string `json:"first_error,omitempty"`
	// Responses holds each request's final answer when Options.Capture is set.
	Responses []Response `json:"responses,omitempty"`
}

// Latency holds percentiles of the answered attempts (nearest rank).
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// latencyJSON is Latency in milliseconds, the unit people read latencies in.
type latencyJSON struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// MarshalJSON writes milliseconds, rounded to the microsecond.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(latencyJSON{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)})
}

// UnmarshalJSON reads what MarshalJSON wrote, so that a summary saved with
// --json can be read back.
func (l *Latency) UnmarshalJSON(raw []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	d := func(ms float64) time.Duration { return time.Duration(math.Round(ms * 1e6)) }
	*l = Latency{P50: d(j.P50), P90: d(j.P90), P99: d(j.P99), Max: d(j.Max)}
	return nil
}

// Response is the final answer to one request, kept with Options.Capture.
type Response struct {
	Request    int    `json:"request"`
	EventType  string `json:"event_type,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	DeliveryID string `json:"delivery_id"`
	Duplicate  bool   `json:"duplicate,omitempty"`
	Attempts   int    `json:"attempts"`
	Status     int    `json:"status,omitempty"`
	Body       string `json:"body,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Err returns nil when every request ended with a 2xx, or an error saying
// how many did not and why the first did not.
func (s Summary) Err() error {
	if s.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d requests got no 2xx; first: %s", s.Failed, s.Sent, s.FirstError)
}

// WriteText writes the summary for people.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sent:     %d requests (%d deliveries, %d duplicates), %d retries, in %s\n",
		s.Sent, s.Deliveries, s.Duplicates, s.Retries, s.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "status:   %s\n", formatStatuses(s.ByStatus))
	fmt.Fprintf(&b, "rate:     %.1f events/s\n", s.EventsPerSecond)
	l := s.Latency
	fmt.Fprintf(&b, "latency:  p50 %s  p90 %s  p99 %s  max %s\n", roundLatency(l.P50), roundLatency(l.P90), roundLatency(l.P99), roundLatency(l.Max))
	fmt.Fprintf(&b, "result:   %d ok, %d failed\n", s.OK, s.Failed)
	if s.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", s.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatStatuses(byStatus map[string]int) string {
	if len(byStatus) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(byStatus))
	for _, k := range slices.Sorted(maps.Keys(byStatus)) {
		parts = append(parts, k+"="+strconv.Itoa(byStatus[k]))
	}
	return strings.Join(parts, " ")
}

func roundLatency(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// workerStats is one worker's tally, merged once at the end so that workers
// share nothing while they run.
type workerStats struct {
	latencies  []time.Duration
	byStatus   map[string]int
	sent       int
	deliveries int
	duplicates int
	attempts   int
	retries    int
	ok         int
	failed     int
	firstErr   string
	responses  []Response
}

func (st *workerStats) record(i int, del *delivery, duplicate bool, res result, capture bool) {
	st.sent++
	if duplicate {
		st.duplicates++
	} else {
		st.deliveries++
	}
	key := StatusError
	if res.err == nil {
		key = strconv.Itoa(res.status)
	}
	st.byStatus[key]++
	if res.err == nil && res.ok() {
		st.ok++
	} else {
		st.failed++
		if st.firstErr == "" {
			st.firstErr = describeFailure(res)
		}
	}
	if capture {
		st.responses = append(st.responses, newResponse(i, del, duplicate, res))
	}
}

func describeFailure(res result) string {
	if res.err != nil {
		return res.err.Error()
	}
	body := strings.TrimSpace(string(res.body))
	if body == "" {
		return "HTTP " + strconv.Itoa(res.status)
	}
	return "HTTP " + strconv.Itoa(res.status) + ": " + body
}

func newResponse(i int, del *delivery, duplicate bool, res result) Response {
	r := Response{Request: i, Duplicate: duplicate, Attempts: res.attempts, Status: res.status, Body: string(res.body)}
	if del != nil {
		r.EventType, r.EventID, r.DeliveryID = del.eventType, del.eventID, del.deliveryID
	}
	if res.err != nil {
		r.Error = res.err.Error()
	}
	return r
}

// summarize merges the workers' tallies.
func summarize(stats []workerStats, elapsed time.Duration) Summary {
	s := Summary{ByStatus: map[string]int{}, Elapsed: elapsed, ElapsedSeconds: elapsed.Seconds()}
	var latencies []time.Duration
	for _, st := range stats {
		s.Sent += st.sent
		s.Deliveries += st.deliveries
		s.Duplicates += st.duplicates
		s.Attempts += st.attempts
		s.Retries += st.retries
		s.OK += st.ok
		s.Failed += st.failed
		for k, v := range st.byStatus {
			s.ByStatus[k] += v
		}
		if s.FirstError == "" {
			s.FirstError = st.firstErr
		}
		latencies = append(latencies, st.latencies...)
		s.Responses = append(s.Responses, st.responses...)
	}
	slices.SortFunc(s.Responses, func(a, b Response) int { return a.Request - b.Request })
	if elapsed > 0 {
		s.EventsPerSecond = float64(s.Sent) / elapsed.Seconds()
	}
	s.Latency = latencySummary(latencies)
	return s
}

func latencySummary(latencies []time.Duration) Latency {
	if len(latencies) == 0 {
		return Latency{}
	}
	slices.Sort(latencies)
	return Latency{
		P50: Percentile(latencies, 50),
		P90: Percentile(latencies, 90),
		P99: Percentile(latencies, 99),
		Max: latencies[len(latencies)-1],
	}
}

// Percentile returns the nearest-rank p-th percentile of sorted, which must
// be sorted ascending; zero when it is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
