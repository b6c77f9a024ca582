package test

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

const (
	// floodConns is how many hostile connections each flood opens.
	floodConns = 1000
	// floodPayload is what each hostile connection sends: a declared body,
	// or headers.
	floodPayload = 1 << 20
	// heldBack is what a hostile body keeps back, so that it never ends.
	heldBack = 100
	// peakLimit bounds the forwarder's peak resident memory under a flood.
	peakLimit = 160 << 20
	// ordinaryDuringFlood is how many signed deliveries are sent mid-flood.
	ordinaryDuringFlood = 50
	// floodBound bounds every read and write of the flood.
	floodBound = 90 * time.Second
)

// TestHostileLoadMemory floods the real binary, in its default
// configuration, with 1,000 connections that each hold a 1 MiB body back
// by its last bytes, then (in a fresh process) with 1,000 connections that
// each send 1 MiB of headers that never end. In each: the peak resident
// memory (VmHWM) stays under 160 MiB, /readyz stays 200, 50 signed
// deliveries sent during the flood are all answered 200 on their first try
// and published once, and no hostile request gets a 2xx. The flood of
// bodies runs three times more in one process under GOMEMLIMIT as the
// manifest sets it, which raises the collector's target (gc.go); its peak
// is checked against the container's memory limit, 256 MiB.
func TestHostileLoadMemory(t *testing.T) {
	raiseFileLimit(t, 3*floodConns)
	tests := []floodCase{
		{name: "1 MiB bodies held back by their last bytes", payload: heldBackBody(floodPayload), waitSent: true},
		{name: "1 MiB of headers that never end", payload: endlessHeaders},
	}
	// Bodies over http.max_body_bytes are refused by their Content-Length
	// alone; bodies at the limit are read, and fill the budget instead.
	maxBody := int(forwarder.DefaultConfig().HTTP.MaxBodyBytes)
	if maxBody != floodPayload {
		tests = append(tests, floodCase{name: "bodies of http.max_body_bytes held back by their last bytes", payload: heldBackBody(maxBody), waitSent: true})
	}
	// As deployed: under the manifest's GOMEMLIMIT the collector's target is
	// raised (gc.go), so the garbage of one flood may still be there at the
	// next: three floods in one process, and the peak under the container's
	// memory limit (256 MiB), which the sizing rule puts a quarter above
	// GOMEMLIMIT for this.
	tests = append(tests, floodCase{name: "three floods of bodies of http.max_body_bytes, GOMEMLIMIT as the Kubernetes manifest sets it",
		payload: heldBackBody(maxBody), waitSent: true,
		env: map[string]string{"GOMEMLIMIT": "200MiB"}, rounds: 3, peakLimit: 256 << 20})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := natstest.Start(t, "", 0)
			env := forwarderEnv(ns.ClientURL())
			maps.Copy(env, tt.env)
			p := startForwarder(t, env)
			p.WaitReady(t)
			_, js := connect(t, ns.ClientURL())

			var events []zauticEvent
			for round := range max(tt.rounds, 1) {
				events = append(events, floodRound(t, p, tt, fmt.Sprintf("flood-%d", round))...)
			}
			peak := peakRSS(t, p)
			t.Logf("peak resident memory (VmHWM): %.1f MiB", float64(peak)/(1<<20))
			limit := cmp.Or(tt.peakLimit, peakLimit)
			if peak >= limit {
				t.Errorf("peak resident memory: got %.1f MiB, want under %d MiB", float64(peak)/(1<<20), limit>>20)
			}
			requireReady(t, p)
			assertExactlyOnce(t, js, events)
		})
	}
}

// floodRound runs one flood of tt against p, sending ordinaryDuringFlood signed
// deliveries named prefix meanwhile, and returns them.
func floodRound(t *testing.T, p *forwarderProcess, tt floodCase, prefix string) []zauticEvent {
	t.Helper()
	sent, rest := tt.payload(p.WebhookURL)
	f := startFlood(t, hostOf(t, p.WebhookURL), sent, rest)
	if tt.waitSent {
		f.sent.Wait()
	}
	requireReady(t, p)
	events := newEvents(prefix, ordinaryDuringFlood)
	requireAllPublishedFirstTry(t, p, events)
	requireReady(t, p)
	f.finish()
	t.Logf("hostile answers by status (0: connection closed): %v", f.statuses)
	for status := range f.statuses {
		if !hostileAnswers[status] {
			t.Errorf("hostile request answered %d, want 429, 431, 413, 408, 400, 503 or a closed connection", status)
		}
	}
	return events
}

// floodCase is one flood of TestHostileLoadMemory.
type floodCase struct {
	name    string
	payload func(webhookURL string) (sent, rest []byte)
	// waitSent sends the ordinary deliveries once every hostile connection
	// has written (held bodies then fill their share of the budget), rather
	// than while they are still writing.
	waitSent bool
	// env is added to the forwarder's environment.
	env map[string]string
	// rounds is how many floods one process takes, one by default.
	rounds int
	// peakLimit, when set, replaces the package's peakLimit.
	peakLimit int64
}

// hostileAnswers are the answers a hostile request may get; 0 is a closed
// connection. A forged request the quarantine does not keep (over
// quarantine.rate, say) is answered 503, so that a genuine one would be
// retried; none is ever a 2xx.
var hostileAnswers = map[int]bool{
	0:                                      true,
	http.StatusBadRequest:                  true,
	http.StatusServiceUnavailable:          true,
	http.StatusRequestTimeout:              true,
	http.StatusRequestEntityTooLarge:       true,
	http.StatusTooManyRequests:             true,
	http.StatusRequestHeaderFieldsTooLarge: true,
}

// heldBackBody is a request declaring a body of size bytes with a forged
// signature, sent but for its last bytes.
func heldBackBody(size int) func(webhookURL string) (sent, rest []byte) {
	return func(webhookURL string) (sent, rest []byte) {
		u := strings.TrimPrefix(webhookURL, "http://")
		host, path, _ := strings.Cut(u, "/")
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, host)
		fmt.Fprintf(&b, "%s: t=%d,v1=%s\r\n", zautic.RequestSignatureHeader, time.Now().Unix(), strings.Repeat("0", 64))
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", size)
		b.Write(bytes.Repeat([]byte("x"), size))
		all := b.Bytes()
		return all[:len(all)-heldBack], all[len(all)-heldBack:]
	}
}

// endlessHeaders is a request line and 1 MiB of header lines without the
// blank line that would end them.
func endlessHeaders(webhookURL string) (sent, rest []byte) {
	u := strings.TrimPrefix(webhookURL, "http://")
	host, path, _ := strings.Cut(u, "/")
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST /%s HTTP/1.1\r\nHost: %s\r\n", path, host)
	value := strings.Repeat("h", 1000)
	for i := 0; b.Len() < floodPayload; i++ {
		fmt.Fprintf(&b, "X-Padding-%d: %s\r\n", i, value)
	}
	return b.Bytes(), nil
}

// flood is floodConns hostile connections, each writing the same bytes.
type flood struct {
	sent    sync.WaitGroup // every connection has written, or failed to
	done    sync.WaitGroup // every connection has its answer, or is closed
	release func()         // lets the held-back bytes go

	mu       sync.Mutex
	statuses map[int]int
}

// startFlood opens floodConns connections; each writes sent, then waits
// for its answer while, once released, writing rest. Every read and write
// is bounded by floodBound.
func startFlood(t *testing.T, addr string, sent, rest []byte) *flood {
	t.Helper()
	return startFloodOf(t, floodConns, addr, sent, rest)
}

// startFloodOf is startFlood with conns connections.
func startFloodOf(t *testing.T, floodConns int, addr string, sent, rest []byte) *flood {
	t.Helper()
	released := make(chan struct{})
	f := &flood{release: sync.OnceFunc(func() { close(released) }), statuses: map[int]int{}}
	t.Cleanup(func() {
		f.release()
		f.done.Wait()
	})
	f.sent.Add(floodConns)
	f.done.Add(floodConns)
	for range floodConns {
		go func() {
			defer f.done.Done()
			f.record(hostileRequest(addr, sent, rest, released, f.sent.Done))
		}()
	}
	return f
}

// hostileRequest runs one connection and returns the status of its answer,
// 0 when the connection closed without one.
func hostileRequest(addr string, sent, rest []byte, released <-chan struct{}, wrote func()) int {
	conn, err := net.DialTimeout("tcp", addr, floodBound)
	if err != nil {
		wrote()
		return 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(floodBound))
	answered := make(chan struct{})
	defer close(answered)
	go func() {
		_, err := conn.Write(sent)
		wrote()
		if err != nil || rest == nil {
			return
		}
		select {
		case <-released:
			_, _ = conn.Write(rest)
		case <-answered:
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (f *flood) record(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[status]++
}

// finish releases the held-back bytes and waits for every connection.
func (f *flood) finish() {
	f.release()
	f.done.Wait()
}

// requireReady fails unless /readyz answers 200.
func requireReady(t *testing.T, p *forwarderProcess) {
	t.Helper()
	status, body, err := readyz(p)
	if err != nil || status != http.StatusOK {
		t.Fatalf("readyz: got %d %s (err %v), want 200", status, body, err)
	}
}

// requireAllPublishedFirstTry sends every event at once, each on its own
// connection and once only, and requires 200 published for each.
func requireAllPublishedFirstTry(t *testing.T, p *forwarderProcess, events []zauticEvent) {
	t.Helper()
	client := &http.Client{Timeout: floodBound, Transport: &http.Transport{DisableKeepAlives: true}}
	requests := make([]*http.Request, len(events))
	for i, ev := range events {
		requests[i] = newRequest(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
	}
	answers := make([]string, len(events))
	var wg sync.WaitGroup
	for i, req := range requests {
		wg.Go(func() {
			resp, err := client.Do(req)
			if err != nil {
				answers[i] = err.Error()
				return
			}
			got, err := decodeResponse(resp)
			if err != nil || got.Status != http.StatusOK || got.Body["status"] != "published" {
				answers[i] = fmt.Sprintf("%d %v (err %v)", got.Status, got.Body, err)
			}
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a != "" {
			t.Errorf("delivery %s during the flood: got %s, want 200 published on the first try", events[i].ID, a)
		}
	}
}

// peakRSS reads the process's peak resident set size from
// /proc/<pid>/status.
func peakRSS(t *testing.T, p *forwarderProcess) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read the process status: %v", err)
	}
	for line := range strings.Lines(string(raw)) {
		if value, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", value, err)
			}
			return kib << 10
		}
	}
	t.Fatal("no VmHWM in the process status")
	return 0
}

// raiseFileLimit raises this process's open-file limit (inherited by the
// forwarder it starts) to at least n, within the hard limit.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("open-file hard limit %d is under the %d the flood needs", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raise the open-file limit to %d: %v", n, err)
	}
}
