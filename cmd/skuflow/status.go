package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skuflow/skuflow/internal/ops"
)

func newStatusCmd() *cobra.Command {
	var asJSON, watch bool
	var interval time.Duration
	var cf *clusterFlags
	cmd := &cobra.Command{
		Use:   "status --brokers host:port[,...] [--json] [--watch [--interval 2s]]",
		Short: "Show every processor group's members, partitions, offsets and lag, table heads and dead letters",
		Long: `For each skuflow processor group: its state, its members and the partitions
each owns, and per input partition the committed offset, head and lag; the
changelog head of each table; and the dead letters counted by group, input
topic and reason.

--json prints one JSON object (field names are stable, see internal/ops);
with --watch, one object per line every --interval until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch && interval <= 0 {
				return fmt.Errorf("--interval %s: give a positive interval", interval)
			}
			k, err := cf.options("skuflow-status")
			if err != nil {
				return err
			}
			m, err := ops.NewMonitor(ops.StatusOptions{Kafka: k})
			if err != nil {
				return err
			}
			defer m.Close()
			out := cmd.OutOrStdout()
			if !watch {
				r, err := m.Report(cmd.Context())
				if err != nil {
					return err
				}
				return writeStatus(out, r, asJSON)
			}
			return watchStatus(cmd.Context(), m, out, cmd.ErrOrStderr(), asJSON, interval)
		},
	}
	cf = opsCluster(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts instead of tables")
	cmd.Flags().BoolVar(&watch, "watch", false, "refresh every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh period of --watch")
	return cmd
}

func writeStatus(w io.Writer, r ops.Report, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	return r.WriteText(w)
}

// watchStatus reports every interval until ctx ends; a failed report is
// printed and the next one tried.
func watchStatus(ctx context.Context, m *ops.Monitor, out, errOut io.Writer, asJSON bool, interval time.Duration) error {
	clear := !asJSON && isTerminal(out)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		r, err := m.Report(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintln(errOut, "skuflow status:", err)
		default:
			if clear {
				fmt.Fprint(out, "\x1b[H\x1b[2J")
			} else if !asJSON {
				fmt.Fprintln(out)
			}
			if err := writeStatus(out, r, asJSON); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
