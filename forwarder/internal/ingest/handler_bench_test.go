package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// sampleEvent is the quickstart's sample event, the payload of the
// benchmarks here and in test/bench.
var sampleEvent = []byte(`{"id":"evt_5f3c2a1b9d4e8c0a1f2b3c4d5e6f7a8b","type":"message.delivered","created":1767432000,` +
	`"created_at":"2026-01-03T00:00:00.000Z","livemode":true,"data":{"object":{"message_id":"3EB0DC15F6ACF859FB492F",` +
	`"phone":"919876543210","device_id":114,"status":"delivered","direction":"outgoing"}}}`)

// BenchmarkHandler runs the whole request path through Echo's ServeHTTP,
// middleware and the production JSON logger included. "published" forwards
// each iteration's new delivery id to a nats-server in a process of its own
// (this test binary, run by natsServerProcess), as in production: allocs/op
// is then the forwarder process's, its own code and nats.go's.
// "published, in-process nats-server" is the same with the server in this
// process, whose allocations count too (the measure before issue 21).
// "duplicate" re-sends events already published and marked: the KV lookup
// answers. "ignored" stops after verify and parse (events.allow leaves the
// type out), which isolates the HTTP side. The request, its headers and the
// response writer are reused, so that what is counted is the handler's.
// "published, traced" is "published" with tracing on at full sampling: a
// server span and three child spans per request ("ignored, traced": the
// server span alone), handed to the SDK's batch processor (the export itself
// discards them, so no network is counted).
func BenchmarkHandler(b *testing.B) {
	benchmarks := []struct {
		name      string
		allow     []string
		outcome   string
		traced    bool
		inProcess bool // the nats-server shares the process
		again     bool // each event is published before the timer starts
	}{
		{"published", nil, `"published"`, false, false, false},
		{"duplicate", nil, `"duplicate"`, false, false, true},
		{"ignored", []string{"contact.created"}, `"ignored"`, false, false, false},
		{"published, traced", nil, `"published"`, true, false, false},
		{"ignored, traced", []string{"contact.created"}, `"ignored"`, true, false, false},
		{"published, in-process nats-server", nil, `"published"`, false, true, false},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			log, err := telemetry.NewLogger(telemetry.LogConfig{Level: "info", Format: "json"}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			natsURL := ""
			if !bm.inProcess {
				natsURL = natsServerProcess(b)
			}
			h := newHandlerHarness(b, harnessOptions{log: log, configure: func(c *settings) {
				c.Events.Allow = bm.allow
			}, tracer: benchTracing(b, bm.traced), natsURL: natsURL})
			// Distinct events, each signed once before the timer starts: only
			// signed data decides what is new, so re-sending one body under
			// new delivery ids would be answered duplicate.
			ids := make([]string, b.N)
			events := make([][]byte, b.N)
			signatures := make([][]string, b.N)
			for i := range ids {
				ids[i] = "dlv_bench_" + strconv.Itoa(i)
				events[i] = benchEvent(i)
				signatures[i] = []string{zautic.Sign([]byte(handlerSecret), time.Now().Unix(), events[i])}
			}
			req, body := reusableRequest(sampleEvent)
			deliveryID := []string{""}
			req.Header[zautic.RequestDeliveryIDHeader] = deliveryID
			w := &discardWriter{header: http.Header{}}
			serve := func(i int) {
				body.Reset(events[i])
				req.Header[zautic.RequestSignatureHeader] = signatures[i]
				deliveryID[0] = ids[i]
				w.reset()
				h.echo.ServeHTTP(w, req)
			}
			if bm.again {
				for i := range b.N {
					serve(i)
				}
				// Marked in the bucket, not only in flight: the lookup asks NATS.
				h.broker.WaitMarks(10 * time.Second)
			}
			b.SetBytes(int64(len(sampleEvent)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				serve(i)
				if w.status != http.StatusOK || !bytes.Contains(w.body.Bytes(), []byte(bm.outcome)) {
					b.Fatalf("got %d %s, want 200 with %s", w.status, w.body.Bytes(), bm.outcome)
				}
			}
		})
	}
}

// benchEvent is sampleEvent with an event id of the same length made of i.
func benchEvent(i int) []byte {
	event := bytes.Clone(sampleEvent)
	id := fmt.Appendf(nil, "evt_%032x", i)
	copy(event[bytes.Index(event, []byte("evt_")):], id)
	return event
}

// reusableRequest is a signed POST whose body can be rewound with Reset.
func reusableRequest(event []byte) (*http.Request, *bytes.Reader) {
	body := bytes.NewReader(event)
	req := httptest.NewRequest(http.MethodPost, defaultSettings().HTTP.Path, nil)
	req.Body = io.NopCloser(body)
	req.ContentLength = int64(len(event))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(zautic.RequestSignatureHeader, zautic.Sign([]byte(handlerSecret), time.Now().Unix(), event))
	return req, body
}

// discardWriter is a reusable http.ResponseWriter that keeps the status and
// the body of the last answer.
type discardWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status = 0
	w.body.Reset()
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) { w.status = status }

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

// natsServerEnv tells this test binary to be a nats-server storing in the
// directory it names (TestMain).
const natsServerEnv = "INGEST_TEST_NATS_SERVER_DIR"

// TestMain runs the tests, or, under natsServerEnv, a nats-server with
// JetStream on a random loopback port: it prints its URL and stops when its
// standard input closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv(natsServerEnv); dir != "" {
		serveNATS(dir)
		return
	}
	os.Exit(m.Run())
}

func serveNATS(dir string) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats-server not ready after 10s")
		os.Exit(1)
	}
	fmt.Println(ns.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	natstest.Stop(ns)
}

// natsServerProcess starts this test binary as a nats-server (TestMain) and
// returns its URL; the process stops at cleanup. The benchmarks use it so
// that the server's allocations are not counted as the forwarder's.
func natsServerProcess(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsServerEnv+"="+b.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start nats-server process: %v", err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("nats-server process: %v", err)
	}
	return strings.TrimSpace(url)
}

func BenchmarkVerifySignature(b *testing.B) {
	secrets := [][]byte{[]byte(handlerSecret)}
	now := time.Now()
	header := zautic.Sign(secrets[0], now.Unix(), sampleEvent)
	b.SetBytes(int64(len(sampleEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := zautic.VerifySignature(sampleEvent, header, secrets, 5*time.Minute, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvent(b *testing.B) {
	b.SetBytes(int64(len(sampleEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := zautic.ParseEvent(sampleEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTracing is the tracer provider of a traced benchmark: the SDK with
// its default sampler (every root span sampled) and batch processor.
func benchTracing(b *testing.B, traced bool) trace.TracerProvider {
	if !traced {
		return nil
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}
