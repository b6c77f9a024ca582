package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// rawRequest is a webhook request written by hand on its own connection, so
// that a test decides when each byte goes out: headers with half a body, a
// body that never ends, or a declared body that is never sent.
type rawRequest struct {
	conn    net.Conn
	br      *bufio.Reader
	chunked bool
}

// openRaw dials req's host and writes the request line and req's headers.
// contentLength declares the body; a negative one makes the body chunked.
func openRaw(t testing.TB, req *http.Request, contentLength int64) *rawRequest {
	t.Helper()
	conn, err := net.DialTimeout("tcp", req.URL.Host, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", req.URL.Host, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), req.URL.Host)
	if contentLength >= 0 {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", contentLength)
	} else {
		head.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if err := req.Header.Write(&head); err != nil {
		t.Fatal(err)
	}
	head.WriteString("\r\n")
	r := &rawRequest{conn: conn, br: bufio.NewReader(conn), chunked: contentLength < 0}
	if err := r.writeRaw(head.Bytes()); err != nil {
		t.Fatalf("write request head: %v", err)
	}
	return r
}

// write sends part of the body, framed as a chunk when the body is chunked.
func (r *rawRequest) write(p []byte) error {
	if !r.chunked {
		return r.writeRaw(p)
	}
	return r.writeRaw(fmt.Appendf(nil, "%x\r\n%s\r\n", len(p), p))
}

// end sends the last chunk of a chunked body.
func (r *rawRequest) end() error {
	return r.writeRaw([]byte("0\r\n\r\n"))
}

func (r *rawRequest) writeRaw(p []byte) error {
	_ = r.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := r.conn.Write(p)
	return err
}

// stream writes n bytes of filler body in the background, ignoring errors:
// the server is expected to answer and hang up long before the end.
func (r *rawRequest) stream(n int64) {
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			if r.write(chunk) != nil {
				return
			}
		}
		if r.chunked {
			_ = r.end()
		}
	}()
}

// response reads the answer, waiting at most timeout.
func (r *rawRequest) response(timeout time.Duration) (response, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(timeout))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return response{}, err
	}
	return decodeResponse(resp)
}

// halfSent is a signed delivery whose headers and first half of the body
// have been sent; finish sends the rest.
type halfSent struct {
	*rawRequest
	rest []byte
}

// sendHalf opens a connection for ev and sends its headers and half its body.
func sendHalf(t testing.TB, url string, ev zauticEvent) *halfSent {
	t.Helper()
	req := newRequest(t, url, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
	r := openRaw(t, req, int64(len(ev.Body)))
	half := len(ev.Body) / 2
	if err := r.write(ev.Body[:half]); err != nil {
		t.Fatalf("write half the body: %v", err)
	}
	return &halfSent{rawRequest: r, rest: ev.Body[half:]}
}

// finish sends the rest of the body and reads the answer.
func (h *halfSent) finish() (response, error) {
	if err := h.write(h.rest); err != nil {
		return response{}, fmt.Errorf("write the rest of the body: %w", err)
	}
	return h.response(30 * time.Second)
}

// hostOf is the host:port of rawURL.
func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// metricValue reads one unlabelled sample from the admin listener's
// /metrics.
func metricValue(adminURL, name string) (float64, error) {
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v float64
		if value, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if _, err := fmt.Sscan(value, &v); err != nil {
				return 0, fmt.Errorf("metric %s: %w", name, err)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// waitInFlight waits until the forwarder counts want webhook requests in
// progress, which tells that their headers have been read.
func waitInFlight(t testing.TB, p *forwarderProcess, want float64) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		got, err := metricValue(p.AdminURL, "zautic_forwarder_in_flight_requests")
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("in-flight requests: got %v, want %v", got, want)
		}
		return nil
	})
}
