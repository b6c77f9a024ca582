package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zautic/zautic-forwarder/forwarder/internal/secrets"
	"go.uber.org/zap"
)

// adminTokenRecheck is how long a token read from admin.token_file is used
// before the file is read again, so that a rotated Kubernetes secret takes
// effect within a second without a watch of its own.
const adminTokenRecheck = time.Second

var (
	// errAdminTokenMissing is returned when a protected admin path is asked
	// without an Authorization: Bearer header.
	errAdminTokenMissing = errors.New("admin token required: send Authorization: Bearer <admin.token>")
	// errAdminTokenWrong is returned when the Bearer token does not match.
	errAdminTokenWrong = errors.New("admin token does not match")
)

// adminToken is the Bearer token of the admin listener's data paths:
// admin.token and the content of admin.token_file, re-read at most every
// adminTokenRecheck. As with the webhook secrets, either is accepted when
// both are set, and a failed re-read keeps the token in use. With neither
// set, nothing is required. Safe for concurrent use.
type adminToken struct {
	fixed    *[sha256.Size]byte // of admin.token; tokens are compared as hashes, never themselves
	file     string
	log      *zap.Logger
	mu       sync.Mutex
	fromFile *[sha256.Size]byte
	readAt   time.Time
}

// newAdminToken reads the token of cfg. An unreadable or empty token file
// is an error: a listener that was meant to be protected must not start
// open.
func newAdminToken(cfg Config, log *zap.Logger) (*adminToken, error) {
	t := &adminToken{file: cfg.TokenFile, log: log}
	// Trimmed like the file and the presented token: FORWARDER_ADMIN_TOKEN
	// set with a trailing newline must not lock everyone out. Validate
	// refuses a token of white space only.
	if token := strings.TrimSpace(cfg.Token); token != "" {
		sum := sha256.Sum256([]byte(token))
		t.fixed = &sum
	}
	if t.file != "" {
		if err := t.reload(time.Now()); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Required reports whether a token is configured.
func (t *adminToken) Required() bool {
	return t != nil && (t.fixed != nil || t.file != "")
}

func (t *adminToken) reload(now time.Time) error {
	t.readAt = now
	raw, err := secrets.ReadFile(t.file)
	if err == nil && len(raw) == 0 {
		err = errors.New("file is empty")
	}
	if err != nil {
		return fmt.Errorf("read admin.token_file: %w", err)
	}
	sum := sha256.Sum256(raw)
	t.fromFile = &sum
	return nil
}

// check returns nil when the request carries the token, or when none is
// required; otherwise errAdminTokenMissing or errAdminTokenWrong.
func (t *adminToken) check(r *http.Request) error {
	if !t.Required() {
		return nil
	}
	// The scheme is case-insensitive (RFC 7235): "bearer" is Bearer.
	scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(given) == "" {
		return errAdminTokenMissing
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(given)))
	match := 0
	for _, want := range []*[sha256.Size]byte{t.fixed, t.currentFile()} {
		if want != nil {
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
	}
	if match != 1 {
		return errAdminTokenWrong
	}
	return nil
}

// currentFile is the file's token, re-read when the last read is older
// than adminTokenRecheck; nil without a file.
func (t *adminToken) currentFile() *[sha256.Size]byte {
	if t.file == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); now.Sub(t.readAt) >= adminTokenRecheck {
		if err := t.reload(now); err != nil {
			t.log.Warn("admin token not reloaded; keeping the one in use", zap.Error(err))
		}
	}
	return t.fromFile
}
