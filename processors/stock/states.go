package stock

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors"
)

// statesPerPartition bounds the states remembered per partition.
const statesPerPartition = 8192

// states remembers the state the processor last wrote for each SKU, per
// partition, so the next message for the SKU need not read and decode it
// from the table: reading the table was a fifth of the processor's time.
//
// Only the partition's owner writes its table, so within one ownership
// the last written state is the table's value. goka runs every assignment
// of a partition in a new partition processor with a new context; the
// remembered states belong to that context and are forgotten when a
// callback arrives with another one (after a rebalance, the table was
// recovered from the changelog and may hold other instances' writes). A
// processor restart builds a new handler, and with it a new states. When a
// partition's map is full an arbitrary SKU is forgotten; a forgotten SKU is
// read from the table. The states of partitions whose ownership ended are
// dropped when another ownership begins.
type states struct {
	// parts is replaced, never modified, under mu; callbacks read it
	// without locking.
	mu    sync.Mutex
	parts atomic.Pointer[map[int32]*partStates]
}

type partStates struct {
	session context.Context
	m       map[string]inventory.State
}

func newStates() *states {
	c := &states{}
	c.parts.Store(&map[int32]*partStates{})
	return c
}

// part returns ctx's partition's states, empty if ctx belongs to another
// ownership than the one they were written in. Only the partition's own
// goroutine uses the result.
func (c *states) part(ctx goka.Context) *partStates {
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
	parts := make(map[int32]*partStates, len(old)+1)
	for q, p := range old {
		if p.session.Err() == nil {
			parts[q] = p
		}
	}
	p := &partStates{session: ctx.Context(), m: map[string]inventory.State{}}
	parts[ctx.Partition()] = p
	c.parts.Store(&parts)
	return p
}

// get returns the SKU's state, and whether the table has one.
func (c *states) get(ctx goka.Context) (inventory.State, bool) {
	p := c.part(ctx)
	if s, ok := p.m[ctx.Key()]; ok {
		return s, true
	}
	s, ok := ctx.Value().(inventory.State)
	if ok {
		p.remember(ctx.Key(), s)
	}
	return s, ok
}

// store is processors.Store through the remembered state: next is written
// when changed, and otherwise the current value is written again.
func (c *states) store(ctx goka.Context, next inventory.State, changed bool) {
	if !changed {
		cur, ok := c.get(ctx)
		if !ok {
			return
		}
		next = cur
	}
	processors.Store(ctx, next, true)
	c.part(ctx).remember(ctx.Key(), next)
}

func (p *partStates) remember(sku string, s inventory.State) {
	if _, ok := p.m[sku]; !ok && len(p.m) >= statesPerPartition {
		for k := range p.m {
			delete(p.m, k)
			break
		}
	}
	p.m[sku] = s
}
