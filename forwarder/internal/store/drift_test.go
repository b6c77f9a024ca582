package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// replaceStream deletes the stream and adds it again with other subjects,
// as "nats stream rm" and "nats stream add" do.
func replaceStream(t *testing.T, js jetstream.JetStream, cfg Config, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, cfg.Stream.Name); err != nil {
		t.Fatal(err)
	}
	other := streamConfig(cfg)
	other.Subjects = subjects
	if _, err := js.CreateStream(ctx, other); err != nil {
		t.Fatal(err)
	}
}

// readyBroker connects a broker to ns, runs one check and requires it ready.
func readyBroker(t *testing.T, url string, cfg Config, log *zap.Logger) *Broker {
	t.Helper()
	b, err := Connect(url, cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.CheckNow(ctx); err != nil {
		t.Fatalf("first check: got %v, want ready", err)
	}
	return b
}

// TestCheckComparesStreamSubjects changes the stream's subjects under a
// ready broker: with stream.manage the check puts them back and logs both
// values at error level; without it readiness drops naming the difference.
func TestCheckComparesStreamSubjects(t *testing.T) {
	tests := []struct {
		name      string
		manage    bool
		wantReady string // "" for ready
		wantError string // the error log's message
	}{
		{"managed: put back", true, "", "replicas must share the stream settings"},
		{"unmanaged: not ready", false, "subjects [other.>] do not cover zautic.>", "nats not ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, js := startTestNATS(t)
			cfg := defaultConfig()
			cfg.Stream.Manage = tt.manage
			cfg.Quarantine.Enabled = false // this test is about the event stream
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if !tt.manage {
				if _, err := js.CreateStream(ctx, streamConfig(cfg)); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateKeyValue(ctx, bucketConfig(cfg)); err != nil {
					t.Fatal(err)
				}
			}
			core, logs := observer.New(zap.ErrorLevel)
			b := readyBroker(t, ns.ClientURL(), cfg, zap.New(core))

			replaceStream(t, js, cfg, "other.>")
			b.check(ctx)
			err := b.Ready()
			if tt.wantReady == "" && err != nil || tt.wantReady != "" && (err == nil || !strings.Contains(err.Error(), tt.wantReady)) {
				t.Fatalf("after the change: got %v, want %q", err, tt.wantReady)
			}
			errs := logs.FilterMessageSnippet(tt.wantError).All()
			if len(errs) != 1 {
				t.Fatalf("got %d error logs %q, want 1", len(errs), tt.wantError)
			}
			if tt.manage {
				if got := errs[0].ContextMap()["error"]; !strings.Contains(got.(string), "subjects [other.>] -> [zautic.>]") {
					t.Errorf("error log: got %v, want both values named", got)
				}
				s, err := js.Stream(ctx, cfg.Stream.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != "zautic.>" {
					t.Errorf("subjects after the check: got %v, want [zautic.>]", got)
				}
			}
		})
	}
}

// TestNoStreamResponseWakesTheCheck publishes to a subject no stream
// listens on: the broker asks for a check at once.
func TestNoStreamResponseWakesTheCheck(t *testing.T) {
	ns, js := startTestNATS(t)
	cfg := defaultConfig()
	b := readyBroker(t, ns.ClientURL(), cfg, zap.NewNop())
	replaceStream(t, js, cfg, "other.>")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := b.Publish(ctx, "zautic.message.sent", nil, []byte("{}"))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish: got %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
	select {
	case <-b.wake:
	default:
		t.Fatal("publish failed without waking the check")
	}
}

func TestSubjectCovers(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"zautic.>", true},
		{">", true},
		{"*.>", true},
		{"zautic.*", false},
		{"zautic.message.>", false},
		{"other.>", false},
		{"zautic", false},
	}
	for _, tt := range tests {
		if got := subjectCovers(tt.filter, "zautic.>"); got != tt.want {
			t.Errorf("subjectCovers(%q, zautic.>): got %v, want %v", tt.filter, got, tt.want)
		}
	}
}
