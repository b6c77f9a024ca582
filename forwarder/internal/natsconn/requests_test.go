package natsconn

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRequests checks that Requests answers as nats.Conn's
// RequestMsgWithContext does, against a real nats-server, and that a reply
// that comes after its request gave up never answers a later request.
func TestRequests(t *testing.T) {
	nc, _ := connectJetStream(t)
	if _, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	// late answers each request after 300 ms, with its data.
	if _, err := nc.Subscribe("late", func(m *nats.Msg) {
		time.AfterFunc(300*time.Millisecond, func() { _ = m.Respond(m.Data) })
	}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	r := NewRequests(nc)
	tests := []struct {
		name    string
		subject string
		timeout time.Duration
		want    string // the reply's data
		wantErr error
	}{
		{"answered", "echo", time.Second, "answered", nil},
		{"nobody listens", "nobody", time.Second, "", nats.ErrNoResponders},
		{"unanswered in time", "late", 50 * time.Millisecond, "", context.DeadlineExceeded},
		// The late reply to the request before arrives while this one waits;
		// it must not be taken for this one's.
		{"answered after a late reply", "late", time.Second, "answered after a late reply", nil},
		{"answered again", "echo", time.Second, "answered again", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			m, err := r.RequestMsgWithContext(ctx, &nats.Msg{Subject: tt.subject, Data: []byte(tt.name)})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(m.Data) != tt.want {
				t.Fatalf("reply %q, want %q", m.Data, tt.want)
			}
		})
	}
}

// TestRequestsConcurrent sends many requests at once: each gets its own
// reply, and the inboxes kept are no more than the requests that waited
// together.
func TestRequestsConcurrent(t *testing.T) {
	nc, _ := connectJetStream(t)
	if _, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	r := NewRequests(nc)
	const callers, each = 64, 50
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				data := strconv.Itoa(c) + "/" + strconv.Itoa(i)
				m, err := r.RequestMsgWithContext(ctx, &nats.Msg{Subject: "echo", Data: []byte(data)})
				cancel()
				if err == nil && string(m.Data) != data {
					err = fmt.Errorf("request %s answered %q", data, m.Data)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.free); n == 0 || n > callers {
		t.Fatalf("%d inboxes kept after %d callers", n, callers)
	}
}

// TestRequestsClosed checks that a request waiting when the connection
// closes ends at once, as nats.Conn's does.
func TestRequestsClosed(t *testing.T) {
	nc, _ := connectJetStream(t)
	if _, err := nc.Subscribe("silent", func(*nats.Msg) {}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	r := NewRequests(nc)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := r.RequestMsgWithContext(ctx, &nats.Msg{Subject: "silent"})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it wait
	nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, nats.ErrConnectionClosed) {
			t.Fatalf("err = %v, want %v", err, nats.ErrConnectionClosed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request still waits 10 s after the connection closed")
	}
	if _, err := r.RequestMsgWithContext(context.Background(), &nats.Msg{Subject: "silent"}); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("after close: err = %v, want %v", err, nats.ErrConnectionClosed)
	}
}

// BenchmarkRequests sends direct gets from 64 goroutines at once, as the
// webhook path's lookups go, through nats.Conn and through Requests; cpu-ns/op
// is this process's CPU (the in-process nats-server's included) per request.
func BenchmarkRequests(b *testing.B) {
	nc, js := connectJetStream(b)
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "marks"}); err != nil {
		b.Fatalf("create bucket: %v", err)
	}
	subject := NewKeyReader("marks").prefix + "evt_absent"
	requesters := []struct {
		name string
		req  Requester
	}{{"nats.Conn", nc}, {"Requests", NewRequests(nc)}}
	for _, r := range requesters {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			start := processCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := r.req.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject})
					cancel()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
