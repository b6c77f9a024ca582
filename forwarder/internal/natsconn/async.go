package natsconn

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AsyncPublisher publishes messages to one stream without waiting for their
// PubAcks, and reports each one's outcome once: stored, refused, no PubAck
// within the timeout, or cut off by a disconnect. It does what jetstream's
// PublishMsgAsync does, for less: one reply subscription with a counter for
// the reply subjects, one sweep for the timeouts instead of a timer per
// message, and the PubAck read by AckReader. It does not bound what is in
// flight: the caller does.
type AsyncPublisher struct {
	nc      *nats.Conn
	acks    AckReader
	timeout time.Duration
	outcome func(msg *nats.Msg, first time.Time, err error)
	prefix  string // of the reply subjects: an inbox of its own and a dot

	mu      sync.Mutex
	next    uint64
	pending map[uint64]inFlight
}

type inFlight struct {
	msg     *nats.Msg
	first   time.Time // the first send, reported with the outcome
	sent    time.Time // the last send, which the timeout counts from
	retries int       // after nobody answered, as PublishMsgAsync retries
}

// statusHeader and noResponders are how nats.go marks a request that no
// subscriber received.
const (
	statusHeader = "Status"
	noResponders = "503"
)

// NewAsyncPublisher subscribes to the replies of messages published to
// stream on nc. outcome is called once per message, with the time it was
// first sent and a nil error once it is stored, from one of the publisher's
// goroutines (the replies', the sweep's, a resend's): it must not block.
func NewAsyncPublisher(nc *nats.Conn, stream string, timeout time.Duration, outcome func(msg *nats.Msg, first time.Time, err error)) (*AsyncPublisher, error) {
	p := &AsyncPublisher{nc: nc, acks: NewAckReader(stream), timeout: timeout, outcome: outcome,
		prefix: nc.NewInbox() + ".", pending: map[uint64]inFlight{}}
	if _, err := nc.Subscribe(p.prefix+"*", p.reply); err != nil {
		return nil, fmt.Errorf("subscribe to PubAcks: %w", err)
	}
	go p.watch(nc.StatusChanged(nats.RECONNECTING, nats.CLOSED))
	return p, nil
}

// Publish sends msg, with a reply subject of its own, and its outcome is
// reported once. An error means it was not sent, and that nothing will be
// reported.
func (p *AsyncPublisher) Publish(msg *nats.Msg) error {
	p.mu.Lock()
	id := p.next
	p.next++
	msg.Reply = p.prefix + strconv.FormatUint(id, 36)
	now := time.Now()
	p.pending[id] = inFlight{msg: msg, first: now, sent: now}
	p.mu.Unlock()
	if err := p.nc.PublishMsg(msg); err != nil {
		p.mu.Lock()
		_, unreported := p.pending[id] // a disconnect may have ended it already
		delete(p.pending, id)
		p.mu.Unlock()
		if unreported {
			return err
		}
	}
	return nil
}

// reply handles a PubAck, or the news that nobody received the message (a
// stream leader changing), which is sent again after jetstream's wait, as
// often as PublishMsgAsync would.
func (p *AsyncPublisher) reply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	f, ok := p.pending[id]
	if !ok { // timed out, or cut off by a disconnect
		p.mu.Unlock()
		return
	}
	unanswered := len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders
	if unanswered && f.retries < jetstream.DefaultPubRetryAttempts {
		f.retries++
		p.pending[id] = f
		p.mu.Unlock()
		time.AfterFunc(jetstream.DefaultPubRetryWait, func() { p.resend(id, f.msg) })
		return
	}
	delete(p.pending, id)
	p.mu.Unlock()
	if unanswered {
		p.outcome(f.msg, f.first, jetstream.ErrNoStreamResponse)
		return
	}
	_, _, err = p.acks.Read(m.Data)
	p.outcome(f.msg, f.first, err)
}

// resend sends msg again, unless it ended meanwhile; the timeout starts
// again, as PublishMsgAsync's does.
func (p *AsyncPublisher) resend(id uint64, msg *nats.Msg) {
	p.mu.Lock()
	f, still := p.pending[id]
	if still {
		f.sent = time.Now()
		p.pending[id] = f
	}
	p.mu.Unlock()
	if !still {
		return
	}
	if err := p.nc.PublishMsg(msg); err != nil {
		p.end(func(f inFlight) bool { return f.msg == msg }, err)
	}
}

// watch ends the messages in flight that have waited longer than the
// timeout, checking a few times per timeout, and those in flight when the
// connection drops: their PubAcks are lost with it. It returns once the
// connection is closed (also seen at a tick, since nats.go drops a status
// event that finds the channel's buffer full).
func (p *AsyncPublisher) watch(status <-chan nats.Status) {
	tick := time.NewTicker(min(max(p.timeout/4, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case s, ok := <-status:
			if !ok || s == nats.CLOSED {
				return
			}
			p.end(func(inFlight) bool { return true }, nats.ErrDisconnected)
		case now := <-tick.C:
			if p.nc.IsClosed() {
				return
			}
			p.end(func(f inFlight) bool { return now.Sub(f.sent) >= p.timeout }, jetstream.ErrAsyncPublishTimeout)
		}
	}
}

// end reports err as the outcome of the messages in flight that match.
func (p *AsyncPublisher) end(match func(inFlight) bool, err error) {
	var ended []inFlight
	p.mu.Lock()
	for id, f := range p.pending {
		if match(f) {
			ended = append(ended, f)
			delete(p.pending, id)
		}
	}
	p.mu.Unlock()
	for _, f := range ended {
		p.outcome(f.msg, f.first, err)
	}
}

// inFlight is the number of messages sent whose outcome has not come.
func (p *AsyncPublisher) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
