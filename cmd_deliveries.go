package main

import (
	"fmt"
	"io"
	"net/url"
	"slices"
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
	"published_at", "size", "reason", "received_at", "signed_at", "quarantine_seq", "dedup_key", "marked_at", "detail"}

// unverifiedNote explains the * of the fields a lookup answer names as
// unsigned: a quarantined request's, which nothing has verified.
const unverifiedNote = "* from the quarantined request's unsigned headers or body, not verified until replayed"

// printLookup prints a lookup answer as "field  value" lines, then its
// quarantine entries, if any, as a table. The fields the answer names in
// "unsigned", and the table's columns its entries name so, carry a * and
// a note below, as quarantine list marks them.
func printLookup(w io.Writer, answer map[string]any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	marked := false
	mark := func(record any, field, title string) string {
		fields, _ := record.(map[string]any)
		list, _ := fields["unsigned"].([]any)
		if slices.Contains(list, any(field)) {
			marked = true
			return title + "*"
		}
		return title
	}
	for _, k := range lookupFields {
		if v, ok := answer[k]; ok && v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", mark(answer, k, k), plain(v))
		}
	}
	entries, _ := answer["entries"].([]any)
	if more, ok := answer["quarantine"].([]any); ok {
		entries = more
	}
	if len(entries) > 0 {
		fmt.Fprintf(tw, "\nQUARANTINE SEQ\tRECEIVED\tREASON\t%s\t%s\n", mark(entries[0], "delivery_id", "DELIVERY ID"), mark(entries[0], "event_id", "EVENT ID"))
		for _, e := range entries {
			q, _ := e.(map[string]any)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", plain(q["quarantine_seq"]), plain(q["received_at"]), plain(q["reason"]), plain(q["delivery_id"]), plain(q["event_id"]))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if marked {
		_, err := fmt.Fprintln(w, unverifiedNote)
		return err
	}
	return nil
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
