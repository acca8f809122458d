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
	"path/filepath"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/processors/stock"
	"github.com/skuflow/skuflow/views"
)

// ProcessOptions configure the processor role.
type ProcessOptions struct {
	Kafka kafkacfg.Options
	// DataDir holds the processors' LevelDB tables (a cache of the changelogs).
	DataDir string
	Logger  *slog.Logger
}

// Validate reports every problem with the options.
func (o ProcessOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	return errors.Join(errs...)
}

// Process creates skuflow's topics if needed and runs every processor group
// until ctx is cancelled.
func Process(ctx context.Context, o ProcessOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := logger(o.Logger)
	if err := o.Kafka.EnsureTopics(stock.Topics...); err != nil {
		return err
	}
	opts := append(o.Kafka.ProcessorOptions(),
		goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, "processors"))),
		goka.WithLogger(gokaLogger{log}),
	)
	p, err := stock.New(o.Kafka.Brokers, log, opts...)
	if err != nil {
		return err
	}
	log.Info("stock processor starting", "group", stock.Group, "brokers", o.Kafka.Brokers)
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stock processor: %w", err)
	}
	return nil
}

// ServeOptions configure the serving role.
type ServeOptions struct {
	Kafka kafkacfg.Options
	// DataDir holds the views' LevelDB copies of the tables.
	DataDir  string
	HTTPAddr string
	GRPCAddr string
	Logger   *slog.Logger
}

// Validate reports every problem with the options.
func (o ServeOptions) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	return errors.Join(errs...)
}

// Serve is a bound gateway with its views.
type Serve struct {
	stock *views.Stock
	gw    *gateway.Server
}

// NewServe creates the views and binds the gateway's listeners.
func NewServe(o ServeOptions) (*Serve, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := logger(o.Logger)
	vopts := append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, "views"))),
		goka.WithViewLogger(gokaLogger{log}),
	)
	sv, err := views.NewStock(o.Kafka.Brokers, vopts...)
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Options{HTTPAddr: o.HTTPAddr, GRPCAddr: o.GRPCAddr, Stock: sv, Logger: log})
	if err != nil {
		return nil, err
	}
	return &Serve{stock: sv, gw: gw}, nil
}

// HTTPAddr is the bound REST address.
func (s *Serve) HTTPAddr() string { return s.gw.HTTPAddr() }

// GRPCAddr is the bound gRPC address.
func (s *Serve) GRPCAddr() string { return s.gw.GRPCAddr() }

// Ready reports whether the views have recovered.
func (s *Serve) Ready() bool { return s.stock.Ready() }

// Run serves until ctx is cancelled. The gateway stops first, so requests
// still in flight during its graceful shutdown are answered from a live view.
func (s *Serve) Run(ctx context.Context) error {
	viewCtx, stopViews := context.WithCancel(context.Background())
	defer stopViews()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.stock.Run(viewCtx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("stock view: %w", err)
		}
		if ctx.Err() == nil {
			return errors.New("stock view stopped unexpectedly")
		}
		return nil
	})
	g.Go(func() error {
		err := s.gw.Run(gctx)
		stopViews()
		return err
	})
	return g.Wait()
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
