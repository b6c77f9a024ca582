package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/secretvolume"
	"github.com/zautic/zautic-forwarder/zautic"
)

// signedWith is a webhook signed with secret now.
func signedWith(secret string, n int64) webhook {
	body := sampleEvent(fmt.Sprintf("evt_rot_%d", n), "message.delivered")
	return webhook{
		body:       body,
		deliveryID: fmt.Sprintf("dlv_rot_%d", n),
		signature:  zautic.Sign([]byte(secret), time.Now().Unix(), body),
	}
}

// waitForReload polls the logs until a "webhook secrets reloaded" line with
// count secrets appears after the first skip such lines, and returns what
// triggered it.
func waitForReload(t testing.TB, p *forwarderProcess, skip, count int) string {
	t.Helper()
	var trigger string
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		var counts []int
		var triggers []string
		for line := range strings.Lines(p.Logs()) {
			var entry struct {
				Msg     string `json:"msg"`
				Count   int    `json:"count"`
				Trigger string `json:"trigger"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "webhook secrets reloaded" {
				counts, triggers = append(counts, entry.Count), append(triggers, entry.Trigger)
			}
		}
		if len(counts) <= skip || counts[skip] != count {
			return fmt.Errorf("reloads logged so far: counts %v, want reload %d with %d secrets", counts, skip+1, count)
		}
		trigger = triggers[skip]
		return nil
	})
	return trigger
}

// rotationTraffic sends signed webhooks from several workers until stopped.
// Each worker signs with the secret its current phase names, so that the
// test can switch the sender to the new secret as Zautic would.
type rotationTraffic struct {
	p       *forwarderProcess
	secrets [][]string // per phase, the secrets signed with in turn
	phase   atomic.Int32
	sent    atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	// workerPhase[i] is the phase of the last request worker i completed.
	workerPhase []atomic.Int32

	mu       sync.Mutex
	failures []string
}

func startRotationTraffic(p *forwarderProcess, workers int, secrets [][]string) *rotationTraffic {
	r := &rotationTraffic{p: p, secrets: secrets, stop: make(chan struct{}), workerPhase: make([]atomic.Int32, workers)}
	for i := range workers {
		r.wg.Go(func() { r.work(i) })
	}
	return r
}

func (r *rotationTraffic) work(worker int) {
	client := &http.Client{Timeout: 30 * time.Second}
	for turn := 0; ; turn++ {
		select {
		case <-r.stop:
			return
		default:
		}
		phase := r.phase.Load()
		choices := r.secrets[phase]
		secret := choices[turn%len(choices)]
		n := r.sent.Add(1)
		w := signedWith(secret, n)
		req, err := http.NewRequest(http.MethodPost, r.p.WebhookURL, strings.NewReader(string(w.body)))
		if err != nil {
			r.fail("build request: %v", err)
			return
		}
		req.Header.Set(zautic.RequestSignatureHeader, w.signature)
		req.Header.Set(zautic.RequestDeliveryIDHeader, w.deliveryID)
		resp, err := client.Do(req)
		if err != nil {
			r.fail("request %d (phase %d): %v", n, phase, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			r.fail("request %d signed in phase %d with secret %d of %d: status %d", n, phase, turn%len(choices)+1, len(choices), resp.StatusCode)
		}
		r.workerPhase[worker].Store(phase)
	}
}

func (r *rotationTraffic) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// waitSent polls until at least n more requests went out.
func (r *rotationTraffic) waitSent(t testing.TB, n int64) {
	t.Helper()
	target := r.sent.Load() + n
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if got := r.sent.Load(); got < target {
			return fmt.Errorf("%d requests sent, want %d", got, target)
		}
		return nil
	})
}

// switchPhase moves the senders to phase and waits until every worker has
// completed a request begun in it, so that no request signed in an earlier
// phase is still on its way.
func (r *rotationTraffic) switchPhase(t testing.TB, phase int32) {
	t.Helper()
	r.phase.Store(phase)
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		for i := range r.workerPhase {
			if got := r.workerPhase[i].Load(); got != phase {
				return fmt.Errorf("worker %d still in phase %d", i, got)
			}
		}
		return nil
	})
}

func (r *rotationTraffic) finish() []string {
	close(r.stop)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures
}

// TestSecretRotationUnderTraffic rotates webhook.secrets_file in a
// kubelet-style volume, old -> old+new -> new, while workers keep sending
// correctly signed webhooks: signed with old until the forwarder has loaded
// the overlap, then with both, then with new only before old is removed. No
// request may be rejected; afterwards old is refused and new accepted, and
// neither value appears in the logs.
func TestSecretRotationUnderTraffic(t *testing.T) {
	const (
		oldSecret = "whsec_old_6f1d0c8e2b7a4935"
		newSecret = "whsec_new_93ab57e0d4c21f68"
	)
	vol := secretvolume.New(t, map[string]string{"webhook-secrets": oldSecret + "\n"})
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
	p := startForwarder(t, env)
	p.WaitReady(t)

	traffic := startRotationTraffic(p, 3, [][]string{{oldSecret}, {oldSecret, newSecret}, {newSecret}})
	traffic.waitSent(t, 20)

	vol.Update(t, map[string]string{"webhook-secrets": oldSecret + "\n" + newSecret + "\n"})
	waitForReload(t, p, 0, 2)
	traffic.switchPhase(t, 1)
	traffic.waitSent(t, 20)

	traffic.switchPhase(t, 2)
	vol.Update(t, map[string]string{"webhook-secrets": newSecret + "\n"})
	waitForReload(t, p, 1, 1)
	traffic.waitSent(t, 20)

	failures := traffic.finish()
	if len(failures) > 0 {
		t.Fatalf("%d of %d correctly signed requests failed during the rotation; first: %s", len(failures), traffic.sent.Load(), failures[0])
	}

	n := traffic.sent.Load()
	t.Logf("%d signed requests sent during the rotation, all accepted", n)
	if got := send(t, p.WebhookURL, signedWith(oldSecret, n+1)); got.Status != http.StatusBadRequest {
		t.Errorf("signed with the removed secret: got %d, want 400", got.Status)
	}
	if got := send(t, p.WebhookURL, signedWith(newSecret, n+2)); got.Status != http.StatusOK {
		t.Errorf("signed with the new secret: got %d, want 200", got.Status)
	}
	for _, secret := range []string{oldSecret, newSecret} {
		if strings.Contains(p.Logs(), secret) {
			t.Errorf("a secret value appears in the process logs")
		}
	}
}

// TestSecretReloadOnSIGHUP points webhook.secret_file at a symlink into a
// directory the forwarder does not watch, changes the target, and sends
// SIGHUP: the new secret is accepted without a restart.
func TestSecretReloadOnSIGHUP(t *testing.T) {
	const (
		before = "whsec_before_hup_41c2"
		after  = "whsec_after_hup_9d7e"
	)
	target := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(target, []byte(before+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	env := forwarderEnv(natstest.Start(t, "", 0).ClientURL())
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRET_FILE"] = link
	p := startForwarder(t, env)
	p.WaitReady(t)
	if got := send(t, p.WebhookURL, signedWith(before, 1)); got.Status != http.StatusOK {
		t.Fatalf("signed with the first secret: got %d, want 200", got.Status)
	}

	tmp := target + ".tmp"
	if err := os.WriteFile(tmp, []byte(after+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	if trigger := waitForReload(t, p, 0, 1); trigger != "SIGHUP" {
		t.Errorf("reload trigger: got %q, want SIGHUP", trigger)
	}
	if got := send(t, p.WebhookURL, signedWith(after, 2)); got.Status != http.StatusOK {
		t.Errorf("signed with the new secret after SIGHUP: got %d, want 200", got.Status)
	}
	if got := send(t, p.WebhookURL, signedWith(before, 3)); got.Status != http.StatusBadRequest {
		t.Errorf("signed with the replaced secret after SIGHUP: got %d, want 400", got.Status)
	}
}
