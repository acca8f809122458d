package inventory_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// The reference model: for every location, the set of all distinct events ever
// seen. It never prunes and never dedupes on arrival; it answers every question
// from the whole set, which makes it obviously order-independent:
//
//	on_hand = max level by (AsOf, Sequence, OnHand)
//	        + the adjustments that occurred strictly after that level's AsOf
//	          (all of them when there is no level),
//	floored at 0.
//
// Generated adjustment ids are derived from their content, so the model never
// has to decide a conflicting duplicate.
type model struct {
	sku  string
	locs map[string]*modelLoc
}

type modelLoc struct {
	levels []inventory.StockLevel
	adjs   map[string]inventory.StockAdjustment // by EventID
}

func newModel() *model { return &model{sku: sku, locs: map[string]*modelLoc{}} }

func (m *model) loc(id string) *modelLoc {
	ml := m.locs[id]
	if ml == nil {
		ml = &modelLoc{adjs: map[string]inventory.StockAdjustment{}}
		m.locs[id] = ml
	}
	return ml
}

func (m *model) add(ev inventory.Event) {
	switch e := ev.(type) {
	case inventory.StockLevel:
		ml := m.loc(e.Location)
		ml.levels = append(ml.levels, e)
	case inventory.StockAdjustment:
		m.loc(e.Location).adjs[e.EventID] = e
	default:
		panic(fmt.Sprintf("model: unexpected event %T", ev))
	}
}

// levelLess orders levels by (AsOf, Sequence, OnHand).
func levelLess(a, b inventory.StockLevel) bool {
	if !a.AsOf.Equal(b.AsOf) {
		return a.AsOf.Before(b.AsOf)
	}
	if a.Sequence != b.Sequence {
		return a.Sequence < b.Sequence
	}
	return a.OnHand < b.OnHand
}

func (ml *modelLoc) best() (inventory.StockLevel, bool) {
	if len(ml.levels) == 0 {
		return inventory.StockLevel{}, false
	}
	b := ml.levels[0]
	for _, l := range ml.levels[1:] {
		if levelLess(b, l) {
			b = l
		}
	}
	return b, true
}

// live returns the adjustments that count on top of the best level, by id.
func (ml *modelLoc) live() []inventory.StockAdjustment {
	b, hasLevel := ml.best()
	var out []inventory.StockAdjustment
	for _, a := range ml.adjs {
		if !hasLevel || a.OccurredAt.After(b.AsOf) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y inventory.StockAdjustment) int { return strings.Compare(x.EventID, y.EventID) })
	return out
}

func (ml *modelLoc) onHand() int64 {
	b, _ := ml.best()
	n := b.OnHand
	for _, a := range ml.live() {
		n += a.Delta
	}
	return max(0, n)
}

func (m *model) ids() []string {
	ids := make([]string, 0, len(m.locs))
	for id := range m.locs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *model) total() int64 {
	var n int64
	for _, ml := range m.locs {
		n += ml.onHand()
	}
	return n
}

// state is the State Apply must have produced from the model's events.
func (m *model) state() inventory.State {
	s := inventory.State{SKU: m.sku}
	for _, id := range m.ids() {
		ml := m.locs[id]
		l := inventory.Location{ID: id}
		if b, ok := ml.best(); ok {
			l.HasLevel, l.Level, l.LevelAsOf, l.LevelSeq = true, b.OnHand, b.AsOf.UTC(), b.Sequence
		}
		for _, a := range ml.live() {
			l.Adjustment = append(l.Adjustment, inventory.Adjustment{EventID: a.EventID, Delta: a.Delta, OccurredAt: a.OccurredAt.UTC()})
		}
		s.Locations = append(s.Locations, l)
	}
	return s
}

// snapshot is the Snapshot (without Version) Availability must derive.
func (m *model) snapshot() inventory.Snapshot {
	snap := inventory.Snapshot{SKU: m.sku, Locations: []inventory.LocationSnapshot{}}
	for _, id := range m.ids() {
		ml := m.locs[id]
		ls := inventory.LocationSnapshot{ID: id, OnHand: ml.onHand()}
		if b, ok := ml.best(); ok {
			ls.HasLevel, ls.LevelAsOf = true, b.AsOf.UTC()
			if b.AsOf.After(snap.UpdatedAt) {
				snap.UpdatedAt = b.AsOf.UTC()
			}
		}
		for _, a := range ml.live() {
			if a.OccurredAt.After(snap.UpdatedAt) {
				snap.UpdatedAt = a.OccurredAt.UTC()
			}
		}
		snap.OnHand += ls.OnHand
		snap.Locations = append(snap.Locations, ls)
	}
	snap.Available = snap.OnHand
	return snap
}

// checkAgainstModel compares a state and its snapshot with the model.
func checkAgainstModel(t tb, s inventory.State, m *model) {
	t.Helper()
	checkState(t, s)
	snap := inventory.Availability(s)
	checkSnapshot(t, s, snap)
	for _, id := range m.ids() {
		l, ok := location(s, id)
		if !ok {
			t.Fatalf("location %s missing from state", id)
		}
		if got, want := l.OnHand(), m.locs[id].onHand(); got != want {
			t.Fatalf("location %s on-hand %d, model says %d", id, got, want)
		}
	}
	if snap.OnHand != m.total() || snap.Available != m.total() {
		t.Fatalf("total on-hand %d available %d, model says %d", snap.OnHand, snap.Available, m.total())
	}
	assertStateEqual(t, s, m.state(), "state vs model")
	if got, want := withoutVersion(snap), m.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot vs model:\n got  %+v\n want %+v", got, want)
	}
}

// Generators: few locations, a few seconds of time in several zones and
// small counts, so that ties, duplicates and covered adjustments are common.

var (
	genLocation = rapid.SampledFrom([]string{"WH-1", "WH-2", "STORE-3"})
	genZone     = rapid.SampledFrom([]*time.Location{time.UTC, zonePlus2, zoneMinus5})
)

func drawTime(t *rapid.T, label string) time.Time {
	return at(rapid.IntRange(0, 8).Draw(t, label)).In(genZone.Draw(t, label+"-zone"))
}

var genLevel = rapid.Custom(func(t *rapid.T) inventory.StockLevel {
	return inventory.StockLevel{
		SKU:      sku,
		Location: genLocation.Draw(t, "location"),
		OnHand:   rapid.Int64Range(0, 20).Draw(t, "on_hand"),
		AsOf:     drawTime(t, "as_of"),
		Sequence: rapid.Uint64Range(0, 2).Draw(t, "sequence"),
	}
})

// contentID derives an adjustment's id from its content (plus a nonce so two
// identical movements can still be two events), so equal ids mean equal events.
func contentID(loc string, nonce int, delta int64, when time.Time) string {
	return fmt.Sprintf("%s/%d/%+d@%d", loc, nonce, delta, when.Unix())
}

var genAdjustment = rapid.Custom(func(t *rapid.T) inventory.StockAdjustment {
	loc := genLocation.Draw(t, "location")
	delta := rapid.Int64Range(-10, 9).Draw(t, "delta")
	if delta >= 0 {
		delta++
	}
	when := drawTime(t, "occurred_at")
	nonce := rapid.IntRange(0, 1).Draw(t, "nonce")
	return inventory.StockAdjustment{
		EventID: contentID(loc, nonce, delta, when), SKU: sku, Location: loc, Delta: delta, OccurredAt: when,
	}
})

var genEvent = rapid.OneOf(
	rapid.Map(genLevel, func(e inventory.StockLevel) inventory.Event { return e }),
	rapid.Map(genAdjustment, func(e inventory.StockAdjustment) inventory.Event { return e }),
)

// inZone returns the same event with its time expressed in another zone.
func inZone(ev inventory.Event, z *time.Location) inventory.Event {
	switch e := ev.(type) {
	case inventory.StockLevel:
		e.AsOf = e.AsOf.In(z)
		return e
	case inventory.StockAdjustment:
		e.OccurredAt = e.OccurredAt.In(z)
		return e
	}
	return ev
}

// drawEvents draws an event list in which some events are delivered again,
// possibly with their time in another zone.
func drawEvents(t *rapid.T, maxLen int) []inventory.Event {
	// rapid favours short slices; draw the length first to get longer
	// histories more often.
	n := rapid.IntRange(0, maxLen).Draw(t, "length")
	evs := rapid.SliceOfN(genEvent, n, n).Draw(t, "events")
	if len(evs) == 0 {
		return evs
	}
	redeliver := rapid.SliceOfN(rapid.IntRange(0, len(evs)-1), 0, len(evs)).Draw(t, "redeliveries")
	for _, i := range redeliver {
		evs = append(evs, inZone(evs[i], genZone.Draw(t, "redelivery-zone")))
	}
	return rapid.Permutation(evs).Draw(t, "order")
}

func fold(t tb, evs []inventory.Event) inventory.State {
	t.Helper()
	return applyAll(t, inventory.State{SKU: sku}, evs...)
}

// (a) and (d): after every event the state equals the model's, and no count
// is ever negative.
func TestPropertyMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newModel()
		s := inventory.State{SKU: sku}
		for _, ev := range drawEvents(t, 30) {
			s = applyAll(t, s, ev)
			m.add(ev)
			checkAgainstModel(t, s, m)
		}
	})
}

// (b): applying an event twice is the same as applying it once.
func TestPropertyIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := drawEvents(t, 20)
		s := fold(t, evs)
		ev := genEvent.Draw(t, "event")
		if len(evs) > 0 && rapid.Bool().Draw(t, "seen-before") {
			ev = rapid.SampledFrom(evs).Draw(t, "seen")
		}
		once, _, err := inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("first apply: %v", err)
		}
		twice, res, err := inventory.Apply(once, inZone(ev, genZone.Draw(t, "zone")), t0)
		if err != nil {
			t.Fatalf("second apply: %v", err)
		}
		if res.Changed {
			t.Fatalf("second apply of %+v reported a change", ev)
		}
		assertStateEqual(t, twice, once, "twice vs once")
		if !reflect.DeepEqual(inventory.Availability(twice), inventory.Availability(once)) {
			t.Fatal("snapshots differ")
		}
	})
}

// (c): every order of the same events gives the identical state and snapshot.
func TestPropertyOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := drawEvents(t, 25)
		other := rapid.Permutation(evs).Draw(t, "other-order")
		a, b := fold(t, evs), fold(t, other)
		assertStateEqual(t, b, a, "state in another order")
		if sa, sb := inventory.Availability(a), inventory.Availability(b); !reflect.DeepEqual(sa, sb) {
			t.Fatalf("snapshots differ:\n%+v\n%+v", sa, sb)
		}
	})
}

// Snapshot.Version is equal exactly when the rest of the snapshot is.
func TestPropertyVersionIffEqual(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := inventory.Availability(fold(t, drawEvents(t, 3)))
		b := inventory.Availability(fold(t, drawEvents(t, 3)))
		equal := reflect.DeepEqual(withoutVersion(a), withoutVersion(b))
		if equal != (a.Version == b.Version) {
			t.Fatalf("content equal = %v but versions %s, %s:\n%+v\n%+v", equal, a.Version, b.Version, a, b)
		}
	})
}

// stockMachine applies random events, re-deliveries, conflicting reuses of
// ids and invalid events, and checks the state against the model every step.
type stockMachine struct {
	s       inventory.State
	m       *model
	history []inventory.Event
}

// apply applies ev and checks what every call must satisfy; it returns the
// result and error for the action to judge.
func (sm *stockMachine) apply(t *rapid.T, ev inventory.Event) (inventory.State, inventory.Result, error) {
	t.Helper()
	before := cloneState(sm.s)
	next, res, err := inventory.Apply(sm.s, ev, t0)
	assertStateEqual(t, sm.s, before, "input state after Apply")
	if err != nil || !res.Changed {
		assertStateEqual(t, next, sm.s, "state returned unchanged")
	} else if reflect.DeepEqual(next, sm.s) {
		t.Fatalf("Changed reported for %+v but the state is the same", ev)
	}
	return next, res, err
}

func (sm *stockMachine) accept(t *rapid.T, ev inventory.Event) {
	next, _, err := sm.apply(t, ev)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", ev, err)
	}
	sm.s = next
	sm.m.add(ev)
	sm.history = append(sm.history, ev)
}

func (sm *stockMachine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"level": func(t *rapid.T) { sm.accept(t, genLevel.Draw(t, "level")) },
		"adjustment": func(t *rapid.T) {
			sm.accept(t, genAdjustment.Draw(t, "adjustment"))
		},
		"redeliver": func(t *rapid.T) {
			if len(sm.history) == 0 {
				t.Skip("nothing delivered yet")
			}
			ev := rapid.SampledFrom(sm.history).Draw(t, "event")
			ev = inZone(ev, genZone.Draw(t, "zone"))
			next, res, err := sm.apply(t, ev)
			if err != nil || res.Changed {
				t.Fatalf("re-delivery of %+v: changed=%v err=%v", ev, res.Changed, err)
			}
			sm.s = next
		},
		"conflicting id": func(t *rapid.T) {
			var seen []inventory.StockAdjustment
			for _, ev := range sm.history {
				if a, ok := ev.(inventory.StockAdjustment); ok {
					seen = append(seen, a)
				}
			}
			if len(seen) == 0 {
				t.Skip("no adjustment delivered yet")
			}
			orig := rapid.SampledFrom(seen).Draw(t, "original")
			ev := orig
			ev.Delta = orig.Delta + rapid.SampledFrom([]int64{-3, -1, 1, 2}).Draw(t, "change")
			if ev.Delta == 0 {
				ev.Delta = 5
			}
			b, hasLevel := sm.m.locs[orig.Location].best()
			stored := !hasLevel || orig.OccurredAt.After(b.AsOf)
			_, res, err := sm.apply(t, ev)
			switch {
			case stored && !errors.Is(err, inventory.ErrConflictingDuplicate):
				t.Fatalf("reused id %q with delta %+d: err = %v, want ErrConflictingDuplicate", ev.EventID, ev.Delta, err)
			case !stored && (err != nil || res.Changed):
				t.Fatalf("reused id %q covered by the level: changed=%v err=%v, want ignored", ev.EventID, res.Changed, err)
			}
		},
		"invalid": func(t *rapid.T) {
			bad := []inventory.Event{
				inventory.StockLevel{SKU: "SKU-2", Location: "WH-1", OnHand: 1, AsOf: at(1)},
				inventory.StockAdjustment{EventID: "x", SKU: "SKU-2", Location: "WH-1", Delta: 1, OccurredAt: at(1)},
				lvl("WH-1", -1, at(1), 0),
				lvl("WH 1", 1, at(1), 0),
				adj("x", "WH-1", 0, at(1)),
				adj("", "WH-1", 1, at(1)),
				adj("x", "WH-1", 1, time.Time{}),
				nil,
			}
			ev := rapid.SampledFrom(bad).Draw(t, "bad")
			_, _, err := sm.apply(t, ev)
			if !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Apply(%+v) = %v, want ErrInvalidEvent", ev, err)
			}
		},
		"replay shuffled": func(t *rapid.T) {
			replay := fold(t, rapid.Permutation(sm.history).Draw(t, "order"))
			assertStateEqual(t, replay, sm.s, "replay of the history in another order")
		},
		"": func(t *rapid.T) { checkAgainstModel(t, sm.s, sm.m) },
	}
}

// (e): a state machine over random events, re-deliveries, conflicting ids and
// invalid events, checked against the model after every step.
func TestStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sm := &stockMachine{s: inventory.State{SKU: sku}, m: newModel()}
		t.Repeat(sm.actions())
	})
}
