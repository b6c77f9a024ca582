package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// errStreamChanged is returned by the readiness check when the stream no
// longer has the settings the forwarder needs: with stream.manage, any
// setting it owns; without it, subjects that do not cover what it publishes.
var errStreamChanged = errors.New("stream settings changed")

// streamDrift lists how the stream's configuration differs from what the
// forwarder needs. With stream.manage it owns the subjects, max age,
// duplicate window and replicas, and wants them exactly as configured.
// Without it, the operator owns the stream, and only its subjects matter:
// they must cover "<prefix>.>", or every publish fails.
func (b *Broker) streamDrift(have jetstream.StreamConfig) []string {
	want := streamConfig(b.cfg)
	if b.cfg.Stream.Manage {
		return streamChanges(have, want)
	}
	for _, filter := range have.Subjects {
		if subjectCovers(filter, want.Subjects[0]) {
			return nil
		}
	}
	return []string{fmt.Sprintf("subjects %v do not cover %s", have.Subjects, want.Subjects[0])}
}

// checkStreamDrift is the part of the periodic check that compares the
// stream with the configuration.
func (b *Broker) checkStreamDrift(stream jetstream.Stream) error {
	if drift := b.streamDrift(stream.CachedInfo().Config); len(drift) > 0 {
		return fmt.Errorf("%w: stream %q: %s", errStreamChanged, b.cfg.Stream.Name, strings.Join(drift, ", "))
	}
	return nil
}

// reportDrift logs, at error level, a stream changed after this replica had
// put its settings in place. Two replicas configured with different stream
// settings would undo each other's changes for ever; the log names both
// values so that an operator can align them.
func (b *Broker) reportDrift(err error) {
	if !errors.Is(err, errStreamChanged) {
		return
	}
	b.log.Error("stream settings changed under the forwarder, putting them back; replicas must share the stream settings, "+
		"or they undo each other's changes", zap.String("stream", b.cfg.Stream.Name), zap.Error(err))
}

// subjectCovers reports whether the stream subject filter matches every
// subject under wanted, itself of the form "<tokens>.>".
func subjectCovers(filter, wanted string) bool {
	f, w := strings.Split(filter, "."), strings.Split(wanted, ".")
	for i, token := range f {
		switch {
		case token == ">":
			return true
		case i >= len(w) || w[i] == ">":
			return false
		case token != "*" && token != w[i]:
			return false
		}
	}
	return slices.Equal(f, w)
}
