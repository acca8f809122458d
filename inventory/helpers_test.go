package inventory_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// tb is what the helpers need from *testing.T, *testing.F and *rapid.T alike.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

const sku = "SKU-1"

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

var (
	zonePlus2  = time.FixedZone("UTC+2", 2*60*60)
	zoneMinus5 = time.FixedZone("UTC-5", -5*60*60)
)

func lvl(loc string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	return inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: seq}
}

func adj(id, loc string, delta int64, occurredAt time.Time) inventory.StockAdjustment {
	return inventory.StockAdjustment{EventID: id, SKU: sku, Location: loc, Delta: delta, OccurredAt: occurredAt}
}

// applyAll folds events into s, failing on any error.
func applyAll(t tb, s inventory.State, evs ...inventory.Event) inventory.State {
	t.Helper()
	for i, ev := range evs {
		var err error
		s, _, err = inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("event %d %+v: %v", i, ev, err)
		}
	}
	return s
}

// cloneState deep-copies a State so a later comparison detects any write
// through the shared slices.
func cloneState(s inventory.State) inventory.State {
	out := inventory.State{SKU: s.SKU}
	if s.Locations != nil {
		out.Locations = make([]inventory.Location, len(s.Locations))
		for i, l := range s.Locations {
			l.Adjustment = slices.Clone(l.Adjustment)
			out.Locations[i] = l
		}
	}
	return out
}

func location(s inventory.State, id string) (inventory.Location, bool) {
	for _, l := range s.Locations {
		if l.ID == id {
			return l, true
		}
	}
	return inventory.Location{}, false
}

// checkState asserts the structural invariants every State returned by Apply
// must satisfy.
func checkState(t tb, s inventory.State) {
	t.Helper()
	for i, l := range s.Locations {
		if err := inventory.ValidateID("location", l.ID); err != nil {
			t.Fatalf("location %d: %v", i, err)
		}
		if i > 0 && strings.Compare(s.Locations[i-1].ID, l.ID) >= 0 {
			t.Fatalf("locations not strictly sorted: %q then %q", s.Locations[i-1].ID, l.ID)
		}
		if l.HasLevel {
			if l.LevelAsOf.Location() != time.UTC {
				t.Fatalf("location %q: LevelAsOf %v not in UTC", l.ID, l.LevelAsOf)
			}
		} else {
			if l.Level != 0 || !l.LevelAsOf.IsZero() || l.LevelSeq != 0 {
				t.Fatalf("location %q without level has level fields set: %+v", l.ID, l)
			}
			if len(l.Adjustment) == 0 {
				t.Fatalf("location %q has neither a level nor adjustments", l.ID)
			}
		}
		if l.Adjustment != nil && len(l.Adjustment) == 0 {
			t.Fatalf("location %q: empty non-nil Adjustment slice (equal states must be deep-equal)", l.ID)
		}
		raw := l.Level
		for j, a := range l.Adjustment {
			raw += a.Delta
			if j > 0 && strings.Compare(l.Adjustment[j-1].EventID, a.EventID) >= 0 {
				t.Fatalf("location %q: adjustments not strictly sorted: %q then %q", l.ID, l.Adjustment[j-1].EventID, a.EventID)
			}
			if a.OccurredAt.Location() != time.UTC {
				t.Fatalf("location %q: adjustment %q time %v not in UTC", l.ID, a.EventID, a.OccurredAt)
			}
			if l.HasLevel && !a.OccurredAt.After(l.LevelAsOf) {
				t.Fatalf("location %q: adjustment %q at %v is covered by level at %v but kept", l.ID, a.EventID, a.OccurredAt, l.LevelAsOf)
			}
		}
		// raw is not checked against ±MaxUnits: a level can push it beyond;
		// reading clamps it (see TestFixedBugLevelBypassesUnitLimit).
		if got, want := l.OnHand(), min(inventory.MaxUnits, max(0, raw)); got != want {
			t.Fatalf("location %q: OnHand() = %d, want min(MaxUnits, max(0, %d))", l.ID, got, raw)
		}
	}
}

// checkSnapshot asserts the invariants of a Snapshot derived from s.
func checkSnapshot(t tb, s inventory.State, snap inventory.Snapshot) {
	t.Helper()
	if snap.SKU != s.SKU {
		t.Fatalf("snapshot SKU %q, state SKU %q", snap.SKU, s.SKU)
	}
	if len(snap.Locations) != len(s.Locations) {
		t.Fatalf("snapshot has %d locations, state %d", len(snap.Locations), len(s.Locations))
	}
	var sum int64
	for i, l := range snap.Locations {
		if l.OnHand < 0 {
			t.Fatalf("location %q on-hand %d is negative", l.ID, l.OnHand)
		}
		if l.ID != s.Locations[i].ID || l.OnHand != s.Locations[i].OnHand() {
			t.Fatalf("snapshot location %d = %+v, state location %+v", i, l, s.Locations[i])
		}
		sum += l.OnHand
	}
	if snap.OnHand != sum {
		t.Fatalf("snapshot on-hand %d, sum of locations %d", snap.OnHand, sum)
	}
	if snap.OnHand < 0 || snap.Available < 0 {
		t.Fatalf("negative totals: on-hand %d, available %d", snap.OnHand, snap.Available)
	}
	if snap.Available > snap.OnHand {
		t.Fatalf("available %d exceeds on-hand %d", snap.Available, snap.OnHand)
	}
	if len(snap.Version) != 16 {
		t.Fatalf("version %q is not 16 hex digits", snap.Version)
	}
}

// withoutVersion blanks the Version so snapshots can be compared on content.
func withoutVersion(s inventory.Snapshot) inventory.Snapshot {
	s.Version = ""
	return s
}

func assertStateEqual(t tb, got, want inventory.State, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// unknownEvent satisfies inventory.Event through an embedded StockLevel but is
// not one of the package's event types.
type unknownEvent struct{ inventory.StockLevel }

func TestHelpersDetectMutation(t *testing.T) {
	// cloneState must copy deeply, or the no-mutation tests prove nothing.
	s := applyAll(t, inventory.State{}, adj("a", "WH-1", 1, at(1)))
	c := cloneState(s)
	c.Locations[0].Adjustment[0].Delta = 99
	if s.Locations[0].Adjustment[0].Delta != 1 {
		t.Fatal("cloneState shares the Adjustment backing array")
	}
	c.Locations[0].ID = "X"
	if s.Locations[0].ID != "WH-1" {
		t.Fatal("cloneState shares the Locations backing array")
	}
}
