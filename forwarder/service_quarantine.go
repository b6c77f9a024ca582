package forwarder

// setUpQuarantine lets the handler keep rejected requests, returns the
// replayer of the quarantine (nil when disabled), prepares the automatic
// replay, and sets what a change of the secrets triggers.
func (s *Service) setUpQuarantine(h *webhookHandler, m *metricSet) *replayer {
	m.knownKeyIDs(keyIDs(s.secrets.Current()))
	onChange := func() { m.knownKeyIDs(keyIDs(s.secrets.Current())) }
	s.watcher.OnChange(onChange)
	if !s.cfg.Quarantine.Enabled {
		return nil
	}
	h.keep = newQuarantiner(s.cfg, s.broker, s.log, m)
	r := newReplayer(h, s.broker)
	if s.cfg.Quarantine.AutoReplay {
		s.autoReplay = newAutoReplayer(r, s.broker.Ready, s.log)
		s.watcher.OnChange(func() {
			onChange()
			s.autoReplay.Trigger()
		})
	}
	return r
}
