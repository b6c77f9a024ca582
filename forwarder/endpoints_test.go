package forwarder

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateEndpoints changes one thing of a valid configuration with
// two endpoints per case, and checks that the error names the key.
func TestValidateEndpoints(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Webhook.Secret = "s"
		c.Endpoints = []EndpointConfig{
			{Name: "acme", Secrets: []string{"a"}},
			{Name: "beta", Secrets: []string{"b"}, SubjectPrefix: "zautic.b", Subject: "{prefix}.{type}.{data.object.device_id}"},
		}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		key    string // "" when valid
	}{
		{"valid", func(*Config) {}, ""},
		{"only endpoints, one on the default path", func(c *Config) { c.Webhook.Secret = ""; c.Endpoints[0].Path = c.HTTP.Path }, ""},
		{"prefix equal to the stream's", func(c *Config) { c.Endpoints[0].SubjectPrefix = "zautic" }, ""},
		{"upper-case name", func(c *Config) { c.Endpoints[0].Name = "Acme" }, "endpoints[0].name"},
		{"empty name", func(c *Config) { c.Endpoints[0].Name = "" }, "endpoints[0].name"},
		{"name of 33 characters", func(c *Config) { c.Endpoints[0].Name = strings.Repeat("a", 33) }, "endpoints[0].name"},
		{"name with a dot", func(c *Config) { c.Endpoints[0].Name = "a.b" }, "endpoints[0].name"},
		{"event category", func(c *Config) { c.Endpoints[1].Name = "message" }, "endpoints[1].name"},
		{"mapped key prefix", func(c *Config) { c.Endpoints[1].Name = "sha256" }, "endpoints[1].name"},
		{"duplicate name", func(c *Config) { c.Endpoints[1].Name = "acme" }, "endpoints[1].name"},
		{"duplicate path", func(c *Config) { c.Endpoints[1].Path = "/webhooks/zautic/acme" }, "endpoints[1].path"},
		{"the default endpoint's path", func(c *Config) { c.Endpoints[0].Path = c.HTTP.Path }, "endpoints[0].path"},
		{"relative path", func(c *Config) { c.Endpoints[0].Path = "hooks/acme" }, "endpoints[0].path"},
		{"literal path with every allowed character", func(c *Config) { c.Endpoints[0].Path = "/hooks/Acme-EU_1.v2~x" }, ""},
		{"route parameter", func(c *Config) { c.Endpoints[0].Path = "/hooks/acme:eu" }, "endpoints[0].path"},
		{"two paths one route apart", func(c *Config) { c.Endpoints[0].Path, c.Endpoints[1].Path = "/x/:p", "/x/:q" }, "endpoints[0].path"},
		{"wildcard", func(c *Config) { c.Endpoints[1].Path = "/a/*" }, "endpoints[1].path"},
		{"dot-dot segment", func(c *Config) { c.Endpoints[0].Path = "/a/../webhooks/zautic" }, "endpoints[0].path"},
		{"dot segment", func(c *Config) { c.Endpoints[0].Path = "/a/./b" }, "endpoints[0].path"},
		{"query", func(c *Config) { c.Endpoints[0].Path = "/a?x=1" }, "endpoints[0].path"},
		{"fragment", func(c *Config) { c.Endpoints[0].Path = "/a#b" }, "endpoints[0].path"},
		{"percent-encoding", func(c *Config) { c.Endpoints[0].Path = "/a%20b" }, "endpoints[0].path"},
		{"empty segment", func(c *Config) { c.Endpoints[0].Path = "/a//b" }, "endpoints[0].path"},
		{"trailing slash", func(c *Config) { c.Endpoints[0].Path = "/hooks/acme/" }, "endpoints[0].path"},
		{"space", func(c *Config) { c.Endpoints[0].Path = "/hooks/ac me" }, "endpoints[0].path"},
		{"admin path", func(c *Config) { c.Endpoints[0].Path = "/metrics" }, "endpoints[0].path"},
		{"under an admin path", func(c *Config) { c.Endpoints[0].Path = "/quarantine/acme" }, "endpoints[0].path"},
		{"prefix outside the stream", func(c *Config) { c.Endpoints[1].SubjectPrefix = "other.b" }, "endpoints[1].subject_prefix"},
		{"prefix that only starts like the stream's", func(c *Config) { c.Endpoints[1].SubjectPrefix = "zauticb" }, "endpoints[1].subject_prefix"},
		{"wildcard prefix", func(c *Config) { c.Endpoints[1].SubjectPrefix = "zautic.*" }, "endpoints[1].subject_prefix"},
		{"invalid template", func(c *Config) { c.Endpoints[1].Subject = "{prefix}.{type}.>" }, "endpoints[1].subject"},
		{"invalid default template", func(c *Config) { c.Webhook.Subject = "{type}.{prefix}" }, "webhook.subject"},
		{"invalid allow entry", func(c *Config) { c.Endpoints[0].Events.Allow = []string{"message.*"} }, "endpoints[0].events.allow"},
		{"empty CloudEvents source", func(c *Config) { c.Publish.CloudEvents = true; c.Webhook.CloudEventsSource = "" }, "webhook.cloudevents_source"},
		{"CloudEvents source that is no URI", func(c *Config) { c.Publish.CloudEvents = true; c.Endpoints[0].CloudEventsSource = "%zz" }, "endpoints[0].cloudevents_source"},
		{"CloudEvents type prefix", func(c *Config) { c.Publish.CloudEvents = true; c.Publish.CloudEventsTypePrefix = "com zautic" }, "publish.cloudevents_type_prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.key == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.key != "" && (!errors.Is(err, ErrInvalidConfig) || !namesKey(err, tt.key)):
				t.Errorf("got %v, want an error naming %s", err, tt.key)
			}
		})
	}
}

// TestDefaultEndpointEnabled: the top-level section is an endpoint unless
// endpoints are configured and it has no secret at all.
func TestDefaultEndpointEnabled(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   bool
	}{
		{"no endpoints, no secret", func(*Config) {}, true},
		{"endpoints, no secret", func(c *Config) { c.Endpoints = []EndpointConfig{{Name: "acme"}} }, false},
		{"endpoints and a secret", func(c *Config) { c.Endpoints = []EndpointConfig{{Name: "acme"}}; c.Webhook.Secret = "s" }, true},
		{"endpoints and a secrets file", func(c *Config) { c.Endpoints = []EndpointConfig{{Name: "acme"}}; c.Webhook.SecretsFile = "/f" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			if got := c.DefaultEndpointEnabled(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// namesKey reports whether err names key as Validate does: after the
// sentinel's colon, followed by a space or a colon.
func namesKey(err error, key string) bool {
	return err != nil && (strings.Contains(err.Error(), ": "+key+" ") || strings.Contains(err.Error(), ": "+key+": "))
}
