package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// loadResult is what a load generator measured.
type loadResult struct {
	ok       int // requests answered 2xx (or publishes acknowledged)
	failed   int
	elapsed  time.Duration
	perSec   float64
	p50, p99 time.Duration
	max      time.Duration
}

func newLoadResult(latencies []time.Duration, failed int, elapsed time.Duration) loadResult {
	slices.Sort(latencies)
	r := loadResult{ok: len(latencies), failed: failed, elapsed: elapsed}
	if elapsed > 0 {
		r.perSec = float64(r.ok) / elapsed.Seconds()
	}
	if n := len(latencies); n > 0 {
		r.p50, r.p99, r.max = latencies[n*50/100], latencies[min(n-1, n*99/100)], latencies[n-1]
	}
	return r
}

// sampleBody is the quickstart's sample event, compact: 290 bytes (about
// 350 as the quickstart prints it).
func sampleBody() []byte {
	return []byte(`{"id":"evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b","type":"message.delivered","created":1767432000,` +
		`"created_at":"2026-01-03T00:00:00.000Z","livemode":true,"data":{"object":{"message_id":"3EB0DC15F6ACF859FB492F",` +
		`"phone":"919876543210","device_id":114,"status":"delivered","direction":"outgoing"}}}`)
}

func printReport(w io.Writer, opts options, results []rowResult, nodeNote string) {
	fmt.Fprintf(w, "Machine: %s\n", machine())
	fmt.Fprintf(w, "Date: %s; %s per row in %d rounds, the rows of each cell in turn, after a %s warm-up; p50 and p99: the medians of the rounds'; load generator: zautic-forwarder send, a new %s event (event id and delivery id) per request (row A: in-process publishers of the quickstart's sample event, %d bytes)\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), opts.duration, opts.rounds, opts.warmup, benchEventType, len(sampleBody()))
	fmt.Fprintln(w, "| row | clients | sync | events/s | p50 | p99 | max | failed | receiver CPU µs/event | nats-server CPU µs/event | peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		sync := r.sync
		if sync == "" {
			sync = "—"
		}
		if r.skipped != "" {
			fmt.Fprintf(w, "| %s | %d | %s | skipped | | | | | | | |\n", r.row, r.clients, sync)
			continue
		}
		rss := ""
		if r.peakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.peakRSS)/(1<<20))
		}
		recv := "—"
		if r.receiverName != "" {
			recv = fmt.Sprintf("%.0f", r.cpuPerEvent(r.receiverCPU))
		}
		nats := fmt.Sprintf("%.0f", r.cpuPerEvent(r.natsCPU))
		if !r.hasOwnNATS() {
			nats = "—"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %s | %d | %s | %s | %s |\n", r.row, r.clients, sync, r.load.perSec,
			ms(r.load.p50), ms(r.load.p99), ms(r.load.max), r.load.failed, recv, nats, rss)
	}
	fmt.Fprintln(w)
	for _, row := range rowOrder {
		if slices.Contains(opts.rows, row.id) {
			fmt.Fprintf(w, "- %s: %s\n", row.id, row.label)
		}
	}
	if nodeNote != "" {
		fmt.Fprintf(w, "- %s\n", nodeNote)
	}
	fmt.Fprintln(w, "- sync: the `sync_interval` of the nats-server (rows A, M, MA, C) and of the embedded one (CE): `always` fsyncs before every PubAck; a duration flushes that often in the background")
	fmt.Fprintln(w)
	printRatios(w, opts, results)
}

// ratio is a / b to two decimals, n/a when b is 0.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

func printRatios(w io.Writer, opts options, results []rowResult) {
	// Rows that do not store (B, D) have no sync mode and match any.
	find := func(id string, clients int, sync string) *rowResult {
		for i := range results {
			r := &results[i]
			if r.row == id && r.clients == clients && (r.sync == "" || r.sync == sync) && r.skipped == "" {
				return r
			}
		}
		return nil
	}
	// Each pair of rows, side by side: events/s, CPU per event (receiver +
	// nats-server) and p99, each as a ratio of the first row's to the second's,
	// so that the tax is one number in every run.
	pairs := [][2]string{{"C", "M"}, {"MA", "M"}, {"C", "MA"}, {"C", "B"}, {"C", "D"}, {"M", "A"}, {"CE", "M"}}
	fmt.Fprintln(w, "| clients | sync | pair | events/s ratio | CPU µs/event ratio (receiver + nats-server) | p99 ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, c := range opts.clients {
		for _, s := range opts.syncModes {
			for _, p := range pairs {
				a, b := find(p[0], c, s), find(p[1], c, s)
				if a == nil || b == nil {
					continue
				}
				fmt.Fprintf(w, "| %d | %s | %s/%s | %s | %s | %s |\n", c, s, p[0], p[1],
					ratio(a.load.perSec, b.load.perSec), ratio(a.totalCPUPerEvent(), b.totalCPUPerEvent()),
					ratio(float64(a.load.p99), float64(b.load.p99)))
			}
		}
	}
	var notes []string
	for _, r := range results {
		if r.skipped != "" {
			notes = append(notes, r.skipped)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\n"+strings.Join(slices.Compact(notes), "\n"))
	}
}
