package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

//go:embed reference/server.mjs
var referenceServer []byte

// proc is a process of the benchmark: nats-server, a receiver, or the
// forwarder. Its output goes straight to a file, as a service's log would,
// so that no pipe reader in this process competes for the CPU.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func (b *bench) startProc(name string, cmd *exec.Cmd) (*proc, error) {
	f, err := os.CreateTemp(b.tmp, name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	p := &proc{name: name, cmd: cmd, log: f.Name()}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// output is the end of the process's output, for error messages.
func (p *proc) output() string {
	raw, _ := os.ReadFile(p.log)
	if len(raw) > 4096 {
		raw = raw[len(raw)-4096:]
	}
	return string(raw)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, and SIGKILL after 10 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// handedOut are the addresses freeAddr has returned: the kernel may offer
// a port again once its listener is closed, before the process it was
// meant for has bound it, and two processes of a cell would then collide.
var handedOut = map[string]bool{}

// freeAddr returns a loopback address with a free port, never the same
// one twice in a run.
func freeAddr() (string, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr, nil
		}
	}
	return "", errors.New("no new free port in 100 tries")
}

// waitHTTP polls url until it answers want, for at most 30 s.
func waitHTTP(ctx context.Context, url string, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within 30s", url)
}

// bench holds what every row shares.
type bench struct {
	opts      options
	self      string
	forwarder string
	tmp       string
	nodeDir   string // "" when Node.js or express is not available
	nodeNote  string
}

func runBenchmark(ctx context.Context, opts options, w io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "zautic-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{opts: opts, self: self, tmp: tmp}
	if b.forwarder, err = buildForwarder(ctx, tmp); err != nil {
		return err
	}
	if slices.Contains(opts.rows, "D") {
		b.prepareNode(ctx)
	}
	var results []rowResult
	for _, clients := range opts.clients {
		for i, mode := range opts.syncModes {
			rs, err := b.runCell(ctx, cell{clients: clients, sync: mode, first: i == 0})
			results = append(results, rs...)
			if err != nil {
				return err
			}
		}
	}
	printReport(w, opts, results, b.nodeNote)
	return nil
}

// cell is one client count and one sync mode: the rows of a cell are
// measured in turn, in the same minutes.
type cell struct {
	clients int
	sync    string
	first   bool // the first sync mode: rows that do not store run only then
}

func (c cell) String() string { return fmt.Sprintf("%d clients, sync %s", c.clients, c.sync) }

// runCell starts every selected row of c, each with a nats-server of its
// own, warms each up, and then measures them in -rounds turns, alternating
// the order (forward, backward, ...): a machine whose speed drifts during
// the cell then weighs on every row alike, which one long measurement per
// row, minutes apart, did not.
func (b *bench) runCell(ctx context.Context, c cell) ([]rowResult, error) {
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, id := range b.opts.rows {
		row, _ := rowByID(id)
		if !row.synced && !c.first {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: row %s at %s: start and warm up\n", row.id, c)
		t, err := b.start(ctx, row, c)
		if err != nil {
			return nil, fmt.Errorf("row %s at %s: %w", row.id, c, err)
		}
		targets = append(targets, t)
		if t.skipped != "" {
			continue
		}
		if _, err := t.load(b.opts.warmup); err != nil {
			return nil, fmt.Errorf("row %s at %s: warm-up: %w%s", row.id, c, err, t.output())
		}
	}
	slice := b.opts.duration / time.Duration(b.opts.rounds)
	for round := range b.opts.rounds {
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			if t.skipped != "" {
				continue
			}
			fmt.Fprintf(os.Stderr, "bench: row %s at %s: round %d of %d\n", t.row.id, c, round+1, b.opts.rounds)
			if err := b.measureSlice(ctx, t, slice, round == 0); err != nil {
				return nil, fmt.Errorf("row %s at %s: %w%s", t.row.id, c, err, t.output())
			}
		}
	}
	results := make([]rowResult, 0, len(targets))
	for _, t := range targets {
		results = append(results, t.result())
	}
	return results, nil
}

// natsServer is a nats-server process of the benchmark, and a connection
// to it.
type natsServer struct {
	proc *proc
	url  string
	js   jetstream.JetStream
}

// startNATS starts a nats-server with c's sync mode, storing in a new
// directory under the run's temp dir.
func (b *bench) startNATS(ctx context.Context, name string, c cell) (*natsServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	store := filepath.Join(b.tmp, fmt.Sprintf("%s-%d-%s", name, c.clients, c.sync))
	cmd := exec.CommandContext(ctx, b.self, "-role", roleNATS, "-listen", addr, "-store", store, "-sync", c.sync)
	p, err := b.startProc(name, cmd)
	if err != nil {
		return nil, err
	}
	s := &natsServer{proc: p, url: "nats://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(s.url)
		if err == nil {
			s.js, err = jetstream.New(nc)
			return s, err
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nats-server: %w\n%s", err, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *natsServer) stop() {
	s.js.Conn().Close()
	s.proc.stop()
}

// prepareNode installs express for row D in a temp dir; without Node.js or
// the npm registry, row D is skipped with a note.
func (b *bench) prepareNode(ctx context.Context) {
	if _, err := exec.LookPath("node"); err != nil {
		b.nodeNote = "row D skipped: Node.js is not installed"
		return
	}
	dir := filepath.Join(b.tmp, "reference")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.nodeNote = "row D skipped: " + err.Error()
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "server.mjs"), referenceServer, 0o644); err != nil {
		b.nodeNote = "row D skipped: " + err.Error()
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ictx, "npm", "install", "--no-audit", "--no-fund", "--silent", "express")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		b.nodeNote = fmt.Sprintf("row D skipped: npm install express: %v: %s", err, bytes.TrimSpace(out))
		return
	}
	version, _ := exec.CommandContext(ctx, "node", "--version").Output()
	b.nodeDir = dir
	b.nodeNote = "row D: Node.js " + string(bytes.TrimSpace(version)) + ", express from npm, one process"
}

// row is one line of the table.
type row struct {
	id, label string
	synced    bool // stores in JetStream: run once per sync mode
	start     func(ctx context.Context, b *bench, t *target) error
}

var rowOrder = []row{
	{"A", "JetStream limit: js.PublishMsg with Nats-Msg-Id, no HTTP", true, startRowA},
	{"B", "HTTP + signature limit: net/http, verify, 200", false, startRowB},
	{"M", "design minimum: net/http, verify, KV Get, publish, KV Create", true, startRowM},
	{"MA", "design minimum, mark sent without waiting for its PubAck (the forwarder's design)", true, startRowMA},
	{"C", "zautic-forwarder (default configuration: a log line per delivery, metrics; GOMEMLIMIT as the Kubernetes manifest sets it), external nats-server", true, startRowC},
	{"CE", "zautic-forwarder, embedded nats-server (its CPU is in the receiver's)", true, startRowCE},
	{"D", "reference: Zautic's Express example (verify, JSON.parse, 200)", false, startRowD},
}

// rowByID is the row named id.
func rowByID(id string) (row, bool) {
	for _, r := range rowOrder {
		if r.id == id {
			return r, true
		}
	}
	return row{}, false
}

// target is a row of a cell, started: its processes run, load drives it,
// and what its slices measured adds up.
type target struct {
	row      row
	cell     cell
	load     func(d time.Duration) (loadResult, error)
	nats     *natsServer // the row's own nats-server; nil for rows that store nothing, and CE
	receiver *proc       // nil for row A
	profile  profileTarget
	skipped  string

	slices               []loadResult
	receiverCPU, natsCPU time.Duration
}

// start starts row in cell c.
func (b *bench) start(ctx context.Context, row row, c cell) (*target, error) {
	t := &target{row: row, cell: c}
	if row.synced && row.id != "CE" {
		var err error
		if t.nats, err = b.startNATS(ctx, "nats-"+row.id, c); err != nil {
			return nil, err
		}
	}
	if err := row.start(ctx, b, t); err != nil {
		t.stop()
		return nil, fmt.Errorf("%w%s", err, t.output())
	}
	return t, nil
}

func (t *target) stop() {
	if t.receiver != nil {
		t.receiver.stop()
	}
	if t.nats != nil {
		t.nats.stop()
	}
}

// output is the end of the receiver's output, for error messages.
func (t *target) output() string {
	if t.receiver == nil {
		return ""
	}
	return "\n" + t.receiver.output()
}

// measureSlice runs t's load for d, reading the CPU of its processes around
// it; with profile set, it also saves the CPU profile -cpuprofile asks for.
func (b *bench) measureSlice(ctx context.Context, t *target, d time.Duration, profile bool) error {
	if profile && t.profile.url != "" {
		profiled := make(chan error, 1)
		go func() { profiled <- fetchProfile(ctx, t.profile, d) }()
		defer func() {
			if err := <-profiled; err != nil {
				fmt.Fprintln(os.Stderr, "bench: CPU profile:", err)
			}
		}()
	}
	var pids []int
	if t.nats != nil {
		pids = append(pids, t.nats.proc.pid())
	}
	if t.receiver != nil {
		pids = append(pids, t.receiver.pid())
	}
	meter, err := startCPU(pids...)
	if err != nil {
		return err
	}
	res, err := t.load(d)
	if err != nil {
		return err
	}
	used, err := meter.stop()
	if err != nil {
		return err
	}
	if t.nats != nil {
		t.natsCPU += used[0]
		used = used[1:]
	}
	if t.receiver != nil {
		t.receiverCPU += used[0]
	}
	t.slices = append(t.slices, res)
	return nil
}

// result adds up t's slices: events, failures and time are summed, p50 and
// p99 are the medians of the slices' (the load generator reports
// percentiles, not latencies), max the largest.
func (t *target) result() rowResult {
	r := rowResult{row: t.row.id, label: t.row.label, clients: t.cell.clients, skipped: t.skipped,
		receiverCPU: t.receiverCPU, natsCPU: t.natsCPU}
	if t.row.synced {
		r.sync = t.cell.sync
	}
	if t.receiver != nil {
		r.receiverName = t.receiver.name
		if rss, err := peakRSS(t.receiver.pid()); err == nil {
			r.peakRSS = rss
		}
	}
	if len(t.slices) == 0 {
		return r
	}
	var p50s, p99s []time.Duration
	for _, s := range t.slices {
		r.load.ok += s.ok
		r.load.failed += s.failed
		r.load.elapsed += s.elapsed
		r.load.max = max(r.load.max, s.max)
		p50s, p99s = append(p50s, s.p50), append(p99s, s.p99)
	}
	if r.load.elapsed > 0 {
		r.load.perSec = float64(r.load.ok) / r.load.elapsed.Seconds()
	}
	r.load.p50, r.load.p99 = median(p50s), median(p99s)
	return r
}

// median is the middle value of ds, the lower of the two middle ones for
// an even count.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[(len(ds)-1)/2]
}

// rowResult is what one row measured.
type rowResult struct {
	row, label   string
	sync         string // the sync mode, "" for rows that do not store
	clients      int
	load         loadResult
	receiverCPU  time.Duration // CPU of the receiver process over the measured run
	natsCPU      time.Duration // CPU of the row's nats-server over the measured run
	peakRSS      int64
	skipped      string
	receiverName string
}

func (r rowResult) cpuPerEvent(d time.Duration) float64 {
	if r.load.ok == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.load.ok)
}

// totalCPUPerEvent is the CPU per event of every process that serves the
// row: the receiver's and its nats-server's, which rows B, D (they store
// nothing) and CE (its server is inside the receiver) do not have.
func (r rowResult) totalCPUPerEvent() float64 {
	var cpu time.Duration
	if r.hasOwnNATS() {
		cpu = r.natsCPU
	}
	if r.receiverName != "" {
		cpu += r.receiverCPU
	}
	return r.cpuPerEvent(cpu)
}

// hasOwnNATS reports whether the row stores in a nats-server of its own.
func (r rowResult) hasOwnNATS() bool { return r.row != "CE" && r.row != "B" && r.row != "D" }

func startRowA(ctx context.Context, b *bench, t *target) error {
	js := t.nats.js
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		return err
	}
	body := sampleBody()
	t.load = func(d time.Duration) (loadResult, error) {
		return publishLoad(ctx, js, body, t.cell.clients, d)
	}
	return nil
}

// publishLoad is row A's load: clients goroutines publishing synchronously.
func publishLoad(ctx context.Context, js jetstream.JetStream, body []byte, clients int, d time.Duration) (loadResult, error) {
	var (
		mu     sync.Mutex
		all    []time.Duration
		failed int
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			var lat []time.Duration
			bad := 0
			for i := 0; time.Now().Before(deadline); i++ {
				msg := nats.NewMsg("zautic.message.delivered")
				msg.Data = body
				msg.Header.Set(jetstream.MsgIDHeader, "a-"+strconv.Itoa(c)+"-"+strconv.Itoa(i)+"-"+strconv.FormatInt(start.UnixNano(), 36))
				t0 := time.Now()
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := js.PublishMsg(pctx, msg)
				cancel()
				if err != nil {
					bad++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			failed += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return newLoadResult(all, failed, time.Since(start)), nil
}

func startRowB(ctx context.Context, b *bench, t *target) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if t.receiver, err = b.startProc("receiver-b", exec.CommandContext(ctx, b.self, "-role", roleReceiverB, "-listen", addr)); err != nil {
		return err
	}
	return b.driveHTTP(ctx, t, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/")
}

func startRowM(ctx context.Context, b *bench, t *target) error {
	return b.startDesignMinimum(ctx, t, roleReceiverM)
}

func startRowMA(ctx context.Context, b *bench, t *target) error {
	return b.startDesignMinimum(ctx, t, roleReceiverMA)
}

func (b *bench) startDesignMinimum(ctx context.Context, t *target, role string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"-role", role, "-listen", addr, "-nats", t.nats.url}
	if b.profiled(t.cell) {
		pprof, err := freeAddr()
		if err != nil {
			return err
		}
		args = append(args, "-pprof", pprof)
		t.profile = profileTarget{"http://" + pprof + "/debug/pprof/profile", b.opts.cpuProfile + "." + t.row.id}
	}
	if t.receiver, err = b.startProc(role, exec.CommandContext(ctx, b.self, args...)); err != nil {
		return err
	}
	return b.driveHTTP(ctx, t, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/")
}

func startRowC(ctx context.Context, b *bench, t *target) error {
	return b.startForwarder(ctx, t, t.nats.url)
}

func startRowCE(ctx context.Context, b *bench, t *target) error {
	return b.startForwarder(ctx, t, "")
}

// startForwarder starts the real binary with its default configuration;
// with natsURL empty it runs its embedded nats-server, whose CPU is then
// part of the forwarder's. With -cpuprofile, row C at the most clients is
// profiled.
func (b *bench) startForwarder(ctx context.Context, t *target, natsURL string) error {
	c := t.cell
	web, err := freeAddr()
	if err != nil {
		return err
	}
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, b.forwarder)
	cmd.Env = append(os.Environ(),
		"ZAUTIC_WEBHOOK_SECRET="+benchSecret,
		"FORWARDER_HTTP_ADDR="+web,
		"FORWARDER_ADMIN_ADDR="+admin,
		"FORWARDER_NATS_URL="+natsURL,
		"FORWARDER_NATS_EMBEDDED_LISTEN=127.0.0.1:0",
		"FORWARDER_NATS_EMBEDDED_STORE_DIR="+filepath.Join(b.tmp, fmt.Sprintf("embedded-%d-%s", c.clients, c.sync)),
		"FORWARDER_NATS_EMBEDDED_SYNC_INTERVAL="+c.sync,
		"FORWARDER_ADMIN_PPROF=true",
		// As the Kubernetes manifest runs it (deploy/kubernetes/base), which
		// also raises the garbage collector's target in row C (gc.go; with
		// the embedded server of row CE it stays Go's default).
		"GOMEMLIMIT=200MiB",
	)
	if t.receiver, err = b.startProc("zautic-forwarder", cmd); err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+admin+"/readyz", http.StatusOK); err != nil {
		return err
	}
	if natsURL != "" && b.profiled(c) {
		t.profile = profileTarget{"http://" + admin + "/debug/pprof/profile", b.opts.cpuProfile}
	}
	return b.driveHTTP(ctx, t, "http://"+web+"/webhooks/zautic", "")
}

// profiled reports whether -cpuprofile asks for a profile of this cell:
// the most clients in the first sync mode.
func (b *bench) profiled(c cell) bool {
	return b.opts.cpuProfile != "" && c.clients == slices.Max(b.opts.clients) && c.sync == b.opts.syncModes[0]
}

// profileTarget is where a CPU profile comes from (a pprof URL) and goes;
// the zero value asks for none.
type profileTarget struct{ url, file string }

// fetchProfile saves a CPU profile of d, at least a second.
func fetchProfile(ctx context.Context, target profileTarget, d time.Duration) error {
	seconds := max(1, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.url+"?seconds="+strconv.Itoa(seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", target.url, resp.Status)
	}
	f, err := os.Create(target.file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func startRowD(ctx context.Context, b *bench, t *target) error {
	if b.nodeDir == "" {
		t.skipped = b.nodeNote
		return nil
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "node", "server.mjs")
	cmd.Dir = b.nodeDir
	cmd.Env = append(os.Environ(), "PORT="+port, "ZAUTIC_WEBHOOK_SECRET="+benchSecret)
	if t.receiver, err = b.startProc("node", cmd); err != nil {
		return err
	}
	return b.driveHTTP(ctx, t, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/")
}

// driveHTTP waits for t's receiver to answer on probe and sets the load
// generator on url as t's load.
func (b *bench) driveHTTP(ctx context.Context, t *target, url, probe string) error {
	if probe != "" {
		if err := waitHTTP(ctx, probe, 0); err != nil {
			return err
		}
	}
	t.load = func(d time.Duration) (loadResult, error) {
		return sendLoad(ctx, b.forwarder, url, t.cell.clients, d)
	}
	return nil
}

// machine describes where the run happened.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(raw, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.Equal(bytes.TrimSpace(k), []byte("model name")) {
				model = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s, %s, %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
