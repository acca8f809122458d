package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/broker"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/schema"
)

//go:embed sample/*.jsonl
var samples embed.FS

// sampleFiles are published in this order: policies first, so the first
// published answers already reflect them.
var sampleFiles = []struct{ file, topic string }{
	{"sample/policies.jsonl", "policies"},
	{"sample/sku-policies.jsonl", "sku-policies"},
	{"sample/supply.jsonl", "supply"},
}

type devFlags struct {
	answers    answerFlags
	feeds      feedServiceFlags
	watch      watchFlags
	read       readFlags
	gateway    gatewayFlags
	reconcile  time.Duration
	skew       time.Duration
	backlog    backlogFlags
	standby    standbyFlags
	data       string
	httpAddr   string
	grpcAddr   string
	metrics    string
	kafkaPort  int
	partitions int
	sample     bool
}

func newDevCmd(g *globalFlags) *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded broker, processors, gateway",
		Long: `Run skuflow on one machine with no Kafka installed: an embedded Kafka-protocol
broker on 127.0.0.1, every processor group and the gateway, all state under
--data. Ctrl-C stops the processors and gateway first, then the broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), f, log)
		},
	}
	cmd.Flags().StringVar(&f.data, "data", "./data", "directory for all state (broker log, tables, views)")
	cmd.Flags().StringVar(&f.httpAddr, "http", ":8080", "REST, health and metrics listen address")
	cmd.Flags().StringVar(&f.metrics, "metrics", ":8081", "the processors' Prometheus /metrics listen address: lag, recovery, events, dead letters, reservations (empty: none)")
	cmd.Flags().StringVar(&f.grpcAddr, "grpc", ":9090", "gRPC listen address")
	cmd.Flags().IntVar(&f.kafkaPort, "kafka-port", 9092, "embedded broker port on 127.0.0.1 (0 picks a free one)")
	cmd.Flags().IntVar(&f.partitions, "partitions", 8, "partitions of skuflow's topics")
	cmd.Flags().BoolVar(&f.sample, "sample-data", false, "publish a small sample data set at start (idempotent)")
	cmd.Flags().DurationVar(&f.reconcile, "reconcile-interval", 2*time.Second, "how often the availability topic is compared with the tables (0: never)")
	registerSkewFlag(cmd, &f.skew)
	f.backlog.register(cmd)
	f.standby.register(cmd)
	f.answers.register(cmd)
	f.feeds.register(cmd)
	f.watch.register(cmd)
	f.read.register(cmd)
	f.gateway.register(cmd)
	return cmd
}

func runDev(ctx context.Context, f devFlags, log *slog.Logger) error {
	if err := f.watch.check(); err != nil {
		return err
	}
	if err := f.read.check(); err != nil {
		return err
	}
	if err := f.gateway.check(); err != nil {
		return err
	}
	b, err := broker.Start(broker.Options{DataDir: filepath.Join(f.data, "broker"), Port: f.kafkaPort, Logger: log})
	if err != nil {
		return err
	}
	// The broker closes last: processors and views must stop before it.
	defer b.Close()
	k := kafkacfg.Options{Brokers: b.Addrs(), Partitions: f.partitions, Replication: 1, ClientID: "skuflow-dev"}
	if err := k.Validate(); err != nil {
		return err
	}
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return err
	}
	cfg := f.answers.config()
	if f.feeds.adminTokenFile == "" {
		if f.feeds.adminTokenFile, err = devAdminToken(f.data); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	if f.skew > 0 {
		f.feeds.maxEventSkew = f.skew
	}
	feeds, err := f.feeds.factory(f.answers.staleAfter)
	if err != nil {
		return err
	}
	so := app.ServeOptions{Kafka: k, Base: cfg, DataDir: f.data, HTTPAddr: f.httpAddr, GRPCAddr: f.grpcAddr, Logger: log,
		Services:    []app.ServiceFactory{feeds, app.Reservations(gateway.OrdersOptions{})},
		MaxWatchers: f.watch.maxWatchers, WatchBuffer: f.watch.buffer}
	f.read.apply(&so)
	f.gateway.apply(&so)
	serve, err := app.NewServe(so)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return app.Process(gctx, app.ProcessOptions{Kafka: k, Base: cfg, DataDir: f.data, ReconcileEvery: f.reconcile,
			Coalescing: f.backlog.coalescing(), Standby: f.standby.standby(), MetricsAddr: f.metrics, MaxEventSkew: skewOption(f.skew), Logger: log})
	})
	g.Go(func() error { return serve.Run(gctx) })
	if f.sample {
		g.Go(func() error {
			for _, sf := range sampleFiles {
				data, err := samples.ReadFile(sf.file)
				if err != nil {
					return err
				}
				sum, err := emit.Emit(gctx, emit.Options{Kafka: k, Topic: sf.topic, Input: bytes.NewReader(data)})
				if err != nil {
					return fmt.Errorf("sample data %s: %w", sf.file, err)
				}
				log.Info("sample data published", "topic", sf.topic, "events", sum.Emitted)
			}
			return nil
		})
	}
	fmt.Printf("skuflow dev: embedded Kafka broker at %s (data in %s)\n", b.Addrs()[0], f.data)
	printURLs(serve.HTTPAddr(), serve.GRPCAddr())
	fmt.Printf("  feeds:   POST http://%s/v1/merchants/{merchant}/feeds (admin token in %s)\n", hostPort(serve.HTTPAddr()), f.feeds.adminTokenFile)
	fmt.Println("  try:     curl -s localhost:" + port(serve.HTTPAddr()) + "/v1/availability/SKU-1001")
	go func() {
		// Poll every 100ms until the views have recovered; an error here
		// only means gctx ended first, which g.Wait reports.
		_, err := backoff.Retry(gctx, func() (struct{}, error) {
			if !serve.Ready() {
				return struct{}{}, errors.New("views recovering")
			}
			return struct{}{}, nil
		}, backoff.WithBackOff(backoff.NewConstantBackOff(100*time.Millisecond)), backoff.WithMaxElapsedTime(0))
		if err == nil && gctx.Err() == nil {
			log.Info("views recovered; gateway ready")
		}
	}()
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("processors and gateway stopped; stopping broker")
	return err
}

func port(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			if _, err := strconv.Atoi(addr[i+1:]); err == nil {
				return addr[i+1:]
			}
		}
	}
	return addr
}
