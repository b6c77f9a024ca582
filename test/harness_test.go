// Package test holds end-to-end tests: they build the real zautic-forwarder
// binary, start it as a process against real nats-servers (in-process
// library servers with JetStream in temp dirs, or the binary's embedded one),
// and talk to it over loopback HTTP.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// testSecret signs every request unless a test says otherwise.
const testSecret = "e2e-secret"

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zautic-forwarder-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "zautic-forwarder")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build zautic-forwarder:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// natsPort is the port a started server listens on, for restarting it on
// the same address.
func natsPort(ns *server.Server) int {
	return ns.Addr().(*net.TCPAddr).Port
}

// forwarderProcess is a running zautic-forwarder binary.
type forwarderProcess struct {
	cmd        *exec.Cmd
	WebhookURL string
	AdminURL   string
	NATSURL    string // the embedded server's URL, when embedded
	logs       *lockedBuffer
	addrs      chan map[string]string
	done       chan struct{}
	exitErr    error
}

// forwarderEnv is the base environment of a forwarder under test: loopback
// listeners on free ports, the test secret, JSON logs at info.
func forwarderEnv(natsURL string) map[string]string {
	return map[string]string{
		"FORWARDER_HTTP_ADDR":  "127.0.0.1:0",
		"FORWARDER_ADMIN_ADDR": "127.0.0.1:0",
		"FORWARDER_NATS_URL":   natsURL,
		"FORWARDER_LOG_LEVEL":  "info",
		zautic.SecretEnv:       testSecret,
	}
}

// startForwarder starts the binary with env (and args) and waits until it
// logged its listener addresses. It is stopped with SIGKILL at cleanup if a
// test has not stopped it.
func startForwarder(t testing.TB, env map[string]string, args ...string) *forwarderProcess {
	t.Helper()
	p := launchForwarder(t, env, args...)
	select {
	case a := <-p.addrs:
		p.WebhookURL = "http://" + a["webhook"] + "/webhooks/zautic"
		p.AdminURL = "http://" + a["admin"]
		p.NATSURL = a["nats"]
	case <-p.done:
		t.Fatalf("forwarder exited at start: %v\n%s", p.exitErr, p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("forwarder did not report its listeners within 30s:\n%s", p.logs.String())
	}
	return p
}

// launchForwarder starts the binary without waiting for its listeners.
func launchForwarder(t testing.TB, env map[string]string, args ...string) *forwarderProcess {
	t.Helper()
	p := &forwarderProcess{logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.cmd.Dir}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start forwarder: %v", err)
	}
	p.addrs = make(chan map[string]string, 1)
	logsDone := make(chan struct{})
	go func() {
		p.readLogs(stderr, p.addrs)
		close(logsDone)
	}()
	go func() {
		<-logsDone // Wait closes the pipe: read it to the end first
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("forwarder logs:\n%s", p.logs.String())
		}
	})
	return p
}

// readLogs copies the process's JSON log lines and reports the listener
// addresses once both are known.
func (p *forwarderProcess) readLogs(r io.Reader, addrs chan<- map[string]string) {
	found := map[string]string{}
	sent := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = p.logs.Write(append(line, '\n'))
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
			URL  string `json:"url"`
		}
		if sent || json.Unmarshal(line, &entry) != nil {
			continue
		}
		switch entry.Msg {
		case "webhook listener started":
			found["webhook"] = entry.Addr
		case "admin listener started":
			found["admin"] = entry.Addr
		case "embedded nats-server started":
			found["nats"] = entry.URL
		}
		if found["webhook"] != "" && found["admin"] != "" {
			addrs <- found
			sent = true
		}
	}
}

// Signal sends sig to the process.
func (p *forwarderProcess) Signal(sig os.Signal) {
	_ = p.cmd.Process.Signal(sig)
}

// Kill stops the process with SIGKILL and waits for it.
func (p *forwarderProcess) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Wait waits for the process to exit and returns its exit code.
func (p *forwarderProcess) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("forwarder did not exit within %s", timeout)
		return -1
	}
}

// WaitReady polls /readyz until it answers 200.
func (p *forwarderProcess) WaitReady(t testing.TB) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(p.AdminURL + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
		}
		return nil
	})
}

// Logs returns everything the process logged so far.
func (p *forwarderProcess) Logs() string { return p.logs.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sampleEvent is a Zautic event of the given id and type, shaped like the
// quickstart's sample.
func sampleEvent(id, eventType string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + eventType + `","created":1767432000,` +
		`"created_at":"2026-01-03T00:00:00.000Z","livemode":true,"data":{"object":{"message_id":"3EB0DC15F6ACF859FB492F",` +
		`"phone":"919876543210","device_id":114,"status":"delivered","direction":"outgoing"}}}`)
}

// webhook is one request to send; zero values mean "sign it properly now".
type webhook struct {
	body       []byte
	deliveryID string
	signature  string // overrides the computed signature when set
	headers    map[string]string
}

// newRequest builds the signed POST Zautic would send.
func newRequest(t testing.TB, url string, w webhook) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(w.body))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	sig := w.signature
	if sig == "" {
		sig = zautic.Sign([]byte(testSecret), ts, w.body)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(zautic.RequestSignatureHeader, sig)
	req.Header.Set(zautic.RequestTimestampHeader, strconv.FormatInt(ts, 10))
	if w.deliveryID != "" {
		req.Header.Set(zautic.RequestDeliveryIDHeader, w.deliveryID)
	}
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	return req
}

// response is a decoded answer of the forwarder.
type response struct {
	Status     int
	RetryAfter string
	Body       map[string]any
}

// do sends req and decodes the JSON answer.
func do(t testing.TB, client *http.Client, req *http.Request) (response, error) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	return decodeResponse(resp)
}

// decodeResponse reads and closes resp, whose body must be JSON.
func decodeResponse(resp *http.Response) (response, error) {
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		return r, fmt.Errorf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return r, nil
}

// send signs and posts one webhook and fails the test on a transport error.
func send(t testing.TB, url string, w webhook) response {
	t.Helper()
	r, err := do(t, http.DefaultClient, newRequest(t, url, w))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	return r
}

// connect opens a NATS connection closed at cleanup.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// streamMessages reads every message of the stream, in order.
func streamMessages(t testing.TB, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	var msgs []jetstream.Msg
	// A cluster node that has just come back may not answer for a moment:
	// read the whole stream again until one read succeeds.
	natstest.CheckFor(t, 60*time.Second, 250*time.Millisecond, func() error {
		var err error
		msgs, err = readStream(js, stream)
		return err
	})
	return msgs
}

func readStream(js jetstream.JetStream, stream string) ([]jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	total := s.CachedInfo().State.Msgs
	if total == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	var msgs []jetstream.Msg
	for uint64(len(msgs)) < total {
		batch, err := cons.Fetch(int(min(total-uint64(len(msgs)), 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			n++
		}
		if err := batch.Error(); err != nil && n == 0 {
			return nil, fmt.Errorf("fetch after %d of %d messages: %w", len(msgs), total, err)
		}
	}
	return msgs, nil
}

// countByEventID counts the stream's messages per Zautic-Event-Id header.
func countByEventID(msgs []jetstream.Msg) map[string]int {
	counts := map[string]int{}
	for _, m := range msgs {
		counts[m.Headers().Get(zautic.MessageEventIDHeader)]++
	}
	return counts
}

// trimmed keeps log excerpts in failure messages short.
func trimmed(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// freeAddr returns a loopback address whose port was free a moment ago, for
// a process that must come back on the same address after a restart.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
