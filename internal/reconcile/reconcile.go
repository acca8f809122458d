// Package reconcile keeps the published availability topic equal to the
// answer the tables give now. goka has no timers, and an answer can change
// without any event for its SKU: a location or merchant policy changes (one
// event for every SKU at that location), a merchant location goes stale,
// a sales-cap window opens or closes. It can also lag after a crash between
// the table write and the publish.
//
// Every Interval the reconciler scans its local views: for every SKU whose
// answer evaluated now differs from the version last published on the
// availability topic, it emits a StockTick to the SKU-keyed stock-ticks
// topic. The stock processor re-evaluates the SKU at the tick's time (event
// time, so replays stay deterministic) and publishes the answer if it still
// differs. The published topic therefore catches up within one Interval plus
// one scan, and heals itself after any failure.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// Options configure the reconciler.
type Options struct {
	Kafka kafkacfg.Options
	Base  inventory.Base
	// Interval between scans.
	Interval time.Duration
	// DataDir holds the reconciler's views.
	DataDir string
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.Interval <= 0 {
		errs = append(errs, fmt.Errorf("reconcile interval %s is not positive", o.Interval))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("reconciler data directory is empty"))
	}
	return errors.Join(errs...)
}

var (
	ticks = promauto.NewCounter(prometheus.CounterOpts{
		Name: "skuflow_reconcile_ticks_total",
		Help: "Stock ticks emitted because a SKU's answer differed from the published one.",
	})
	sweepSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "skuflow_reconcile_sweep_seconds",
		Help:    "Duration of one reconciliation scan.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
)

// Reconciler scans the views and emits ticks. Create it with New.
type Reconciler struct {
	o      Options
	log    *slog.Logger
	stock  *views.Stock
	pols   *views.Policies
	avail  *views.Availability
	orders *views.Orders

	mu          sync.Mutex
	owned       map[int32]bool // stock partitions; nil: every partition
	ownedOrders map[int32]bool // orders partitions; nil: every partition

	// sent remembers the ticks of recent scans, so a SKU whose tick is still
	// queued behind a replay flood is not ticked again every Interval.
	sent map[string]sentTick
}

type sentTick struct {
	version string
	at      time.Time
}

// retickAfter is how long a tick for the same answer is not repeated.
func (r *Reconciler) retickAfter() time.Duration { return 10 * r.o.Interval }

// New creates the reconciler's views.
func New(o Options) (*Reconciler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	vopts := func(name string) []goka.ViewOption {
		return append(o.Kafka.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, name))))
	}
	r := &Reconciler{o: o, log: log.With("component", "reconciler"), sent: map[string]sentTick{}}
	var err error
	if r.stock, err = views.NewStock(o.Kafka.Brokers, vopts("stock")...); err != nil {
		return nil, err
	}
	if r.pols, err = views.NewPolicies(o.Kafka.Brokers, vopts("policies")...); err != nil {
		return nil, err
	}
	if r.avail, err = views.NewAvailability(o.Kafka.Brokers, vopts("availability")...); err != nil {
		return nil, err
	}
	if r.orders, err = views.NewOrders(o.Kafka.Brokers, vopts("orders")...); err != nil {
		return nil, err
	}
	return r, nil
}

// Rebalanced restricts the reconciler to the partitions this process's
// stock processor owns; pass it to goka.WithRebalanceCallback.
func (r *Reconciler) Rebalanced(a goka.Assignment) {
	owned := partitions(a)
	r.mu.Lock()
	r.owned = owned
	r.mu.Unlock()
}

func partitions(a goka.Assignment) map[int32]bool {
	owned := make(map[int32]bool, len(a))
	for p := range a {
		owned[p] = true
	}
	return owned
}

// RebalancedOrders restricts order deadline ticks to the partitions this
// process's orders processor owns; pass it to goka.WithRebalanceCallback.
func (r *Reconciler) RebalancedOrders(a goka.Assignment) {
	owned := partitions(a)
	r.mu.Lock()
	r.ownedOrders = owned
	r.mu.Unlock()
}

// Run scans every Interval until ctx is cancelled.
func (r *Reconciler) Run(ctx context.Context) error {
	em, err := goka.NewEmitter(r.o.Kafka.Brokers, schema.StockTicks, new(codec.Bytes), r.o.Kafka.EmitterOptions()...)
	if err != nil {
		return fmt.Errorf("reconciler emitter: %w", err)
	}
	oem, err := goka.NewEmitter(r.o.Kafka.Brokers, schema.Orders, new(codec.Bytes), r.o.Kafka.EmitterOptions()...)
	if err != nil {
		return errors.Join(fmt.Errorf("reconciler emitter: %w", err), em.Finish())
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, v := range []interface{ Run(context.Context) error }{r.stock, r.pols, r.avail, r.orders} {
		g.Go(func() error {
			if err := v.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		t := time.NewTicker(r.o.Interval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
			if !r.stock.Ready() || !r.pols.Ready() || !r.avail.Ready() || !r.orders.Ready() {
				continue
			}
			n, err := r.Sweep(em)
			m, oerr := r.SweepOrders(oem)
			if err = errors.Join(err, oerr); err != nil && !errors.Is(err, views.ErrNotReady) {
				r.log.Warn("reconcile scan failed", "err", err)
			} else if n+m > 0 {
				r.log.Debug("reconcile scan", "stock_ticks", n, "order_ticks", m)
			}
		}
	})
	err = g.Wait()
	return errors.Join(err, em.Finish(), oem.Finish())
}

// Sweep scans once and emits a tick per SKU whose answer changed. It is not
// safe for concurrent use.
func (r *Reconciler) Sweep(em *goka.Emitter) (int, error) {
	start := time.Now()
	defer func() { sweepSeconds.Observe(time.Since(start).Seconds()) }()
	now := r.o.Now().UTC()
	r.mu.Lock()
	owned := r.owned
	r.mu.Unlock()
	// Forget ticks old enough to be repeated anyway, so entries for
	// finished orders and for partitions now owned elsewhere go away.
	for k, st := range r.sent {
		if now.Sub(st.at) >= r.retickAfter() {
			delete(r.sent, k)
		}
	}
	n := 0
	var errs []error
	err := r.stock.Each(func(s inventory.State) bool {
		if owned != nil && !owned[r.partition(s.SKU)] {
			return true
		}
		pol, err := schema.Gather(s, r.pols.GetPolicy, r.o.Base)
		if errors.Is(err, views.ErrNotReady) {
			errs = append(errs, err)
			return false
		}
		if err != nil {
			errs = append(errs, err) // one SKU's problem must not stall the rest
			return true
		}
		snap := inventory.Evaluate(s, pol, now)
		pub, err := r.avail.Get(s.SKU)
		if errors.Is(err, views.ErrNotReady) {
			errs = append(errs, err)
			return false
		}
		if err != nil {
			// The published value does not decode (a stray producer?):
			// tick the SKU so the processor publishes a good one over it.
			errs = append(errs, err)
			pub = nil
		}
		// A reservation past its TTL must be released in the state, even
		// when that does not change the answer.
		due := inventory.DueAt(s)
		dueNow := !due.IsZero() && !now.Before(due)
		if pub.GetVersion() == snap.Version && !dueNow {
			delete(r.sent, s.SKU)
			return true
		}
		if st, ok := r.sent[s.SKU]; ok && st.version == snap.Version && now.Sub(st.at) < r.retickAfter() {
			return true
		}
		tick := &pb.StockTick{Sku: s.SKU, At: timestamppb.New(now), PublishedVersion: pub.GetVersion()}
		b, err := proto.Marshal(tick)
		if err == nil {
			_, err = em.Emit(s.SKU, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("emit tick for %s: %w", s.SKU, err))
			return true
		}
		r.sent[s.SKU] = sentTick{version: snap.Version, at: now}
		n++
		ticks.Inc()
		return true
	})
	return n, errors.Join(append(errs, err)...)
}

// SweepOrders emits an OrderTick for every order of the owned partitions
// that is due (inventory.OrderDueAt): a pending order past its decision
// deadline, or a reserved order whose earliest hold has run out, so the saga
// records it expired and releases its lines. Not safe for concurrent use.
func (r *Reconciler) SweepOrders(em *goka.Emitter) (int, error) {
	now := r.o.Now().UTC()
	r.mu.Lock()
	owned := r.ownedOrders
	r.mu.Unlock()
	n := 0
	var errs []error
	err := r.orders.Each(func(o inventory.Order) bool {
		due := inventory.OrderDueAt(o)
		if due.IsZero() || now.Before(due) || (owned != nil && !owned[r.partition(o.ID)]) {
			return true
		}
		key := "order/" + o.ID
		if st, ok := r.sent[key]; ok && now.Sub(st.at) < r.retickAfter() {
			return true
		}
		b, err := codecs.MarshalDeterministic(&pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: o.ID, At: timestamppb.New(now)}}})
		if err == nil {
			_, err = em.Emit(o.ID, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("emit order tick for %s: %w", o.ID, err))
			return true
		}
		r.sent[key] = sentTick{at: now}
		n++
		ticks.Inc()
		return true
	})
	return n, errors.Join(append(errs, err)...)
}

// partition is where goka's producers place key.
func (r *Reconciler) partition(key string) int32 { return schema.Partition(key, r.o.Kafka.Partitions) }
