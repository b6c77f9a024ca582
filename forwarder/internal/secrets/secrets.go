package secrets

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

// WebhookConfig holds the secrets Zautic signs with and the replay window.
type WebhookConfig struct {
	Secret      string        `yaml:"secret"`
	Secrets     []string      `yaml:"secrets"`
	SecretFile  string        `yaml:"secret_file"`
	SecretsFile string        `yaml:"secrets_file"`
	Tolerance   time.Duration `yaml:"tolerance"`

	// Subject and CloudEventsSource are the default endpoint's subject
	// template and CloudEvents source: the webhook plane reads them, the
	// section is this one.
	Subject           string `yaml:"subject"`
	CloudEventsSource string `yaml:"cloudevents_source"`

	// Section names the keys in messages: "webhook" when empty, or a named
	// endpoint's "endpoints[<i>]".
	Section string `yaml:"-"`
}

// ErrNoSecret is returned when no webhook secret is configured anywhere;
// the error that wraps it says where one may be set, or which secret files
// are empty.
var ErrNoSecret = errors.New("no webhook secret")

// errSecretFileEmpty is returned by Reload when a secret file that held
// secrets holds none any more; its previous secrets stay in use.
var errSecretFileEmpty = errors.New("holds no secret any more; keeping its previous secrets")

// Set holds the webhook secrets currently accepted. Values from the
// configuration are fixed; files are re-read by Reload, so that a rotated
// Kubernetes secret takes effect without a restart. Safe for concurrent use.
type Set struct {
	fixed   [][]byte
	files   []secretFile
	mu      sync.Mutex // serializes Reload, which updates files
	current atomic.Pointer[[][]byte]
	section string   // WebhookConfig.Section, for messages
	blank   []string // the keys set to white space only, for messages
}

// secretFile is one configured file and the secrets it held at the last
// successful read.
type secretFile struct {
	key   string // the configuration key, for messages
	path  string
	lines bool // one secret per line (secrets_file), else the whole file
	last  [][]byte
}

// New collects the secrets of cfg and reads its files. If none is
// configured, ErrNoSecret is returned.
func New(cfg WebhookConfig) (*Set, error) {
	s := &Set{section: cfg.Section}
	for i, v := range append([]string{cfg.Secret}, cfg.Secrets...) {
		// Trimmed like the files: ZAUTIC_WEBHOOK_SECRET copied with a
		// trailing newline would otherwise never match.
		switch t := strings.TrimSpace(v); {
		case t != "":
			s.fixed = append(s.fixed, []byte(t))
		case v != "" && i == 0:
			s.blank = append(s.blank, cfg.section()+".secret")
		case v != "":
			s.blank = append(s.blank, cfg.section()+".secrets")
		}
	}
	if cfg.SecretFile != "" {
		s.files = append(s.files, secretFile{key: cfg.section() + ".secret_file", path: cfg.SecretFile})
	}
	if cfg.SecretsFile != "" {
		s.files = append(s.files, secretFile{key: cfg.section() + ".secrets_file", path: cfg.SecretsFile, lines: true})
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// KeyIDsOf reads the secrets of cfg as Start does and returns their key
// ids, in order, or the error that would stop it: ErrNoSecret, or a secret
// file that cannot be read.
func KeyIDsOf(cfg WebhookConfig) ([]string, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return KeyIDs(s.Current()), nil
}

// Reload re-reads the secret files, each on its own: a file that cannot be
// read, or that held secrets and holds none any more, keeps its previous
// secrets, and the error says which; the other files' new contents apply.
func (s *Set) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := append([][]byte(nil), s.fixed...)
	var errs []error
	for i := range s.files {
		if err := s.files[i].reload(); err != nil {
			errs = append(errs, err)
		}
		all = append(all, s.files[i].last...)
	}
	if len(all) == 0 {
		return s.noSecret(errs)
	}
	s.current.Store(&all)
	return errors.Join(errs...)
}

// noSecret is Reload's error when no secret is left: the files that could
// not be read, else the files that are empty, else where to set one.
func (s *Set) noSecret(readErrs []error) error {
	if len(readErrs) > 0 {
		return errors.Join(readErrs...)
	}
	var empty []string
	for _, f := range s.files {
		empty = append(empty, f.key+" "+f.path+" is empty")
	}
	if len(empty) > 0 {
		return fmt.Errorf("%w: %s: write the secret there", ErrNoSecret, strings.Join(empty, ", "))
	}
	if len(s.blank) > 0 {
		where := strings.Join(slices.Compact(s.blank), ", ")
		if where == "webhook.secret" {
			where += " (also read from FORWARDER_WEBHOOK_SECRET and " + zautic.SecretEnv + ")"
		}
		return fmt.Errorf("%w: %s is only white space: set the secret itself", ErrNoSecret, where)
	}
	if s.section != "" {
		return fmt.Errorf("%w: set %s.secrets or %s.secrets_file", ErrNoSecret, s.section, s.section)
	}
	return fmt.Errorf("%w: set %s (or webhook.secret, webhook.secrets, webhook.secret_file, webhook.secrets_file)",
		ErrNoSecret, zautic.SecretEnv)
}

func (f *secretFile) reload() error {
	raw, err := ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.key, err)
	}
	var secrets [][]byte
	if !f.lines {
		if len(raw) > 0 {
			secrets = [][]byte{raw}
		}
	} else {
		for line := range strings.Lines(string(raw)) {
			if line = strings.TrimSpace(line); line != "" {
				secrets = append(secrets, []byte(line))
			}
		}
	}
	if len(secrets) == 0 && len(f.last) > 0 {
		// Truncated, or caught in the middle of a rewrite: an empty file is
		// never a rotation, since it would refuse every delivery.
		return fmt.Errorf("%s %s %w", f.key, f.path, errSecretFileEmpty)
	}
	f.last = secrets
	return nil
}

// Current returns the secrets accepted now. The slice must not be modified.
func (s *Set) Current() [][]byte {
	return *s.current.Load()
}

// Files returns the secret files to watch for rotation.
func (s *Set) Files() []string {
	paths := make([]string, len(s.files))
	for i, f := range s.files {
		paths[i] = f.path
	}
	return paths
}

// ReadFile returns the file's content without a UTF-8 byte-order mark
// (some Windows editors write one, and it would become part of the first
// secret) and without surrounding white space (a trailing newline is common
// in mounted secrets).
func ReadFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSpace(strings.TrimPrefix(string(raw), "\ufeff"))), nil
}
