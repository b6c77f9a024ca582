package main

import (
	"errors"
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

// errNotReplayed is returned when some entries of a replay were not
// settled, so that scripts see it in the exit code.
var errNotReplayed = errors.New("not every entry was replayed")

func newQuarantineCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List and replay the deliveries the forwarder rejected and kept",
		Long: `quarantine talks to a running forwarder's admin API. Deliveries rejected for
signature_mismatch or timestamp_out_of_tolerance are kept in the quarantine
stream; replay runs them through the normal request path with the secrets the
forwarder accepts now.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newQuarantineListCommand(stdout), newQuarantineReplayCommand(stdout))
	return cmd
}

func newQuarantineListCommand(stdout io.Writer) *cobra.Command {
	var (
		client        adminClient
		reason, since string
		limit         int
	)
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List quarantined deliveries, oldest first",
		Example: "  zautic-forwarder quarantine list --reason signature_mismatch --since 1h",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"reason": reason, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", strconv.Itoa(limit))
			return show(cmd.Context(), &client, stdout, "/quarantine?"+q.Encode(), printEntries)
		},
	}
	client.flags(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "only entries kept for this reason (signature_mismatch, timestamp_out_of_tolerance)")
	cmd.Flags().StringVar(&since, "since", "", "only entries received since: a duration such as 1h, or an RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", adminapi.DefaultListLimit, fmt.Sprintf("at most this many entries (up to %d)", adminapi.MaxListLimit))
	return cmd
}

func newQuarantineReplayCommand(stdout io.Writer) *cobra.Command {
	var (
		client adminClient
		req    adminapi.ReplayRequest
		seqs   []uint
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay quarantined deliveries through the normal request path",
		Long: `replay verifies each selected entry against the secrets the forwarder accepts
now, with the tolerance measured when the request arrived, then forwards it as a
new delivery would be: published, duplicate, ignored, rejected (the entry stays)
or unavailable (the entry stays; retry later). It exits non-zero when an entry
was not settled.`,
		Example: `  zautic-forwarder quarantine replay --all --reason signature_mismatch
  zautic-forwarder quarantine replay --seq 12 --seq 13 --ignore-tolerance --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, seq := range seqs {
				req.Seqs = append(req.Seqs, uint64(seq))
			}
			answer, raw, err := client.client().Replay(cmd.Context(), req)
			if err != nil {
				return client.explain(err)
			}
			if client.json {
				err = printIndented(stdout, raw)
			} else {
				err = printResults(stdout, answer)
			}
			if err != nil {
				return err
			}
			return unsettled(answer)
		},
	}
	client.flags(cmd)
	fs := cmd.Flags()
	fs.UintSliceVar(&seqs, "seq", nil, "replay the entry with this sequence; repeat for several")
	fs.BoolVar(&req.All, "all", false, "replay every entry (of --reason when given)")
	fs.StringVar(&req.Reason, "reason", "", "with --all: only entries kept for this reason")
	fs.BoolVar(&req.IgnoreTolerance, "ignore-tolerance", false, "skip the timestamp check (needed for timestamp_out_of_tolerance entries)")
	fs.BoolVar(&req.DryRun, "dry-run", false, "look everything up, change nothing")
	return cmd
}

func printEntries(w io.Writer, answer adminapi.ListAnswer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tREASON\tRECEIVED AT\tDELIVERY ID*\tEVENT TYPE*\tSIZE")
	for _, e := range answer.Entries {
		// Unsigned bytes, escaped: nothing may move the terminal's cursor.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", e.Seq, plain(e.Reason), e.ReceivedAt.Format(time.RFC3339), plain(e.DeliveryID), plain(e.EventType), e.Size)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d entries; * from unsigned request headers, not verified until replayed\n", len(answer.Entries))
	return err
}

func printResults(w io.Writer, answer adminapi.ReplayAnswer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOUTCOME\tDELIVERY ID\tEVENT ID\tSUBJECT\tREASON")
	tooOld := 0
	for _, r := range answer.Results {
		why := r.Reason
		if r.Error != "" {
			why = strings.TrimSpace(why + " " + r.Error)
		}
		if r.Reason == reasonTimestampOutOfTolerance {
			tooOld++
		}
		// The ids come from the unsigned request when the entry was not
		// verified: escaped, as every value printed.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, plain(r.Outcome), plain(r.DeliveryID), plain(r.EventID), plain(r.Subject), plain(why))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	note := ""
	if answer.DryRun {
		note = " (dry run: nothing changed)"
	}
	if answer.More {
		note += "; more entries remain, run again"
	}
	if _, err := fmt.Fprintf(w, "%d entries%s\n", len(answer.Results), note); err != nil {
		return err
	}
	if tooOld > 0 {
		_, err := fmt.Fprintf(w, "%d rejected for their timestamp (%s): if a clock was wrong, not the request, "+
			"replay them again with --ignore-tolerance\n", tooOld, reasonTimestampOutOfTolerance)
		return err
	}
	return nil
}

// reasonTimestampOutOfTolerance is the reason code of a delivery whose
// signed timestamp was outside webhook.tolerance.
const reasonTimestampOutOfTolerance = "timestamp_out_of_tolerance"

// unsettled returns errNotReplayed, with the count, when an entry was
// rejected, unavailable or not found.
func unsettled(answer adminapi.ReplayAnswer) error {
	if n := answer.Unsettled(); n > 0 {
		return fmt.Errorf("%w: %d of %d", errNotReplayed, n, len(answer.Results))
	}
	return nil
}
