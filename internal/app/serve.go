package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/gateway"
	feedservice "github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// ServeOptions configure the serving role.
type ServeOptions struct {
	Kafka kafkacfg.Options
	Base  inventory.Base
	// DataDir holds the views' LevelDB copies of the tables.
	DataDir  string
	HTTPAddr string
	GRPCAddr string
	Logger   *slog.Logger
	// Services are further APIs to serve beside availability.
	Services []ServiceFactory
	// Registerer takes the gateway's request metrics and the views'
	// metrics. Nil: a registry of the serving role's own, which the
	// gateway's /metrics serves beside the default one.
	Registerer prometheus.Registerer
	// MaxWatchers and WatchBuffer bound WatchAvailability streams
	// (gateway.WatchOptions); 0: the gateway's defaults.
	MaxWatchers, WatchBuffer int
	// BatchLimit, CacheMaxAge and AnswerCacheSize are the gateway's
	// (gateway.Options); 0: its defaults.
	BatchLimit      int
	CacheMaxAge     time.Duration
	AnswerCacheSize int
	// Limits are the gateway's limits on requests and connections
	// (gateway.Options: MaxRequestBytes, ReadHeaderTimeout,
	// BodyReadTimeout, IdleTimeout); zero fields take its defaults.
	Limits GatewayLimits
	// APIKeysFile, if set, is the API keys file that guards the
	// availability and reservation APIs (gateway.LoadAPIKeys); empty: they
	// are open.
	APIKeysFile string
}

// GatewayLimits are the gateway's request and connection limits.
type GatewayLimits struct {
	MaxRequestBytes   int64
	ReadHeaderTimeout time.Duration
	BodyReadTimeout   time.Duration
	IdleTimeout       time.Duration
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
	// Base is the serving role's: the channels answered for.
	Base inventory.Base
	// DataDir is a directory of the service's own.
	DataDir string
	// Stock is the serving role's view of the stock table.
	Stock  views.StockLookup
	Logger *slog.Logger
}

// ServiceFactory builds a Service.
type ServiceFactory struct {
	Name string
	New  func(ServiceEnv) (Service, error)
}

// Reservations registers the reservation API (gateway.NewReservations).
// o.Base is replaced by the serving role's Base, so the API refuses orders
// on exactly the channels the processors do not answer for.
func Reservations(o gateway.OrdersOptions) ServiceFactory {
	return ServiceFactory{Name: "orders", New: func(env ServiceEnv) (Service, error) {
		o.Base = env.Base
		if o.Logger == nil {
			o.Logger = env.Logger
		}
		if o.Stock == nil {
			o.Stock = env.Stock
		}
		return gateway.NewReservations(env.Kafka, env.DataDir, o)
	}}
}

// Feeds registers the merchant feeds and registry APIs (feedservice.New);
// the serving role hands it the cluster, a data directory of its own and
// its Base's channels (o.Channels is replaced), so merchant locations may
// serve exactly the channels the processors answer for.
func Feeds(o feedservice.Options) ServiceFactory {
	return ServiceFactory{Name: "feeds", New: func(env ServiceEnv) (Service, error) {
		o.Kafka, o.DataDir = env.Kafka, env.DataDir
		o.Channels = slices.Clone(env.Base.Channels)
		if o.Logger == nil {
			o.Logger = env.Logger
		}
		return feedservice.New(o)
	}}
}

// Validate reports every problem with the options.
func (o ServeOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate(), o.Base.Validate())
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	return errors.Join(errs...)
}

// Serve is a bound gateway with its views.
type Serve struct {
	stock       *views.Stock
	policies    *views.Policies
	avail       *views.AvailabilityView // what watchers follow
	gw          *gateway.Server
	services    []Service
	viewMetrics *views.Metrics
}

// NewServe creates the views and binds the gateway's listeners.
func NewServe(o ServeOptions) (*Serve, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := orDiscard(o.Logger)
	// Views need their tables to exist; creating them here (idempotent, with
	// the same settings as Process) lets serve start before process.
	if err := o.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		return nil, err
	}
	vopts := append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(views.StorageBuilder(filepath.Join(o.DataDir, "views"))),
		goka.WithViewLogger(kafkacfg.GokaLogger(log)),
	)
	sv, err := views.NewStock(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	pv, err := views.NewPolicies(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	av, err := views.NewAvailabilityFeed(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	var services []Service
	var gsvcs []gateway.Service
	for _, f := range o.Services {
		svc, err := f.New(ServiceEnv{Kafka: o.Kafka, Base: o.Base, DataDir: filepath.Join(o.DataDir, f.Name), Stock: sv,
			Logger: log.With("service", f.Name)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		services = append(services, svc)
		gsvcs = append(gsvcs, svc)
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	vm, err := viewMetrics(o, log, reg, map[string]views.Observed{"stock": sv, "policies": pv, "availability": av}, services)
	if err != nil {
		return nil, err
	}
	var keys *gateway.APIKeys
	if o.APIKeysFile != "" {
		if keys, err = gateway.LoadAPIKeys(o.APIKeysFile); err != nil {
			return nil, err
		}
		log.Info("API keys required for the availability and reservation APIs", "file", o.APIKeysFile, "keys", len(keys.IDs()))
	}
	gw, err := gateway.New(gateway.Options{HTTPAddr: o.HTTPAddr, GRPCAddr: o.GRPCAddr, Stock: sv, Policies: pv,
		Base: o.Base, Logger: log, Services: gsvcs, Registerer: reg,
		Watch:      gateway.WatchOptions{Source: av, MaxWatchers: o.MaxWatchers, Buffer: o.WatchBuffer},
		BatchLimit: o.BatchLimit, CacheMaxAge: o.CacheMaxAge, AnswerCacheSize: o.AnswerCacheSize,
		MaxRequestBytes: o.Limits.MaxRequestBytes, ReadHeaderTimeout: o.Limits.ReadHeaderTimeout,
		BodyReadTimeout: o.Limits.BodyReadTimeout, IdleTimeout: o.Limits.IdleTimeout, APIKeys: keys})
	if err != nil {
		return nil, err
	}
	return &Serve{stock: sv, policies: pv, avail: av, gw: gw, services: services, viewMetrics: vm}, nil
}

// viewOwner is a Service that runs goka views of its own.
type viewOwner interface {
	ObservedViews() map[string]views.Observed
}

// viewMetrics reports on every view the role runs: its own and those of
// services that say which they run (ObservedViews).
func viewMetrics(o ServeOptions, log *slog.Logger, reg prometheus.Registerer, own map[string]views.Observed, services []Service) (*views.Metrics, error) {
	vm, err := views.NewMetrics(views.MetricsOptions{Brokers: o.Kafka.Brokers, Sarama: o.Kafka.Sarama(), Logger: log})
	if err != nil {
		return nil, err
	}
	all := []map[string]views.Observed{own}
	for _, svc := range services {
		if ov, ok := svc.(viewOwner); ok {
			all = append(all, ov.ObservedViews())
		}
	}
	for _, m := range all {
		for name, v := range m {
			if err := vm.Add(name, v); err != nil {
				return nil, err
			}
		}
	}
	if err := reg.Register(vm); err != nil {
		return nil, fmt.Errorf("register view metrics: %w", err)
	}
	return vm, nil
}

// HTTPAddr is the bound REST address.
func (s *Serve) HTTPAddr() string { return s.gw.HTTPAddr() }

// GRPCAddr is the bound gRPC address.
func (s *Serve) GRPCAddr() string { return s.gw.GRPCAddr() }

// Ready reports whether the views, and every service, have recovered.
func (s *Serve) Ready() bool {
	if !s.stock.Ready() || !s.policies.Ready() || !s.avail.Ready() {
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
	runners := map[string]interface{ Run(context.Context) error }{"stock view": s.stock, "policies view": s.policies, "availability view": s.avail, "view metrics": s.viewMetrics}
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
