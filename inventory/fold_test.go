package inventory_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// Folding (inventory.MaxAdjustments, AdjustmentWindow): a location lists
// its newest adjustments by id and sums the rest into a base. These
// properties drive enough adjustments through one location to fold.

// drawFoldAdjustments draws n adjustments at location A with distinct ids
// and, if distinct, distinct times (ms apart, within an hour), sorted by
// time.
func drawFoldAdjustments(t *rapid.T, distinct bool) []inventory.StockAdjustment {
	n := rapid.IntRange(1, 3*inventory.MaxAdjustments).Draw(t, "n")
	var ms []int
	if distinct {
		ms = rapid.SliceOfNDistinct(rapid.IntRange(0, 3_600_000), n, n, rapid.ID[int]).Draw(t, "times")
	} else {
		ms = rapid.SliceOfN(rapid.IntRange(0, 400), n, n).Draw(t, "times")
	}
	slices.Sort(ms)
	out := make([]inventory.StockAdjustment, n)
	for i, m := range ms {
		d := rapid.Int64Range(-3, 3).Filter(func(d int64) bool { return d != 0 }).Draw(t, "delta")
		out[i] = adj(fmt.Sprintf("a-%03d", i), "A", d, at(0).Add(time.Duration(m)*time.Millisecond))
	}
	return out
}

// rawUnits is a location's units before the read-time floor.
func rawUnits(l inventory.Location) int64 {
	n := l.Level + l.Folded
	for _, a := range l.Adjustment {
		n += a.Delta
	}
	return n
}

// Within the window: adjustments that arrive out of order only among the
// last MaxAdjustments/2 of them, each possibly redelivered, are never
// refused, and give exactly the state of their in-order arrival: the same
// listed adjustments, base and horizon.
func TestPropertyFoldOrderIndependentWithinWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		adjs := drawFoldAdjustments(t, true)
		var want inventory.State
		var sum int64
		for _, a := range adjs {
			var err error
			if want, _, err = inventory.Apply(want, a, t0); err != nil {
				t.Fatalf("in order, %+v: %v", a, err)
			}
			sum += a.Delta
		}
		chunk := rapid.IntRange(1, inventory.MaxAdjustments/2).Draw(t, "chunk")
		var arrival []inventory.Event
		for i := 0; i < len(adjs); i += chunk {
			var c []inventory.Event
			for _, a := range adjs[i:min(i+chunk, len(adjs))] {
				for range rapid.IntRange(1, 2).Draw(t, "copies") {
					c = append(c, inZone(a, genZone.Draw(t, "zone")))
				}
			}
			arrival = append(arrival, rapid.Permutation(c).Draw(t, "chunk-order")...)
		}
		got := applyAll(t, inventory.State{}, arrival...)
		assertStateEqual(t, got, want, "shuffled within the window")
		l := got.Locations[0]
		if len(l.Adjustment) > inventory.MaxAdjustments || rawUnits(l) != sum {
			t.Fatalf("%d adjustments listed, units %d; want at most %d and %d", len(l.Adjustment), rawUnits(l), inventory.MaxAdjustments, sum)
		}
	})
}

// In any order, with redeliveries, ties and levels: every event is applied
// or refused as older than the fold horizon (ErrFolded), never counted
// twice; the units are those of a reference that keeps every accepted
// adjustment by id; no more than MaxAdjustments are listed.
func TestPropertyFoldNeverCountsTwice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var evs []inventory.Event
		for _, a := range drawFoldAdjustments(t, false) {
			for range rapid.IntRange(1, 2).Draw(t, "copies") {
				evs = append(evs, a)
			}
		}
		for i := range rapid.IntRange(0, 3).Draw(t, "levels") {
			evs = append(evs, lvl("A", rapid.Int64Range(0, 50).Draw(t, "on_hand"), at(0).Add(time.Duration(rapid.IntRange(0, 400).Draw(t, "as_of"))*time.Millisecond), uint64(i)))
		}
		evs = rapid.Permutation(evs).Draw(t, "order")
		var s inventory.State
		accepted := map[string]inventory.StockAdjustment{}
		var level *inventory.StockLevel
		for _, ev := range evs {
			next, _, err := inventory.Apply(s, ev, t0)
			switch {
			case errors.Is(err, inventory.ErrFolded):
				if !inventory.IsInvalid(err) {
					t.Fatalf("%+v: %v is not an invalid event (dead letter)", ev, err)
				}
				continue
			case err != nil:
				t.Fatalf("%+v: %v", ev, err)
			}
			s = next
			switch e := ev.(type) {
			case inventory.StockAdjustment:
				accepted[e.EventID] = e
			case inventory.StockLevel:
				if level == nil || e.AsOf.After(level.AsOf) || (e.AsOf.Equal(level.AsOf) && (e.Sequence > level.Sequence ||
					(e.Sequence == level.Sequence && e.OnHand > level.OnHand))) {
					level = &e
				}
			}
			l := s.Locations[0]
			if len(l.Adjustment) > inventory.MaxAdjustments {
				t.Fatalf("%d adjustments listed", len(l.Adjustment))
			}
			var want int64
			if level != nil {
				want = level.OnHand
			}
			for _, a := range accepted {
				if level == nil || a.OccurredAt.After(level.AsOf) {
					want += a.Delta
				}
			}
			if got := rawUnits(l); got != want {
				t.Fatalf("after %+v: units %d, reference %d", ev, got, want)
			}
		}
	})
}

// Folding on decode: a state stored before the bound (format 1) with more
// adjustments than MaxAdjustments upgrades to the state the same events
// give under the bound.
func TestUpgradeFoldsAdjustments(t *testing.T) {
	var evs []inventory.Event
	legacy := inventory.State{SKU: sku, Locations: []inventory.Location{{ID: "A"}}}
	for i := range 3 * inventory.MaxAdjustments {
		a := adj(fmt.Sprintf("a-%03d", i), "A", 1, at(i))
		evs = append(evs, a)
		legacy.Locations[0].Adjustment = append(legacy.Locations[0].Adjustment, inventory.Adjustment{EventID: a.EventID, Delta: 1, OccurredAt: a.OccurredAt})
	}
	want := applyAll(t, inventory.State{}, evs...)
	assertStateEqual(t, inventory.UpgradeState(legacy, 1), want, "format 1 upgraded")
	if got := inventory.UpgradeState(want, inventory.StateFormat); len(got.Locations[0].Adjustment) != inventory.MaxAdjustments {
		t.Fatalf("a current state changed on upgrade: %+v", got)
	}
}
