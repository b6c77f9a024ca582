package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// natsCluster is a JetStream cluster of in-process nats-servers on loopback,
// each with its own store dir and fixed ports so a node can be restarted
// where it was.
type natsCluster struct {
	t       testing.TB
	mu      sync.Mutex
	opts    []*server.Options
	servers []*server.Server
}

// freePorts reserves n loopback ports and releases them for the servers.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var lns []net.Listener
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// startCluster starts an n-node cluster named "zc" and waits until
// JetStream answers through it.
func startCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]))
	}
	c := &natsCluster{t: t, servers: make([]*server.Server, n)}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "zc", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range n {
			c.stop(i)
		}
	})
	c.waitJetStream()
	return c
}

func (c *natsCluster) start(i int) {
	c.t.Helper()
	opts := *c.opts[i]
	ns, err := server.NewServer(&opts)
	if err != nil {
		c.t.Fatalf("node %d: %v", i+1, err)
	}
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("node %d not ready", i+1)
	}
	c.mu.Lock()
	c.servers[i] = ns
	c.mu.Unlock()
}

// stop shuts node i down (no-op when it is down).
func (c *natsCluster) stop(i int) {
	c.mu.Lock()
	ns := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if ns != nil {
		natstest.Stop(ns)
	}
}

// URLs is the comma-separated seed list of every node.
func (c *natsCluster) URLs() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// waitJetStream waits until the meta group has a leader and the account
// answers.
func (c *natsCluster) waitJetStream() {
	c.t.Helper()
	_, js := connect(c.t, c.URLs())
	natstest.CheckFor(c.t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// leaderOf returns the index of the node leading stream, or -1.
func (c *natsCluster) leaderOf(js jetstream.JetStream, stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil || s.CachedInfo().Cluster == nil {
		return -1
	}
	for i, o := range c.opts {
		if o.ServerName == s.CachedInfo().Cluster.Leader {
			return i
		}
	}
	return -1
}

// clusterEnv is a forwarder's environment against c with R3 resources.
func clusterEnv(c *natsCluster) map[string]string {
	env := forwarderEnv(c.URLs())
	env["FORWARDER_STREAM_REPLICAS"] = "3"
	env["FORWARDER_DEDUP_REPLICAS"] = "3"
	return env
}

// TestClusterReplicasStartTogether starts two forwarders at the same instant
// against a fresh cluster: both become ready, and the stream and bucket
// exist once, at R3, created without errors and never "changed".
func TestClusterReplicasStartTogether(t *testing.T) {
	c := startCluster(t, 3)
	var wg sync.WaitGroup
	procs := make([]*forwarderProcess, 2)
	for i := range procs {
		wg.Go(func() { procs[i] = startForwarder(t, clusterEnv(c)) })
	}
	wg.Wait()
	for _, p := range procs {
		p.WaitReady(t)
	}
	_, js := connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"ZAUTIC", "KV_zautic-dedup", "ZAUTIC_QUARANTINE"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s replicas: got %d, want 3", name, got)
		}
	}
	names := js.StreamNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if len(all) != 3 {
		t.Errorf("streams: got %v, want exactly ZAUTIC, KV_zautic-dedup and ZAUTIC_QUARANTINE", all)
	}
	for i, p := range procs {
		logs := p.Logs()
		if strings.Contains(logs, `"level":"error"`) || strings.Contains(logs, "settings changed") {
			t.Errorf("forwarder %d logged an error or a settings change:\n%s", i, trimmed(logs))
		}
	}
	for i, p := range procs {
		body := sampleEvent(fmt.Sprintf("evt_start_%d", i), "webhook.test")
		if got := send(t, p.WebhookURL, webhook{body: body, deliveryID: fmt.Sprintf("dlv_start_%d", i)}); got.Status != 200 {
			t.Errorf("forwarder %d: got %d %v, want 200", i, got.Status, got.Body)
		}
	}
}

// TestClusterNodeLossUnderLoad runs two forwarder replicas in front of an R3
// cluster while a retrying sender spreads 3,000 deliveries across them at
// random, 30 % of them sent to both replicas at once. Meanwhile one node is
// shut down and later restarted: once a follower, once the stream's leader.
// Afterwards every event is in the stream exactly once.
func TestClusterNodeLossUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("heaviest scenario: a 3-node cluster losing a node under load (CI runs it)")
	}
	tests := []struct {
		name   string
		leader bool
	}{
		{"follower lost", false},
		{"stream leader lost", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, 3)
			replicas := []*forwarderProcess{startForwarder(t, clusterEnv(c)), startForwarder(t, clusterEnv(c))}
			for _, p := range replicas {
				p.WaitReady(t)
			}
			_, js := connect(t, c.URLs())
			victim := c.leaderOf(js, "ZAUTIC")
			if victim < 0 {
				t.Fatal("stream ZAUTIC has no leader")
			}
			if !tt.leader {
				victim = (victim + 1) % 3
			}
			events := newEvents("cluster", 3000)
			single, both := newSender(replicas[0].WebhookURL, replicas[1].WebhookURL), newSender(replicas[0].WebhookURL, replicas[1].WebhookURL)
			both.Copies = 2
			ctx, cancel := context.WithTimeout(context.Background(), clusterLoadDeadline)
			defer cancel()
			waitSingle := startLoad(ctx, single, events[:2100])
			waitBoth := startLoad(ctx, both, events[2100:])

			waitCount(t, "acknowledged deliveries", func() int64 { return single.Acked() + both.Acked() }, 600)
			c.stop(victim)
			waitCount(t, "acknowledged deliveries", func() int64 { return single.Acked() + both.Acked() }, 1800)
			c.start(victim)

			for _, r := range []*sendReport{waitSingle(), waitBoth()} {
				requireAllAcked(t, r, http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable)
			}
			assertExactlyOnce(t, js, events)
		})
	}
}

// clusterLoadDeadline bounds the sending of the cluster scenario, leader
// elections included.
const clusterLoadDeadline = 2 * time.Minute

// TestClusterStaleDedupReadCaughtByWindow: the KV lookup may be served by a
// lagging replica (direct gets are), and so miss a delivery another
// forwarder replica already stored. The stream leader's Nats-Msg-Id window
// catches what such a read lets through. The stale read is made certain here
// by removing the mark before the retry reaches the other replica.
func TestClusterStaleDedupReadCaughtByWindow(t *testing.T) {
	c := startCluster(t, 3)
	replicas := []*forwarderProcess{startForwarder(t, clusterEnv(c)), startForwarder(t, clusterEnv(c))}
	for _, p := range replicas {
		p.WaitReady(t)
	}
	ev := newEvents("stale", 1)[0]
	if got := send(t, replicas[0].WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID}); got.Body["status"] != "published" {
		t.Fatalf("first delivery: got %d %v, want published", got.Status, got.Body)
	}
	_, js := connect(t, c.URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "zautic-dedup")
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, err := kv.Get(ctx, adminapi.KVKey(ev.ID))
		return err
	})
	if err := kv.Purge(ctx, adminapi.KVKey(ev.ID)); err != nil {
		t.Fatal(err)
	}
	got := send(t, replicas[1].WebhookURL, webhook{body: ev.Body, deliveryID: ev.DeliveryID})
	if got.Status != http.StatusOK || got.Body["status"] != "duplicate" {
		t.Fatalf("retry on the other replica after a stale read: got %d %v, want 200 duplicate", got.Status, got.Body)
	}
	assertExactlyOnce(t, js, []zauticEvent{ev})
}
