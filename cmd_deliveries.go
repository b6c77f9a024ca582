package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zautic/zautic-forwarder/forwarder"
)

func init() {
	extraCommands = append(extraCommands, newDeliveriesCommand)
}

// adminRequestTimeout bounds one call of the admin API; a lookup scans at
// most 100,000 stream headers.
const adminRequestTimeout = 30 * time.Second

// adminTokenEnv is where the commands find admin.token by default.
const adminTokenEnv = forwarder.EnvPrefix + "_ADMIN_TOKEN"

// deliveriesFlags are the options shared by "deliveries get" and "list".
type deliveriesFlags struct {
	adminURL string
	token    string
	json     bool
}

func newDeliveriesCommand(_ io.Reader, stdout, _ io.Writer) *cobra.Command {
	var f deliveriesFlags
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "Look deliveries up through a running forwarder's admin API",
		Long: `deliveries asks a running forwarder's admin listener what became of a
delivery: "get" looks one up by delivery id or event id (published, quarantined
or expired), "list" shows the most recent published events, newest first.`,
		Example: `  zautic-forwarder deliveries get dlv_7f3a9c1e
  zautic-forwarder deliveries list --type message.failed --limit 20
  zautic-forwarder deliveries get evt_2b81 --json --admin-url http://forwarder.zautic:9090`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.adminURL, "admin-url", "http://localhost:9090", "base URL of the forwarder's admin listener")
	pf.StringVar(&f.token, "token", "", "admin.token, when the forwarder requires one (default $"+adminTokenEnv+")")
	pf.BoolVar(&f.json, "json", false, "print the API's JSON answer")
	cmd.AddCommand(newDeliveriesGetCommand(&f, stdout), newDeliveriesListCommand(&f, stdout))
	return cmd
}

func newDeliveriesGetCommand(f *deliveriesFlags, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show what became of a delivery id or an event id; exit 1 when unknown",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/deliveries/" + strings.ReplaceAll(url.PathEscape(args[0]), ".", "%2E")
			raw, err := f.call(cmd.Context(), path)
			if err != nil {
				return err
			}
			if f.json {
				return printIndented(stdout, raw)
			}
			return printLookup(stdout, raw)
		},
	}
}

func newDeliveriesListCommand(f *deliveriesFlags, stdout io.Writer) *cobra.Command {
	var (
		eventType string
		limit     int
		beforeSeq uint64
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the most recent published deliveries, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if eventType != "" {
				q.Set("type", eventType)
			}
			if beforeSeq > 0 {
				q.Set("before_seq", strconv.FormatUint(beforeSeq, 10))
			}
			raw, err := f.call(cmd.Context(), "/deliveries?"+q.Encode())
			if err != nil {
				return err
			}
			if f.json {
				return printIndented(stdout, raw)
			}
			return printList(stdout, raw)
		},
	}
	cmd.Flags().StringVar(&eventType, "type", "", "only this event type (a page of a rare type may be short)")
	cmd.Flags().IntVar(&limit, "limit", forwarder.DefaultDeliveryPage, "deliveries per page, at most "+strconv.Itoa(forwarder.MaxDeliveryPage))
	cmd.Flags().Uint64Var(&beforeSeq, "before-seq", 0, "start below this stream sequence (the next_before_seq of the previous page)")
	return cmd
}

// call GETs path from the admin API and returns the JSON of a 200; any
// other answer is an error carrying the API's reason.
func (f *deliveriesFlags) call(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, adminRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.adminURL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--admin-url %q: %w", f.adminURL, err)
	}
	token := f.token
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var answer struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &answer) != nil || answer.Error == "" {
			answer.Error = strings.TrimSpace(string(raw))
		}
		return nil, fmt.Errorf("admin API answered %d: %s", resp.StatusCode, answer.Error)
	}
	return raw, nil
}

func printIndented(w io.Writer, raw []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return fmt.Errorf("admin API answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(w)
	return err
}

// lookupFields are printed in this order; the others follow.
var lookupFields = []string{"status", "delivery_id", "event_id", "type", "event_type", "subject", "stream", "seq",
	"published_at", "size", "reason", "received_at", "quarantine_seq", "dedup_key", "marked_at", "detail"}

// printLookup prints a lookup answer as "field  value" lines, then its
// quarantine entries, if any, as a table.
func printLookup(w io.Writer, raw []byte) error {
	var answer map[string]any
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("admin API answer is not JSON: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range lookupFields {
		if v, ok := answer[k]; ok && v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, plain(v))
		}
	}
	entries, _ := answer["entries"].([]any)
	if more, ok := answer["quarantine"].([]any); ok {
		entries = more
	}
	if len(entries) > 0 {
		fmt.Fprintln(tw, "\nQUARANTINE SEQ\tRECEIVED\tREASON\tDELIVERY ID\tEVENT ID")
		for _, e := range entries {
			q, _ := e.(map[string]any)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", plain(q["quarantine_seq"]), plain(q["received_at"]), plain(q["reason"]), plain(q["delivery_id"]), plain(q["event_id"]))
		}
	}
	return tw.Flush()
}

func printList(w io.Writer, raw []byte) error {
	var page forwarder.DeliveryPage
	if err := json.Unmarshal(raw, &page); err != nil {
		return fmt.Errorf("admin API answer is not a page of deliveries: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tPUBLISHED\tTYPE\tDELIVERY ID\tEVENT ID\tSIZE")
	for _, d := range page.Deliveries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", d.Seq, d.PublishedAt.Format(time.RFC3339), plain(d.Type), plain(d.DeliveryID), plain(d.EventID), d.Size)
	}
	if page.NextBeforeSeq > 0 {
		fmt.Fprintf(tw, "\nolder: --before-seq %d\n", page.NextBeforeSeq)
	}
	return tw.Flush()
}

// plain renders a JSON value for the table: numbers without exponent, and
// nothing that could move the terminal's cursor.
func plain(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		quoted := strconv.Quote(v)
		return quoted[1 : len(quoted)-1]
	default:
		return fmt.Sprint(v)
	}
}
