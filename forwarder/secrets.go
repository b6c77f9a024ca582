package forwarder

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/zautic/zautic-forwarder/zautic"
)

// ErrNoSecret is returned when no webhook secret is configured anywhere.
var ErrNoSecret = errors.New("no webhook secret: set " + zautic.SecretEnv +
	" (or webhook.secret, webhook.secrets, webhook.secret_file, webhook.secrets_file)")

// secretSet holds the webhook secrets currently accepted. Values from the
// configuration are fixed; files are re-read by Reload, so that a rotated
// Kubernetes secret takes effect without a restart. Safe for concurrent use.
type secretSet struct {
	fixed       [][]byte
	secretFile  string
	secretsFile string
	current     atomic.Pointer[[][]byte]
}

// newSecrets collects the secrets of cfg and reads its files. If none is
// configured, ErrNoSecret is returned.
func newSecrets(cfg WebhookConfig) (*secretSet, error) {
	s := &secretSet{secretFile: cfg.SecretFile, secretsFile: cfg.SecretsFile}
	for _, v := range append([]string{cfg.Secret}, cfg.Secrets...) {
		if v != "" {
			s.fixed = append(s.fixed, []byte(v))
		}
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// SecretKeyIDs reads the secrets of cfg as Start does and returns their key
// ids, in order, or the error that would stop it: ErrNoSecret, or a secret
// file that cannot be read.
func SecretKeyIDs(cfg WebhookConfig) ([]string, error) {
	s, err := newSecrets(cfg)
	if err != nil {
		return nil, err
	}
	return keyIDs(s.Current()), nil
}

// Reload re-reads the secret files. On error the secrets in use are kept.
func (s *secretSet) Reload() error {
	all := append([][]byte(nil), s.fixed...)
	if s.secretFile != "" {
		secret, err := readSecretFile(s.secretFile)
		if err != nil {
			return fmt.Errorf("read webhook.secret_file: %w", err)
		}
		if len(secret) > 0 {
			all = append(all, secret)
		}
	}
	if s.secretsFile != "" {
		raw, err := readSecretFile(s.secretsFile)
		if err != nil {
			return fmt.Errorf("read webhook.secrets_file: %w", err)
		}
		for line := range strings.Lines(string(raw)) {
			if line = strings.TrimSpace(line); line != "" {
				all = append(all, []byte(line))
			}
		}
	}
	if len(all) == 0 {
		return ErrNoSecret
	}
	s.current.Store(&all)
	return nil
}

// Current returns the secrets accepted now. The slice must not be modified.
func (s *secretSet) Current() [][]byte {
	return *s.current.Load()
}

// Files returns the secret files to watch for rotation.
func (s *secretSet) Files() []string {
	var files []string
	for _, f := range []string{s.secretFile, s.secretsFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}
