package forwarder

import "context"

// startQuarantine returns the replayer of the quarantine (nil when
// disabled), starts the automatic replay when enabled, and sets what a
// change of the secrets triggers.
func (s *Service) startQuarantine(ctx context.Context, h *Handler, m *Metrics) *Replayer {
	m.KnownKeyIDs(s.Secrets.KeyIDs())
	s.secretsChanged = func() { m.KnownKeyIDs(s.Secrets.KeyIDs()) }
	if !s.cfg.Quarantine.Enabled {
		return nil
	}
	replayer := NewReplayer(h, s.Broker)
	if s.cfg.Quarantine.AutoReplay {
		auto := newAutoReplayer(replayer, s.Broker.Ready, s.log)
		s.wg.Go(func() { auto.Run(ctx) })
		s.secretsChanged = func() {
			m.KnownKeyIDs(s.Secrets.KeyIDs())
			auto.Trigger()
		}
	}
	return replayer
}
