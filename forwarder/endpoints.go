package forwarder

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/zautic/zautic-forwarder/forwarder/internal/ingest"
	"github.com/zautic/zautic-forwarder/forwarder/internal/quarantine"
	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"github.com/zautic/zautic-forwarder/zautic"
)

// EndpointConfig is one entry of endpoints: a webhook path of its own for
// one Zautic account, with its own secrets, subjects and dedup namespace.
// Empty values take the defaults of Endpoints.
type EndpointConfig struct {
	// Name is [a-z0-9][a-z0-9-]{0,31}, unique, and not a Zautic event
	// category: it scopes KV keys and Nats-Msg-Ids ("<name>.<key>") and
	// labels metrics and log lines.
	Name string `yaml:"name"`
	// Path defaults to /webhooks/zautic/<name>.
	Path string `yaml:"path"`
	// Secrets and SecretsFile are read, reloaded and named by key id as
	// webhook.secrets and webhook.secrets_file are.
	Secrets     []string `yaml:"secrets"`
	SecretsFile string   `yaml:"secrets_file"`
	// SubjectPrefix defaults to <stream.subject_prefix>.<name>; it must
	// lie inside the stream's subjects.
	SubjectPrefix string `yaml:"subject_prefix"`
	// Subject is the subject template, {prefix}.{type} by default.
	Subject string              `yaml:"subject"`
	Events  ingest.EventsConfig `yaml:"events"`
	// CloudEventsSource defaults to /zautic/<name>.
	CloudEventsSource string `yaml:"cloudevents_source"`
}

// endpointName is what a name may be: it becomes a KV key's first token, a
// Nats-Msg-Id's prefix, a metric label and a path segment.
var endpointName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// reservedEndpointNames are the Zautic event categories, which would make
// a named endpoint's default prefix look like a type, and the first tokens
// of the default endpoint's mapped KV keys (sha256.<hex>, sig.<hex>), which
// a named endpoint's keys must never meet.
var reservedEndpointNames = []string{"message", "device", "contact", "group", "template", "campaign", "webhook", "default", "sha256", "sig"}

// adminPaths are the admin listener's paths: no webhook path may be one, so
// that a proxy in front of both ports can never send a webhook to the
// admin API or the other way round.
var adminPaths = []string{"/", "/healthz", "/readyz", "/metrics", "/overview", "/deliveries", "/quarantine", "/static", "/debug/pprof"}

// pathProblem says what keeps path from being a literal webhook path, or
// "" when it is one. The paths are Echo routes, in which ":" and "*" are
// parameters and wildcards: two endpoints could land on one route, or one
// catch every path below it. And a path no request can reach (an empty,
// "." or ".." segment, which clients and proxies clean away; "?" or "#",
// which end the path; "%", which is decoded first) must not pass either. A
// trailing slash is refused too: the router matches a request only on the
// exact path, and Zautic's webhook URL is configured without one.
func pathProblem(path string) string {
	const allowed = `must be "/" followed by segments of A-Z a-z 0-9 . _ ~ - separated by single slashes, without a trailing slash, such as /webhooks/zautic/acme`
	if !strings.HasPrefix(path, "/") {
		return "must start with /; it " + allowed
	}
	if path == "/" {
		return ""
	}
	for _, seg := range strings.Split(path[1:], "/") {
		switch {
		case seg == "":
			return "has an empty segment (// or a trailing /); it " + allowed
		case seg == "." || seg == "..":
			return fmt.Sprintf("has a %q segment, which clients and proxies remove; it %s", seg, allowed)
		}
		if i := strings.IndexFunc(seg, func(r rune) bool { return !literalPathChar(r) }); i >= 0 {
			c := []rune(seg[i:])[0]
			why := "is not allowed"
			switch c {
			case ':', '*':
				why = "would make it a route pattern, not a path"
			case '?', '#':
				why = "would end the path"
			case '%':
				why = "is decoded before the path is matched"
			}
			return fmt.Sprintf("has %q, which %s; it %s", c, why, allowed)
		}
	}
	return ""
}

// literalPathChar reports whether r is an unreserved character of RFC 3986,
// the characters a path segment holds as they are.
func literalPathChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._~-", r)
}

func isAdminPath(path string) bool {
	trimmed := strings.TrimSuffix(path, "/")
	for _, p := range adminPaths {
		if path == p || trimmed == p || (p != "/" && strings.HasPrefix(path, p+"/")) {
			return true
		}
	}
	return false
}

// DefaultEndpointEnabled reports whether the top-level webhook section is
// an endpoint: it is unless endpoints are configured and no top-level
// secret is (webhook.secret, webhook.secrets, webhook.secret_file,
// webhook.secrets_file and ZAUTIC_WEBHOOK_SECRET all unset). Without it,
// http.path answers 404.
func (c Config) DefaultEndpointEnabled() bool {
	w := c.Webhook
	return len(c.Endpoints) == 0 || strings.TrimSpace(w.Secret) != "" || len(w.Secrets) > 0 || w.SecretFile != "" || w.SecretsFile != ""
}

// NamedEndpoints returns the endpoints with their defaults filled in.
func (c Config) NamedEndpoints() []EndpointConfig {
	out := make([]EndpointConfig, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		if ep.Path == "" {
			ep.Path = "/webhooks/zautic/" + ep.Name
		}
		if ep.SubjectPrefix == "" {
			ep.SubjectPrefix = c.Stream.SubjectPrefix + "." + ep.Name
		}
		if ep.Subject == "" {
			ep.Subject = zautic.DefaultSubjectTemplate
		}
		if ep.CloudEventsSource == "" {
			ep.CloudEventsSource = defaultCloudEventsSourceOf(ep.Name)
		}
		out[i] = ep
	}
	return out
}

// secretsConfig is the secrets section of the endpoint, for package secrets.
func (ep EndpointConfig) secretsConfig(i int) secrets.WebhookConfig {
	return secrets.WebhookConfig{Secrets: ep.Secrets, SecretsFile: ep.SecretsFile, Section: fmt.Sprintf("endpoints[%d]", i)}
}

// validateEndpoints checks each endpoint, naming the key of the first bad
// value as endpoints[<index>].<key>.
func (c Config) validateEndpoints() error {
	names, paths := map[string]int{}, map[string]string{}
	if c.DefaultEndpointEnabled() {
		paths[c.HTTP.Path] = "http.path"
	}
	for i, ep := range c.NamedEndpoints() {
		key := func(k string) string { return fmt.Sprintf("endpoints[%d].%s", i, k) }
		bad := func(k, why string, args ...any) error {
			return fmt.Errorf("%w: %s %s", ErrInvalidConfig, key(k), fmt.Sprintf(why, args...))
		}
		switch {
		case !endpointName.MatchString(ep.Name):
			return bad("name", "%q must be 1 to 32 of [a-z0-9-], starting with a letter or digit", ep.Name)
		case slices.Contains(reservedEndpointNames, ep.Name):
			return bad("name", "%q is reserved (the Zautic event categories, default, sha256, sig)", ep.Name)
		}
		if j, dup := names[ep.Name]; dup {
			return bad("name", "%q is also the name of endpoints[%d]", ep.Name, j)
		}
		names[ep.Name] = i
		if why := pathProblem(ep.Path); why != "" {
			return bad("path", "%q %s", ep.Path, why)
		}
		if isAdminPath(ep.Path) {
			return bad("path", "%q is a path of the admin listener", ep.Path)
		}
		if other, dup := paths[ep.Path]; dup {
			return bad("path", "%q is also the path of %s", ep.Path, other)
		}
		paths[ep.Path] = key("path")
		if err := zautic.ValidateSubjectTokens(ep.SubjectPrefix); err != nil {
			return bad("subject_prefix", "%q must be dot-separated tokens of [A-Za-z0-9_-]: %v", ep.SubjectPrefix, err)
		}
		if ep.SubjectPrefix != c.Stream.SubjectPrefix && !strings.HasPrefix(ep.SubjectPrefix, c.Stream.SubjectPrefix+".") {
			return bad("subject_prefix", "%q must lie inside the stream's subjects, %s.>", ep.SubjectPrefix, c.Stream.SubjectPrefix)
		}
		if c.Quarantine.Enabled && quarantine.SubjectsOverlap(ep.SubjectPrefix, c.Quarantine.SubjectPrefix) {
			return bad("subject_prefix", "%q must not overlap quarantine.subject_prefix", ep.SubjectPrefix)
		}
		if _, err := zautic.ParseSubjectTemplate(ep.Subject); err != nil {
			return bad("subject", "%v", err)
		}
		for _, t := range ep.Events.Allow {
			if err := zautic.ValidateSubjectTokens(t); err != nil {
				return bad("events.allow", "entry %q: %v", t, err)
			}
		}
		if !c.Publish.CloudEvents {
			continue
		}
		if err := (zautic.CloudEventsOptions{Source: ep.CloudEventsSource}).Validate(); err != nil {
			return bad("cloudevents_source", "%v", err)
		}
	}
	return nil
}

// endpoint is the ingest.Endpoint of a named endpoint.
func (c Config) endpoint(ep EndpointConfig) ingest.Endpoint {
	// Validate has parsed it: an error here cannot happen after it.
	tmpl, _ := zautic.ParseSubjectTemplate(ep.Subject)
	return ingest.Endpoint{Name: ep.Name, Subject: tmpl, CloudEvents: c.cloudEvents(ep.CloudEventsSource)}
}

// endpointIngestConfig is what the handler of a named endpoint reads.
func (c Config) endpointIngestConfig(ep EndpointConfig) ingest.Config {
	cfg := c.ingestConfig()
	cfg.SubjectPrefix, cfg.Allow, cfg.Endpoint = ep.SubjectPrefix, ep.Events.Allow, c.endpoint(ep)
	return cfg
}

// redactEndpoints returns a copy of eps with their secrets replaced.
func redactEndpoints(eps []EndpointConfig) []EndpointConfig {
	if eps == nil {
		return nil
	}
	out := slices.Clone(eps)
	for i := range out {
		if n := len(out[i].Secrets); n > 0 {
			out[i].Secrets = []string{fmt.Sprintf("%s x%d", redacted, n)}
		}
	}
	return out
}
