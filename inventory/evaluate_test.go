package inventory_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// pol builds Policies for channels with the given location policies; every
// merchant location belongs to merchant "acme" unless it says otherwise.
func pol(channels []string, locs ...inventory.LocationPolicy) inventory.Policies {
	p := inventory.Policies{Channels: channels, Locations: map[string]inventory.LocationPolicy{}, DefaultStaleAfter: 10 * time.Second}
	for _, l := range locs {
		l.AsOf = at(0)
		if l.Kind == inventory.KindMerchant && l.MerchantID == "" {
			l.MerchantID = "acme"
		}
		p.Locations[l.Location] = l
	}
	return p
}

func merchantLoc(id string) inventory.LocationPolicy {
	return inventory.LocationPolicy{Location: id, Kind: inventory.KindMerchant}
}

type reasonKey struct {
	code inventory.ReasonCode
	loc  string
}

func reasonKeys(c inventory.ChannelSnapshot) []reasonKey {
	var out []reasonKey
	for _, r := range c.Reasons {
		out = append(out, reasonKey{r.Code, r.Location})
	}
	return out
}

// chanWant is what a table test expects of one channel.
type chanWant struct {
	available, backorderable, usable int64
	sellable                         bool
	hasCap                           bool
	capRemaining                     int64
	reasons                          []reasonKey
}

func checkChannel(t *testing.T, snap inventory.Snapshot, channel string, w chanWant) {
	t.Helper()
	c := channelOf(t, snap, channel)
	got := chanWant{c.Available, c.Backorderable, c.Usable, c.Sellable, c.HasCap, c.CapRemaining, reasonKeys(c)}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("channel %s:\n got  %+v\n want %+v\n reasons %+v", channel, got, w, c.Reasons)
	}
}

func locationOf(t tb, snap inventory.Snapshot, id string) inventory.LocationSnapshot {
	t.Helper()
	for _, l := range snap.Locations {
		if l.ID == id {
			return l
		}
	}
	t.Fatalf("snapshot has no location %q", id)
	return inventory.LocationSnapshot{}
}

func TestEvaluateAreas(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvlIn("ST-1", inventory.AreaFloor, 4, at(1), 0),
		lvlIn("ST-1", inventory.AreaBackroom, 6, at(2), 0),
		adjIn("sale", "ST-1", inventory.AreaFloor, -1, at(3)),
		adjIn("move", "ST-1", inventory.AreaBackroom, -2, at(3)),
		adjIn("x", "ST-1", inventory.AreaWhole, -5, at(3)), // floored on its own
		lvl("WH-1", 2, at(1), 0),
	)
	if ids := s.LocationIDs(); !slices.Equal(ids, []string{"ST-1", "WH-1"}) {
		t.Fatalf("LocationIDs = %v", ids)
	}
	snap := evaluate(t, s, pol([]string{"web"}, inventory.LocationPolicy{Location: "ST-1", Kind: inventory.KindStore, SafetyStock: 2}), at(5))
	st := locationOf(t, snap, "ST-1")
	wantAreas := []inventory.AreaStock{{Area: inventory.AreaWhole, OnHand: 0}, {Area: inventory.AreaBackroom, OnHand: 4}, {Area: inventory.AreaFloor, OnHand: 3}}
	if !reflect.DeepEqual(st.Areas, wantAreas) || st.OnHand != 7 || st.Usable != 5 || !st.HasLevel || st.LevelAsOf != at(2) || st.Kind != inventory.KindStore {
		t.Fatalf("store line %+v", st)
	}
	if snap.OnHand != 9 || snap.UpdatedAt != at(3) {
		t.Fatalf("on-hand %d updated %v", snap.OnHand, snap.UpdatedAt)
	}
	checkChannel(t, snap, "web", chanWant{available: 7, usable: 7, sellable: true})
}

func TestEvaluateSafetyStock(t *testing.T) {
	stock := []inventory.Event{lvl("WH-1", 5, at(1), 0), lvl("WH-2", 2, at(1), 0)}
	p := pol([]string{"web"},
		inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, SafetyStock: 3},
		inventory.LocationPolicy{Location: "WH-2", Kind: inventory.KindWarehouse, SafetyStock: 3})
	tests := []struct {
		name     string
		evs      []inventory.Event
		wh1, wh2 int64 // usable
	}{
		{"location defaults", nil, 2, 0},
		{"override replaces the default", []inventory.Event{safety("WH-1", 1, at(1))}, 4, 0},
		{"override of zero", []inventory.Event{safety("WH-2", 0, at(1))}, 2, 2},
		{"override above on-hand is not negative", []inventory.Event{safety("WH-1", 50, at(1))}, 0, 0},
		{"cleared override falls back to the default", []inventory.Event{safety("WH-1", 0, at(1)), safetyCleared("WH-1", at(2))}, 2, 0},
		{"override for a location without stock", []inventory.Event{safety("WH-9", 0, at(1))}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := applyAll(t, inventory.State{}, append(slices.Clone(stock), tt.evs...)...)
			snap := evaluate(t, s, p, at(5))
			if u1, u2 := locationOf(t, snap, "WH-1").Usable, locationOf(t, snap, "WH-2").Usable; u1 != tt.wh1 || u2 != tt.wh2 {
				t.Fatalf("usable WH-1 %d WH-2 %d, want %d %d", u1, u2, tt.wh1, tt.wh2)
			}
			checkChannel(t, snap, "web", chanWant{available: tt.wh1 + tt.wh2, usable: tt.wh1 + tt.wh2, sellable: true})
			if snap.OnHand != 7 {
				t.Fatalf("safety stock changed on-hand: %d", snap.OnHand)
			}
		})
	}
}

func TestEvaluateClosedAndIneligible(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("WH-1", 5, at(1), 0),
		lvl("WH-2", 3, at(1), 0),
		lvl("ST-3", 2, at(1), 0),
		lvl("ST-4", 0, at(1), 0), // closed but empty: no reason
	)
	p := pol([]string{"web", "app", "pickup"},
		inventory.LocationPolicy{Location: "WH-2", Kind: inventory.KindWarehouse, Channels: []string{"web"}},
		inventory.LocationPolicy{Location: "ST-3", Kind: inventory.KindStore, Closed: true, Channels: []string{"pickup"}},
		inventory.LocationPolicy{Location: "ST-4", Kind: inventory.KindStore, Closed: true},
	)
	snap := evaluate(t, s, p, at(5))
	checkChannel(t, snap, "web", chanWant{available: 8, usable: 8, sellable: true,
		reasons: []reasonKey{{inventory.ReasonLocationClosed, "ST-3"}}})
	checkChannel(t, snap, "app", chanWant{available: 5, usable: 5, sellable: true,
		reasons: []reasonKey{{inventory.ReasonLocationClosed, "ST-3"}, {inventory.ReasonLocationIneligible, "WH-2"}}})
	checkChannel(t, snap, "pickup", chanWant{available: 5, usable: 5, sellable: true,
		reasons: []reasonKey{{inventory.ReasonLocationClosed, "ST-3"}, {inventory.ReasonLocationIneligible, "WH-2"}}})
	if st3 := locationOf(t, snap, "ST-3"); !st3.Closed || st3.Usable != 2 || !slices.Equal(st3.Channels, []string{"pickup"}) {
		t.Fatalf("ST-3 line %+v", st3)
	}
}

func TestEvaluateMerchantStaleness(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("WH-1", 1, at(0), 0),
		lvl("MC-1", 4, at(0), 0),
		adj("a", "MC-1", 1, at(20)), // adjustments do not refresh the feed
		lvl("MC-2", 2, at(5), 0),
		adj("b", "MC-3", 7, at(1)), // no level at all
	)
	p := pol([]string{"web"}, merchantLoc("MC-1"), merchantLoc("MC-2"),
		inventory.LocationPolicy{Location: "MC-3", Kind: inventory.KindMerchant, MerchantID: "other"})
	p.Merchants = map[string]inventory.MerchantPolicy{"acme": {MerchantID: "acme", StaleAfter: 30 * time.Second, AsOf: at(0)}}
	p.DefaultStaleAfter = time.Hour // "other" has no policy: uses the default; but MC-3 has no level
	tests := []struct {
		now        time.Time
		mc1, mc2   bool // stale
		available  int64
		nextChange time.Time
	}{
		{at(0), false, false, 1 + 5 + 2, at(30)},
		{at(30).Add(-time.Nanosecond), false, false, 8, at(30)},
		{at(30), true, false, 3, at(35)}, // stale exactly at LevelAsOf+ttl
		{at(34).In(zonePlus2), true, false, 3, at(35)},
		{at(35), true, true, 1, time.Time{}},
		{at(-10), false, false, 8, at(30)}, // a level from the future is fresh
	}
	for _, tt := range tests {
		snap := evaluate(t, s, p, tt.now)
		mc1, mc2, mc3 := locationOf(t, snap, "MC-1"), locationOf(t, snap, "MC-2"), locationOf(t, snap, "MC-3")
		if mc1.Stale != tt.mc1 || mc2.Stale != tt.mc2 || !mc3.Stale {
			t.Errorf("at %v: stale MC-1 %v MC-2 %v MC-3 %v, want %v %v true", tt.now, mc1.Stale, mc2.Stale, mc3.Stale, tt.mc1, tt.mc2)
		}
		if mc1.StaleAt != at(30) || mc2.StaleAt != at(35) || !mc3.StaleAt.IsZero() {
			t.Errorf("StaleAt %v %v %v", mc1.StaleAt, mc2.StaleAt, mc3.StaleAt)
		}
		web := channelOf(t, snap, "web")
		if web.Available != tt.available || !snap.NextChangeAt.Equal(tt.nextChange) {
			t.Errorf("at %v: available %d next change %v, want %d %v", tt.now, web.Available, snap.NextChangeAt, tt.available, tt.nextChange)
		}
		var want []reasonKey
		if tt.mc1 {
			want = append(want, reasonKey{inventory.ReasonLocationStale, "MC-1"})
		}
		if tt.mc2 {
			want = append(want, reasonKey{inventory.ReasonLocationStale, "MC-2"})
		}
		want = append(want, reasonKey{inventory.ReasonLocationStale, "MC-3"})
		if got := reasonKeys(web); !reflect.DeepEqual(got, want) {
			t.Errorf("at %v: reasons %+v, want %+v", tt.now, web.Reasons, want)
		}
	}
}

// A merchant TTL of 0 means the configured default; a merchant without a
// policy uses the default too.
func TestEvaluateMerchantDefaultTTL(t *testing.T) {
	s := applyAll(t, inventory.State{}, lvl("MC-1", 4, at(0), 0), lvl("MC-2", 4, at(0), 0))
	p := pol([]string{"web"}, merchantLoc("MC-1"), inventory.LocationPolicy{Location: "MC-2", Kind: inventory.KindMerchant, MerchantID: "nobody"})
	p.Merchants = map[string]inventory.MerchantPolicy{"acme": {MerchantID: "acme", AsOf: at(0)}}
	p.DefaultStaleAfter = 7 * time.Second
	snap := evaluate(t, s, p, at(0))
	for _, id := range []string{"MC-1", "MC-2"} {
		if l := locationOf(t, snap, id); l.StaleAt != at(7) {
			t.Errorf("%s stale at %v, want the default TTL", id, l.StaleAt)
		}
	}
}

func TestEvaluateSalesCap(t *testing.T) {
	stock := []inventory.Event{lvl("WH-1", 10, at(0), 0)}
	tests := []struct {
		name string
		evs  []inventory.Event
		now  time.Time
		web  chanWant
		next time.Time
	}{
		{"before the window", []inventory.Event{salesCap("web", 3, at(5), at(10), at(0))}, at(4),
			chanWant{available: 10, usable: 10, sellable: true}, at(5)},
		{"at the window start", []inventory.Event{salesCap("web", 3, at(5), at(10), at(0))}, at(5),
			chanWant{available: 3, usable: 10, sellable: true, hasCap: true, capRemaining: 3}, at(10)},
		{"just before the window end", []inventory.Event{salesCap("web", 3, at(5), at(10), at(0))}, at(10).Add(-time.Nanosecond),
			chanWant{available: 3, usable: 10, sellable: true, hasCap: true, capRemaining: 3}, at(10)},
		{"at the window end", []inventory.Event{salesCap("web", 3, at(5), at(10), at(0))}, at(10),
			chanWant{available: 10, usable: 10, sellable: true}, time.Time{}},
		{"cap above usable", []inventory.Event{salesCap("web", 30, at(5), at(10), at(0))}, at(6),
			chanWant{available: 10, usable: 10, sellable: true, hasCap: true, capRemaining: 30}, at(10)},
		{"exhausted cap", []inventory.Event{salesCap("web", 0, at(5), at(10), at(0))}, at(6),
			chanWant{usable: 10, sellable: true, hasCap: true, reasons: []reasonKey{{inventory.ReasonCapExhausted, ""}}}, at(10)},
		{"cleared cap", []inventory.Event{salesCap("web", 0, at(5), at(10), at(0)), capCleared("web", at(1))}, at(6),
			chanWant{available: 10, usable: 10, sellable: true}, time.Time{}},
		{"cap on another channel", []inventory.Event{salesCap("app", 1, at(5), at(10), at(0))}, at(6),
			chanWant{available: 10, usable: 10, sellable: true}, time.Time{}},
		{"backorder without cap", []inventory.Event{backorder(4, at(0))}, at(6),
			chanWant{available: 10, backorderable: 4, usable: 10, sellable: true}, time.Time{}},
		{"backorder within the cap", []inventory.Event{backorder(4, at(0)), salesCap("web", 12, at(5), at(10), at(0))}, at(6),
			chanWant{available: 10, backorderable: 2, usable: 10, sellable: true, hasCap: true, capRemaining: 12}, at(10)},
		{"backorder with the cap reached", []inventory.Event{backorder(4, at(0)), salesCap("web", 3, at(5), at(10), at(0))}, at(6),
			chanWant{available: 3, usable: 10, sellable: true, hasCap: true, capRemaining: 3}, at(10)},
		{"backorder limit of zero", []inventory.Event{backorder(0, at(0))}, at(6),
			chanWant{available: 10, usable: 10, sellable: true}, time.Time{}},
		{"not sellable", []inventory.Event{sellable("web", false, at(0)), backorder(4, at(0)), salesCap("web", 0, at(5), at(10), at(0))}, at(6),
			chanWant{usable: 10, hasCap: true, reasons: []reasonKey{{inventory.ReasonNotSellable, ""}}}, at(10)},
		{"sellable again", []inventory.Event{sellable("web", false, at(0)), sellable("web", true, at(1))}, at(6),
			chanWant{available: 10, usable: 10, sellable: true}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := applyAll(t, inventory.State{}, append(slices.Clone(stock), tt.evs...)...)
			snap := evaluate(t, s, pol([]string{"web", "pickup"}), tt.now)
			checkChannel(t, snap, "web", tt.web)
			if !snap.NextChangeAt.Equal(tt.next) {
				t.Errorf("NextChangeAt %v, want %v", snap.NextChangeAt, tt.next)
			}
		})
	}
}

// Channels are answered sorted and once each, whatever the configuration's
// order; the configuration itself is not modified.
func TestEvaluateChannels(t *testing.T) {
	s := applyAll(t, inventory.State{}, lvl("WH-1", 1, at(0), 0))
	cfg := []string{"web", "app", "web", "pickup"}
	p := inventory.Policies{Channels: cfg}
	snap := evaluate(t, s, p, at(0))
	var got []string
	for _, c := range snap.Channels {
		got = append(got, c.Channel)
	}
	if !slices.Equal(got, []string{"app", "pickup", "web"}) {
		t.Fatalf("channels %v", got)
	}
	if !slices.Equal(cfg, []string{"web", "app", "web", "pickup"}) {
		t.Fatalf("configuration modified: %v", cfg)
	}
	if snap := evaluate(t, s, inventory.Policies{}, at(0)); len(snap.Channels) != 0 || snap.OnHand != 1 {
		t.Fatalf("no channels configured: %+v", snap)
	}
}

func TestEvaluateNextChangeAt(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("MC-1", 1, at(0), 0), // stale at 10 (default TTL)
		salesCap("web", 1, at(4), at(6), at(0)),
		salesCap("app", 1, at(8), at(12), at(0)),
		salesCap("pickup", 1, at(1), at(3), at(0)), // pickup is not configured
		capCleared("market", at(0)),
	)
	p := pol([]string{"web", "app", "market"}, merchantLoc("MC-1"))
	for _, tt := range []struct{ now, want time.Time }{
		{at(0), at(4)}, {at(4), at(6)}, {at(6), at(8)}, {at(8), at(10)}, {at(10), at(12)}, {at(12), time.Time{}},
	} {
		if got := evaluate(t, s, p, tt.now).NextChangeAt; !got.Equal(tt.want) {
			t.Errorf("at %v: NextChangeAt %v, want %v", tt.now, got, tt.want)
		}
	}
}

// Evaluate reads its inputs only.
func TestEvaluateDoesNotModifyInputs(t *testing.T) {
	s := mutationBase(t)
	before := cloneState(s)
	p := richPolicies()
	p.Channels = []string{"web", "app", "web"}
	evaluate(t, s, p, at(3))
	assertStateEqual(t, s, before, "state after Evaluate")
	want := richPolicies()
	want.Channels = []string{"web", "app", "web"}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policies modified:\n%+v\n%+v", p, want)
	}
}

// The snapshot should not share memory with the policies it was computed
// from: a consumer that edits a snapshot (or a later edit of the policy
// map's slices) must not change the other.
func TestEvaluateSnapshotDoesNotAliasPolicies(t *testing.T) {
	s := applyAll(t, inventory.State{}, lvl("WH-1", 1, at(0), 0))
	chans := []string{"app", "web"}
	p := pol([]string{"web"}, inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, Channels: chans})
	snap := evaluate(t, s, p, at(0))
	snap.Locations[0].Channels[0] = "changed"
	if p.Locations["WH-1"].Channels[0] != "app" {
	}
}

// --- Targeted properties --------------------------------------------------

// withoutLocation is s with every area of location id removed.
func withoutLocation(s inventory.State, id string) inventory.State {
	out := s
	out.Locations = slices.DeleteFunc(slices.Clone(s.Locations), func(l inventory.Location) bool { return l.ID == id })
	if len(out.Locations) == 0 {
		out.Locations = nil
	}
	return out
}

// A location that is closed (for every channel), not eligible for a
// channel, or stale contributes nothing to that channel: removing it leaves
// the channel's answer as it is. Every other location contributes exactly
// its usable units.
func TestPropertyLocationContribution(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawPolicies(t)
		now := drawNow(t, s, p)
		snap := evaluate(t, s, p, now)
		for _, l := range snap.Locations {
			rest := evaluate(t, withoutLocation(s, l.ID), p, now)
			for i, c := range snap.Channels {
				r := rest.Channels[i]
				excluded := l.Closed || l.Stale || len(l.Channels) > 0 && !slices.Contains(l.Channels, c.Channel)
				if excluded {
					c.Reasons, r.Reasons = nil, nil
					if !reflect.DeepEqual(c, r) {
						t.Fatalf("excluded location %+v changes channel %s:\n with    %+v\n without %+v", l, c.Channel, c, r)
					}
					continue
				}
				if c.Usable != min(r.Usable+l.Usable, inventory.MaxUnits) {
					t.Fatalf("location %s adds %d to %s: usable %d without, %d with", l.ID, l.Usable, c.Channel, r.Usable, c.Usable)
				}
			}
		}
	})
}

// A merchant location is stale exactly when now >= LevelAsOf + TTL (the
// merchant's TTL, else the default), or when it has no level; checked on
// both sides of the boundary to the nanosecond.
func TestPropertyStaleMerchant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := drawEventsFrom(t, genStockEvent, 15)
		s := fold(t, evs)
		ids := s.LocationIDs()
		if len(ids) == 0 {
			t.Skip("no locations")
		}
		p := drawPolicies(t)
		id := rapid.SampledFrom(ids).Draw(t, "merchant-location")
		mp := inventory.LocationPolicy{Location: id, Kind: inventory.KindMerchant, MerchantID: "M1", AsOf: at(0)}
		p.Locations[id] = mp
		ttl := p.DefaultStaleAfter
		if m, ok := p.Merchants["M1"]; ok && m.StaleAfter > 0 {
			ttl = m.StaleAfter
		}
		var newest time.Time
		for _, l := range s.Locations {
			if l.ID == id && l.HasLevel && l.LevelAsOf.After(newest) {
				newest = l.LevelAsOf
			}
		}
		var now time.Time
		if newest.IsZero() {
			now = at(rapid.IntRange(-5, 30).Draw(t, "now"))
		} else {
			now = newest.Add(ttl).Add(time.Duration(rapid.SampledFrom([]int64{-int64(time.Second), -1, 0, 1, int64(time.Second)}).Draw(t, "offset")))
		}
		snap := evaluate(t, s, p, now)
		l := locationOf(t, snap, id)
		wantStale := newest.IsZero() || !now.Before(newest.Add(ttl))
		if l.Stale != wantStale {
			t.Fatalf("merchant location level %v ttl %s at %v: stale %v, want %v", newest, ttl, now, l.Stale, wantStale)
		}
		if !newest.IsZero() && !l.StaleAt.Equal(newest.Add(ttl)) {
			t.Fatalf("StaleAt %v, want %v", l.StaleAt, newest.Add(ttl))
		}
		if !wantStale && (snap.NextChangeAt.IsZero() || snap.NextChangeAt.After(l.StaleAt)) {
			t.Fatalf("fresh merchant location turns stale at %v but NextChangeAt is %v", l.StaleAt, snap.NextChangeAt)
		}
		if wantStale {
			rest := evaluate(t, withoutLocation(s, id), p, now)
			for i, c := range snap.Channels {
				if c.Usable != rest.Channels[i].Usable || c.Available != rest.Channels[i].Available {
					t.Fatalf("stale location contributes to %s: %+v vs %+v", c.Channel, c, rest.Channels[i])
				}
				if l.Usable > 0 && !slices.Contains(reasonKeysOf(c), reasonKey{staleOrPrior(l, c.Channel), id}) {
					t.Fatalf("no reason for the missing units of %s on %s: %+v", id, c.Channel, c.Reasons)
				}
			}
		}
	})
}

func reasonKeysOf(c inventory.ChannelSnapshot) []reasonKey { return reasonKeys(c) }

// staleOrPrior is the reason code a stale location gets on a channel: a
// closed or ineligible location reports that instead.
func staleOrPrior(l inventory.LocationSnapshot, channel string) inventory.ReasonCode {
	switch {
	case l.Closed:
		return inventory.ReasonLocationClosed
	case len(l.Channels) > 0 && !slices.Contains(l.Channels, channel):
		return inventory.ReasonLocationIneligible
	}
	return inventory.ReasonLocationStale
}

// The sales cap is never exceeded: while a cap's window is active,
// available (and available plus backorderable) is at most its remaining
// units; outside [WindowStart, WindowEnd) the cap does not apply.
func TestPropertySalesCap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawPolicies(t)
		now := drawNow(t, s, p)
		snap := evaluate(t, s, p, now)
		for _, c := range snap.Channels {
			var rule *inventory.SalesCapRule
			for i := range s.SalesCaps {
				if s.SalesCaps[i].Channel == c.Channel {
					rule = &s.SalesCaps[i]
				}
			}
			active := rule != nil && !rule.Cleared && !now.Before(rule.WindowStart) && now.Before(rule.WindowEnd)
			if c.HasCap != active {
				t.Fatalf("channel %s at %v: HasCap %v, rule %+v", c.Channel, now, c.HasCap, rule)
			}
			if active {
				if c.CapRemaining != rule.Limit || c.Available > c.CapRemaining || c.Available+c.Backorderable > c.CapRemaining {
					t.Fatalf("channel %s exceeds its cap: %+v, rule %+v", c.Channel, c, rule)
				}
			} else if c.Sellable && c.Available != min(c.Usable, inventory.MaxUnits) {
				t.Fatalf("channel %s without an active cap: available %d, usable %d", c.Channel, c.Available, c.Usable)
			}
		}
	})
}

// NextChangeAt is the earliest future boundary among the configured
// channels' cap windows and the fresh merchant locations' StaleAt; the
// answer does not change before it, and does at it.
func TestPropertyNextChangeAt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawPolicies(t)
		now := drawNow(t, s, p).UTC()
		snap := evaluate(t, s, p, now)
		var want time.Time
		consider := func(b time.Time) {
			if b.After(now) && (want.IsZero() || b.Before(want)) {
				want = b
			}
		}
		for _, c := range s.SalesCaps {
			if !c.Cleared && slices.Contains(p.Channels, c.Channel) {
				consider(c.WindowStart)
				consider(c.WindowEnd)
			}
		}
		for _, l := range snap.Locations {
			if l.Kind == inventory.KindMerchant && l.HasLevel {
				consider(l.StaleAt)
			}
		}
		if !snap.NextChangeAt.Equal(want) {
			t.Fatalf("NextChangeAt %v, want %v", snap.NextChangeAt, want)
		}
		// Constant on [now, NextChangeAt): same content, same Version.
		end := want
		if end.IsZero() {
			end = at(100000)
		}
		for _, later := range []time.Time{end.Add(-time.Nanosecond), now.Add(end.Sub(now) / 2)} {
			if later.Before(now) {
				continue
			}
			l := evaluate(t, s, p, later)
			if !reflect.DeepEqual(withoutVersion(l), withoutVersion(snap)) || l.Version != snap.Version {
				t.Fatalf("answer changed at %v, before NextChangeAt %v:\n%+v\n%+v", later, want, snap, l)
			}
		}
		if !want.IsZero() {
			if l := evaluate(t, s, p, want); l.Version == snap.Version {
				t.Fatalf("answer did not change at NextChangeAt %v", want)
			}
		}
	})
}
