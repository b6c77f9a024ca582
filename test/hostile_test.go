package test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// hostileBodyBytes is far beyond the default http.max_body_bytes (256 KiB).
const hostileBodyBytes = 10 << 20

// validV1 is a well-formed v1 value for body signed now, for headers that
// are wrong elsewhere.
func validV1(body []byte) string {
	return hex.EncodeToString(zautic.ComputeSignature([]byte(testSecret), time.Now().Unix(), body))
}

// postWith sends body with the given signature header through the client.
func postWith(body []byte, signature string, headers map[string]string) func(t *testing.T, url string) (response, error) {
	return func(t *testing.T, url string) (response, error) {
		req := newRequest(t, url, webhook{body: body, deliveryID: "dlv_hostile", signature: signature, headers: headers})
		return do(t, http.DefaultClient, req)
	}
}

// signedPost sends body signed properly now.
func signedPost(body []byte) func(t *testing.T, url string) (response, error) {
	return postWith(body, zautic.Sign([]byte(testSecret), time.Now().Unix(), body), nil)
}

// twoSignatures sends body with two X-Zautic-Signature headers: first, and
// then second.
func twoSignatures(body []byte, first, second string) func(t *testing.T, url string) (response, error) {
	return func(t *testing.T, url string) (response, error) {
		req := newRequest(t, url, webhook{body: body, deliveryID: "dlv_hostile", signature: first})
		req.Header.Add(zautic.RequestSignatureHeader, second)
		return do(t, http.DefaultClient, req)
	}
}

// plainAnswer lets send's answer be plain text, as net/http's own error
// answers are, and puts that text in place of the JSON reason.
func plainAnswer(send func(t *testing.T, url string) (response, error)) func(t *testing.T, url string) (response, error) {
	return func(t *testing.T, url string) (response, error) {
		got, err := send(t, url)
		if text, plain := strings.CutPrefix(fmt.Sprint(err), "answer "+strconv.Itoa(got.Status)+" is not JSON: "); plain {
			return response{Status: got.Status, Body: map[string]any{"error": text}}, nil
		}
		return got, err
	}
}

// hugeBody streams a 10 MiB body, declared in Content-Length or chunked, on
// a raw connection that reads the answer while still writing.
func hugeBody(declared bool) func(t *testing.T, url string) (response, error) {
	return func(t *testing.T, url string) (response, error) {
		length := int64(-1)
		if declared {
			length = hostileBodyBytes
		}
		r := openRaw(t, newRequest(t, url, webhook{body: []byte("{}")}), length)
		r.stream(hostileBodyBytes)
		return r.response(30 * time.Second)
	}
}

// TestHostileInput sends malformed, oversized and forged requests to the
// real binary: each gets its precise status with a JSON reason, nothing is
// published, and the process stays healthy and forwards a valid event after.
func TestHostileInput(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())

	now := time.Now().Unix()
	event := sampleEvent("evt_hostile", "message.delivered")
	altered := bytes.Clone(event)
	altered[bytes.Index(altered, []byte("919876543210"))] = '8'
	fullSig := zautic.Sign([]byte(testSecret), now, event)
	tests := []struct {
		name   string
		send   func(t *testing.T, url string) (response, error)
		status int
		reason string
	}{
		{"wrong method", func(t *testing.T, url string) (response, error) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			return do(t, http.DefaultClient, req)
		}, http.StatusMethodNotAllowed, "method GET not allowed"},
		{"OPTIONS", func(t *testing.T, url string) (response, error) {
			req, _ := http.NewRequest(http.MethodOptions, url, nil)
			return do(t, http.DefaultClient, req)
		}, http.StatusMethodNotAllowed, "method OPTIONS not allowed"},
		{"empty body", signedPost(nil), http.StatusBadRequest, "not a JSON object"},
		{"empty object", signedPost([]byte("{}")), http.StatusBadRequest, `field "id"`},
		{"JSON array", signedPost([]byte(`[{"id":"evt_1","type":"message.sent"}]`)), http.StatusBadRequest, "not a JSON object"},
		{"invalid UTF-8", signedPost([]byte("{\"id\":\"evt_\xff\xfe\",\"type\":\"message.sent\"}")), http.StatusBadRequest, "not valid UTF-8"},
		{"17 KiB header", postWith(event, fullSig, map[string]string{"X-Padding": strings.Repeat("p", 17<<10)}),
			http.StatusRequestHeaderFieldsTooLarge, "request headers are"},
		{"64 KiB header: net/http's own 431", plainAnswer(postWith(event, fullSig, map[string]string{"X-Padding": strings.Repeat("p", 64<<10)})),
			http.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"},
		{"10 MiB body with Content-Length", hugeBody(true), http.StatusRequestEntityTooLarge, "Content-Length"},
		{"10 MiB chunked body", hugeBody(false), http.StatusRequestEntityTooLarge, "exceeds"},
		{"truncated signature", postWith(event, fullSig[:len(fullSig)/2], nil), http.StatusBadRequest, "no v1 of 64 hex"},
		{"non-hex v1", postWith(event, "t="+strconv.FormatInt(now, 10)+",v1="+strings.Repeat("zz", 32), nil), http.StatusBadRequest, "no v1 of 64 hex"},
		{"v1 of the wrong length", postWith(event, "t="+strconv.FormatInt(now, 10)+",v1="+validV1(event)[:62], nil), http.StatusBadRequest, "no v1 of 64 hex"},
		{"t in the future beyond tolerance", postWith(event, zautic.Sign([]byte(testSecret), now+3600, event), nil), http.StatusBadRequest, "outside tolerance"},
		{"t not a number", postWith(event, "t=soon,v1="+validV1(event), nil), http.StatusBadRequest, "t is not an integer"},
		{"t with a plus sign", postWith(event, "t=+"+strconv.FormatInt(now, 10)+",v1="+validV1(event), nil), http.StatusBadRequest, "digits only"},
		{"t with leading zeros", postWith(event, "t=00"+strconv.FormatInt(now, 10)+",v1="+validV1(event), nil), http.StatusBadRequest, "leading zeros"},
		{"two signature headers, the first valid", twoSignatures(event, fullSig, "t="+strconv.FormatInt(now, 10)+",v1="+strings.Repeat("0", 64)),
			http.StatusBadRequest, "2 X-Zautic-Signature headers, want one"},
		{"two valid signature headers", twoSignatures(event, fullSig, fullSig), http.StatusBadRequest, "2 X-Zautic-Signature headers, want one"},
		{"two t values", postWith(event, "t="+strconv.FormatInt(now, 10)+","+fullSig, nil), http.StatusBadRequest, "more than one t"},
		{"another webhook's secret", postWith(event, zautic.Sign([]byte("another-webhook-secret"), now, event), nil), http.StatusBadRequest, "no v1 signature matches"},
		{"body altered after signing", postWith(altered, fullSig, nil), http.StatusBadRequest, "no v1 signature matches"},
		{"id with a lone high surrogate escape", signedPost(sampleEvent(`\ud800`, "message.delivered")), http.StatusBadRequest, `field "id" holds the lone UTF-16 surrogate escape \ud800`},
		{"id with a lone low surrogate escape", signedPost(sampleEvent(`\udc00`, "message.delivered")), http.StatusBadRequest, `field "id" holds the lone UTF-16 surrogate escape \udc00`},
		{"type with >", signedPost(sampleEvent("evt_wild", "message.>")), http.StatusBadRequest, "invalid event type"},
		{"type with spaces", signedPost(sampleEvent("evt_space", "message delivered")), http.StatusBadRequest, "invalid event type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.send(t, p.WebhookURL)
			if err != nil {
				t.Fatalf("got error %v, want %d", err, tt.status)
			}
			reason, _ := got.Body["error"].(string)
			if got.Status != tt.status || !strings.Contains(reason, tt.reason) {
				t.Fatalf("got %d %q, want %d with a reason containing %q", got.Status, reason, tt.status, tt.reason)
			}
		})
	}

	if msgs := streamMessages(t, js, "ZAUTIC"); len(msgs) != 0 {
		t.Fatalf("stream holds %d messages after hostile input, want 0", len(msgs))
	}
	requireHealthy(t, p)
	requirePublished(t, p, js, newEvents("after_hostile", 1)[0])
}

// waitClosedWithout2xx reads r's connection until the server closes it and
// fails if that takes longer than the bound or if a 2xx came back.
func waitClosedWithout2xx(t *testing.T, r *rawRequest) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	data, err := io.ReadAll(r.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection still open after 20s (%v), want it closed by the server's timeouts", err)
	}
	if bytes.HasPrefix(data, []byte("HTTP/1.1 2")) {
		t.Fatalf("got %q, want no 2xx", data)
	}
}

// TestSlowClientsAreCutOff stalls in the headers, stalls in the body, and
// idles on a kept-alive connection: the server's read-header, read and idle
// timeouts close each connection without a 2xx for the unfinished request,
// nothing is published, and the process keeps serving.
func TestSlowClientsAreCutOff(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_HTTP_READ_HEADER_TIMEOUT"] = "1s"
	env["FORWARDER_HTTP_READ_TIMEOUT"] = "2s"
	env["FORWARDER_HTTP_IDLE_TIMEOUT"] = "1s"
	p := startForwarder(t, env)
	p.WaitReady(t)
	_, js := connect(t, ns.ClientURL())
	ev := newEvents("slow", 1)[0]

	tests := []struct {
		name string
		open func(t *testing.T) *rawRequest
	}{
		{"headers never finish", func(t *testing.T) *rawRequest {
			conn, err := net.Dial("tcp", hostOf(t, p.WebhookURL))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			r := &rawRequest{conn: conn, br: bufio.NewReader(conn)}
			if err := r.writeRaw([]byte("POST /webhooks/zautic HTTP/1.1\r\nHost: forwarder\r\nContent-Type: appl")); err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{"body never finishes", func(t *testing.T) *rawRequest {
			return sendHalf(t, p.WebhookURL, ev).rawRequest
		}},
		{"idle after a request", func(t *testing.T) *rawRequest {
			other := newEvents("idle", 1)[0]
			r := openRaw(t, newRequest(t, p.WebhookURL, webhook{body: other.Body, deliveryID: other.DeliveryID}), int64(len(other.Body)))
			if err := r.write(other.Body); err != nil {
				t.Fatal(err)
			}
			if got, err := r.response(20 * time.Second); err != nil || got.Status != http.StatusOK {
				t.Fatalf("request before idling: got %d %v (err %v), want 200", got.Status, got.Body, err)
			}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waitClosedWithout2xx(t, tt.open(t))
		})
	}

	if n := countByEventID(streamMessages(t, js, "ZAUTIC"))[ev.ID]; n != 0 {
		t.Fatalf("event of the stalled body: got %d messages, want 0", n)
	}
	requireHealthy(t, p)
	waitInFlight(t, p, 0)
	requirePublished(t, p, js, newEvents("after_slow", 1)[0])
}
