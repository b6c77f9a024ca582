package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// shortBody is a request body that ends after n bytes whatever it declared,
// as a client that hangs up would leave it.
func shortBody(n int) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("x"), n)))
}

// TestReadBodyGrowsAsBytesArrive reads bodies that declare more than they
// send: the buffer holds what came, never what was only promised.
func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	cfg := defaultSettings().HTTP
	cfg.MaxBodyBytes = 4 << 20
	tests := []struct {
		name     string
		declared int64
		sent     int
		maxCap   int
		wantErr  error
	}{
		{"ordinary body: one buffer of its size", 300, 300, 300 + bytes.MinRead, nil},
		{"1 MiB declared, 10 KiB sent", 1 << 20, 10 << 10, ordinaryBodyBytes + bytes.MinRead, nil},
		{"1 MiB declared, 300 KiB sent", 1 << 20, 300 << 10, 2 * (300 << 10), nil},
		{"1 MiB declared and sent: never beyond the declared length", 1 << 20, 1 << 20, 1<<20 + bytes.MinRead, nil},
		{"chunked, 200 KiB", -1, 200 << 10, 4 * (ordinaryBodyBytes + bytes.MinRead), nil},
		{"more than declared: read on to the limit", 1000, 2000, ordinaryBodyBytes + bytes.MinRead, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body, req.ContentLength = shortBody(tt.sent), tt.declared
			var buf bytes.Buffer
			body, err := readBody(httptest.NewRecorder(), req, cfg, &buf)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err == nil && len(body) != tt.sent {
				t.Errorf("got %d bytes, want %d", len(body), tt.sent)
			}
			if buf.Cap() > tt.maxCap {
				t.Errorf("buffer capacity: got %d, want at most %d", buf.Cap(), tt.maxCap)
			}
		})
	}
}

// bodyServer serves readBody over loopback, so that the rate floor moves a
// real connection's deadline, and answers the status the handler would.
func bodyServer(t *testing.T, cfg HTTPConfig) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		body, err := readBody(w, r, cfg, &buf)
		if err != nil {
			http.Error(w, err.Error(), classify(err).status)
			return
		}
		fmt.Fprintf(w, "%d", len(body))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// pacedSend writes a request declaring size bytes, then its body in pieces
// of piece bytes every pause, stopping after stopAfter bytes (never when
// negative), and returns the status line of the answer.
func pacedSend(t *testing.T, addr string, size, piece int, pause time.Duration, stopAfter int) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: forwarder\r\nContent-Length: %d\r\n\r\n", size); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sent := 0; sent < size && (stopAfter < 0 || sent < stopAfter); sent += piece {
			if _, err := conn.Write(bytes.Repeat([]byte("x"), min(piece, size-sent))); err != nil {
				return
			}
			time.Sleep(pause)
		}
	}()
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	return status
}

// TestRateFloor sends bodies at different paces against http.min_body_rate
// 1024 bytes/s with a grace of 300ms.
func TestRateFloor(t *testing.T) {
	t.Parallel()
	cfg := defaultSettings().HTTP
	cfg.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.ReadTimeout = 10 * time.Second
	floorOn := bodyServer(t, cfg)
	cfg.MinBodyRate = 0
	floorOff := bodyServer(t, cfg)
	tests := []struct {
		name      string
		addr      string
		size      int
		piece     int
		pause     time.Duration
		stopAfter int
		want      string
	}{
		{"a trickle is cut off", floorOn, 4096, 16, 100 * time.Millisecond, -1, "HTTP/1.1 408"},
		{"a stalled body is cut off", floorOn, 4096, 1000, 0, 1000, "HTTP/1.1 408"},
		{"a steady body above the floor arrives", floorOn, 4096, 512, 100 * time.Millisecond, -1, "HTTP/1.1 200"},
		{"without the floor a slow body arrives", floorOff, 600, 100, 100 * time.Millisecond, -1, "HTTP/1.1 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := pacedSend(t, tt.addr, tt.size, tt.piece, tt.pause, tt.stopAfter); !bytes.HasPrefix([]byte(got), []byte(tt.want)) {
				t.Errorf("got %q, want %s", got, tt.want)
			}
		})
	}
}
