package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zautic/zautic-forwarder/simulator"
	"github.com/zautic/zautic-forwarder/zautic"
)

// signFlags are the options of "sign".
type signFlags struct {
	secret     string
	timestamp  int64
	curl       string
	deliveryID string
}

func newSignCommand(stdin io.Reader, stdout, _ io.Writer) *cobra.Command {
	var f signFlags
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Print the X-Zautic-Signature of the body on standard input (or a ready curl command)",
		Long: `sign reads a raw body from standard input and prints the X-Zautic-Signature
value Zautic would send with it, t=<unix>,v1=<hex>, computed by the same code
the forwarder verifies with. With --curl URL it prints a curl command that
posts the body with every Zautic header instead.`,
		Example: `  zautic-forwarder sign --secret dev-secret < event.json
  zautic-forwarder sign --secret dev-secret --curl http://localhost:8080/webhooks/zautic < event.json | sh`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runSign(f, stdin, stdout)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.secret, "secret", "", "webhook secret (default $"+strings.Join(secretEnvVars(), ", else $")+")")
	fs.Int64Var(&f.timestamp, "timestamp", 0, "signing time t in unix seconds (0: now)")
	fs.StringVar(&f.curl, "curl", "", "print a curl command that posts the body to this URL, instead of the signature alone")
	fs.StringVar(&f.deliveryID, "delivery-id", "", "X-Zautic-Delivery-Id of the curl command (default: a new random id)")
	return cmd
}

func runSign(f signFlags, stdin io.Reader, stdout io.Writer) error {
	if f.timestamp < 0 {
		return fmt.Errorf("--timestamp must be unix seconds, got %d", f.timestamp)
	}
	secret, err := resolveSecret(f.secret)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("read standard input: %w", err)
	}
	if len(body) == 0 {
		return errors.New("empty body: pipe the exact bytes to sign into standard input")
	}
	t := f.timestamp
	if t == 0 {
		t = time.Now().Unix()
	}
	signature := zautic.Sign(secret, t, body)
	if f.curl == "" {
		_, err = fmt.Fprintln(stdout, signature)
		return err
	}
	if f.deliveryID == "" {
		f.deliveryID = simulator.NewGenerator().DeliveryID(0)
	}
	_, err = io.WriteString(stdout, curlCommand(f.curl, body, t, signature, f.deliveryID))
	return err
}

// curlCommand is a shell command that posts body exactly as signed:
// --data-raw sends a literal argument byte for byte, newlines included, and
// unlike --data-binary never reads a file for a body that starts with @.
func curlCommand(url string, body []byte, t int64, signature, deliveryID string) string {
	var ev struct {
		Type any `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	headers := []string{"Content-Type: application/json"}
	if typ, ok := ev.Type.(string); ok && typ != "" {
		headers = append(headers, zautic.RequestEventHeader+": "+typ)
	}
	headers = append(headers,
		zautic.RequestDeliveryIDHeader+": "+deliveryID,
		zautic.RequestTimestampHeader+": "+strconv.FormatInt(t, 10),
		zautic.RequestSignatureHeader+": "+signature)
	var b strings.Builder
	b.WriteString("curl -sS -X POST " + shellQuote(url))
	for _, h := range headers {
		b.WriteString(" \\\n  -H " + shellQuote(h))
	}
	b.WriteString(" \\\n  --data-raw " + shellQuote(string(body)) + "\n")
	return b.String()
}

// shellQuote quotes s for a POSIX shell: single quotes keep every byte but
// the single quote itself, which is closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
