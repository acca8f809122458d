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
			lvlIn("ST-4", inventory.AreaFloor, 3, at(2), 0),
			adjIn("a", "ST-4", inventory.AreaBackroom, 1, at(3)),
			sellable("web", false, at(2)),
			salesCap("web", 3, at(1), at(5), at(2)),
			salesCap("app", 0, at(1), at(5), at(2)),
			backorder(2, at(2)),
			safety("WH-1", 1, at(2)),
			safetyCleared("WH-2", at(2)),
		),
	}
}

// fuzzPolicies are the policies fuzzed states are evaluated under: none, and
// a closed store, a web-only warehouse and a merchant.
var fuzzPolicies = []inventory.Policies{webOnly, richPolicies()}

// richPolicies returns (a fresh copy of) policies with a web-only
// warehouse with safety stock, a merchant location and a closed store.
func richPolicies() inventory.Policies {
	return inventory.Policies{
		Channels: []string{"web", "app", "pickup"},
		Locations: map[string]inventory.LocationPolicy{
			"WH-2": {Location: "WH-2", Kind: inventory.KindWarehouse, Channels: []string{"web"}, SafetyStock: 1, AsOf: at(0)},
			"WH-3": {Location: "WH-3", Kind: inventory.KindMerchant, MerchantID: "M1", AsOf: at(0)},
			"ST-4": {Location: "ST-4", Kind: inventory.KindStore, Closed: true, AsOf: at(0)},
		},
		Merchants:         map[string]inventory.MerchantPolicy{"M1": {MerchantID: "M1", StaleAfter: 3 * time.Second, AsOf: at(0)}},
		DefaultStaleAfter: time.Second,
	}
}

func fuzzTime(zero bool, sec, nsec int64, offset int) time.Time {
	if zero {
		return time.Time{}
	}
	return time.Unix(sec, nsec).In(time.FixedZone("fuzz", offset%(48*3600)))
}

// fuzzArea maps a fuzzed byte to an area, mostly valid ones.
func fuzzArea(b byte) string {
	switch b % 5 {
	case 0, 1:
		return inventory.AreaWhole
	case 2:
		return inventory.AreaFloor
	case 3:
		return inventory.AreaBackroom
	}
	return "attic"
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
		for _, p := range fuzzPolicies {
			for _, now := range []time.Time{at(0), at(4), at(1000)} {
				evaluate(t, got, p, now)
			}
		}
		again, res2, err := inventory.Apply(got, ev, t0)
		if err != nil || res2.Changed || !reflect.DeepEqual(again, got) {
			t.Fatalf("second Apply: changed=%v err=%v", res2.Changed, err)
		}
	}
}

func FuzzStockLevel(f *testing.F) {
	f.Add(sku, "WH-1", int64(5), at(4).Unix(), int64(0), uint64(0), 0, false, byte(0))
	f.Add(sku, "WH-1", int64(5), at(1).Unix(), int64(0), uint64(9), 3600, false, byte(0))
	f.Add(sku, "WH-1", int64(10), at(2).Unix(), int64(0), uint64(1), 0, false, byte(0))
	f.Add(sku, "WH-3", int64(0), at(9).Unix(), int64(0), uint64(0), 0, false, byte(0))
	f.Add(sku, "WH-9", int64(inventory.MaxUnits), int64(0), int64(0), uint64(0), 0, false, byte(0))
	f.Add("SKU-2", "WH-1", int64(1), at(1).Unix(), int64(0), uint64(0), 0, false, byte(0))
	f.Add("", "", int64(-1), int64(-1), int64(-1), uint64(0), 0, true, byte(4))
	f.Add(sku, "WH-3", int64(28), at(-34).Unix(), int64(0), uint64(27), 0, false, byte(0)) // lands before "big"
	f.Add(sku, "WH 1", int64(1), int64(7258118400), int64(0), uint64(0), -7200, false, byte(0))
	f.Add(sku, "ST-4", int64(2), at(3).Unix(), int64(0), uint64(0), 0, false, byte(2)) // floor wins
	f.Add(sku, "ST-4", int64(2), at(2).Unix(), int64(0), uint64(0), 0, false, byte(3)) // covers backroom's "a"
	f.Add(sku, "ST-4", int64(2), at(2).Unix(), int64(0), uint64(0), 0, false, byte(4)) // bad area
	starts := fuzzStarts(f)                                                            // Apply must not modify them; checkFuzzedApply checks
	f.Fuzz(func(t *testing.T, skuID, loc string, onHand, sec, nsec int64, seq uint64, offset int, zero bool, area byte) {
		checkFuzzedApply(t, starts, inventory.StockLevel{
			SKU: skuID, Location: loc, OnHand: onHand, AsOf: fuzzTime(zero, sec, nsec, offset), Sequence: seq, Area: fuzzArea(area),
		})
	})
}

func FuzzStockAdjustment(f *testing.F) {
	f.Add("c", sku, "WH-1", int64(3), at(5).Unix(), int64(0), 0, false, byte(0))
	f.Add("a", sku, "WH-1", int64(-2), at(3).Unix(), int64(0), 0, false, byte(0)) // duplicate
	f.Add("a", sku, "WH-1", int64(-3), at(3).Unix(), int64(0), 0, false, byte(0)) // conflict
	f.Add("a", sku, "WH-1", int64(-2), at(1).Unix(), int64(0), 0, false, byte(0)) // covered
	f.Add("c", sku, "WH-3", int64(2), at(5).Unix(), int64(0), 0, false, byte(0))  // beyond the limit
	f.Add("c", sku, "WH-3", int64(-inventory.MaxUnits), at(5).Unix(), int64(0), 0, false, byte(0))
	f.Add("", "", "", int64(0), int64(-1), int64(0), 0, true, byte(4))
	f.Add("x", "SKU-2", "WH-1", int64(1), at(5).Unix(), int64(999999999), 50400, false, byte(0))
	f.Add("a", sku, "ST-4", int64(1), at(3).Unix(), int64(0), 0, false, byte(3)) // duplicate in an area
	f.Add("a", sku, "ST-4", int64(9), at(3).Unix(), int64(0), 0, false, byte(3)) // conflict in an area
	f.Add("a", sku, "ST-4", int64(9), at(3).Unix(), int64(0), 0, false, byte(2)) // same id, other area
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, id, skuID, loc string, delta, sec, nsec int64, offset int, zero bool, area byte) {
		checkFuzzedApply(t, starts, inventory.StockAdjustment{
			EventID: id, SKU: skuID, Location: loc, Delta: delta, OccurredAt: fuzzTime(zero, sec, nsec, offset), Area: fuzzArea(area),
		})
	})
}

func FuzzChannelEligibility(f *testing.F) {
	f.Add(sku, "web", true, at(3).Unix(), int64(0), 0, false)
	f.Add(sku, "web", false, at(2).Unix(), int64(0), 0, false)   // duplicate
	f.Add(sku, "web", true, at(2).Unix(), int64(0), 3600, false) // tie
	f.Add(sku, "app", true, at(1).Unix(), int64(0), 0, false)
	f.Add("SKU-2", "web", true, at(3).Unix(), int64(0), 0, false)
	f.Add("", "", false, int64(0), int64(0), 0, true)
	f.Add(sku, "we b", true, at(3).Unix(), int64(0), 0, false)
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, skuID, channel string, ok bool, sec, nsec int64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.ChannelEligibility{SKU: skuID, Channel: channel, Sellable: ok, AsOf: fuzzTime(zero, sec, nsec, offset)})
	})
}

func FuzzSalesCap(f *testing.F) {
	f.Add(sku, "web", int64(3), at(1).Unix(), at(5).Unix(), false, at(2).Unix(), int64(0), 0, false) // duplicate
	f.Add(sku, "web", int64(9), at(1).Unix(), at(5).Unix(), false, at(2).Unix(), int64(0), 0, false) // tie
	f.Add(sku, "web", int64(0), at(4).Unix(), at(9).Unix(), false, at(3).Unix(), int64(0), 0, false)
	f.Add(sku, "app", int64(0), int64(0), int64(0), true, at(3).Unix(), int64(0), 0, false)
	f.Add(sku, "web", int64(-1), at(5).Unix(), at(5).Unix(), false, at(3).Unix(), int64(0), 0, false)
	f.Add(sku, "web", int64(inventory.MaxUnits), at(-9).Unix(), at(9).Unix(), false, at(3).Unix(), int64(1), 7200, false)
	f.Add("", "", int64(0), int64(0), int64(0), false, int64(0), int64(0), 0, true)
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, skuID, channel string, limit, start, end int64, cleared bool, sec, nsec int64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.SalesCap{
			SKU: skuID, Channel: channel, Limit: limit, Cleared: cleared,
			WindowStart: fuzzTime(start == 0, start, nsec, offset), WindowEnd: fuzzTime(end == 0, end, nsec, offset),
			AsOf: fuzzTime(zero, sec, nsec, offset),
		})
	})
}

func FuzzBackorderLimit(f *testing.F) {
	f.Add(sku, int64(2), at(2).Unix(), int64(0), 0, false) // duplicate
	f.Add(sku, int64(3), at(2).Unix(), int64(0), 0, false) // tie
	f.Add(sku, int64(0), at(9).Unix(), int64(0), 0, false)
	f.Add(sku, int64(-1), at(9).Unix(), int64(0), 0, false)
	f.Add("x y", int64(inventory.MaxUnits+1), int64(0), int64(0), 0, true)
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, skuID string, limit, sec, nsec int64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.BackorderLimit{SKU: skuID, Limit: limit, AsOf: fuzzTime(zero, sec, nsec, offset)})
	})
}

func FuzzSafetyStockOverride(f *testing.F) {
	f.Add(sku, "WH-1", int64(1), false, at(2).Unix(), int64(0), 0, false) // duplicate
	f.Add(sku, "WH-1", int64(9), false, at(3).Unix(), int64(0), 0, false)
	f.Add(sku, "WH-2", int64(0), true, at(2).Unix(), int64(0), 0, false)  // duplicate clear
	f.Add(sku, "WH-2", int64(5), false, at(2).Unix(), int64(0), 0, false) // tie with a clear
	f.Add(sku, "WH-1", int64(-1), true, at(3).Unix(), int64(0), 0, false)
	f.Add("", "", int64(0), false, int64(0), int64(0), 0, true)
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, skuID, loc string, units int64, cleared bool, sec, nsec int64, offset int, zero bool) {
		checkFuzzedApply(t, starts, inventory.SafetyStockOverride{SKU: skuID, Location: loc, Units: units, Cleared: cleared, AsOf: fuzzTime(zero, sec, nsec, offset)})
	})
}

// checkFuzzedPolicy checks one ApplyLocationPolicy or ApplyMerchantPolicy
// call: an error wraps ErrInvalidEvent and returns cur unchanged; success
// means the event validates, the result is idempotent, and it is either the
// event or cur.
func checkFuzzedPolicy[P any](t *testing.T, apply func(P, bool, P) (P, inventory.Result, error), validate func(P) error,
	curs []P, ev P, subject func(P) string) {
	t.Helper()
	verr := validate(ev)
	if verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
		t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
	}
	first, _, firstErr := apply(*new(P), false, ev)
	if (firstErr == nil) != (verr == nil) {
		t.Fatalf("Validate() = %v but apply with nothing current = %v", verr, firstErr)
	}
	for _, cur := range curs {
		for _, found := range []bool{false, true} {
			before := clonePolicy(cur)
			got, res, err := apply(cur, found, ev)
			if !reflect.DeepEqual(cur, before) {
				t.Fatalf("apply modified its current policy: %+v, was %+v", cur, before)
			}
			if err != nil {
				if !errors.Is(err, inventory.ErrInvalidEvent) || res.Changed || !reflect.DeepEqual(got, cur) {
					t.Fatalf("rejected with %v, changed=%v, returned %+v for current %+v", err, res.Changed, got, cur)
				}
				if verr == nil && !(found && subject(cur) != subject(ev)) {
					t.Fatalf("valid event %+v rejected: %v", ev, err)
				}
				continue
			}
			if found && subject(cur) != subject(ev) {
				t.Fatalf("policy for %q accepted onto %q", subject(ev), subject(cur))
			}
			switch {
			case !found && (!res.Changed || !reflect.DeepEqual(got, first)):
				t.Fatalf("with nothing current: %+v changed=%v, want %+v", got, res.Changed, first)
			case found && !res.Changed && !reflect.DeepEqual(got, cur):
				t.Fatalf("unchanged but returned %+v for %+v", got, cur)
			case found && res.Changed && !reflect.DeepEqual(got, first):
				t.Fatalf("won but returned %+v, want the normalised event %+v", got, first)
			}
			again, res2, err := apply(got, true, ev)
			if err != nil || res2.Changed || !reflect.DeepEqual(again, got) {
				t.Fatalf("second apply: changed=%v err=%v", res2.Changed, err)
			}
		}
	}
}

func clonePolicy[P any](p P) P {
	if lp, ok := any(p).(inventory.LocationPolicy); ok {
		if lp.Channels != nil {
			lp.Channels = append([]string{}, lp.Channels...)
		}
		return any(lp).(P)
	}
	return p
}

func FuzzLocationPolicy(f *testing.F) {
	f.Add("WH-2", uint8(1), "", false, "web", "app", int64(1), at(1).Unix(), int64(0), 0, false, at(3).Unix())
	f.Add("WH-3", uint8(3), "M1", false, "", "", int64(0), at(0).Unix(), int64(0), 0, false, at(2).Unix())
	f.Add("ST-4", uint8(2), "", true, "pickup", "pickup", int64(0), at(0).Unix(), int64(0), 3600, false, at(1).Unix())
	f.Add("WH-1", uint8(1), "M1", false, "", "", int64(0), at(0).Unix(), int64(0), 0, false, at(0).Unix())
	f.Add("WH-1", uint8(3), "", false, "we b", "", int64(-1), int64(0), int64(0), 0, true, int64(0))
	f.Add("WH-1", uint8(7), "", false, "", "", int64(inventory.MaxUnits+1), at(0).Unix(), int64(0), 0, false, at(0).Unix())
	curs := []inventory.LocationPolicy{
		{},
		fuzzPolicies[1].Locations["WH-2"],
		fuzzPolicies[1].Locations["WH-3"],
		fuzzPolicies[1].Locations["ST-4"],
	}
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, loc string, kind uint8, merchant string, closed bool, ch1, ch2 string, safetyStock, sec, nsec int64, offset int, zero bool, nowSec int64) {
		ev := inventory.LocationPolicy{Location: loc, Kind: inventory.LocationKind(kind), MerchantID: merchant, Closed: closed,
			SafetyStock: safetyStock, AsOf: fuzzTime(zero, sec, nsec, offset)}
		for _, c := range []string{ch1, ch2} {
			if c != "" {
				ev.Channels = append(ev.Channels, c)
			}
		}
		checkFuzzedPolicy(t, inventory.ApplyLocationPolicy, inventory.LocationPolicy.Validate, curs, ev,
			func(p inventory.LocationPolicy) string { return p.Location })
		got, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, ev)
		if err != nil {
			return
		}
		// Whatever policy is accepted, Evaluate never panics and never
		// answers a negative or over-promised count.
		p := fuzzPolicies[1]
		p.Locations = map[string]inventory.LocationPolicy{got.Location: got}
		now := time.Unix(nowSec%(1<<34), 0)
		for _, s := range starts {
			evaluate(t, s, p, now)
		}
	})
}

func FuzzMerchantPolicy(f *testing.F) {
	f.Add("M1", int64(3*time.Second), at(0).Unix(), int64(0), 0, false, at(3).Unix())
	f.Add("M1", int64(0), at(1).Unix(), int64(0), 0, false, at(2).Unix())
	f.Add("M1", int64(inventory.MaxStaleAfter), at(1).Unix(), int64(0), 0, false, at(2).Unix())
	f.Add("M1", int64(inventory.MaxStaleAfter+1), at(1).Unix(), int64(0), 0, false, at(2).Unix())
	f.Add("M 1", int64(-1), int64(0), int64(0), 0, true, int64(0))
	curs := []inventory.MerchantPolicy{{}, fuzzPolicies[1].Merchants["M1"]}
	starts := fuzzStarts(f)
	f.Fuzz(func(t *testing.T, id string, staleAfter, sec, nsec int64, offset int, zero bool, nowSec int64) {
		ev := inventory.MerchantPolicy{MerchantID: id, StaleAfter: time.Duration(staleAfter), AsOf: fuzzTime(zero, sec, nsec, offset)}
		checkFuzzedPolicy(t, inventory.ApplyMerchantPolicy, inventory.MerchantPolicy.Validate, curs, ev,
			func(p inventory.MerchantPolicy) string { return p.MerchantID })
		got, _, err := inventory.ApplyMerchantPolicy(inventory.MerchantPolicy{}, false, ev)
		if err != nil {
			return
		}
		p := fuzzPolicies[1]
		p.Locations = map[string]inventory.LocationPolicy{"WH-1": {Location: "WH-1", Kind: inventory.KindMerchant, MerchantID: got.MerchantID, AsOf: at(0)}}
		p.Merchants = map[string]inventory.MerchantPolicy{got.MerchantID: got}
		now := time.Unix(nowSec%(1<<34), 0)
		for _, s := range starts {
			snap := evaluate(t, s, p, now)
			ttl := got.StaleAfter
			if ttl == 0 {
				ttl = p.DefaultStaleAfter
			}
			for _, l := range snap.Locations {
				if l.ID == "WH-1" && l.HasLevel && l.StaleAt.Sub(l.LevelAsOf) != ttl {
					t.Fatalf("merchant TTL %s (default %s), location stale %s after its level", got.StaleAfter, p.DefaultStaleAfter, l.StaleAt.Sub(l.LevelAsOf))
				}
			}
		}
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
		for _, ev := range []interface{ Validate() error }{
			lvl(id, 1, at(0), 0),
			sellable(id, true, at(0)),
			safety(id, 1, at(0)),
			inventory.LocationPolicy{Location: id, Kind: inventory.KindWarehouse, AsOf: at(0)},
			inventory.MerchantPolicy{MerchantID: id, AsOf: at(0)},
		} {
			if err := ev.Validate(); !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("%T with id %q: Validate() = %v, want ErrInvalidEvent", ev, id, err)
			}
		}
	})
}
