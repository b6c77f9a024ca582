package secrets

// section is the prefix of the keys of cfg in messages.
func (cfg WebhookConfig) section() string {
	if cfg.Section == "" {
		return "webhook"
	}
	return cfg.Section
}
