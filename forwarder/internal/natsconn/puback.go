package natsconn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AckReader reads the PubAcks of one stream. nats-server writes an ordinary
// PubAck in one shape, {"stream":"NAME","seq":N}, with ,"duplicate": true
// before the brace for a duplicate. Read takes that shape apart by hand;
// encoding/json, which jetstream's PublishMsg uses, was 4 % of the
// forwarder's CPU per event. Anything else (an error, a domain, fields of a
// later server) goes to encoding/json, so that an unexpected shape costs
// time, never correctness.
type AckReader struct {
	prefix []byte // {"stream":"NAME","seq":
}

// NewAckReader returns the reader of the PubAcks of stream.
func NewAckReader(stream string) AckReader {
	// As nats-server writes it: Go's quoting, not encoding/json's, which
	// would escape a '&' that the server leaves as it is.
	return AckReader{prefix: fmt.Appendf(nil, "{%q:%q,%q:", "stream", stream, "seq")}
}

// maxSeqDigits is the most digits a sequence is read from by hand: any
// 19-digit number fits in a uint64.
const maxSeqDigits = 19

// Read decodes a PubAck as jetstream's PublishMsg does, with the same
// errors: the stream's refusal as a *jetstream.APIError, an answer that is
// not a PubAck as jetstream.ErrInvalidJSAck.
func (r AckReader) Read(data []byte) (seq uint64, duplicate bool, err error) {
	if rest, ok := bytes.CutPrefix(data, r.prefix); ok {
		n := 0
		for n < len(rest) && n <= maxSeqDigits && '0' <= rest[n] && rest[n] <= '9' {
			seq = seq*10 + uint64(rest[n]-'0')
			n++
		}
		if n > 0 && n <= maxSeqDigits {
			switch string(rest[n:]) {
			case "}":
				return seq, false, nil
			case `,"duplicate": true}`, `,"duplicate":true}`:
				return seq, true, nil
			}
		}
	}
	return decodeAck(data)
}

// decodeAck decodes any PubAck with encoding/json.
func decodeAck(data []byte) (seq uint64, duplicate bool, err error) {
	var ack struct {
		Error     *jetstream.APIError `json:"error"`
		Stream    string              `json:"stream"`
		Seq       uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, false, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return 0, false, fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.Stream == "" {
		return 0, false, jetstream.ErrInvalidJSAck
	}
	return ack.Seq, ack.Duplicate, nil
}

// Request publishes msg and waits for its PubAck, as jetstream's PublishMsg
// does: a request nobody answered (a stream leader changing) is sent again
// after jetstream's wait, as often as it would be, and then reported as
// jetstream.ErrNoStreamResponse.
func (r AckReader) Request(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (seq uint64, duplicate bool, err error) {
	resp, err := nc.RequestMsgWithContext(ctx, msg)
	for retry := 0; errors.Is(err, nats.ErrNoResponders) && retry < jetstream.DefaultPubRetryAttempts; retry++ {
		select {
		case <-ctx.Done():
		case <-time.After(jetstream.DefaultPubRetryWait):
		}
		resp, err = nc.RequestMsgWithContext(ctx, msg)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return 0, false, jetstream.ErrNoStreamResponse
	case err != nil:
		return 0, false, err
	}
	return r.Read(resp.Data)
}
