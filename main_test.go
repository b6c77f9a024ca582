package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/simulator"
	"github.com/zautic/zautic-forwarder/zautic"
)

const testSecret = "main-test-secret"

// runCommand runs the command line as main does and returns what it printed.
func runCommand(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = run(ctx, args, nil, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// clearSecretEnv keeps a developer's own secret out of the tests.
func clearSecretEnv(t *testing.T) {
	t.Helper()
	for _, name := range secretEnvVars() {
		// Unset, not empty: an empty variable counts as a value.
		t.Setenv(name, "")
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
}

// testForwarder is a real forwarder service on loopback, publishing to an
// in-process nats-server.
type testForwarder struct {
	URL string
	js  jetstream.JetStream
}

func startTestForwarder(t *testing.T) *testForwarder {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	cfg := forwarder.DefaultConfig()
	cfg.HTTP.Addr, cfg.Admin.Addr, cfg.NATS.URL = "127.0.0.1:0", "", ns.ClientURL()
	cfg.Webhook.Secret = testSecret
	svc, err := forwarder.Start(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("start forwarder: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = svc.Wait(ctx)
	})
	waitFor(t, 20*time.Second, svc.Ready)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return &testForwarder{URL: "http://" + svc.WebhookAddr() + cfg.HTTP.Path, js: js}
}

// subjects counts the stream's messages by subject.
func (f *testForwarder) subjects(t *testing.T) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.js.Stream(ctx, "ZAUTIC")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("zautic.>"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

func total(counts map[string]uint64) uint64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}

// waitFor polls fn until it returns nil or total elapses.
func waitFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not met after %s: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedURL is a loopback URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr + "/webhooks/zautic"
}

func TestVersion(t *testing.T) {
	out, _, err := runCommand(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	want := "zautic-forwarder dev (commit "
	if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, ", "+runtime.Version()+")\n") {
		t.Errorf("got %q, want %q…%s)", out, want, runtime.Version())
	}
	if _, _, err := runCommand(t, "", "version", "extra"); err == nil {
		t.Error("version with an argument: got no error, want one")
	}
}

func TestCheckConfig(t *testing.T) {
	emptySecrets := writeFile(t, "secrets", "\n")
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		wantErr string   // empty: success
		want    []string // in the output
	}{
		{
			name: "valid file",
			file: "webhook:\n  secret: file-secret-value\nlog:\n  level: debug\nnats:\n  url: nats://127.0.0.1:4222\n  user: nats-user\n  password: nats-password-value\n  token: nats-token-value\n",
			want: []string{"level: debug", "url: nats://127.0.0.1:4222", "[redacted]"},
		},
		{
			name: "secret from the environment",
			env:  map[string]string{zautic.SecretEnv: "env-secret-value"},
			want: []string{"secret: '[redacted]'"},
		},
		{
			name: "durability settings",
			env:  map[string]string{zautic.SecretEnv: "env-secret-value", "FORWARDER_DEDUP_REPAIR_WINDOW": "30m"},
			want: []string{"sync_interval: always", "repair_window: 30m0s", "repair_max: 100000"},
		},
		{
			name: "several secrets",
			file: "webhook:\n  secrets: [first-secret-value, second-secret-value]\n",
			want: []string{"[redacted] x2", "SHA-256): " + forwarder.KeyID([]byte("first-secret-value")) + ", " + forwarder.KeyID([]byte("second-secret-value"))},
		},
		{
			name: "flag beats the file",
			file: "webhook:\n  secret: file-secret-value\n",
			args: []string{"--http-addr", "127.0.0.1:9999"},
			want: []string{"addr: 127.0.0.1:9999"},
		},
		{
			name: "environment beats the file, flag beats the environment",
			file: "webhook:\n  secret: file-secret-value\nhttp:\n  addr: 127.0.0.1:1111\nadmin:\n  addr: 127.0.0.1:2222\n",
			env:  map[string]string{"FORWARDER_HTTP_ADDR": "127.0.0.1:7777", "FORWARDER_ADMIN_ADDR": "127.0.0.1:8888"},
			args: []string{"--http-addr", "127.0.0.1:9999"},
			want: []string{"addr: 127.0.0.1:9999", "addr: 127.0.0.1:8888"},
		},
		{
			name:    "invalid value names the key",
			file:    "webhook:\n  secret: file-secret-value\nlog:\n  level: loud\n",
			wantErr: "log.level must be debug, info, warn or error",
		},
		{
			name:    "invalid flag value",
			env:     map[string]string{zautic.SecretEnv: "env-secret-value"},
			args:    []string{"--http-addr", "nonsense"},
			wantErr: "http.addr must be host:port",
		},
		{name: "no secret", wantErr: "no webhook secret: set " + zautic.SecretEnv},
		{name: "secret of white space only", env: map[string]string{zautic.SecretEnv: "   "},
			wantErr: "no webhook secret: webhook.secret (also read from FORWARDER_WEBHOOK_SECRET and " + zautic.SecretEnv + ") is only white space"},
		{name: "endpoint secret of white space only", env: map[string]string{"FORWARDER_ENDPOINTS": "[{name: acme, secrets: ['  ']}]"},
			wantErr: "no webhook secret: endpoints[0].secrets is only white space"},
		{name: "empty secrets file", env: map[string]string{"FORWARDER_WEBHOOK_SECRETS_FILE": emptySecrets},
			wantErr: "no webhook secret: webhook.secrets_file " + emptySecrets + " is empty"},
		{name: "missing secrets file", env: map[string]string{"FORWARDER_WEBHOOK_SECRETS_FILE": "/nonexistent/secrets"},
			wantErr: "read webhook.secrets_file: open /nonexistent/secrets: no such file or directory"},
		{name: "prefixed secret variable emptied", env: map[string]string{"FORWARDER_WEBHOOK_SECRET": "", zautic.SecretEnv: "env-secret-value"},
			wantErr: "FORWARDER_WEBHOOK_SECRET is set but empty, which hides " + zautic.SecretEnv},
		{name: "missing file", args: []string{"--config", "/nonexistent/zautic.yaml"}, wantErr: "read config file"},
		{name: "unknown flag", args: []string{"--bogus"}, wantErr: "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearSecretEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"check-config"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeFile(t, "config.yaml", tt.file))
			}
			out, _, err := runCommand(t, "", args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got error %v, want one line containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{"file-secret-value", "env-secret-value", "first-secret-value", "second-secret-value", "nats-password-value", "nats-token-value"} {
				if strings.Contains(out, secret) {
					t.Errorf("output shows the secret %q:\n%s", secret, out)
				}
			}
		})
	}
}

func TestCheckConfigExitCode(t *testing.T) {
	clearSecretEnv(t)
	out, _, err := runCommand(t, "", "check-config", "--config", writeFile(t, "bad.yaml", "stream:\n  replicas: 9\n"))
	if err == nil || !errors.Is(err, forwarder.ErrInvalidConfig) || !strings.Contains(err.Error(), "stream.replicas") {
		t.Fatalf("got %v, want ErrInvalidConfig naming stream.replicas (main exits 1 on any error)", err)
	}
	if out != "" {
		t.Errorf("an invalid configuration printed %q, want nothing", out)
	}
}

func TestHelpListsFlagsWithDefaults(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"send", "sign", "check-config", "version", "serve", "--http-addr string", `(default ":8080")`}},
		{[]string{"serve", "--help"}, []string{"--config string", "--admin-addr string", `(default ":9090")`, `--log-level string`, `(default "info")`}},
		{[]string{"check-config", "--help"}, []string{"--config string", "--nats-url string"}},
		{[]string{"version", "--help"}, []string{"Print the version"}},
		{[]string{"send", "--help"}, []string{
			`--url string`, `(default "http://localhost:8080/webhooks/zautic")`, "--type strings", "(default [webhook.test])",
			"--count int", "--concurrency int", "(default 1)", "--rate float", "--duration duration", "--duplicates float",
			"--file string", "--retry", "--max-retries int", "(default 5)", "--retry-backoff duration", "(default 250ms)",
			"--timeout duration", "(default 10s)", "--json", "--secret string",
		}},
		{[]string{"sign", "--help"}, []string{"--secret string", "--timestamp int", "(0: now)", "--curl string", "--delivery-id string"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runCommand(t, "", tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestSign(t *testing.T) {
	clearSecretEnv(t)
	body := `{"id":"evt_1","type":"message.delivered"}` + "\n"
	out, _, err := runCommand(t, body, "sign", "--secret", "s3cret", "--timestamp", "1767432000")
	if err != nil {
		t.Fatal(err)
	}
	want := zautic.Sign([]byte("s3cret"), 1767432000, []byte(body)) + "\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	// Default timestamp: now, accepted by the verifier.
	t.Setenv(zautic.SecretEnv, "from-env")
	out, _, err = runCommand(t, body, "sign")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zautic.VerifySignature([]byte(body), strings.TrimSpace(out), [][]byte{[]byte("from-env")}, time.Minute, time.Now()); err != nil {
		t.Errorf("signature %q from $%s does not verify: %v", out, zautic.SecretEnv, err)
	}
}

func TestSignErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no secret", "{}", nil, "no webhook secret"},
		{"empty body", "", []string{"--secret", "s"}, "empty body"},
		{"negative timestamp", "{}", []string{"--secret", "s", "--timestamp", "-5"}, "--timestamp must be unix seconds"},
		{"timestamp not a number", "{}", []string{"--secret", "s", "--timestamp", "soon"}, `invalid argument "soon" for "--timestamp"`},
		{"unknown flag", "{}", []string{"--secret", "s", "--bogus"}, "unknown flag: --bogus"},
		{"argument", "{}", []string{"--secret", "s", "body.json"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearSecretEnv(t)
			_, _, err := runCommand(t, tt.stdin, append([]string{"sign"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestSignCurlIsAccepted runs the printed curl command against a real
// forwarder: the body it posts is the one that was signed.
func TestSignCurlIsAccepted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	clearSecretEnv(t)
	f := startTestForwarder(t)
	body := `{"id":"evt_curl_1","type":"contact.created","data":{"object":{"name":"O'Brien"}}}` + "\n"
	out, _, err := runCommand(t, body, "sign", "--secret", testSecret, "--curl", f.URL, "--delivery-id", "dlv_curl_1")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Zautic-Event: contact.created", "X-Zautic-Delivery-Id: dlv_curl_1", "X-Zautic-Timestamp: ", "X-Zautic-Signature: t=", "Content-Type: application/json"} {
		if !strings.Contains(out, h) {
			t.Errorf("curl command lacks %q:\n%s", h, out)
		}
	}
	answer, err := exec.Command("sh", "-c", out).CombinedOutput()
	if err != nil || !strings.Contains(string(answer), `"status":"published"`) || !strings.Contains(string(answer), "zautic.contact.created") {
		t.Fatalf("curl: got %v %s, want published on zautic.contact.created", err, answer)
	}
}

func TestSendOne(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	out, _, err := runCommand(t, "", "send", "--url", f.URL, "--secret", testSecret, "--type", "message.delivered")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	for _, w := range []string{"sent message.delivered evt_", "(delivery dlv_", "200 OK", `"status":"published"`, `"subject":"zautic.message.delivered"`} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if got := f.subjects(t); got["zautic.message.delivered"] != 1 || total(got) != 1 {
		t.Errorf("stream holds %v, want one zautic.message.delivered", got)
	}
}

func TestSendAllTypes(t *testing.T) {
	clearSecretEnv(t)
	t.Setenv(zautic.SecretEnv, testSecret)
	f := startTestForwarder(t)
	out, _, err := runCommand(t, "", "send", "--url", f.URL, "--type", "all", "--concurrency", "4")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if !strings.Contains(out, "sent:     23 requests (23 deliveries, 0 duplicates)") || !strings.Contains(out, "status:   200=23") {
		t.Errorf("summary:\n%s", out)
	}
	got := f.subjects(t)
	for _, typ := range zautic.DocumentedTypes() {
		if got["zautic."+typ] != 1 {
			t.Errorf("subject zautic.%s: got %d messages, want 1", typ, got["zautic."+typ])
		}
	}
	if total(got) != 23 {
		t.Errorf("stream holds %d messages, want 23", total(got))
	}
}

func TestSendDuplicatesJSON(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	out, _, err := runCommand(t, "", "send", "--url", f.URL, "--secret", testSecret, "--type", "message.sent,message.read",
		"--count", "60", "--duplicates", "0.5", "--concurrency", "6", "--json")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	var s simulator.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json output is not a summary: %v\n%s", err, out)
	}
	if s.Sent != 60 || s.Deliveries != 30 || s.Duplicates != 30 || s.OK != 60 || s.ByStatus["200"] != 60 {
		t.Errorf("got %+v, want 60 sent, 30 deliveries, 30 duplicates, 60 ok", s)
	}
	got := f.subjects(t)
	if got["zautic.message.sent"] != 15 || got["zautic.message.read"] != 15 || total(got) != 30 {
		t.Errorf("stream holds %v, want 15 of each type", got)
	}
}

func TestSendFile(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	body := `{"id":"evt_from_file","type":"group.created","data":{"object":{"group_id":7}}}`
	tests := []struct {
		name  string
		stdin string
		file  string
	}{
		{"from a file", "", writeFile(t, "event.json", body)},
		{"from standard input", body, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCommand(t, tt.stdin, "send", "--url", f.URL, "--secret", testSecret, "--file", tt.file)
			if err != nil {
				t.Fatalf("send: %v\n%s", err, out)
			}
			if !strings.Contains(out, "sent group.created evt_from_file") || !strings.Contains(out, "200 OK") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
	// Two deliveries of one event: the forwarder keys on the event id, so
	// the second is a duplicate.
	if got := f.subjects(t); got["zautic.group.created"] != 1 {
		t.Errorf("stream holds %v, want one zautic.group.created", got)
	}
}

// flakyFront answers 503 to the first attempt of every delivery and passes
// the rest to the real forwarder, as a briefly failing load balancer would.
func flakyFront(t *testing.T, target string) (string, func() int) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	var mu sync.Mutex
	seen := map[string]bool{}
	failed := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(zautic.RequestDeliveryIDHeader)
		mu.Lock()
		first := !seen[id]
		seen[id] = true
		if first {
			failed++
		}
		mu.Unlock()
		if first {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + u.Path, func() int { mu.Lock(); defer mu.Unlock(); return failed }
}

func TestSendRetry(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	front, failed := flakyFront(t, f.URL)
	base := []string{"send", "--url", front, "--secret", testSecret, "--type", "all", "--concurrency", "4"}

	out, _, err := runCommand(t, "", append(base, "--retry", "--retry-backoff", "1ms", "--json")...)
	if err != nil {
		t.Fatalf("send --retry: %v\n%s", err, out)
	}
	var s simulator.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.OK != 23 || s.Retries != 23 || s.Attempts != 46 || failed() != 23 {
		t.Errorf("got ok %d, retries %d, attempts %d, front failed %d; want 23, 23, 46, 23", s.OK, s.Retries, s.Attempts, failed())
	}
	if got := f.subjects(t); total(got) != 23 {
		t.Errorf("stream holds %d messages, want 23: a retry must not publish twice", total(got))
	}
}

func TestSendFailuresExitNonZero(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	front, _ := flakyFront(t, f.URL)
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{"503 without --retry", []string{"--url", front, "--secret", testSecret, "--count", "3"}, "3 of 3 requests got no 2xx", "status:   503=3"},
		{"wrong secret", []string{"--url", f.URL, "--secret", "wrong", "--count", "2"}, "2 of 2 requests got no 2xx; first: HTTP 400", "status:   400=2"},
		{"wrong secret, one event", []string{"--url", f.URL, "--secret", "wrong"}, "1 of 1 requests got no 2xx", "400 Bad Request"},
		{"unreachable URL", []string{"--url", closedURL(t), "--secret", testSecret}, "cannot reach http://127.0.0.1:", "connection refused"},
		{"unreachable URL, summary", []string{"--url", closedURL(t), "--secret", testSecret, "--count", "4", "--concurrency", "2"}, "(is the forwarder running?)", "status:   error=4"},
		{"unreachable URL with retries", []string{"--url", closedURL(t), "--secret", testSecret, "--retry", "--max-retries", "2", "--retry-backoff", "1ms"}, "connection refused", "3 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCommand(t, "", append([]string{"send"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
		})
	}
}

func TestSendBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown type", []string{"--type", "message.bounced"}, `--type: unknown event type "message.bounced"`},
		{"empty type", []string{"--type", ""}, "--type: unknown event type: empty type"},
		{"empty type among others", []string{"--type", "message.sent,,message.read"}, "--type: unknown event type: empty type"},
		{"duplicates too high", []string{"--duplicates", "1"}, "duplicates must be a fraction in [0, 1)"},
		{"duplicates negative", []string{"--duplicates", "-0.5"}, "duplicates must be a fraction in [0, 1)"},
		{"concurrency zero", []string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{"count negative", []string{"--count", "-3"}, "count must not be negative"},
		{"rate negative", []string{"--rate", "-1"}, "rate must not be negative"},
		{"rate NaN", []string{"--rate", "NaN"}, "rate must not be negative, and be a finite number"},
		{"rate infinite", []string{"--rate", "+Inf"}, "rate must not be negative, and be a finite number"},
		{"rate too low to schedule", []string{"--rate", "1e-300"}, "rate must be 0 (unlimited) or at least 0.001"},
		{"duplicates NaN", []string{"--duplicates", "NaN"}, "duplicates must be a fraction in [0, 1)"},
		{"rate not a number", []string{"--rate", "fast"}, `invalid argument "fast" for "--rate"`},
		{"duration not a duration", []string{"--duration", "10"}, `invalid argument "10" for "--duration"`},
		{"relative url", []string{"--url", "localhost:8080"}, "must be an absolute http or https URL"},
		{"missing file", []string{"--file", "/nonexistent/event.json"}, "--file /nonexistent/event.json"},
		{"empty stdin", []string{"--file", "-"}, "--file -: empty body"},
		{"file and type", []string{"--file", "-", "--type", "message.sent"}, "--file and --type exclude each other"},
		{"negative retries", []string{"--retry", "--max-retries", "-1"}, "--max-retries must not be negative"},
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"argument", []string{"now"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearSecretEnv(t)
			args := append([]string{"send", "--secret", "s", "--url", closedURL(t)}, tt.args...)
			_, _, err := runCommand(t, "", args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("no secret", func(t *testing.T) {
		clearSecretEnv(t)
		_, _, err := runCommand(t, "", "send", "--url", closedURL(t))
		if err == nil || !strings.Contains(err.Error(), "no webhook secret: pass --secret or set "+zautic.SecretEnv) {
			t.Errorf("got %v, want the missing secret named", err)
		}
	})
}

// TestSendDurationAndRate bounds a run by time instead of count.
func TestSendDurationAndRate(t *testing.T) {
	clearSecretEnv(t)
	f := startTestForwarder(t)
	out, _, err := runCommand(t, "", "send", "--url", f.URL, "--secret", testSecret, "--type", "device.connected",
		"--duration", "500ms", "--rate", "20", "--json")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	var s simulator.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Sent < 1 || s.Sent > 11 || s.OK != s.Sent {
		t.Errorf("500ms at 20/s: got %d sent, %d ok; want 1 to 11, all ok", s.Sent, s.OK)
	}
	if got := f.subjects(t); got["zautic.device.connected"] != uint64(s.Sent) {
		t.Errorf("stream holds %v, want %d zautic.device.connected", got, s.Sent)
	}
}

// credentialFiles writes a valid creds file, user NKey seed and CA bundle.
func credentialFiles(t *testing.T) (creds, seed, ca string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("test setup: %v", err)
		}
	}
	account, err := nkeys.CreateAccount()
	must(err)
	user, err := nkeys.CreateUser()
	must(err)
	userPub, err := user.PublicKey()
	must(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(account)
	must(err)
	userSeed, err := user.Seed()
	must(err)
	credsFile, err := jwt.FormatUserConfig(userJWT, userSeed)
	must(err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(err)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return writeFile(t, "user.creds", string(credsFile)), writeFile(t, "user.nk", string(userSeed)), writeFile(t, "ca.pem", string(caPEM))
}

// placeholderCreds is the creds file of deploy/kubernetes/secret.yaml.
const placeholderCreds = `-----BEGIN NATS USER JWT-----
REPLACE-WITH-THE-USER-JWT
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
REPLACE-WITH-THE-USER-SEED
------END USER NKEY SEED------
`

// TestCheckConfigRefusesWhatServeRefuses runs check-config and serve on
// each configuration that serve refuses before it connects: both fail,
// naming the problem, and neither shows a password.
func TestCheckConfigRefusesWhatServeRefuses(t *testing.T) {
	creds, _, _ := credentialFiles(t)
	missing := filepath.Join(t.TempDir(), "absent")
	const password = "Pw50%off"
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"admin.token_file missing", map[string]string{"FORWARDER_ADMIN_TOKEN_FILE": missing}, []string{"admin.token_file " + missing, "no such file"}},
		{"admin.token_file empty", map[string]string{"FORWARDER_ADMIN_TOKEN_FILE": writeFile(t, "token", "\n")}, []string{"admin.token_file", "is empty"}},
		{"nats.tls.ca_file missing", map[string]string{"FORWARDER_NATS_TLS_CA_FILE": missing}, []string{"nats.tls.ca_file " + missing}},
		{"nats.tls.ca_file not PEM", map[string]string{"FORWARDER_NATS_TLS_CA_FILE": creds}, []string{"nats.tls.ca_file " + creds}},
		{"nats.tls.cert_file missing", map[string]string{"FORWARDER_NATS_TLS_CERT_FILE": missing, "FORWARDER_NATS_TLS_KEY_FILE": missing}, []string{"nats.tls.cert_file " + missing}},
		{"nats.creds_file missing", map[string]string{"FORWARDER_NATS_CREDS_FILE": missing}, []string{"nats.creds_file " + missing, "no such file"}},
		{"nats.creds_file placeholder", map[string]string{"FORWARDER_NATS_CREDS_FILE": writeFile(t, "nats.creds", placeholderCreds)}, []string{"nats.creds_file", "no valid user JWT"}},
		{"nats.creds_file without a seed", map[string]string{"FORWARDER_NATS_CREDS_FILE": writeFile(t, "nats.creds", strings.Split(mustRead(t, creds), "************************* IMPORTANT")[0])}, []string{"nats.creds_file", "NKey seed"}},
		{"nats.nkey_file missing", map[string]string{"FORWARDER_NATS_NKEY_FILE": missing}, []string{"nats.nkey_file " + missing}},
		{"nats.nkey_file placeholder", map[string]string{"FORWARDER_NATS_NKEY_FILE": writeFile(t, "user.nk", "REPLACE-WITH-THE-USER-SEED\n")}, []string{"nats.nkey_file", "not a user NKey seed"}},
		{"OTLP over http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}},
		{"bad escape in a NATS password", map[string]string{"FORWARDER_NATS_URL": "nats://u:" + password + "@127.0.0.1:4222"},
			[]string{"nats.url nats://[redacted]@127.0.0.1:4222 is not a valid URL: its user or password", "%25"}},
		{"bad escape in a NATS host", map[string]string{"FORWARDER_NATS_URL": "nats://127.0.0.1:4222,nats://u:p@h%zz:4222"},
			[]string{"nats.url nats://[redacted]@h%zz:4222 is not a valid URL: invalid URL escape"}},
		{"NATS port out of range", map[string]string{"FORWARDER_NATS_URL": "nats://127.0.0.1:99999"},
			[]string{"nats.url nats://127.0.0.1:99999: port 99999 is not 1 to 65535"}},
		{"NATS port out of range without a scheme", map[string]string{"FORWARDER_NATS_URL": "127.0.0.1:65536"},
			[]string{"nats.url nats://127.0.0.1:65536: port 65536 is not 1 to 65535"}},
		{"NATS user information without a scheme", map[string]string{"FORWARDER_NATS_URL": "alice:pw@127.0.0.1:4222"},
			[]string{"nats.url [redacted]@127.0.0.1:4222 has a user or token but no scheme: write it as nats://[redacted]@127.0.0.1:4222"}},
		{"NATS credentials in the URL and in nats.user", map[string]string{"FORWARDER_NATS_URL": "nats://alice:pw@127.0.0.1:4222", "FORWARDER_NATS_USER": "bob", "FORWARDER_NATS_PASSWORD": password},
			[]string{"nats.url nats://[redacted]@127.0.0.1:4222 carries a user or token, and nats.user and nats.password are set too"}},
		{"nats.user without nats.password", map[string]string{"FORWARDER_NATS_USER": "bob"}, []string{"nats.password must be set with nats.user"}},
		{"nats.password without nats.user", map[string]string{"FORWARDER_NATS_PASSWORD": password}, []string{"nats.user must be set with nats.password"}},
		{"several problems at once", map[string]string{"FORWARDER_NATS_CREDS_FILE": missing, "FORWARDER_NATS_NKEY_FILE": missing},
			[]string{"nats.creds_file " + missing, "nats.nkey_file " + missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearForwarderEnv(t)
			t.Setenv(zautic.SecretEnv, testSecret)
			t.Setenv("FORWARDER_HTTP_ADDR", "127.0.0.1:0")
			t.Setenv("FORWARDER_ADMIN_ADDR", "127.0.0.1:0")
			t.Setenv("FORWARDER_NATS_URL", strings.Replace(closedURL(t), "http://", "nats://", 1))
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			for _, command := range []string{"check-config", "serve"} {
				var out, errOut bytes.Buffer
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := run(ctx, []string{command}, nil, strings.NewReader(""), &out, &errOut)
				cancel()
				if err == nil {
					t.Errorf("%s: got no error, want one", command)
					continue
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: got error %q, want it to say %q", command, err, w)
					}
				}
				if printed := err.Error() + out.String() + errOut.String(); strings.Contains(printed, password) {
					t.Errorf("%s printed the password:\n%s", command, printed)
				}
			}
		})
	}
}

// TestCheckConfigAcceptsCredentialFiles: valid files pass the same checks.
func TestCheckConfigAcceptsCredentialFiles(t *testing.T) {
	creds, seed, ca := credentialFiles(t)
	clearForwarderEnv(t)
	t.Setenv(zautic.SecretEnv, testSecret)
	t.Setenv("FORWARDER_NATS_URL", "nats://user:p%25ss@127.0.0.1:4222, tls://127.0.0.1:4223")
	t.Setenv("FORWARDER_NATS_CREDS_FILE", creds)
	t.Setenv("FORWARDER_NATS_NKEY_FILE", seed)
	t.Setenv("FORWARDER_NATS_TLS_CA_FILE", ca)
	t.Setenv("FORWARDER_ADMIN_TOKEN_FILE", writeFile(t, "token", "admin-token\n"))
	if out, _, err := runCommand(t, "", "check-config"); err != nil {
		t.Fatalf("got error %v, want none\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestLogDurationsCarryUnits: serve's log writes a duration with its unit
// ("window":"15m0s"), in both formats, never as a bare number of seconds.
func TestLogDurationsCarryUnits(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			cfg := forwarder.DefaultConfig().Log
			cfg.Level, cfg.Format = "info", format
			log, err := forwarder.NewLogger(cfg, &out)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("mark repair done", zap.Duration("window", 15*time.Minute), zap.Duration("took", 1500*time.Microsecond))
			_ = log.Sync() // log.flush_interval buffers the writes
			if !strings.Contains(out.String(), "15m0s") || !strings.Contains(out.String(), "1.5ms") || strings.Contains(out.String(), "900") {
				t.Errorf("got %q, want durations as 15m0s and 1.5ms", out.String())
			}
		})
	}
}
