// Package views gives the gateway read access to skuflow's group tables
// through goka views: local, continuously updated copies of a table's
// changelog. A lookup never calls another service.
//
// Lookups sit behind small interfaces (StockLookup, PolicyLookup) with two
// implementations each, the goka-backed Stock and Policies and the
// in-memory Memory, and one shared test suite (viewtest) that both must
// pass, so a fake used in tests provably behaves like the real thing.
//
// This package must not import gateway/ or any processor package; it takes
// table names and codecs from package schema (internal/archtest checks).
package views

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// ErrNotReady is returned by lookups before the view has recovered its table.
var ErrNotReady = errors.New("view is still recovering its table")

// StockLookup reads SKU states from the stock table.
type StockLookup interface {
	// Get returns the SKU's state and whether the SKU is known. Before the
	// view has recovered it returns ErrNotReady.
	Get(sku string) (inventory.State, bool, error)
	// Ready reports whether the view has caught up with its table once.
	Ready() bool
}

// table wraps a goka view. goka's View.Run tears its partitions down
// without synchronisation when it stops, so lookups hold mu.RLock while they
// touch the view, and Run sets stopping under mu.Lock before it lets the
// view stop: from then on lookups answer ErrNotReady.
type table struct {
	name     string
	view     *goka.View
	mu       sync.RWMutex
	stopping bool
	// recovered latches the view's first full recovery: goka sets every
	// partition back to "connecting" for a moment when a view moves from
	// recovery to catching up, and on each reconnect, while reads stay
	// safe (goka allows them from "connecting" on). Readiness and lookups
	// must not flap to ErrNotReady (503) then.
	recovered atomic.Bool
}

// caughtUp reports whether the view has recovered its table once and is
// still running (goka's view state stays at "connecting" or above while it
// reconnects; below it, the view has stopped and closed its storage).
func (t *table) caughtUp() bool {
	if t.view.CurrentState() < goka.ViewStateConnecting {
		return false
	}
	if t.recovered.Load() {
		return true
	}
	if t.view.Recovered() {
		t.recovered.Store(true)
		return true
	}
	return false
}

func newTable(brokers []string, t goka.Table, c goka.Codec, opts ...goka.ViewOption) (*table, error) {
	v, err := goka.NewView(brokers, t, c, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s view: %w", t, err)
	}
	return &table{name: string(t), view: v}, nil
}

// Run keeps the view up to date until ctx is cancelled.
func (t *table) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- t.view.Run(inner) }()
	select {
	case err := <-done:
		t.stop()
		return err
	case <-ctx.Done():
		t.stop()
		cancel()
		return <-done
	}
}

func (t *table) stop() {
	t.mu.Lock()
	t.stopping = true
	t.mu.Unlock()
}

// Ready reports whether the view has caught up with its table once.
func (t *table) Ready() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return !t.stopping && t.caughtUp()
}

// get returns the decoded value under key, nil if there is none.
func (t *table) get(key string) (any, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopping || !t.caughtUp() {
		return nil, ErrNotReady
	}
	v, err := t.view.Get(key)
	if err != nil {
		return nil, fmt.Errorf("%s view get %q: %w", t.name, key, err)
	}
	return v, nil
}

// each calls fn for every key and decoded value of the table, in key order
// per partition, until fn returns false or an error stops it.
func (t *table) each(fn func(key string, value any) bool) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopping || !t.caughtUp() {
		return ErrNotReady
	}
	it, err := t.view.Iterator()
	if err != nil {
		return fmt.Errorf("%s view: %w", t.name, err)
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return fmt.Errorf("%s view: key %q: %w", t.name, it.Key(), err)
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Err()
}

// Stock is the goka view of the stock group table. It tracks its updates
// (StockChanges).
type Stock struct {
	*table
	changes *Changes
}

// Each calls fn for every SKU state until fn returns false.
func (s *Stock) Each(fn func(inventory.State) bool) error {
	return s.each(func(key string, v any) bool {
		st, ok := v.(inventory.State)
		if !ok {
			return true
		}
		return fn(st)
	})
}

// NewStock creates the view; call Run to start it. Its update callback is
// its own (it tracks changes): opts must not set one.
func NewStock(brokers []string, opts ...goka.ViewOption) (*Stock, error) {
	c := new(Changes)
	t, err := newTable(brokers, schema.StockTable, schema.StateCodec, tracked(c, opts)...)
	if err != nil {
		return nil, err
	}
	return &Stock{table: t, changes: c}, nil
}

// Get implements StockLookup.
func (s *Stock) Get(sku string) (inventory.State, bool, error) {
	v, err := s.get(sku)
	if err != nil || v == nil {
		return inventory.State{}, false, err
	}
	st, ok := v.(inventory.State)
	if !ok {
		return inventory.State{}, false, fmt.Errorf("stock view get %q: unexpected value type %T", sku, v)
	}
	return st, true, nil
}

// PolicyLookup reads the policies table (keys from schema.LocationKey and
// schema.MerchantKey).
type PolicyLookup interface {
	// GetPolicy returns the policy under key, nil if there is none. Before
	// the view has recovered it returns ErrNotReady.
	GetPolicy(key string) (*pb.PolicyEvent, error)
	Ready() bool
}

// Policies is the goka view of the policies group table. It tracks its
// updates (PolicyChanges).
type Policies struct {
	*table
	changes *Changes
}

// NewPolicies creates the view; call Run to start it. Its update callback is
// its own (it tracks changes): opts must not set one.
func NewPolicies(brokers []string, opts ...goka.ViewOption) (*Policies, error) {
	c := new(Changes)
	t, err := newTable(brokers, schema.PoliciesTable, schema.PolicyCodec, tracked(c, opts)...)
	if err != nil {
		return nil, err
	}
	return &Policies{table: t, changes: c}, nil
}

// GetPolicy implements PolicyLookup.
func (p *Policies) GetPolicy(key string) (*pb.PolicyEvent, error) {
	v, err := p.get(key)
	if err != nil || v == nil {
		return nil, err
	}
	ev, ok := v.(*pb.PolicyEvent)
	if !ok {
		return nil, fmt.Errorf("policies view get %q: unexpected value type %T", key, v)
	}
	return ev, nil
}

// Orders is the goka view of the order saga's table. Callers waiting for an
// order to change get notified (Changed) instead of polling the table.
type Orders struct {
	*table
	wmu     sync.Mutex
	waiters map[string]chan struct{}
}

// NewOrders creates the view; call Run to start it.
func NewOrders(brokers []string, opts ...goka.ViewOption) (*Orders, error) {
	o := &Orders{waiters: map[string]chan struct{}{}}
	opts = append(opts, goka.WithViewCallback(func(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
		err := goka.DefaultUpdate(ctx, s, key, value)
		o.notify(key)
		return err
	}))
	t, err := newTable(brokers, schema.OrdersTable, schema.OrderCodec, opts...)
	if err != nil {
		return nil, err
	}
	o.table = t
	return o, nil
}

// Changed returns a channel closed at the next update of the order. Take
// it before reading the order, so an update in between is not missed.
func (o *Orders) Changed(id string) <-chan struct{} {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	ch, ok := o.waiters[id]
	if !ok {
		ch = make(chan struct{})
		o.waiters[id] = ch
	}
	return ch
}

func (o *Orders) notify(id string) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if ch, ok := o.waiters[id]; ok {
		close(ch)
		delete(o.waiters, id)
	}
}

// Get returns the order and whether it exists.
func (o *Orders) Get(id string) (inventory.Order, bool, error) {
	v, err := o.get(id)
	if err != nil || v == nil {
		return inventory.Order{}, false, err
	}
	ord, ok := v.(inventory.Order)
	if !ok {
		return inventory.Order{}, false, fmt.Errorf("orders view get %q: unexpected value type %T", id, v)
	}
	return ord, true, nil
}

// Each calls fn for every order until fn returns false.
func (o *Orders) Each(fn func(inventory.Order) bool) error {
	return o.each(func(_ string, v any) bool {
		ord, ok := v.(inventory.Order)
		if !ok {
			return true
		}
		return fn(ord)
	})
}

// Availability is a goka view of the compacted availability topic: the
// latest published answer per SKU.
type Availability struct{ *table }

// NewAvailability creates the view; call Run to start it.
func NewAvailability(brokers []string, opts ...goka.ViewOption) (*Availability, error) {
	t, err := newTable(brokers, goka.Table(schema.Availability), schema.AvailabilityCodec, opts...)
	if err != nil {
		return nil, err
	}
	return &Availability{t}, nil
}

// Get returns the latest published answer for sku, nil if none.
func (a *Availability) Get(sku string) (*pb.Availability, error) {
	v, err := a.get(sku)
	if err != nil || v == nil {
		return nil, err
	}
	m, ok := v.(*pb.Availability)
	if !ok {
		return nil, fmt.Errorf("availability view get %q: unexpected value type %T", sku, v)
	}
	return m, nil
}

// Memory is an in-memory StockLookup for tests and for downstream users who
// need a fake gateway backend. The zero value is not ready; use NewMemory.
type Memory struct {
	mu       sync.RWMutex
	ready    bool
	states   map[string]inventory.State
	policies map[string]*pb.PolicyEvent
	// Put and PutPolicy advance these (see StockChanges, PolicyChanges).
	stockChanges, policyChanges Changes
}

// NewMemory returns a ready, empty Memory.
func NewMemory() *Memory { return &Memory{ready: true, states: map[string]inventory.State{}} }

// Put stores a copy of a state under its SKU.
func (m *Memory) Put(s inventory.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states == nil {
		m.states = map[string]inventory.State{}
	}
	m.states[s.SKU] = s.Clone()
	m.stockChanges.Note(s.SKU)
}

// SetReady flips readiness, to imitate a recovering view.
func (m *Memory) SetReady(ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ready = ready
}

// Ready implements StockLookup.
func (m *Memory) Ready() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ready
}

// Get implements StockLookup.
func (m *Memory) Get(sku string) (inventory.State, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return inventory.State{}, false, ErrNotReady
	}
	s, ok := m.states[sku]
	return s.Clone(), ok, nil
}

// PutPolicy stores a copy of a policy under its key.
func (m *Memory) PutPolicy(ev *pb.PolicyEvent) error {
	key, err := schema.PolicyKey(ev)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.policies == nil {
		m.policies = map[string]*pb.PolicyEvent{}
	}
	m.policies[key] = proto.Clone(ev).(*pb.PolicyEvent)
	m.policyChanges.Note(key)
	return nil
}

// GetPolicy implements PolicyLookup.
func (m *Memory) GetPolicy(key string) (*pb.PolicyEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return nil, ErrNotReady
	}
	ev, ok := m.policies[key]
	if !ok {
		return nil, nil
	}
	return proto.Clone(ev).(*pb.PolicyEvent), nil
}
