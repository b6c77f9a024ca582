package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// natsServerBinary is built once per test binary, from the nats-server
// module go.mod already requires, by buildNATSServer.
var natsServerBinary struct {
	once sync.Once
	path string
	err  error
}

// buildNATSServer returns the path of a nats-server binary, for tests that
// need a server in a process of its own (one they can stop with SIGSTOP).
func buildNATSServer(t testing.TB) string {
	t.Helper()
	natsServerBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "nats-server-e2e")
		if err != nil {
			natsServerBinary.err = err
			return
		}
		path := filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsServerBinary.err = fmt.Errorf("build nats-server: %w\n%s", err, out)
			return
		}
		natsServerBinary.path = path
	})
	if natsServerBinary.err != nil {
		t.Fatal(natsServerBinary.err)
	}
	return natsServerBinary.path
}

// natsProcess is a nats-server with JetStream in a process of its own.
type natsProcess struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
}

// startNATSProcess starts a nats-server process on a free loopback port and
// waits until JetStream answers. At cleanup it is continued (should a test
// have left it stopped) and killed.
func startNATSProcess(t testing.TB) *natsProcess {
	t.Helper()
	port := freePorts(t, 1)[0]
	p := &natsProcess{URL: "nats://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	p.cmd = exec.Command(buildNATSServer(t), "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		nc, err := nats.Connect(p.URL, nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	})
	return p
}

// Freeze stops the server with SIGSTOP: its sockets stay open and take
// what is written to them, and nothing answers, as a hung node does.
func (p *natsProcess) Freeze(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP nats-server: %v", err)
	}
}

// Thaw continues a frozen server, which then handles what was written to
// it meanwhile.
func (p *natsProcess) Thaw(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT nats-server: %v", err)
	}
}
