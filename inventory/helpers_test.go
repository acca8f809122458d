package inventory_test

import (
	"reflect"
	"regexp"
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

// lvlIn and adjIn are lvl and adj for one area of a location.
func lvlIn(loc, area string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	e := lvl(loc, onHand, asOf, seq)
	e.Area = area
	return e
}

func adjIn(id, loc, area string, delta int64, occurredAt time.Time) inventory.StockAdjustment {
	e := adj(id, loc, delta, occurredAt)
	e.Area = area
	return e
}

// SKU-level policy events.

func sellable(channel string, ok bool, asOf time.Time) inventory.ChannelEligibility {
	return inventory.ChannelEligibility{SKU: sku, Channel: channel, Sellable: ok, AsOf: asOf}
}

func salesCap(channel string, limit int64, start, end, asOf time.Time) inventory.SalesCap {
	return inventory.SalesCap{SKU: sku, Channel: channel, Limit: limit, WindowStart: start, WindowEnd: end, AsOf: asOf}
}

func capCleared(channel string, asOf time.Time) inventory.SalesCap {
	return inventory.SalesCap{SKU: sku, Channel: channel, Cleared: true, AsOf: asOf}
}

func backorder(limit int64, asOf time.Time) inventory.BackorderLimit {
	return inventory.BackorderLimit{SKU: sku, Limit: limit, AsOf: asOf}
}

func safety(loc string, units int64, asOf time.Time) inventory.SafetyStockOverride {
	return inventory.SafetyStockOverride{SKU: sku, Location: loc, Units: units, AsOf: asOf}
}

func safetyCleared(loc string, asOf time.Time) inventory.SafetyStockOverride {
	return inventory.SafetyStockOverride{SKU: sku, Location: loc, Cleared: true, AsOf: asOf}
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

// cloneState deep-copies a State, independently of State.Clone, so a later
// comparison detects any write through shared slices.
func cloneState(s inventory.State) inventory.State {
	out := s
	if s.Locations != nil {
		out.Locations = make([]inventory.Location, len(s.Locations))
		for i, l := range s.Locations {
			if l.Adjustment != nil {
				l.Adjustment = append(make([]inventory.Adjustment, 0, len(l.Adjustment)), l.Adjustment...)
			}
			out.Locations[i] = l
		}
	}
	if s.ChannelRules != nil {
		out.ChannelRules = append(make([]inventory.ChannelRule, 0, len(s.ChannelRules)), s.ChannelRules...)
	}
	if s.SalesCaps != nil {
		out.SalesCaps = append(make([]inventory.SalesCapRule, 0, len(s.SalesCaps)), s.SalesCaps...)
	}
	if s.SafetyOverrides != nil {
		out.SafetyOverrides = append(make([]inventory.SafetyOverrideRule, 0, len(s.SafetyOverrides)), s.SafetyOverrides...)
	}
	return out
}

// location returns the whole-location area (Area "") of id.
func location(s inventory.State, id string) (inventory.Location, bool) {
	return locationArea(s, id, inventory.AreaWhole)
}

func locationArea(s inventory.State, id, area string) (inventory.Location, bool) {
	for _, l := range s.Locations {
		if l.ID == id && l.Area == area {
			return l, true
		}
	}
	return inventory.Location{}, false
}

// webOnly answers for the web channel with no location or merchant policies:
// every location is an owned warehouse serving web, so web's availability is
// the SKU's total on-hand (as the old Availability computed it).
var webOnly = inventory.Policies{Channels: []string{"web"}}

// evaluate runs Evaluate and checks the snapshot's invariants.
func evaluate(t tb, s inventory.State, p inventory.Policies, now time.Time) inventory.Snapshot {
	t.Helper()
	snap := inventory.Evaluate(s, p, now)
	checkSnapshot(t, s, p, now, snap)
	return snap
}

// evalWeb evaluates s for webOnly at t0.
func evalWeb(t tb, s inventory.State) inventory.Snapshot {
	t.Helper()
	return evaluate(t, s, webOnly, t0)
}

// channelOf returns the snapshot's answer for one channel.
func channelOf(t tb, snap inventory.Snapshot, channel string) inventory.ChannelSnapshot {
	t.Helper()
	for _, c := range snap.Channels {
		if c.Channel == channel {
			return c
		}
	}
	t.Fatalf("snapshot has no channel %q: %+v", channel, snap.Channels)
	return inventory.ChannelSnapshot{}
}

func webAvailable(t tb, snap inventory.Snapshot) int64 {
	t.Helper()
	return channelOf(t, snap, "web").Available
}

func compareLocation(a, b inventory.Location) int {
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return strings.Compare(a.Area, b.Area)
}

// checkState asserts the structural invariants every State returned by Apply
// must satisfy.
func checkState(t tb, s inventory.State) {
	t.Helper()
	for i, l := range s.Locations {
		if err := inventory.ValidateID("location", l.ID); err != nil {
			t.Fatalf("location %d: %v", i, err)
		}
		switch l.Area {
		case inventory.AreaWhole, inventory.AreaFloor, inventory.AreaBackroom:
		default:
			t.Fatalf("location %q has area %q", l.ID, l.Area)
		}
		if i > 0 && compareLocation(s.Locations[i-1], l) >= 0 {
			t.Fatalf("locations not strictly sorted by (id, area): %q/%q then %q/%q",
				s.Locations[i-1].ID, s.Locations[i-1].Area, l.ID, l.Area)
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
	utc := func(what string, tm time.Time) {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Fatalf("%s %v not in UTC", what, tm)
		}
	}
	checkRules(t, "channel rules", s.ChannelRules, func(r inventory.ChannelRule) string { return r.Channel })
	for _, r := range s.ChannelRules {
		utc("channel rule as_of", r.AsOf)
	}
	checkRules(t, "sales caps", s.SalesCaps, func(r inventory.SalesCapRule) string { return r.Channel })
	for _, r := range s.SalesCaps {
		utc("sales cap as_of", r.AsOf)
		utc("sales cap window_start", r.WindowStart)
		utc("sales cap window_end", r.WindowEnd)
		if r.Cleared && (r.Limit != 0 || !r.WindowStart.IsZero() || !r.WindowEnd.IsZero()) {
			t.Fatalf("cleared sales cap keeps its fields: %+v", r)
		}
		if !r.Cleared && (r.Limit < 0 || !r.WindowEnd.After(r.WindowStart)) {
			t.Fatalf("sales cap with a bad limit or window: %+v", r)
		}
	}
	checkRules(t, "safety overrides", s.SafetyOverrides, func(r inventory.SafetyOverrideRule) string { return r.Location })
	for _, r := range s.SafetyOverrides {
		utc("safety override as_of", r.AsOf)
		if r.Units < 0 || r.Cleared && r.Units != 0 {
			t.Fatalf("safety override with bad units: %+v", r)
		}
	}
	utc("backorder as_of", s.Backorder.AsOf)
	if s.Backorder.Limit < 0 || s.Backorder.AsOf.IsZero() && s.Backorder.Limit != 0 {
		t.Fatalf("backorder rule %+v", s.Backorder)
	}
}

// checkRules asserts a policy list is nil when empty and strictly sorted by
// a valid subject.
func checkRules[R any](t tb, what string, rules []R, subject func(R) string) {
	t.Helper()
	if rules != nil && len(rules) == 0 {
		t.Fatalf("%s: empty non-nil slice (equal states must be deep-equal)", what)
	}
	for i, r := range rules {
		if err := inventory.ValidateID("subject", subject(r)); err != nil {
			t.Fatalf("%s %d: %v", what, i, err)
		}
		if i > 0 && subject(rules[i-1]) >= subject(r) {
			t.Fatalf("%s not strictly sorted: %q then %q", what, subject(rules[i-1]), subject(r))
		}
	}
}

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkSnapshot asserts the invariants of a Snapshot Evaluate derived from
// (s, p, now), without a reference model.
func checkSnapshot(t tb, s inventory.State, p inventory.Policies, now time.Time, snap inventory.Snapshot) {
	t.Helper()
	if snap.SKU != s.SKU {
		t.Fatalf("snapshot SKU %q, state SKU %q", snap.SKU, s.SKU)
	}
	if !snap.EvaluatedAt.Equal(now) || snap.EvaluatedAt.Location() != time.UTC {
		t.Fatalf("EvaluatedAt %v, want %v in UTC", snap.EvaluatedAt, now)
	}
	ids := s.LocationIDs()
	if len(snap.Locations) != len(ids) {
		t.Fatalf("snapshot has %d locations, state has %d location ids", len(snap.Locations), len(ids))
	}
	var sum int64
	for i, l := range snap.Locations {
		if l.ID != ids[i] {
			t.Fatalf("snapshot location %d is %q, want %q", i, l.ID, ids[i])
		}
		var areas []inventory.AreaStock
		var areaSum int64
		for _, a := range s.Locations {
			if a.ID == l.ID {
				areas = append(areas, inventory.AreaStock{Area: a.Area, OnHand: a.OnHand()})
				areaSum += a.OnHand()
			}
		}
		if !reflect.DeepEqual(l.Areas, areas) {
			t.Fatalf("location %q areas %+v, want %+v", l.ID, l.Areas, areas)
		}
		if l.OnHand < 0 || l.OnHand != min(areaSum, inventory.MaxUnits) {
			t.Fatalf("location %q on-hand %d, sum of its areas %d", l.ID, l.OnHand, areaSum)
		}
		if l.SafetyStock < 0 || l.Usable < 0 || l.Usable != max(0, l.OnHand-l.SafetyStock) {
			t.Fatalf("location %q: usable %d from on-hand %d and safety stock %d", l.ID, l.Usable, l.OnHand, l.SafetyStock)
		}
		if l.Kind != inventory.KindMerchant && (l.Stale || !l.StaleAt.IsZero()) {
			t.Fatalf("location %q of kind %v is stale=%v at %v", l.ID, l.Kind, l.Stale, l.StaleAt)
		}
		if l.Kind == inventory.KindMerchant {
			want := !l.HasLevel || !now.Before(l.StaleAt)
			if l.Stale != want || l.HasLevel == l.StaleAt.IsZero() {
				t.Fatalf("merchant location %q: stale=%v StaleAt=%v HasLevel=%v at %v", l.ID, l.Stale, l.StaleAt, l.HasLevel, now)
			}
		}
		sum += l.OnHand
	}
	if snap.ShipTo != p.ShipTo {
		t.Fatalf("snapshot ShipTo %q, policies' %q", snap.ShipTo, p.ShipTo)
	}
	for _, l := range snap.Locations {
		if pol, ok := p.Locations[l.ID]; l.RegionExcluded != (ok && excludesRef(pol.ExcludedRegions, p.ShipTo)) {
			t.Fatalf("location %q RegionExcluded %v for ship-to %q and excluded regions %v", l.ID, l.RegionExcluded, p.ShipTo, pol.ExcludedRegions)
		}
	}
	if snap.OnHand != sum || snap.OnHand < 0 {
		t.Fatalf("snapshot on-hand %d, sum of locations %d", snap.OnHand, sum)
	}
	want := slices.Compact(slices.Sorted(slices.Values(p.Channels)))
	var got []string
	for _, c := range snap.Channels {
		got = append(got, c.Channel)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("snapshot channels %v, want %v", got, want)
	}
	for _, c := range snap.Channels {
		if c.Available < 0 || c.Backorderable < 0 || c.Usable < 0 || c.Reserved < 0 || c.CapRemaining < 0 {
			t.Fatalf("channel %s has a negative or unexpected count: %+v", c.Channel, c)
		}
		var usable int64
		for _, l := range snap.Locations {
			if !l.Closed && !l.Stale && !l.RegionExcluded && (len(l.Channels) == 0 || slices.Contains(l.Channels, c.Channel)) {
				usable = min(usable+l.Usable, inventory.MaxUnits)
			}
		}
		if c.Usable != usable {
			t.Fatalf("channel %s usable %d, eligible locations sum to %d", c.Channel, c.Usable, usable)
		}
		limit := int64(inventory.MaxUnits)
		if c.HasCap {
			limit = c.CapRemaining
		} else if c.CapRemaining != 0 {
			t.Fatalf("channel %s has no cap but CapRemaining %d", c.Channel, c.CapRemaining)
		}
		if c.Available > c.Usable || c.Available > limit || c.Available+c.Backorderable > limit || c.Available > snap.OnHand {
			t.Fatalf("channel %s over-promises: %+v (limit %d, on-hand %d)", c.Channel, c, limit, snap.OnHand)
		}
		if !c.Sellable && (c.Available != 0 || c.Backorderable != 0) {
			t.Fatalf("channel %s is not sellable but promises %+v", c.Channel, c)
		}
		if c.Sellable && c.Available != max(0, min(c.Usable-c.Reserved, limit)) {
			t.Fatalf("channel %s available %d, want max(0, min(usable %d - reserved %d, limit %d))", c.Channel, c.Available, c.Usable, c.Reserved, limit)
		}
		for _, r := range c.Reasons {
			if r.Message == "" || r.Code < inventory.ReasonNotSellable || r.Code > inventory.ReasonLocationExcludedRegion ||
				r.Code == inventory.ReasonLocationExcludedRegion && p.ShipTo == "" {
				t.Fatalf("channel %s has a bad reason %+v", c.Channel, r)
			}
		}
	}
	if !snap.NextChangeAt.IsZero() && !snap.NextChangeAt.After(now) {
		t.Fatalf("NextChangeAt %v is not after now %v", snap.NextChangeAt, now)
	}
	if !hex16.MatchString(snap.Version) {
		t.Fatalf("version %q is not 16 lowercase hex digits", snap.Version)
	}
	if again := inventory.Evaluate(s, p, now); !reflect.DeepEqual(again, snap) {
		t.Fatalf("Evaluate is not deterministic:\n%+v\n%+v", snap, again)
	}
}

// withoutVersion blanks what is not content (Version and EvaluatedAt) so
// snapshots can be compared on content.
func withoutVersion(s inventory.Snapshot) inventory.Snapshot {
	s.Version = ""
	s.EvaluatedAt = time.Time{}
	return s
}

// canonical is withoutVersion with empty top-level lists made nil, for
// comparing with expectations written by hand or by the model (whether
// Evaluate returns nil or empty lists is not part of the contract).
func canonical(s inventory.Snapshot) inventory.Snapshot {
	s = withoutVersion(s)
	if len(s.Locations) == 0 {
		s.Locations = nil
	}
	if len(s.Channels) == 0 {
		s.Channels = nil
	}
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
	s := applyAll(t, inventory.State{}, adj("a", "WH-1", 1, at(1)),
		sellable("web", true, at(1)), salesCap("web", 1, at(1), at(2), at(1)), safety("WH-1", 1, at(1)))
	c := cloneState(s)
	c.Locations[0].Adjustment[0].Delta = 99
	if s.Locations[0].Adjustment[0].Delta != 1 {
		t.Fatal("cloneState shares the Adjustment backing array")
	}
	c.Locations[0].ID = "X"
	c.ChannelRules[0].Sellable = false
	c.SalesCaps[0].Limit = 7
	c.SafetyOverrides[0].Units = 7
	if s.Locations[0].ID != "WH-1" || !s.ChannelRules[0].Sellable || s.SalesCaps[0].Limit != 1 || s.SafetyOverrides[0].Units != 1 {
		t.Fatal("cloneState shares a backing array")
	}
	if !reflect.DeepEqual(cloneState(s), s) {
		t.Fatal("cloneState does not copy faithfully")
	}
}
