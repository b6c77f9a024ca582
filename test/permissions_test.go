package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/secretvolume"
	"github.com/zautic/zautic-forwarder/zautic"
)

// What docs/nats.md's "Running with stream.manage: false" holds: the
// commands that create the resources, the forwarder user's permissions as a
// nats-server authorization block, and the same as nsc commands. The tests
// read them from the page, so that the page and the tests cannot drift.
const (
	natsDoc              = "../docs/nats.md"
	resourcesHeading     = "### Creating the resources"
	userHeading          = "### The forwarder's NATS user"
	forwarderUserName    = "zautic-forwarder"
	forwarderPasswordVar = "ZAUTIC_FORWARDER_NATS_PASSWORD"
	forwarderPassword    = "perm-forwarder-pw"
	adminUser            = "admin"
	adminPassword        = "perm-admin-pw"
	dedupBucket          = "zautic-dedup"
	permSecretB          = "whsec_perm_b_2f81c4"
)

// docBlock returns the first fenced block of info string lang after the
// line heading in doc.
func docBlock(t *testing.T, doc, heading, lang string) string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no heading %q", natsDoc, heading)
	}
	_, block, ok := strings.Cut(after, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("%s has no ```%s block under %q", natsDoc, lang, heading)
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		t.Fatalf("%s: the ```%s block under %q is not closed", natsDoc, lang, heading)
	}
	return block
}

// shellCommands splits a documented shell block into commands, joining the
// lines a trailing backslash continues.
func shellCommands(block string) [][]string {
	var cmds [][]string
	for cmd := range strings.SplitSeq(strings.ReplaceAll(block, "\\\n", " "), "\n") {
		if cmd = strings.TrimSpace(cmd); cmd != "" {
			cmds = append(cmds, shellFields(cmd))
		}
	}
	return cmds
}

// documentedUser parses the page's authorization block with nats-server's
// own configuration parser and returns the user it defines.
func documentedUser(t *testing.T) *server.User {
	t.Helper()
	block := docBlock(t, readDoc(t, natsDoc), userHeading, "text")
	path := filepath.Join(t.TempDir(), "authorization.conf")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(forwarderPasswordVar, forwarderPassword)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the authorization block of %s does not parse: %v", natsDoc, err)
	}
	if len(opts.Users) != 1 || opts.Users[0].Username != forwarderUserName || opts.Users[0].Password != forwarderPassword {
		t.Fatalf("the authorization block of %s: got %d users, want only %q with the password of $%s", natsDoc, len(opts.Users), forwarderUserName, forwarderPasswordVar)
	}
	u := opts.Users[0]
	if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil ||
		len(u.Permissions.Publish.Deny) > 0 || len(u.Permissions.Subscribe.Deny) > 0 || u.Permissions.Response != nil {
		t.Fatalf("the authorization block of %s: want publish and subscribe allow lists only, got %+v", natsDoc, u.Permissions)
	}
	return u
}

// permission is one allowed subject of the forwarder's user.
type permission struct {
	kind    string // "publish" or "subscribe"
	subject string
}

func (p permission) String() string { return p.kind + " " + p.subject }

func permissionsOf(u *server.User) []permission {
	var perms []permission
	for _, s := range u.Permissions.Publish.Allow {
		perms = append(perms, permission{"publish", s})
	}
	for _, s := range u.Permissions.Subscribe.Allow {
		perms = append(perms, permission{"subscribe", s})
	}
	return perms
}

// without returns u with the one permission p taken away. To nats-server
// an empty subscribe allow list restricts nothing, so a list left empty
// becomes a deny of everything instead.
func without(u *server.User, p permission) *server.User {
	strip := func(sp *server.SubjectPermission) *server.SubjectPermission {
		if sp == nil {
			return nil
		}
		allow := slices.DeleteFunc(slices.Clone(sp.Allow), func(s string) bool { return s == p.subject })
		if len(allow) == 0 {
			return &server.SubjectPermission{Deny: []string{">"}}
		}
		return &server.SubjectPermission{Allow: allow}
	}
	perms := &server.Permissions{Publish: u.Permissions.Publish, Subscribe: u.Permissions.Subscribe}
	switch p.kind {
	case "publish":
		perms.Publish = strip(perms.Publish)
	case "subscribe":
		perms.Subscribe = strip(perms.Subscribe)
	}
	return &server.User{Username: u.Username, Password: u.Password, Permissions: perms}
}

// startAuthServer starts a nats-server with JetStream whose users are an
// unrestricted administrator and forwarder.
func startAuthServer(t *testing.T, forwarder *server.User) *server.Server {
	t.Helper()
	return natstest.Start(t, "", 0, func(o *server.Options) {
		o.Users = []*server.User{{Username: adminUser, Password: adminPassword}, forwarder}
	})
}

// createDocumentedResources runs the page's nats commands as the
// administrator.
func createDocumentedResources(t *testing.T, cli, url string, auth ...string) {
	t.Helper()
	cmds := shellCommands(docBlock(t, readDoc(t, natsDoc), resourcesHeading, "sh"))
	if len(cmds) != 3 {
		t.Fatalf("%s: got %d commands under %q, want 3 (stream, bucket, quarantine)", natsDoc, len(cmds), resourcesHeading)
	}
	for _, cmd := range cmds {
		if cmd[0] != "nats" {
			t.Fatalf("%s: %q under %q is not a nats command", natsDoc, cmd, resourcesHeading)
		}
		args := append(append(cmd[1:], "--server", url), auth...)
		if res := runProgram(t, cli, nil, "", args...); res.Code != 0 {
			t.Fatalf("%q exited %d:\n%s%s", cmd, res.Code, res.Stdout, res.Stderr)
		}
	}
}

// streamConfigs returns the configurations of the three resources, without
// the metadata the server adds.
func streamConfigs(t *testing.T, js jetstream.JetStream) map[string]jetstream.StreamConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	configs := map[string]jetstream.StreamConfig{}
	for _, name := range []string{eventsStream, "KV_" + dedupBucket, quarantineStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		cfg.Metadata = nil
		configs[name] = cfg
	}
	return configs
}

// TestUnmanagedPermissionsCommandsMatchForwarder: the page's nats commands
// create the stream, the bucket and the quarantine exactly as the forwarder
// creates them with stream.manage true and the default configuration.
func TestUnmanagedPermissionsCommandsMatchForwarder(t *testing.T) {
	cli := requireCLI(t)
	managed := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(managed.ClientURL()))
	p.WaitReady(t)
	_, managedJS := connect(t, managed.ClientURL())
	want := streamConfigs(t, managedJS)
	p.Kill()

	documented := natstest.Start(t, "", 0)
	createDocumentedResources(t, cli, documented.ClientURL())
	_, documentedJS := connect(t, documented.ClientURL())
	got := streamConfigs(t, documentedJS)
	for name := range want {
		if !reflect.DeepEqual(got[name], want[name]) {
			g, _ := json.Marshal(got[name])
			w, _ := json.Marshal(want[name])
			t.Errorf("stream %s created by the documented command:\n got %s\nwant %s (as the forwarder creates it)", name, g, w)
		}
	}
}

// TestUnmanagedPermissionsNSCMatchesConfig: the page's nsc command grants
// exactly the subjects of its authorization block.
func TestUnmanagedPermissionsNSCMatchesConfig(t *testing.T) {
	u := documentedUser(t)
	cmds := shellCommands(docBlock(t, readDoc(t, natsDoc), userHeading, "sh"))
	if len(cmds) == 0 || !slices.Equal(cmds[0][:4], []string{"nsc", "add", "user", forwarderUserName}) {
		t.Fatalf("%s: the first command under %q: got %q, want nsc add user %s …", natsDoc, userHeading, cmds, forwarderUserName)
	}
	var pub, sub []string
	args := cmds[0][4:]
	for i := 0; i < len(args); i += 2 {
		if i+1 >= len(args) {
			t.Fatalf("nsc flag %q has no value", args[i])
		}
		values := strings.Split(args[i+1], ",")
		switch args[i] {
		case "--allow-pub":
			pub = append(pub, values...)
		case "--allow-sub":
			sub = append(sub, values...)
		default:
			t.Fatalf("nsc flag %q: want only --allow-pub and --allow-sub", args[i])
		}
	}
	assertSameSubjects(t, pub, u.Permissions.Publish.Allow)
	assertSameSubjects(t, sub, u.Permissions.Subscribe.Allow)
}

// failsWithout is, for each documented permission, the first step of a
// permission run that fails without it: what docs/nats.md's table says
// happens.
var failsWithout = map[string]string{
	"publish zautic.>":                                      stepReady,
	"publish zautic-quarantine.>":                           stepQuarantine,
	"publish $KV.zautic-dedup.>":                            stepReady,
	"publish $JS.API.DIRECT.GET.KV_zautic-dedup.>":          stepReady,
	"publish $JS.API.STREAM.INFO.ZAUTIC":                    stepReady,
	"publish $JS.API.STREAM.INFO.KV_zautic-dedup":           stepReady,
	"publish $JS.API.STREAM.INFO.ZAUTIC_QUARANTINE":         stepQuarantine,
	"publish $JS.API.STREAM.MSG.GET.ZAUTIC":                 stepLookup,
	"publish $JS.API.STREAM.MSG.GET.ZAUTIC_QUARANTINE":      stepReplayBySeq,
	"publish $JS.API.STREAM.MSG.DELETE.ZAUTIC_QUARANTINE":   stepReplayBySeq,
	"publish $JS.API.CONSUMER.CREATE.ZAUTIC.>":              stepRepair,
	"publish $JS.API.CONSUMER.CREATE.ZAUTIC_QUARANTINE.>":   stepList,
	"publish $JS.API.CONSUMER.MSG.NEXT.ZAUTIC.*":            stepRepair,
	"publish $JS.API.CONSUMER.MSG.NEXT.ZAUTIC_QUARANTINE.*": stepList,
	"publish $JS.API.CONSUMER.DELETE.ZAUTIC.*":              stepConsumersGone,
	"publish $JS.API.CONSUMER.DELETE.ZAUTIC_QUARANTINE.*":   stepConsumersGone,
	"subscribe _INBOX.>":                                    stepReady,
}

// TestUnmanagedPermissionsEndToEnd creates the resources with the page's
// commands and runs the forwarder with stream.manage false as a user with
// exactly the page's permissions: it forwards, answers a duplicate, repairs
// a missing mark, quarantines, lists, looks up, replays by hand and by
// itself, and leaves no consumer behind. Then, for each permission, the
// same run as a user without only that one fails, at the step failsWithout
// names. Each run has a server of its own; they run one after the other.
func TestUnmanagedPermissionsEndToEnd(t *testing.T) {
	cli := requireCLI(t)
	u := documentedUser(t)
	perms := permissionsOf(u)
	documented := make([]string, len(perms))
	for i, p := range perms {
		documented[i] = p.String()
	}
	assertSameSubjects(t, slices.Collect(maps.Keys(failsWithout)), documented)
	t.Run("documented permissions", func(t *testing.T) {
		start := time.Now()
		if err := permissionRun(t, cli, u); err != nil {
			t.Fatalf("with every documented permission: %v", err)
		}
		t.Logf("run took %s", time.Since(start).Round(time.Millisecond))
	})
	if testing.Short() {
		t.Skip("-short: the runs without each permission take about a minute and a half in all")
	}
	for _, p := range perms {
		t.Run("without "+p.String(), func(t *testing.T) {
			start := time.Now()
			err := permissionRun(t, cli, without(u, p))
			var step *stepError
			if !errors.As(err, &step) {
				t.Fatalf("without %s: the run succeeded, so the permission is not needed", p)
			}
			if want := failsWithout[p.String()]; step.step != want {
				t.Errorf("without %s: the run failed at %q (%v), want at %q", p, step.step, step.err, want)
			}
			t.Logf("fails at %s after %s: %v", step.step, time.Since(start).Round(time.Millisecond), step.err)
		})
	}
}

// The steps of a permission run, in order.
const (
	stepStart           = "start"
	stepReady           = "ready"
	stepForward         = "forward"
	stepDuplicate       = "duplicate"
	stepRepair          = "mark repair"
	stepQuarantine      = "quarantine"
	stepList            = "quarantine listing"
	stepLookupKept      = "lookup of a quarantined delivery"
	stepReplayBySeq     = "replay by sequence"
	stepAutoReplay      = "automatic replay"
	stepLookup          = "lookup"
	stepConsumersGone   = "reading consumers deleted"
	stepNoPermissionErr = "no permission error logged"
)

// stepError is a permission run that failed at step.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

// pollFor calls fn every 50ms until it returns nil or total has passed, and
// returns its last error.
func pollFor(total time.Duration, fn func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// permissionRun is one run against a fresh server: the resources created by
// the documented commands, then the forwarder as user. It returns a
// *stepError naming the first step that failed.
func permissionRun(t *testing.T, cli string, user *server.User) error {
	ns := startAuthServer(t, user)
	url := ns.ClientURL()
	createDocumentedResources(t, cli, url, "--user", adminUser, "--password", adminPassword)
	_, js := connect(t, strings.Replace(url, "nats://", "nats://"+adminUser+":"+adminPassword+"@", 1))
	seedUnmarkedEvent(t, js)

	vol := secretvolume.New(t, map[string]string{"webhook-secrets": testSecret + "\n"})
	env := forwarderEnv(url)
	delete(env, zautic.SecretEnv)
	env["FORWARDER_WEBHOOK_SECRETS_FILE"] = vol.Path("webhook-secrets")
	env["FORWARDER_STREAM_MANAGE"] = "false"
	env["FORWARDER_NATS_USER"] = user.Username
	env["FORWARDER_NATS_PASSWORD"] = user.Password
	env["FORWARDER_NATS_PUBLISH_TIMEOUT"] = "2s"
	p := launchForwarder(t, env)
	select {
	case a := <-p.addrs:
		p.WebhookURL = "http://" + a["webhook"] + "/webhooks/zautic"
		p.AdminURL = "http://" + a["admin"]
	case <-p.done:
		return &stepError{step: stepStart, err: fmt.Errorf("exited: %v: %s", p.exitErr, trimmed(p.Logs()))}
	case <-time.After(15 * time.Second):
		return &stepError{step: stepStart, err: errors.New("no listeners after 15s")}
	}
	r := &permRun{t: t, p: p, js: js, vol: vol}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{stepReady, r.ready},
		{stepForward, r.forward},
		{stepDuplicate, r.duplicate},
		{stepRepair, r.repair},
		{stepQuarantine, r.quarantine},
		{stepList, r.list},
		{stepLookupKept, r.lookupKept},
		{stepReplayBySeq, r.replayBySeq},
		{stepAutoReplay, r.autoReplay},
		{stepLookup, r.lookup},
		{stepConsumersGone, r.consumersGone},
		{stepNoPermissionErr, r.noPermissionError},
	}
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.run(ctx)
		cancel()
		if err != nil {
			return &stepError{step: s.name, err: err}
		}
	}
	return nil
}

// seedUnmarkedEvent stores an event as a forwarder that died between the
// PubAck and the mark leaves it: the repair at start must create its mark.
func seedUnmarkedEvent(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	msg := nats.NewMsg("zautic.message.delivered")
	msg.Header.Set(jetstream.MsgIDHeader, "evt_perm_seed")
	msg.Header.Set(zautic.MessageEventIDHeader, "evt_perm_seed")
	msg.Data = sampleEvent("evt_perm_seed", "message.delivered")
	if _, err := js.PublishMsg(testContext(t), msg); err != nil {
		t.Fatal(err)
	}
}

// permRun is what the steps of a run share.
type permRun struct {
	t      *testing.T
	p      *forwarderProcess
	js     jetstream.JetStream // the administrator's
	vol    *secretvolume.Volume
	oldSeq uint64 // the quarantine sequence of the delivery signed too long ago
}

// call sends a request with a JSON body (none when empty) to url and
// decodes a 200 answer into v; any other status is an error.
func call(ctx context.Context, method, url, body string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: got %d %s, want 200", method, url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return json.Unmarshal(raw, v)
}

func (r *permRun) ready(ctx context.Context) error {
	return pollFor(5*time.Second, func() error {
		var body map[string]any
		return call(ctx, http.MethodGet, r.p.AdminURL+"/readyz", "", &body)
	})
}

// post sends w to the webhook listener and returns the answer.
func (r *permRun) post(ctx context.Context, w webhook) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.p.WebhookURL, bytes.NewReader(w.body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(zautic.RequestSignatureHeader, w.signature)
	req.Header.Set(zautic.RequestDeliveryIDHeader, w.deliveryID)
	return do(r.t, http.DefaultClient, req)
}

// permWebhook is delivery n signed with secret at at.
func permWebhook(n int, secret string, at time.Time) webhook {
	body := sampleEvent(fmt.Sprintf("evt_perm_%d", n), "message.delivered")
	return webhook{body: body, deliveryID: fmt.Sprintf("dlv_perm_%d", n), signature: zautic.Sign([]byte(secret), at.Unix(), body)}
}

func (r *permRun) forward(ctx context.Context) error {
	got, err := r.post(ctx, permWebhook(1, testSecret, time.Now()))
	if err != nil {
		return err
	}
	if got.Status != http.StatusOK || got.Body["status"] != "published" {
		return fmt.Errorf("got %d %v, want 200 published", got.Status, got.Body)
	}
	if err := r.onStreamOnce(ctx, "evt_perm_1"); err != nil {
		return err
	}
	// The mark is sent after the answer, without waiting for it.
	return pollFor(5*time.Second, func() error { return r.hasMark(ctx, "evt_perm_1") })
}

func (r *permRun) duplicate(ctx context.Context) error {
	got, err := r.post(ctx, permWebhook(1, testSecret, time.Now()))
	if err != nil {
		return err
	}
	if got.Status != http.StatusOK || got.Body["status"] != "duplicate" {
		return fmt.Errorf("got %d %v, want 200 duplicate", got.Status, got.Body)
	}
	return r.onStreamOnce(ctx, "evt_perm_1")
}

// repair waits for the repair at start, which must have created the
// seeded event's mark.
func (r *permRun) repair(ctx context.Context) error {
	err := pollFor(5*time.Second, func() error {
		logs := r.p.Logs()
		switch {
		case strings.Contains(logs, `"msg":"mark repair stopped`):
			return errors.New(`"mark repair stopped" logged`)
		case !strings.Contains(logs, `"msg":"mark repair finished"`):
			return errors.New(`no "mark repair finished" logged`)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.hasMark(ctx, "evt_perm_seed")
}

// hasMark checks that the bucket holds key.
func (r *permRun) hasMark(ctx context.Context, key string) error {
	kv, err := r.js.KeyValue(ctx, dedupBucket)
	if err != nil {
		return err
	}
	if _, err := kv.Get(ctx, key); err != nil {
		return fmt.Errorf("mark %q: %w", key, err)
	}
	return nil
}

// onStreamOnce checks that the events stream holds event id exactly once.
// It reads message by message: a consumer of the test's would count among
// the forwarder's at stepConsumersGone.
func (r *permRun) onStreamOnce(ctx context.Context, id string) error {
	s, err := r.js.Stream(ctx, eventsStream)
	if err != nil {
		return err
	}
	state := s.CachedInfo().State
	n := 0
	for seq := state.FirstSeq; state.Msgs > 0 && seq <= state.LastSeq; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("get message %d: %w", seq, err)
		}
		if msg.Header.Get(zautic.MessageEventIDHeader) == id {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("event %s on stream %s %d times, want once", id, eventsStream, n)
	}
	return nil
}

// quarantine sends a delivery signed with a secret the forwarder does not
// have yet, and one signed too long ago.
func (r *permRun) quarantine(ctx context.Context) error {
	for _, w := range []webhook{permWebhook(2, permSecretB, time.Now()), permWebhook(3, testSecret, time.Now().Add(-time.Hour))} {
		got, err := r.post(ctx, w)
		if err != nil {
			return err
		}
		if got.Status != http.StatusBadRequest || got.Body["quarantined"] != true {
			return fmt.Errorf("%s: got %d %v, want 400 with \"quarantined\":true", w.deliveryID, got.Status, got.Body)
		}
	}
	return nil
}

func (r *permRun) list(ctx context.Context) error {
	var answer struct {
		Entries []struct {
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
		} `json:"entries"`
	}
	if err := call(ctx, http.MethodGet, r.p.AdminURL+"/quarantine", "", &answer); err != nil {
		return err
	}
	if len(answer.Entries) != 2 {
		return fmt.Errorf("GET /quarantine: got %d entries, want 2", len(answer.Entries))
	}
	for _, e := range answer.Entries {
		if e.Reason == "timestamp_out_of_tolerance" {
			r.oldSeq = e.Seq
		}
	}
	if r.oldSeq == 0 {
		return fmt.Errorf("GET /quarantine: no timestamp_out_of_tolerance entry in %+v", answer.Entries)
	}
	return nil
}

func (r *permRun) lookupKept(ctx context.Context) error {
	var answer struct {
		Status string `json:"status"`
	}
	if err := call(ctx, http.MethodGet, r.p.AdminURL+deliveryPath("dlv_perm_2"), "", &answer); err != nil {
		return err
	}
	if answer.Status != "quarantined" {
		return fmt.Errorf("GET /deliveries/dlv_perm_2: status %q, want quarantined", answer.Status)
	}
	return nil
}

func (r *permRun) replayBySeq(ctx context.Context) error {
	var answer struct {
		Results []struct {
			Outcome string `json:"outcome"`
			Error   string `json:"error"`
		} `json:"results"`
	}
	body := fmt.Sprintf(`{"seqs":[%d],"ignore_tolerance":true}`, r.oldSeq)
	if err := call(ctx, http.MethodPost, r.p.AdminURL+"/quarantine/replay", body, &answer); err != nil {
		return err
	}
	if len(answer.Results) != 1 || answer.Results[0].Outcome != "published" {
		return fmt.Errorf("replay of seq %d: got %+v, want published", r.oldSeq, answer.Results)
	}
	if err := r.onStreamOnce(ctx, "evt_perm_3"); err != nil {
		return err
	}
	return r.quarantineHolds(ctx, 1)
}

// quarantineHolds checks the number of entries in the quarantine stream.
func (r *permRun) quarantineHolds(ctx context.Context, want uint64) error {
	s, err := r.js.Stream(ctx, quarantineStream)
	if err != nil {
		return err
	}
	if n := s.CachedInfo().State.Msgs; n != want {
		return fmt.Errorf("quarantine holds %d entries, want %d", n, want)
	}
	return nil
}

// autoReplay gives the forwarder the secret it lacked: the kept delivery
// must be published and leave the quarantine by itself.
func (r *permRun) autoReplay(ctx context.Context) error {
	r.vol.Update(r.t, map[string]string{"webhook-secrets": testSecret + "\n" + permSecretB + "\n"})
	return pollFor(10*time.Second, func() error {
		if err := r.onStreamOnce(ctx, "evt_perm_2"); err != nil {
			return err
		}
		return r.quarantineHolds(ctx, 0)
	})
}

// lookup finds a delivery by its event id, the dedup key (through the
// mark), and by its delivery id (through a scan of the stream's headers),
// and lists the recent deliveries.
func (r *permRun) lookup(ctx context.Context) error {
	for _, id := range []string{"evt_perm_1", "dlv_perm_1"} {
		var answer struct {
			Status  string `json:"status"`
			EventID string `json:"event_id"`
		}
		if err := call(ctx, http.MethodGet, r.p.AdminURL+deliveryPath(id), "", &answer); err != nil {
			return err
		}
		if answer.Status != "published" || answer.EventID != "evt_perm_1" {
			return fmt.Errorf("GET /deliveries/%s: got %+v, want published evt_perm_1", id, answer)
		}
	}
	var page struct {
		Deliveries []struct {
			EventID string `json:"event_id"`
		} `json:"deliveries"`
	}
	if err := call(ctx, http.MethodGet, r.p.AdminURL+"/deliveries?limit=10", "", &page); err != nil {
		return err
	}
	if len(page.Deliveries) != 4 {
		return fmt.Errorf("GET /deliveries: got %d deliveries, want 4 (the seeded one and evt_perm_1 to 3)", len(page.Deliveries))
	}
	return nil
}

// consumersGone checks that the forwarder deleted its reading consumers.
func (r *permRun) consumersGone(ctx context.Context) error {
	return pollFor(3*time.Second, func() error {
		for _, name := range []string{eventsStream, quarantineStream} {
			s, err := r.js.Stream(ctx, name)
			if err != nil {
				return err
			}
			if n := s.CachedInfo().State.Consumers; n != 0 {
				return fmt.Errorf("stream %s has %d consumers left", name, n)
			}
		}
		return nil
	})
}

// noPermissionError checks that nats-server denied the forwarder nothing
// during the run, including what no step above observes.
func (r *permRun) noPermissionError(context.Context) error {
	for line := range strings.Lines(r.p.Logs()) {
		if strings.Contains(strings.ToLower(line), "permissions violation") {
			return fmt.Errorf("logged: %s", strings.TrimSpace(line))
		}
	}
	return nil
}
