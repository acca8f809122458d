package inventory

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// bump changes a leaf value in a way that must change the digest.
func bump(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	default:
		if tm, ok := v.Interface().(time.Time); ok {
			v.Set(reflect.ValueOf(tm.Add(time.Nanosecond)))
			return
		}
		t.Fatalf("no way to change a %s; teach bump about it", v.Type())
	}
}

// digestBase returns a snapshot in which every field, at every depth, is
// set; each call returns a fresh copy.
func digestBase() Snapshot {
	t1 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	return Snapshot{
		SKU: "SKU-1", OnHand: 7, UpdatedAt: t1.Add(time.Hour), NextChangeAt: t1.Add(2 * time.Hour),
		EvaluatedAt: t1.Add(90 * time.Minute), ShipTo: "US-CA",
		Locations: []LocationSnapshot{
			{ID: "WH-1", Kind: KindWarehouse, OnHand: 3, HasLevel: true, LevelAsOf: t1, SafetyStock: 1, Usable: 2,
				Areas: []AreaStock{{Area: AreaWhole, OnHand: 3}}, Channels: []string{"web"}},
			{ID: "MC-2", Kind: KindMerchant, MerchantID: "m", OnHand: 4, HasLevel: true, LevelAsOf: t1, Usable: 4,
				Areas:  []AreaStock{{Area: AreaFloor, OnHand: 1}, {Area: AreaBackroom, OnHand: 3}},
				Closed: true, Stale: true, StaleAt: t1.Add(time.Minute), Channels: []string{"app", "web"}, RegionExcluded: true},
		},
		Channels: []ChannelSnapshot{
			{Channel: "app", Available: 1, Backorderable: 2, Sellable: true, Usable: 3, Reserved: 1, HasCap: true, CapRemaining: 4,
				Reasons: []Reason{{Code: ReasonLocationClosed, Location: "MC-2", Message: "closed"}}},
			{Channel: "web", Reasons: []Reason{{Code: ReasonNotSellable, Message: "no"}, {Code: ReasonLocationStale, Location: "MC-2", Message: "stale"}}},
		},
	}
}

// step is one move from a value to a part of it: a field or a slice index.
type step struct {
	field, index int
	isIndex      bool
	name         string
}

func follow(v reflect.Value, path []step) reflect.Value {
	for _, s := range path {
		if s.isIndex {
			v = v.Index(s.index)
		} else {
			v = v.Field(s.field)
		}
	}
	return v
}

func pathName(path []step) string {
	var n string
	for _, s := range path {
		if s.isIndex {
			n += fmt.Sprintf("[%d]", s.index)
		} else {
			if n != "" {
				n += "."
			}
			n += s.name
		}
	}
	return n
}

// leaves lists the path to every leaf (non-struct, non-slice value or
// time.Time) and to every slice under v.
func leaves(v reflect.Value, path []step, leaf, slice func([]step)) {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		leaf(path)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if len(path) == 0 && (f.Name == "Version" || f.Name == "EvaluatedAt") {
				continue
			}
			leaves(v.Field(i), append(path[:len(path):len(path)], step{field: i, name: f.Name}), leaf, slice)
		}
	case v.Kind() == reflect.Slice:
		slice(path)
		for i := range v.Len() {
			leaves(v.Index(i), append(path[:len(path):len(path)], step{index: i, isIndex: true}), leaf, slice)
		}
	default:
		leaf(path)
	}
}

// TestDigestCoversEveryField changes every field of a Snapshot at every depth
// in turn, by reflection so that a field added later is covered too, and
// expects a new digest every time; so does dropping an element of any slice.
func TestDigestCoversEveryField(t *testing.T) {
	d0 := digestBase().digest()
	n := 0
	leaves(reflect.ValueOf(digestBase()), nil,
		func(path []step) {
			n++
			t.Run(pathName(path), func(t *testing.T) {
				s := digestBase()
				bump(t, follow(reflect.ValueOf(&s).Elem(), path))
				if s.digest() == d0 {
					t.Errorf("changing %s leaves the digest %s", pathName(path), d0)
				}
			})
		},
		func(path []step) {
			t.Run(pathName(path)+"-shorter", func(t *testing.T) {
				s := digestBase()
				v := follow(reflect.ValueOf(&s).Elem(), path)
				v.Set(v.Slice(0, v.Len()-1))
				if s.digest() == d0 {
					t.Errorf("dropping an element of %s leaves the digest %s", pathName(path), d0)
				}
			})
		})
	if n < 40 {
		t.Fatalf("only %d leaves visited; the walk is broken", n)
	}
	s := digestBase()
	s.EvaluatedAt = s.EvaluatedAt.Add(time.Hour)
	s.Version = "anything"
	if s.digest() != d0 {
		t.Error("EvaluatedAt or Version changes the digest")
	}
	if digestBase().digest() != d0 {
		t.Fatal("digest is not deterministic")
	}
}

// The digest must not panic on any snapshot Evaluate can build; the
// unreachable Marshal failure is the only panic.
func TestDigestOfEmptySnapshot(t *testing.T) {
	if d := (Snapshot{}).digest(); len(d) != 16 {
		t.Fatalf("digest %q", d)
	}
}

// An event time of exactly 1970-01-01T00:00:00Z used to be valid, but digest
// hashed it like the zero time.Time (UnixNano 0), and HasLevel was not hashed
// at all: a location with an absolute level and one without got the same
// Version.
func TestFixedBugEpochVersionCollision(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	withLevel, _, err1 := Apply(State{}, StockLevel{SKU: "SKU-1", Location: "WH-1", OnHand: 0, AsOf: epoch}, epoch)
	withoutLevel, _, err2 := Apply(State{}, StockAdjustment{EventID: "e", SKU: "SKU-1", Location: "WH-1", Delta: -1, OccurredAt: epoch}, epoch)
	if errors.Is(err1, ErrInvalidEvent) && errors.Is(err2, ErrInvalidEvent) {
		// The epoch is rejected as a missing time: that fixes it too. The
		// digest must still tell the two apart if such states appear.
		withLevel = State{SKU: "SKU-1", Locations: []Location{{ID: "WH-1", HasLevel: true, LevelAsOf: epoch}}}
		withoutLevel = State{SKU: "SKU-1", Locations: []Location{{ID: "WH-1", Adjustment: []Adjustment{{EventID: "e", Delta: -1, OccurredAt: epoch}}}}}
	} else if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	p := Policies{Channels: []string{"web"}}
	a, b := Evaluate(withLevel, p, epoch), Evaluate(withoutLevel, p, epoch)
	av, bv := a, b
	av.Version, bv.Version = "", ""
	if !reflect.DeepEqual(av, bv) && a.Version == b.Version {
		t.Fatalf("different snapshots share Version %s:\n%+v\n%+v", a.Version, a, b)
	}
}

// foldLenient applies events in order; an event Apply rejects is skipped, as
// the processor dead-letters it.
func foldLenient(evs ...Event) State {
	var s State
	for _, ev := range evs {
		s, _, _ = Apply(s, ev, time.Time{})
	}
	return s
}

// The limit check in applyAdjustment looked at the running sum, so whether a
// valid adjustment was rejected depended on which other events arrived first;
// with the same events in two orders the final on-hand differed.
func TestFixedBugAdjustmentLimitOrderDependent(t *testing.T) {
	t1 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	a1 := StockAdjustment{EventID: "a1", SKU: "SKU-1", Location: "WH-1", Delta: MaxUnits, OccurredAt: t1.Add(1 * time.Second)}
	a2 := StockAdjustment{EventID: "a2", SKU: "SKU-1", Location: "WH-1", Delta: MaxUnits, OccurredAt: t1.Add(3 * time.Second)}
	level := StockLevel{SKU: "SKU-1", Location: "WH-1", OnHand: 0, AsOf: t1.Add(2 * time.Second)}
	x := foldLenient(a1, a2, level) // a2 rejected: a1+a2 is over the limit; the level then prunes a1
	y := foldLenient(level, a1, a2) // a1 covered by the level, a2 accepted
	if !reflect.DeepEqual(x, y) {
		p := Policies{Channels: []string{"web"}}
		t.Fatalf("same events, different states:\n a1,a2,level: on-hand %d %+v\n level,a1,a2: on-hand %d %+v",
			Evaluate(x, p, t1).OnHand, x, Evaluate(y, p, t1).OnHand, y)
	}
}

// The MaxUnits check only ran on adjustments: a level that arrived late and
// landed before kept adjustments took a location beyond the limit, after
// which every adjustment, even a sale of one unit, was rejected as invalid
// until a newer level arrived. Found by FuzzStockLevel.
func TestFixedBugLevelBypassesUnitLimit(t *testing.T) {
	t1 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := foldLenient(
		StockAdjustment{EventID: "big", SKU: "SKU-1", Location: "WH-1", Delta: MaxUnits - 1, OccurredAt: t1.Add(2 * time.Second)},
		StockLevel{SKU: "SKU-1", Location: "WH-1", OnHand: 28, AsOf: t1.Add(time.Second)},
	)
	snap := Evaluate(s, Policies{Channels: []string{"web"}}, t1)
	if n := snap.OnHand; n > MaxUnits {
		t.Errorf("on-hand %d is beyond MaxUnits %d", n, int64(MaxUnits))
	}
	if n := snap.Channels[0].Available; n > MaxUnits {
		t.Errorf("available %d is beyond MaxUnits %d", n, int64(MaxUnits))
	}
	sale := StockAdjustment{EventID: "sale", SKU: "SKU-1", Location: "WH-1", Delta: -1, OccurredAt: t1.Add(3 * time.Second)}
	if _, _, err := Apply(s, sale, t1); err != nil {
		t.Errorf("a sale of one unit is rejected: %v", err)
	}
}

func TestLocationKindString(t *testing.T) {
	for k, want := range map[LocationKind]string{
		KindWarehouse: "warehouse", KindStore: "store", KindMerchant: "merchant",
		0: "LocationKind(0)", 9: "LocationKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("LocationKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// The set of events is closed: exactly these types implement Event.
func TestEventTypesAreEvents(t *testing.T) {
	for _, ev := range []Event{StockLevel{}, StockAdjustment{}, ChannelEligibility{}, SalesCap{}, BackorderLimit{}, SafetyStockOverride{}} {
		ev.isEvent()
		if ev.EventSKU() != "" {
			t.Errorf("%T: EventSKU of the zero value = %q", ev, ev.EventSKU())
		}
	}
}
