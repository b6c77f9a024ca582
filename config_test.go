package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Tests in this file use t.Setenv, so none of them is parallel.

// clearForwarderEnv unsets every FORWARDER_ variable and the Zautic secret
// variable of the process for the test, so that the environment the tests
// run in cannot leak into them (an empty variable counts as a value, and an
// unknown one stops the load).
func clearForwarderEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") || name == zautic.SecretEnv {
			t.Setenv(name, "") // restores the value after the test
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// writeFile writes content to name in a new temp dir and returns the path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadTestConfig(t *testing.T, path string) forwarder.Config {
	t.Helper()
	cfg, err := loadConfigFile(newViper(), path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

// configValues renders cfg as dotted keys through its YAML form, the same
// names Keys returns, with values printed as fmt.Sprint prints them.
func configValues(t *testing.T, cfg forwarder.Config) map[string]string {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = fmt.Sprint(v)
		}
	}
	walk("", tree)
	return out
}

func TestLoadConfigDefaults(t *testing.T) {
	clearForwarderEnv(t)
	got := loadTestConfig(t, "")
	if want := forwarder.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestKeysSortedAndComplete(t *testing.T) {
	keys := configKeys()
	if !slices.IsSorted(keys) {
		t.Errorf("got %v, want sorted keys", keys)
	}
	values := configValues(t, forwarder.DefaultConfig())
	if len(keys) != len(values) {
		t.Errorf("got %d keys, want %d (one per leaf of Config)", len(keys), len(values))
	}
	for _, k := range keys {
		if _, ok := values[k]; !ok {
			t.Errorf("key %s is not a field of Config", k)
		}
	}
}

func TestLoadConfigFile(t *testing.T) {
	clearForwarderEnv(t)
	path := writeFile(t, "forwarder.yaml", `
http:
  addr: 127.0.0.1:8181
  max_body_bytes: 4096
admin:
  pprof: true
webhook:
  secrets: [one, two]
  tolerance: 90s
nats:
  url: nats://127.0.0.1:4333
stream:
  placement:
    cluster: east
    tags: [ssd]
events:
  allow:
    - message.sent
    - message.read
`)
	cfg := loadTestConfig(t, path)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"http.addr", cfg.HTTP.Addr, "127.0.0.1:8181"},
		{"http.max_body_bytes", cfg.HTTP.MaxBodyBytes, int64(4096)},
		{"http.path keeps its default", cfg.HTTP.Path, "/webhooks/zautic"},
		{"admin.pprof", cfg.Admin.Pprof, true},
		{"webhook.secrets", cfg.Webhook.Secrets, []string{"one", "two"}},
		{"webhook.tolerance", cfg.Webhook.Tolerance, 90 * time.Second},
		{"nats.url", cfg.NATS.URL, "nats://127.0.0.1:4333"},
		{"stream.placement.cluster", cfg.Stream.Placement.Cluster, "east"},
		{"stream.placement.tags", cfg.Stream.Placement.Tags, []string{"ssd"}},
		{"events.allow", cfg.Events.Allow, []string{"message.sent", "message.read"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	clearForwarderEnv(t)
	tests := []struct {
		name   string
		path   string
		reason string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.yaml"), "nope.yaml"},
		{"not YAML", writeFile(t, "bad.yaml", "http: [unclosed\n"), "bad.yaml"},
		{"bad value in file", writeFile(t, "value.yaml", "http:\n  read_timeout: soon\n"), "http.read_timeout"},
		{"misspelt key in file", writeFile(t, "typo.yaml", "stream:\n  nmae: OTHER\n"), "line 2: unknown key stream.nmae: did you mean stream.name?"},
		{"unknown section in file", writeFile(t, "section.yaml", "natss:\n  url: nats://x\n"), "line 1: unknown key natss: did you mean nats?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfigFile(newViper(), tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("got error %v, want one mentioning %q", err, tt.reason)
			}
		})
	}
}

// loadInvalidConfig loads file (YAML, none when empty) with env as the only
// FORWARDER_ variables and returns the error, which must wrap
// ErrInvalidConfig.
func loadInvalidConfig(t *testing.T, env map[string]string, file string) error {
	t.Helper()
	clearForwarderEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := ""
	if file != "" {
		path = writeFile(t, "forwarder.yaml", file)
	}
	_, err := loadConfigFile(newViper(), path)
	if !errors.Is(err, forwarder.ErrInvalidConfig) {
		t.Fatalf("got error %v, want %v", err, forwarder.ErrInvalidConfig)
	}
	return err
}

// TestConfigErrorsSayWhatToFix: each error names the key or variable, the
// value and the line where they apply, and what would be right; none names
// a Go type.
func TestConfigErrorsSayWhatToFix(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string
	}{
		{name: "top-level key typo", file: "webhok:\n  secret: x\n",
			want: []string{"line 1: unknown key webhok: did you mean webhook?"}},
		{name: "key typo in a section", file: "http:\n  addr: :8081\n  adress: :8082\n",
			want: []string{"line 3: unknown key http.adress: did you mean http.addr?"}},
		{name: "unknown key far from any", file: "colour: blue\n",
			want: []string{"line 1: unknown key colour (known here: admin, dedup, endpoints, events, http, log, nats, publish, quarantine, stream, tracing, webhook)"}},
		{name: "several unknown keys", file: "webhok:\n  secret: x\nstream:\n  nmae: X\n",
			want: []string{"line 1: unknown key webhok", "line 4: unknown key stream.nmae: did you mean stream.name?"}},
		{name: "duration in words in the file", file: "webhook:\n  tolerance: \"5 minutes\"\n",
			want: []string{`webhook.tolerance: "5 minutes" is not a duration: use a number with a unit such as 300ms, 5s, 5m, 1h`}},
		{name: "duration in words in the environment", env: map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "5 minutes"},
			want: []string{`webhook.tolerance: "5 minutes" is not a duration: use a number with a unit such as 300ms, 5s, 5m, 1h`}},
		{name: "key indented one space too few on line 3", file: "webhook:\n  secret: x\n tolerance: 5m\n",
			want: []string{"line 3: did not find expected key (check the indentation"}},
		{name: "list item under a mapping on line 3", file: "webhook:\n  secret: x\n  - y\n",
			want: []string{"line 3: "}},
		{name: "tab on line 4", file: "webhook:\n  secret: x\nhttp:\n\taddr: :8081\n",
			want: []string{"line 4: ", "a tab: YAML indents with spaces"}},
		{name: "key given twice", file: "webhook:\n  secret: x\n  secret: y\n",
			want: []string{`line 3: mapping key "secret" already defined at line 2`}},
		{name: "a list for the file", file: "- http\n- nats\n",
			want: []string{"line 1: the file holds sections of keys"}},
		{name: "section given a value", file: "webhook: s3cret\n",
			want: []string{"webhook is a section: write its keys under it"}},
		{name: "a list for a single value", file: "nats:\n  url: [nats://a, nats://b]\n",
			want: []string{"nats.url: want a single value, got a list"}},
		{name: "word for a number", env: map[string]string{"FORWARDER_HTTP_MAX_BODY_BYTES": "lots"},
			want: []string{`http.max_body_bytes: "lots" is not a whole number`}},
		{name: "word for a bool", env: map[string]string{"FORWARDER_ADMIN_PPROF": "maybe"},
			want: []string{`admin.pprof: "maybe" is not true or false`}},
		{name: "misspelt variable", env: map[string]string{"FORWARDER_HTTP_ADRESS": ":8081"},
			want: []string{"unknown environment variable FORWARDER_HTTP_ADRESS: did you mean FORWARDER_HTTP_ADDR?"}},
		{name: "misspelt variable, empty", env: map[string]string{"FORWARDER_ADMIN_ADRR": ""},
			want: []string{"unknown environment variable FORWARDER_ADMIN_ADRR: did you mean FORWARDER_ADMIN_ADDR?"}},
		{name: "variable of no key", env: map[string]string{"FORWARDER_COLOUR": "blue"},
			want: []string{"unknown environment variable FORWARDER_COLOUR", "http.addr is FORWARDER_HTTP_ADDR"}},
		{name: "misspelt variable names its key in the hint", env: map[string]string{"FORWARDER_NATS_USR": "bob"},
			want: []string{"did you mean FORWARDER_NATS_USER?", "(each key has one variable: nats.user is FORWARDER_NATS_USER)"}},
		{name: "variable of no key in a section names a key of it", env: map[string]string{"FORWARDER_NATS_SERVERS": "nats://a"},
			want: []string{"unknown environment variable FORWARDER_NATS_SERVERS", "(each key has one variable: nats."}},
		{name: "admin.token of white space only", env: map[string]string{"FORWARDER_ADMIN_TOKEN": "   "},
			want: []string{"admin.token (FORWARDER_ADMIN_TOKEN) is only white space", "loopback clients only"}},
		{name: "prefixed secret variable empty, Zautic's set", env: map[string]string{"FORWARDER_WEBHOOK_SECRET": "", zautic.SecretEnv: "s3cret"},
			want: []string{"FORWARDER_WEBHOOK_SECRET is set but empty, which hides " + zautic.SecretEnv}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadInvalidConfig(t, tt.env, tt.file)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to say %q", err, w)
				}
			}
			for _, goName := range []string{"forwarder.Config", "int64", "time:", "interface", "has invalid keys"} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("got error %q, which speaks Go (%q)", err, goName)
				}
			}
		})
	}
}

// TestEnvironmentNotOurs: variables that start with FORWARDER_ without
// being ours do not stop the start: Kubernetes' service links for a Service
// named forwarder.
func TestEnvironmentNotOurs(t *testing.T) {
	clearForwarderEnv(t)
	for _, name := range []string{"FORWARDER_SERVICE_HOST", "FORWARDER_SERVICE_PORT", "FORWARDER_SERVICE_PORT_HTTP",
		"FORWARDER_PORT", "FORWARDER_PORT_8080_TCP", "FORWARDER_PORT_8080_TCP_ADDR", "FORWARDER_PORT_8080_TCP_PROTO"} {
		t.Setenv(name, "10.0.0.1")
	}
	loadTestConfig(t, "")
}

// TestEveryDocumentedVariableIsKnown: every FORWARDER_ variable that the
// documentation, the manifests and the scripts use is one the load accepts.
func TestEveryDocumentedVariableIsKnown(t *testing.T) {
	name := regexp.MustCompile(envPrefix + `_[A-Z0-9_]*[A-Z0-9]`)
	documented := map[string]string{}
	for _, root := range []string{"README.md", "config.example.yaml", "Dockerfile", "docs", "deploy", "examples", "scripts"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
				return err
			}
			raw, err := os.ReadFile(path)
			for _, n := range name.FindAllString(string(raw), -1) {
				documented[n] = path
			}
			return err
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if len(documented) == 0 {
		t.Fatal("found no FORWARDER_ variable in the documentation")
	}
	for n, path := range documented {
		if err := checkEnvNames([]string{n + "=x"}); err != nil {
			t.Errorf("%s, used in %s, is refused: %v", n, path, err)
		}
	}
}

func TestLoadConfigEnvBeatsFile(t *testing.T) {
	clearForwarderEnv(t)
	path := writeFile(t, "forwarder.yaml", "http:\n  addr: 127.0.0.1:1111\n  path: /from-file\nwebhook:\n  secrets: [file]\n")
	t.Setenv("FORWARDER_HTTP_ADDR", "127.0.0.1:2222")
	t.Setenv("FORWARDER_WEBHOOK_SECRETS", "env1,env2")
	cfg := loadTestConfig(t, path)
	if got, want := cfg.HTTP.Addr, "127.0.0.1:2222"; got != want {
		t.Errorf("http.addr: got %q, want %q", got, want)
	}
	if got, want := cfg.HTTP.Path, "/from-file"; got != want {
		t.Errorf("http.path: got %q, want %q (set in the file only)", got, want)
	}
	if got, want := cfg.Webhook.Secrets, []string{"env1", "env2"}; !slices.Equal(got, want) {
		t.Errorf("webhook.secrets: got %q, want %q", got, want)
	}
}

func TestLoadConfigSecretEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"Zautic's variable", map[string]string{zautic.SecretEnv: "zautic"}, "zautic"},
		{"prefixed variable", map[string]string{"FORWARDER_WEBHOOK_SECRET": "prefixed"}, "prefixed"},
		{"prefixed variable wins", map[string]string{zautic.SecretEnv: "zautic", "FORWARDER_WEBHOOK_SECRET": "prefixed"}, "prefixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearForwarderEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if got := loadTestConfig(t, "").Webhook.Secret; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadConfigEnvLists(t *testing.T) {
	tests := []struct {
		name  string
		env   string
		value string
		get   func(forwarder.Config) []string
		want  []string
	}{
		{"secrets", "FORWARDER_WEBHOOK_SECRETS", "a,b,c", func(c forwarder.Config) []string { return c.Webhook.Secrets }, []string{"a", "b", "c"}},
		{"secrets with spaces and empty entries", "FORWARDER_WEBHOOK_SECRETS", " a , ,b,", func(c forwarder.Config) []string { return c.Webhook.Secrets }, []string{"a", "b"}},
		{"one secret", "FORWARDER_WEBHOOK_SECRETS", "only", func(c forwarder.Config) []string { return c.Webhook.Secrets }, []string{"only"}},
		{"events allow", "FORWARDER_EVENTS_ALLOW", "message.sent,message.read", func(c forwarder.Config) []string { return c.Events.Allow }, []string{"message.sent", "message.read"}},
		{"events allow with spaces", "FORWARDER_EVENTS_ALLOW", "message.sent, webhook.test", func(c forwarder.Config) []string { return c.Events.Allow }, []string{"message.sent", "webhook.test"}},
		{"placement tags", "FORWARDER_STREAM_PLACEMENT_TAGS", "ssd,az:1", func(c forwarder.Config) []string { return c.Stream.Placement.Tags }, []string{"ssd", "az:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearForwarderEnv(t)
			t.Setenv(tt.env, tt.value)
			if got := tt.get(loadTestConfig(t, "")); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// envOverride is a valid non-default value of a key, as set in the
// environment and as it reads back from the decoded Config (fmt.Sprint of
// its YAML form). with lists keys that must be set too for the value to be
// valid.
type envOverride struct {
	env  string
	want string
	with map[string]string
}

// envOverrides holds one entry for every key of configKeys();
// TestEveryKeyEnvOverride fails when a key is added without one.
var envOverrides = map[string]envOverride{
	"admin.addr":                  {env: "127.0.0.1:9999", want: "127.0.0.1:9999"},
	"admin.pprof":                 {env: "true", want: "true"},
	"admin.token":                 {env: "admin-t0ken", want: "admin-t0ken"},
	"admin.token_file":            {env: "/run/secrets/admin-token", want: "/run/secrets/admin-token"},
	"admin.max_concurrent_scans":  {env: "4", want: "4"},
	"admin.max_connections":       {env: "16", want: "16"},
	"admin.idle_timeout":          {env: "30s", want: "30s"},
	"dedup.bucket":                {env: "other-dedup", want: "other-dedup"},
	"dedup.key":                   {env: "delivery", want: "delivery"},
	"dedup.max_bytes":             {env: "1048576", want: "1048576"},
	"dedup.max_pending_marks":     {env: "128", want: "128"},
	"dedup.repair_max":            {env: "500", want: "500"},
	"dedup.repair_window":         {env: "1h", want: "1h0m0s"},
	"dedup.replicas":              {env: "3", want: "3"},
	"dedup.ttl":                   {env: "24h", want: "24h0m0s"},
	"events.allow":                {env: "message.sent,message.read", want: "[message.sent message.read]"},
	"http.addr":                   {env: "127.0.0.1:8081", want: "127.0.0.1:8081"},
	"http.idle_timeout":           {env: "90s", want: "1m30s"},
	"http.max_body_bytes":         {env: "2048", want: "2048"},
	"http.max_body_memory":        {env: "33554432", want: "33554432"},
	"http.max_connections":        {env: "256", want: "256"},
	"http.max_header_bytes":       {env: "4096", want: "4096"},
	"http.max_in_flight":          {env: "7", want: "7"},
	"http.min_body_rate":          {env: "0", want: "0"},
	"http.path":                   {env: "/hooks/z", want: "/hooks/z"},
	"http.read_header_timeout":    {env: "3s", want: "3s"},
	"http.read_timeout":           {env: "11s", want: "11s"},
	"http.shutdown_timeout":       {env: "9s", want: "9s"},
	"http.write_timeout":          {env: "12s", want: "12s"},
	"log.flush_interval":          {env: "1s", want: "1s"},
	"log.format":                  {env: "console", want: "console"},
	"log.level":                   {env: "debug", want: "debug"},
	"nats.connect_timeout":        {env: "4s", want: "4s"},
	"nats.creds_file":             {env: "/etc/nats/user.creds", want: "/etc/nats/user.creds"},
	"nats.embedded.listen":        {env: "127.0.0.1:0", want: "127.0.0.1:0"},
	"nats.embedded.store_dir":     {env: "/var/lib/forwarder", want: "/var/lib/forwarder"},
	"nats.embedded.sync_interval": {env: "2m", want: "2m"},
	"nats.name":                   {env: "forwarder-1", want: "forwarder-1"},
	"nats.nkey_file":              {env: "/etc/nats/seed.nk", want: "/etc/nats/seed.nk"},
	"nats.password":               {env: "pw", want: "pw", with: map[string]string{"nats.user": "forwarder"}},
	"nats.ping_interval":          {env: "3s", want: "3s"},
	"nats.publish_timeout":        {env: "8s", want: "8s"},
	"nats.tls.ca_file":            {env: "/etc/tls/ca.pem", want: "/etc/tls/ca.pem"},
	"nats.tls.cert_file":          {env: "/etc/tls/cert.pem", want: "/etc/tls/cert.pem", with: map[string]string{"nats.tls.key_file": "/etc/tls/key.pem"}},
	"nats.tls.key_file":           {env: "/etc/tls/key.pem", want: "/etc/tls/key.pem", with: map[string]string{"nats.tls.cert_file": "/etc/tls/cert.pem"}},
	"nats.token":                  {env: "tok", want: "tok"},
	"nats.url":                    {env: "nats://127.0.0.1:4333,nats://127.0.0.1:4334", want: "nats://127.0.0.1:4333,nats://127.0.0.1:4334"},
	"nats.user":                   {env: "forwarder", want: "forwarder", with: map[string]string{"nats.password": "pw"}},
	"quarantine.auto_replay":      {env: "false", want: "false"},
	"quarantine.burst":            {env: "5", want: "5"},
	"quarantine.enabled":          {env: "false", want: "false"},
	"quarantine.max_age":          {env: "24h", want: "24h0m0s"},
	"quarantine.max_bytes":        {env: "1048576", want: "1048576"},
	"quarantine.rate":             {env: "2.5", want: "2.5"},
	"quarantine.stream":           {env: "REJECTED", want: "REJECTED"},
	"quarantine.subject_prefix":   {env: "acme.rejected", want: "acme.rejected"},
	"stream.duplicate_window":     {env: "5m", want: "5m0s"},
	"stream.manage":               {env: "false", want: "false"},
	"stream.max_age":              {env: "48h", want: "48h0m0s"},
	"stream.max_bytes":            {env: "1073741824", want: "1073741824"},
	"stream.name":                 {env: "EVENTS", want: "EVENTS"},
	"stream.placement.cluster":    {env: "east", want: "east"},
	"stream.placement.tags":       {env: "ssd,fast", want: "[ssd fast]"},
	"stream.replicas":             {env: "3", want: "3"},
	"stream.subject_prefix":       {env: "acme.zautic", want: "acme.zautic"},
	"tracing.enabled":             {env: "true", want: "true"},
	"webhook.secret":              {env: "s3cret", want: "s3cret"},
	"webhook.secret_file":         {env: "/run/secrets/zautic", want: "/run/secrets/zautic"},
	"webhook.secrets":             {env: "a,b", want: "[a b]"},
	"webhook.secrets_file":        {env: "/run/secrets/zautic-list", want: "/run/secrets/zautic-list"},
	"webhook.tolerance":           {env: "1m", want: "1m0s"},
}

// TestEveryKeyEnvOverride proves that the FORWARDER_ variable of every key
// reaches the decoded Config, and changes that key only.
func TestEveryKeyEnvOverride(t *testing.T) {
	defaults := configValues(t, forwarder.DefaultConfig())
	for _, key := range configKeys() {
		t.Run(key, func(t *testing.T) {
			tt, ok := envOverrides[key]
			if !ok {
				t.Fatalf("no override value for key %s: add one to envOverrides", key)
			}
			if tt.want == defaults[key] {
				t.Fatalf("override %q of %s is its default; pick another value", tt.want, key)
			}
			clearForwarderEnv(t)
			t.Setenv(envName(key), tt.env)
			for k, v := range tt.with {
				t.Setenv(envName(k), v)
			}
			got := configValues(t, loadTestConfig(t, ""))
			if got[key] != tt.want {
				t.Errorf("%s=%s: got %s = %q, want %q", envName(key), tt.env, key, got[key], tt.want)
			}
			for k, def := range defaults {
				if _, companion := tt.with[k]; k != key && !companion && got[k] != def {
					t.Errorf("%s=%s changed %s: got %q, want the default %q", envName(key), tt.env, k, got[k], def)
				}
			}
		})
	}
}

// TestAllKeysEnvOverrideTogether sets every variable at once, as a
// deployment with a full environment would.
func TestAllKeysEnvOverrideTogether(t *testing.T) {
	clearForwarderEnv(t)
	for _, key := range configKeys() {
		t.Setenv(envName(key), envOverrides[key].env)
	}
	got := configValues(t, loadTestConfig(t, ""))
	for _, key := range configKeys() {
		if want := envOverrides[key].want; got[key] != want {
			t.Errorf("%s: got %q, want %q", key, got[key], want)
		}
	}
}

func TestLoadConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		file string // YAML, for values the environment cannot express (empty)
		key  string // the error must name it
	}{
		{name: "bad duration", env: map[string]string{"FORWARDER_HTTP_READ_TIMEOUT": "soon"}, key: "http.read_timeout"},
		{name: "duration without unit", env: map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "300"}, key: "webhook.tolerance"},
		{name: "duration without unit in the file", file: "webhook:\n  tolerance: 300\n", key: "webhook.tolerance"},
		{name: "publish timeout without unit in the file", file: "nats:\n  publish_timeout: 5\n", key: "nats.publish_timeout"},
		{name: "fractional duration without unit in the file", file: "http:\n  read_timeout: 2.5\n", key: "http.read_timeout"},
		{name: "tolerance under a second", env: map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "300ms"}, key: "webhook.tolerance"},
		{name: "publish timeout under 100ms", env: map[string]string{"FORWARDER_NATS_PUBLISH_TIMEOUT": "50ms"}, key: "nats.publish_timeout"},
		{name: "not a number", env: map[string]string{"FORWARDER_HTTP_MAX_BODY_BYTES": "lots"}, key: "http.max_body_bytes"},
		{name: "not a bool", env: map[string]string{"FORWARDER_ADMIN_PPROF": "maybe"}, key: "admin.pprof"},
		{name: "unknown dedup.key", env: map[string]string{"FORWARDER_DEDUP_KEY": "header"}, key: "dedup.key"},
		{name: "empty subject prefix", file: "stream:\n  subject_prefix: \"\"\n", key: "stream.subject_prefix"},
		{name: "wildcard subject prefix", env: map[string]string{"FORWARDER_STREAM_SUBJECT_PREFIX": "zautic.>"}, key: "stream.subject_prefix"},
		{name: "subject prefix with empty token", env: map[string]string{"FORWARDER_STREAM_SUBJECT_PREFIX": "a..b"}, key: "stream.subject_prefix"},
		{name: "subject prefix with space", env: map[string]string{"FORWARDER_STREAM_SUBJECT_PREFIX": "za utic"}, key: "stream.subject_prefix"},
		{name: "negative body size", env: map[string]string{"FORWARDER_HTTP_MAX_BODY_BYTES": "-1"}, key: "http.max_body_bytes"},
		{name: "zero header size", env: map[string]string{"FORWARDER_HTTP_MAX_HEADER_BYTES": "0"}, key: "http.max_header_bytes"},
		{name: "negative in flight", env: map[string]string{"FORWARDER_HTTP_MAX_IN_FLIGHT": "-5"}, key: "http.max_in_flight"},
		{name: "zero body memory", env: map[string]string{"FORWARDER_HTTP_MAX_BODY_MEMORY": "0"}, key: "http.max_body_memory"},
		{name: "body memory without room for one large body", env: map[string]string{"FORWARDER_HTTP_MAX_BODY_MEMORY": "262144"}, key: "http.max_body_memory"},
		{name: "zero connections", env: map[string]string{"FORWARDER_HTTP_MAX_CONNECTIONS": "0"}, key: "http.max_connections"},
		{name: "negative body rate", env: map[string]string{"FORWARDER_HTTP_MIN_BODY_RATE": "-1"}, key: "http.min_body_rate"},
		{name: "zero shutdown timeout", env: map[string]string{"FORWARDER_HTTP_SHUTDOWN_TIMEOUT": "0s"}, key: "http.shutdown_timeout"},
		{name: "negative tolerance", env: map[string]string{"FORWARDER_WEBHOOK_TOLERANCE": "-1s"}, key: "webhook.tolerance"},
		{name: "bad http.addr", env: map[string]string{"FORWARDER_HTTP_ADDR": "localhost"}, key: "http.addr"},
		{name: "relative http.path", env: map[string]string{"FORWARDER_HTTP_PATH": "webhooks"}, key: "http.path"},
		{name: "bad admin.addr", env: map[string]string{"FORWARDER_ADMIN_ADDR": "9090"}, key: "admin.addr"},
		{name: "admin.token of white space only", env: map[string]string{"FORWARDER_ADMIN_TOKEN": " \n"}, key: "admin.token"},
		{name: "no scan allowed", env: map[string]string{"FORWARDER_ADMIN_MAX_CONCURRENT_SCANS": "0"}, key: "admin.max_concurrent_scans"},
		{name: "no admin connection allowed", env: map[string]string{"FORWARDER_ADMIN_MAX_CONNECTIONS": "0"}, key: "admin.max_connections"},
		{name: "zero publish timeout", env: map[string]string{"FORWARDER_NATS_PUBLISH_TIMEOUT": "0s"}, key: "nats.publish_timeout"},
		{name: "zero ping interval", env: map[string]string{"FORWARDER_NATS_PING_INTERVAL": "0s"}, key: "nats.ping_interval"},
		{name: "ping interval under 100ms", file: "nats:\n  ping_interval: 10ms\n", key: "nats.ping_interval"},
		{name: "bad embedded listen", env: map[string]string{"FORWARDER_NATS_EMBEDDED_LISTEN": "nowhere"}, key: "nats.embedded.listen"},
		{name: "unknown sync interval", env: map[string]string{"FORWARDER_NATS_EMBEDDED_SYNC_INTERVAL": "never"}, key: "nats.embedded.sync_interval"},
		{name: "zero sync interval", file: "nats:\n  embedded:\n    sync_interval: 0s\n", key: "nats.embedded.sync_interval"},
		{name: "empty store dir", file: "nats:\n  embedded:\n    store_dir: \"\"\n", key: "nats.embedded.store_dir"},
		{name: "cert without key", env: map[string]string{"FORWARDER_NATS_TLS_CERT_FILE": "/c.pem"}, key: "nats.tls.key_file"},
		{name: "stream name with dot", env: map[string]string{"FORWARDER_STREAM_NAME": "a.b"}, key: "stream.name"},
		{name: "negative max age", env: map[string]string{"FORWARDER_STREAM_MAX_AGE": "-1h"}, key: "stream.max_age"},
		{name: "window beyond max age", env: map[string]string{"FORWARDER_STREAM_MAX_AGE": "1m", "FORWARDER_STREAM_DUPLICATE_WINDOW": "2m"}, key: "stream.duplicate_window"},
		{name: "zero stream replicas", env: map[string]string{"FORWARDER_STREAM_REPLICAS": "0"}, key: "stream.replicas"},
		{name: "too many dedup replicas", env: map[string]string{"FORWARDER_DEDUP_REPLICAS": "6"}, key: "dedup.replicas"},
		{name: "bucket with dot", env: map[string]string{"FORWARDER_DEDUP_BUCKET": "a.b"}, key: "dedup.bucket"},
		{name: "negative repair window", env: map[string]string{"FORWARDER_DEDUP_REPAIR_WINDOW": "-1m"}, key: "dedup.repair_window"},
		{name: "zero repair max", env: map[string]string{"FORWARDER_DEDUP_REPAIR_MAX": "0"}, key: "dedup.repair_max"},
		{name: "zero max pending marks", env: map[string]string{"FORWARDER_DEDUP_MAX_PENDING_MARKS": "0"}, key: "dedup.max_pending_marks"},
		{name: "huge max pending marks", env: map[string]string{"FORWARDER_DEDUP_MAX_PENDING_MARKS": "1000001"}, key: "dedup.max_pending_marks"},
		{name: "negative ttl", env: map[string]string{"FORWARDER_DEDUP_TTL": "-1h"}, key: "dedup.ttl"},
		{name: "ttl shorter than the tolerance", env: map[string]string{"FORWARDER_DEDUP_TTL": "1m", "FORWARDER_WEBHOOK_TOLERANCE": "5m"}, key: "dedup.ttl"},
		{name: "wildcard in events.allow", env: map[string]string{"FORWARDER_EVENTS_ALLOW": "message.*"}, key: "events.allow"},
		{name: "unknown log level", env: map[string]string{"FORWARDER_LOG_LEVEL": "verbose"}, key: "log.level"},
		{name: "unknown log format", env: map[string]string{"FORWARDER_LOG_FORMAT": "xml"}, key: "log.format"},
		{name: "negative log flush interval", env: map[string]string{"FORWARDER_LOG_FLUSH_INTERVAL": "-1s"}, key: "log.flush_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadInvalidConfig(t, tt.env, tt.file)
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("got error %q, want it to name %s", err, tt.key)
			}
		})
	}
}

func TestConfigRedacted(t *testing.T) {
	cfg := forwarder.DefaultConfig()
	cfg.Webhook.Secret = "whsec-one"
	cfg.Webhook.Secrets = []string{"whsec-two", "whsec-three"}
	cfg.Webhook.SecretFile = "/run/secrets/zautic"
	cfg.NATS.Token = "nats-token"
	cfg.Admin.Token = "admin-token"
	cfg.NATS.User = "forwarder"
	cfg.NATS.Password = "nats-password"
	cfg.NATS.URL = "nats://urluser:url-password@127.0.0.1:4222, tls://url-token@127.0.0.1:4223,nats://127.0.0.1:4224"

	r := cfg.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"whsec-one", "whsec-two", "whsec-three", "nats-token", "nats-password", "url-password", "url-token", "urluser", "admin-token"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted configuration contains %q:\n%s", secret, out)
		}
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"user is not a secret", r.NATS.User, "forwarder"},
		{"secret file path is not a secret", r.Webhook.SecretFile, "/run/secrets/zautic"},
		{"secrets count kept", r.Webhook.Secrets, []string{"[redacted] x2"}},
		{"URL hosts kept", r.NATS.URL, "nats://[redacted]@127.0.0.1:4222, tls://[redacted]@127.0.0.1:4223,nats://127.0.0.1:4224"},
		{"original untouched", cfg.Webhook.Secrets, []string{"whsec-two", "whsec-three"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestConfigRedactedEmpty(t *testing.T) {
	cfg := forwarder.DefaultConfig()
	if got := cfg.Redacted(); !reflect.DeepEqual(got, cfg) {
		t.Errorf("got %+v, want an unset configuration unchanged %+v", got, cfg)
	}
}

const examplePath = "config.example.yaml"

func TestConfigExampleLoads(t *testing.T) {
	clearForwarderEnv(t)
	got := loadTestConfig(t, examplePath)
	if want := forwarder.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.yaml does not hold the defaults:\ngot  %+v\nwant %+v", got, want)
	}
}

// TestConfigExampleDocumentsEveryKey checks that every key is in the file,
// with a comment line above it.
func TestConfigExampleDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	documented := exampleKeys(string(raw))
	for _, key := range configKeys() {
		commented, ok := documented[key]
		if !ok {
			t.Errorf("config.example.yaml does not set %s", key)
			continue
		}
		if !commented {
			t.Errorf("config.example.yaml has no comment above %s", key)
		}
	}
}

// exampleKeys returns the dotted keys of the YAML file's leaves, and whether
// a comment line precedes each, from its indentation.
func exampleKeys(content string) map[string]bool {
	keys := map[string]bool{}
	var path []string // section names by depth
	prevComment := false
	for line := range strings.Lines(content) {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			prevComment = false
			continue
		case strings.HasPrefix(trimmed, "#"):
			prevComment = true
			continue
		}
		depth := (len(line) - len(strings.TrimLeft(line, " "))) / 2
		name, value, _ := strings.Cut(trimmed, ":")
		path = append(path[:min(depth, len(path))], name)
		if strings.TrimSpace(value) != "" {
			keys[strings.Join(path, ".")] = prevComment
		}
		prevComment = false
	}
	return keys
}

// TestZeroDurationNeedsNoUnit: 0 means the same in any unit, so the file
// may write it bare, as the environment may.
func TestZeroDurationNeedsNoUnit(t *testing.T) {
	clearForwarderEnv(t)
	cfg := loadTestConfig(t, writeFile(t, "forwarder.yaml", "webhook:\n  tolerance: 0\ndedup:\n  ttl: 0\n"))
	if cfg.Webhook.Tolerance != 0 || cfg.Dedup.TTL != 0 {
		t.Errorf("got tolerance %s and ttl %s, want 0 and 0", cfg.Webhook.Tolerance, cfg.Dedup.TTL)
	}
}

// TestConfigurationDocDocumentsEveryKey checks that every key has a row in
// the key table of docs/configuration.md.
func TestConfigurationDocDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for line := range strings.Lines(string(raw)) {
		if first, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |"); ok && strings.HasPrefix(line, "| `") {
			rows = append(rows, first)
		}
	}
	table := strings.Join(rows, "\n")
	for _, key := range configKeys() {
		if !strings.Contains(table, "`"+key+"`") && !strings.HasPrefix(key, "endpoints") {
			t.Errorf("docs/configuration.md has no row for %s", key)
		}
	}
}
