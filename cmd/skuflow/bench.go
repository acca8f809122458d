package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/internal/app/bench"
)

func newBenchCmd() *cobra.Command {
	var o bench.Options
	var scenarios, scenario string
	var child, debug bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput against baselines measured in the same run",
		Long: `Measure skuflow's stock processor on an embedded broker against two
baselines on the same message count, key count and partitions: raw sarama
produce+consume, and a trivial goka processor that sums per key. Each
scenario runs in its own child process, so the peak RSS printed is its own.
The figures are noisy; compare the ratios.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if debug {
				o.Debug = cmd.ErrOrStderr()
			}
			if scenarios != "" {
				o.Scenarios = strings.Split(scenarios, ",")
			}
			if child {
				return bench.Child(cmd.Context(), o, scenario, cmd.OutOrStdout())
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own executable: %w", err)
			}
			_, err = bench.Run(cmd.Context(), o, self, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return err
		},
	}
	cmd.Flags().IntVar(&o.Messages, "messages", 200_000, "messages per scenario")
	cmd.Flags().IntVar(&o.Keys, "keys", 10_000, "distinct keys (SKUs)")
	cmd.Flags().IntVar(&o.Partitions, "partitions", 8, "partitions per topic")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 1, "run every scenario this many times, interleaved, and report each one's median")
	cmd.Flags().IntVar(&o.Clients, "clients", 32, "concurrent clients (connections) in the request scenarios (orders, and the read scenarios)")
	cmd.Flags().StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default: sarama,goka-sum,stock,stock-per-event,audit,orders-roundtrip,orders; also orders-flood, feeds-sarama,feeds, changelog-consume,serve-ready (size: --keys) and the read scenarios rest-hello,rest-get,grpc-hello,grpc-get,single-100,batch-100,watch-fanout,freshness)")
	cmd.Flags().StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of each scenario run to FILE.<scenario>")
	cmd.Flags().BoolVar(&debug, "debug", false, "print progress notes of each run to stderr")
	cmd.Flags().StringVar(&scenario, "scenario", "", "run one scenario in this process (used by the parent)")
	cmd.Flags().BoolVar(&child, "child", false, "print one scenario's result as JSON (used by the parent)")
	_ = cmd.Flags().MarkHidden("scenario")
	_ = cmd.Flags().MarkHidden("child")
	return cmd
}
