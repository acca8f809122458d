package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/inventory"
)

func newProcessCmd(g *globalFlags) *cobra.Command {
	var cf clusterFlags
	var af answerFlags
	var data string
	var reconcile time.Duration
	var skew time.Duration
	var bf backlogFlags
	var sf standbyFlags
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "process --brokers host:port[,...]",
		Short: "Run skuflow's processor groups against a Kafka cluster",
		Long: `Run every skuflow processor group against a Kafka cluster. Start as many
instances as you like: the consumer group spreads the partitions across them.
Local tables live under --data and are rebuilt from the changelogs if lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			k, err := cf.options("skuflow-process")
			if err != nil {
				return err
			}
			return app.Process(cmd.Context(), app.ProcessOptions{Kafka: k, Base: af.config(), DataDir: data,
				ReconcileEvery: reconcile, Coalescing: bf.coalescing(), Standby: sf.standby(), MetricsAddr: metricsAddr, MaxEventSkew: skewOption(skew), Logger: log})
		},
	}
	cf.register(cmd)
	af.register(cmd)
	cmd.Flags().StringVar(&data, "data", "./data", "directory for the processors' local tables")
	cmd.Flags().DurationVar(&reconcile, "reconcile-interval", app.DefaultReconcileEvery, "how often the availability topic is compared with the tables (0: never; coalescing needs it)")
	bf.register(cmd)
	sf.register(cmd)
	registerSkewFlag(cmd, &skew)
	cmd.Flags().StringVar(&metricsAddr, "metrics", ":8081", "Prometheus /metrics listen address, input lag included (empty: none)")
	return cmd
}

// backlogFlags set how the stock processor coalesces publishing while it
// is behind its inputs.
type backlogFlags struct {
	lag      int64
	maxDefer time.Duration
}

func (f *backlogFlags) register(cmd *cobra.Command) {
	cmd.Flags().Int64Var(&f.lag, "defer-publish-lag", app.DefaultCoalescing.Lag,
		"messages an input partition must be behind its head for availability publishing to be coalesced (0: never coalesce)")
	cmd.Flags().DurationVar(&f.maxDefer, "max-publish-defer", app.DefaultCoalescing.MaxDefer,
		"longest an answer is held back while the processor works through a backlog")
}

func (f backlogFlags) coalescing() app.Coalescing {
	return app.Coalescing{Lag: f.lag, MaxDefer: f.maxDefer}
}

func newServeCmd(g *globalFlags) *cobra.Command {
	var cf clusterFlags
	var af answerFlags
	var ff feedServiceFlags
	var wf watchFlags
	var rf readFlags
	var gf gatewayFlags
	var data, httpAddr, grpcAddr string
	cmd := &cobra.Command{
		Use:   "serve --brokers host:port[,...]",
		Short: "Serve availability over gRPC and REST from views of the tables",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			k, err := cf.options("skuflow-serve")
			if err != nil {
				return err
			}
			feeds, err := ff.factory(af.staleAfter)
			if err != nil {
				return err
			}
			if err := wf.check(); err != nil {
				return err
			}
			if err := rf.check(); err != nil {
				return err
			}
			if err := gf.check(); err != nil {
				return err
			}
			so := app.ServeOptions{Kafka: k, Base: af.config(), DataDir: data, HTTPAddr: httpAddr, GRPCAddr: grpcAddr, Logger: log,
				Services:    []app.ServiceFactory{feeds, app.Reservations(gateway.OrdersOptions{})},
				MaxWatchers: wf.maxWatchers, WatchBuffer: wf.buffer}
			rf.apply(&so)
			gf.apply(&so)
			s, err := app.NewServe(so)
			if err != nil {
				return err
			}
			printURLs(s.HTTPAddr(), s.GRPCAddr())
			return s.Run(cmd.Context())
		},
	}
	cf.register(cmd)
	af.register(cmd)
	cmd.Flags().StringVar(&data, "data", "./data", "directory for the views' local copies of the tables")
	cmd.Flags().StringVar(&httpAddr, "http", ":8080", "REST, health and metrics listen address")
	cmd.Flags().StringVar(&grpcAddr, "grpc", ":9090", "gRPC listen address")
	ff.register(cmd)
	wf.register(cmd)
	rf.register(cmd)
	gf.register(cmd)
	return cmd
}

func newEmitCmd(g *globalFlags) *cobra.Command {
	var cf clusterFlags
	var topic, file string
	cmd := &cobra.Command{
		Use:   "emit --brokers host:port[,...] --topic supply|sku-policies|policies|demand [--file F|-]",
		Short: "Publish events given as JSON lines, keyed and partitioned as the processors expect",
		Long: `Publish events, one protojson message per line:

  --topic supply        skuflow.v1.SupplyEvent, e.g.
    {"stockLevel":{"sku":"SKU-1","location":"WH-1","onHand":"10","asOf":"2026-11-21T10:00:00Z","sequence":"1"}}
    {"stockAdjustment":{"eventId":"adj-1","sku":"SKU-1","location":"WH-1","delta":"-2","occurredAt":"2026-11-21T10:05:00Z"}}
  --topic sku-policies  skuflow.v1.SkuPolicyEvent, e.g.
    {"channelEligibility":{"sku":"SKU-1","channel":"marketplace","sellable":false,"asOf":"2026-11-21T10:00:00Z"}}
  --topic policies      skuflow.v1.PolicyEvent, e.g.
    {"location":{"location":"STORE-7","kind":"LOCATION_KIND_STORE","channels":["store-pickup"],"asOf":"2026-11-21T10:00:00Z"}}
  --topic demand        skuflow.v1.DemandEvent (for operators: a fulfilment or release
                        of a reservation the order saga placed; requests and
                        extensions are the saga's), e.g.
    {"fulfilled":{"reservationId":"cart-42:1","sku":"SKU-1","location":"WH-1","fulfilledAt":"2026-11-21T11:00:00Z"}}

Each message is keyed (by SKU; by location/<id> or merchant/<id> for policies)
and partitioned with FNV-1a like goka. Invalid lines are reported with their
line number and not sent; the command then exits with status 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.logger(); err != nil {
				return err
			}
			k, err := cf.options("skuflow-emit")
			if err != nil {
				return err
			}
			in := os.Stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			sum, err := emit.Emit(cmd.Context(), emit.Options{Kafka: k, Topic: topic, Input: in, Rejected: cmd.ErrOrStderr()})
			fmt.Fprintf(cmd.OutOrStdout(), "emitted %d events to %s, rejected %d lines\n", sum.Emitted, topic, sum.Rejected)
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&topic, "topic", "supply", "topic to publish to: supply, sku-policies or policies")
	cmd.Flags().StringVar(&file, "file", "-", "JSON-lines file to read, or - for standard input")
	return cmd
}

func printURLs(httpAddr, grpcAddr string) {
	h := hostPort(httpAddr)
	fmt.Printf("skuflow gateway\n  REST:    http://%s/v1/availability/{sku}\n  OpenAPI: http://%s/openapi.json  http://%s/openapi.yaml\n  health:  http://%s/healthz  http://%s/readyz\n  metrics: http://%s/metrics\n  gRPC:    %s (reflection on)\n",
		h, h, h, h, h, h, hostPort(grpcAddr))
}

// hostPort makes a wildcard listen address printable as a URL host.
func hostPort(addr string) string {
	for _, p := range []string{"[::]:", "0.0.0.0:"} {
		if len(addr) > len(p) && addr[:len(p)] == p {
			return "localhost:" + addr[len(p):]
		}
	}
	return addr
}

// registerSkewFlag adds --max-event-skew, the process and dev commands'
// limit on event times ahead of their messages' timestamps.
func registerSkewFlag(cmd *cobra.Command, d *time.Duration) {
	cmd.Flags().DurationVar(d, "max-event-skew", inventory.DefaultMaxEventSkew,
		"dead-letter events and ticks whose own time (as_of, occurred_at, tick time) is more than this ahead of their Kafka message's timestamp (0: no limit)")
}

// skewOption is the --max-event-skew flag as app.ProcessOptions.MaxEventSkew,
// where 0 stands for the default: the flag's 0 turns the check off.
func skewOption(flag time.Duration) time.Duration {
	if flag == 0 {
		return inventory.NoEventSkewLimit
	}
	return flag
}
