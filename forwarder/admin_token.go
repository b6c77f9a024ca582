package forwarder

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// adminTokenRecheck is how long a token read from admin.token_file is used
// before the file is read again, so that a rotated Kubernetes secret takes
// effect within a second without a watch of its own.
const adminTokenRecheck = time.Second

var (
	// ErrAdminTokenMissing is returned when a protected admin path is asked
	// without an Authorization: Bearer header.
	ErrAdminTokenMissing = errors.New("admin token required: send Authorization: Bearer <admin.token>")
	// ErrAdminTokenWrong is returned when the Bearer token does not match.
	ErrAdminTokenWrong = errors.New("admin token does not match")
)

// AdminToken is the Bearer token of the admin listener's data paths:
// admin.token, or admin.token_file re-read at most every adminTokenRecheck.
// A failed re-read keeps the token in use, as a failed secret reload does.
// A zero token (neither key set) requires nothing. Safe for concurrent use.
type AdminToken struct {
	file string
	log  *zap.Logger

	mu     sync.Mutex
	sum    [sha256.Size]byte // of the token in use; compared, never the token itself
	set    bool
	readAt time.Time
}

// NewAdminToken reads the token of cfg. An unreadable or empty token file
// is an error: a listener that was meant to be protected must not start
// open.
func NewAdminToken(cfg AdminConfig, log *zap.Logger) (*AdminToken, error) {
	t := &AdminToken{file: cfg.TokenFile, log: log}
	if cfg.Token != "" {
		t.sum, t.set = sha256.Sum256([]byte(cfg.Token)), true
	}
	if t.file != "" {
		if err := t.reload(time.Now()); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Required reports whether a token is configured.
func (t *AdminToken) Required() bool {
	return t != nil && (t.set || t.file != "")
}

func (t *AdminToken) reload(now time.Time) error {
	raw, err := readSecretFile(t.file)
	if err == nil && len(raw) == 0 {
		err = errors.New("file is empty")
	}
	t.readAt = now
	if err != nil {
		return fmt.Errorf("read admin.token_file: %w", err)
	}
	t.sum, t.set = sha256.Sum256(raw), true
	return nil
}

// check returns nil when the request carries the token, or when none is
// required; otherwise ErrAdminTokenMissing or ErrAdminTokenWrong.
func (t *AdminToken) check(r *http.Request) error {
	if !t.Required() {
		return nil
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || given == "" {
		return ErrAdminTokenMissing
	}
	want := t.current()
	got := sha256.Sum256([]byte(strings.TrimSpace(given)))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrAdminTokenWrong
	}
	return nil
}

func (t *AdminToken) current() [sha256.Size]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); t.file != "" && now.Sub(t.readAt) >= adminTokenRecheck {
		if err := t.reload(now); err != nil {
			t.log.Warn("admin token not reloaded; keeping the one in use", zap.Error(err))
		}
	}
	return t.sum
}
