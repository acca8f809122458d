// Package viewtest is the contract every lookup in views must honour: one
// suite per interface, run over the goka-backed views (views.Stock,
// views.Policies) and the in-memory views.Memory, so that a fake used in
// tests provably behaves like the real view (watermill's pubsub/tests does
// the same over its backends).
//
// It is a test helper package: it imports testing and must not be imported
// by production code.
//
// Example:
//
//	func TestMemory(t *testing.T) {
//		viewtest.Run(t, func(t *testing.T, states []inventory.State) views.StockLookup {
//			m := views.NewMemory()
//			for _, s := range states {
//				m.Put(s)
//			}
//			return m
//		})
//		viewtest.RunPolicies(t, func(t *testing.T, pols []*pb.PolicyEvent) (views.PolicyLookup, func()) {
//			m := views.NewMemory()
//			m.SetReady(false)
//			for _, p := range pols {
//				if err := m.PutPolicy(p); err != nil {
//					t.Fatal(err)
//				}
//			}
//			return m, func() { m.SetReady(true) }
//		})
//	}
package viewtest

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/views"
)

// Run checks the StockLookup contract against the lookup setup builds.
// setup is called once, with fresh copies of States; it must return a lookup
// holding exactly those states, once it is ready and every state is visible,
// and register its own cleanup with t.
func Run(t *testing.T, setup func(t *testing.T, states []inventory.State) views.StockLookup) {
	t.Helper()
	states := States(t)
	lookup := setup(t, States(t)) // a fresh copy: setup must not share memory with what we compare against

	t.Run("ready after setup", func(t *testing.T) {
		if !lookup.Ready() {
			t.Fatal("Ready() = false after setup")
		}
	})

	t.Run("stored states are returned unchanged", func(t *testing.T) {
		for _, want := range states {
			got, found, err := lookup.Get(want.SKU)
			if err != nil {
				t.Errorf("Get(%q): %v", want.SKU, err)
				continue
			}
			if !found {
				t.Errorf("Get(%q): found = false, want true", want.SKU)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Get(%q) =\n%#v\nwant\n%#v", want.SKU, got, want)
			}
		}
	})

	t.Run("unknown sku is not found without error", func(t *testing.T) {
		for _, sku := range UnknownSKUs(states) {
			got, found, err := lookup.Get(sku)
			if err != nil {
				t.Errorf("Get(%q): error %v, want nil", sku, err)
			}
			if found {
				t.Errorf("Get(%q): found = true, want false", sku)
			}
			if !reflect.DeepEqual(got, inventory.State{}) {
				t.Errorf("Get(%q) returned %#v with found = false, want the zero State", sku, got)
			}
		}
	})

	t.Run("concurrent gets", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8*len(states))
		for range 8 {
			wg.Go(func() {
				for _, want := range states {
					got, found, err := lookup.Get(want.SKU)
					switch {
					case err != nil:
						errs <- err
					case !found || !reflect.DeepEqual(got, want):
						errs <- errors.New("concurrent Get(" + want.SKU + ") returned a different state")
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// t0 is the fixtures' reference time, in UTC as every stored time is.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// States returns the suite's fixtures, built by inventory.Apply so they are
// states the stock processor could really have stored: a SKU with levels
// and adjustments at several locations, one with adjustments but no level,
// one with a single level, one whose adjustments drive it below zero, and one
// whose SKU uses every allowed character class at the maximum length. Each
// call returns fresh values that share no memory with earlier calls.
func States(t testing.TB) []inventory.State {
	t.Helper()
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	build := func(sku string, evs ...inventory.Event) inventory.State {
		s := inventory.State{SKU: sku}
		for i, ev := range evs {
			next, res, err := inventory.Apply(s, ev, at(100))
			if err != nil || !res.Changed {
				t.Fatalf("fixture %s event %d (%+v): changed=%v err=%v", sku, i, ev, res.Changed, err)
			}
			s = next
		}
		return s
	}
	lvl := func(sku, loc string, n int64, min int, seq uint64) inventory.Event {
		return inventory.StockLevel{SKU: sku, Location: loc, OnHand: n, AsOf: at(min), Sequence: seq}
	}
	adj := func(id, sku, loc string, d int64, min int) inventory.Event {
		return inventory.StockAdjustment{EventID: id, SKU: sku, Location: loc, Delta: d, OccurredAt: at(min)}
	}
	long := strings.Repeat("Az9._-", inventory.MaxIDLength/6) + strings.Repeat("x", inventory.MaxIDLength%6)
	return []inventory.State{
		build("SKU-1",
			lvl("SKU-1", "WH-1", 10, 1, 3),
			adj("a-1", "SKU-1", "WH-1", -2, 2),
			adj("a-2", "SKU-1", "WH-1", 5, 3),
			lvl("SKU-1", "WH-2", 7, 1, 0),
			adj("a-3", "SKU-1", "WH-3", 4, 4),
		),
		build("SKU-2", adj("b-1", "SKU-2", "store.berlin", 3, 5), adj("b-2", "SKU-2", "store.berlin", -1, 6)),
		build("sku_3", lvl("sku_3", "WH-1", 0, 7, 0)),
		build("SKU-4", lvl("SKU-4", "WH-1", 1, 1, 0), adj("d-1", "SKU-4", "WH-1", -5, 2)),
		build(long, lvl(long, "WH-1", inventory.MaxUnits, 1, 1)),
	}
}

// UnknownSKUs are valid SKUs that states does not hold: near misses of
// stored SKUs (case, prefix, suffix) as well as unrelated ones.
func UnknownSKUs(states []inventory.State) []string {
	known := map[string]bool{}
	for _, s := range states {
		known[s.SKU] = true
	}
	var out []string
	add := func(sku string) {
		if !known[sku] && inventory.ValidateID("sku", sku) == nil {
			out = append(out, sku)
		}
	}
	add("SKU-unknown")
	for _, s := range states {
		add(strings.ToLower(s.SKU))
		add(s.SKU[:len(s.SKU)-1])
		add(s.SKU + "0")
	}
	return out
}
