// Command bench measures zautic-forwarder side by side with its limits and
// with Zautic's reference receiver, in one run on one machine, and prints a
// Markdown table with ratios. See BENCHMARKS.md.
//
//	go run ./test/bench            # full run: 10 s per row, in 4 rounds, after a warm-up
//	go run ./test/bench -smoke     # a second per row: proves it works (CI)
//	go run ./test/bench -rows C -clients 64 -cpuprofile cpu.out
//	go run ./test/bench -rows M,C -sync always      # one sync mode only
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchSecret signs every request of the run.
const benchSecret = "bench-secret"

type options struct {
	duration   time.Duration // measured per row, in rounds slices
	warmup     time.Duration
	rounds     int
	clients    []int
	rows       []string // the rows to run, in the order they run: -rows's
	syncModes  []string // sync_interval of the nats-servers: "always" or a duration
	cpuProfile string   // where to save a CPU profile of row C at the most clients; M's and MA's go beside it
}

func main() {
	role := flag.String("role", "", "internal: run as one of the benchmark's processes")
	listen := flag.String("listen", "127.0.0.1:0", "internal: the role's listen address")
	natsURL := flag.String("nats", "", "internal: NATS URL of receiver-m")
	storeDir := flag.String("store", "", "internal: store dir of nats-server")
	pprofAddr := flag.String("pprof", "", "internal: serve net/http/pprof on this address")
	syncModes := flag.String("sync", "always,2m", "sync_interval of the nats-server and of the embedded one, comma-separated: always (fsync before the PubAck) or a duration (2m is nats-server's default); rows A, M, MA, C and CE run once per mode")
	smoke := flag.Bool("smoke", false, "a second per row, short warm-up: proves the benchmark works")
	duration := flag.Duration("duration", 10*time.Second, "measured time per row, split among the rounds")
	rounds := flag.Int("rounds", 4, "measure each cell's rows this many times in turn, in alternating order (forward, backward, ...), each for duration/rounds: the rows of a cell share the same minutes of the machine")
	warmup := flag.Duration("warmup", 3*time.Second, "unmeasured load before each row")
	clients := flag.String("clients", "16,64", "concurrent clients, comma-separated")
	rows := flag.String("rows", "A,B,M,MA,C,CE,D", "rows to run, in this order (alternate it between runs, so that no row always runs first or last)")
	cpuProfile := flag.String("cpuprofile", "", "save a CPU profile of the forwarder in row C at the most clients, in the first sync mode, to this file, and rows M's and MA's beside it (file.M, file.MA)")
	flag.Parse()

	if *role != "" {
		if err := runRole(*role, *listen, *natsURL, *storeDir, *syncModes, *pprofAddr); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *role, err)
			os.Exit(1)
		}
		return
	}
	opts := options{duration: *duration, warmup: *warmup, rounds: *rounds, cpuProfile: *cpuProfile}
	if opts.rounds < 1 {
		fmt.Fprintf(os.Stderr, "bench: -rounds: %d is not a positive number\n", opts.rounds)
		os.Exit(2)
	}
	if *smoke {
		opts.duration, opts.warmup = time.Second, 200*time.Millisecond
	}
	for _, c := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -clients: %q is not a positive number\n", c)
			os.Exit(2)
		}
		opts.clients = append(opts.clients, n)
	}
	for _, r := range strings.Split(*rows, ",") {
		r = strings.TrimSpace(r)
		if _, ok := rowByID(r); !ok || slices.Contains(opts.rows, r) {
			fmt.Fprintf(os.Stderr, "bench: -rows: %q is not a row, or is named twice\n", r)
			os.Exit(2)
		}
		opts.rows = append(opts.rows, r)
	}
	for _, m := range strings.Split(*syncModes, ",") {
		m = strings.TrimSpace(m)
		if _, _, err := parseSyncMode(m); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -sync: %v\n", err)
			os.Exit(2)
		}
		opts.syncModes = append(opts.syncModes, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := runBenchmark(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// buildForwarder builds the binary under test from the module root.
func buildForwarder(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "zautic-forwarder")
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build zautic-forwarder: %w", err)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the module")
	}
	return filepath.Dir(gomod), nil
}
