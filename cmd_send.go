package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zautic/zautic-forwarder/simulator"
	"github.com/zautic/zautic-forwarder/zautic"
)

// sendFlags are the options of "send".
type sendFlags struct {
	url         string
	secret      string
	types       []string
	count       int
	concurrency int
	rate        float64
	duration    time.Duration
	duplicates  float64
	file        string
	retry       bool
	maxRetries  int
	backoff     time.Duration
	timeout     time.Duration
	json        bool
}

func newSendCommand(stdin io.Reader, stdout, _ io.Writer) *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send signed sample Zautic webhooks: one event, every type, or a load run",
		Long: `send plays Zautic: it builds a realistic event of each requested type, signs it
with the webhook secret and POSTs it with Zautic's headers. With one request it
prints the answer; with several, a summary (sent, by status, events/s, latency
percentiles). It exits 0 only when every request finally got a 2xx.`,
		Example: `  zautic-forwarder send --secret dev-secret
  zautic-forwarder send --secret dev-secret --type all
  zautic-forwarder send --secret dev-secret --count 20000 --concurrency 64 --duplicates 0.1
  zautic-forwarder send --secret dev-secret --file event.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSend(cmd.Context(), cmd, f, stdin, stdout)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.url, "url", simulator.DefaultURL, "webhook URL to POST to")
	fs.StringVar(&f.secret, "secret", "", "webhook secret (default $"+strings.Join(secretEnvVars(), ", else $")+")")
	fs.StringSliceVar(&f.types, "type", []string{simulator.DefaultType}, "event type; repeat or comma-separate for several (sent round-robin); all for the 23 documented types")
	fs.IntVar(&f.count, "count", 0, "requests in total, duplicates included (0: one per type, or unlimited with --duration)")
	fs.IntVar(&f.concurrency, "concurrency", 1, "requests in flight at once")
	fs.Float64Var(&f.rate, "rate", 0, "requests started per second at most (0: unlimited)")
	fs.DurationVar(&f.duration, "duration", 0, "stop starting requests after this long (0: no limit)")
	fs.Float64Var(&f.duplicates, "duplicates", 0, "fraction of requests, in [0, 1), that re-send an earlier delivery id")
	fs.StringVar(&f.file, "file", "", "send this JSON body instead of built ones (- for standard input)")
	fs.BoolVar(&f.retry, "retry", false, "retry like Zautic: the same delivery id again on 5xx, 429, timeouts and connection errors")
	fs.IntVar(&f.maxRetries, "max-retries", 5, "retries per request with --retry")
	fs.DurationVar(&f.backoff, "retry-backoff", simulator.DefaultBackoff, "wait before the first retry; doubles each time (with jitter), a longer Retry-After wins, capped at 10s")
	fs.DurationVar(&f.timeout, "timeout", simulator.DefaultTimeout, "timeout of each attempt")
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON")
	return cmd
}

func runSend(ctx context.Context, cmd *cobra.Command, f sendFlags, stdin io.Reader, stdout io.Writer) error {
	opts, err := sendOptions(cmd, f, stdin)
	if err != nil {
		return err
	}
	single := f.count == 1 || f.count == 0 && f.duration == 0 && (opts.Body != nil || len(opts.Types) == 1)
	opts.Capture = single
	runner, err := simulator.NewRunner(opts)
	if err != nil {
		return err
	}
	summary, runErr := runner.Run(ctx)
	if err := printSend(stdout, summary, single, f.json); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("interrupted after %d requests: %w", summary.Sent, runErr)
	}
	return sendError(summary, f.url)
}

// sendOptions turns the flags into runner options; it checks what the
// runner cannot know, such as where the secret and the body come from.
func sendOptions(cmd *cobra.Command, f sendFlags, stdin io.Reader) (simulator.Options, error) {
	if f.concurrency < 1 {
		return simulator.Options{}, fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)
	}
	if f.file != "" && cmd.Flags().Changed("type") {
		return simulator.Options{}, errors.New("--file and --type exclude each other: the body's own type is sent")
	}
	secret, err := resolveSecret(f.secret)
	if err != nil {
		return simulator.Options{}, err
	}
	types, err := simulator.ExpandTypes(f.types)
	if err != nil {
		return simulator.Options{}, fmt.Errorf("--type: %w", err)
	}
	opts := simulator.Options{
		URL: f.url, Secret: secret, Types: types, Count: f.count, Concurrency: f.concurrency,
		Rate: f.rate, Duration: f.duration, Duplicates: f.duplicates, Timeout: f.timeout,
	}
	if f.retry {
		opts.Retry = simulator.RetryPolicy{MaxRetries: f.maxRetries, Backoff: f.backoff}
		if f.maxRetries < 0 {
			return opts, fmt.Errorf("--max-retries must not be negative, got %d", f.maxRetries)
		}
	}
	if f.file != "" {
		if opts.Body, err = readBody(f.file, stdin); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// resolveSecret prefers the flag, then the environment as the server reads
// it. It never appears in help output, which is why it is no flag default.
func resolveSecret(flag string) ([]byte, error) {
	if flag != "" {
		return []byte(flag), nil
	}
	for _, name := range secretEnvVars() {
		if s := os.Getenv(name); s != "" {
			return []byte(s), nil
		}
	}
	return nil, errors.New("no webhook secret: pass --secret or set " + zautic.SecretEnv)
}

// readBody reads --file, or standard input for "-".
func readBody(path string, stdin io.Reader) ([]byte, error) {
	var body []byte
	var err error
	if path == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--file %s: %w", path, err)
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("--file %s: empty body", path)
	}
	return body, nil
}

func printSend(w io.Writer, s simulator.Summary, single, asJSON bool) error {
	switch {
	case asJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case single && len(s.Responses) == 1:
		return printResponse(w, s.Responses[0])
	default:
		return s.WriteText(w)
	}
}

// printResponse shows the one request and its answer, as curl -i would.
func printResponse(w io.Writer, r simulator.Response) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %s %s (delivery %s", orDash(r.EventType), orDash(r.EventID), r.DeliveryID)
	if r.Attempts > 1 {
		fmt.Fprintf(&b, ", %d attempts", r.Attempts)
	}
	b.WriteString(")\n")
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	} else {
		fmt.Fprintf(&b, "%d %s\n%s\n", r.Status, http.StatusText(r.Status), strings.TrimSpace(r.Body))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sendError is the command's error once the summary is printed: nil only
// when every request got a 2xx.
func sendError(s simulator.Summary, url string) error {
	err := s.Err()
	if err == nil {
		return nil
	}
	if s.OK == 0 && s.ByStatus[simulator.StatusError] == s.Sent {
		return fmt.Errorf("cannot reach %s (is the forwarder running?): %w", url, err)
	}
	return err
}
