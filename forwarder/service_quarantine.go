package forwarder

// setUpQuarantine lets the handler keep rejected requests, returns the
// replayer of the quarantine (nil when disabled), prepares the automatic
// replay, and sets what a change of the secrets triggers.
func (s *Service) setUpQuarantine(h *webhookHandler, m *metricSet) *replayer {
	showKeyIDs := func() { m.knownKeyIDs(keyIDs(s.secrets.Current())) }
	showKeyIDs()
	var r *replayer
	if s.cfg.Quarantine.Enabled {
		h.keep = newQuarantiner(s.cfg, s.broker, s.log, m)
		r = newReplayer(h, s.broker)
		if s.cfg.Quarantine.AutoReplay {
			s.autoReplay = newAutoReplayer(r, s.broker.Ready, s.log)
		}
	}
	s.watcher.OnChange(func() {
		showKeyIDs()
		if s.autoReplay != nil {
			s.autoReplay.Trigger()
		}
	})
	return r
}
