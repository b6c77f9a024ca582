package test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

var (
	consumerOnce sync.Once
	consumerPath string
	consumerErr  error
)

// consumerBinary builds examples/consumer next to the forwarder binary, so
// that TestMain's cleanup removes it too.
func consumerBinary(t *testing.T) string {
	t.Helper()
	consumerOnce.Do(func() {
		consumerPath = filepath.Join(filepath.Dir(binary), "consumer")
		out, err := exec.Command("go", "build", "-o", consumerPath, "../examples/consumer").CombinedOutput()
		if err != nil {
			consumerErr = fmt.Errorf("build examples/consumer: %v\n%s", err, out)
		}
	})
	if consumerErr != nil {
		t.Fatal(consumerErr)
	}
	return consumerPath
}

// runConsumer runs the example against natsURL with args, expecting exit 0.
func runConsumer(t *testing.T, natsURL string, args ...string) string {
	t.Helper()
	res := runProgram(t, consumerBinary(t), nil, "", append([]string{"--server", natsURL}, args...)...)
	if res.Code != 0 {
		t.Fatalf("consumer %v exited %d:\n%s%s", args, res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

var processedLine = regexp.MustCompile(`(?m)^processed (\S+) event=evt_\S+ delivery=(dlv_\S+) attempt=(\d+)$`)

// processedSubjects lists the subjects the example processed, by attempt.
func processedSubjects(out string) map[string]string {
	got := map[string]string{}
	for _, m := range processedLine.FindAllStringSubmatch(out, -1) {
		got[m[1]] = m[3]
	}
	return got
}

func messageSubjects() []string {
	var out []string
	for _, typ := range zautic.DocumentedTypes() {
		if strings.HasPrefix(typ, "message.") {
			out = append(out, "zautic."+typ)
		}
	}
	return out
}

// assertDrained checks that the durable consumer has nothing left to
// deliver or to ack, and that acked counts the messages it acked.
func assertDrained(t *testing.T, js jetstream.JetStream, durable string, acked uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, "ZAUTIC", durable)
	if err != nil {
		t.Fatalf("consumer %s: %v", durable, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Consumer < acked {
		t.Errorf("consumer %s: got %d pending, %d awaiting ack, ack floor %d; want 0, 0, at least %d",
			durable, info.NumPending, info.NumAckPending, info.AckFloor.Consumer, acked)
	}
}

// TestConsumerExample feeds the forwarder with send and runs the example:
// it creates its durable consumer, gets the five message events, acks them,
// and a second run resumes after them.
func TestConsumerExample(t *testing.T) {
	p := startEmbedded(t, nil)
	if res := runBinary(t, nil, "", sendArgs(p, "--type", "all")...); res.Code != 0 {
		t.Fatalf("send exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	out := runConsumer(t, p.NATSURL, "--durable", "orders", "--max", "5")
	if !strings.Contains(out, `consuming zautic.message.> from stream ZAUTIC as durable "orders"`) ||
		!strings.Contains(out, "done: 5 processed, 0 duplicates skipped, 0 failures nak'ed, 0 terminated") {
		t.Errorf("output:\n%s", out)
	}
	got := processedSubjects(out)
	for _, subject := range messageSubjects() {
		if got[subject] != "1" {
			t.Errorf("%s: got attempt %q, want processed on the first attempt", subject, got[subject])
		}
	}
	if len(got) != 5 {
		t.Errorf("processed %d subjects, want the 5 message events: %v", len(got), got)
	}
	_, js := connect(t, p.NATSURL)
	assertDrained(t, js, "orders", 5)

	again := runConsumer(t, p.NATSURL, "--durable", "orders", "--idle", "1500ms")
	if !strings.Contains(again, "done: 0 processed") {
		t.Errorf("a second run processed events again:\n%s", again)
	}
}

func TestConsumerNaksAndRedelivers(t *testing.T) {
	p := startEmbedded(t, nil)
	if res := runBinary(t, nil, "", sendArgs(p, "--type", "all")...); res.Code != 0 {
		t.Fatalf("send exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	out := runConsumer(t, p.NATSURL, "--durable", "flaky", "--max", "5", "--fail-first-attempt", "--nak-delay", "100ms")
	if n := strings.Count(out, "attempt=1: simulated transient failure; redelivery in 100ms"); n != 5 {
		t.Errorf("got %d nak'ed first attempts, want 5:\n%s", n, out)
	}
	got := processedSubjects(out)
	for _, subject := range messageSubjects() {
		if got[subject] != "2" {
			t.Errorf("%s: got attempt %q, want processed on redelivery 2", subject, got[subject])
		}
	}
	if !strings.Contains(out, "done: 5 processed, 0 duplicates skipped, 5 failures nak'ed, 0 terminated") {
		t.Errorf("output:\n%s", out)
	}
	_, js := connect(t, p.NATSURL)
	assertDrained(t, js, "flaky", 5)
}

// TestConsumerIdempotency stores a redelivery the forwarder could not stop
// (the same delivery after the stream's duplicate window) and a body that is
// not an event: the example processes the first copy once, skips the second
// by its Nats-Msg-Id, and terminates the garbage instead of retrying it.
func TestConsumerIdempotency(t *testing.T) {
	p := startEmbedded(t, map[string]string{"FORWARDER_STREAM_DUPLICATE_WINDOW": "1s"})
	if res := runBinary(t, nil, "", sendArgs(p, "--type", "message.sent")...); res.Code != 0 {
		t.Fatalf("send exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	_, js := connect(t, p.NATSURL)
	stored := streamMessages(t, js, "ZAUTIC")
	if len(stored) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(stored))
	}
	original := stored[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	copyMsg := &nats.Msg{Subject: original.Subject(), Header: original.Headers(), Data: original.Data()}
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		ack, err := js.PublishMsg(ctx, copyMsg)
		if err != nil {
			return err
		}
		if ack.Duplicate {
			return fmt.Errorf("still inside the duplicate window")
		}
		return nil
	})
	garbage := &nats.Msg{Subject: "zautic.message.sent", Header: nats.Header{}, Data: []byte("not json")}
	garbage.Header.Set(jetstream.MsgIDHeader, "dlv_garbage")
	if _, err := js.PublishMsg(ctx, garbage); err != nil {
		t.Fatal(err)
	}

	out := runConsumer(t, p.NATSURL, "--durable", "idempotent", "--max", "3")
	id := original.Headers().Get(jetstream.MsgIDHeader)
	for _, want := range []string{
		"processed zautic.message.sent event=",
		"skipped zautic.message.sent delivery=" + id + ": already processed",
		"terminated zautic.message.sent delivery=dlv_garbage: not a JSON event",
		"done: 1 processed, 1 duplicates skipped, 0 failures nak'ed, 1 terminated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	assertDrained(t, js, "idempotent", 1)
}

// The commands of the README's tour, verbatim, in order. TestTour runs each one,
// adding only what points it at the test's random ports.
const (
	tourBuild     = "go build -o zautic-forwarder ."
	tourSecret    = "export ZAUTIC_WEBHOOK_SECRET=dev-secret"
	tourServe     = "./zautic-forwarder"
	tourReady     = "curl -s localhost:9090/readyz"
	tourSub       = recipeSubAll
	tourSendAll   = "./zautic-forwarder send --type all"
	tourInfo      = recipeStreamInfo
	tourAddBill   = recipeConsumerAdd
	tourConsume   = "go run ./examples/consumer --durable billing --max 5"
	tourSendLoad  = "./zautic-forwarder send --type message.delivered --count 1000 --concurrency 16 --duplicates 0.2"
	tourDoc       = "../README.md"
	tourHeading   = "## A five-minute tour"
	tourSecretVal = "dev-secret"
)

var tourCommands = []string{tourBuild, tourSecret, tourServe, tourReady, tourSub, tourSendAll, tourInfo, tourAddBill, tourConsume, tourSendLoad}

// TestTourDocMatchesTest keeps the README's tour made only of commands
// TestTour (or TestMain, for the build) runs.
func TestTourDocMatchesTest(t *testing.T) {
	doc := markdownSection(t, readDoc(t, tourDoc), tourHeading)
	var inBlock bool
	var found []string
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock && strings.TrimPrefix(line, "```") == "sh"
		case inBlock && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#"):
			found = append(found, line)
		}
	}
	if strings.Join(found, "\n") != strings.Join(tourCommands, "\n") {
		t.Errorf("README tour commands:\n%s\nwant, in order:\n%s", strings.Join(found, "\n"), strings.Join(tourCommands, "\n"))
	}
}

// TestTour runs the README's five-minute tour: the forwarder in
// embedded mode, send --type all, nats sub, a durable consumer added with the
// CLI and drained by the example, and a load run with duplicates.
func TestTour(t *testing.T) {
	// tourBuild: TestMain builds the binary with the same go build.
	// tourSecret, tourServe: the plain command, the secret in the environment.
	env := forwarderEnv("")
	env[zautic.SecretEnv] = tourSecretVal
	env["FORWARDER_NATS_EMBEDDED_LISTEN"] = "127.0.0.1:0"
	env["FORWARDER_NATS_EMBEDDED_STORE_DIR"] = t.TempDir()
	p := startForwarder(t, env)
	p.WaitReady(t)
	tourCurlReady(t, p)
	sendEnv := map[string]string{zautic.SecretEnv: tourSecretVal}

	var sub *tourSubscription
	if cli := natsCLI(); cli != "" {
		sub = startTourSub(t, cli, p, sendEnv) // runs until the test ends, as in a terminal
	}
	res := runBinary(t, sendEnv, "", append(shellFields(tourSendAll)[1:], "--url", p.WebhookURL)...)
	if res.Code != 0 || !strings.Contains(res.Stdout, "status:   200=23") {
		t.Fatalf("%s: exit %d\n%s%s", tourSendAll, res.Code, res.Stdout, res.Stderr)
	}
	t.Run(tourSub, func(t *testing.T) {
		requireCLI(t)
		sub.waitAll(t)
	})
	t.Run(tourInfo, func(t *testing.T) {
		out := runRecipe(t, requireCLI(t), tourInfo, p.NATSURL).Stdout
		if !strings.Contains(out, "Subjects: zautic.>") {
			t.Errorf("stream info:\n%s", out)
		}
	})
	t.Run(tourAddBill, func(t *testing.T) { runRecipe(t, requireCLI(t), tourAddBill, p.NATSURL) })

	out := runConsumer(t, p.NATSURL, shellFields(tourConsume)[3:]...)
	if got := processedSubjects(out); len(got) != 5 || !strings.Contains(out, "done: 5 processed") {
		t.Errorf("%s:\n%s", tourConsume, out)
	}
	_, js := connect(t, p.NATSURL)
	assertDrained(t, js, "billing", 5)

	tourLoad(t, p, js, sendEnv)
}

// tourCurlReady runs the readiness curl against the admin listener.
func tourCurlReady(t *testing.T, p *forwarderProcess) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if err := expectStatus(p.AdminURL+"/readyz", http.StatusOK); err != nil {
			t.Fatal(err)
		}
		return
	}
	args := shellFields(strings.Replace(tourReady, "localhost:9090", strings.TrimPrefix(p.AdminURL, "http://"), 1))
	res := runProgram(t, "curl", nil, "", args[1:]...)
	if res.Code != 0 || !strings.Contains(res.Stdout, `"status":"ready"`) {
		t.Fatalf("%s: exit %d %s", tourReady, res.Code, res.Stdout)
	}
}

// tourSubscription is the tour's nats sub, left running as in a terminal.
type tourSubscription struct {
	out *lockedBuffer
}

// startTourSub starts nats sub 'zautic.>' against the embedded server. That
// server has no monitoring port to ask whether the subscription is in place,
// so webhook.test events are sent until the CLI prints one.
func startTourSub(t *testing.T, cli string, p *forwarderProcess, sendEnv map[string]string) *tourSubscription {
	t.Helper()
	cmd := exec.Command(cli, append(shellFields(tourSub)[1:], "--server", p.NATSURL)...)
	cmd.Env = cleanEnv(t, nil)
	s := &tourSubscription{out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	natstest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if res := runBinary(t, sendEnv, "", "send", "--url", p.WebhookURL, "--type", "webhook.test"); res.Code != 0 {
			return fmt.Errorf("send webhook.test: exit %d %s", res.Code, res.Stderr)
		}
		if !strings.Contains(s.out.String(), `Received on "zautic.webhook.test"`) {
			return fmt.Errorf("nats sub has shown nothing yet")
		}
		return nil
	})
	return s
}

// waitAll waits until the subscription has shown every event type.
func (s *tourSubscription) waitAll(t *testing.T) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		out := s.out.String()
		for _, typ := range zautic.DocumentedTypes() {
			if !strings.Contains(out, `Received on "zautic.`+typ+`"`) {
				return fmt.Errorf("nats sub has not shown zautic.%s", typ)
			}
		}
		return nil
	})
}

// tourLoad runs the load step: 1000 requests, a fifth of them re-sent
// deliveries, store 800 new events.
func tourLoad(t *testing.T, p *forwarderProcess, js jetstream.JetStream, sendEnv map[string]string) {
	t.Helper()
	res := runBinary(t, sendEnv, "", append(shellFields(tourSendLoad)[1:], "--url", p.WebhookURL)...)
	if res.Code != 0 || !strings.Contains(res.Stdout, "sent:     1000 requests (800 deliveries, 200 duplicates)") || !strings.Contains(res.Stdout, "status:   200=1000") {
		t.Fatalf("%s: exit %d\n%s%s", tourSendLoad, res.Code, res.Stdout, res.Stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "ZAUTIC")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("zautic.message.delivered"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects["zautic.message.delivered"]; got != 801 {
		t.Errorf("zautic.message.delivered holds %d events, want 1 + 800", got)
	}
}

// markdownSection returns the text from heading to the next heading of the
// same level.
func markdownSection(t *testing.T, doc, heading string) string {
	t.Helper()
	start := strings.Index(doc, heading+"\n")
	if start < 0 {
		t.Fatalf("no %q section", heading)
	}
	rest := doc[start+len(heading):]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	return rest
}
