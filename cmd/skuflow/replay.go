package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/internal/ops"
)

// opsCluster is the cluster flag of the operator commands (replay,
// status): they create no topics, so only --brokers is theirs.
func opsCluster(cmd *cobra.Command) *clusterFlags {
	cf := &clusterFlags{partitions: 1, replication: 1}
	cmd.Flags().StringVar(&cf.brokers, "brokers", "", "Kafka bootstrap brokers, host:port[,host:port...] (required)")
	return cf
}

func newReplayCmd() *cobra.Command {
	var group, toTime string
	var earliest, latest, dryRun, asJSON bool
	var cf *clusterFlags
	cmd := &cobra.Command{
		Use:   "replay --brokers host:port[,...] --group G (--to-time T | --to-earliest | --to-latest) [--dry-run]",
		Short: "Rewind (or advance) a processor group's committed input offsets",
		Long: `Move a skuflow processor group's committed offsets on every one of its input
topics: to the first message at or after a time (--to-time, RFC 3339), to the
start of retention (--to-earliest) or to the head (--to-latest). When the
group's processes start again they read from there; the rules are idempotent,
so re-processing onto the existing tables ends in the same state.

Groups: skuflow-stock (supply, sku-policies, stock-ticks, demand),
skuflow-policies (policies), skuflow-orders (orders, reservation-outcomes).

It refuses while the group has live members (stop every "skuflow process"
first) and lists them. --dry-run prints each partition's offset from and to
and commits nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := cf.options("skuflow-replay")
			if err != nil {
				return err
			}
			o := ops.ReplayOptions{Kafka: k, Group: group, ToEarliest: earliest, ToLatest: latest, DryRun: dryRun}
			var timeErr error
			if cmd.Flags().Changed("to-time") {
				if o.ToTime, timeErr = time.Parse(time.RFC3339, toTime); timeErr != nil {
					timeErr = fmt.Errorf("--to-time %q is not an RFC 3339 time such as 2026-11-21T09:00:00Z", toTime)
					o.ToTime = time.Unix(0, 0) // a target was given: check the rest as if it were valid
				}
			}
			if err := errors.Join(timeErr, o.Validate()); err != nil {
				return err
			}
			plan, err := ops.Replay(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(plan)
			}
			return plan.WriteText(cmd.OutOrStdout())
		},
	}
	cf = opsCluster(cmd)
	cmd.Flags().StringVar(&group, "group", "", "processor group to move: skuflow-stock, skuflow-policies or skuflow-orders")
	cmd.Flags().StringVar(&toTime, "to-time", "", "move to the first message at or after this RFC 3339 time, e.g. 2026-11-21T09:00:00Z")
	cmd.Flags().BoolVar(&earliest, "to-earliest", false, "move to the start of retention: re-process everything kept")
	cmd.Flags().BoolVar(&latest, "to-latest", false, "move to the head: skip everything not processed yet")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print each partition's offset from and to, commit nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}
