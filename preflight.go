package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// preflight makes every check that serve makes before it connects, so that
// check-config refuses what serve would refuse, and serve refuses it before
// anything starts: the webhook secrets and their files, admin.token_file,
// the NATS credential and TLS files, the NATS URLs, the tracing variables.
// Every problem is reported, each on its line, and none shows a secret. It
// returns the key ids of each endpoint's secrets, by endpoint label.
//
// A credential file that is unusable at start (the manifests' placeholder,
// say) is a configuration error here, for nats.creds_file as for
// nats.nkey_file: the operator sees it at once instead of a pod that never
// becomes ready. A creds file that becomes unusable while the forwarder runs
// only makes it not ready until the file is fixed.
func preflight(cfg forwarder.Config, getenv func(string) string) (map[string][]string, error) {
	keyIDs, err := forwarder.EndpointKeyIDs(cfg)
	problems := []error{err}
	files := []struct {
		key, path string
		check     func(path string) error
	}{
		{"nats.creds_file", cfg.NATS.CredsFile, checkCredsFile},
		{"nats.nkey_file", cfg.NATS.NKeyFile, checkNKeyFile},
		{"nats.tls.ca_file", cfg.NATS.TLS.CAFile, func(path string) error { return applyNATSOption(nats.RootCAs(path)) }},
	}
	if cfg.Admin.Addr != "" {
		// The admin listener reads it only when it starts.
		files = append(files, struct {
			key, path string
			check     func(path string) error
		}{"admin.token_file", cfg.Admin.TokenFile, checkTokenFile})
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := f.check(f.path); err != nil {
			problems = append(problems, fmt.Errorf("%s %s: %w", f.key, f.path, err))
		}
	}
	if cfg.NATS.TLS.CertFile != "" {
		if err := applyNATSOption(nats.ClientCert(cfg.NATS.TLS.CertFile, cfg.NATS.TLS.KeyFile)); err != nil {
			problems = append(problems, fmt.Errorf("nats.tls.cert_file %s, nats.tls.key_file %s: %w", cfg.NATS.TLS.CertFile, cfg.NATS.TLS.KeyFile, err))
		}
	}
	if !cfg.Embedded() {
		problems = append(problems, checkNATSURLs(cfg.NATS.URL, natsCredentialKeys(cfg)))
	}
	problems = append(problems, checkTracing(cfg.Tracing, getenv))
	return keyIDs, errors.Join(problems...)
}

// applyNATSOption applies opt as nats.Connect would, which for the TLS
// options reads and parses their files.
func applyNATSOption(opt nats.Option) error {
	o := nats.GetDefaultOptions()
	return opt(&o)
}

// checkCredsFile reads a creds file as nats.go does at each connection
// attempt: a user JWT and the NKey seed of that user.
func checkCredsFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	token, err := nkeys.ParseDecoratedJWT(raw)
	if err != nil {
		return fmt.Errorf("no user JWT (write the file with nsc generate creds): %w", err)
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return fmt.Errorf("no valid user JWT (write the file with nsc generate creds): %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(raw)
	if err != nil {
		return fmt.Errorf("no valid NKey seed (write the file with nsc generate creds): %w", err)
	}
	defer kp.Wipe()
	if pub, err := kp.PublicKey(); err != nil || pub != claims.Subject {
		return errors.New("the NKey seed is not that of the JWT's user: both must come from one nsc generate creds")
	}
	return nil
}

// checkNKeyFile reads an NKey seed file as the forwarder's start does.
func checkNKeyFile(path string) error {
	if _, err := nats.NkeyOptionFromSeed(path); err != nil {
		return fmt.Errorf("not a user NKey seed (nsc generate nkey --user): %w", err)
	}
	return nil
}

// checkTokenFile reads admin.token_file as the admin listener does.
func checkTokenFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(strings.TrimPrefix(string(raw), "\ufeff")) == "" {
		return errors.New("the file is empty: write the token in it, or unset admin.token_file")
	}
	return nil
}

// checkNATSURLs parses each URL of nats.url as nats.go does. A URL's user
// information is never shown, even when the URL does not parse (a password
// with a bare %): the error then says which part is wrong. It refuses a port
// outside 1 to 65535, which nats.go would retry for ever; user information
// without a scheme (alice:pw@host:4222), which URL parsing reads as a
// scheme "alice" and which is therefore refused rather than guessed at;
// and user information beside credentialKeys (the nats.* credential keys
// that are set), since only one of them would be sent.
func checkNATSURLs(list string, credentialKeys []string) error {
	var problems []error
	ws := map[bool]bool{}
	for s := range strings.SplitSeq(list, ",") {
		raw := strings.TrimSpace(s)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			if strings.Contains(raw, "@") {
				shown := strings.TrimPrefix(forwarder.RedactURLs("nats://"+raw), "nats://")
				problems = append(problems, fmt.Errorf("nats.url %s has a user or token but no scheme: write it as nats://%s (or tls://, ws://, wss://)", shown, shown))
				continue
			}
			raw = "nats://" + raw
		}
		shown := forwarder.RedactURLs(raw)
		u, err := url.Parse(raw)
		if err != nil {
			problems = append(problems, urlProblem("nats.url", shown))
			continue
		}
		if port := u.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				problems = append(problems, fmt.Errorf("nats.url %s: port %s is not 1 to 65535", shown, port))
			}
		}
		if u.User != nil && len(credentialKeys) > 0 {
			verb := " is"
			if len(credentialKeys) > 1 {
				verb = " are"
			}
			problems = append(problems, fmt.Errorf("nats.url %s carries a user or token, and %s set too: give the credentials in one place",
				shown, strings.Join(credentialKeys, " and ")+verb))
		}
		ws[u.Scheme == "ws" || u.Scheme == "wss"] = true
	}
	if len(ws) > 1 {
		problems = append(problems, errors.New("nats.url mixes websocket (ws://, wss://) and other URLs, which nats.go refuses"))
	}
	return errors.Join(problems...)
}

// natsCredentialKeys names the nats.* keys that set credentials a URL's
// user information would compete with.
func natsCredentialKeys(cfg forwarder.Config) []string {
	var keys []string
	for _, k := range []struct {
		key string
		set bool
	}{{"nats.user", cfg.NATS.User != ""}, {"nats.password", cfg.NATS.Password != ""}, {"nats.token", cfg.NATS.Token != ""}} {
		if k.set {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// redactedUserInfo is how forwarder.RedactURLs replaces user information.
const redactedUserInfo = "[redacted]@"

// urlProblem says what is wrong with a URL that does not parse, from its
// redacted form: when that parses without its placeholder (which is no URL
// syntax), the user information is at fault.
func urlProblem(key, shown string) error {
	var urlErr *url.Error
	if _, err := url.Parse(strings.Replace(shown, redactedUserInfo, "", 1)); errors.As(err, &urlErr) {
		return fmt.Errorf("%s %s is not a valid URL: %w", key, shown, urlErr.Err)
	}
	return fmt.Errorf("%s %s is not a valid URL: its user or password is not URL syntax: "+
		"percent-encode %% as %%25, @ as %%40, : as %%3A and / as %%2F", key, shown)
}
