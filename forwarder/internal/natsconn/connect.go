package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// ConnectionName is nats.name, defaulting to zautic-forwarder@<hostname>.
func ConnectionName(cfg NATSConfig) string {
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

// natsOptions are the connection options: never give up reconnecting (auth
// errors included, so that fixed credentials bring the forwarder back without
// a restart), no reconnect buffer (a publish while disconnected fails at once
// and is answered 503 instead of waiting), and credentials from cfg.
func natsOptions(cfg NATSConfig, b *Broker, log *zap.Logger) ([]nats.Option, error) {
	opts := append(retryOptions(cfg, ConnectionName(cfg)),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.lastConnErr.Store(nil)
			log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.warnSmallPayload(nc)
			b.metrics.SetConnected(true)
			b.Wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.lastConnErr.Store(nil)
			log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
			b.warnSmallPayload(nc)
			b.metrics.SetConnected(true)
			b.metrics.Reconnected()
			b.requestRepair()
			b.Wake()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.metrics.SetConnected(false)
			if err == nil {
				err = errors.New("connection closed")
			}
			b.setNotReady(fmt.Errorf("disconnected: %w", err))
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			b.lastConnErr.Store(&err)
			b.setNotReady(b.connectionDown(nc))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.notePermissionDenied(err)
			// Shares the log with connectionDown: a rejected reconnection
			// reaches both, and is logged once.
			b.connLog.report("nats error", asyncCause(err), err)
		}),
	)
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

// retryOptions are the options both connections share: the name, the
// connect timeout, reconnecting for ever, no reconnect buffer, and a hung
// server left within (MaxPingsOutstanding+1) × nats.ping_interval.
func retryOptions(cfg NATSConfig, name string) []nats.Option {
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

// connectionDown is the readiness reason while disconnected, the same from
// the connection handlers and from the periodic check so that the reason
// does not flap: the client's last error (set by a rejected handshake, which
// no handler reports while the first connection is still being attempted),
// else the last failed attempt's, else the servers tried. A named cause is
// logged too, at most once per cause every connErrorLogEvery.
// It takes nc because the handlers may run before Connect has set b.nc.
func (b *Broker) connectionDown(nc *nats.Conn) error {
	err := nc.LastError()
	if err == nil {
		if last := b.lastConnErr.Load(); last != nil {
			err = *last
		}
	}
	if err == nil {
		return fmt.Errorf("%w to %s", errNotConnectedYet, RedactURLs(strings.Join(nc.Opts.Servers, ",")))
	}
	cause := connectCause(err)
	b.connLog.report("nats connection failed; retrying", cause, err)
	return fmt.Errorf("connect: %s: %w", cause, err)
}

// errNotConnectedYet is the readiness reason before a connection attempt
// has failed or succeeded: no cause is known yet, so it is not logged.
var errNotConnectedYet = errors.New("not connected")

// connErrorLogEvery bounds the repetition of one connection error in the log:
// the client retries twice a second, forever.
const connErrorLogEvery = 30 * time.Second

// Causes of a failed connection attempt, as logged and reported by /readyz.
const (
	causeCredentials = "credentials rejected by the nats-server (check nats.creds_file, nats.nkey_file, nats.token, nats.user/nats.password)"
	causePermissions = "permission denied by the nats-server (check the user's publish/subscribe permissions)"
	causeCredsFile   = "credentials file unreadable or invalid (check nats.creds_file, nats.nkey_file)"
	causeTLS         = "TLS handshake failed (check nats.tls.ca_file, nats.tls.cert_file, nats.tls.key_file)"
	causeNetwork     = "nats-server unreachable"
)

// connectCause names, for an operator, why a connection attempt failed.
func connectCause(err error) string {
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return causeCredentials
	case errors.Is(err, nats.ErrPermissionViolation):
		return causePermissions
	case isCredsFileError(err):
		return causeCredsFile
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &unknownAuthority),
		errors.As(err, &hostname), errors.Is(err, nats.ErrSecureConnRequired),
		errors.Is(err, nats.ErrSecureConnWanted), strings.Contains(err.Error(), "tls:"),
		strings.Contains(err.Error(), "x509:"):
		return causeTLS
	default:
		return causeNetwork
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

// asyncCause names the cause of an asynchronous error: as connectCause
// when it is about credentials, permissions or TLS, otherwise the error
// speaks for itself.
func asyncCause(err error) string {
	if cause := connectCause(err); cause != causeNetwork {
		return cause
	}
	return err.Error()
}

// connErrorLog writes one warning per cause at most once per every: a
// retry loop does not flood the log, yet a new cause shows at once.
type connErrorLog struct {
	log   *zap.Logger
	every time.Duration

	mu     sync.Mutex
	logged map[string]time.Time // by cause
}

// maxLoggedCauses bounds connErrorLog's memory; asynchronous errors are
// keyed by their text.
const maxLoggedCauses = 64

func newConnErrorLog(log *zap.Logger, every time.Duration) *connErrorLog {
	return &connErrorLog{log: log, every: every, logged: map[string]time.Time{}}
}

func (l *connErrorLog) report(msg, cause string, err error) {
	if l.due(cause) {
		l.log.Warn(msg, zap.String("cause", cause), zap.Error(err),
			zap.String("repeats_logged_every", l.every.String()))
	}
}

func (l *connErrorLog) due(cause string) bool {
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
func authOptions(cfg NATSConfig) ([]nats.Option, error) {
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
