package inventory_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// fuzzStarts are the states every fuzzed event is applied to.
func fuzzStarts(t tb) []inventory.State {
	return []inventory.State{
		{},
		{SKU: sku},
		applyAll(t, inventory.State{SKU: sku},
			lvl("WH-1", 10, at(2), 1),
			adj("a", "WH-1", -2, at(3)),
			adj("b", "WH-2", 4, at(1)),
			adj("big", "WH-3", inventory.MaxUnits-1, at(1)),
		),
	}
}

func fuzzTime(zero bool, sec, nsec int64, offset int) time.Time {
	if zero {
		return time.Time{}
	}
	return time.Unix(sec, nsec).In(time.FixedZone("fuzz", offset%(48*3600)))
}

// checkFuzzedApply applies ev to every start state and checks that Apply
// either accepts it, keeping the invariants and idempotence, or rejects it
// with a classified error and the state unchanged.
func checkFuzzedApply(t *testing.T, starts []inventory.State, ev inventory.Event) {
	t.Helper()
	verr := ev.Validate()
	if verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
		t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
	}
	for _, start := range starts {
		before := cloneState(start)
		got, res, err := inventory.Apply(start, ev, t0)
		assertStateEqual(t, start, before, "input state")
		if err != nil {
			if !inventory.IsInvalid(err) {
				t.Fatalf("Apply error %v is neither ErrInvalidEvent nor ErrConflictingDuplicate", err)
			}
			if verr != nil && !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate failed (%v) but Apply returned %v", verr, err)
			}
			if res.Changed {
				t.Fatal("Changed = true with an error")
			}
			assertStateEqual(t, got, before, "state returned with an error")
			continue
		}
		if verr != nil {
			t.Fatalf("Validate() = %v but Apply accepted the event", verr)
		}
		if start.SKU != "" && start.SKU != ev.EventSKU() {
			t.Fatalf("Apply accepted an event for %q into the state of %q", ev.EventSKU(), start.SKU)
		}
		if !res.Changed {
			assertStateEqual(t, got, before, "unchanged state")
		}
		checkState(t, got)
		checkSnapshot(t, got, inventory.Availability(got))
		again, res2, err := inventory.Apply(got, ev, t0)
		if err != nil || res2.Changed || !reflect.DeepEqual(again, got) {
			t.Fatalf("second Apply: changed=%v err=%v", res2.Changed, err)
		}
	}
}

func FuzzStockLevel(f *testing.F) {
	f.Add(sku, "WH-1", int64(5), at(4).Unix(), int64(0), uint64(0), 0, false)
	f.Add(sku, "WH-1", int64(5), at(1).Unix(), int64(0), uint64(9), 3600, false)
	f.Add(sku, "WH-1", int64(10), at(2).Unix(), int64(0), uint64(1), 0, false)
	f.Add(sku, "WH-3", int64(0), at(9).Unix(), int64(0), uint64(0), 0, false)
	f.Add(sku, "WH-9", int64(inventory.MaxUnits), int64(0), int64(0), uint64(0), 0, false)
	f.Add("SKU-2", "WH-1", int64(1), at(1).Unix(), int64(0), uint64(0), 0, false)
	f.Add("", "", int64(-1), int64(-1), int64(-1), uint64(0), 0, true)
	f.Add(sku, "WH-3", int64(28), at(-34).Unix(), int64(0), uint64(27), 0, false) // lands before "big"
	f.Add(sku, "WH 1", int64(1), int64(7258118400), int64(0), uint64(0), -7200, false)
	starts := fuzzStarts(f) // Apply must not modify them; checkFuzzedApply checks
	f.Fuzz(func(t *testing.T, skuID, loc string, onHand, sec, nsec int64, seq uint64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.StockLevel{
			SKU: skuID, Location: loc, OnHand: onHand, AsOf: fuzzTime(zero, sec, nsec, offset), Sequence: seq,
		})
	})
}

func FuzzStockAdjustment(f *testing.F) {
	f.Add("c", sku, "WH-1", int64(3), at(5).Unix(), int64(0), 0, false)
	f.Add("a", sku, "WH-1", int64(-2), at(3).Unix(), int64(0), 0, false) // duplicate
	f.Add("a", sku, "WH-1", int64(-3), at(3).Unix(), int64(0), 0, false) // conflict
	f.Add("a", sku, "WH-1", int64(-2), at(1).Unix(), int64(0), 0, false) // covered
	f.Add("c", sku, "WH-3", int64(2), at(5).Unix(), int64(0), 0, false)  // beyond the limit
	f.Add("c", sku, "WH-3", int64(-inventory.MaxUnits), at(5).Unix(), int64(0), 0, false)
	f.Add("", "", "", int64(0), int64(-1), int64(0), 0, true)
	f.Add("x", "SKU-2", "WH-1", int64(1), at(5).Unix(), int64(999999999), 50400, false)
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, id, skuID, loc string, delta, sec, nsec int64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.StockAdjustment{
			EventID: id, SKU: skuID, Location: loc, Delta: delta, OccurredAt: fuzzTime(zero, sec, nsec, offset),
		})
	})
}

// FuzzValidateID cross-checks the id pattern against a plain loop.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"", "SKU-1", "a.b_c", "with space", "x\n", "\u00e9", long64, long65} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) >= 1 && len(id) <= inventory.MaxIDLength
		for _, c := range []byte(id) {
			ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			want = want && ok
		}
		err := inventory.ValidateID("id", id)
		if (err == nil) != want {
			t.Fatalf("ValidateID(%q) = %v, want valid = %v", id, err, want)
		}
		if want {
			// What ValidateID accepts, events accept; what it rejects,
			// events reject with ErrInvalidEvent.
			return
		}
		ev := lvl(id, 1, at(0), 0)
		if err := ev.Validate(); !errors.Is(err, inventory.ErrInvalidEvent) {
			t.Fatalf("StockLevel with location %q: Validate() = %v, want ErrInvalidEvent", id, err)
		}
	})
}
