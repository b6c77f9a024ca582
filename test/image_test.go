package test

import (
	"context"
	"debug/elf"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zautic/zautic-forwarder/internal/natstest"
)

// Stamped into the image test's build, to find in `version`.
const (
	stampedVersion = "v0.0.0-imagetest"
	stampedCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// nobody is the unprivileged uid and gid the binary runs as in the image
// test; the image itself uses 65532 (distroless nonroot).
const nobody = 65534

// buildImageBinary runs scripts/build.sh, the Dockerfile's build command,
// into a directory every user may read, and returns the binary's path.
func buildImageBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "zautic-forwarder-image")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "zautic-forwarder")
	// Cold, this compiles every dependency once more (the flags differ from
	// TestMain's build); the build cache makes later runs take seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "sh", filepath.Join("..", "scripts", "build.sh"), out)
	build.Env = append(os.Environ(), "VERSION="+stampedVersion, "COMMIT="+stampedCommit)
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, output)
	}
	return out
}

// TestImageBinary checks what the image relies on, without a container
// engine: the build script's binary is statically linked, reports the
// stamped version, and runs as an unprivileged user from an empty,
// unwritable working directory against an external NATS, serving probes
// and exiting 0 on SIGTERM.
func TestImageBinary(t *testing.T) {
	bin := buildImageBinary(t)

	t.Run("statically linked", func(t *testing.T) {
		assertStatic(t, bin)
	})

	t.Run("version is stamped", func(t *testing.T) {
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("version: %v\n%s", err, out)
		}
		for _, want := range []string{stampedVersion, stampedCommit} {
			if !strings.Contains(string(out), want) {
				t.Errorf("version output %q does not contain %q", out, want)
			}
		}
	})

	t.Run("runs as nobody from an unwritable directory", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("switching to uid 65534 needs root; run the tests as root to cover the non-root run")
		}
		runAsNobody(t, bin)
	})
}

// TestDockerfile checks the Dockerfile against what the image test proves:
// its build runs scripts/build.sh (the script tested above), and the final
// stage is distroless nonroot with a numeric non-root user and both ports.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Continuation lines join their instruction.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var froms, runs, users, exposed []string
	for line := range strings.Lines(text) {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, fields[1])
		case "RUN":
			runs = append(runs, line)
		case "USER":
			users = append(users, fields[1])
		case "EXPOSE":
			exposed = append(exposed, fields[1:]...)
		}
	}
	if !slices.ContainsFunc(runs, func(r string) bool { return strings.Contains(r, "scripts/build.sh") }) {
		t.Errorf("no RUN instruction calls scripts/build.sh: %q", runs)
	}
	if len(froms) == 0 || froms[len(froms)-1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage: got FROM %v, want gcr.io/distroless/static-debian12:nonroot last", froms)
	}
	if len(users) == 0 || !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(users[len(users)-1]) {
		t.Errorf("USER: got %v, want a numeric non-root uid", users)
	}
	for _, port := range []string{"8080", "9090"} {
		if !slices.Contains(exposed, port) {
			t.Errorf("EXPOSE: got %v, want %s among them", exposed, port)
		}
	}
}

// assertStatic fails if the ELF file asks for a dynamic loader or shared
// libraries.
func assertStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("open ELF: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("has a PT_INTERP program header: dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("has a PT_DYNAMIC program header")
		}
	}
	needed, err := f.DynString(elf.DT_NEEDED)
	if err != nil && f.Section(".dynamic") != nil {
		t.Fatalf("read DT_NEEDED: %v", err)
	}
	if len(needed) > 0 {
		t.Errorf("DT_NEEDED: got %v, want none", needed)
	}
}

// runAsNobody starts bin as uid/gid 65534 with an empty, root-owned,
// read-only working directory and no HOME, against an external nats-server,
// so that it needs no writable file: /healthz and /readyz answer 200 and
// SIGTERM ends it with status 0.
func runAsNobody(t *testing.T, bin string) {
	t.Helper()
	ns := natstest.Start(t, "", 0)
	cwd := t.TempDir()
	if err := os.Chmod(cwd, 0o555); err != nil {
		t.Fatal(err)
	}
	// The test's temp dirs are private to root; nobody needs to reach cwd.
	for dir := filepath.Dir(cwd); dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	env := forwarderEnv(ns.ClientURL())
	p := &forwarderProcess{logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Dir = cwd
	p.cmd.Env = []string{"PATH=/nonexistent"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true},
	}
	startProcess(t, p)

	p.WaitReady(t)
	if status, body := getAdmin(t, p, "/healthz"); status != http.StatusOK {
		t.Fatalf("healthz: got %d %s, want 200", status, body)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM: got %d, want 0\n%s", code, trimmed(p.Logs()))
	}
	if entries, err := os.ReadDir(cwd); err != nil || len(entries) > 0 {
		t.Errorf("working directory after the run: got %d entries (%v), want it empty", len(entries), err)
	}
}

// startProcess starts p.cmd and waits until it logged its listeners, like
// startForwarder does for the harness's binary.
func startProcess(t *testing.T, p *forwarderProcess) {
	t.Helper()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	addrs := make(chan map[string]string, 1)
	go p.readLogs(stderr, addrs)
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("process logs:\n%s", p.logs.String())
		}
	})
	select {
	case a := <-addrs:
		p.WebhookURL = "http://" + a["webhook"] + "/webhooks/zautic"
		p.AdminURL = "http://" + a["admin"]
	case <-p.done:
		t.Fatalf("exited at start: %v\n%s", p.exitErr, p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no listeners logged within 30s:\n%s", p.logs.String())
	}
}
