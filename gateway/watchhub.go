package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skuflow/skuflow/gateway/apierr"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// watchUpdate is one change on its way to a watcher. The answer is shared
// by every watcher it goes to and is never modified.
type watchUpdate struct {
	seq uint64
	sku string // the topic key
	a   *pb.Availability
}

// watcher is one watch's subscription to the hub.
type watcher struct {
	transport string
	all       bool
	skus      []string
	// ch is the bounded buffer of changes not yet taken by the stream.
	ch chan watchUpdate
	// done is closed when the hub lets go of the watcher: it fell behind
	// its buffer, or the hub closed. err says why; it is set before done
	// is closed.
	done chan struct{}
	err  error
	// listed: the hub still delivers to it; released: its slot is free.
	// Both are guarded by the hub's mutex.
	listed, released bool
	// syncing (an all-SKU watcher still sending the current answers):
	// updates are not buffered but noted in pending, the latest sequence
	// number per SKU, however many there are, so that a long first scan
	// of a large catalogue is not cut off by changes that the session
	// reads afresh once the scan is done (endSync). Guarded by the hub's
	// mutex.
	syncing bool
	pending map[string]uint64
}

// watchHub fans the feed's updates out to the watchers. It never blocks: a
// watcher whose buffer is full is cut off (its stream ends with
// ResourceExhausted) instead of holding back the feed or the other
// watchers. A watcher holds a slot from subscribe to unsubscribe, so at most
// max streams are served at once, cut off or not.
type watchHub struct {
	max, buffer int
	metrics     *watchMetrics
	log         *slog.Logger

	// watchers mirrors count for hasWatchers, which the feed calls on its
	// update path without the hub's lock.
	watchers atomic.Int32

	mu     sync.Mutex
	closed bool
	count  int
	bySKU  map[string]map[*watcher]struct{}
	all    map[*watcher]struct{}
}

func newWatchHub(maxWatchers, buffer int, m *watchMetrics, log *slog.Logger) *watchHub {
	return &watchHub{max: maxWatchers, buffer: buffer, metrics: m, log: log,
		bySKU: map[string]map[*watcher]struct{}{}, all: map[*watcher]struct{}{}}
}

// errHubClosed ends every watch when the gateway shuts down: its views are
// about to stop (Unavailable, and no fault).
var errHubClosed = apierr.Public(views.ErrNotReady, "the gateway is shutting down; reconnect, passing the versions you hold, to resume")

// subscribe registers a watcher of skus (or of every SKU) that receives
// every update published from now on.
func (h *watchHub) subscribe(transport string, all bool, skus []string) (*watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	if h.count >= h.max {
		h.metrics.refused.WithLabelValues(transport).Inc()
		return nil, apierr.Publicf(apierr.ErrResourceExhausted,
			"too many watchers: this gateway serves at most %d watches at once (--max-watchers); retry later or watch through another instance", h.max)
	}
	w := &watcher{transport: transport, all: all, skus: skus, ch: make(chan watchUpdate, h.buffer), done: make(chan struct{}), listed: true,
		syncing: all, pending: map[string]uint64{}}
	if all {
		h.all[w] = struct{}{}
	}
	for _, sku := range skus {
		set := h.bySKU[sku]
		if set == nil {
			set = map[*watcher]struct{}{}
			h.bySKU[sku] = set
		}
		set[w] = struct{}{}
	}
	h.count++
	h.watchers.Store(int32(h.count))
	h.metrics.watchers.WithLabelValues(transport).Inc()
	return w, nil
}

// unsubscribe ends w's subscription and frees its slot; calling it again
// does nothing.
func (h *watchHub) unsubscribe(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unlist(w)
	if !w.released {
		w.released = true
		h.count--
		h.watchers.Store(int32(h.count))
		h.metrics.watchers.WithLabelValues(w.transport).Dec()
	}
}

// unlist stops deliveries to w. The caller holds h.mu.
func (h *watchHub) unlist(w *watcher) {
	if !w.listed {
		return
	}
	w.listed = false
	if w.all {
		delete(h.all, w)
	}
	for _, sku := range w.skus {
		if set := h.bySKU[sku]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(h.bySKU, sku)
			}
		}
	}
}

// cutOff lets go of w with err. The caller holds h.mu.
func (h *watchHub) cutOff(w *watcher, err error, reason string) {
	if !w.listed {
		return
	}
	h.unlist(w)
	w.err = err
	close(w.done)
	h.metrics.cut.WithLabelValues(w.transport, reason).Inc()
}

// publish hands u to every watcher of its SKU. It is the feed's listener:
// it runs on the feed's update path and never blocks.
func (h *watchHub) publish(u views.AvailabilityUpdate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	watchers := h.bySKU[u.SKU]
	if len(watchers) == 0 && len(h.all) == 0 {
		return
	}
	a, err := u.Answer()
	if err != nil {
		// A value that does not decode (a stray producer): the reconciler
		// publishes a good answer over it, which watchers then get.
		h.log.Warn("watch: skipping an availability update that does not decode", "sku", u.SKU, "err", err)
		return
	}
	if a == nil {
		return // a deletion: nothing to tell
	}
	up := watchUpdate{seq: u.Seq, sku: u.SKU, a: a}
	for w := range watchers {
		h.offer(w, up)
	}
	for w := range h.all {
		h.offer(w, up)
	}
}

// offer queues up for w, or cuts w off if its buffer is full; for a
// syncing watcher it only notes the SKU. The caller holds h.mu.
func (h *watchHub) offer(w *watcher, up watchUpdate) {
	if w.syncing {
		w.pending[up.sku] = up.seq
		return
	}
	select {
	case w.ch <- up:
	default:
		h.cutOff(w, apierr.Publicf(apierr.ErrResourceExhausted,
			"watcher fell behind: %d changes were waiting to be sent, the buffer's limit (--watch-buffer); "+
				"the stream is ended rather than holding back the feed. Read faster, or reconnect passing the versions you hold to resume", h.buffer),
			"overflow")
	}
}

// endSync ends w's syncing: from now on its updates are buffered. It
// returns the SKUs updated meanwhile, each with its latest sequence number.
func (h *watchHub) endSync(w *watcher) map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := w.pending
	w.syncing, w.pending = false, nil
	return p
}

// close ends every watch with Unavailable and refuses new ones.
func (h *watchHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.all {
		h.cutOff(w, errHubClosed, "shutdown")
	}
	for _, set := range h.bySKU {
		for w := range set {
			h.cutOff(w, errHubClosed, "shutdown")
		}
	}
}

// hasWatchers reports whether any watch holds a slot: the feed skips work
// for its listeners while none does (views.AvailabilityFeed.Listen). A
// watch subscribes before it reads its first answers, so from then on the
// feed does that work.
func (h *watchHub) hasWatchers() bool { return h.watchers.Load() > 0 }

// watching is how many watches hold a slot.
func (h *watchHub) watching() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// watchMetrics are the hub's Prometheus metrics.
type watchMetrics struct {
	watchers *prometheus.GaugeVec
	cut      *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

// newWatchMetrics creates the metrics and registers them on reg (nil: not
// registered). Metrics a registerer already holds (a second gateway in the
// same process) are shared.
func newWatchMetrics(reg prometheus.Registerer) (*watchMetrics, error) {
	m := &watchMetrics{
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "skuflow_watchers",
			Help: "WatchAvailability streams being served, by transport (grpc, sse).",
		}, []string{"transport"}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skuflow_watchers_cut_off_total",
			Help: "Watch streams the gateway ended: reason overflow (the watcher fell behind its buffer) or shutdown.",
		}, []string{"transport", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skuflow_watchers_refused_total",
			Help: "Watches refused because the gateway served its maximum number of watchers.",
		}, []string{"transport"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	defer func() { // every series from the start, at 0
		for _, tr := range []string{"grpc", "sse"} {
			m.watchers.WithLabelValues(tr)
			m.refused.WithLabelValues(tr)
			for _, reason := range []string{"overflow", "shutdown"} {
				m.cut.WithLabelValues(tr, reason)
			}
		}
	}()
	m.watchers = registerWatchCollector(reg, m.watchers, &errs)
	m.cut = registerWatchCollector(reg, m.cut, &errs)
	m.refused = registerWatchCollector(reg, m.refused, &errs)
	return m, errors.Join(errs...)
}

// register registers c on reg, or returns the equal collector reg already
// holds.
func registerWatchCollector[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, fmt.Errorf("gateway: register watch metrics: %w", err))
	return c
}
