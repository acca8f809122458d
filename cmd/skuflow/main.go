// Command skuflow is skuflow's one binary: the embedded development stack
// (dev), the processor role (process), the serving role (serve) and a tool to
// publish events (emit). Flags and environment are read here and nowhere
// else; everything below takes an Options struct.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "skuflow:", err)
		code := 1
		var ec exitCodeError
		if errors.As(err, &ec) {
			code = ec.code
		}
		os.Exit(code)
	}
}

// exitCodeError makes the process exit with code instead of 1 (audit: 2
// when it could not run, since 1 means it found drift).
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

type globalFlags struct {
	logLevel  string
	logFormat string
}

func (g *globalFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "skuflow",
		Short: "Real-time inventory availability from a stream-processed table",
		Long: `skuflow answers "can this item be bought, and how many?" from a materialized
table that goka stream processors keep current, served over gRPC and REST.

Run everything on one machine with "skuflow dev"; against a real Kafka cluster,
run "skuflow process" and "skuflow serve" with --brokers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newDevCmd(g), newProcessCmd(g), newServeCmd(g), newEmitCmd(g), newBenchCmd(), newFeedCmd(), newMerchantCmd())
	root.AddCommand(newReplayCmd())
	root.AddCommand(newStatusCmd())
	root.AddCommand(newDeadLetterCmd(g))
	root.AddCommand(newAuditCmd())
	root.AddCommand(newAPIKeyCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	return root
}

// clusterFlags are the flags of every command that talks to a Kafka cluster.
type clusterFlags struct {
	brokers     string
	partitions  int
	replication int
}

func (c *clusterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.brokers, "brokers", "", "Kafka bootstrap brokers, host:port[,host:port...] (required)")
	cmd.Flags().IntVar(&c.partitions, "partitions", 8, "partitions of the topics skuflow creates; all SKU-keyed topics must match")
	cmd.Flags().IntVar(&c.replication, "replication", 3, "replication factor of the topics skuflow creates (1 for a one-broker cluster)")
}

// answerFlags configure what answers depend on besides events.
type answerFlags struct {
	channels   string
	staleAfter time.Duration
}

func (a *answerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.channels, "channels", strings.Join(inventory.DefaultBase().Channels, ","), "sales channels to answer for, comma-separated")
	cmd.Flags().DurationVar(&a.staleAfter, "merchant-stale-after", inventory.DefaultStaleAfter, "default TTL of merchant stock; a merchant's policy may override it")
}

func (a *answerFlags) config() inventory.Base {
	var chans []string
	for _, c := range strings.Split(a.channels, ",") {
		if c = strings.TrimSpace(c); c != "" {
			chans = append(chans, c)
		}
	}
	return inventory.Base{Channels: chans, DefaultStaleAfter: a.staleAfter}
}

func (c *clusterFlags) options(clientID string) (kafkacfg.Options, error) {
	if strings.TrimSpace(c.brokers) == "" {
		return kafkacfg.Options{}, errors.New("--brokers is required, e.g. --brokers kafka-1:9092,kafka-2:9092")
	}
	var brokers []string
	for _, b := range strings.Split(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	o := kafkacfg.Options{Brokers: brokers, Partitions: c.partitions, Replication: c.replication, ClientID: clientID}
	return o, o.Validate()
}
