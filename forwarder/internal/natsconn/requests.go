package natsconn

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
)

// Requester sends a request and waits for its reply: a *nats.Conn, or the
// Requests of one.
type Requester interface {
	RequestMsgWithContext(ctx context.Context, msg *nats.Msg) (*nats.Msg, error)
}

// Requests sends requests on one connection as its RequestMsgWithContext
// does, for less CPU: a caller waits on a reply subject of its own, taken
// from a pool, whose channel the connection's reader fills directly.
// nats.go hands every reply through one more goroutine (its shared reply
// subscription's), and makes a reply subject and a map entry per request;
// the webhook path sends two requests per event.
type Requests struct {
	nc     *nats.Conn
	closed chan struct{} // closed with the connection

	mu   sync.Mutex
	free []*inbox
}

// inbox is a reply subject and the channel of its subscription. It serves
// one request at a time, and is thrown away when a request goes
// unanswered, so that a late reply can never answer the next one.
type inbox struct {
	subject string
	replies chan *nats.Msg
	sub     *nats.Subscription
}

// maxFreeInboxes bounds the inboxes kept between requests: as many as
// requests ever waited at once, up to this; beyond it they unsubscribe.
const maxFreeInboxes = 1024

// NewRequests returns the requests of nc.
func NewRequests(nc *nats.Conn) *Requests {
	r := &Requests{nc: nc, closed: make(chan struct{})}
	status := nc.StatusChanged(nats.CLOSED)
	go func() {
		<-status
		close(r.closed)
	}()
	return r
}

// RequestMsgWithContext publishes msg, with its Reply set to an inbox of
// the pool, and waits for the reply until ctx ends, with the errors of
// nats.Conn's: nats.ErrNoResponders when no subscriber received it,
// nats.ErrConnectionClosed once the connection is closed.
func (r *Requests) RequestMsgWithContext(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in, err := r.take()
	if err != nil {
		return nil, err
	}
	msg.Reply = in.subject
	if err := r.nc.PublishMsg(msg); err != nil {
		r.give(in) // not sent: no reply can come
		return nil, err
	}
	select {
	case m := <-in.replies:
		r.give(in)
		if len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		r.drop(in)
		return nil, ctx.Err()
	case <-r.closed:
		return nil, nats.ErrConnectionClosed
	}
}

// take returns a free inbox, or subscribes to a new one.
func (r *Requests) take() (*inbox, error) {
	r.mu.Lock()
	if n := len(r.free); n > 0 {
		in := r.free[n-1]
		r.free = r.free[:n-1]
		r.mu.Unlock()
		return in, nil
	}
	r.mu.Unlock()
	in := &inbox{subject: r.nc.NewInbox(), replies: make(chan *nats.Msg, 1)}
	var err error
	if in.sub, err = r.nc.ChanSubscribe(in.subject, in.replies); err != nil {
		return nil, err
	}
	return in, nil
}

// give returns an inbox whose request was answered, or never sent.
func (r *Requests) give(in *inbox) {
	r.mu.Lock()
	if len(r.free) < maxFreeInboxes {
		r.free = append(r.free, in)
		in = nil
	}
	r.mu.Unlock()
	if in != nil {
		r.drop(in)
	}
}

// drop unsubscribes an inbox that is not reused.
func (r *Requests) drop(in *inbox) { _ = in.sub.Unsubscribe() }
