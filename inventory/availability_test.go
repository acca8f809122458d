package inventory_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// warehouse is the snapshot line of a location with no policy and one
// (whole) area.
func warehouse(id string, onHand int64, hasLevel bool, asOf time.Time) inventory.LocationSnapshot {
	return inventory.LocationSnapshot{
		ID: id, Kind: inventory.KindWarehouse, OnHand: onHand, Usable: onHand,
		Areas:    []inventory.AreaStock{{Area: inventory.AreaWhole, OnHand: onHand}},
		HasLevel: hasLevel, LevelAsOf: asOf,
	}
}

func webChannel(n int64) []inventory.ChannelSnapshot {
	return []inventory.ChannelSnapshot{{Channel: "web", Available: n, Usable: n, Sellable: true}}
}

// TestAvailability is the old Availability table, evaluated for web with no
// policies: per-location and total on-hand, and web availability equal to
// the total.
func TestAvailability(t *testing.T) {
	tests := []struct {
		name string
		evs  []inventory.Event
		want inventory.Snapshot // Version ignored
	}{
		{
			name: "no events",
			want: inventory.Snapshot{SKU: sku, Channels: webChannel(0)},
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
				SKU: sku, OnHand: 11, UpdatedAt: at(7), Channels: webChannel(11),
				Locations: []inventory.LocationSnapshot{
					warehouse("WH-1", 8, true, at(2)),
					warehouse("WH-2", 3, false, time.Time{}),
					warehouse("WH-3", 0, true, at(1)),
				},
			},
		},
		{
			name: "updated_at is the newest level when it is newest",
			evs:  []inventory.Event{adj("a", "WH-1", 1, at(1)), lvl("WH-2", 4, at(6).In(zonePlus2), 0)},
			want: inventory.Snapshot{
				SKU: sku, OnHand: 5, UpdatedAt: at(6), Channels: webChannel(5),
				Locations: []inventory.LocationSnapshot{
					warehouse("WH-1", 1, false, time.Time{}),
					warehouse("WH-2", 4, true, at(6)),
				},
			},
		},
		{
			name: "all locations negative",
			evs:  []inventory.Event{adj("a", "WH-1", -1, at(1)), adj("a", "WH-2", -1, at(2))},
			want: inventory.Snapshot{
				SKU: sku, UpdatedAt: at(2), Channels: webChannel(0),
				Locations: []inventory.LocationSnapshot{
					warehouse("WH-1", 0, false, time.Time{}),
					warehouse("WH-2", 0, false, time.Time{}),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := applyAll(t, inventory.State{SKU: sku}, tt.evs...)
			before := cloneState(s)
			snap := evalWeb(t, s)
			assertStateEqual(t, s, before, "state after Evaluate")
			if got := canonical(snap); !reflect.DeepEqual(got, canonical(tt.want)) {
				t.Fatalf("Evaluate:\n got  %+v\n want %+v", got, tt.want)
			}
			if again := inventory.Evaluate(s, webOnly, t0); !reflect.DeepEqual(again, snap) {
				t.Fatalf("Evaluate is not deterministic: %+v then %+v", snap, again)
			}
			if snap.EvaluatedAt != t0 {
				t.Fatalf("EvaluatedAt %v, want %v", snap.EvaluatedAt, t0)
			}
		})
	}
}

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
		{"same snapshot from a policy that changes nothing",
			[]inventory.Event{lvl("WH-1", 1, at(1), 0)},
			[]inventory.Event{lvl("WH-1", 1, at(1), 0), sellable("web", true, at(1)), safety("WH-1", 0, at(1))}, true},
		{"on-hand", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-1", 2, at(1), 0)}, false},
		{"sku", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{other(lvl("WH-1", 1, at(1), 0))}, false},
		{"location id", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-2", 1, at(1), 0)}, false},
		{"area", []inventory.Event{lvlIn("ST-1", inventory.AreaFloor, 1, at(1), 0)}, []inventory.Event{lvlIn("ST-1", inventory.AreaBackroom, 1, at(1), 0)}, false},
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
		{"not sellable", []inventory.Event{lvl("WH-1", 1, at(1), 0)}, []inventory.Event{lvl("WH-1", 1, at(1), 0), sellable("web", false, at(1))}, false},
		{"safety stock", []inventory.Event{lvl("WH-1", 5, at(1), 0)}, []inventory.Event{lvl("WH-1", 5, at(1), 0), safety("WH-1", 1, at(1))}, false},
		{"backorder", []inventory.Event{lvl("WH-1", 5, at(1), 0)}, []inventory.Event{lvl("WH-1", 5, at(1), 0), backorder(1, at(1))}, false},
		{"future cap", []inventory.Event{lvl("WH-1", 5, at(1), 0)}, []inventory.Event{lvl("WH-1", 5, at(1), 0), salesCap("web", 9, at(50), at(60), at(1))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := evalWeb(t, applyAll(t, inventory.State{}, tt.a...))
			b := evalWeb(t, applyAll(t, inventory.State{}, tt.b...))
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

// The query time is not content: the same answer at two times has the same
// Version.
func TestSnapshotVersionIgnoresEvaluatedAt(t *testing.T) {
	s := applyAll(t, inventory.State{}, lvl("WH-1", 5, at(1), 0))
	a, b := evaluate(t, s, webOnly, at(1)), evaluate(t, s, webOnly, at(1000).In(zonePlus2))
	if a.Version != b.Version || a.EvaluatedAt.Equal(b.EvaluatedAt) {
		t.Fatalf("versions %s and %s at %v and %v", a.Version, b.Version, a.EvaluatedAt, b.EvaluatedAt)
	}
}
