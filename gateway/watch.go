package gateway

// WatchAvailability follows the compacted availability topic, through a
// views.AvailabilityFeed, and not the stock table: every change a watcher
// must see (a new event, but also a merchant location going stale, a
// reservation expiring, a location closing, which come with no event) is
// published on that topic within seconds, by the stock processor, and by the
// reconciler (internal/reconcile) for the changes nothing else announces.
// Evaluating the stock table in the gateway instead would need timers per
// SKU and a fan-out of every policy change to its SKUs, a second copy of
// what the reconciler already does. A watcher therefore sees the answers
// downstream consumers of the topic see, region-less and unfiltered, with
// the evaluated_at of their publication.
//
// A watch subscribes to the hub first and reads the current answers second,
// so no change falls between the two. The feed numbers its updates and every
// read says which updates it contains (see views.AvailabilityFeed); a
// buffered update the read already contains is dropped, so the client never
// sees an answer older than one it was sent, and an answer equal to the last
// one sent for the SKU is not sent twice.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// Defaults of WatchOptions.
const (
	// DefaultMaxWatchers is how many watches a gateway serves at once.
	DefaultMaxWatchers = 2000
	// DefaultWatchBuffer is how many changes a watcher may fall behind
	// before it is cut off.
	DefaultWatchBuffer = 1024
	// MaxWatchBuffer bounds WatchOptions.Buffer: each watcher allocates its
	// buffer when it starts.
	MaxWatchBuffer = 1 << 20
	// maxVersionLength bounds a version a client passes back.
	maxVersionLength = 256
)

// WatchOptions configure WatchAvailability (gRPC) and its Server-Sent
// Events twin, GET /v1/availability:watch.
type WatchOptions struct {
	// Source is the change feed watchers follow (views.NewAvailabilityFeed);
	// nil: the gateway offers no watch (gRPC Unimplemented, HTTP 501).
	Source views.AvailabilityFeed
	// MaxWatchers bounds the watches served at once, gRPC and SSE
	// together; past it a new watch gets ResourceExhausted (HTTP 429).
	// 0: DefaultMaxWatchers.
	MaxWatchers int
	// Buffer is how many changes a watcher may fall behind; one more and
	// its stream ends with ResourceExhausted. 0: DefaultWatchBuffer.
	Buffer int
	// MaxSKUs bounds the SKUs of one watch. 0: as many as one
	// BatchGetAvailability takes (Options.BatchLimit, DefaultBatchLimit).
	MaxSKUs int
}

// validate reports every problem with the options.
func (o WatchOptions) validate() []error {
	var errs []error
	if o.MaxWatchers < 0 {
		errs = append(errs, fmt.Errorf("gateway: max watchers %d is negative (0: the default %d)", o.MaxWatchers, DefaultMaxWatchers))
	}
	if o.Buffer < 0 || o.Buffer > MaxWatchBuffer {
		errs = append(errs, fmt.Errorf("gateway: watch buffer %d is outside [0, %d] (0: the default %d)", o.Buffer, MaxWatchBuffer, DefaultWatchBuffer))
	}
	if o.MaxSKUs < 0 {
		errs = append(errs, fmt.Errorf("gateway: max SKUs per watch %d is negative (0: the batch limit)", o.MaxSKUs))
	}
	return errs
}

// watchService serves watches over both transports.
type watchService struct {
	feed    views.AvailabilityFeed
	hub     *watchHub
	maxSKUs int
	log     *slog.Logger
	// stopListening detaches the hub from the feed.
	stopListening func()
	// heartbeat is how often an idle SSE stream gets a comment line, so
	// that proxies keep it open and a vanished client is noticed.
	heartbeat time.Duration
	// sseGrace bounds how long ending an SSE stream waits for a write
	// stuck on a client that does not read.
	sseGrace time.Duration
}

// newWatchService subscribes a hub to o.Source, with its metrics (watchers
// by transport, watchers cut off, watches refused) on reg; nil without a
// source.
func newWatchService(o WatchOptions, reg prometheus.Registerer, log *slog.Logger) (*watchService, error) {
	if o.Source == nil {
		return nil, nil
	}
	m, err := newWatchMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &watchService{
		feed: o.Source, maxSKUs: cmp.Or(o.MaxSKUs, DefaultBatchLimit), log: log,
		hub:       newWatchHub(cmp.Or(o.MaxWatchers, DefaultMaxWatchers), cmp.Or(o.Buffer, DefaultWatchBuffer), m, log),
		heartbeat: 15 * time.Second, sseGrace: 2 * time.Second,
	}
	s.stopListening = o.Source.Listen(s.hub.publish, s.hub.hasWatchers)
	return s, nil
}

// close ends every watch (Unavailable) and detaches the hub from the feed.
func (s *watchService) close() {
	if s == nil {
		return
	}
	s.hub.close()
	s.stopListening()
}

// watchQuery is a validated watch request.
type watchQuery struct {
	all bool
	// skus are distinct, in request order.
	skus     []string
	versions map[string]string
}

// parse validates req.
func (s *watchService) parse(req *pb.WatchAvailabilityRequest) (watchQuery, error) {
	q := watchQuery{all: req.GetAll(), versions: req.GetVersions()}
	skus := req.GetSku()
	switch {
	case q.all && len(skus) > 0:
		return q, apierr.Public(apierr.ErrInvalidArgument, "give either sku (the SKUs to watch) or all = true, not both")
	case !q.all && len(skus) == 0:
		return q, apierr.Public(apierr.ErrInvalidArgument, "nothing to watch: give the SKUs to watch (sku), or all = true to watch every SKU")
	case len(skus) > s.maxSKUs:
		return q, apierr.Publicf(apierr.ErrInvalidArgument, "%d SKUs given; one watch takes at most %d", len(skus), s.maxSKUs)
	}
	seen := make(map[string]bool, len(skus))
	for i, sku := range skus {
		if err := inventory.ValidateSKU(fmt.Sprintf("sku[%d]", i), sku); err != nil {
			return q, apierr.Invalid(err)
		}
		if !seen[sku] {
			seen[sku] = true
			q.skus = append(q.skus, sku)
		}
	}
	for sku, v := range q.versions {
		if err := inventory.ValidateSKU("versions key", sku); err != nil {
			return q, apierr.Invalid(err)
		}
		if len(v) > maxVersionLength {
			return q, apierr.Publicf(apierr.ErrInvalidArgument, "versions[%q] is %d bytes, longer than %d: pass back the version an answer carried", sku, len(v), maxVersionLength)
		}
	}
	return q, nil
}

// watchSession is one watch being served.
type watchSession struct {
	s *watchService
	q watchQuery
	w *watcher
	// stopping is the feed's: closed when no update comes any more.
	stopping <-chan struct{}
	// after is, for all = true, the sequence number the scan of the
	// current answers contained.
	after uint64
	// readSeq is, per watched SKU (for all = true: per SKU read again after
	// the scan), the sequence number its read contained.
	readSeq map[string]uint64
	// sent is, per watched SKU, the version the client holds.
	sent map[string]string
}

// open checks the feed and takes a watcher slot. Close the session.
func (s *watchService) open(transport string, q watchQuery) (*watchSession, error) {
	if !s.feed.Ready() {
		return nil, &apierr.LookupError{Views: "availability", Lookup: "availability feed", Err: views.ErrNotReady}
	}
	w, err := s.hub.subscribe(transport, q.all, q.skus)
	if err != nil {
		return nil, err
	}
	return &watchSession{s: s, q: q, w: w, stopping: s.feed.Stopping(), readSeq: map[string]uint64{}, sent: map[string]string{}}, nil
}

func (ss *watchSession) close() { ss.s.hub.unsubscribe(ss.w) }

// run sends the current answers, the synced marker, then every change,
// until ctx ends, the watcher is cut off or the transport fails.
func (ss *watchSession) run(ctx context.Context, p *watchPump) error {
	if err := ss.sendCurrent(ctx, p); err != nil {
		return err
	}
	if err := ss.send(ctx, p, &pb.WatchAvailabilityResponse{Synced: true}); err != nil {
		return err
	}
	for {
		// A watcher cut off ends now, even with changes still buffered.
		select {
		case <-ss.w.done:
			return ss.w.err
		default:
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx) // errKeyRevoked, or the client gone
		case <-ss.w.done:
			return ss.w.err
		case <-ss.stopping:
			return errFeedStopped
		case <-p.failed:
			return p.err
		case u := <-ss.w.ch:
			if !ss.fresh(u) {
				continue
			}
			if err := ss.send(ctx, p, &pb.WatchAvailabilityResponse{Availability: u.a}); err != nil {
				return err
			}
		}
	}
}

// fresh reports whether u is news to the client, and notes it as sent.
func (ss *watchSession) fresh(u watchUpdate) bool {
	if ss.q.all {
		return u.seq > ss.after && u.seq > ss.readSeq[u.sku]
	}
	sku := u.sku
	if u.seq <= ss.readSeq[sku] {
		return false // the read of the current answer contained it
	}
	if v, ok := ss.sent[sku]; ok && v == u.a.GetVersion() {
		return false
	}
	ss.sent[sku] = u.a.GetVersion()
	return true
}

// sendCurrent sends every watched SKU's current answer but those the
// client holds.
func (ss *watchSession) sendCurrent(ctx context.Context, p *watchPump) error {
	lookupErr := func(err error) error {
		return &apierr.LookupError{Views: "availability", Lookup: "availability feed", Err: err}
	}
	if ss.q.all {
		var sendErr error
		seq, err := ss.s.feed.Scan(func(sku string, a *pb.Availability, err error) bool {
			if err != nil {
				// The reconciler publishes a good answer over it.
				ss.s.log.Warn("watch: skipping a published answer that does not decode", "sku", sku, "err", err)
				return true
			}
			if v, ok := ss.q.versions[sku]; ok && v == a.GetVersion() {
				return true
			}
			sendErr = ss.send(ctx, p, &pb.WatchAvailabilityResponse{Availability: a})
			return sendErr == nil
		})
		if sendErr != nil {
			return sendErr
		}
		if err != nil {
			return lookupErr(err)
		}
		ss.after = seq
		// What changed while the scan was being sent was only noted: send
		// each such SKU's latest answer now (a later change reaches the
		// buffer, and one the read contains is dropped by fresh).
		changed := ss.s.hub.endSync(ss.w)
		skus := make([]string, 0, len(changed))
		for sku, s := range changed {
			if s > seq {
				skus = append(skus, sku)
			}
		}
		slices.Sort(skus)
		for _, sku := range skus {
			a, rseq, err := ss.s.feed.Latest(sku)
			if errors.Is(err, views.ErrNotReady) {
				return lookupErr(err)
			}
			ss.readSeq[sku] = rseq
			if err != nil || a == nil {
				continue // undecodable (the reconciler publishes over it) or deleted
			}
			if err := ss.send(ctx, p, &pb.WatchAvailabilityResponse{Availability: a}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, sku := range ss.q.skus {
		a, seq, err := ss.s.feed.Latest(sku)
		if errors.Is(err, views.ErrNotReady) {
			return lookupErr(err)
		}
		ss.readSeq[sku] = seq
		if err != nil {
			ss.s.log.Warn("watch: skipping a published answer that does not decode", "sku", sku, "err", err)
			continue
		}
		if a == nil {
			continue // not published yet: its first answer comes as a change
		}
		ss.sent[sku] = a.GetVersion()
		if v, ok := ss.q.versions[sku]; ok && v == a.GetVersion() {
			continue
		}
		if err := ss.send(ctx, p, &pb.WatchAvailabilityResponse{Availability: a}); err != nil {
			return err
		}
	}
	return nil
}

// send hands m to the transport's pump; it waits while the previous message
// is being written, but not past the watcher's end or ctx's.
func (ss *watchSession) send(ctx context.Context, p *watchPump, m *pb.WatchAvailabilityResponse) error {
	select {
	case <-ss.w.done:
		return ss.w.err
	default:
	}
	select {
	case p.in <- m:
		return nil
	case <-p.failed:
		return p.err
	case <-ss.w.done:
		return ss.w.err
	case <-ss.stopping: // a Scan waiting here would hold the feed up
		return errFeedStopped
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// errFeedStopped ends the watches of a feed that stopped: it is no longer
// ready (Unavailable).
var errFeedStopped = apierr.Public(views.ErrNotReady, "the availability feed stopped; reconnect, passing the versions you hold, to resume")

// watchPump writes a stream's messages in a goroutine of its own. A write
// blocks while the client does not read (gRPC flow control, a full TCP
// window); the session does not wait for it, so a watcher cut off ends at
// once, and the hub never waits for either.
type watchPump struct {
	in     chan *pb.WatchAvailabilityResponse
	failed chan struct{} // closed when a write failed; err says how
	err    error
	done   chan struct{} // closed when the goroutine has returned
}

// startWatchPump starts writing with write; with heartbeat > 0, beat is
// written whenever that long passed without a message.
func startWatchPump(write func(*pb.WatchAvailabilityResponse) error, heartbeat time.Duration, beat func() error) *watchPump {
	p := &watchPump{in: make(chan *pb.WatchAvailabilityResponse), failed: make(chan struct{}), done: make(chan struct{})}
	go p.loop(write, heartbeat, beat)
	return p
}

func (p *watchPump) loop(write func(*pb.WatchAvailabilityResponse) error, heartbeat time.Duration, beat func() error) {
	defer close(p.done)
	var tick <-chan time.Time
	if heartbeat > 0 && beat != nil {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		tick = t.C
	}
	for {
		var err error
		select {
		case m, ok := <-p.in:
			if !ok {
				return
			}
			err = write(m)
		case <-tick:
			err = beat()
		}
		if err != nil {
			p.err = err
			close(p.failed)
			return
		}
	}
}

// stop ends the pump after the write in progress, if any. Call it once.
func (p *watchPump) stop() { close(p.in) }

// availabilityService is the availability API: the query handlers of
// availabilityServer, and WatchAvailability.
type availabilityService struct {
	*availabilityServer
	watch *watchService
}

// WatchAvailability implements the gRPC stream. When it returns (a watcher
// cut off), grpc-go ends the stream, which also ends a Send still blocked
// on the client's flow control, so the pump's goroutine does not outlive it.
func (s availabilityService) WatchAvailability(req *pb.WatchAvailabilityRequest, stream grpc.ServerStreamingServer[pb.WatchAvailabilityResponse]) error {
	if s.watch == nil {
		return apierr.Public(apierr.ErrUnimplemented, "this gateway has no availability feed to watch")
	}
	q, err := s.watch.parse(req)
	if err != nil {
		return err
	}
	sess, err := s.watch.open("grpc", q)
	if err != nil {
		return err
	}
	defer sess.close()
	p := startWatchPump(stream.Send, 0, nil)
	defer p.stop()
	return sess.run(stream.Context(), p)
}
