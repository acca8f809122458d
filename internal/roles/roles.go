// Package roles composes skuflow's parts into the processes the binary runs:
// the stock processor role, the serving role (views + gateway), and the emit
// helper. cmd/skuflow parses flags into these Options; tests build the same
// roles directly, so what is tested is what runs.
package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/orders"
	"github.com/skuflow/skuflow/processors/policies"
	"github.com/skuflow/skuflow/processors/reconcile"
	"github.com/skuflow/skuflow/processors/stock"
	"github.com/skuflow/skuflow/registry"
	"github.com/skuflow/skuflow/views"
)

// Topics lists every topic skuflow's roles need.
func Topics() []kafkacfg.Topic {
	return slices.Concat(policies.Topics, stock.Topics, orders.Topics, registry.Topics)
}

// DefaultChannels are the channels answered when none are configured.
var DefaultChannels = []string{"marketplace", "store-pickup", "web"}

// DefaultStaleAfter is the merchant TTL when none is configured.
const DefaultStaleAfter = 24 * time.Hour

// ProcessOptions configure the processor role.
type ProcessOptions struct {
	Kafka  kafkacfg.Options
	Config stock.Config
	// DataDir holds the processors' LevelDB tables (a cache of the changelogs).
	DataDir string
	// ReconcileInterval is how often the published availability topic is
	// compared with the tables (0: DefaultReconcileInterval, <0: never).
	ReconcileInterval time.Duration
	// DeferLag is how far (in messages) an input partition must be behind
	// its head for the stock processor to coalesce its availability
	// publishing (0: stock.DefaultDeferLag, <0: never); see stock.Backlog.
	DeferLag int64
	// MaxDefer bounds how long an answer is held back (0:
	// stock.DefaultMaxDefer).
	MaxDefer time.Duration
	// MetricsAddr serves Prometheus metrics (the processors' lag among
	// them) at /metrics ("": none).
	MetricsAddr string
	Logger      *slog.Logger
}

// DefaultReconcileInterval is the reconciler's default scan period.
const DefaultReconcileInterval = 5 * time.Second

func validateConfig(c stock.Config) error {
	var errs []error
	if len(c.Channels) == 0 {
		errs = append(errs, errors.New("no channels configured"))
	}
	for _, ch := range c.Channels {
		if err := inventory.ValidateID("channel", ch); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DefaultStaleAfter <= 0 || c.DefaultStaleAfter > inventory.MaxStaleAfter {
		errs = append(errs, fmt.Errorf("merchant stale-after %s is outside (0, %s]", c.DefaultStaleAfter, inventory.MaxStaleAfter))
	}
	return errors.Join(errs...)
}

// Validate reports every problem with the options.
func (o ProcessOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate(), validateConfig(o.Config))
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if o.MaxDefer < 0 {
		errs = append(errs, fmt.Errorf("maximum publish deferral %s is negative", o.MaxDefer))
	}
	if o.DeferLag >= 0 && o.ReconcileInterval < 0 {
		errs = append(errs, errors.New("coalesced publishing needs the reconciler, which republishes answers a crash or rebalance held back: "+
			"keep the reconcile interval at 0 (the default) or above, or turn coalescing off (--defer-publish-lag 0)"))
	}
	return errors.Join(errs...)
}

// Process creates skuflow's topics if needed and runs every processor group
// and the reconciler until ctx is cancelled.
func Process(ctx context.Context, o ProcessOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := logger(o.Logger)
	var metrics net.Listener
	if o.MetricsAddr != "" {
		var err error
		if metrics, err = net.Listen("tcp", o.MetricsAddr); err != nil {
			return fmt.Errorf("metrics listener (for several process instances on one host give each its own --metrics address; empty turns it off): %w", err)
		}
		defer metrics.Close()
	}
	if err := o.Kafka.EnsureTopics(Topics()...); err != nil {
		return err
	}
	// Each group gets its own storage directory: a group's lookup tables are
	// stored under the table's name, which may be another group's table.
	opts := func(g goka.Group, extra ...goka.ProcessorOption) []goka.ProcessorOption {
		return append(append(o.Kafka.ProcessorOptions(),
			goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, "processors", string(g)))),
			goka.WithLogger(gokaLogger{log}),
		), extra...)
	}
	var rec *reconcile.Reconciler
	var stockExtra, ordersExtra []goka.ProcessorOption
	if o.ReconcileInterval >= 0 {
		interval := o.ReconcileInterval
		if interval == 0 {
			interval = DefaultReconcileInterval
		}
		var err error
		rec, err = reconcile.New(reconcile.Options{Kafka: o.Kafka, Config: o.Config, Interval: interval,
			DataDir: filepath.Join(o.DataDir, "reconciler"), Logger: log})
		if err != nil {
			return err
		}
		ordersExtra = append(ordersExtra, goka.WithRebalanceCallback(rec.RebalancedOrders))
	}
	var backlog *stock.Backlog
	if o.DeferLag >= 0 {
		var err error
		backlog, err = stock.NewBacklog(stock.BacklogOptions{Kafka: o.Kafka, Lag: o.DeferLag, MaxDefer: o.MaxDefer, Logger: log})
		if err != nil {
			return err
		}
	}
	if rec != nil || backlog != nil {
		stockExtra = append(stockExtra, goka.WithRebalanceCallback(func(a goka.Assignment) {
			if rec != nil {
				rec.Rebalanced(a)
			}
			if backlog != nil {
				backlog.Rebalanced(a)
			}
		}))
	}
	newStock := func() (*goka.Processor, error) {
		return stock.New(o.Kafka.Brokers, o.Config, log, backlog, opts(stock.Group, stockExtra...)...)
	}
	newPolicies := func() (*goka.Processor, error) { return policies.New(o.Kafka.Brokers, log, opts(policies.Group)...) }
	newOrders := func() (*goka.Processor, error) {
		return orders.New(o.Kafka.Brokers, log, opts(orders.Group, ordersExtra...)...)
	}
	log.Info("processors starting", "groups", []goka.Group{policies.Group, stock.Group, orders.Group}, "brokers", o.Kafka.Brokers)
	g, gctx := errgroup.WithContext(ctx)
	run := func(name string, r func(context.Context) error) {
		g.Go(func() error {
			if err := r(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	run("policies processor", restarting(log, newPolicies))
	run("stock processor", restarting(log, newStock))
	run("orders processor", restarting(log, newOrders))
	if rec != nil {
		run("reconciler", rec.Run)
	}
	if backlog != nil {
		run("stock backlog", backlog.Run)
	}
	if metrics != nil {
		log.Info("processor metrics", "url", "http://"+metrics.Addr().String()+"/metrics")
		run("metrics server", func(ctx context.Context) error { return serveMetrics(ctx, metrics) })
	}
	return g.Wait()
}

// serveMetrics serves /metrics on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeOptions configure the serving role.
type ServeOptions struct {
	Kafka  kafkacfg.Options
	Config stock.Config
	// DataDir holds the views' LevelDB copies of the tables.
	DataDir  string
	HTTPAddr string
	GRPCAddr string
	Logger   *slog.Logger
	// Services are further APIs to serve beside availability.
	Services []ServiceFactory
}

// Service is an API served beside availability, with the background work
// it needs (views, publishers) in Run.
type Service interface {
	gateway.Service
	// Run does the service's background work until ctx is cancelled.
	Run(ctx context.Context) error
}

// ServiceEnv is what a ServiceFactory gets to build its service.
type ServiceEnv struct {
	Kafka kafkacfg.Options
	// DataDir is a directory of the service's own.
	DataDir string
	Logger  *slog.Logger
}

// ServiceFactory builds a Service.
type ServiceFactory struct {
	Name string
	New  func(ServiceEnv) (Service, error)
}

// Validate reports every problem with the options.
func (o ServeOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate(), validateConfig(o.Config))
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	return errors.Join(errs...)
}

// Serve is a bound gateway with its views.
type Serve struct {
	stock    *views.Stock
	policies *views.Policies
	gw       *gateway.Server
	services []Service
}

// NewServe creates the views and binds the gateway's listeners.
func NewServe(o ServeOptions) (*Serve, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := logger(o.Logger)
	// Views need their tables to exist; creating them here (idempotent, with
	// the same settings as Process) lets serve start before process.
	if err := o.Kafka.EnsureTopics(Topics()...); err != nil {
		return nil, err
	}
	vopts := append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, "views"))),
		goka.WithViewLogger(gokaLogger{log}),
	)
	sv, err := views.NewStock(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	pv, err := views.NewPolicies(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	var services []Service
	var gsvcs []gateway.Service
	for _, f := range o.Services {
		svc, err := f.New(ServiceEnv{Kafka: o.Kafka, DataDir: filepath.Join(o.DataDir, f.Name), Logger: log.With("service", f.Name)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		services = append(services, svc)
		gsvcs = append(gsvcs, svc)
	}
	gw, err := gateway.New(gateway.Options{HTTPAddr: o.HTTPAddr, GRPCAddr: o.GRPCAddr, Stock: sv, Policies: pv,
		Channels: o.Config.Channels, DefaultStaleAfter: o.Config.DefaultStaleAfter, Logger: log, Services: gsvcs})
	if err != nil {
		return nil, err
	}
	return &Serve{stock: sv, policies: pv, gw: gw, services: services}, nil
}

// HTTPAddr is the bound REST address.
func (s *Serve) HTTPAddr() string { return s.gw.HTTPAddr() }

// GRPCAddr is the bound gRPC address.
func (s *Serve) GRPCAddr() string { return s.gw.GRPCAddr() }

// Ready reports whether the views, and every service, have recovered.
func (s *Serve) Ready() bool {
	if !s.stock.Ready() || !s.policies.Ready() {
		return false
	}
	for _, svc := range s.services {
		if !svc.Ready() {
			return false
		}
	}
	return true
}

// Run serves until ctx is cancelled. The gateway stops first, so requests
// still in flight during its graceful shutdown are answered from a live view.
func (s *Serve) Run(ctx context.Context) error {
	viewCtx, stopViews := context.WithCancel(context.Background())
	defer stopViews()
	g, gctx := errgroup.WithContext(ctx)
	runners := map[string]interface{ Run(context.Context) error }{"stock view": s.stock, "policies view": s.policies}
	for i, svc := range s.services {
		runners[fmt.Sprintf("service %d", i)] = svc
	}
	for name, v := range runners {
		g.Go(func() error {
			if err := v.Run(viewCtx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			if ctx.Err() == nil {
				return fmt.Errorf("%s stopped unexpectedly", name)
			}
			return nil
		})
	}
	g.Go(func() error {
		err := s.gw.Run(gctx)
		stopViews()
		return err
	})
	return g.Wait()
}

// restarting runs a processor, building it anew after a failure that a
// fresh start recovers from: a table offset that compaction or retention
// removed between goka looking it up and fetching it ("offset is outside
// the range"; goka wraps the broker error in text, so the text is what can
// be matched). Other errors, and more than five restarts in a row, end the
// role.
func restarting(log *slog.Logger, build func() (*goka.Processor, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			p, err := build()
			if err != nil {
				return err
			}
			started := time.Now()
			err = p.Run(ctx)
			if time.Since(started) > 10*time.Minute {
				attempt = 1 // a long healthy run starts the count afresh
			}
			if err == nil || ctx.Err() != nil || attempt > 5 || !strings.Contains(err.Error(), "outside the range of offsets") {
				return err
			}
			log.Warn("processor stopped on a vanished offset; restarting it", "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
	}
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// gokaLogger routes goka's printf logging into slog at debug level.
type gokaLogger struct{ log *slog.Logger }

func (g gokaLogger) Print(args ...any)   { g.log.Debug(fmt.Sprint(args...), "component", "goka") }
func (g gokaLogger) Println(args ...any) { g.log.Debug(fmt.Sprint(args...), "component", "goka") }
func (g gokaLogger) Printf(format string, args ...any) {
	g.log.Debug(fmt.Sprintf(format, args...), "component", "goka")
}
