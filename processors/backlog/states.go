package backlog

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/processors"
)

// statesPerPartition bounds the states remembered per partition.
const statesPerPartition = 8192

// States remembers the value a processor last wrote to its group table for
// each key, per partition, so the next message for the key need not read
// and decode it from the table: for the stock group, reading the table was
// a fifth of the processor's time during a flood.
//
// Only the partition's owner writes its table, so within one ownership
// the last written value is the table's value. goka: every assignment of a
// partition runs in a new partition processor whose goka.Context.Context()
// is a new value, cancelled when the partition processor stops; the
// remembered values belong to that context and are forgotten when a
// callback arrives with another one (after a rebalance, the table was
// recovered from the changelog and may hold other instances' writes). A
// processor restart builds a new handler, and with it new States. When a
// partition's map is full an arbitrary key is forgotten; a forgotten key is
// read from the table. The values of partitions whose ownership ended are
// dropped when another ownership begins.
//
// goka: a partition's callbacks run on one goroutine, so a partition's map
// needs no lock; only the map of partitions is shared.
type States[V any] struct {
	// parts is replaced, never modified, under mu; callbacks read it
	// without locking.
	mu    sync.Mutex
	parts atomic.Pointer[map[int32]*partStates[V]]
}

type partStates[V any] struct {
	session context.Context
	m       map[string]V
}

// NewStates returns an empty States.
func NewStates[V any]() *States[V] {
	c := &States[V]{}
	c.parts.Store(&map[int32]*partStates[V]{})
	return c
}

// part returns ctx's partition's states, empty if ctx belongs to another
// ownership than the one they were written in. Only the partition's own
// goroutine uses the result.
func (c *States[V]) part(ctx goka.Context) *partStates[V] {
	if p := (*c.parts.Load())[ctx.Partition()]; p != nil && p.session == ctx.Context() {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.parts.Load()
	if p := old[ctx.Partition()]; p != nil && p.session == ctx.Context() {
		return p
	}
	// Forget the partitions whose ownership has ended (goka cancels a
	// partition processor's context when it stops), so states do not
	// outlive a scale-out.
	parts := make(map[int32]*partStates[V], len(old)+1)
	for q, p := range old {
		if p.session.Err() == nil {
			parts[q] = p
		}
	}
	p := &partStates[V]{session: ctx.Context(), m: map[string]V{}}
	parts[ctx.Partition()] = p
	c.parts.Store(&parts)
	return p
}

// Get returns the value of ctx's key, and whether the table has one.
func (c *States[V]) Get(ctx goka.Context) (V, bool) {
	p := c.part(ctx)
	if s, ok := p.m[ctx.Key()]; ok {
		return s, true
	}
	s, ok := ctx.Value().(V)
	if ok {
		p.remember(ctx.Key(), s)
	}
	return s, ok
}

// Store is processors.Store through the remembered value: next is written
// when changed, and otherwise the current value is written again.
func (c *States[V]) Store(ctx goka.Context, next V, changed bool) {
	if !changed {
		cur, ok := c.Get(ctx)
		if !ok {
			return
		}
		next = cur
	}
	processors.Store(ctx, next, true)
	c.part(ctx).remember(ctx.Key(), next)
}

func (p *partStates[V]) remember(sku string, s V) {
	if _, ok := p.m[sku]; !ok && len(p.m) >= statesPerPartition {
		for k := range p.m {
			delete(p.m, k)
			break
		}
	}
	p.m[sku] = s
}
