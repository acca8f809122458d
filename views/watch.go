package views

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// AvailabilityFeed follows the compacted availability topic: the latest
// answer published for every SKU, and every answer published from now on,
// including those that come with no event of their own (a merchant going
// stale, a reservation expiring, a location closing: the stock processor
// publishes them when the reconciler ticks the SKU).
//
// Every update the feed applies gets a sequence number, larger than every
// earlier one. A read says which updates it contains: Latest and Scan return
// the sequence number of the last update applied before the read, so an
// update with a larger number is newer than what was read and one with a
// number up to it is already in it. That is what lets a watcher listen
// first, read the current answers second, and then pass on exactly the
// updates the read did not contain: none lost, none going back in time.
//
// Implementations: the goka-backed *AvailabilityView and the in-memory
// *MemoryAvailability.
type AvailabilityFeed interface {
	// Ready reports whether the feed has caught up with the topic once.
	Ready() bool
	// Listen calls fn with every update applied from now on, in the order
	// applied, until the returned stop is called. fn runs on the feed's
	// update path with the feed's reads held off: it must not block and
	// must not call back into the feed.
	//
	// wants (nil: always) reports whether fn has anyone to pass updates on
	// to; it must be cheap and safe to call from any goroutine. While no
	// listener wants updates the feed may skip work done only for them
	// (comparing an answer with the one it replaces, ordering the store
	// with reads), so fn may then get an answer republished with its
	// version, and a listener that starts wanting, then reads, may get an
	// update its read already contains: an answer twice, never one missed.
	Listen(fn func(AvailabilityUpdate), wants func() bool) (stop func())
	// Latest returns sku's latest answer (nil if none was published) and
	// the sequence number of the last update the read contains. Before the
	// feed has recovered it returns ErrNotReady.
	Latest(sku string) (*pb.Availability, uint64, error)
	// Scan calls fn with every SKU's latest answer as of one moment, until
	// fn returns false, and returns that moment's sequence number. A value
	// that does not decode is passed as err (a nil answer) and the scan
	// goes on. Before the feed has recovered it returns ErrNotReady.
	Scan(fn func(sku string, a *pb.Availability, err error) bool) (uint64, error)
	// Stopping is closed when the feed stops following the topic: no
	// update comes any more. A Scan's fn that waits (on a slow watcher)
	// must give up then: the feed cannot stop while a scan is running.
	Stopping() <-chan struct{}
}

// AvailabilityUpdate is one answer the feed applied.
type AvailabilityUpdate struct {
	// Seq is the update's sequence number.
	Seq uint64
	// SKU is the topic key.
	SKU string

	raw     []byte           // as published; nil with decoded set or for a deletion
	decoded *pb.Availability // set by feeds that hold decoded answers
}

// Answer decodes the update: the published answer, or nil for a deletion
// (a tombstone). Decode once and share the result: the answer must not be
// modified.
func (u AvailabilityUpdate) Answer() (*pb.Availability, error) {
	if u.decoded != nil || u.raw == nil {
		return u.decoded, nil
	}
	v, err := schema.AvailabilityCodec.Decode(u.raw)
	if err != nil {
		return nil, fmt.Errorf("availability update for %q: %w", u.SKU, err)
	}
	a, ok := v.(*pb.Availability)
	if !ok {
		return nil, fmt.Errorf("availability update for %q: unexpected value type %T", u.SKU, v)
	}
	return a, nil
}

// listeners is the set of Listen callbacks, shared by both feeds. Callers
// of add and remove hold their feed's write lock; wanted needs no lock.
type listeners struct {
	next  int
	fns   map[int]func(AvailabilityUpdate)
	wants map[int]func() bool
	// all of wants, rebuilt on every change, for wanted to read unlocked.
	current atomic.Pointer[[]func() bool]
}

func (l *listeners) add(fn func(AvailabilityUpdate), wants func() bool) int {
	if l.fns == nil {
		l.fns = map[int]func(AvailabilityUpdate){}
		l.wants = map[int]func() bool{}
	}
	if wants == nil {
		wants = func() bool { return true }
	}
	l.next++
	l.fns[l.next] = fn
	l.wants[l.next] = wants
	l.publishWants()
	return l.next
}

func (l *listeners) remove(id int) {
	delete(l.fns, id)
	delete(l.wants, id)
	l.publishWants()
}

func (l *listeners) publishWants() {
	all := make([]func() bool, 0, len(l.wants))
	for _, w := range l.wants {
		all = append(all, w)
	}
	l.current.Store(&all)
}

// wanted reports whether any listener wants updates now.
func (l *listeners) wanted() bool {
	all := l.current.Load()
	if all == nil {
		return false
	}
	for _, w := range *all {
		if w() {
			return true
		}
	}
	return false
}

func (l *listeners) notify(u AvailabilityUpdate) {
	for _, fn := range l.fns {
		fn(u)
	}
}

// AvailabilityView is the goka-backed AvailabilityFeed: an Availability
// view whose update callback numbers each update and tells the listeners.
// One lock orders the two sides: while anyone listens, the callback stores
// a value, numbers it and notifies under the write lock; Latest and Scan
// read (Scan: open its storage snapshot) under the read lock, so a read
// contains exactly the updates numbered up to the number it returns. The
// lock is held for one storage write plus the listeners' non-blocking
// calls, never while a watcher is waiting. While no listener wants updates
// (a new gateway recovering) values are stored outside the lock; see update.
type AvailabilityView struct {
	*Availability
	mu       sync.RWMutex
	seq      uint64
	subs     listeners
	stopping chan struct{}
	stopOnce sync.Once
}

// NewAvailabilityFeed creates the view; call Run to start it. opts must not
// set an update callback of their own.
func NewAvailabilityFeed(brokers []string, opts ...goka.ViewOption) (*AvailabilityView, error) {
	f := &AvailabilityView{stopping: make(chan struct{})}
	opts = append(slices.Clip(opts), goka.WithViewCallback(f.update))
	a, err := NewAvailability(brokers, opts...)
	if err != nil {
		return nil, err
	}
	f.Availability = a
	return f, nil
}

// Run keeps the view up to date until ctx is cancelled. It is the table's
// Run, but closes Stopping before it waits for the scans in progress to
// let go of the view.
func (f *AvailabilityView) Run(ctx context.Context) error {
	t := f.table
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- t.view.Run(inner) }()
	select {
	case err := <-done:
		f.stopOnce.Do(func() { close(f.stopping) })
		t.stop()
		return err
	case <-ctx.Done():
		f.stopOnce.Do(func() { close(f.stopping) })
		t.stop()
		cancel()
		return <-done
	}
}

// Stopping implements AvailabilityFeed.
func (f *AvailabilityView) Stopping() <-chan struct{} { return f.stopping }

// update is the view's callback: store, number, notify. An answer
// published again with the version it already had (a producer's retry, a
// partition changing owner) is stored but not announced: it is no change.
func (f *AvailabilityView) update(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	if !f.subs.wanted() {
		// No listener wants updates (as while a new gateway recovers, before
		// any watch): the value is stored without the lock, so partitions
		// store in parallel, and only numbered under it; the previous value
		// is not read. A read may then contain an update numbered after the
		// number it returns (see AvailabilityFeed.Listen).
		if err := goka.DefaultUpdate(ctx, s, key, value); err != nil {
			return err
		}
		f.mu.Lock()
		f.seq++
		f.subs.notify(AvailabilityUpdate{Seq: f.seq, SKU: key, raw: value})
		f.mu.Unlock()
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	same := false
	if value != nil {
		if old, err := s.Get(key); err == nil && old != nil {
			same = sameVersion(old, value)
		}
	}
	if err := goka.DefaultUpdate(ctx, s, key, value); err != nil {
		return err
	}
	if same {
		return nil
	}
	f.seq++
	f.subs.notify(AvailabilityUpdate{Seq: f.seq, SKU: key, raw: value})
	return nil
}

// sameVersion reports whether two encoded answers carry the same version
// (equal versions mean equal answers); an answer that does not decode is
// never the same.
func sameVersion(a, b []byte) bool {
	var x, y pb.Availability
	if proto.Unmarshal(a, &x) != nil || proto.Unmarshal(b, &y) != nil {
		return false
	}
	return x.GetVersion() != "" && x.GetVersion() == y.GetVersion()
}

// Listen implements AvailabilityFeed.
func (f *AvailabilityView) Listen(fn func(AvailabilityUpdate), wants func() bool) (stop func()) {
	f.mu.Lock()
	id := f.subs.add(fn, wants)
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.subs.remove(id)
		f.mu.Unlock()
	}
}

// Latest implements AvailabilityFeed.
func (f *AvailabilityView) Latest(sku string) (*pb.Availability, uint64, error) {
	t := f.table
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopping || !t.caughtUp() {
		return nil, 0, ErrNotReady
	}
	f.mu.RLock()
	seq := f.seq
	v, err := t.view.Get(sku)
	f.mu.RUnlock()
	if err != nil {
		return nil, seq, fmt.Errorf("%s view get %q: %w", t.name, sku, err)
	}
	if v == nil {
		return nil, seq, nil
	}
	a, ok := v.(*pb.Availability)
	if !ok {
		return nil, seq, fmt.Errorf("%s view get %q: unexpected value type %T", t.name, sku, v)
	}
	return a, seq, nil
}

// Scan implements AvailabilityFeed. The storage snapshot is taken at once;
// the iteration (and fn) runs without holding back updates.
func (f *AvailabilityView) Scan(fn func(sku string, a *pb.Availability, err error) bool) (uint64, error) {
	t := f.table
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopping || !t.caughtUp() {
		return 0, ErrNotReady
	}
	f.mu.RLock()
	seq := f.seq
	it, err := t.view.Iterator()
	f.mu.RUnlock()
	if err != nil {
		return seq, fmt.Errorf("%s view: %w", t.name, err)
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		var a *pb.Availability
		if err == nil && v != nil {
			var ok bool
			if a, ok = v.(*pb.Availability); !ok {
				err = fmt.Errorf("unexpected value type %T", v)
			}
		}
		if err != nil {
			err = fmt.Errorf("%s view: key %q: %w", t.name, it.Key(), err)
		}
		if a == nil && err == nil {
			continue
		}
		if !fn(it.Key(), a, err) {
			return seq, nil
		}
	}
	return seq, it.Err()
}

// MemoryAvailability is an in-memory AvailabilityFeed for tests and for
// downstream users who need a fake gateway backend. The zero value is not
// ready; use NewMemoryAvailability.
type MemoryAvailability struct {
	mu       sync.RWMutex
	ready    bool
	seq      uint64
	answers  map[string]*pb.Availability
	subs     listeners
	stopping chan struct{}
	stopped  bool
}

// NewMemoryAvailability returns a ready, empty feed.
func NewMemoryAvailability() *MemoryAvailability {
	return &MemoryAvailability{ready: true, answers: map[string]*pb.Availability{}, stopping: make(chan struct{})}
}

// Stop imitates the view stopping: Stopping is closed and the feed is no
// longer ready.
func (m *MemoryAvailability) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ready = false
	if !m.stopped {
		m.stopped = true
		close(m.stoppingChan())
	}
}

// Stopping implements AvailabilityFeed.
func (m *MemoryAvailability) Stopping() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stoppingChan()
}

// stoppingChan is the Stopping channel, made for a zero value. The caller
// holds m.mu.
func (m *MemoryAvailability) stoppingChan() chan struct{} {
	if m.stopping == nil {
		m.stopping = make(chan struct{})
	}
	return m.stopping
}

// Put publishes a copy of a, keyed by its SKU, as the topic would.
func (m *MemoryAvailability) Put(a *pb.Availability) error {
	if a.GetSku() == "" {
		return errors.New("memory availability: answer without a SKU")
	}
	c := proto.Clone(a).(*pb.Availability)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.answers == nil {
		m.answers = map[string]*pb.Availability{}
	}
	old, had := m.answers[c.GetSku()]
	m.answers[c.GetSku()] = c
	if had && old.GetVersion() != "" && old.GetVersion() == c.GetVersion() {
		return nil // the same answer again: no change (as AvailabilityView)
	}
	m.seq++
	m.subs.notify(AvailabilityUpdate{Seq: m.seq, SKU: c.GetSku(), decoded: c})
	return nil
}

// Delete publishes a tombstone for sku.
func (m *MemoryAvailability) Delete(sku string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.answers, sku)
	m.seq++
	m.subs.notify(AvailabilityUpdate{Seq: m.seq, SKU: sku})
}

// SetReady flips readiness, to imitate a recovering view.
func (m *MemoryAvailability) SetReady(ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ready = ready
}

// Ready implements AvailabilityFeed.
func (m *MemoryAvailability) Ready() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ready
}

// Listen implements AvailabilityFeed.
func (m *MemoryAvailability) Listen(fn func(AvailabilityUpdate), wants func() bool) (stop func()) {
	m.mu.Lock()
	id := m.subs.add(fn, wants)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.subs.remove(id)
		m.mu.Unlock()
	}
}

// Latest implements AvailabilityFeed. The answer is shared: do not modify it.
func (m *MemoryAvailability) Latest(sku string) (*pb.Availability, uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return nil, 0, ErrNotReady
	}
	return m.answers[sku], m.seq, nil
}

// Scan implements AvailabilityFeed, in SKU order. The answers are shared:
// do not modify them.
func (m *MemoryAvailability) Scan(fn func(sku string, a *pb.Availability, err error) bool) (uint64, error) {
	m.mu.RLock()
	if !m.ready {
		m.mu.RUnlock()
		return 0, ErrNotReady
	}
	seq := m.seq
	answers := make([]*pb.Availability, 0, len(m.answers))
	for _, a := range m.answers {
		answers = append(answers, a)
	}
	m.mu.RUnlock()
	slices.SortFunc(answers, func(a, b *pb.Availability) int {
		switch {
		case a.GetSku() < b.GetSku():
			return -1
		case a.GetSku() > b.GetSku():
			return 1
		}
		return 0
	})
	for _, a := range answers {
		if !fn(a.GetSku(), a, nil) {
			break
		}
	}
	return seq, nil
}
