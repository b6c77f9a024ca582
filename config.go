package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/zautic/zautic-forwarder/forwarder"
	"github.com/zautic/zautic-forwarder/zautic"
)

// Reading the configuration happens here, at the edge: defaults, the YAML
// file, FORWARDER_* variables and flags become one plain forwarder.Config.

// envPrefix prefixes every configuration key in the environment:
// http.addr is FORWARDER_HTTP_ADDR.
const envPrefix = "FORWARDER"

// secretEnvVars are the environment variables that hold the webhook secret,
// the first set one winning: the prefixed name, then the one Zautic's
// documentation uses. serve, send and sign all read them in this order.
func secretEnvVars() []string {
	return []string{envPrefix + "_WEBHOOK_SECRET", zautic.SecretEnv}
}

// newViper returns a viper instance that knows every key with its default
// and reads FORWARDER_<KEY> from the environment. Every key needs a default:
// Unmarshal ignores environment variables for keys viper has never heard of.
func newViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// An explicitly empty variable counts: FORWARDER_ADMIN_ADDR= disables the
	// admin listener, FORWARDER_NATS_URL= switches back to the embedded server.
	v.AllowEmptyEnv(true)
	for key, value := range flatten("", forwarder.DefaultConfig()) {
		v.SetDefault(key, value)
	}
	_ = v.BindEnv(append([]string{"webhook.secret"}, secretEnvVars()...)...)
	return v
}

// configKeys returns every configuration key, sorted. (viper's AllKeys comes in
// map order, which would make generated docs and error lists churn.)
func configKeys() []string {
	keys := newViper().AllKeys()
	slices.Sort(keys)
	return keys
}

// flatten turns a Config into dotted keys through its yaml tags.
func flatten(prefix string, cfg forwarder.Config) map[string]any {
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("marshal default config: %v", err))
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		panic(fmt.Sprintf("unmarshal default config: %v", err))
	}
	out := map[string]any{}
	flattenInto(out, prefix, tree)
	return out
}

func flattenInto(out map[string]any, prefix string, tree map[string]any) {
	for k, val := range tree {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := val.(map[string]any); ok {
			flattenInto(out, key, sub)
			continue
		}
		out[key] = val
	}
}

// loadConfigFile reads the YAML file at path into v (when path is not empty),
// decodes the result over the defaults and validates it. Every error names
// what to fix: the key or variable, the value, the line of the file.
func loadConfigFile(v *viper.Viper, path string) (forwarder.Config, error) {
	if err := checkEnvNames(os.Environ()); err != nil {
		return forwarder.Config{}, err
	}
	if err := checkSecretEnv(); err != nil {
		return forwarder.Config{}, err
	}
	if path != "" {
		if err := readConfigFile(v, path); err != nil {
			return forwarder.Config{}, err
		}
	}
	cfg := forwarder.DefaultConfig()
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(checkDuration, endpointsFromText, dc.DecodeHook)
		// readConfigFile names a misspelt key with its line; this is the
		// backstop.
		dc.ErrorUnused = true
	})
	if err != nil {
		return forwarder.Config{}, fmt.Errorf("%w: %s", forwarder.ErrInvalidConfig, decodeProblems(err))
	}
	normalize(&cfg)
	return cfg, cfg.Validate()
}

// readConfigFile checks the file's YAML and its keys, then reads it into v.
func readConfigFile(v *viper.Viper, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file %s: %w", path, err)
	}
	if problems := fileProblems(raw); len(problems) > 0 {
		return fmt.Errorf("%w: config file %s, %s", forwarder.ErrInvalidConfig, path, strings.Join(problems, "; "))
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("read config file %s: %w", path, err)
	}
	return nil
}

// normalize drops empty entries from list keys: an empty environment value
// decodes to [""].
func normalize(c *forwarder.Config) {
	c.Webhook.Secrets = nonEmpty(c.Webhook.Secrets)
	c.Events.Allow = nonEmpty(c.Events.Allow)
	c.Stream.Placement.Tags = nonEmpty(c.Stream.Placement.Tags)
	if len(c.Endpoints) == 0 {
		c.Endpoints = nil // an empty list in the file or the environment is no list
	}
}

func nonEmpty(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
