package simulator

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of 100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100", ms(hundred...), 100, 100 * time.Millisecond},
		{"p0 is the minimum", ms(3, 4), 0, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSummarizeMergesWorkers(t *testing.T) {
	stats := []workerStats{
		{latencies: []time.Duration{3, 1}, byStatus: map[string]int{"200": 2}, sent: 2, deliveries: 2, attempts: 2, ok: 2},
		{latencies: []time.Duration{2}, byStatus: map[string]int{"200": 1, "error": 1}, sent: 2, deliveries: 1, duplicates: 1, attempts: 3, retries: 1, ok: 1, failed: 1, firstErr: "boom"},
	}
	s := summarize(stats, time.Second)
	if s.Sent != 4 || s.Deliveries != 3 || s.Duplicates != 1 || s.Attempts != 5 || s.Retries != 1 || s.OK != 3 || s.Failed != 1 {
		t.Errorf("got %+v", s)
	}
	if s.ByStatus["200"] != 3 || s.ByStatus["error"] != 1 || s.FirstError != "boom" {
		t.Errorf("got by status %v, first error %q", s.ByStatus, s.FirstError)
	}
	if s.Latency.P50 != 2 || s.Latency.Max != 3 || s.EventsPerSecond != 4 {
		t.Errorf("got latency %+v, %v events/s; want p50 2, max 3, 4/s", s.Latency, s.EventsPerSecond)
	}
}

func TestPlanSpreadsDuplicates(t *testing.T) {
	tests := []struct {
		fraction float64
		count    int
		distinct int
	}{
		{0, 10, 10},
		{0.5, 400, 200},
		{0.5, 401, 201},
		{0.1, 1000, 900},
		{0.99, 100, 1},
	}
	for _, tt := range tests {
		p := plan{fraction: tt.fraction, seed: 1}
		if got := p.distinct(tt.count); got != tt.distinct {
			t.Errorf("distinct(%d) at %v: got %d, want %d", tt.count, tt.fraction, got, tt.distinct)
		}
		next := 0
		for i := range tt.count {
			d, dup := p.delivery(i)
			switch {
			case !dup && d != next:
				t.Fatalf("fraction %v request %d: got new delivery %d, want %d", tt.fraction, i, d, next)
			case !dup:
				next++
			case d < 0 || d >= next:
				t.Fatalf("fraction %v request %d: duplicate of %d, want one of the %d sent before", tt.fraction, i, d, next)
			}
		}
		if next != tt.distinct {
			t.Errorf("fraction %v: %d new deliveries, want %d", tt.fraction, next, tt.distinct)
		}
	}
}
