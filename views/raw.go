package views

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// changeStripes is how many counters a Changes spreads keys over.
const changeStripes = 1 << 14

// Changes tells a reader cheaply whether a key of a table may have changed
// since it last looked, without reading (and decoding) the value: every
// update of a key advances the key's counter, and every update advances
// Total.
//
// The protocol: note Of(key) (or Total) BEFORE reading the value; later, an
// unchanged counter proves the key was not updated since the read, so what
// was derived from the value still holds. Counters are shared by keys that
// hash alike, so an update of another key may look like a change (a
// needless re-read), never the other way round. The zero value is ready to
// use; a Changes must not be copied once used.
type Changes struct {
	total atomic.Uint64
	gens  [changeStripes]atomic.Uint64
}

var changeSeed = maphash.MakeSeed()

func stripe(key string) uint64 { return maphash.String(changeSeed, key) % changeStripes }

// Of returns the counter of key.
func (c *Changes) Of(key string) uint64 { return c.gens[stripe(key)].Load() }

// Total returns the counter every update advances.
func (c *Changes) Total() uint64 { return c.total.Load() }

// Note records an update of key. Call it after the new value is readable.
func (c *Changes) Note(key string) {
	c.gens[stripe(key)].Add(1)
	c.total.Add(1)
}

// track is a view update callback that stores the value (as goka's default
// does) and then notes the update.
func (c *Changes) track(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	err := goka.DefaultUpdate(ctx, s, key, value)
	c.Note(key) // even on error: whatever the storage holds now may differ
	return err
}

// StockChanges is implemented by StockLookups that track their updates
// (Stock, Memory): a reader can then keep what it derived from a SKU's state
// until the SKU changes.
type StockChanges interface {
	StockChanges() *Changes
}

// PolicyChanges is implemented by PolicyLookups that track their updates
// (Policies, Memory).
type PolicyChanges interface {
	PolicyChanges() *Changes
}

// StockChanges implements StockChanges.
func (s *Stock) StockChanges() *Changes { return s.changes }

// PolicyChanges implements PolicyChanges.
func (p *Policies) PolicyChanges() *Changes { return p.changes }

// StockChanges implements StockChanges: Put advances it.
func (m *Memory) StockChanges() *Changes { return &m.stockChanges }

// PolicyChanges implements PolicyChanges: PutPolicy advances it.
func (m *Memory) PolicyChanges() *Changes { return &m.policyChanges }

// tracked appends to opts the update callback that keeps c. It replaces any
// update callback opts set: the views that track changes own theirs.
func tracked(c *Changes, opts []goka.ViewOption) []goka.ViewOption {
	return append(opts[:len(opts):len(opts)], goka.WithViewCallback(c.track))
}
