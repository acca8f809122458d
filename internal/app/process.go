package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/reconcile"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/backlog"
	"github.com/skuflow/skuflow/processors/orders"
	"github.com/skuflow/skuflow/processors/policies"
	"github.com/skuflow/skuflow/processors/stock"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// DefaultReconcileEvery is the reconciler's default scan period.
const DefaultReconcileEvery = 5 * time.Second

// Coalescing configures coalesced availability publishing during replay
// floods (see package backlog). The zero value turns it off.
type Coalescing struct {
	// Lag is how many messages an input partition must be behind its head
	// for publishing to be coalesced; 0: never coalesce.
	Lag int64
	// MaxDefer bounds how long an answer is held back; it must be positive
	// when Lag is.
	MaxDefer time.Duration
}

// DefaultCoalescing coalesces while a partition is more than
// backlog.DefaultLag messages behind, holding an answer back for at most
// backlog.DefaultMaxDefer.
var DefaultCoalescing = Coalescing{Lag: backlog.DefaultLag, MaxDefer: backlog.DefaultMaxDefer}

// ProcessOptions configure the processor role. Zero values mean "off" or
// "none", never "default": take defaults from DefaultReconcileEvery and
// DefaultCoalescing.
type ProcessOptions struct {
	Kafka kafkacfg.Options
	Base  inventory.Base
	// DataDir holds the processors' LevelDB tables (a cache of the changelogs).
	DataDir string
	// ReconcileEvery is how often the published availability topic is
	// compared with the tables; 0 turns the reconciler off.
	ReconcileEvery time.Duration
	// Coalescing of availability publishing during floods; the zero value
	// turns it off. It needs the reconciler, which republishes answers that
	// a crash or rebalance held back.
	Coalescing Coalescing
	// MetricsAddr serves Prometheus metrics (the processors' lag among
	// them) at /metrics; "": none.
	MetricsAddr string
	// MetricsListener, when set, serves the metrics on this listener
	// instead of listening on MetricsAddr (which must then be empty): tests
	// pass a listener they bound, so no other process can take its port
	// between choosing it and serving on it. Process closes it when it
	// returns.
	MetricsListener net.Listener
	// Registerer takes the role's metrics: events handled, dead letters,
	// reservation outcomes, each group's recovery and lag, the views'
	// (opsmetrics.go). Nil: a registry of the role's own. The metrics
	// endpoint serves it beside the default registry.
	Registerer prometheus.Registerer
	// Standby keeps tables ready for partitions this instance may take
	// over (standby.go); the zero value turns it off.
	Standby Standby
	// MaxEventSkew is how far an event's own time (a level's or policy's
	// as_of, an adjustment's time, a tick's) may be ahead of its Kafka
	// message's timestamp; events beyond it are dead-lettered. 0:
	// inventory.DefaultMaxEventSkew; inventory.NoEventSkewLimit: no limit
	// (the check is off). Any other negative value is an error.
	MaxEventSkew time.Duration
	Logger       *slog.Logger
}

// Validate reports every problem with the options.
func (o ProcessOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate(), o.Base.Validate())
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if o.MetricsAddr != "" && o.MetricsListener != nil {
		errs = append(errs, fmt.Errorf("metrics address %q and a metrics listener are both set: give one", o.MetricsAddr))
	}
	if o.MaxEventSkew < 0 && o.MaxEventSkew != inventory.NoEventSkewLimit {
		errs = append(errs, fmt.Errorf("max event skew %s is negative (0 turns the check off)", o.MaxEventSkew))
	}
	if o.ReconcileEvery < 0 {
		errs = append(errs, fmt.Errorf("reconcile interval %s is negative (0 turns the reconciler off)", o.ReconcileEvery))
	}
	c := o.Coalescing
	if c.Lag < 0 {
		errs = append(errs, fmt.Errorf("defer-publish lag %d is negative (0 turns coalescing off)", c.Lag))
	}
	if c.Lag > 0 && c.MaxDefer <= 0 {
		errs = append(errs, fmt.Errorf("maximum publish deferral %s must be positive while coalescing is on", c.MaxDefer))
	}
	if c.Lag == 0 && c.MaxDefer < 0 {
		errs = append(errs, fmt.Errorf("maximum publish deferral %s is negative", c.MaxDefer))
	}
	if c.Lag > 0 && o.ReconcileEvery == 0 {
		errs = append(errs, errors.New("coalesced publishing needs the reconciler, which republishes answers a crash or rebalance held back: "+
			"set a reconcile interval above 0, or turn coalescing off (defer-publish lag 0)"))
	}
	return errors.Join(errs...)
}

// Process creates skuflow's topics if needed and runs every processor group
// and the reconciler until ctx is cancelled.
func Process(ctx context.Context, o ProcessOptions) error {
	metrics := o.MetricsListener
	if metrics != nil {
		defer metrics.Close()
	}
	if err := o.Validate(); err != nil {
		return err
	}
	log := orDiscard(o.Logger)
	if o.MetricsAddr != "" {
		var err error
		if metrics, err = net.Listen("tcp", o.MetricsAddr); err != nil {
			return fmt.Errorf("metrics listener (for several process instances on one host give each its own --metrics address; empty turns it off): %w", err)
		}
		defer metrics.Close()
	}
	if err := o.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		return err
	}
	// Each group gets its own storage directory: a group's lookup tables are
	// stored under the table's name, which may be another group's table.
	// A group's builder outlives the processors restarting builds (reclaiming).
	builders := map[goka.Group]storage.Builder{}
	for _, g := range []goka.Group{schema.StockGroup, schema.PoliciesGroup, schema.OrdersGroup} {
		builders[g] = reclaiming(storage.DefaultBuilder(filepath.Join(o.DataDir, "processors", string(g))))
	}
	opts := func(g goka.Group, extra ...goka.ProcessorOption) []goka.ProcessorOption {
		return append(append(o.Kafka.ProcessorOptions(),
			goka.WithStorageBuilder(builders[g]),
			goka.WithLogger(kafkacfg.GokaLogger(log)),
		), append(o.Standby.processorOptions(), extra...)...)
	}
	var rec *reconcile.Reconciler
	var stockExtra, ordersExtra []goka.ProcessorOption
	if o.ReconcileEvery > 0 {
		var err error
		rec, err = reconcile.New(reconcile.Options{Kafka: o.Kafka, Base: o.Base, Interval: o.ReconcileEvery,
			DataDir: filepath.Join(o.DataDir, "reconciler"), Logger: log})
		if err != nil {
			return err
		}
		ordersExtra = append(ordersExtra, goka.WithRebalanceCallback(rec.RebalancedOrders))
	}
	var observed map[string]views.Observed
	if rec != nil {
		observed = rec.ObservedViews()
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	om, err := newOpsMetrics(reg, o.Kafka, log, observed)
	if err != nil {
		return err
	}
	var bl *backlog.Backlog
	var coalescer stock.Coalescer
	if o.Coalescing.Lag > 0 {
		var err error
		bl, err = backlog.New(backlog.Options{Kafka: o.Kafka, Lag: o.Coalescing.Lag, MaxDefer: o.Coalescing.MaxDefer, Logger: log})
		if err != nil {
			return err
		}
		coalescer = bl
	}
	if rec != nil || bl != nil {
		stockExtra = append(stockExtra, goka.WithRebalanceCallback(func(a goka.Assignment) {
			if rec != nil {
				rec.Rebalanced(a)
			}
			if bl != nil {
				bl.Rebalanced(a)
			}
		}))
	}
	newStock := om.groups.track(schema.StockGroup, func() (*goka.Processor, error) {
		return stock.New(o.Kafka.Brokers, o.Base, log, coalescer, inventory.EventSkew(o.MaxEventSkew), opts(schema.StockGroup, stockExtra...)...)
	})
	newPolicies := om.groups.track(schema.PoliciesGroup, func() (*goka.Processor, error) {
		return policies.New(o.Kafka.Brokers, log, inventory.EventSkew(o.MaxEventSkew), opts(schema.PoliciesGroup)...)
	})
	newOrders := om.groups.track(schema.OrdersGroup, func() (*goka.Processor, error) {
		return orders.New(o.Kafka.Brokers, log, inventory.EventSkew(o.MaxEventSkew), opts(schema.OrdersGroup, ordersExtra...)...)
	})
	log.Info("processors starting", "groups", []goka.Group{schema.PoliciesGroup, schema.StockGroup, schema.OrdersGroup}, "brokers", o.Kafka.Brokers)
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
	if bl != nil {
		run("stock backlog", bl.Run)
	}
	if om.views != nil {
		run("view metrics", om.views.Run)
	}
	if metrics != nil {
		log.Info("processor metrics", "url", "http://"+metrics.Addr().String()+"/metrics")
		run("metrics server", func(ctx context.Context) error { return serveMetrics(ctx, metrics, gathererOf(reg)) })
	}
	return g.Wait()
}

// serveMetrics serves g's metrics at /metrics on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
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

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
