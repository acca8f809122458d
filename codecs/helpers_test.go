package codecs_test

import (
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

const sku = "SKU-1"

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func lvl(loc string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	return inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: seq}
}

func adj(id, loc string, delta int64, occurredAt time.Time) inventory.StockAdjustment {
	return inventory.StockAdjustment{EventID: id, SKU: sku, Location: loc, Delta: delta, OccurredAt: occurredAt}
}

// applyAll folds events into a fresh state the way the processor does,
// failing on any error, so tests encode states the domain really produces.
func applyAll(t testing.TB, evs ...inventory.Event) inventory.State {
	t.Helper()
	s := inventory.State{SKU: sku}
	for i, ev := range evs {
		var err error
		s, _, err = inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("event %d %+v: %v", i, ev, err)
		}
	}
	return s
}

// richState has several locations, one without a level, adjustments before
// and after levels, a sub-second time and a negative raw level+delta.
func richState(t testing.TB) inventory.State {
	t.Helper()
	return applyAll(t,
		lvl("WH-1", 10, at(2), 1),
		adj("a", "WH-1", -2, at(3)),
		adj("c", "WH-1", 5, at(4).Add(123456789*time.Nanosecond)),
		adj("b", "WH-2", 4, at(1)),
		adj("z", "WH-2", -9, at(7)),
		lvl("STORE.7_x", 0, at(5), 42),
		adj("neg", "STORE.7_x", -3, at(6)),
		lvl("WH-3", inventory.MaxUnits, at(1).Add(time.Nanosecond), 0),
	)
}
