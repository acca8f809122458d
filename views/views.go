// Package views gives the gateway read access to skuflow's group tables
// through goka views: local, continuously updated copies of a table's
// changelog. A lookup never calls another service.
//
// Lookups sit behind small interfaces (StockLookup) with two
// implementations, the goka-backed Stock and the in-memory Memory, and one
// shared test suite (viewtest) that both must pass, so a fake used in tests
// provably behaves like the real thing.
//
// This package must not import gateway/ or processors' callbacks; it depends
// only on the group and table names processors export.
package views

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/stock"
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

// Stock is the goka view of the stock group table.
type Stock struct {
	view *goka.View
	// mu guards stopping. goka's View.Run tears its partitions down without
	// synchronisation when it stops, so lookups hold mu.RLock while they
	// touch the view, and Run sets stopping under mu.Lock before it lets
	// the view stop: from then on lookups answer ErrNotReady.
	mu       sync.RWMutex
	stopping bool
}

// NewStock creates the view; call Run to start it.
func NewStock(brokers []string, opts ...goka.ViewOption) (*Stock, error) {
	v, err := goka.NewView(brokers, stock.Table, codecs.State{}, opts...)
	if err != nil {
		return nil, fmt.Errorf("stock view: %w", err)
	}
	return &Stock{view: v}, nil
}

// Run keeps the view up to date until ctx is cancelled.
func (s *Stock) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.view.Run(inner) }()
	select {
	case err := <-done:
		s.stop()
		return err
	case <-ctx.Done():
		s.stop()
		cancel()
		return <-done
	}
}

func (s *Stock) stop() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// Ready implements StockLookup.
func (s *Stock) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.stopping && s.view.Recovered()
}

// Get implements StockLookup.
func (s *Stock) Get(sku string) (inventory.State, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopping || !s.view.Recovered() {
		return inventory.State{}, false, ErrNotReady
	}
	v, err := s.view.Get(sku)
	if err != nil {
		return inventory.State{}, false, fmt.Errorf("stock view get %q: %w", sku, err)
	}
	if v == nil {
		return inventory.State{}, false, nil
	}
	st, ok := v.(inventory.State)
	if !ok {
		return inventory.State{}, false, fmt.Errorf("stock view get %q: unexpected value type %T", sku, v)
	}
	return st, true, nil
}

// Memory is an in-memory StockLookup for tests and for downstream users who
// need a fake gateway backend. The zero value is not ready; use NewMemory.
type Memory struct {
	mu     sync.RWMutex
	ready  bool
	states map[string]inventory.State
}

// NewMemory returns a ready, empty Memory.
func NewMemory() *Memory { return &Memory{ready: true, states: map[string]inventory.State{}} }

// Put stores a copy of a state under its SKU.
func (m *Memory) Put(s inventory.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[s.SKU] = s.Clone()
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
