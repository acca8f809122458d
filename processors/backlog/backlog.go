package backlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Backlog defaults.
const (
	DefaultLag      = 1000
	DefaultMaxDefer = 5 * time.Second
	DefaultPeriod   = 25 * time.Millisecond
)

// Options configure a Backlog.
type Options struct {
	Kafka kafkacfg.Options
	// Lag is how many messages an input partition must be behind its head
	// for the processor to hold back publishing (0: DefaultLag).
	Lag int64
	// MaxDefer bounds how long an answer is held back while the backlog
	// lasts (0: DefaultMaxDefer).
	MaxDefer time.Duration
	// Period between refreshes of the partitions' heads (0:
	// DefaultPeriod).
	Period time.Duration
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Lag == 0 {
		o.Lag = DefaultLag
	}
	if o.MaxDefer == 0 {
		o.MaxDefer = DefaultMaxDefer
	}
	if o.Period == 0 {
		o.Period = DefaultPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.Lag < 0 {
		errs = append(errs, fmt.Errorf("defer-publish lag %d is negative", o.Lag))
	}
	if o.MaxDefer < 0 {
		errs = append(errs, fmt.Errorf("maximum publish deferral %s is negative", o.MaxDefer))
	}
	if o.Period < 0 {
		errs = append(errs, fmt.Errorf("backlog period %s is negative", o.Period))
	}
	return errors.Join(errs...)
}

var (
	inputLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "skuflow_stock_input_lag_messages",
		Help: "Messages between the stock processor's position and the head of each input partition it owns.",
	}, []string{"topic", "partition"})
	deferredSKUs = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "skuflow_stock_deferred_skus",
		Help: "SKUs whose availability answer is held back while the stock processor works through a backlog.",
	})
	deferredFlushes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "skuflow_stock_deferred_flushes_total",
		Help: "Deferred-publish ticks the stock processor sent itself.",
	})
)

// Backlog lets the stock processor coalesce its availability publishing
// during a replay flood. Only a SKU's latest answer matters on the compacted
// availability topic, and while an input partition is far behind its head
// every answer computed from it is about to be superseded: evaluating and
// publishing each one would spend most of the processor's time on answers
// nobody will read. So while a partition is more than Lag messages behind,
// the processor folds events into the table as always (queries, which read
// the table, stay right) but only records the SKU as deferred, with the
// answer it last published. When the partition has caught up, or a SKU has
// been deferred for MaxDefer, the Backlog sends the processor a deferred
// StockTick for the SKU, and the processor publishes the answer if it
// differs from the one published before the deferral. A SKU is therefore
// evaluated and published about once per backlog instead of once per event.
//
// The deferral records live in memory. They are lost in a crash or when the
// partition moves to another instance; the reconciler then finds the
// published answer behind the table and ticks the SKU, as it does for any
// other lost publish.
//
// Create it with New, pass it to New, run it with Run beside the
// processor, and pass Rebalanced to goka.WithRebalanceCallback.
type Backlog struct {
	o      Options
	log    *slog.Logger
	topics []string
	now    func() time.Time

	// heads fetches the input partitions' high-water marks; committed
	// fetches the group's committed offsets of the given partitions (nil:
	// none); send emits a deferred tick. They are set by New (tests
	// replace them).
	heads     func() (map[string]map[int32]int64, error)
	committed func(parts []int32) (map[string]map[int32]int64, error)
	send      func(sku string, at time.Time) error
	close     func() error
	// warned rate-limits the warnings of Step, per kind.
	warned map[string]time.Time

	// parts is replaced, never modified, under mu; callbacks read it
	// without locking.
	mu    sync.Mutex
	parts atomic.Pointer[map[int32]*backlogPart]
}

type backlogPart struct {
	mu sync.Mutex
	// session is the context of the partition ownership the deferrals
	// belong to. goka: each assignment runs a new partition processor
	// whose goka.Context.Context() is a new value; identity tells
	// ownerships apart.
	session context.Context
	pos     map[string]int64 // input topic -> next offset to process
	head    map[string]int64 // input topic -> high-water mark
	pending map[string]*Deferral
	queue   []queued // deferrals in order of since, for MaxDefer
	// started is set once the committed offsets were read for the
	// positions not known yet.
	started bool
}

// Deferral is one SKU's held-back answer.
type Deferral struct {
	// Before is the version of the answer published before the deferral.
	Before string
	// At is the event time of the latest deferred change: the answer is
	// evaluated then, as the change's own publish would have been.
	At time.Time
	// since is when the deferral began, or its last flush was sent.
	since time.Time
	// flushed is set once a deferred tick was sent for it.
	flushed bool
}

type queued struct {
	sku   string
	since time.Time
}

// New connects to the cluster for the inputs' heads and for the
// deferred ticks.
func New(o Options) (*Backlog, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	client, err := sarama.NewClient(o.Kafka.Brokers, o.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("stock backlog: %w", err)
	}
	em, err := goka.NewEmitter(o.Kafka.Brokers, schema.StockTicks, new(codec.Bytes), o.Kafka.EmitterOptions()...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("stock backlog emitter: %w", err), client.Close())
	}
	b := newBacklog(o)
	b.heads = func() (map[string]map[int32]int64, error) { return headOffsets(client, b.topics) }
	// goka: a new owner resumes from the group's committed offsets.
	b.committed = func(parts []int32) (map[string]map[int32]int64, error) {
		return committedOffsets(client, string(schema.StockGroup), b.topics, parts)
	}
	// goka: a tick keyed by SKU reaches the partition processor owning the
	// SKU, as every topic shares the partition count and the partitioner.
	b.send = func(sku string, at time.Time) error {
		v, err := codecs.MarshalDeterministic(&pb.StockTick{Sku: sku, At: timestamppb.New(at), Deferred: true})
		if err != nil {
			return err
		}
		pr, err := em.Emit(sku, v)
		if err != nil {
			return err
		}
		pr.Then(func(err error) {
			if err != nil {
				// The deferral stays; it is sent again after MaxDefer.
				b.log.Warn("deferred tick not delivered", "sku", sku, "err", err)
			}
		})
		return nil
	}
	b.close = func() error { return errors.Join(em.Finish(), client.Close()) }
	return b, nil
}

// NewDetached returns a Backlog that reaches no cluster: heads stands in
// for reading the inputs' heads and send for emitting a deferred tick; now
// (nil: time.Now) is its clock. Tests and benchmarks drive it with Step.
func NewDetached(o Options, heads func() (map[string]map[int32]int64, error), send func(sku string, at time.Time) error, now func() time.Time) *Backlog {
	b := newBacklog(o)
	b.heads, b.send = heads, send
	if now != nil {
		b.now = now
	}
	return b
}

func newBacklog(o Options) *Backlog {
	o.defaults()
	b := &Backlog{
		o:      o,
		log:    o.Logger.With("component", "stock-backlog"),
		topics: []string{string(schema.Supply), string(schema.SkuPolicies), string(schema.Demand)},
		now:    time.Now,
	}
	b.parts.Store(&map[int32]*backlogPart{})
	return b
}

// Run refreshes the heads and sends deferred ticks every Period until ctx
// ends.
func (b *Backlog) Run(ctx context.Context) error {
	defer func() {
		if b.close != nil {
			if err := b.close(); err != nil {
				b.log.Warn("closing", "err", err)
			}
		}
	}()
	t := time.NewTicker(b.o.Period)
	defer t.Stop()
	for {
		b.Step()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step refreshes the heads once and sends the deferred ticks that are due:
// every unflushed deferral of a partition that has caught up, and every
// deferral older than MaxDefer.
func (b *Backlog) Step() {
	heads, err := b.heads()
	if err != nil {
		b.warn(b.now(), "reading input heads (partitions without fresh heads are taken to be behind)", err)
	}
	parts := *b.parts.Load()
	if b.committed != nil {
		// Until a partition's first message, its position is the group's
		// committed offset, so its lag shows while it recovers.
		var unknown []int32
		for p, bp := range parts {
			if bp.positionsUnknown(b.topics) {
				unknown = append(unknown, p)
			}
		}
		if len(unknown) > 0 {
			committed, err := b.committed(unknown)
			if err != nil {
				b.warn(b.now(), "reading committed offsets", err)
			} else {
				for _, p := range unknown {
					parts[p].startAt(committed, p)
				}
			}
		}
	}
	now := b.now() // after the network calls, which may have been slow
	var due []string
	pending := 0
	for p, bp := range parts {
		due = append(due, bp.step(p, heads, b.topics, b.o.Lag, b.o.MaxDefer, now)...)
		bp.mu.Lock()
		pending += len(bp.pending)
		bp.mu.Unlock()
	}
	deferredSKUs.Set(float64(pending))
	for _, sku := range due {
		if err := b.send(sku, now); err != nil {
			// The deferral stays; it is sent again after MaxDefer.
			b.warn(now, "sending a deferred tick (for "+sku+" and maybe others)", err)
			continue
		}
		deferredFlushes.Inc()
	}
}

// warn logs at most one warning of a kind (its message up to " (") every
// ten seconds.
func (b *Backlog) warn(now time.Time, msg string, err error) {
	kind, _, _ := strings.Cut(msg, " (")
	b.mu.Lock()
	if b.warned == nil {
		b.warned = map[string]time.Time{}
	}
	quiet := now.Sub(b.warned[kind]) < 10*time.Second
	if !quiet {
		b.warned[kind] = now
	}
	b.mu.Unlock()
	if !quiet {
		b.log.Warn(msg, "err", err)
	}
}

// positionsUnknown reports whether the committed offsets were not read yet
// and no message of some topic was processed on the partition yet.
func (bp *backlogPart) positionsUnknown(topics []string) bool {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if bp.started {
		return false
	}
	for _, t := range topics {
		if _, ok := bp.pos[t]; !ok {
			return true
		}
	}
	return false
}

// startAt sets the unknown positions of partition p from committed offsets.
func (bp *backlogPart) startAt(committed map[string]map[int32]int64, p int32) {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.started = true
	for t, offs := range committed {
		if off, ok := offs[p]; ok && off >= 0 {
			if _, known := bp.pos[t]; !known {
				bp.pos[t] = off
			}
		}
	}
}

// step updates the partition's heads and returns the SKUs due a deferred
// tick. A partition is caught up when this round read the head of every
// input topic and none is more than lag ahead of the position.
func (bp *backlogPart) step(p int32, heads map[string]map[int32]int64, topics []string, lag int64, maxDefer time.Duration, now time.Time) []string {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	caughtUp := true
	for _, topic := range topics {
		h, ok := heads[topic][p]
		if !ok {
			caughtUp = false // no fresh head
			continue
		}
		bp.head[topic] = h
		if pos, ok := bp.pos[topic]; ok {
			inputLag.WithLabelValues(topic, strconv.Itoa(int(p))).Set(float64(max(0, h-pos)))
			if h-pos > lag {
				caughtUp = false
			}
		}
	}
	var due []string
	flush := func(sku string, d *Deferral) {
		d.flushed, d.since = true, now
		bp.queue = append(bp.queue, queued{sku, now})
		due = append(due, sku)
	}
	// Deferred for MaxDefer (or flushed that long ago without an answer,
	// e.g. a tick lost to a rebalance): send (again).
	for len(bp.queue) > 0 && now.Sub(bp.queue[0].since) >= maxDefer {
		q := bp.queue[0]
		bp.queue = bp.queue[1:]
		if d, ok := bp.pending[q.sku]; ok && d.since.Equal(q.since) {
			flush(q.sku, d)
		}
	}
	if caughtUp {
		for sku, d := range bp.pending {
			if !d.flushed {
				flush(sku, d)
			}
		}
	}
	if len(bp.queue) == 0 {
		bp.queue = nil // let a drained queue's array go
	}
	return due
}

// Rebalanced forgets the partitions this instance no longer owns (their
// lag too) and starts tracking the assigned ones, so their heads are read
// before the first message arrives; pass it to goka.WithRebalanceCallback.
//
// goka: a is keyed by partition number, the same for every input topic
// (co-partitioning).
func (b *Backlog) Rebalanced(a goka.Assignment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.parts.Load()
	parts := make(map[int32]*backlogPart, len(a))
	for p := range a {
		if parts[p] = old[p]; parts[p] == nil {
			parts[p] = newBacklogPart()
		}
	}
	for p := range old {
		if _, ok := a[p]; !ok {
			for _, t := range b.topics {
				inputLag.DeleteLabelValues(t, strconv.Itoa(int(p)))
			}
		}
	}
	b.parts.Store(&parts)
}

func newBacklogPart() *backlogPart {
	return &backlogPart{pos: map[string]int64{}, head: map[string]int64{}, pending: map[string]*Deferral{}}
}

func (b *Backlog) part(p int32) *backlogPart {
	if bp := (*b.parts.Load())[p]; bp != nil {
		return bp
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.parts.Load()
	if bp := old[p]; bp != nil {
		return bp
	}
	parts := make(map[int32]*backlogPart, len(old)+1)
	for q, bp := range old {
		parts[q] = bp
	}
	parts[p] = newBacklogPart()
	b.parts.Store(&parts)
	return parts[p]
}

// Claim ties partition p's deferrals to the partition ownership session
// (the callback's ctx.Context()). Deferrals made in an earlier one are kept
// but forget what was published before them: between the two the partition
// may have been another instance's (a rebalance, a lost group session, a
// rebuilt processor), which may have published since. Their answers are
// then published whatever they are.
func (b *Backlog) Claim(p int32, session context.Context) {
	if b == nil {
		return
	}
	bp := b.part(p)
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if bp.session == session {
		return
	}
	if bp.session != nil {
		for _, d := range bp.pending {
			d.Before = ""
		}
	}
	bp.session = session
}

// Observe records that the processor has reached offset on topic's
// partition, and reports whether that partition is more than Lag messages
// behind its head. A nil Backlog is never behind.
//
// goka: a partition's callbacks run on one goroutine, in offset order per
// topic, so offset+1 is the partition's position on topic; the lock is
// against Step and Rebalanced only.
func (b *Backlog) Observe(topic string, p int32, offset int64) bool {
	if b == nil {
		return false
	}
	bp := b.part(p)
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.pos[topic] = offset + 1
	h, ok := bp.head[topic]
	return ok && h-(offset+1) > b.o.Lag
}

// Extend moves an existing deferral's evaluation time to at, and reports
// whether the SKU was deferred.
func (b *Backlog) Extend(p int32, sku string, at time.Time) bool {
	return b.deferred(p, sku, func(d *Deferral) {
		if at.After(d.At) {
			d.At = at
		}
	})
}

// Reconciled absorbs a reconciler tick at at into sku's Deferral, if the
// SKU is deferred: the deferral is evaluated no earlier than at, and
// compared with published, the version the reconciler saw on the topic
// (which a lost publish may have left behind the deferral's own idea).
func (b *Backlog) Reconciled(p int32, sku string, at time.Time, published string) bool {
	return b.deferred(p, sku, func(d *Deferral) {
		d.Before = published
		if at.After(d.At) {
			d.At = at
		}
	})
}

// deferred applies f to sku's deferral under the partition's lock, and
// reports whether the SKU is deferred.
func (b *Backlog) deferred(p int32, sku string, f func(*Deferral)) bool {
	if b == nil {
		return false
	}
	bp := b.part(p)
	bp.mu.Lock()
	defer bp.mu.Unlock()
	d, ok := bp.pending[sku]
	if ok {
		f(d)
	}
	return ok
}

// Hold starts deferring sku's answer; before is the published answer's
// version.
func (b *Backlog) Hold(p int32, sku, before string, at time.Time) {
	bp := b.part(p)
	now := b.now()
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.pending[sku] = &Deferral{Before: before, At: at, since: now}
	bp.queue = append(bp.queue, queued{sku, now})
}

// Take ends sku's deferral and returns it.
func (b *Backlog) Take(p int32, sku string) (Deferral, bool) {
	if b == nil {
		return Deferral{}, false
	}
	bp := b.part(p)
	bp.mu.Lock()
	defer bp.mu.Unlock()
	d, ok := bp.pending[sku]
	if !ok {
		return Deferral{}, false
	}
	delete(bp.pending, sku)
	return *d, true
}

// headOffsets asks each partition leader for the high-water marks of
// topics' partitions, one request per broker.
func headOffsets(client sarama.Client, topics []string) (map[string]map[int32]int64, error) {
	version := int16(0)
	if client.Config().Version.IsAtLeast(sarama.V0_10_1_0) {
		version = 1
	}
	reqs := map[*sarama.Broker]*sarama.OffsetRequest{}
	var errs []error
	for _, t := range topics {
		parts, err := client.Partitions(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("partitions of %s: %w", t, err))
			continue
		}
		for _, p := range parts {
			br, err := client.Leader(t, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("leader of %s/%d: %w", t, p, err))
				continue
			}
			r := reqs[br]
			if r == nil {
				r = &sarama.OffsetRequest{Version: version}
				reqs[br] = r
			}
			r.AddBlock(t, p, sarama.OffsetNewest, 1)
		}
	}
	out := make(map[string]map[int32]int64, len(topics))
	for br, r := range reqs {
		resp, err := br.GetAvailableOffsets(r)
		if err != nil {
			// Drop the connection: the client reopens it on the next
			// Leader call (after a broker restart it is broken for good).
			_ = br.Close()
			errs = append(errs, fmt.Errorf("offsets from %s: %w", br.Addr(), err))
			continue
		}
		for t, blocks := range resp.Blocks {
			for p, blk := range blocks {
				if blk.Err != sarama.ErrNoError {
					errs = append(errs, fmt.Errorf("offset of %s/%d: %w", t, p, blk.Err))
					continue
				}
				off := blk.Offset
				if version == 0 && len(blk.Offsets) > 0 {
					off = blk.Offsets[0]
				}
				if out[t] == nil {
					out[t] = map[int32]int64{}
				}
				out[t][p] = off
			}
		}
	}
	if len(errs) > 0 {
		// A moved leader or a restarted broker: learn where the
		// partitions are now for the next round.
		if err := client.RefreshMetadata(topics...); err != nil {
			errs = append(errs, fmt.Errorf("refreshing metadata: %w", err))
		}
	}
	return out, errors.Join(errs...)
}

// committedOffsets asks the group's coordinator for its committed offsets
// of topics' partitions parts (-1: none).
func committedOffsets(client sarama.Client, group string, topics []string, parts []int32) (map[string]map[int32]int64, error) {
	coord, err := client.Coordinator(group)
	if err != nil {
		return nil, fmt.Errorf("coordinator of %s: %w", group, err)
	}
	req := &sarama.OffsetFetchRequest{ConsumerGroup: group, Version: 1}
	for _, t := range topics {
		for _, p := range parts {
			req.AddPartition(t, p)
		}
	}
	resp, err := coord.FetchOffset(req)
	if err != nil {
		_ = coord.Close()
		return nil, fmt.Errorf("committed offsets from %s: %w", coord.Addr(), err)
	}
	if resp.Err != sarama.ErrNoError {
		_ = client.RefreshCoordinator(group)
		return nil, fmt.Errorf("committed offsets from %s: %w", coord.Addr(), resp.Err)
	}
	out := make(map[string]map[int32]int64, len(topics))
	for t, blocks := range resp.Blocks {
		for p, blk := range blocks {
			if blk.Err != sarama.ErrNoError {
				// Loading, or not the coordinator any more: ask again
				// next round.
				_ = client.RefreshCoordinator(group)
				return nil, fmt.Errorf("committed offset of %s/%d: %w", t, p, blk.Err)
			}
			if out[t] == nil {
				out[t] = map[int32]int64{}
			}
			out[t][p] = blk.Offset
		}
	}
	return out, nil
}
