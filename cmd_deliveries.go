package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/zautic/zautic-forwarder/forwarder/adminapi"
)

func newDeliveriesCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "Look deliveries up through a running forwarder's admin API",
		Long: `deliveries asks a running forwarder's admin listener what became of a
delivery: "get" looks one up by delivery id or event id (published, quarantined
or expired), "list" shows the most recent published events, newest first.`,
		Example: `  zautic-forwarder deliveries get dlv_7f3a9c1e
  zautic-forwarder deliveries list --type message.failed --limit 20
  zautic-forwarder deliveries get evt_2b81 --json --admin-url http://localhost:9090 --token "$FORWARDER_ADMIN_TOKEN"`,
	}
	cmd.AddCommand(newDeliveriesGetCommand(stdout), newDeliveriesListCommand(stdout))
	return cmd
}

func newDeliveriesGetCommand(stdout io.Writer) *cobra.Command {
	var client adminClient
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show what became of a delivery id or an event id; exit 1 when unknown",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Dots too: an id of "." or ".." must stay an id, not move up the path.
			path := "/deliveries/" + strings.ReplaceAll(url.PathEscape(args[0]), ".", "%2E")
			return show(cmd.Context(), &client, stdout, path, printLookup)
		},
	}
	client.flags(cmd)
	return cmd
}

func newDeliveriesListCommand(stdout io.Writer) *cobra.Command {
	var (
		client    adminClient
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
			return show(cmd.Context(), &client, stdout, "/deliveries?"+q.Encode(), printList)
		},
	}
	client.flags(cmd)
	cmd.Flags().StringVar(&eventType, "type", "", "only this event type (a page of a rare type may be short)")
	cmd.Flags().IntVar(&limit, "limit", adminapi.DefaultDeliveryPage, "deliveries per page, at most "+strconv.Itoa(adminapi.MaxDeliveryPage))
	cmd.Flags().Uint64Var(&beforeSeq, "before-seq", 0, "start below this stream sequence (the next_before_seq of the previous page)")
	return cmd
}

// lookupFields are printed in this order; the others follow.
var lookupFields = []string{"status", "delivery_id", "event_id", "type", "event_type", "subject", "stream", "seq",
	"published_at", "size", "reason", "received_at", "quarantine_seq", "dedup_key", "marked_at", "detail"}

// printLookup prints a lookup answer as "field  value" lines, then its
// quarantine entries, if any, as a table.
func printLookup(w io.Writer, answer map[string]any) error {
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

func printList(w io.Writer, page adminapi.DeliveryPage) error {
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
