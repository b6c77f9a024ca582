package main

import (
	"bytes"
	"context"
	_ "embed"
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

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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
	nats      *proc
	natsURL   string
	sync      string // sync mode of the nats-server and of row CE's embedded one
	js        jetstream.JetStream
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
			rs, err := b.runRows(ctx, clients, mode, i == 0)
			results = append(results, rs...)
			if err != nil {
				return err
			}
		}
	}
	printReport(w, opts, results, b.nodeNote)
	return nil
}

// runRows runs the selected rows at clients against a nats-server of its
// own with sync mode mode. Rows that do not touch JetStream run only once,
// with the first mode.
func (b *bench) runRows(ctx context.Context, clients int, mode string, first bool) ([]rowResult, error) {
	if err := b.startNATS(ctx, mode, fmt.Sprintf("nats-%d-%s", clients, mode)); err != nil {
		return nil, err
	}
	defer b.stopNATS()
	var results []rowResult
	for _, id := range b.opts.rows {
		row, _ := rowByID(id)
		if !row.synced && !first {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: row %s at %d clients, sync %s\n", row.id, clients, mode)
		res, err := row.run(ctx, b, clients)
		if err != nil {
			return results, fmt.Errorf("row %s at %d clients, sync %s: %w", row.id, clients, mode, err)
		}
		res.row, res.label, res.clients = row.id, row.label, clients
		if row.synced {
			res.sync = mode
		}
		results = append(results, res)
	}
	return results, nil
}

// startNATS starts the shared nats-server with sync mode mode, storing in
// a new directory, store, under the run's temp dir.
func (b *bench) startNATS(ctx context.Context, mode, store string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	b.sync = mode
	cmd := exec.CommandContext(ctx, b.self, "-role", roleNATS, "-listen", addr, "-store", filepath.Join(b.tmp, store), "-sync", mode)
	if b.nats, err = b.startProc("nats-server", cmd); err != nil {
		return err
	}
	b.natsURL = "nats://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(b.natsURL)
		if err == nil {
			b.js, err = jetstream.New(nc)
			return err
		}
		if time.Now().After(deadline) {
			b.nats.stop()
			return fmt.Errorf("nats-server: %w\n%s", err, b.nats.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bench) stopNATS() {
	b.js.Conn().Close()
	b.nats.stop()
}

// resetNATS deletes the stream and the bucket so that every row starts
// from empty storage.
func (b *bench) resetNATS(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = b.js.DeleteStream(ctx, "ZAUTIC")
	_ = b.js.DeleteKeyValue(ctx, "zautic-dedup")
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
	run       func(ctx context.Context, b *bench, clients int) (rowResult, error)
}

var rowOrder = []row{
	{"A", "JetStream limit: js.PublishMsg with Nats-Msg-Id, no HTTP", true, runRowA},
	{"B", "HTTP + signature limit: net/http, verify, 200", false, runRowB},
	{"M", "design minimum: net/http, verify, KV Get, publish, KV Create", true, runRowM},
	{"MA", "design minimum, mark sent without waiting for its PubAck (the forwarder's design)", true, runRowMA},
	{"C", "zautic-forwarder (default configuration: a log line per delivery, metrics; GOMEMLIMIT as the Kubernetes manifest sets it), external nats-server", true, runRowC},
	{"CE", "zautic-forwarder, embedded nats-server (its CPU is in the receiver's)", true, runRowCE},
	{"D", "reference: Zautic's Express example (verify, JSON.parse, 200)", false, runRowD},
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

// rowResult is what one row measured.
type rowResult struct {
	row, label   string
	sync         string // the sync mode, "" for rows that do not store
	clients      int
	load         loadResult
	receiverCPU  time.Duration // CPU of the receiver process over the measured run
	natsCPU      time.Duration // CPU of the shared nats-server over the measured run
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
// row: the receiver's and the shared nats-server's, which rows B, D (they
// store nothing) and CE (its server is inside the receiver) do not use.
func (r rowResult) totalCPUPerEvent() float64 {
	var cpu time.Duration
	if r.usesSharedNATS() {
		cpu = r.natsCPU
	}
	if r.receiverName != "" {
		cpu += r.receiverCPU
	}
	return r.cpuPerEvent(cpu)
}

// usesSharedNATS reports whether the row stores in the shared nats-server.
func (r rowResult) usesSharedNATS() bool { return r.row != "CE" && r.row != "B" && r.row != "D" }

// measure runs a warm-up and then the measured load, reading the CPU of
// pids around the measured part only. With profile set, it also fetches a
// CPU profile of the measured part.
func (b *bench) measure(ctx context.Context, load func(d time.Duration) (loadResult, error), receiver int, profile profileTarget) (rowResult, error) {
	if _, err := load(b.opts.warmup); err != nil {
		return rowResult{}, fmt.Errorf("warm-up: %w", err)
	}
	if profile.url != "" {
		profiled := make(chan error, 1)
		go func() { profiled <- b.fetchProfile(ctx, profile) }()
		defer func() {
			if err := <-profiled; err != nil {
				fmt.Fprintln(os.Stderr, "bench: CPU profile:", err)
			}
		}()
	}
	pids := []int{b.nats.pid()}
	if receiver != 0 {
		pids = append(pids, receiver)
	}
	meter, err := startCPU(pids...)
	if err != nil {
		return rowResult{}, err
	}
	res, err := load(b.opts.duration)
	if err != nil {
		return rowResult{}, err
	}
	used, err := meter.stop()
	if err != nil {
		return rowResult{}, err
	}
	out := rowResult{load: res, natsCPU: used[0]}
	if receiver != 0 {
		out.receiverCPU = used[1]
		if rss, err := peakRSS(receiver); err == nil {
			out.peakRSS = rss
		}
	}
	return out, nil
}

func runRowA(ctx context.Context, b *bench, clients int) (rowResult, error) {
	b.resetNATS(ctx)
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZAUTIC", Subjects: []string{"zautic.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		return rowResult{}, err
	}
	body := sampleBody()
	return b.measure(ctx, func(d time.Duration) (loadResult, error) {
		return publishLoad(ctx, b.js, body, clients, d)
	}, 0, profileTarget{})
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

func runRowB(ctx context.Context, b *bench, clients int) (rowResult, error) {
	addr, err := freeAddr()
	if err != nil {
		return rowResult{}, err
	}
	p, err := b.startProc("receiver-b", exec.CommandContext(ctx, b.self, "-role", roleReceiverB, "-listen", addr))
	if err != nil {
		return rowResult{}, err
	}
	defer p.stop()
	return b.measureHTTP(ctx, p, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/", clients, profileTarget{})
}

func runRowM(ctx context.Context, b *bench, clients int) (rowResult, error) {
	return b.runDesignMinimum(ctx, clients, "M", roleReceiverM)
}

func runRowMA(ctx context.Context, b *bench, clients int) (rowResult, error) {
	return b.runDesignMinimum(ctx, clients, "MA", roleReceiverMA)
}

func (b *bench) runDesignMinimum(ctx context.Context, clients int, row, role string) (rowResult, error) {
	b.resetNATS(ctx)
	addr, err := freeAddr()
	if err != nil {
		return rowResult{}, err
	}
	args := []string{"-role", role, "-listen", addr, "-nats", b.natsURL}
	var profile profileTarget
	if b.profiled(clients) {
		pprof, err := freeAddr()
		if err != nil {
			return rowResult{}, err
		}
		args = append(args, "-pprof", pprof)
		profile = profileTarget{"http://" + pprof + "/debug/pprof/profile", b.opts.cpuProfile + "." + row}
	}
	p, err := b.startProc(role, exec.CommandContext(ctx, b.self, args...))
	if err != nil {
		return rowResult{}, err
	}
	defer p.stop()
	return b.measureHTTP(ctx, p, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/", clients, profile)
}

func runRowC(ctx context.Context, b *bench, clients int) (rowResult, error) {
	b.resetNATS(ctx)
	return b.runForwarder(ctx, clients, b.natsURL)
}

func runRowCE(ctx context.Context, b *bench, clients int) (rowResult, error) {
	return b.runForwarder(ctx, clients, "")
}

// runForwarder measures the real binary with its default configuration; with
// natsURL empty it runs its embedded nats-server, whose CPU is then part of
// the forwarder's. With -cpuprofile, row C at the most clients is profiled.
func (b *bench) runForwarder(ctx context.Context, clients int, natsURL string) (rowResult, error) {
	web, err := freeAddr()
	if err != nil {
		return rowResult{}, err
	}
	admin, err := freeAddr()
	if err != nil {
		return rowResult{}, err
	}
	cmd := exec.CommandContext(ctx, b.forwarder)
	cmd.Env = append(os.Environ(),
		"ZAUTIC_WEBHOOK_SECRET="+benchSecret,
		"FORWARDER_HTTP_ADDR="+web,
		"FORWARDER_ADMIN_ADDR="+admin,
		"FORWARDER_NATS_URL="+natsURL,
		"FORWARDER_NATS_EMBEDDED_LISTEN=127.0.0.1:0",
		"FORWARDER_NATS_EMBEDDED_STORE_DIR="+filepath.Join(b.tmp, fmt.Sprintf("embedded-%d-%s", clients, b.sync)),
		"FORWARDER_NATS_EMBEDDED_SYNC_INTERVAL="+b.sync,
		"FORWARDER_ADMIN_PPROF=true",
		// As the Kubernetes manifest runs it (deploy/kubernetes/base), which
		// also raises the garbage collector's target in row C (gc.go; with
		// the embedded server of row CE it stays Go's default).
		"GOMEMLIMIT=200MiB",
	)
	p, err := b.startProc("zautic-forwarder", cmd)
	if err != nil {
		return rowResult{}, err
	}
	defer p.stop()
	if err := waitHTTP(ctx, "http://"+admin+"/readyz", http.StatusOK); err != nil {
		return rowResult{}, fmt.Errorf("%w\n%s", err, p.output())
	}
	var profile profileTarget
	if natsURL != "" && b.profiled(clients) {
		profile = profileTarget{"http://" + admin + "/debug/pprof/profile", b.opts.cpuProfile}
	}
	return b.measureHTTP(ctx, p, "http://"+web+"/webhooks/zautic", "", clients, profile)
}

// profiled reports whether -cpuprofile asks for a profile of this cell:
// the most clients in the first sync mode.
func (b *bench) profiled(clients int) bool {
	return b.opts.cpuProfile != "" && clients == slices.Max(b.opts.clients) && b.sync == b.opts.syncModes[0]
}

// profileTarget is where a CPU profile comes from (a pprof URL) and goes;
// the zero value asks for none.
type profileTarget struct{ url, file string }

// fetchProfile saves a CPU profile of the measured run.
func (b *bench) fetchProfile(ctx context.Context, target profileTarget) error {
	seconds := max(1, int(b.opts.duration/time.Second))
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

func runRowD(ctx context.Context, b *bench, clients int) (rowResult, error) {
	if b.nodeDir == "" {
		return rowResult{skipped: b.nodeNote}, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return rowResult{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "node", "server.mjs")
	cmd.Dir = b.nodeDir
	cmd.Env = append(os.Environ(), "PORT="+port, "ZAUTIC_WEBHOOK_SECRET="+benchSecret)
	p, err := b.startProc("node", cmd)
	if err != nil {
		return rowResult{}, err
	}
	defer p.stop()
	return b.measureHTTP(ctx, p, "http://"+addr+"/webhooks/zautic", "http://"+addr+"/", clients, profileTarget{})
}

// measureHTTP waits for the receiver and drives it with the load generator.
func (b *bench) measureHTTP(ctx context.Context, p *proc, url, probe string, clients int, profile profileTarget) (rowResult, error) {
	if probe != "" {
		if err := waitHTTP(ctx, probe, 0); err != nil {
			return rowResult{}, fmt.Errorf("%w\n%s", err, p.output())
		}
	}
	res, err := b.measure(ctx, func(d time.Duration) (loadResult, error) {
		return sendLoad(ctx, b.forwarder, url, clients, d)
	}, p.pid(), profile)
	if err != nil {
		return rowResult{}, fmt.Errorf("%w\n%s", err, p.output())
	}
	res.receiverName = p.name
	return res, nil
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
