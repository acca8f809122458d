package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skuflow/skuflow/internal/audit"
	"github.com/skuflow/skuflow/inventory"
)

// errDiverged makes the command exit 1: the audit ran and found drift.
var errDiverged = errors.New("audit found divergences or invariant violations")

func newAuditCmd() *cobra.Command {
	var cf clusterFlags
	var af answerFlags
	var o audit.Options
	var asJSON, noProgress bool
	var skew time.Duration
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the tables and the availability topic against a fresh fold of the event log",
		Long: `Read every input topic from the start of retention, fold it through the pure
rules as the processors do, and diff the result against the stock, orders and
policies tables (from their changelogs) and the latest availability record per
SKU; then scan invariants (no negative counts, no hold past its expiry, no stale
merchant counted, no reserved order with a released line, sales caps respected).

Exit status: 0 clean, 1 divergence or violation found, 2 the audit could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := cf.options("skuflow-audit")
			if err != nil {
				return exit2(cmd, err)
			}
			o.Kafka, o.Base, o.MaxEventSkew = k, af.config(), skewOption(skew)
			var bar *progressbar.ProgressBar
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && !asJSON && !noProgress && term.IsTerminal(int(f.Fd())) {
				bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("auditing"),
					progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
				o.Progress = func(done, total int64) {
					bar.ChangeMax64(max(total, 1))
					_ = bar.Set64(done)
				}
			}
			rep, err := audit.Run(cmd.Context(), o)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return exit2(cmd, err)
			}
			if asJSON {
				err = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				err = rep.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return exit2(cmd, err)
			}
			if !rep.Clean() {
				return fmt.Errorf("%w: %d divergences, %d violations", errDiverged, len(rep.Divergences), len(rep.Violations))
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitCodeError{code: 2, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	cf.register(cmd)
	af.register(cmd)
	cmd.Flags().StringSliceVar(&o.SKUs, "sku", nil, "audit only these SKUs (and orders with a line of one); repeat or comma-separate")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar even on a terminal")
	cmd.Flags().DurationVar(&o.Grace, "grace", audit.DefaultGrace, "slack past a due time (expiry, next_change_at) for the reconciler to act; at least --reconcile-interval plus a scan")
	cmd.Flags().DurationVar(&skew, "max-event-skew", inventory.DefaultMaxEventSkew,
		"the processors' --max-event-skew: the fold skips the events and ticks they dead-letter for it (0: no limit)")
	cmd.Flags().DurationVar(&o.Settle, "settle", audit.DefaultSettle, "how long to wait for the groups to consume up to the audited offsets; keys still behind are skipped")
	return cmd
}

// exit2 is an error that kept the audit from running: the process exits 2,
// as 1 means the audit found drift.
func exit2(_ *cobra.Command, err error) error {
	return exitCodeError{code: 2, err: fmt.Errorf("audit: %w", err)}
}
