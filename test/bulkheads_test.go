package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

const (
	// bulkheadName is nats.name of the forwarders of these tests: their
	// webhook connection is found by it in the server's connection report.
	bulkheadName = "bulkhead-forwarder"
	// streamFill is how many events the stream holds before the lookups.
	streamFill = 50_000
	// quarantineEntry and smallEntry are the body sizes of the forged
	// requests that fill the quarantine: the large ones up to their share,
	// the small ones (under 64 KiB) the rest.
	quarantineEntry = 256<<10 - 512
	smallEntry      = 60 << 10
	// deliveryRate and deliveryWindow: signed deliveries sent during the
	// lookups, one every 1/deliveryRate s for deliveryWindow.
	deliveryRate   = 20
	deliveryWindow = 15 * time.Second
	// lookupClients each run lookupsEach lookups of unknown ids.
	lookupClients = 16
	lookupsEach   = 3
	// adminFloodConns hold endless headers on the admin port.
	adminFloodConns = 4000
)

// TestAdminLookupsCannotDisturbTheWebhookPath runs the default
// configuration (but ports, nats.name and the quarantine's rate) with a
// full quarantine of 256 KiB entries and 50,000 events in the stream, then
// sends signed deliveries at 20/s for 15 s while 16 clients each look up
// three unknown ids on the admin port. Every delivery is 200 published on
// its first try, /readyz is 200 at every poll, the webhook path's NATS
// connection is never replaced, every lookup is 404 or 429, and the peak
// resident memory stays under the bound the forwarder logged at start.
func TestAdminLookupsCannotDisturbTheWebhookPath(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a quarantine and a stream of 50,000 events")
	}
	ns := natstest.Start(t, "", 0)
	env := forwarderEnv(ns.ClientURL())
	env["FORWARDER_NATS_NAME"] = bulkheadName
	// The default rate (10/s, burst 100) would take half a minute to fill
	// the quarantine; the test is about what a full one costs, not about
	// the flood that fills it.
	env["FORWARDER_QUARANTINE_RATE"] = "1000"
	env["FORWARDER_QUARANTINE_BURST"] = "1000"
	p := startForwarder(t, env)
	p.WaitReady(t)
	bound := loggedMemoryBound(t, p)
	nc, js := connect(t, ns.ClientURL())

	fillQuarantine(t, p, js)
	fillStream(t, nc, js)
	before := webhookConnection(t, ns)

	deliveries, readyPolls, lookups := runDuringLookups(t, p)
	for id, got := range deliveries {
		if got != "" {
			t.Errorf("delivery %s: got %s, want 200 published on its first try", id, got)
		}
	}
	if len(deliveries) < deliveryRate*int(deliveryWindow/time.Second)-1 {
		t.Errorf("sent %d deliveries, want %d", len(deliveries), deliveryRate*int(deliveryWindow/time.Second))
	}
	for _, got := range readyPolls {
		if got != http.StatusOK {
			t.Errorf("/readyz during the lookups: got %v, want 200 at every poll", readyPolls)
			break
		}
	}
	counts := map[int]int{}
	for _, status := range lookups {
		counts[status]++
		if status != http.StatusNotFound && status != http.StatusTooManyRequests {
			t.Errorf("lookup: got %d, want 404 or 429", status)
		}
	}
	t.Logf("lookups by status: %v; %d readyz polls", counts, len(readyPolls))
	if after := webhookConnection(t, ns); after != before {
		t.Errorf("webhook connection: client id %d before, %d after; want the same connection throughout", before, after)
	}
	peak := peakRSS(t, p)
	t.Logf("peak resident memory (VmHWM) %.1f MiB, logged bound %.1f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	if peak >= bound {
		t.Errorf("peak resident memory: got %.1f MiB, want under the logged bound of %.1f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	}
}

// TestAdminConnectionFlood opens 4,000 connections that send endless
// headers to the admin port: the admin listener's own ceiling holds them,
// the peak resident memory stays under the logged bound, and signed
// deliveries sent meanwhile are all published on their first try.
func TestAdminConnectionFlood(t *testing.T) {
	raiseFileLimit(t, 3*adminFloodConns)
	// NATS in a process of its own: this process runs the 4,000 flooding
	// connections (under -race, slowly), which must not starve the server
	// the deliveries go through.
	ns := startNATSProcess(t)
	p := startForwarder(t, forwarderEnv(ns.URL))
	p.WaitReady(t)
	bound := loggedMemoryBound(t, p)
	_, js := connect(t, ns.URL)

	sent, rest := endlessHeaders(p.AdminURL + "/deliveries/unknown")
	f := startFloodOf(t, adminFloodConns, hostOf(t, p.AdminURL), sent, rest)
	events := newEvents("adminflood", ordinaryDuringFlood)
	requireAllPublishedFirstTry(t, p, events)
	requireProbesOnWebhookPort(t, p)
	f.finish()
	t.Logf("hostile answers by status (0: connection closed): %v", f.statuses)

	peak := peakRSS(t, p)
	t.Logf("peak resident memory (VmHWM) %.1f MiB, logged bound %.1f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	if peak >= bound {
		t.Errorf("peak resident memory: got %.1f MiB, want under the logged bound of %.1f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	}
	requireReady(t, p)
	assertExactlyOnce(t, js, events)
}

var memoryBoundField = regexp.MustCompile(`"memory_bound_bytes":(\d+)`)

// loggedMemoryBound is the memory bound the forwarder logged at start.
func loggedMemoryBound(t *testing.T, p *forwarderProcess) int64 {
	t.Helper()
	m := memoryBoundField.FindStringSubmatch(p.Logs())
	if m == nil {
		t.Fatalf("no memory_bound_bytes in the start-up log:\n%s", p.Logs())
	}
	bound, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if want := forwarder.DefaultConfig().MemoryBound(); bound != want {
		t.Fatalf("logged memory bound %d, want the default configuration's %d", bound, want)
	}
	return bound
}

// fillQuarantine sends forged requests until the quarantine holds
// quarantine.max_bytes: entries of quarantineEntry bytes first, until their
// share (three quarters) is used, then entries of smallEntry bytes until the
// stream is full. Each is answered 400 when kept, 503 when not.
func fillQuarantine(t *testing.T, p *forwarderProcess, js jetstream.JetStream) {
	t.Helper()
	maxBytes := uint64(forwarder.DefaultConfig().Quarantine.MaxBytes)
	sendForged(t, p, "large", quarantineEntry, int(maxBytes*3/4/quarantineEntry)+8)
	sendForged(t, p, "small", smallEntry, int(maxBytes/4/smallEntry)+8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, forwarder.DefaultConfig().Quarantine.Stream)
	if err != nil {
		t.Fatal(err)
	}
	state := s.CachedInfo().State
	if state.Bytes+smallEntry < maxBytes {
		t.Fatalf("quarantine holds %d bytes in %d entries, want it full (%d bytes)", state.Bytes, state.Msgs, maxBytes)
	}
	t.Logf("quarantine: %d entries, %.1f MiB", state.Msgs, float64(state.Bytes)/(1<<20))
}

// sendForged sends n forged requests of size bytes from 8 clients: each is
// kept (400, "quarantined":true) or, once the quarantine has no room for
// it, refused so that a genuine sender would retry (503,
// "quarantined":false).
func sendForged(t *testing.T, p *forwarderProcess, name string, size, n int) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	forged := "t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",v1=" + strings.Repeat("0", 64)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				id := fmt.Sprintf("evt_forged_%s_%d", name, i)
				body := []byte(`{"id":"` + id + `","type":"message.delivered","data":{"pad":"` + strings.Repeat("p", size-80) + `"}}`)
				got, err := do(t, client, newRequest(t, p.WebhookURL, webhook{body: body, deliveryID: "dlv_forged_" + strconv.Itoa(i), signature: forged}))
				kept := got.Status == http.StatusBadRequest && got.Body["quarantined"] == true
				refused := got.Status == http.StatusServiceUnavailable && got.Body["quarantined"] == false
				if err != nil || !kept && !refused {
					t.Errorf("forged %s request %d: got %d %v (err %v), want 400 quarantined or 503 not quarantined", name, i, got.Status, got.Body, err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// fillStream publishes streamFill events straight to the stream, with the
// headers the forwarder writes.
func fillStream(t *testing.T, nc *nats.Conn, js jetstream.JetStream) {
	t.Helper()
	ajs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := zautic.SubjectFor(forwarder.DefaultConfig().Stream.SubjectPrefix, "message.delivered")
	if err != nil {
		t.Fatal(err)
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for i := range streamFill {
		id := fmt.Sprintf("evt_fill_%d", i)
		msg := &nats.Msg{Subject: subject, Data: sampleEvent(id, "message.delivered"), Header: nats.Header{}}
		msg.Header.Set(zautic.MessageIDHeader, id)
		msg.Header.Set(zautic.MessageEventTypeHeader, "message.delivered")
		msg.Header.Set(zautic.MessageEventIDHeader, id)
		msg.Header.Set(zautic.MessageTimestampHeader, now)
		msg.Header.Set(zautic.MessageDeliveryIDHeader, fmt.Sprintf("dlv_fill_%d", i))
		msg.Header.Set("Content-Type", "application/json")
		// Under -race the acks lag: wait for room rather than fail.
		if _, err := ajs.PublishMsgAsync(msg, jetstream.WithStallWait(30*time.Second)); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	select {
	case <-ajs.PublishAsyncComplete():
	case <-time.After(time.Minute):
		t.Fatal("the stream's PubAcks did not all arrive within a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, forwarder.DefaultConfig().Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n < streamFill {
		t.Fatalf("stream holds %d events, want %d", n, streamFill)
	}
}

// webhookConnection is the server's client id of the webhook path's
// connection: the one named nats.name (the readers' is <name>-admin).
func webhookConnection(t *testing.T, ns *server.Server) uint64 {
	t.Helper()
	connz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cids []uint64
	for _, c := range connz.Conns {
		if c.Name == bulkheadName {
			cids = append(cids, c.Cid)
		}
	}
	if len(cids) != 1 {
		t.Fatalf("connections named %q: got %v, want one", bulkheadName, cids)
	}
	return cids[0]
}

// runDuringLookups sends signed deliveries at deliveryRate for
// deliveryWindow, polls /readyz every 200 ms, and runs the lookup clients
// meanwhile. It returns each delivery's failure ("" when 200 published on
// the first try), the /readyz statuses and the lookups' statuses.
func runDuringLookups(t *testing.T, p *forwarderProcess) (map[string]string, []int, []int) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var (
		mu         sync.Mutex
		deliveries = map[string]string{}
		readyPolls []int
		lookups    []int
		wg         sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			status, _, err := readyz(p)
			if err != nil {
				status = 0
			}
			mu.Lock()
			readyPolls = append(readyPolls, status)
			mu.Unlock()
		}
	})
	var lookupsDone sync.WaitGroup
	for c := range lookupClients {
		lookupsDone.Go(func() {
			for i := range lookupsEach {
				status := lookUp(client, p, fmt.Sprintf("unknown_%d_%d", c, i))
				mu.Lock()
				lookups = append(lookups, status)
				mu.Unlock()
			}
		})
	}
	var sends sync.WaitGroup
	tick := time.NewTicker(time.Second / deliveryRate)
	for i := range deliveryRate * int(deliveryWindow/time.Second) {
		<-tick.C
		ev := newEvents(fmt.Sprintf("bulkhead%d", i), 1)[0]
		req := newRequest(t, p.WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
		sends.Go(func() {
			got, err := do(t, client, req)
			failure := ""
			if err != nil || got.Status != http.StatusOK || got.Body["status"] != "published" {
				failure = fmt.Sprintf("%d %v (err %v)", got.Status, got.Body, err)
			}
			mu.Lock()
			deliveries[ev.ID] = failure
			mu.Unlock()
		})
	}
	tick.Stop()
	sends.Wait()
	lookupsDone.Wait()
	close(stop)
	wg.Wait()
	return deliveries, readyPolls, lookups
}

// lookUp asks the admin port for id and returns the status, 0 when the
// request failed; a 429 must carry Retry-After and a JSON reason.
func lookUp(client *http.Client, p *forwarderProcess, id string) int {
	resp, err := client.Get(p.AdminURL + "/deliveries/" + id)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var answer struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(resp.Body).Decode(&answer) != nil || answer.Error == "" {
		return -resp.StatusCode // not the project's error body
	}
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		return -resp.StatusCode
	}
	return resp.StatusCode
}

// requireProbesOnWebhookPort asks the webhook port's /healthz and /readyz as
// the kubelet does, with its 2-second timeout: they answer 200 whatever the
// admin port suffers, so a flood there cannot take the pod out of the
// Service or restart it.
func requireProbesOnWebhookPort(t *testing.T, p *forwarderProcess) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	base := "http://" + hostOf(t, p.WebhookURL)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Errorf("probe %s on the webhook port: %v", path, err)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe %s on the webhook port: got %d, want 200", path, resp.StatusCode)
		}
	}
}

// TestAdminIdleConnectionsDoNotHoldTheCeiling fills admin.max_connections
// with idle keep-alive connections, as open tabs of the inspector do: the
// admin listener closes them after admin.idle_timeout, and the next
// request (a metrics scrape) is served instead of waiting for
// http.idle_timeout in the accept queue.
func TestAdminIdleConnectionsDoNotHoldTheCeiling(t *testing.T) {
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	env["FORWARDER_ADMIN_MAX_CONNECTIONS"] = "2"
	env["FORWARDER_ADMIN_IDLE_TIMEOUT"] = "300ms"
	p := startForwarder(t, env)
	p.WaitReady(t)

	idle := make([]*http.Client, 2)
	for i := range idle {
		// A transport each: each keeps its own connection open, idle.
		idle[i] = &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
		t.Cleanup(idle[i].CloseIdleConnections)
		resp, err := idle[i].Get(p.AdminURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Without the idle timeout this would wait in the accept queue for
	// http.idle_timeout (2m), past the client's timeout.
	scrape := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := scrape.Get(p.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("a scrape while idle connections fill admin.max_connections: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("scrape: got %d, want 200", resp.StatusCode)
	}
}
