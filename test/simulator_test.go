package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/simulator"
	"github.com/zautic/zautic-forwarder/zautic"
)

// commandResult is what a finished process printed and how it exited.
type commandResult struct {
	Stdout, Stderr string
	Code           int
}

// runBinary runs the forwarder binary with args and env added to a clean
// environment, and waits for it (60s at most).
func runBinary(t testing.TB, env map[string]string, stdin string, args ...string) commandResult {
	t.Helper()
	return runProgram(t, binary, env, stdin, args...)
}

// runProgram runs any program the way runBinary does.
func runProgram(t testing.TB, program string, env map[string]string, stdin string, args ...string) commandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = cleanEnv(t, env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s %v: %v", program, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish within 60s:\n%s%s", program, args, stdout.String(), stderr.String())
	}
	return commandResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// cleanEnv is PATH, a temporary HOME (so that no personal nats contexts or
// secrets leak in) and env.
func cleanEnv(t testing.TB, env map[string]string) []string {
	t.Helper()
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startEmbedded starts the binary with its embedded nats-server on a free
// port, and waits until it is ready.
func startEmbedded(t testing.TB, extra map[string]string) *forwarderProcess {
	t.Helper()
	env := forwarderEnv("")
	env["FORWARDER_NATS_EMBEDDED_LISTEN"] = "127.0.0.1:0"
	env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = t.TempDir()
	for k, v := range extra {
		env[k] = v
	}
	p := startForwarder(t, env)
	p.WaitReady(t)
	return p
}

// sendArgs are the arguments of "send" to p with the test secret.
func sendArgs(p *forwarderProcess, args ...string) []string {
	return append([]string{"send", "--url", p.WebhookURL, "--secret", testSecret}, args...)
}

// TestSendAllTypesOneMessagePerSubject is the simulator's promise: send
// --type all puts exactly one event of each documented type on its subject.
func TestSendAllTypesOneMessagePerSubject(t *testing.T) {
	p := startEmbedded(t, nil)
	res := runBinary(t, nil, "", sendArgs(p, "--type", "all")...)
	if res.Code != 0 {
		t.Fatalf("send --type all exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if !strings.Contains(res.Stdout, "sent:     23 requests (23 deliveries, 0 duplicates)") || !strings.Contains(res.Stdout, "status:   200=23") {
		t.Errorf("summary:\n%s", res.Stdout)
	}
	_, js := connect(t, p.NATSURL)
	msgs := streamMessages(t, js, "ZAUTIC")
	bySubject := map[string]jetstream.Msg{}
	for _, m := range msgs {
		if _, dup := bySubject[m.Subject()]; dup {
			t.Errorf("two messages on %s", m.Subject())
		}
		bySubject[m.Subject()] = m
	}
	if len(msgs) != len(zautic.DocumentedTypes()) {
		t.Errorf("stream holds %d messages, want %d", len(msgs), len(zautic.DocumentedTypes()))
	}
	for _, typ := range zautic.DocumentedTypes() {
		m, ok := bySubject["zautic."+typ]
		if !ok {
			t.Errorf("no message on zautic.%s", typ)
			continue
		}
		assertSimulatedMessage(t, m, typ)
	}
}

// assertSimulatedMessage checks a stored event against its headers.
func assertSimulatedMessage(t *testing.T, m jetstream.Msg, typ string) {
	t.Helper()
	ev, err := zautic.ParseEvent(m.Data())
	if err != nil {
		t.Errorf("%s: stored body is not an event: %v", typ, err)
		return
	}
	h := m.Headers()
	if ev.Type != typ || h.Get(zautic.MessageEventTypeHeader) != typ || h.Get(zautic.MessageEventIDHeader) != ev.ID {
		t.Errorf("%s: got type %q, headers %v", typ, ev.Type, h)
	}
	if id := h.Get(zautic.MessageDeliveryIDHeader); !strings.HasPrefix(id, "dlv_") || h.Get(zautic.MessageIDHeader) != id {
		t.Errorf("%s: got delivery id %q and Nats-Msg-Id %q, want the same dlv_ id", typ, id, h.Get(zautic.MessageIDHeader))
	}
}

func TestSendLoadWithDuplicates(t *testing.T) {
	p := startEmbedded(t, nil)
	res := runBinary(t, nil, "", sendArgs(p, "--type", "all", "--count", "200", "--concurrency", "8", "--duplicates", "0.25", "--json")...)
	if res.Code != 0 {
		t.Fatalf("send exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	var s simulator.Summary
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, res.Stdout)
	}
	if s.Sent != 200 || s.Deliveries != 150 || s.Duplicates != 50 || s.OK != 200 {
		t.Errorf("got %+v, want 200 sent, 150 deliveries, 50 duplicates, 200 ok", s)
	}
	if s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 || s.Latency.Max < s.Latency.P99 {
		t.Errorf("got latency %+v, want 0 < p50 <= p99 <= max", s.Latency)
	}
	_, js := connect(t, p.NATSURL)
	if msgs := streamMessages(t, js, "ZAUTIC"); len(msgs) != 150 {
		t.Errorf("stream holds %d messages, want one per delivery: 150", len(msgs))
	}
}

func TestSendErrorsExitNonZero(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + ln.Addr().String() + "/webhooks/zautic"
	_ = ln.Close()
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"unreachable URL", []string{"send", "--url", unreachable, "--secret", "s"}, "zautic-forwarder: cannot reach " + unreachable},
		{"unreachable URL, many", []string{"send", "--url", unreachable, "--secret", "s", "--type", "all"}, "connection refused"},
		{"no secret", []string{"send", "--url", unreachable}, "no webhook secret"},
		{"bad type", []string{"send", "--url", unreachable, "--secret", "s", "--type", "order.created"}, `unknown event type "order.created"`},
		{"bad duplicates", []string{"send", "--url", unreachable, "--secret", "s", "--duplicates", "2"}, "duplicates must be a fraction in [0, 1)"},
		{"unknown flag", []string{"send", "--bogus"}, "unknown flag: --bogus"},
		{"sign without secret", []string{"sign"}, "no webhook secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runBinary(t, nil, "{}", tt.args...)
			if res.Code != 1 || !strings.Contains(res.Stderr, tt.wantStderr) {
				t.Errorf("got exit %d, stderr %q; want 1 and %q", res.Code, res.Stderr, tt.wantStderr)
			}
		})
	}
}

func TestSignBinary(t *testing.T) {
	body := `{"id":"evt_sign","type":"webhook.test"}`
	res := runBinary(t, map[string]string{zautic.SecretEnv: "env-secret"}, body, "sign", "--timestamp", "1767432000")
	want := zautic.Sign([]byte("env-secret"), 1767432000, []byte(body)) + "\n"
	if res.Code != 0 || res.Stdout != want {
		t.Errorf("got exit %d, %q; want 0, %q", res.Code, res.Stdout, want)
	}
}

// TestSendRetryRidesOutNATSOutage is Zautic's retry contract end to end:
// while NATS is down the forwarder answers 503, send --retry keeps the
// delivery ids and tries again, and once NATS is back every event is stored
// exactly once.
func TestSendRetryRidesOutNATSOutage(t *testing.T) {
	storeDir := t.TempDir()
	ns := natstest.Start(t, storeDir, 0)
	port := natsPort(ns)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	natstest.Stop(ns)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error { return expectStatus(p.AdminURL+"/readyz", http.StatusServiceUnavailable) })

	cmd := exec.Command(binary, sendArgs(p, "--type", "all", "--concurrency", "4", "--retry", "--max-retries", "30", "--retry-backoff", "100ms", "--json")...)
	cmd.Env = cleanEnv(t, nil)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// Bring NATS back once the forwarder has turned requests away.
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error { return metricAbove(p.AdminURL, `outcome="unavailable"`, 0) })
	natstest.Start(t, storeDir, port)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("send --retry: %v\n%s%s", err, stdout.String(), stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("send --retry did not finish within 90s:\n%s", p.Logs())
	}
	var s simulator.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	if s.OK != 23 || s.Retries == 0 || s.ByStatus["200"] != 23 {
		t.Errorf("got ok %d, retries %d, by status %v; want 23 ok after some retries", s.OK, s.Retries, s.ByStatus)
	}
	_, js := connect(t, ns.ClientURL())
	counts := countByEventID(streamMessages(t, js, "ZAUTIC"))
	if len(counts) != 23 {
		t.Errorf("stream holds %d events, want 23", len(counts))
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("event %s stored %d times, want once", id, n)
		}
	}
}

func expectStatus(url string, want int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s: got %d, want %d", url, resp.StatusCode, want)
	}
	return nil
}

// metricAbove checks that the webhook_requests_total series whose labels
// contain label exceeds min.
func metricAbove(adminURL, label string, min float64) error {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(raw)) {
		if !strings.HasPrefix(line, "zautic_forwarder_webhook_requests_total{") || !strings.Contains(line, label) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil && v > min {
			return nil
		}
	}
	return fmt.Errorf("no webhook_requests_total{%s} above %v yet", label, min)
}
