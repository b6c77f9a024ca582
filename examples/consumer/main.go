// Command consumer is the durable JetStream consumer to copy when a service
// reacts to Zautic events forwarded by zautic-forwarder.
//
// It binds to a durable pull consumer on the stream, creating it with a
// subject filter when it does not exist yet, fetches events in batches,
// processes each one, and acks it; a failure is nak'ed with a growing delay,
// so JetStream redelivers it later; a body that can never be processed is
// terminated instead of retried forever.
//
// JetStream delivers at least once: a consumer that crashes between its work
// and its ack gets the message again. So the consumer keys its own
// idempotency on the Nats-Msg-Id header (zautic.MessageIDHeader), which the
// forwarder sets to its dedup key (the Zautic event id by default), and
// records that id together with its work. The zautic package names every header the forwarder sets. Here the
// record is a map; a real service writes it in the same database
// transaction as its side effect (a table with a unique key on the id).
//
// When OTEL_EXPORTER_OTLP_ENDPOINT is set, each message is handled in a
// consumer span whose parent is the forwarder's publish span, read from the
// message's traceparent header: the trace of an event runs from Zautic's
// POST to this work.
//
//	go run ./examples/consumer --server nats://127.0.0.1:4222 --filter 'zautic.message.>'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/zautic/zautic-forwarder/zautic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	server    string
	stream    string
	durable   string
	filter    string
	batch     int
	max       int
	idle      time.Duration
	nakDelay  time.Duration
	failFirst bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultServer := os.Getenv("NATS_URL")
	if defaultServer == "" {
		defaultServer = nats.DefaultURL
	}
	fs.StringVar(&o.server, "server", defaultServer, "NATS URL (default $NATS_URL)")
	fs.StringVar(&o.stream, "stream", "ZAUTIC", "stream the forwarder publishes to")
	fs.StringVar(&o.durable, "durable", "zautic-example", "durable consumer name; several processes with one name share the work")
	fs.StringVar(&o.filter, "filter", "zautic.message.>", "subject filter used when the consumer is created")
	fs.IntVar(&o.batch, "batch", 10, "messages fetched per pull")
	fs.IntVar(&o.max, "max", 0, "exit after handling this many messages (0: run until interrupted)")
	fs.DurationVar(&o.idle, "idle", 0, "exit after this long without a message (0: never)")
	fs.DurationVar(&o.nakDelay, "nak-delay", time.Second, "redelivery delay after a first failure; doubles on each further failure, up to a minute")
	fs.BoolVar(&o.failFirst, "fail-first-attempt", false, "fail every message's first delivery, to watch the nak and redelivery path")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.batch < 1 || o.max < 0 || o.idle < 0 || o.nakDelay <= 0 {
		return o, errors.New("--batch and --nak-delay must be positive, --max and --idle not negative")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(o.server, nats.Name("zautic-consumer-example"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.server, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := bindOrCreate(ctx, js, o)
	if err != nil {
		return err
	}
	tracer, flushSpans, err := startTracing(ctx)
	if err != nil {
		return err
	}
	defer flushSpans()
	info := cons.CachedInfo()
	fmt.Fprintf(stdout, "consuming %s from stream %s as durable %q\n", filterOf(info.Config), o.stream, info.Name)
	p := &processor{done: map[string]bool{}, out: stdout, failFirst: o.failFirst, nakDelay: o.nakDelay, tracer: tracer, consumer: info.Name}
	err = consume(ctx, cons, o, p)
	fmt.Fprintf(stdout, "done: %d processed, %d duplicates skipped, %d failures nak'ed, %d terminated\n", p.processed, p.skipped, p.naked, p.terminated)
	return err
}

// bindOrCreate binds to the durable consumer, creating it when it does not
// exist. An existing consumer is used as it is: whoever created it (an
// operator with the nats CLI, another replica) owns its settings.
func bindOrCreate(ctx context.Context, js jetstream.JetStream, o options) (jetstream.Consumer, error) {
	stream, err := js.Stream(ctx, o.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", o.stream, err)
	}
	cons, err := stream.Consumer(ctx, o.durable)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", o.durable, err)
	}
	cons, err = stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       o.durable,
		Description:   "zautic-forwarder example consumer",
		FilterSubject: o.filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    10,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", o.durable, err)
	}
	return cons, nil
}

// filterOf names what a consumer selects, however it was created.
func filterOf(c jetstream.ConsumerConfig) string {
	switch {
	case c.FilterSubject != "":
		return c.FilterSubject
	case len(c.FilterSubjects) > 0:
		return strings.Join(c.FilterSubjects, ", ")
	default:
		return "every subject"
	}
}

// consume fetches and handles messages until ctx ends, --max messages are
// handled, or nothing came for --idle.
func consume(ctx context.Context, cons jetstream.Consumer, o options, p *processor) error {
	lastMessage := time.Now()
	for ctx.Err() == nil && (o.max == 0 || p.handled() < o.max) {
		want := o.batch
		if o.max > 0 {
			want = min(want, o.max-p.handled())
		}
		n, err := fetchAndHandle(ctx, cons, want, p)
		if err != nil {
			return err
		}
		if n > 0 {
			lastMessage = time.Now()
		} else if o.idle > 0 && time.Since(lastMessage) >= o.idle {
			return nil
		}
	}
	return nil
}

// fetchWait bounds one pull, so that the loop notices --idle and ctx.
const fetchWait = time.Second

func fetchAndHandle(ctx context.Context, cons jetstream.Consumer, want int, p *processor) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	batch, err := cons.Fetch(want, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("fetch: %w", err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		if err := p.handle(ctx, msg); err != nil {
			return n, err
		}
	}
	return n, nil
}

// event is what this consumer reads of a Zautic event.
type event struct {
	ID   string `json:"-"` // read by decode, exactly as the forwarder reads it
	Type string `json:"-"`
	Data struct {
		Object map[string]any `json:"object"`
	} `json:"data"`
}

// processor does the work and keeps the idempotency record.
type processor struct {
	done       map[string]bool // Nats-Msg-Id of every event processed
	out        io.Writer
	failFirst  bool
	nakDelay   time.Duration
	tracer     trace.Tracer // a no-op unless tracing is configured
	consumer   string       // the durable name, the span's consumer group
	processed  int
	skipped    int
	naked      int
	terminated int
}

// handled counts the messages that are finished with: acked or terminated.
func (p *processor) handled() int { return p.processed + p.skipped + p.terminated }

// What became of a message, the zautic.outcome of its span.
const (
	outcomeProcessed  = "processed"
	outcomeSkipped    = "skipped"
	outcomeFailed     = "failed"
	outcomeTerminated = "terminated"
)

// handle settles one message in its consumer span. Only a failure to talk
// to JetStream is returned: a failed event is JetStream's to redeliver.
func (p *processor) handle(ctx context.Context, msg jetstream.Msg) error {
	ctx, span := startProcessSpan(ctx, p.tracer, msg, p.consumer)
	outcome, err := p.settle(ctx, msg)
	endProcessSpan(span, outcome, err)
	return err
}

// settle acks, naks or terminates one message.
func (p *processor) settle(ctx context.Context, msg jetstream.Msg) (string, error) {
	id := msg.Headers().Get(zautic.MessageIDHeader)
	meta, err := msg.Metadata()
	if err != nil {
		return "", fmt.Errorf("message metadata: %w", err)
	}
	if p.done[id] {
		p.skipped++
		fmt.Fprintf(p.out, "skipped %s key=%s: already processed\n", msg.Subject(), id)
		return outcomeSkipped, msg.DoubleAck(ctx)
	}
	ev, err := decode(msg.Data())
	if err != nil {
		// Retrying cannot fix the body: stop redelivery instead of looping.
		p.terminated++
		fmt.Fprintf(p.out, "terminated %s key=%s: %v\n", msg.Subject(), id, err)
		return outcomeTerminated, msg.TermWithReason(err.Error())
	}
	if err := p.process(ev, meta); err != nil {
		p.naked++
		delay := p.backoff(meta.NumDelivered)
		fmt.Fprintf(p.out, "failed %s key=%s attempt=%d: %v; redelivery in %s\n", msg.Subject(), id, meta.NumDelivered, err, delay)
		return outcomeFailed, msg.NakWithDelay(delay)
	}
	// Record first, then ack: if the ack is lost, the redelivery is skipped.
	p.done[id] = true
	p.processed++
	fmt.Fprintf(p.out, "processed %s event=%s delivery=%s attempt=%d\n", msg.Subject(), ev.ID, msg.Headers().Get(zautic.MessageDeliveryIDHeader), meta.NumDelivered)
	return outcomeProcessed, msg.DoubleAck(ctx)
}

// decode reads id and type with zautic.ParseEvent, as the forwarder does:
// by their exact names. encoding/json matches member names without regard
// to case, so for {"id":"evt_a","ID":"evt_b",…} it would read evt_b while
// the forwarder deduplicated and published evt_a. The rest of the event is
// decoded with encoding/json.
func decode(body []byte) (event, error) {
	var ev event
	parsed, err := zautic.ParseEvent(body)
	if err != nil {
		return ev, fmt.Errorf("not a JSON event: %w", err)
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("not a JSON event: %w", err)
	}
	ev.ID, ev.Type = parsed.ID, parsed.Type
	return ev, nil
}

// process is where a real service does its work; a returned error is
// treated as transient.
func (p *processor) process(_ event, meta *jetstream.MsgMetadata) error {
	if p.failFirst && meta.NumDelivered == 1 {
		return errors.New("simulated transient failure")
	}
	return nil
}

// backoff doubles nakDelay for each earlier delivery, up to a minute.
func (p *processor) backoff(numDelivered uint64) time.Duration {
	d := p.nakDelay << min(numDelivered-1, 10)
	return min(d, time.Minute)
}
