package inventory_test

import (
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

func TestAvailability(t *testing.T) {
	tests := []struct {
		name string
		evs  []inventory.Event
		want inventory.Snapshot // Version ignored
	}{
		{
			name: "no events",
			want: inventory.Snapshot{SKU: sku, Locations: []inventory.LocationSnapshot{}},
		},
		{
			name: "levels, adjustments and a negative location",
			evs: []inventory.Event{
				lvl("WH-1", 10, at(2), 0),
				adj("a", "WH-1", -2, at(5)),
				adj("b", "WH-2", 3, at(7)),
				lvl("WH-3", 0, at(1), 0),
				adj("c", "WH-3", -4, at(3)),
			},
			want: inventory.Snapshot{
				SKU: sku, OnHand: 11, Available: 11, UpdatedAt: at(7),
				Locations: []inventory.LocationSnapshot{
					{ID: "WH-1", OnHand: 8, HasLevel: true, LevelAsOf: at(2)},
					{ID: "WH-2", OnHand: 3},
					{ID: "WH-3", OnHand: 0, HasLevel: true, LevelAsOf: at(1)},
				},
			},
		},
		{
			name: "updated_at is the newest level when it is newest",
			evs:  []inventory.Event{adj("a", "WH-1", 1, at(1)), lvl("WH-2", 4, at(6).In(zonePlus2), 0)},
			want: inventory.Snapshot{
				SKU: sku, OnHand: 5, Available: 5, UpdatedAt: at(6),
				Locations: []inventory.LocationSnapshot{
					{ID: "WH-1", OnHand: 1},
					{ID: "WH-2", OnHand: 4, HasLevel: true, LevelAsOf: at(6)},
				},
			},
		},
		{
			name: "all locations negative",
			evs:  []inventory.Event{adj("a", "WH-1", -1, at(1)), adj("a", "WH-2", -1, at(2))},
			want: inventory.Snapshot{
				SKU: sku, UpdatedAt: at(2),
				Locations: []inventory.LocationSnapshot{{ID: "WH-1"}, {ID: "WH-2"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := applyAll(t, inventory.State{SKU: sku}, tt.evs...)
			before := cloneState(s)
			snap := inventory.Availability(s)
			assertStateEqual(t, s, before, "state after Availability")
			checkSnapshot(t, s, snap)
			if got := withoutVersion(snap); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Availability:\n got  %+v\n want %+v", got, tt.want)
			}
			if again := inventory.Availability(s); !reflect.DeepEqual(again, snap) {
				t.Fatalf("Availability is not deterministic: %+v then %+v", snap, again)
			}
		})
	}
}

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestSnapshotVersion(t *testing.T) {
	other := func(e inventory.StockLevel) inventory.StockLevel { e.SKU = "SKU-2"; return e }
	tests := []struct {
		name string
		a, b []inventory.Event
		same bool
	}{
		{"no events", nil, nil, true},
		{"same events", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-1", 1, at(1), 0)}, true},
		{"same snapshot from different states",
			[]inventory.Event{adj("a", "WH-1", 1, at(5)), adj("b", "WH-1", 1, at(5))},
			[]inventory.Event{adj("c", "WH-1", 2, at(5))}, true},
		{"same snapshot from a different sequence number",
			[]inventory.Event{lvl("WH-1", 1, at(1), 0)},
			[]inventory.Event{lvl("WH-1", 1, at(1), 7)}, true},
		{"on-hand", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-1", 2, at(1), 0)}, false},
		{"sku", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{other(lvl("WH-1", 1, at(1), 0))}, false},
		{"location id", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-2", 1, at(1), 0)}, false},
		{"level as_of only",
			[]inventory.Event{lvl("WH-1", 5, at(1), 0), adj("a", "WH-1", 1, at(3))},
			[]inventory.Event{lvl("WH-1", 5, at(2), 0), adj("a", "WH-1", 1, at(3))}, false},
		{"level as_of by a nanosecond",
			[]inventory.Event{lvl("WH-1", 5, at(1), 0), adj("a", "WH-1", 1, at(3))},
			[]inventory.Event{lvl("WH-1", 5, at(1).Add(time.Nanosecond), 0), adj("a", "WH-1", 1, at(3))}, false},
		{"updated_at only", []inventory.Event{adj("a", "WH-1", 1, at(5))}, []inventory.Event{adj("a", "WH-1", 1, at(6))}, false},
		{"level versus adjustment", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{adj("a", "WH-1", 1, at(1))}, false},
		{"extra empty location",
			[]inventory.Event{lvl("WH-1", 5, at(1), 0)},
			[]inventory.Event{lvl("WH-1", 5, at(1), 0), lvl("WH-2", 0, at(1), 0)}, false},
		{"units moved between locations",
			[]inventory.Event{lvl("WH-1", 5, at(1), 0), lvl("WH-2", 0, at(1), 0)},
			[]inventory.Event{lvl("WH-1", 0, at(1), 0), lvl("WH-2", 5, at(1), 0)}, false},
		{"ids split differently",
			[]inventory.Event{lvl("A", 1, at(1), 0), lvl("BC", 1, at(1), 0)},
			[]inventory.Event{lvl("AB", 1, at(1), 0), lvl("C", 1, at(1), 0)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := inventory.Availability(applyAll(t, inventory.State{}, tt.a...))
			b := inventory.Availability(applyAll(t, inventory.State{}, tt.b...))
			for _, s := range []inventory.Snapshot{a, b} {
				if !hex16.MatchString(s.Version) {
					t.Fatalf("version %q is not 16 lowercase hex digits", s.Version)
				}
			}
			equal := reflect.DeepEqual(withoutVersion(a), withoutVersion(b))
			if equal != tt.same {
				t.Fatalf("snapshots equal = %v, want %v:\n%+v\n%+v", equal, tt.same, a, b)
			}
			if (a.Version == b.Version) != equal {
				t.Fatalf("versions %s and %s, but snapshots equal = %v:\n%+v\n%+v", a.Version, b.Version, equal, a, b)
			}
		})
	}
}
