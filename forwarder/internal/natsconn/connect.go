// Package natsconn is how the forwarder connects to NATS, the same for the
// webhook path's connection and for the readers' (<nats.name>-admin): the
// nats section, the connection's name, the retry, ping and auth/TLS
// options, the cause of a failed attempt, a log that repeats each cause at
// most once per period, and URLs with their user information redacted.
// Each caller adds its own handlers; none is kept here. It also holds the
// two requests made differently from nats.go: lookups retried through a
// cluster's leader election (lookup.go) and the event's publish with its
// PubAck read by hand (puback.go).
package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Name is nats.name, defaulting to zautic-forwarder@<hostname>.
func Name(cfg Config) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return "zautic-forwarder@" + host
}

// MaxPingsOutstanding is how many pings a server may leave unanswered
// before the client calls the connection stale and reconnects, to another
// server of the list if there is one. nats.go counts a ping outstanding from
// when it is sent, so a server that stops answering is left between
// MaxPingsOutstanding and MaxPingsOutstanding+1 ping intervals later: 10 to
// 15 s with the default nats.ping_interval of 5s, where nats.go's defaults
// (2 minutes, 2 pings) took up to 6 minutes.
const MaxPingsOutstanding = 2

// Connect connects to url (comma-separated for a cluster) under name, with
// the options every connection of the forwarder shares, cfg's credentials,
// then opts (the caller's handlers, an in-process server). It returns at
// once even when NATS is unreachable: the connection keeps retrying in the
// background. A URL list that does not parse is named with its user
// information redacted.
func Connect(url string, cfg Config, name string, opts ...nats.Option) (*nats.Conn, error) {
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	all := append(append(retryOptions(cfg, name), auth...), opts...)
	nc, err := nats.Connect(url, all...)
	var urlErr *neturl.Error
	if errors.As(err, &urlErr) {
		// Its message quotes the URL, password included.
		return nil, fmt.Errorf("nats.url %s is not a valid URL list", RedactURLs(url))
	}
	return nc, err
}

// retryOptions are the options every connection shares: the name, the
// connect timeout, never giving up reconnecting (auth errors included, so
// that fixed credentials bring the forwarder back without a restart), no
// reconnect buffer (a publish while disconnected fails at once and is
// answered 503 instead of waiting), and a hung server left within
// (MaxPingsOutstanding+1) × nats.ping_interval.
func retryOptions(cfg Config, name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOutstanding),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.IgnoreAuthErrorAbort(),
	}
}

// ErrorLogEvery bounds the repetition of one connection error in the log:
// the client retries twice a second, forever.
const ErrorLogEvery = 30 * time.Second

// Causes of a failed connection attempt, as logged and reported by /readyz.
const (
	CauseCredentials = "credentials rejected by the nats-server (check nats.creds_file, nats.nkey_file, nats.token, nats.user/nats.password)"
	CausePermissions = "permission denied by the nats-server (check the user's publish/subscribe permissions)"
	CauseCredsFile   = "credentials file unreadable or invalid (check nats.creds_file, nats.nkey_file)"
	CauseTLS         = "TLS handshake failed (check nats.tls.ca_file, nats.tls.cert_file, nats.tls.key_file)"
	CauseNetwork     = "nats-server unreachable"
)

// Cause names, for an operator, why a connection attempt failed.
func Cause(err error) string {
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return CauseCredentials
	case errors.Is(err, nats.ErrPermissionViolation):
		return CausePermissions
	case isCredsFileError(err):
		return CauseCredsFile
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &unknownAuthority),
		errors.As(err, &hostname), errors.Is(err, nats.ErrSecureConnRequired),
		errors.Is(err, nats.ErrSecureConnWanted), strings.Contains(err.Error(), "tls:"),
		strings.Contains(err.Error(), "x509:"):
		return CauseTLS
	default:
		return CauseNetwork
	}
}

// isCredsFileError reports whether err comes from reading or parsing the
// creds or nkey file, which nats.go does at every connection attempt. Its
// errors are not typed beyond the file system's.
func isCredsFileError(err error) bool {
	var pathErr *fs.PathError
	msg := err.Error()
	return errors.As(err, &pathErr) || strings.Contains(msg, "nkeys:") ||
		strings.Contains(msg, "signing nonce") || strings.Contains(msg, "user jwt")
}

// AsyncCause names the cause of an asynchronous error: as Cause when it
// is about credentials, permissions or TLS, otherwise the error speaks for
// itself.
func AsyncCause(err error) string {
	if cause := Cause(err); cause != CauseNetwork {
		return cause
	}
	return err.Error()
}

// ErrorLog writes one warning per cause at most once per period: a retry
// loop does not flood the log, yet a new cause shows at once.
type ErrorLog struct {
	log   *zap.Logger
	every time.Duration

	mu     sync.Mutex
	logged map[string]time.Time // by cause
}

// maxLoggedCauses bounds ErrorLog's memory; asynchronous errors are
// keyed by their text.
const maxLoggedCauses = 64

// NewErrorLog returns an ErrorLog writing to log that repeats a cause at
// most once per every (ErrorLogEvery outside tests).
func NewErrorLog(log *zap.Logger, every time.Duration) *ErrorLog {
	return &ErrorLog{log: log, every: every, logged: map[string]time.Time{}}
}

// Report logs msg with cause and err, unless cause was logged less than
// the period ago.
func (l *ErrorLog) Report(msg, cause string, err error) {
	if l.due(cause) {
		l.log.Warn(msg, zap.String("cause", cause), zap.Error(err),
			zap.String("repeats_logged_every", l.every.String()))
	}
}

func (l *ErrorLog) due(cause string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if last, ok := l.logged[cause]; ok && now.Sub(last) < l.every {
		return false
	}
	if len(l.logged) >= maxLoggedCauses {
		clear(l.logged)
	}
	l.logged[cause] = now
	return true
}

// authOptions turns the credential keys into connection options.
func authOptions(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		opts = append(opts, opt)
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.User != "" || cfg.Password != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CAFile))
	}
	if cfg.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.CertFile, cfg.TLS.KeyFile))
	}
	return opts, nil
}

// RedactURLs hides the user information (user:password, or a token) of each
// URL in a comma-separated NATS URL list, so that nats.url can be logged.
func RedactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	parts := strings.Split(list, ",")
	for i, u := range parts {
		at := strings.LastIndex(u, "@")
		if at < 0 {
			continue
		}
		start := 0
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			start = scheme + len("://")
		}
		parts[i] = u[:start] + "[redacted]" + u[at:]
	}
	return strings.Join(parts, ",")
}
