package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zautic/zautic-forwarder/forwarder/internal/natsconn"
	"github.com/zautic/zautic-forwarder/forwarder/internal/telemetry"
	"github.com/zautic/zautic-forwarder/internal/natstest"
	"github.com/zautic/zautic-forwarder/internal/testfile"
	"github.com/zautic/zautic-forwarder/zautic"
)

// startSecuredNATS starts a JetStream nats-server on a random loopback port,
// configured further by mod, and shuts it down at cleanup. It returns the
// options too, for ReloadOptions.
func startSecuredNATS(t testing.TB, mod func(*server.Options)) (*server.Server, *server.Options) {
	t.Helper()
	var opts *server.Options
	ns := natstest.Start(t, "", 0, func(o *server.Options) {
		if mod != nil {
			mod(o)
		}
		opts = o
	})
	return ns, opts
}

// runBroker connects a Broker to url and runs its readiness loop until the
// test ends.
func runBroker(t testing.TB, url string, cfg Config, log *zap.Logger, m *telemetry.Metrics) *Broker {
	t.Helper()
	b, err := Connect(url, cfg, log, m)
	if err != nil {
		t.Fatalf("ConnectBroker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		b.Close(time.Second)
	})
	return b
}

// testPKI is a CA made for one test, with a server certificate for
// 127.0.0.1 and a client certificate, as PEM files.
type testPKI struct {
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert := newCert(t, nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "zautic-forwarder test CA"},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
	})
	srvKey, srvCert := newCert(t, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "nats-server"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliKey, cliCert := newCert(t, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "zautic-forwarder"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return testPKI{
		CAFile:     testfile.Write(t, dir, "ca.pem", pemCert(caCert)),
		ServerCert: testfile.Write(t, dir, "server.pem", pemCert(srvCert)),
		ServerKey:  testfile.Write(t, dir, "server-key.pem", pemKey(t, srvKey)),
		ClientCert: testfile.Write(t, dir, "client.pem", pemCert(cliCert)),
		ClientKey:  testfile.Write(t, dir, "client-key.pem", pemKey(t, cliKey)),
	}
}

// newCert creates a key and a certificate from tmpl, signed by parent (self
// signed when parent is nil).
func newCert(t testing.TB, parentKey *ecdsa.PrivateKey, parent, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func pemKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// serverTLS makes the server require TLS with pki, and client certificates
// signed by its CA when verify is set.
func serverTLS(t testing.TB, pki testPKI, verify bool) func(*server.Options) {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CAFile, Verify: verify,
	})
	if err != nil {
		t.Fatalf("server TLS config: %v", err)
	}
	return func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, verify, tc, 5
	}
}

// testOperator is a decentralized-auth setup built in the test: an operator,
// a system account, an application account with JetStream, and creds files.
type testOperator struct {
	configure func(*server.Options)
	// Creds is a user of the application account; StrangerCreds a user of
	// an account the server does not know.
	Creds, StrangerCreds []byte
}

func newTestOperator(t testing.TB) testOperator {
	t.Helper()
	opKP, err := nkeys.CreateOperator()
	fatalIf(t, err)
	opJWT, err := jwt.NewOperatorClaims(publicKey(t, opKP)).Encode(opKP)
	fatalIf(t, err)
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	fatalIf(t, err)

	resolver := &server.MemAccResolver{}
	account := func(name string, jetStream bool) nkeys.KeyPair {
		kp, err := nkeys.CreateAccount()
		fatalIf(t, err)
		claims := jwt.NewAccountClaims(publicKey(t, kp))
		claims.Name = name
		if jetStream {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		accountJWT, err := claims.Encode(opKP)
		fatalIf(t, err)
		fatalIf(t, resolver.Store(claims.Subject, accountJWT))
		return kp
	}
	sysKP, appKP := account("SYS", false), account("APP", true)
	unknownKP, err := nkeys.CreateAccount()
	fatalIf(t, err)
	return testOperator{
		configure: func(o *server.Options) {
			o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
			o.AccountResolver = resolver
			o.SystemAccount = publicKey(t, sysKP)
		},
		Creds:         userCreds(t, appKP),
		StrangerCreds: userCreds(t, unknownKP),
	}
}

// userCreds is a creds file of a new user signed by account.
func userCreds(t testing.TB, account nkeys.KeyPair) []byte {
	t.Helper()
	kp, err := nkeys.CreateUser()
	fatalIf(t, err)
	claims := jwt.NewUserClaims(publicKey(t, kp))
	claims.Name = "zautic-forwarder"
	userJWT, err := claims.Encode(account)
	fatalIf(t, err)
	seed, err := kp.Seed()
	fatalIf(t, err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	fatalIf(t, err)
	return creds
}

func publicKey(t testing.TB, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	fatalIf(t, err)
	return pub
}

// fatalIf fails the test on a setup error.
func fatalIf(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("test setup: %v", err)
	}
}

// nkeySeedFile writes a new user's seed and returns the file and public key.
func nkeySeedFile(t testing.TB) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	fatalIf(t, err)
	seed, err := kp.Seed()
	fatalIf(t, err)
	return testfile.Write(t, t.TempDir(), "user.nk", seed), publicKey(t, kp)
}

// TestConnectSecurityModes connects a Broker to a nats-server configured for
// each authentication and TLS mode and requires it to become ready (stream and
// bucket created through the authenticated connection), to publish, and to
// present itself under the configured or default name.
func TestConnectSecurityModes(t *testing.T) {
	pki := newTestPKI(t)
	op := newTestOperator(t)
	seedFile, seedPub := nkeySeedFile(t)
	credsFile := testfile.Write(t, t.TempDir(), "user.creds", op.Creds)
	host, _ := os.Hostname()

	tests := []struct {
		name     string
		server   func(*server.Options)
		nats     func(*natsconn.Config)
		wantName string
	}{
		{
			name:     "no auth, default name",
			nats:     func(*natsconn.Config) {},
			wantName: "zautic-forwarder@" + host,
		},
		{
			name:     "token",
			server:   func(o *server.Options) { o.Authorization = "t0ken-value" },
			nats:     func(c *natsconn.Config) { c.Token = "t0ken-value"; c.Name = "forwarder-token" },
			wantName: "forwarder-token",
		},
		{
			name:     "user and password",
			server:   func(o *server.Options) { o.Username, o.Password = "zautic", "pa55word" },
			nats:     func(c *natsconn.Config) { c.User, c.Password = "zautic", "pa55word" },
			wantName: "zautic-forwarder@" + host,
		},
		{
			name:     "nkey",
			server:   func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: seedPub}} },
			nats:     func(c *natsconn.Config) { c.NKeyFile = seedFile },
			wantName: "zautic-forwarder@" + host,
		},
		{
			name:     "creds file (operator, account, user JWT)",
			server:   op.configure,
			nats:     func(c *natsconn.Config) { c.CredsFile = credsFile },
			wantName: "zautic-forwarder@" + host,
		},
		{
			name:     "TLS with a private CA",
			server:   serverTLS(t, pki, false),
			nats:     func(c *natsconn.Config) { c.TLS.CAFile = pki.CAFile },
			wantName: "zautic-forwarder@" + host,
		},
		{
			name:   "mutual TLS",
			server: serverTLS(t, pki, true),
			nats: func(c *natsconn.Config) {
				c.TLS = natsconn.TLSConfig{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
			},
			wantName: "zautic-forwarder@" + host,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, _ := startSecuredNATS(t, tt.server)
			cfg := defaultConfig()
			cfg.NATS.URL = ns.ClientURL()
			tt.nats(&cfg.NATS)
			b := runBroker(t, cfg.NATS.URL, cfg, zaptest.NewLogger(t), nil)
			natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, b.Ready)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			header := map[string][]string{zautic.MessageIDHeader: {"evt_" + strings.ReplaceAll(tt.name, " ", "_")}}
			if _, _, err := b.Publish(ctx, "zautic.webhook.test", header, []byte(`{}`)); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if got := clientNames(t, ns); !contains(got, tt.wantName) {
				t.Errorf("client names on the server: got %v, want %q among them", got, tt.wantName)
			}
		})
	}
}

// clientNames lists the names of the server's open client connections.
func clientNames(t testing.TB, ns *server.Server) []string {
	t.Helper()
	connz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatalf("connz: %v", err)
	}
	var names []string
	for _, c := range connz.Conns {
		names = append(names, c.Name)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// minAuthAttempts is well past the second identical authorization error,
// after which nats.go closes the connection for good unless
// IgnoreAuthErrorAbort is set.
const minAuthAttempts = 4

// TestWrongCredentialsRecoverWithoutRestart starts the broker with
// credentials the server rejects: it must stay not ready with a reason naming
// the credentials, log the cause once (not once per retry), keep retrying past
// the point where nats.go would give up, and become ready once the server
// accepts it, by fixing either the server or the credentials file.
func TestWrongCredentialsRecoverWithoutRestart(t *testing.T) {
	op := newTestOperator(t)
	tests := []struct {
		name  string
		setup func(t *testing.T) (ns *server.Server, cfg natsconn.Config, fix func())
	}{
		{
			name: "wrong token, server fixed by a config reload",
			setup: func(t *testing.T) (*server.Server, natsconn.Config, func()) {
				ns, opts := startSecuredNATS(t, func(o *server.Options) { o.Authorization = "right-token" })
				cfg := defaultConfig().NATS
				cfg.Token = "wrong-token"
				return ns, cfg, func() {
					fixed := opts.Clone()
					fixed.Authorization = "wrong-token"
					if err := ns.ReloadOptions(fixed); err != nil {
						t.Fatalf("reload nats-server: %v", err)
					}
				}
			},
		},
		{
			name: "creds of an unknown account, file replaced",
			setup: func(t *testing.T) (*server.Server, natsconn.Config, func()) {
				ns, _ := startSecuredNATS(t, op.configure)
				cfg := defaultConfig().NATS
				cfg.CredsFile = testfile.Write(t, t.TempDir(), "user.creds", op.StrangerCreds)
				return ns, cfg, func() { testfile.Replace(t, cfg.CredsFile, op.Creds) }
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, natsCfg, fix := tt.setup(t)
			cfg := defaultConfig()
			cfg.NATS = natsCfg
			cfg.NATS.URL = ns.ClientURL()
			core, logs := observer.New(zapcore.InfoLevel)
			b := runBroker(t, cfg.NATS.URL, cfg, zap.New(core), nil)

			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				if n := natstest.AuthFailures(t, ns); n < minAuthAttempts {
					return fmt.Errorf("%d failed attempts so far", n)
				}
				return nil
			})
			err := b.Ready()
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "credentials rejected") {
				t.Fatalf("Ready after %d rejected attempts: got %v, want ErrNotReady naming the credentials", natstest.AuthFailures(t, ns), err)
			}
			if b.nc.IsClosed() {
				t.Fatal("the connection was closed after repeated authorization errors; it must keep retrying")
			}
			warnings := logs.FilterMessage("nats connection failed; retrying").All()
			if len(warnings) != 1 {
				t.Fatalf("connection warnings after %d attempts: got %d, want 1 (rate-limited)", natstest.AuthFailures(t, ns), len(warnings))
			}
			if cause := warnings[0].ContextMap()["cause"]; cause != natsconn.CauseCredentials {
				t.Errorf("logged cause: got %q, want %q", cause, natsconn.CauseCredentials)
			}
			if n := logs.FilterMessage("nats not ready").Len(); n > 2 {
				t.Errorf(`"nats not ready" logged %d times while retrying; want it once per change of reason`, n)
			}

			fix()
			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, b.Ready)
		})
	}
}

// TestAuthErrorAbortWithoutOption shows what IgnoreAuthErrorAbort prevents,
// so that the test above is known to cover it: without the option, the same
// retrying client closes its connection for good after repeated
// authorization errors.
func TestAuthErrorAbortWithoutOption(t *testing.T) {
	ns, _ := startSecuredNATS(t, func(o *server.Options) { o.Authorization = "right-token" })
	nc, err := nats.Connect(ns.ClientURL(), nats.Token("wrong-token"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.NoCallbacksAfterClientClose())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if !nc.IsClosed() {
			return fmt.Errorf("status %v after %d rejected attempts", nc.Status(), natstest.AuthFailures(t, ns))
		}
		return nil
	})
}

// TestTLSFailureIsReported points the broker at a TLS server with a CA that
// did not sign it: not ready, with the TLS cause in the reason.
func TestTLSFailureIsReported(t *testing.T) {
	pki, other := newTestPKI(t), newTestPKI(t)
	ns, _ := startSecuredNATS(t, serverTLS(t, pki, false))
	cfg := defaultConfig()
	cfg.NATS.URL = ns.ClientURL()
	cfg.NATS.TLS.CAFile = other.CAFile
	b := runBroker(t, cfg.NATS.URL, cfg, zaptest.NewLogger(t), nil)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "TLS handshake failed") {
			return fmt.Errorf("Ready: got %v, want the TLS cause", err)
		}
		return nil
	})
}

// TestUnusableCredsFileIsReported gives the broker a creds file holding
// the manifests' placeholder: it stays up, not ready, with the file named as
// the cause, and is read again on every attempt.
func TestUnusableCredsFileIsReported(t *testing.T) {
	placeholder := testfile.Write(t, t.TempDir(), "nats.creds", []byte(
		"-----BEGIN NATS USER JWT-----\nREPLACE-WITH-THE-USER-JWT\n------END NATS USER JWT------\n"))
	ns, _ := startSecuredNATS(t, nil)
	cfg := defaultConfig()
	cfg.NATS.CredsFile = placeholder
	b := runBroker(t, ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if err := b.Ready(); err == nil || !strings.Contains(err.Error(), natsconn.CauseCredsFile) {
			return fmt.Errorf("Ready: got %v, want the creds file named", err)
		}
		return nil
	})
}

// TestMissingCredentialFilesFailAtStart: a file that does not exist is a
// configuration error, reported by Connect with its path.
func TestMissingCredentialFilesFailAtStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	tests := []struct {
		name string
		set  func(*natsconn.Config)
	}{
		{"creds_file", func(c *natsconn.Config) { c.CredsFile = missing }},
		{"nkey_file", func(c *natsconn.Config) { c.NKeyFile = missing }},
		{"tls.ca_file", func(c *natsconn.Config) { c.TLS.CAFile = missing }},
	}
	ns, _ := startSecuredNATS(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			tt.set(&cfg.NATS)
			b, err := Connect(ns.ClientURL(), cfg, zaptest.NewLogger(t), nil)
			if err == nil {
				b.Close(time.Second)
				t.Fatal("Connect succeeded with a missing file")
			}
			if !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name %s", err, missing)
			}
		})
	}
}

// TestConnectBadURLHidesPassword: a URL that does not parse (a bare %
// in the password) is named without its user information.
func TestConnectBadURLHidesPassword(t *testing.T) {
	_, err := Connect("nats://u:Pw50%off@127.0.0.1:4222", defaultConfig(), zaptest.NewLogger(t), nil)
	if err == nil {
		t.Fatal("Connect succeeded with a URL that does not parse")
	}
	if strings.Contains(err.Error(), "Pw50") || !strings.Contains(err.Error(), "nats://[redacted]@127.0.0.1:4222") {
		t.Errorf("got error %q, want the URL named without its user information", err)
	}
}
