package backlog

import (
	"context"
	"testing"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/inventory"
)

// gokaContext names the embedded interface apart from its Context method.
type gokaContext = goka.Context

// fakeCtx is the part of goka.Context that states uses, over a map table.
type fakeCtx struct {
	gokaContext
	partition int32
	key       string
	session   context.Context
	table     map[string]any
	reads     *int
}

func (c fakeCtx) Partition() int32         { return c.partition }
func (c fakeCtx) Key() string              { return c.key }
func (c fakeCtx) Context() context.Context { return c.session }
func (c fakeCtx) Value() any               { *c.reads++; return c.table[c.key] }
func (c fakeCtx) SetValue(v any, _ ...goka.ContextOption) {
	c.table[c.key] = v
}

func TestStatesRemembersWritesWithinAnOwnership(t *testing.T) {
	table, reads := map[string]any{}, 0
	session := context.WithValue(context.Background(), struct{}{}, 1)
	ctx := func(key string) fakeCtx {
		return fakeCtx{partition: 3, key: key, session: session, table: table, reads: &reads}
	}
	c := NewStates[inventory.State]()
	if _, ok := c.Get(ctx("a")); ok || reads != 1 {
		t.Fatalf("get of an unknown SKU: ok=%v after %d reads, want false after 1", ok, reads)
	}
	s1 := inventory.State{SKU: "a", Locations: []inventory.Location{{ID: "WH-1", HasLevel: true, Level: 1}}}
	c.Store(ctx("a"), s1, true)
	if got, ok := c.Get(ctx("a")); !ok || got.Locations[0].Level != 1 || reads != 1 {
		t.Fatalf("get after store = %+v, %v after %d table reads; want the stored state, no read", got, ok, reads)
	}
	// An unchanged store writes the remembered value again (healing a
	// changelog behind the local table) without reading the table.
	delete(table, "a")
	c.Store(ctx("a"), inventory.State{SKU: "a"}, false)
	if v, ok := table["a"].(inventory.State); !ok || v.Locations[0].Level != 1 || reads != 1 {
		t.Fatalf("unchanged store wrote %+v after %d reads, want the remembered state", table["a"], reads)
	}
	// An unchanged store of a SKU the table does not hold writes nothing.
	c.Store(ctx("b"), inventory.State{SKU: "b"}, false)
	if _, ok := table["b"]; ok {
		t.Fatal("unchanged store of an unknown SKU wrote a value")
	}
}

func TestStatesForgetsAcrossOwnerships(t *testing.T) {
	table, reads := map[string]any{}, 0
	first := context.WithValue(context.Background(), struct{}{}, 1)
	c := NewStates[inventory.State]()
	c.Store(fakeCtx{partition: 0, key: "a", session: first, table: table, reads: &reads}, inventory.State{SKU: "a", Backorder: inventory.BackorderRule{Limit: 1}}, true)
	// Another instance owned the partition meanwhile and wrote the SKU; the
	// table was recovered with its write.
	table["a"] = inventory.State{SKU: "a", Backorder: inventory.BackorderRule{Limit: 2}}
	second := context.WithValue(context.Background(), struct{}{}, 2)
	got, ok := c.Get(fakeCtx{partition: 0, key: "a", session: second, table: table, reads: &reads})
	if !ok || got.Backorder.Limit != 2 {
		t.Fatalf("after a new ownership get = %+v, want the table's value", got)
	}
	// Other partitions keep theirs.
	c.Store(fakeCtx{partition: 1, key: "b", session: first, table: table, reads: &reads}, inventory.State{SKU: "b"}, true)
	before := reads
	if _, ok := c.Get(fakeCtx{partition: 1, key: "b", session: first, table: table, reads: &reads}); !ok || reads != before {
		t.Fatal("a partition's states were forgotten for another partition's new ownership")
	}
}

func TestStatesBounded(t *testing.T) {
	table, reads := map[string]any{}, 0
	session := context.Background()
	c := NewStates[inventory.State]()
	for i := range statesPerPartition + 100 {
		key := string(rune('a'+i%26)) + string(rune(i))
		c.Store(fakeCtx{partition: 0, key: key, session: session, table: table, reads: &reads}, inventory.State{SKU: key}, true)
	}
	if n := len((*c.parts.Load())[0].m); n != statesPerPartition {
		t.Fatalf("partition remembers %d states, want the bound %d", n, statesPerPartition)
	}
	// Every SKU still reads right: remembered or from the table.
	for key, v := range table {
		got, ok := c.Get(fakeCtx{partition: 0, key: key, session: session, table: table, reads: &reads})
		if !ok || got.SKU != v.(inventory.State).SKU {
			t.Fatalf("get(%q) = %+v, %v", key, got, ok)
		}
	}
}

// When an ownership begins, the states of ownerships that have ended (their
// context cancelled) are dropped.
func TestStatesDropEndedOwnerships(t *testing.T) {
	table, reads := map[string]any{}, 0
	c := NewStates[inventory.State]()
	ended, end := context.WithCancel(context.Background())
	c.Store(fakeCtx{partition: 1, key: "a", session: ended, table: table, reads: &reads}, inventory.State{SKU: "a"}, true)
	end()
	c.Get(fakeCtx{partition: 2, key: "b", session: context.Background(), table: table, reads: &reads})
	if _, ok := (*c.parts.Load())[1]; ok {
		t.Error("the states of an ended ownership were kept")
	}
}
