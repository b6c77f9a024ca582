package forwarder

import (
	"fmt"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/zautic"
)

// PublishConfig is what the forwarder adds to every published message.
type PublishConfig struct {
	// CloudEvents adds the binary content mode attributes of the CloudEvents
	// NATS protocol binding (ce-* headers); the body stays the signed bytes.
	CloudEvents bool `yaml:"cloudevents"`
	// CloudEventsTypePrefix makes ce-type "<prefix>.<event type>".
	CloudEventsTypePrefix string `yaml:"cloudevents_type_prefix"`
}

// defaultWebhookConfig is the webhook section's defaults: the default
// endpoint.
func defaultWebhookConfig() secrets.WebhookConfig {
	return secrets.WebhookConfig{
		Tolerance: 5 * time.Minute, Subject: zautic.DefaultSubjectTemplate,
		CloudEventsSource: defaultCloudEventsSourceOf(ingest.DefaultEndpoint),
	}
}

// defaultCloudEventsSourceOf is an endpoint's ce-source when none is set:
// one Zautic account per endpoint, so one source, which names it.
func defaultCloudEventsSourceOf(endpoint string) string { return "/zautic/" + endpoint }

// validateRouting checks the keys that decide subjects and CloudEvents
// attributes, naming the key.
func (c Config) validateRouting() error {
	if _, err := zautic.ParseSubjectTemplate(c.Webhook.Subject); err != nil {
		return fmt.Errorf("%w: webhook.subject: %w", ErrInvalidConfig, err)
	}
	if err := c.validateEndpoints(); err != nil {
		return err
	}
	if !c.Publish.CloudEvents {
		return nil
	}
	if err := (zautic.CloudEventsOptions{Source: "/", TypePrefix: c.Publish.CloudEventsTypePrefix}).Validate(); err != nil || c.Publish.CloudEventsTypePrefix == "" {
		return fmt.Errorf("%w: publish.cloudevents_type_prefix must be dot-separated tokens of [A-Za-z0-9_-], such as %q", ErrInvalidConfig, zautic.DefaultCloudEventsTypePrefix)
	}
	if err := (zautic.CloudEventsOptions{Source: c.Webhook.CloudEventsSource}).Validate(); err != nil {
		return fmt.Errorf("%w: webhook.cloudevents_source: %w", ErrInvalidConfig, err)
	}
	return nil
}

// cloudEvents returns the CloudEvents options of an endpoint whose source
// is source, or nil when publish.cloudevents is off.
func (c Config) cloudEvents(source string) *zautic.CloudEventsOptions {
	if !c.Publish.CloudEvents {
		return nil
	}
	return &zautic.CloudEventsOptions{Source: source, TypePrefix: c.Publish.CloudEventsTypePrefix}
}

// defaultEndpoint is the endpoint of the top-level webhook section.
func (c Config) defaultEndpoint() ingest.Endpoint {
	// Validate has parsed it: an error here cannot happen after it.
	tmpl, _ := zautic.ParseSubjectTemplate(c.Webhook.Subject)
	named := map[string]bool{}
	for _, ep := range c.Endpoints {
		named[ep.Name] = true
	}
	return ingest.Endpoint{Subject: tmpl, CloudEvents: c.cloudEvents(c.Webhook.CloudEventsSource), Named: named}
}
