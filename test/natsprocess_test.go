package test

import (
	"context"
	"fmt"
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

// A nats-server that must be frozen (SIGSTOP) runs as a process of its own,
// built from the nats-server module the project requires, so that its
// version is the one the in-process servers run.
var (
	natsServerOnce   sync.Once
	natsServerBinary string
	natsServerErr    error
)

// buildNATSServer builds the nats-server binary once per test run, beside
// the forwarder's binary (TestMain removes both).
func buildNATSServer(t testing.TB) string {
	t.Helper()
	natsServerOnce.Do(func() {
		out := filepath.Join(filepath.Dir(binary), "nats-server")
		build := exec.Command("go", "build", "-o", out, "github.com/nats-io/nats-server/v2")
		if msg, err := build.CombinedOutput(); err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %w\n%s", err, msg)
			return
		}
		natsServerBinary = out
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerBinary
}

// natsProcess is a nats-server process with JetStream on a loopback port.
type natsProcess struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
}

// startNATSProcess starts a nats-server process with JetStream in a temp
// dir and waits until it accepts clients. At cleanup it is continued (a
// stopped process cannot die of SIGKILL before it runs again on every
// system) and killed.
func startNATSProcess(t testing.TB) *natsProcess {
	t.Helper()
	port := freePorts(t, 1)[0]
	p := &natsProcess{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), done: make(chan struct{})}
	p.cmd = exec.Command(buildNATSServer(t), "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Continue(t)
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
		_, err = js.AccountInfo(ctx) // JetStream answers, not only the port
		return err
	})
	return p
}

// Freeze stops the process with SIGSTOP: its sockets stay open and nothing
// answers, as with a hung node.
func (p *natsProcess) Freeze(t testing.TB) { p.signal(t, syscall.SIGSTOP) }

// Continue resumes a frozen process.
func (p *natsProcess) Continue(t testing.TB) { p.signal(t, syscall.SIGCONT) }

func (p *natsProcess) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		t.Errorf("signal %v to nats-server: %v", sig, err)
	}
}
