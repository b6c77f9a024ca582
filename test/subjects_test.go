package test

import (
	"context"
	"fmt"
	"go/build"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// natsCLIInstall is how to get the CLI the recipes are written for.
const natsCLIInstall = "go install github.com/nats-io/natscli/nats@v0.5.0"

// The nats CLI recipes of subjects.md, verbatim.
const (
	recipeSubAll        = "nats sub 'zautic.>'"
	recipeSubMessages   = "nats sub 'zautic.message.>'"
	recipeSubCampaigns  = "nats sub 'zautic.campaign.*'"
	recipeStreamInfo    = "nats stream info ZAUTIC"
	recipeConsumerAdd   = "nats consumer add ZAUTIC billing --pull --filter 'zautic.message.>' --ack explicit --deliver all --defaults"
	recipeConsumerNext  = "nats consumer next ZAUTIC billing --count 5"
	recipeKVList        = "nats kv ls zautic-dedup"
	recipeKVGet         = "nats kv get zautic-dedup <event-id>"
	subjectsDoc         = "../subjects.md"
	billingFilter       = "zautic.message.>"
	messageEventsPerAll = 5
)

// natsCLI returns the path of the nats CLI, or "" when it is not installed.
func natsCLI() string {
	if path, err := exec.LookPath("nats"); err == nil {
		return path
	}
	path := filepath.Join(build.Default.GOPATH, "bin", "nats")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return ""
}

// requireCLI skips the test when the nats CLI is missing.
func requireCLI(t *testing.T) string {
	t.Helper()
	cli := natsCLI()
	if cli == "" {
		t.Skip("nats CLI not installed, so the documented command is not run (its nats.go twin is); install it with: " + natsCLIInstall)
	}
	return cli
}

// shellFields splits a documented command as a POSIX shell would, for the
// quoting used in the docs: words, and single-quoted strings.
func shellFields(cmd string) []string {
	var fields []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range cmd {
		switch {
		case r == '\'':
			inQuote, inWord = !inQuote, true
		case r == ' ' && !inQuote:
			if inWord {
				fields = append(fields, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		fields = append(fields, cur.String())
	}
	return fields
}

// runRecipe runs a documented nats command against server, with extra
// arguments appended.
func runRecipe(t *testing.T, cli, recipe, server string, extra ...string) commandResult {
	t.Helper()
	args := append(shellFields(recipe)[1:], "--server", server)
	res := runProgram(t, cli, nil, "", append(args, extra...)...)
	if res.Code != 0 {
		t.Fatalf("%s exited %d:\n%s%s", recipe, res.Code, res.Stdout, res.Stderr)
	}
	return res
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestSubjectsDocMatchesCode keeps subjects.md's tables true.
func TestSubjectsDocMatchesCode(t *testing.T) {
	doc := readDoc(t, subjectsDoc)
	for _, typ := range zautic.DocumentedTypes() {
		subject, err := zautic.SubjectFor("zautic", typ)
		if err != nil {
			t.Fatal(err)
		}
		if row := "| `" + typ + "` | `" + subject + "` |"; !strings.Contains(doc, row) {
			t.Errorf("subjects.md lacks the row %s", row)
		}
	}
	if rows := regexp.MustCompile("(?m)^\\| `[a-z]+\\.[a-z]+` \\| `zautic\\.").FindAllString(doc, -1); len(rows) != len(zautic.DocumentedTypes()) {
		t.Errorf("subjects.md has %d subject rows, want %d", len(rows), len(zautic.DocumentedTypes()))
	}
	headers := []string{zautic.MessageIDHeader, zautic.MessageEventTypeHeader, zautic.MessageEventIDHeader, zautic.MessageDeliveryIDHeader, zautic.MessageTimestampHeader, "Content-Type", zautic.MessageTraceparentHeader, zautic.MessageTracestateHeader}
	for _, h := range headers {
		if !strings.Contains(doc, "| `"+h+"` |") {
			t.Errorf("subjects.md lacks the header %s", h)
		}
	}
	cfg := forwarder.DefaultConfig()
	for _, name := range []string{cfg.Stream.Name, cfg.Dedup.Bucket, cfg.Stream.SubjectPrefix + ".>"} {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("subjects.md does not name %s", name)
		}
	}
	for _, recipe := range []string{recipeSubAll, recipeSubMessages, recipeSubCampaigns, recipeStreamInfo, recipeConsumerAdd, recipeConsumerNext, recipeKVList, recipeKVGet} {
		if !strings.Contains(doc, "\n"+recipe+"\n") {
			t.Errorf("subjects.md lacks the recipe line %q that TestSubjectsRecipes runs", recipe)
		}
	}
}

// wildcard is a subscription recipe and the subjects it must see.
type wildcard struct {
	recipe  string
	subject string
	want    []string
}

func wildcards() []wildcard {
	var all, messages, campaigns []string
	for _, typ := range zautic.DocumentedTypes() {
		all = append(all, "zautic."+typ)
		switch {
		case strings.HasPrefix(typ, "message."):
			messages = append(messages, "zautic."+typ)
		case strings.HasPrefix(typ, "campaign."):
			campaigns = append(campaigns, "zautic."+typ)
		}
	}
	return []wildcard{
		{recipeSubAll, "zautic.>", all},
		{recipeSubMessages, "zautic.message.>", messages},
		{recipeSubCampaigns, "zautic.campaign.*", campaigns},
	}
}

// cliSub is a running "nats sub".
type cliSub struct {
	out  *lockedBuffer
	done chan error
}

// startCLISub starts a documented nats sub recipe that exits after count
// messages, and waits until the server has its subscription.
func startCLISub(t *testing.T, cli string, ns *server.Server, w wildcard) *cliSub {
	t.Helper()
	before := subscribers(t, ns, w.subject)
	args := append(shellFields(w.recipe)[1:], "--server", ns.ClientURL(), "--count", fmt.Sprint(len(w.want)))
	cmd := exec.Command(cli, args...)
	cmd.Env = cleanEnv(t, nil)
	s := &cliSub{out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n := subscribers(t, ns, w.subject); n <= before {
			return fmt.Errorf("%d connections subscribed to %s, want more than %d", n, w.subject, before)
		}
		return nil
	})
	return s
}

// subscribers counts the connections subscribed to subject.
func subscribers(t *testing.T, ns *server.Server, subject string) int {
	t.Helper()
	connz, err := ns.Connz(&server.ConnzOptions{Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range connz.Conns {
		if slices.Contains(c.Subs, subject) {
			n++
		}
	}
	return n
}

var receivedOn = regexp.MustCompile(`Received on "([^"]+)"`)

// TestSubjectsRecipes performs every nats CLI recipe of subjects.md through
// nats.go, and runs the documented command itself when the CLI is installed.
func TestSubjectsRecipes(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	p := startForwarder(t, forwarderEnv(ns.ClientURL()))
	p.WaitReady(t)
	nc, js := connect(t, ns.ClientURL())
	cli := natsCLI()

	subs := subscribeRecipes(t, nc, ns, cli, wildcards())
	if res := runBinary(t, nil, "", sendArgs(p, "--type", "all")...); res.Code != 0 {
		t.Fatalf("send --type all exited %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	msgs := streamMessages(t, js, "ZAUTIC")

	subs.check(t)
	t.Run(recipeStreamInfo, func(t *testing.T) { testStreamInfo(t, js, ns.ClientURL()) })
	t.Run(recipeConsumerAdd, func(t *testing.T) { testConsumerAdd(t, js, ns.ClientURL()) })
	t.Run(recipeConsumerNext, func(t *testing.T) { testConsumerNext(t, js, ns.ClientURL()) })
	t.Run(recipeKVList, func(t *testing.T) { testKVList(t, js, ns.ClientURL(), msgs) })
	t.Run(recipeKVGet, func(t *testing.T) { testKVGet(t, js, ns.ClientURL(), msgs) })
}

// recipeSubs are the subscriptions of nats sub recipes: through nats.go, and
// through the CLI when it is installed.
type recipeSubs struct {
	wildcards []wildcard
	goSubs    map[string]*nats.Subscription
	cliSubs   map[string]*cliSub
}

// subscribeRecipes subscribes to every recipe's subject before anything is
// published.
func subscribeRecipes(t *testing.T, nc *nats.Conn, ns *server.Server, cli string, ws []wildcard) *recipeSubs {
	t.Helper()
	s := &recipeSubs{wildcards: ws, goSubs: map[string]*nats.Subscription{}, cliSubs: map[string]*cliSub{}}
	for _, w := range ws {
		sub, err := nc.SubscribeSync(w.subject)
		if err != nil {
			t.Fatal(err)
		}
		s.goSubs[w.recipe] = sub
	}
	// The server must count the nats.go subscriptions before startCLISub
	// waits for one more.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if cli != "" {
		for _, w := range ws {
			s.cliSubs[w.recipe] = startCLISub(t, cli, ns, w)
		}
	}
	return s
}

// check runs a subtest per recipe that each subscription got its subjects.
func (s *recipeSubs) check(t *testing.T) {
	for _, w := range s.wildcards {
		t.Run(w.recipe, func(t *testing.T) {
			t.Run("nats.go", func(t *testing.T) { assertGoSub(t, s.goSubs[w.recipe], w) })
			t.Run("nats CLI", func(t *testing.T) {
				requireCLI(t)
				assertCLISub(t, s.cliSubs[w.recipe], w)
			})
		})
	}
}

func assertGoSub(t *testing.T, sub *nats.Subscription, w wildcard) {
	t.Helper()
	var got []string
	for range w.want {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		if m.Header.Get(zautic.MessageIDHeader) == "" {
			t.Errorf("%s arrived without %s", m.Subject, zautic.MessageIDHeader)
		}
		got = append(got, m.Subject)
	}
	assertSameSubjects(t, got, w.want)
}

func assertCLISub(t *testing.T, s *cliSub, w wildcard) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", w.recipe, err, s.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not get %d messages within 30s:\n%s", w.recipe, len(w.want), s.out.String())
	}
	out := s.out.String()
	var got []string
	for _, m := range receivedOn.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	assertSameSubjects(t, got, w.want)
	if !strings.Contains(out, zautic.MessageIDHeader+": evt_") {
		t.Errorf("nats sub output shows no %s header:\n%s", zautic.MessageIDHeader, trimmed(out))
	}
}

func assertSameSubjects(t *testing.T, got, want []string) {
	t.Helper()
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("got subjects %v, want %v", got, want)
	}
}

func testStreamInfo(t *testing.T, js jetstream.JetStream, url string) {
	ctx := testContext(t)
	t.Run("nats.go", func(t *testing.T) {
		s, err := js.Stream(ctx, "ZAUTIC")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(info.Config.Subjects, []string{"zautic.>"}) || info.State.Msgs != 23 {
			t.Errorf("got subjects %v, %d messages; want [zautic.>], 23", info.Config.Subjects, info.State.Msgs)
		}
	})
	t.Run("nats CLI", func(t *testing.T) {
		out := runRecipe(t, requireCLI(t), recipeStreamInfo, url).Stdout
		for _, want := range []string{"Subjects: zautic.>", "Messages: 23", "Duplicate Window: 2m0s"} {
			if !strings.Contains(out, want) {
				t.Errorf("stream info lacks %q:\n%s", want, out)
			}
		}
	})
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// billingConfig is what the consumer add recipe asks for.
func billingConfig(name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: name, FilterSubject: billingFilter,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// assertBilling checks a durable pull consumer shaped like the recipe's,
// with pending messages still to deliver and acks outstanding.
func assertBilling(t *testing.T, js jetstream.JetStream, name string, pending, ackPending int, ackFloor uint64) {
	t.Helper()
	ctx := testContext(t)
	cons, err := js.Consumer(ctx, "ZAUTIC", name)
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	filter := c.FilterSubject
	if filter == "" && len(c.FilterSubjects) == 1 {
		filter = c.FilterSubjects[0]
	}
	if c.Durable != name || filter != billingFilter || c.AckPolicy != jetstream.AckExplicitPolicy || c.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Errorf("consumer %s: got durable %q filter %q ack %v deliver %v", name, c.Durable, filter, c.AckPolicy, c.DeliverPolicy)
	}
	if info.NumPending != uint64(pending) || info.NumAckPending != ackPending || info.AckFloor.Consumer != ackFloor {
		t.Errorf("consumer %s: got %d pending, %d awaiting ack, ack floor %d; want %d, %d, %d",
			name, info.NumPending, info.NumAckPending, info.AckFloor.Consumer, pending, ackPending, ackFloor)
	}
}

func testConsumerAdd(t *testing.T, js jetstream.JetStream, url string) {
	t.Run("nats.go", func(t *testing.T) {
		if _, err := js.CreateConsumer(testContext(t), "ZAUTIC", billingConfig("billing-go")); err != nil {
			t.Fatal(err)
		}
		assertBilling(t, js, "billing-go", messageEventsPerAll, 0, 0)
	})
	t.Run("nats CLI", func(t *testing.T) {
		runRecipe(t, requireCLI(t), recipeConsumerAdd, url)
		assertBilling(t, js, "billing", messageEventsPerAll, 0, 0)
	})
}

func testConsumerNext(t *testing.T, js jetstream.JetStream, url string) {
	t.Run("nats.go", func(t *testing.T) {
		cons, err := js.Consumer(testContext(t), "ZAUTIC", "billing-go")
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(messageEventsPerAll, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if err := m.DoubleAck(testContext(t)); err != nil {
				t.Fatal(err)
			}
		}
		if n != messageEventsPerAll {
			t.Errorf("fetched %d messages, want %d", n, messageEventsPerAll)
		}
		assertBilling(t, js, "billing-go", 0, 0, messageEventsPerAll)
	})
	t.Run("nats CLI", func(t *testing.T) {
		out := runRecipe(t, requireCLI(t), recipeConsumerNext, url).Stdout
		if n := strings.Count(out, "subj: zautic.message."); n != messageEventsPerAll {
			t.Errorf("consumer next showed %d messages, want %d:\n%s", n, messageEventsPerAll, trimmed(out))
		}
		// The ack of the last message may still be on its way.
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			info, err := mustConsumer(t, js, "billing").Info(testContext(t))
			if err != nil {
				return err
			}
			if info.AckFloor.Consumer != messageEventsPerAll {
				return fmt.Errorf("ack floor %d", info.AckFloor.Consumer)
			}
			return nil
		})
		assertBilling(t, js, "billing", 0, 0, messageEventsPerAll)
	})
}

func mustConsumer(t *testing.T, js jetstream.JetStream, name string) jetstream.Consumer {
	t.Helper()
	cons, err := js.Consumer(testContext(t), "ZAUTIC", name)
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// dedupKeys maps each stored message's event id, its KV key under the default
// dedup.key, to its stream sequence.
func dedupKeys(t *testing.T, msgs []jetstream.Msg) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		out[m.Headers().Get(zautic.MessageEventIDHeader)] = meta.Sequence.Stream
	}
	return out
}

func testKVList(t *testing.T, js jetstream.JetStream, url string, msgs []jetstream.Msg) {
	want := slices.Sorted(maps.Keys(dedupKeys(t, msgs)))
	t.Run("nats.go", func(t *testing.T) {
		kv, err := js.KeyValue(testContext(t), "zautic-dedup")
		if err != nil {
			t.Fatal(err)
		}
		lister, err := kv.ListKeys(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for k := range lister.Keys() {
			got = append(got, k)
		}
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("got keys %v, want the event ids %v", got, want)
		}
	})
	t.Run("nats CLI", func(t *testing.T) {
		out := runRecipe(t, requireCLI(t), recipeKVList, url).Stdout
		got := strings.Fields(out)
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("kv ls printed %v, want the event ids %v", got, want)
		}
	})
}

func testKVGet(t *testing.T, js jetstream.JetStream, url string, msgs []jetstream.Msg) {
	ids := dedupKeys(t, msgs)
	id := slices.Sorted(maps.Keys(ids))[0]
	var value string
	t.Run("nats.go", func(t *testing.T) {
		kv, err := js.KeyValue(testContext(t), "zautic-dedup")
		if err != nil {
			t.Fatal(err)
		}
		entry, err := kv.Get(testContext(t), id)
		if err != nil {
			t.Fatal(err)
		}
		value = string(entry.Value())
		if value != fmt.Sprint(ids[id]) {
			t.Errorf("got value %q, want the stream sequence %d", value, ids[id])
		}
	})
	t.Run("nats CLI", func(t *testing.T) {
		recipe := strings.Replace(recipeKVGet, "<event-id>", id, 1)
		out := runRecipe(t, requireCLI(t), recipe, url).Stdout
		// The value is printed last, after the key, its revision and when
		// it was created.
		if fields := strings.Fields(out); value == "" || len(fields) == 0 || fields[len(fields)-1] != value {
			t.Errorf("kv get printed %q, want the value %q last", out, value)
		}
	})
}
