package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/zautic"
)

func secretStrings(s *Set) []string {
	var out []string
	for _, b := range s.Current() {
		out = append(out, string(b))
	}
	return out
}

func TestNewSecrets(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		cfg  WebhookConfig
		want []string
	}{
		{"secret", WebhookConfig{Secret: "one"}, []string{"one"}},
		{"secrets", WebhookConfig{Secrets: []string{"a", "b"}}, []string{"a", "b"}},
		{"secret and secrets", WebhookConfig{Secret: "one", Secrets: []string{"a"}}, []string{"one", "a"}},
		{"secret_file trailing newline trimmed", WebhookConfig{SecretFile: file("s1", "from-file\n")}, []string{"from-file"}},
		{"secret_file CRLF trimmed", WebhookConfig{SecretFile: file("s2", "  from-file\r\n")}, []string{"from-file"}},
		{"secrets_file one per line", WebhookConfig{SecretsFile: file("l1", "first\nsecond\r\n\n  third  \n")}, []string{"first", "second", "third"}},
		{"every source", WebhookConfig{Secret: "one", Secrets: []string{"two"}, SecretFile: file("s3", "three\n"), SecretsFile: file("l2", "four\nfive\n")},
			[]string{"one", "two", "three", "four", "five"}},
		{"empty secret_file with a fixed secret", WebhookConfig{Secret: "one", SecretFile: file("s4", "\n")}, []string{"one"}},
		{"secret trimmed like the files", WebhookConfig{Secret: " one\n"}, []string{"one"}},
		{"secret_file with a byte-order mark", WebhookConfig{SecretFile: file("b1", "\ufeffbom-secret\n")}, []string{"bom-secret"}},
		{"secrets_file with a byte-order mark", WebhookConfig{SecretsFile: file("b2", "\ufefffirst\r\nsecond\r\n")}, []string{"first", "second"}},
		{"secret_file of only a byte-order mark", WebhookConfig{Secret: "one", SecretFile: file("b3", "\ufeff\n")}, []string{"one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("NewSecrets: %v", err)
			}
			if got := secretStrings(s); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewSecretsErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		cfg     WebhookConfig
		wantErr error
		reason  string
	}{
		{"nothing configured", WebhookConfig{}, ErrNoSecret, zautic.SecretEnv},
		{"only empty values", WebhookConfig{Secret: "", Secrets: []string{""}}, ErrNoSecret, zautic.SecretEnv},
		{"only empty files", WebhookConfig{SecretFile: empty, SecretsFile: empty}, ErrNoSecret,
			"webhook.secret_file " + empty + " is empty, webhook.secrets_file " + empty + " is empty"},
		{"empty secrets_file", WebhookConfig{SecretsFile: empty}, ErrNoSecret, "webhook.secrets_file " + empty + " is empty"},
		{"missing secret_file", WebhookConfig{Secret: "one", SecretFile: missing}, os.ErrNotExist, "webhook.secret_file"},
		{"missing secrets_file", WebhookConfig{Secret: "one", SecretsFile: missing}, os.ErrNotExist, "webhook.secrets_file"},
		{"missing secrets_file, nothing else", WebhookConfig{SecretsFile: missing}, os.ErrNotExist, "webhook.secrets_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			checkError(t, err, tt.wantErr, tt.reason)
		})
	}
}

// TestMissingSecretFileIsOneError: a secret file that cannot be read, with
// no other secret, is one error naming the file, not that error and "no
// webhook secret" besides.
func TestMissingSecretFileIsOneError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := New(WebhookConfig{SecretsFile: missing})
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), missing) || errors.Is(err, ErrNoSecret) {
		t.Errorf("got %q, want one error naming %s", err, missing)
	}
}

// TestSecretsReloadRotation walks a rotation through the secrets file: add
// the new secret, then remove the old one, which must stop verifying.
func TestSecretsReloadRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old\n")
	s, err := New(WebhookConfig{SecretsFile: path})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"evt_1","type":"webhook.test"}`)
	now := time.Now()
	verifies := func(secret string) bool {
		t.Helper()
		_, err := zautic.VerifySignature(body, zautic.Sign([]byte(secret), now.Unix(), body), s.Current(), time.Minute, now)
		return err == nil
	}

	steps := []struct {
		name    string
		content string
		wantOld bool
		wantNew bool
	}{
		{"before rotation", "old\n", true, false},
		{"both during rotation", "old\nnew\n", true, true},
		{"old removed", "new\n", false, true},
	}
	for _, step := range steps {
		write(step.content)
		if err := s.Reload(); err != nil {
			t.Fatalf("%s: Reload: %v", step.name, err)
		}
		if got := verifies("old"); got != step.wantOld {
			t.Errorf("%s: old secret verifies: got %v, want %v", step.name, got, step.wantOld)
		}
		if got := verifies("new"); got != step.wantNew {
			t.Errorf("%s: new secret verifies: got %v, want %v", step.name, got, step.wantNew)
		}
	}
}

// TestSecretsReloadKeepsCurrentOnError checks that a broken or emptied file
// does not leave the forwarder without secrets.
func TestSecretsReloadKeepsCurrentOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(WebhookConfig{SecretFile: path})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func() error
		wantErr error
	}{
		{"file emptied", func() error { return os.WriteFile(path, nil, 0o600) }, errSecretFileEmpty},
		{"file removed", func() error { return os.Remove(path) }, os.ErrNotExist},
	}
	for _, tt := range tests {
		if err := tt.change(); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: got error %v, want %v", tt.name, err, tt.wantErr)
		}
		if got, want := secretStrings(s), []string{"kept"}; !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, want)
		}
	}
}

func TestSecretsFiles(t *testing.T) {
	dir := t.TempDir()
	one, list := filepath.Join(dir, "one"), filepath.Join(dir, "list")
	for _, p := range []string{one, list} {
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		cfg  WebhookConfig
		want []string
	}{
		{"no files", WebhookConfig{Secret: "s"}, nil},
		{"secret_file", WebhookConfig{SecretFile: one}, []string{one}},
		{"both", WebhookConfig{SecretFile: one, SecretsFile: list}, []string{one, list}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Files(); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSecretsReloadPerFile empties one file while another source holds a
// secret: the emptied file keeps its previous secrets, and says so, while
// the other file's rotation applies.
func TestSecretsReloadPerFile(t *testing.T) {
	dir := t.TempDir()
	single := filepath.Join(dir, "secret")
	list := filepath.Join(dir, "secrets")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(single, "single-old\n")
	write(list, "list-1\nlist-2\n")
	s, err := New(WebhookConfig{Secret: "fixed", SecretFile: single, SecretsFile: list})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		apply   func()
		wantErr error
		want    []string
	}{
		{"list emptied, single rotated", func() { write(list, ""); write(single, "single-new\n") }, errSecretFileEmpty,
			[]string{"fixed", "single-new", "list-1", "list-2"}},
		{"list removed", func() { _ = os.Remove(list) }, os.ErrNotExist, []string{"fixed", "single-new", "list-1", "list-2"}},
		{"list back with a new secret", func() { write(list, "list-3\n") }, nil, []string{"fixed", "single-new", "list-3"}},
		{"single emptied", func() { write(single, "\n") }, errSecretFileEmpty, []string{"fixed", "single-new", "list-3"}},
	}
	for _, step := range steps {
		step.apply()
		if err := s.Reload(); !errors.Is(err, step.wantErr) || (step.wantErr == nil) != (err == nil) {
			t.Errorf("%s: got error %v, want %v", step.name, err, step.wantErr)
		}
		if got := secretStrings(s); !slices.Equal(got, step.want) {
			t.Errorf("%s: got %q, want %q", step.name, got, step.want)
		}
	}
}

// checkError fails t unless err is wantErr (nil included) and, when it is an
// error, mentions reason. It reports whether there was an error, so that a
// table test stops checking the result.
func checkError(t *testing.T, err, wantErr error, reason string) bool {
	t.Helper()
	if !errors.Is(err, wantErr) {
		t.Fatalf("got error %v, want %v", err, wantErr)
	}
	if err != nil && !strings.Contains(err.Error(), reason) {
		t.Errorf("got error %q, want it to mention %q", err, reason)
	}
	return err != nil
}

func TestSameSecretSet(t *testing.T) {
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	tests := []struct {
		name     string
		before   [][]byte
		after    [][]byte
		wantSame bool
	}{
		{"equal", [][]byte{a, b}, [][]byte{a, b}, true},
		{"reordered", [][]byte{a, b}, [][]byte{b, a}, true},
		{"repeated", [][]byte{a, b}, [][]byte{a, b, a}, true},
		{"added", [][]byte{a}, [][]byte{a, b}, false},
		{"replaced", [][]byte{a, b}, [][]byte{a, c}, false},
	}
	for _, tt := range tests {
		if got := sameSecretSet(tt.before, tt.after); got != tt.wantSame {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.wantSame)
		}
	}
}
