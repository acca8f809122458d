package inventory_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// permutations returns every ordering of evs (len(evs) must be small).
func permutations[E any](evs []E) [][]E {
	if len(evs) <= 1 {
		return [][]E{slices.Clone(evs)}
	}
	var out [][]E
	for i := range evs {
		rest := slices.Concat(evs[:i:i], evs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]E{evs[i]}, p...))
		}
	}
	return out
}

func TestLevelLastWriterWins(t *testing.T) {
	tests := []struct {
		name   string
		levels []inventory.StockLevel
		winner int
	}{
		{"newer as_of wins", []inventory.StockLevel{lvl("WH-1", 5, at(1), 1), lvl("WH-1", 7, at(2), 0)}, 1},
		{"older as_of loses despite higher sequence", []inventory.StockLevel{lvl("WH-1", 5, at(2), 0), lvl("WH-1", 9, at(1), 9)}, 0},
		{"higher sequence wins at the same as_of", []inventory.StockLevel{lvl("WH-1", 5, at(1), 1), lvl("WH-1", 3, at(1), 2)}, 1},
		{"exact tie is broken by the larger count", []inventory.StockLevel{lvl("WH-1", 5, at(1), 1), lvl("WH-1", 8, at(1), 1)}, 1},
		{"larger count does not beat a higher sequence", []inventory.StockLevel{lvl("WH-1", 500, at(1), 1), lvl("WH-1", 8, at(1), 2)}, 1},
		{"one nanosecond later wins", []inventory.StockLevel{lvl("WH-1", 9, at(1), 5), lvl("WH-1", 1, at(1).Add(time.Nanosecond), 0)}, 1},
		{"same instant in another zone is a tie on time", []inventory.StockLevel{lvl("WH-1", 5, at(1).In(zonePlus2), 1), lvl("WH-1", 4, at(1), 1)}, 0},
		{"zero count can win", []inventory.StockLevel{lvl("WH-1", 50, at(1), 0), lvl("WH-1", 0, at(3), 0), lvl("WH-1", 20, at(2), 7)}, 1},
		{"four-way", []inventory.StockLevel{
			lvl("WH-1", 3, at(4), 1), lvl("WH-1", 4, at(4), 2), lvl("WH-1", 9, at(4), 2), lvl("WH-1", 100, at(3), 99),
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.levels[tt.winner]
			for _, order := range permutations(tt.levels) {
				var s inventory.State
				for _, e := range order {
					s = applyAll(t, s, e)
				}
				l, ok := location(s, "WH-1")
				if !ok || !l.HasLevel || l.Level != w.OnHand || !l.LevelAsOf.Equal(w.AsOf) || l.LevelSeq != w.Sequence {
					t.Fatalf("order %v: location %+v, want level %+v", order, l, w)
				}
				if l.LevelAsOf != w.AsOf.UTC() {
					t.Fatalf("LevelAsOf %v is not the UTC form of %v", l.LevelAsOf, w.AsOf)
				}
				// Re-sending any of them changes nothing.
				for _, e := range tt.levels {
					s2, res, err := inventory.Apply(s, e, t0)
					if err != nil || res.Changed || !reflect.DeepEqual(s2, s) {
						t.Fatalf("re-sending %+v: changed=%v err=%v", e, res.Changed, err)
					}
				}
			}
		})
	}
}

func TestAdjustmentRules(t *testing.T) {
	type step struct {
		ev      inventory.Event
		changed bool
	}
	tests := []struct {
		name    string
		steps   []step
		onHand  map[string]int64 // per location
		kept    []string         // WH-1's stored adjustment ids
		wantRaw int64            // WH-1's level + stored deltas
	}{
		{
			name:   "adjustments without a level sum",
			steps:  []step{{adj("a", "WH-1", 5, at(1)), true}, {adj("b", "WH-1", -2, at(2)), true}},
			onHand: map[string]int64{"WH-1": 3}, kept: []string{"a", "b"}, wantRaw: 3,
		},
		{
			name: "negative is floored at read time, not clamped in storage",
			steps: []step{
				{adj("a", "WH-1", -5, at(1)), true},
				{adj("b", "WH-1", 3, at(2)), true},
				{adj("c", "WH-1", 4, at(3)), true},
			},
			onHand: map[string]int64{"WH-1": 2}, kept: []string{"a", "b", "c"}, wantRaw: 2,
		},
		{
			name:   "duplicate id is counted once",
			steps:  []step{{adj("a", "WH-1", 5, at(1)), true}, {adj("a", "WH-1", 5, at(1)), false}},
			onHand: map[string]int64{"WH-1": 5}, kept: []string{"a"}, wantRaw: 5,
		},
		{
			name:   "duplicate with its time in another zone is the same event",
			steps:  []step{{adj("a", "WH-1", 5, at(1)), true}, {adj("a", "WH-1", 5, at(1).In(zoneMinus5)), false}},
			onHand: map[string]int64{"WH-1": 5}, kept: []string{"a"}, wantRaw: 5,
		},
		{
			name:   "same id at another location is another event",
			steps:  []step{{adj("a", "WH-1", 5, at(1)), true}, {adj("a", "WH-2", 5, at(1)), true}},
			onHand: map[string]int64{"WH-1": 5, "WH-2": 5}, kept: []string{"a"}, wantRaw: 5,
		},
		{
			name:   "adjustment at the level's as_of is ignored",
			steps:  []step{{lvl("WH-1", 10, at(5), 0), true}, {adj("a", "WH-1", -3, at(5)), false}},
			onHand: map[string]int64{"WH-1": 10}, wantRaw: 10,
		},
		{
			name:   "adjustment at the level's as_of in another zone is ignored",
			steps:  []step{{lvl("WH-1", 10, at(5), 0), true}, {adj("a", "WH-1", -3, at(5).In(zonePlus2)), false}},
			onHand: map[string]int64{"WH-1": 10}, wantRaw: 10,
		},
		{
			name:   "adjustment before the level is ignored",
			steps:  []step{{lvl("WH-1", 10, at(5), 0), true}, {adj("a", "WH-1", -3, at(4)), false}},
			onHand: map[string]int64{"WH-1": 10}, wantRaw: 10,
		},
		{
			name:   "adjustment after the level counts",
			steps:  []step{{lvl("WH-1", 10, at(5), 0), true}, {adj("a", "WH-1", -3, at(5).Add(time.Nanosecond)), true}},
			onHand: map[string]int64{"WH-1": 7}, kept: []string{"a"}, wantRaw: 7,
		},
		{
			name: "newer level prunes the adjustments it covers",
			steps: []step{
				{adj("a", "WH-1", -3, at(2)), true},
				{adj("b", "WH-1", 1, at(6)), true},
				{adj("c", "WH-1", 2, at(4)), true},
				{lvl("WH-1", 20, at(4), 0), true},
			},
			onHand: map[string]int64{"WH-1": 21}, kept: []string{"b"}, wantRaw: 21,
		},
		{
			name: "pruned adjustment re-delivered stays ignored",
			steps: []step{
				{adj("a", "WH-1", -3, at(2)), true},
				{lvl("WH-1", 20, at(4), 0), true},
				{adj("a", "WH-1", -3, at(2)), false},
			},
			onHand: map[string]int64{"WH-1": 20}, wantRaw: 20,
		},
		{
			name: "older level after adjustments changes nothing",
			steps: []step{
				{lvl("WH-1", 10, at(5), 0), true},
				{adj("a", "WH-1", 2, at(6)), true},
				{lvl("WH-1", 99, at(3), 9), false},
			},
			onHand: map[string]int64{"WH-1": 12}, kept: []string{"a"}, wantRaw: 12,
		},
		{
			name: "level replacing a level prunes what lies between",
			steps: []step{
				{lvl("WH-1", 10, at(1), 0), true},
				{adj("a", "WH-1", 2, at(2)), true},
				{adj("b", "WH-1", -1, at(3)), true},
				{lvl("WH-1", 7, at(2), 0), true},
			},
			onHand: map[string]int64{"WH-1": 6}, kept: []string{"b"}, wantRaw: 6,
		},
		{
			name: "level arriving before the adjustments",
			steps: []step{
				{lvl("WH-1", 7, at(5), 0), true},
				{adj("a", "WH-1", -1, at(4)), false},
				{adj("b", "WH-1", -1, at(6)), true},
				{adj("b", "WH-1", -1, at(6)), false},
			},
			onHand: map[string]int64{"WH-1": 6}, kept: []string{"b"}, wantRaw: 6,
		},
		{
			name: "level below the pending deltas floors at 0",
			steps: []step{
				{lvl("WH-1", 2, at(1), 0), true},
				{adj("a", "WH-1", -5, at(2)), true},
			},
			onHand: map[string]int64{"WH-1": 0}, kept: []string{"a"}, wantRaw: -3,
		},
		{
			name: "adjustments stored sorted by id whatever the arrival order",
			steps: []step{
				{adj("z", "WH-1", 1, at(1)), true},
				{adj("b", "WH-1", 1, at(3)), true},
				{adj("m", "WH-1", 1, at(2)), true},
			},
			onHand: map[string]int64{"WH-1": 3}, kept: []string{"b", "m", "z"}, wantRaw: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := inventory.State{SKU: sku}
			for i, st := range tt.steps {
				next, res, err := inventory.Apply(s, st.ev, t0)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if res.Changed != st.changed {
					t.Fatalf("step %d %+v: Changed = %v, want %v", i, st.ev, res.Changed, st.changed)
				}
				if !res.Changed && !reflect.DeepEqual(next, s) {
					t.Fatalf("step %d: unchanged result but state differs:\n%+v\n%+v", i, next, s)
				}
				checkState(t, next)
				s = next
			}
			var total int64
			for id, want := range tt.onHand {
				l, ok := location(s, id)
				if !ok {
					t.Fatalf("location %s missing", id)
				}
				if l.OnHand() != want {
					t.Errorf("%s on-hand = %d, want %d", id, l.OnHand(), want)
				}
				total += want
			}
			if len(s.Locations) != len(tt.onHand) {
				t.Errorf("state has %d locations, want %d", len(s.Locations), len(tt.onHand))
			}
			wh1, _ := location(s, "WH-1")
			var ids []string
			raw := wh1.Level
			for _, a := range wh1.Adjustment {
				ids = append(ids, a.EventID)
				raw += a.Delta
			}
			if !slices.Equal(ids, tt.kept) {
				t.Errorf("WH-1 kept adjustments %v, want %v", ids, tt.kept)
			}
			if raw != tt.wantRaw {
				t.Errorf("WH-1 raw on-hand %d, want %d", raw, tt.wantRaw)
			}
			snap := evalWeb(t, s)
			if snap.OnHand != total || webAvailable(t, snap) != total {
				t.Errorf("snapshot on-hand %d available %d, want %d", snap.OnHand, webAvailable(t, snap), total)
			}
		})
	}
}

func TestConflictingDuplicate(t *testing.T) {
	base := applyAll(t, inventory.State{SKU: sku},
		lvl("WH-1", 10, at(0), 0),
		adj("a", "WH-1", -2, at(3)),
		adj("b", "WH-2", 4, at(1)),
	)
	tests := []struct {
		name string
		ev   inventory.StockAdjustment
	}{
		{"different delta", adj("a", "WH-1", -3, at(3))},
		{"different sign", adj("a", "WH-1", 2, at(3))},
		{"different time", adj("a", "WH-1", -2, at(4))},
		{"one nanosecond off", adj("a", "WH-1", -2, at(3).Add(-time.Nanosecond))},
		{"location without level", adj("b", "WH-2", 5, at(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneState(base)
			got, res, err := inventory.Apply(base, tt.ev, t0)
			if !errors.Is(err, inventory.ErrConflictingDuplicate) {
				t.Fatalf("Apply = %v, want ErrConflictingDuplicate", err)
			}
			if errors.Is(err, inventory.ErrInvalidEvent) {
				t.Errorf("conflict %v also matches ErrInvalidEvent", err)
			}
			if !inventory.IsInvalid(err) {
				t.Errorf("IsInvalid(%v) = false", err)
			}
			if res.Changed {
				t.Error("Changed = true on error")
			}
			assertStateEqual(t, got, before, "state returned with the error")
			assertStateEqual(t, base, before, "input state")
		})
	}

	// A reused id whose first use is already covered by the level cannot be
	// told apart from a covered event: it is ignored, not rejected.
	covered := applyAll(t, inventory.State{SKU: sku}, adj("a", "WH-1", -2, at(1)), lvl("WH-1", 10, at(2), 0))
	got, res, err := inventory.Apply(covered, adj("a", "WH-1", -9, at(1)), t0)
	if err != nil || res.Changed || !reflect.DeepEqual(got, covered) {
		t.Errorf("covered reuse: changed=%v err=%v", res.Changed, err)
	}
}

func TestApplyRejectsInvalidEvents(t *testing.T) {
	base := applyAll(t, inventory.State{},
		lvl("WH-1", 10, at(0), 0),
		adj("a", "WH-1", -2, at(3)),
		adj("b", "WH-2", 4, at(1)),
	)
	type bad struct {
		name string
		ev   inventory.Event
		// skuBound cases are only invalid against a state that has a SKU.
		skuBound bool
	}
	cases := []bad{
		{"nil event", nil, false},
		{"unknown event type", unknownEvent{lvl("WH-1", 1, at(9), 0)}, false},
		{"level for another sku", inventory.StockLevel{SKU: "SKU-2", Location: "WH-1", OnHand: 1, AsOf: at(9)}, true},
		{"adjustment for another sku", inventory.StockAdjustment{EventID: "z", SKU: "SKU-2", Location: "WH-1", Delta: 1, OccurredAt: at(9)}, true},
	}
	for _, tt := range invalidLevels() {
		cases = append(cases, bad{"level: " + tt.name, tt.ev, false})
	}
	for _, tt := range invalidAdjustments() {
		cases = append(cases, bad{"adjustment: " + tt.name, tt.ev, false})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			starts := []inventory.State{base, {SKU: sku}}
			if !tt.skuBound {
				starts = append(starts, inventory.State{})
			}
			for _, start := range starts {
				before := cloneState(start)
				got, res, err := inventory.Apply(start, tt.ev, t0)
				if !errors.Is(err, inventory.ErrInvalidEvent) {
					t.Fatalf("Apply = %v, want ErrInvalidEvent", err)
				}
				if res.Changed {
					t.Error("Changed = true on error")
				}
				assertStateEqual(t, got, before, "state returned with the error")
				assertStateEqual(t, start, before, "input state")
			}
		})
	}
}

func TestApplySKU(t *testing.T) {
	s, res, err := inventory.Apply(inventory.State{}, lvl("WH-1", 1, at(0), 0), t0)
	if err != nil || !res.Changed || s.SKU != sku {
		t.Fatalf("empty state: sku %q changed=%v err=%v", s.SKU, res.Changed, err)
	}
	s2, _, err := inventory.Apply(inventory.State{}, adj("a", "WH-1", 1, at(0)), t0)
	if err != nil || s2.SKU != sku {
		t.Fatalf("empty state, adjustment: sku %q err=%v", s2.SKU, err)
	}
	other := inventory.StockLevel{SKU: "SKU-2", Location: "WH-1", OnHand: 1, AsOf: at(5)}
	if _, _, err := inventory.Apply(s, other, t0); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Fatalf("sku mismatch: %v", err)
	}
	if _, _, err := inventory.Apply(inventory.State{SKU: sku}, other, t0); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Fatalf("sku mismatch on a state with no locations: %v", err)
	}
}

// Sums beyond ±MaxUnits are accepted and clamped when read, never rejected:
// rejecting on the running sum would make the result depend on arrival order.
func TestAdjustmentLimits(t *testing.T) {
	tests := []struct {
		name string
		evs  []inventory.Event
		want int64
	}{
		{"up to the limit", []inventory.Event{adj("a", "WH-1", inventory.MaxUnits-1, at(1)), adj("b", "WH-1", 1, at(2))}, inventory.MaxUnits},
		{"over the limit reads as the limit", []inventory.Event{adj("a", "WH-1", inventory.MaxUnits, at(1)), adj("b", "WH-1", 1, at(2))}, inventory.MaxUnits},
		{"level plus delta over the limit", []inventory.Event{lvl("WH-1", inventory.MaxUnits, at(0), 0), adj("b", "WH-1", 1, at(2))}, inventory.MaxUnits},
		{"down to minus the limit", []inventory.Event{adj("a", "WH-1", -inventory.MaxUnits, at(1)), adj("b", "WH-1", 1, at(2)), adj("c", "WH-1", -1, at(3))}, 0},
		{"back from beyond the limit", []inventory.Event{adj("a", "WH-1", inventory.MaxUnits, at(1)), adj("b", "WH-1", inventory.MaxUnits, at(2)), adj("c", "WH-1", -inventory.MaxUnits, at(3))}, inventory.MaxUnits},
		{"other locations do not count", []inventory.Event{adj("a", "WH-1", inventory.MaxUnits, at(1)), adj("b", "WH-2", 5, at(2))}, inventory.MaxUnits + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := applyAll(t, inventory.State{}, tt.evs[:len(tt.evs)-1]...)
			got, res, err := inventory.Apply(s, tt.evs[len(tt.evs)-1], t0)
			if err != nil || !res.Changed {
				t.Fatalf("Apply: changed=%v err=%v", res.Changed, err)
			}
			checkState(t, got)
			snap := evalWeb(t, got)
			if snap.OnHand != tt.want || webAvailable(t, snap) != min(tt.want, inventory.MaxUnits) {
				t.Fatalf("on-hand %d available %d, want %d", snap.OnHand, webAvailable(t, snap), tt.want)
			}
		})
	}
}

func TestApplyNormalizesTimesToUTC(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("WH-1", 3, at(1).In(zonePlus2), 0),
		adj("a", "WH-1", 1, at(2).In(zoneMinus5)),
		adj("b", "WH-2", 1, time.Now()), // carries a monotonic reading
	)
	checkState(t, s)
	u := applyAll(t, inventory.State{}, lvl("WH-1", 3, at(1), 0), adj("a", "WH-1", 1, at(2)))
	wh1, _ := location(s, "WH-1")
	if uwh1, _ := location(u, "WH-1"); !reflect.DeepEqual(wh1, uwh1) {
		t.Errorf("zone leaks into state:\n%+v\n%+v", wh1, uwh1)
	}
	wh2, _ := location(s, "WH-2")
	if a := wh2.Adjustment[0].OccurredAt; a != a.Round(0) {
		t.Errorf("monotonic clock reading kept in %v", a)
	}
}

// mutationBase is a state with several locations, levels and adjustments.
func mutationBase(t *testing.T) inventory.State {
	return applyAll(t, inventory.State{},
		lvl("WH-1", 10, at(2), 1),
		adj("a", "WH-1", -2, at(3)),
		adj("c", "WH-1", 5, at(5)),
		adj("b", "WH-2", 4, at(1)),
		lvl("WH-3", 7, at(1), 0),
		lvlIn("ST-4", inventory.AreaFloor, 3, at(1), 0),
		adjIn("f", "ST-4", inventory.AreaBackroom, 2, at(2)),
		sellable("b-web", true, at(2)),
		sellable("d-app", false, at(2)),
		salesCap("b-web", 5, at(1), at(9), at(2)),
		salesCap("d-app", 5, at(1), at(9), at(2)),
		backorder(3, at(2)),
		safety("WH-1", 1, at(2)),
		safety("WH-3", 2, at(2)),
	)
}

// mutationEvents exercise every path through Apply.
func mutationEvents() []inventory.Event {
	return []inventory.Event{
		lvl("WH-1", 1, at(4), 0),      // wins and prunes a
		lvl("WH-1", 1, at(9), 0),      // wins and prunes all
		lvl("WH-1", 1, at(1), 0),      // loses
		lvl("WH-2", 3, at(0), 0),      // first level at a location with adjustments
		lvl("WH-0", 3, at(0), 0),      // new location first
		lvl("WH-9", 3, at(0), 0),      // new location last
		adj("b2", "WH-1", 1, at(6)),   // inserted in the middle
		adj("0", "WH-1", 1, at(6)),    // inserted first
		adj("z", "WH-1", 1, at(6)),    // inserted last
		adj("a", "WH-1", -2, at(3)),   // duplicate
		adj("a", "WH-1", -3, at(3)),   // conflicting duplicate
		adj("x", "WH-1", 1, at(1)),    // covered
		adj("x", "WH-2", 1, at(1)),    // new at a location without level
		adj("x", "WH-5", 1, at(1)),    // new location in the middle
		adj("x", "WH-3", -100, at(2)), // goes negative
		lvl("WH-1", -1, at(9), 0),     // invalid
		inventory.StockLevel{SKU: "other", Location: "WH-1", OnHand: 1, AsOf: at(9)},
		lvlIn("ST-4", inventory.AreaWhole, 1, at(3), 0),      // new area before the others
		lvlIn("ST-4", inventory.AreaFloor, 9, at(3), 0),      // replaces an area's level
		adjIn("g", "ST-4", inventory.AreaBackroom, 1, at(3)), // adds to an area
		adjIn("f", "ST-4", inventory.AreaFloor, 2, at(2)),    // same id in another area, covered
		sellable("a-first", true, at(3)),                     // inserted first
		sellable("c-mid", true, at(3)),                       // inserted in the middle
		sellable("z-last", true, at(3)),                      // inserted last
		sellable("b-web", false, at(3)),                      // replaces
		sellable("b-web", false, at(1)),                      // loses
		salesCap("a-first", 1, at(1), at(2), at(3)),          // inserted first
		capCleared("b-web", at(3)),                           // replaces with a cleared cap
		salesCap("d-app", 5, at(1), at(9), at(2)),            // duplicate
		backorder(9, at(3)),                                  // replaces
		backorder(9, at(1)),                                  // loses
		safety("WH-2", 1, at(3)),                             // inserted in the middle
		safetyCleared("WH-1", at(3)),                         // replaces with a cleared override
		safety("WH-9", 1, at(3)),                             // inserted last
		safety("WH-3", 2, at(2)),                             // duplicate
		backorder(-1, at(9)),                                 // invalid
	}
}

func TestApplyDoesNotMutateInput(t *testing.T) {
	for i, ev := range mutationEvents() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := mutationBase(t)
			before := cloneState(s)
			_, _, _ = inventory.Apply(s, ev, t0)
			assertStateEqual(t, s, before, fmt.Sprintf("input after applying %+v", ev))
		})
	}
}

// TestApplyResultsDoNotAlias applies two events to the same state whose slices
// have spare capacity: neither result may see the other's writes.
func TestApplyResultsDoNotAlias(t *testing.T) {
	roomy := func(s inventory.State) inventory.State {
		locs := make([]inventory.Location, len(s.Locations), len(s.Locations)+8)
		copy(locs, s.Locations)
		for i := range locs {
			a := make([]inventory.Adjustment, len(locs[i].Adjustment), len(locs[i].Adjustment)+8)
			copy(a, locs[i].Adjustment)
			locs[i].Adjustment = a
		}
		out := s
		out.Locations = locs
		out.ChannelRules = append(make([]inventory.ChannelRule, 0, len(s.ChannelRules)+8), s.ChannelRules...)
		out.SalesCaps = append(make([]inventory.SalesCapRule, 0, len(s.SalesCaps)+8), s.SalesCaps...)
		out.SafetyOverrides = append(make([]inventory.SafetyOverrideRule, 0, len(s.SafetyOverrides)+8), s.SafetyOverrides...)
		return out
	}
	evs := mutationEvents()
	for i, e1 := range evs {
		for j, e2 := range evs {
			s := roomy(mutationBase(t))
			r1, _, err1 := inventory.Apply(s, e1, t0)
			snap1 := cloneState(r1)
			r2, _, err2 := inventory.Apply(s, e2, t0)
			snap2 := cloneState(r2)
			// Apply on top of the first result too, and again on the input.
			_, _, _ = inventory.Apply(r1, e2, t0)
			_, _, _ = inventory.Apply(s, e1, t0)
			if !reflect.DeepEqual(r1, snap1) || !reflect.DeepEqual(r2, snap2) {
				t.Fatalf("events %d (%v) and %d (%v): results alias each other", i, err1, j, err2)
			}
		}
	}
}

func TestOnHandNeverNegative(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("WH-1", 0, at(1), 0),
		adj("a", "WH-1", -5, at(2)),
		adj("b", "WH-2", -7, at(2)),
		adj("c", "WH-3", 3, at(2)),
	)
	for _, l := range s.Locations {
		if l.OnHand() < 0 {
			t.Errorf("%s on-hand %d", l.ID, l.OnHand())
		}
	}
	snap := evalWeb(t, s)
	if snap.OnHand != 3 || webAvailable(t, snap) != 3 {
		t.Errorf("totals on-hand %d available %d, want 3 (sum of floored locations, not -9)", snap.OnHand, webAvailable(t, snap))
	}
	if (inventory.Location{Level: 2, Adjustment: []inventory.Adjustment{{Delta: -3}}}).OnHand() != 0 {
		t.Error("Location.OnHand not floored")
	}
}

// OnHand never wraps around: a sum beyond int64 saturates, then is clamped
// to [0, MaxUnits]. (Reaching it through Apply takes millions of events; a
// decoded state can hold anything.)
func TestOnHandSaturates(t *testing.T) {
	up := inventory.Location{Level: math.MaxInt64 - 5, Adjustment: []inventory.Adjustment{{Delta: 10}, {Delta: -1}}}
	if n := up.OnHand(); n != inventory.MaxUnits {
		t.Errorf("saturating up: OnHand = %d, want MaxUnits", n)
	}
	down := inventory.Location{Level: math.MinInt64 + 5, Adjustment: []inventory.Adjustment{{Delta: -10}, {Delta: 1}}}
	if n := down.OnHand(); n != 0 {
		t.Errorf("saturating down: OnHand = %d, want 0", n)
	}
}
