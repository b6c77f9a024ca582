package natsconn

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestAckReader(t *testing.T) {
	r := NewAckReader("ZAUTIC")
	tests := []struct {
		name      string
		ack       string
		seq       uint64
		duplicate bool
		err       error // errors.Is target; nil: none
		code      jetstream.ErrorCode
	}{
		{"stored", `{"stream":"ZAUTIC","seq":42}`, 42, false, nil, 0},
		{"duplicate as the server writes it", `{"stream":"ZAUTIC","seq":7,"duplicate": true}`, 7, true, nil, 0},
		{"duplicate without the space", `{"stream":"ZAUTIC","seq":7,"duplicate":true}`, 7, true, nil, 0},
		{"largest sequence", `{"stream":"ZAUTIC","seq":18446744073709551615}`, 18446744073709551615, false, nil, 0},
		{"with a domain", `{"stream":"ZAUTIC","domain":"hub","seq":9}`, 9, false, nil, 0},
		{"spaced", `{"stream": "ZAUTIC", "seq": 9}`, 9, false, nil, 0},
		{"a later server's field", `{"stream":"ZAUTIC","seq":9,"val":"1"}`, 9, false, nil, 0},
		{"duplicate false", `{"stream":"ZAUTIC","seq":9,"duplicate":false}`, 9, false, nil, 0},
		{"refused", `{"error":{"code":503,"err_code":10077,"description":"store failed"}}`, 0, false, nil, 10077},
		{"wrong last sequence", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"ZAUTIC","seq":0}`, 0, false, nil, 10071},
		{"no stream", `{"seq":3}`, 0, false, jetstream.ErrInvalidJSAck, 0},
		{"no sequence digits", `{"stream":"ZAUTIC","seq":}`, 0, false, jetstream.ErrInvalidJSAck, 0},
		{"sequence past uint64", `{"stream":"ZAUTIC","seq":18446744073709551616}`, 0, false, jetstream.ErrInvalidJSAck, 0},
		{"truncated", `{"stream":"ZAUTIC","seq":12`, 0, false, jetstream.ErrInvalidJSAck, 0},
		{"not JSON", `+OK`, 0, false, jetstream.ErrInvalidJSAck, 0},
		{"empty", ``, 0, false, jetstream.ErrInvalidJSAck, 0},
	}
	// The prefix is the server's own quoting: a name with '&' or a non-ASCII
	// letter, which encoding/json would write otherwise, is read by hand.
	odd := NewAckReader("Zau-tic_ev&é")
	if _, ok := bytes.CutPrefix([]byte(`{"stream":"Zau-tic_ev&é","seq":5}`), odd.prefix); !ok {
		t.Errorf("prefix %q: not the server's", odd.prefix)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, duplicate, err := r.Read([]byte(tt.ack))
			var apiErr *jetstream.APIError
			switch {
			case tt.code != 0:
				if !errors.As(err, &apiErr) || apiErr.ErrorCode != tt.code {
					t.Fatalf("err: got %v, want the API error %d", err, tt.code)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err: got %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatalf("err: got %v, want none", err)
			}
			if seq != tt.seq || duplicate != tt.duplicate {
				t.Errorf("got seq %d duplicate %v, want %d %v", seq, duplicate, tt.seq, tt.duplicate)
			}
			// The hand-read shape and encoding/json agree.
			s, d, e := decodeAck([]byte(tt.ack))
			if s != seq || d != duplicate || (e == nil) != (err == nil) {
				t.Errorf("encoding/json reads seq %d duplicate %v err %v", s, d, e)
			}
		})
	}
}

func BenchmarkAckReader(b *testing.B) {
	ack := []byte(`{"stream":"ZAUTIC","seq":1234567}`)
	r := NewAckReader("ZAUTIC")
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, _ = r.Read(ack)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, _ = decodeAck(ack)
		}
	})
}
