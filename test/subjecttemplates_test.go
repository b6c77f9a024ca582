package test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/zautic"
)

// The recipes of subjects.md's "Subjects from signed fields", verbatim. The
// test publishes what the forwarder publishes, with the zautic package's
// templates that it renders with, and runs the recipes against that;
// TestSubjectTemplateFromSignedFields checks the forwarder's own subjects.
const (
	deviceTemplate          = "{prefix}.{type}.{data.object.device_id}"
	hostileDevice           = "a.>"
	recipeSubDevice         = "nats sub 'zautic.message.delivered.114'"
	recipeSubDeviceAll      = "nats sub 'zautic.*.*.114'"
	recipeSubHashed         = "nats sub 'zautic.message.delivered.~b4f14dfd503221f9e21bb48635c64bf6'"
	recipeConsumerDevice    = "nats consumer add ZAUTIC device-114 --pull --filter 'zautic.*.*.114' --ack explicit --deliver all --defaults"
	partitionSource         = "zautic.*.*.*"
	partitionDestination    = "zautic.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(4,3)}}"
	recipeTransform         = "nats stream edit ZAUTIC --force --transform-source '" + partitionSource + "' --transform-destination '" + partitionDestination + "'"
	recipeMapping           = "nats server mapping '" + partitionSource + "' '" + partitionDestination + "' zautic.message.delivered.114"
	mappedExample           = "zautic.message.delivered.114.1"
	recipeConsumerPartition = "nats consumer add ZAUTIC partition-1 --pull --filter 'zautic.*.*.*.1' --ack explicit --deliver all --defaults"
)

// deviceEvent is an event of the recipes and the device id JSON it carries.
type deviceEvent struct {
	id, typ, device string // device "" for an event without one
}

var deviceEvents = []deviceEvent{
	{"evt_t1", "message.delivered", `114`},
	{"evt_t2", "message.read", `"114"`},
	{"evt_t3", "message.delivered", `7`},
	{"evt_t4", "message.delivered", `"a.>"`},
	{"evt_t5", "contact.created", ``},
}

func (e deviceEvent) body(id string) []byte {
	object := `{}`
	if e.device != "" {
		object = `{"device_id":` + e.device + `}`
	}
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"created":1767432000,"data":{"object":%s}}`, id, e.typ, object)
}

// subject is the subject the template gives the event.
func (e deviceEvent) subject(t *testing.T) string {
	t.Helper()
	tmpl, err := zautic.ParseSubjectTemplate(deviceTemplate)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := tmpl.Subject("zautic", e.typ, e.body(e.id))
	if err != nil {
		t.Fatal(err)
	}
	return subject
}

// publishDeviceEvents publishes every event with idSuffix added to its id,
// on its template subject, as the forwarder does.
func publishDeviceEvents(t *testing.T, js jetstream.JetStream, idSuffix string) {
	t.Helper()
	for _, e := range deviceEvents {
		id := e.id + idSuffix
		msg := &nats.Msg{Subject: e.subject(t), Data: e.body(id), Header: nats.Header{}}
		msg.Header.Set(zautic.MessageIDHeader, id)
		if _, err := js.PublishMsg(testContext(t), msg); err != nil {
			t.Fatalf("publish %s on %s: %v", id, msg.Subject, err)
		}
	}
}

// TestSubjectsTemplateDocMatchesCode keeps subjects.md's sections on
// templates and CloudEvents true to the zautic package.
func TestSubjectsTemplateDocMatchesCode(t *testing.T) {
	doc := readDoc(t, subjectsDoc)
	if got := zautic.SubjectTokenForString(hostileDevice); !strings.Contains(recipeSubHashed, "."+got+"'") {
		t.Errorf("the token of %q is %q, not the one of the recipe %s", hostileDevice, got, recipeSubHashed)
	}
	for _, want := range []string{
		`subject: "` + deviceTemplate + `"`, "`" + deviceEvents[0].subject(t) + "`", "`" + deviceEvents[4].subject(t) + "`",
		"`" + mappedExample + "`", "`\"" + hostileDevice + "\"` gives `" + zautic.SubjectTokenForString(hostileDevice) + "`",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("subjects.md lacks %s", want)
		}
	}
	for _, h := range []string{
		zautic.CloudEventsSpecVersionHeader, zautic.CloudEventsIDHeader, zautic.CloudEventsSourceHeader, zautic.CloudEventsTypeHeader,
		zautic.CloudEventsTimeHeader, zautic.CloudEventsDataContentTypeHeader, zautic.CloudEventsSubjectHeader,
	} {
		if !strings.Contains(doc, "| `"+h+"` |") {
			t.Errorf("subjects.md lacks the CloudEvents header %s", h)
		}
	}
	for _, recipe := range []string{recipeSubDevice, recipeSubDeviceAll, recipeSubHashed, recipeConsumerDevice, recipeTransform, recipeMapping, recipeConsumerPartition} {
		if !strings.Contains(doc, "\n"+recipe+"\n") {
			t.Errorf("subjects.md lacks the recipe line %q that TestSubjectsTemplateRecipes runs", recipe)
		}
	}
}

// TestSubjectsTemplateRecipes runs the recipes of "Subjects from signed
// fields" through nats.go, and with the nats CLI when it is installed; a
// forwarder started last keeps the stream's subject transform.
func TestSubjectsTemplateRecipes(t *testing.T) {
	ns := natstest.Start(t, "", 0)
	nc, js := connect(t, ns.ClientURL())
	if _, err := js.CreateStream(testContext(t), jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"}}); err != nil {
		t.Fatal(err)
	}
	cli := natsCLI()
	subs := []wildcard{
		{recipeSubDevice, "zautic.message.delivered.114", []string{"zautic.message.delivered.114"}},
		{recipeSubDeviceAll, "zautic.*.*.114", []string{"zautic.message.delivered.114", "zautic.message.read.114"}},
		{recipeSubHashed, "zautic.message.delivered.~b4f14dfd503221f9e21bb48635c64bf6", []string{"zautic.message.delivered.~b4f14dfd503221f9e21bb48635c64bf6"}},
	}
	recipeSubs := subscribeRecipes(t, nc, ns, cli, subs)
	publishDeviceEvents(t, js, "")

	recipeSubs.check(t)
	t.Run(recipeConsumerDevice, func(t *testing.T) {
		t.Run("nats.go", func(t *testing.T) {
			cfg := jetstream.ConsumerConfig{Durable: "device-114-go", FilterSubject: "zautic.*.*.114", AckPolicy: jetstream.AckExplicitPolicy}
			if _, err := js.CreateConsumer(testContext(t), "ZAUTIC", cfg); err != nil {
				t.Fatal(err)
			}
			assertPending(t, js, "device-114-go", 2)
		})
		t.Run("nats CLI", func(t *testing.T) {
			runRecipe(t, requireCLI(t), recipeConsumerDevice, ns.ClientURL())
			assertPending(t, js, "device-114", 2)
		})
	})
	t.Run(recipeMapping, func(t *testing.T) {
		t.Run("nats.go", func(t *testing.T) {
			if got := mapSubject(t, "zautic.message.delivered.114"); got != mappedExample {
				t.Errorf("got %s, want %s", got, mappedExample)
			}
		})
		t.Run("nats CLI", func(t *testing.T) {
			if out := runRecipe(t, requireCLI(t), recipeMapping, ns.ClientURL()).Stdout; strings.TrimSpace(out) != mappedExample {
				t.Errorf("got %q, want %s", out, mappedExample)
			}
		})
	})
	t.Run(recipeTransform, func(t *testing.T) { testPartitions(t, js, ns, cli) })
}

// testPartitions transforms the stream as documented (with the CLI, or its
// nats.go twin without it), publishes the events again and consumes one
// partition; then a forwarder starts on the stream and keeps the transform.
func testPartitions(t *testing.T, js jetstream.JetStream, ns *server.Server, cli string) {
	want := &jetstream.SubjectTransformConfig{Source: partitionSource, Destination: partitionDestination}
	if cli != "" {
		runRecipe(t, cli, recipeTransform, ns.ClientURL())
	} else {
		t.Log("nats CLI not installed: the transform is set through nats.go; install it with: " + natsCLIInstall)
		stream, err := js.Stream(testContext(t), "ZAUTIC")
		if err != nil {
			t.Fatal(err)
		}
		cfg := stream.CachedInfo().Config
		cfg.SubjectTransform = want
		if _, err := js.UpdateStream(testContext(t), cfg); err != nil {
			t.Fatal(err)
		}
	}
	assertTransform(t, js, want)
	publishDeviceEvents(t, js, "-partitioned")

	byID := map[string]deviceEvent{}
	for _, e := range deviceEvents {
		byID[e.id] = e
	}
	inPartition1 := 0
	for _, m := range streamMessages(t, js, "ZAUTIC") {
		id := m.Headers().Get(zautic.MessageIDHeader)
		original, partitioned := strings.CutSuffix(id, "-partitioned")
		wantSubject := byID[original].subject(t)
		if partitioned {
			wantSubject = mapSubject(t, wantSubject)
		}
		if m.Subject() != wantSubject {
			t.Errorf("%s stored on %s, want %s", id, m.Subject(), wantSubject)
		}
		if strings.HasSuffix(m.Subject(), ".1") && strings.Count(m.Subject(), ".") == 4 {
			inPartition1++
		}
	}
	if inPartition1 != 2 {
		t.Errorf("%d events in partition 1, want the 2 of device 114", inPartition1)
	}
	t.Run(recipeConsumerPartition, func(t *testing.T) {
		t.Run("nats.go", func(t *testing.T) {
			cfg := jetstream.ConsumerConfig{Durable: "partition-1-go", FilterSubject: "zautic.*.*.*.1", AckPolicy: jetstream.AckExplicitPolicy}
			if _, err := js.CreateConsumer(testContext(t), "ZAUTIC", cfg); err != nil {
				t.Fatal(err)
			}
			assertPending(t, js, "partition-1-go", inPartition1)
		})
		t.Run("nats CLI", func(t *testing.T) {
			runRecipe(t, requireCLI(t), recipeConsumerPartition, ns.ClientURL())
			assertPending(t, js, "partition-1", inPartition1)
		})
	})
	t.Run("a forwarder keeps the transform", func(t *testing.T) {
		p := startForwarder(t, forwarderEnv(ns.ClientURL()))
		p.WaitReady(t)
		assertTransform(t, js, want)
	})
}

// mapSubject is the documented partition mapping of subject, as nats-server
// computes it.
func mapSubject(t *testing.T, subject string) string {
	t.Helper()
	tr, err := server.NewSubjectTransform(partitionSource, partitionDestination)
	if err != nil {
		t.Fatal(err)
	}
	mapped, err := tr.Match(subject)
	if err != nil {
		t.Fatalf("map %s: %v", subject, err)
	}
	return mapped
}

func assertTransform(t *testing.T, js jetstream.JetStream, want *jetstream.SubjectTransformConfig) {
	t.Helper()
	stream, err := js.Stream(testContext(t), "ZAUTIC") // asks the server for the stream's info
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().Config.SubjectTransform; got == nil || *got != *want {
		t.Errorf("got subject transform %+v, want %+v", got, want)
	}
}

func assertPending(t *testing.T, js jetstream.JetStream, consumer string, want int) {
	t.Helper()
	info, err := mustConsumer(t, js, consumer).Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != uint64(want) {
		t.Errorf("consumer %s: got %d pending, want %d", consumer, info.NumPending, want)
	}
}
