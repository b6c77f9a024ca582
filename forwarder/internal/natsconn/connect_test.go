package natsconn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestConnectCause names the cause of typical connection errors.
func TestConnectCause(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"authorization", nats.ErrAuthorization, CauseCredentials},
		{"expired", fmt.Errorf("wrapped: %w", nats.ErrAuthExpired), CauseCredentials},
		{"revoked", nats.ErrAuthRevoked, CauseCredentials},
		{"permissions", nats.ErrPermissionViolation, CausePermissions},
		{"unknown authority", x509.UnknownAuthorityError{}, CauseTLS},
		{"tls required", nats.ErrSecureConnRequired, CauseTLS},
		{"remote tls alert", errors.New("remote error: tls: certificate required"), CauseTLS},
		{"creds file missing", fmt.Errorf("nats: %w", &fs.PathError{Op: "open", Path: "/x.creds", Err: fs.ErrNotExist}), CauseCredsFile},
		{"creds file without a seed", errors.New(`error signing nonce: unable to extract key pair from file "x.creds": nkeys: no nkey seed found`), CauseCredsFile},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, CauseNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cause(tt.err); got != tt.want {
				t.Errorf("Cause(%v): got %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestRedactURLs hides user info in every form a NATS URL takes.
func TestRedactURLs(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:pa55@127.0.0.1:4222", "nats://[redacted]@127.0.0.1:4222"},
		{"nats://t0ken@127.0.0.1:4222", "nats://[redacted]@127.0.0.1:4222"},
		{"nats://a:b@h1:4222,tls://u:p@h2:4222", "nats://[redacted]@h1:4222,tls://[redacted]@h2:4222"},
		{"u:p@127.0.0.1:4222", "[redacted]@127.0.0.1:4222"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestConnErrorLogOncePerCause logs each cause once per period, however
// the causes interleave.
func TestConnErrorLogOncePerCause(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	l := NewErrorLog(zap.New(core), time.Hour)
	reports := []struct{ msg, cause string }{
		{"nats connection failed; retrying", CauseCredentials},
		{"nats error", CauseCredentials},
		{"nats connection failed; retrying", CauseNetwork},
		{"nats connection failed; retrying", CauseCredentials},
		{"nats connection failed; retrying", CauseNetwork},
		{"nats error", "nats: slow consumer, messages dropped"},
	}
	for _, r := range reports {
		l.Report(r.msg, r.cause, errors.New("detail"))
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.ContextMap()["cause"].(string))
	}
	want := []string{CauseCredentials, CauseNetwork, "nats: slow consumer, messages dropped"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged causes: got %q, want %q", got, want)
	}
}

// TestConnectBadURLHidesPassword: a URL that does not parse (a bare % in
// the password) is named without its user information, for every
// connection, the readers' as well as the webhook path's.
func TestConnectBadURLHidesPassword(t *testing.T) {
	nc, err := Connect("nats://u:Pw50%off@127.0.0.1:4222", DefaultConfig(), "test")
	if err == nil {
		nc.Close()
		t.Fatal("Connect succeeded with a URL that does not parse")
	}
	if strings.Contains(err.Error(), "Pw50") || !strings.Contains(err.Error(), "nats://[redacted]@127.0.0.1:4222") {
		t.Errorf("got error %q, want the URL named without its user information", err)
	}
}
