package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
)

// Observation is what a goka view tells Metrics about itself.
type Observation struct {
	// Topic is the view's changelog topic.
	Topic string
	// Recovered: the view has caught up with its changelog and runs.
	Recovered bool
	// Next is, per partition, the offset of the next changelog message the
	// view will read. Nil once the view stops.
	Next map[int32]int64
}

// Observed is a view Metrics reports on. Stock, Policies, Orders and
// Availability are Observed; a goka view kept elsewhere becomes one through
// ObserveView.
type Observed interface {
	Observe(ctx context.Context) Observation
}

// Observe implements Observed.
func (t *table) Observe(ctx context.Context) Observation {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopping {
		return Observation{Topic: t.name}
	}
	return ObserveView(ctx, t.view)
}

// ObserveView observes a goka view. The caller must keep the view from
// stopping meanwhile (goka's View.Run tears its partitions down without
// synchronisation when it returns), as Observe does.
func ObserveView(ctx context.Context, v *goka.View) Observation {
	o := Observation{Topic: v.Topic(), Recovered: v.Recovered(), Next: map[int32]int64{}}
	for p, st := range v.Stats(ctx).Partitions {
		// Until a partition has read a message its next offset is where
		// its recovery starts (0 before Run: the whole changelog is ahead).
		var next int64
		if st.Recovery != nil {
			next = st.Recovery.Offset
		}
		if st.Input != nil && st.Input.Count > 0 {
			next = st.Input.LastOffset + 1
		}
		o.Next[p] = next
	}
	return o
}

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	// Brokers are the cluster whose changelog heads lag is measured against.
	Brokers []string
	// Sarama configures the client that reads the heads (default
	// goka.DefaultConfig()); give Metrics a config of its own.
	Sarama *sarama.Config
	// Interval between readings of the changelog heads (default 5s).
	Interval time.Duration
	// Logger reports failed readings; nil discards.
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o MetricsOptions) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("view metrics: no brokers given"))
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("view metrics: interval %s is negative", o.Interval))
	}
	return errors.Join(errs...)
}

// Metrics is a prometheus.Collector of, per view (label view):
//
//	skuflow_view_recovered      1 when the view has caught up with its changelog and runs, else 0
//	skuflow_view_lag_messages   changelog messages the view has yet to read, summed over partitions
//
// Recovery is read at each scrape. Lag is the changelog heads read by Run
// (every Interval) minus the offsets the view has reached at the scrape, so
// it shows a recovery's progress live; a head that moved since the last
// reading is counted at the next one. While the heads cannot be read (no
// reading for three intervals) or the view is stopped, lag is left out
// rather than reported stale.
type Metrics struct {
	opts      MetricsOptions
	log       *slog.Logger
	recovered *prometheus.Desc
	lag       *prometheus.Desc

	mu    sync.Mutex
	views []namedView
	heads map[string]heads // by view name
}

type namedView struct {
	name string
	v    Observed
}

type heads struct {
	at      time.Time
	offsets map[int32]int64
}

// NewMetrics returns Metrics reporting on no view yet: Add them, register
// Metrics on a prometheus.Registerer and Run it.
func NewMetrics(o MetricsOptions) (*Metrics, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Metrics{
		opts: o, log: log, heads: map[string]heads{},
		recovered: prometheus.NewDesc("skuflow_view_recovered",
			"1 when the view has caught up with its changelog and is running, else 0.", []string{"view"}, nil),
		lag: prometheus.NewDesc("skuflow_view_lag_messages",
			"Changelog messages the view has yet to read (head minus the view's next offset, summed over partitions).", []string{"view"}, nil),
	}, nil
}

// Add reports on v under name (stock, policies, orders, ...).
func (m *Metrics) Add(name string, v Observed) error {
	if name == "" || v == nil {
		return errors.New("view metrics: a view needs a name and a value")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, nv := range m.views {
		if nv.name == name {
			return fmt.Errorf("view metrics: view %q added twice", name)
		}
	}
	m.views = append(m.views, namedView{name, v})
	slices.SortFunc(m.views, func(a, b namedView) int { return strings.Compare(a.name, b.name) })
	return nil
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.recovered
	ch <- m.lag
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.mu.Lock()
	vs := slices.Clone(m.views)
	m.mu.Unlock()
	for _, nv := range vs {
		o := nv.v.Observe(ctx)
		rec := 0.0
		if o.Recovered {
			rec = 1
		}
		ch <- prometheus.MustNewConstMetric(m.recovered, prometheus.GaugeValue, rec, nv.name)
		if lag, ok := m.lagOf(nv.name, o); ok {
			ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(lag), nv.name)
		}
	}
}

// lagOf is the view's lag against the last heads read, if they are fresh
// and cover every partition.
func (m *Metrics) lagOf(name string, o Observation) (int64, bool) {
	if o.Next == nil {
		return 0, false
	}
	m.mu.Lock()
	h, ok := m.heads[name]
	m.mu.Unlock()
	if !ok || time.Since(h.at) > 3*m.opts.Interval {
		return 0, false
	}
	var lag int64
	for p, next := range o.Next {
		head, ok := h.offsets[p]
		if !ok {
			return 0, false
		}
		lag += max(0, head-next)
	}
	return lag, true
}

// Run reads the views' changelog heads every Interval until ctx is
// cancelled.
func (m *Metrics) Run(ctx context.Context) error {
	c := &headClient{o: m.opts}
	// A reading blocked on an unreachable cluster must not hold shutdown
	// up: closing the client ends it.
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	defer c.close()
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		m.readHeads(ctx, c)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readHeads reads every view's changelog heads.
func (m *Metrics) readHeads(ctx context.Context, hc *headClient) {
	c, err := hc.get()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("view metrics: cannot reach the cluster to read changelog heads", "err", err)
		}
		return
	}
	m.mu.Lock()
	vs := slices.Clone(m.views)
	m.mu.Unlock()
	for _, nv := range vs {
		if ctx.Err() != nil {
			return
		}
		o := nv.v.Observe(ctx)
		if o.Next == nil {
			continue
		}
		offsets := make(map[int32]int64, len(o.Next))
		var err error
		for p := range o.Next {
			if offsets[p], err = c.GetOffset(o.Topic, p, sarama.OffsetNewest); err != nil {
				break
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("view metrics: cannot read changelog heads", "view", nv.name, "topic", o.Topic, "err", err)
			}
			continue
		}
		m.mu.Lock()
		m.heads[nv.name] = heads{at: time.Now(), offsets: offsets}
		m.mu.Unlock()
	}
}

// headClient is Run's Kafka client, connected on first use (and again
// after a failure to connect) and closed once.
type headClient struct {
	o      MetricsOptions
	mu     sync.Mutex
	client sarama.Client
	closed bool
}

var errClosed = errors.New("view metrics: stopped")

func (h *headClient) get() (sarama.Client, error) {
	h.mu.Lock()
	c, closed := h.client, h.closed
	h.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if c != nil {
		return c, nil
	}
	cfg := h.o.Sarama
	if cfg == nil {
		cfg = goka.DefaultConfig()
	}
	c, err := sarama.NewClient(h.o.Brokers, cfg)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = c.Close()
		return nil, errClosed
	}
	h.client = c
	return c, nil
}

func (h *headClient) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	if h.client != nil {
		_ = h.client.Close()
	}
}
