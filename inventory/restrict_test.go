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

// restrictCase is a random answer to restrict: a folded event history with
// held reservations (some on a channel no longer configured, some
// backorders), random policies with excluded regions, a ship-to region now
// and then, at a time near a boundary.
type restrictCase struct {
	state inventory.State
	pol   inventory.Policies
	now   time.Time
	snap  inventory.Snapshot
}

func drawRestrictCase(t *rapid.T) restrictCase {
	s := fold(t, drawEvents(t, 25))
	p := drawRegionPolicies(t)
	if rapid.Bool().Draw(t, "has-ship-to") {
		p.ShipTo = rapid.SampledFrom(shipTos).Draw(t, "ship-to")
	}
	n := rapid.IntRange(0, 4).Draw(t, "reservations")
	for i := range n {
		s.Reservations = append(s.Reservations, inventory.Reservation{
			ID: fmt.Sprintf("R-%d", i), OrderID: fmt.Sprintf("O-%d", i),
			Channel:   rapid.SampledFrom(append(slices.Clone(channelIDs), "gone")).Draw(t, "reservation-channel"),
			Quantity:  rapid.Int64Range(1, 6).Draw(t, "reservation-quantity"),
			Status:    inventory.StatusHeld,
			Backorder: rapid.IntRange(0, 4).Draw(t, "reservation-backorder") == 0,
			DecidedAt: at(rapid.IntRange(0, 8).Draw(t, "reservation-decided")),
			ExpiresAt: at(rapid.IntRange(0, 30).Draw(t, "reservation-expires")),
		})
	}
	now := drawNow(t, s, p)
	return restrictCase{state: s, pol: p, now: now, snap: inventory.Evaluate(s, p, now)}
}

// drawLocationSet draws some of the generated locations, plus now and then
// one no SKU has.
func drawLocationSet(t *rapid.T, label string) []string {
	ids := rapid.SliceOfNDistinct(rapid.SampledFrom(append(slices.Clone(locationIDs), "XX-9")), 1, len(locationIDs)+1, rapid.ID).Draw(t, label)
	return ids
}

func mustFilter(t tb, locations, channels, configured []string) inventory.Filter {
	t.Helper()
	f, err := inventory.NewFilter(locations, channels, configured)
	if err != nil {
		t.Fatalf("NewFilter(%q, %q): %v", locations, channels, err)
	}
	return f
}

func channelByName(s inventory.Snapshot, name string) (inventory.ChannelSnapshot, bool) {
	for _, c := range s.Channels {
		if c.Channel == name {
			return c, true
		}
	}
	return inventory.ChannelSnapshot{}, false
}

// withoutLocationsOutside is s with the stock of every location outside
// keep removed.
func withoutLocationsOutside(s inventory.State, keep []string) inventory.State {
	for _, id := range s.LocationIDs() {
		if !slices.Contains(keep, id) {
			s = withoutLocation(s, id)
		}
	}
	return s
}

// The properties of a restriction to locations L, checked against
// Evaluate itself rather than against Restrict's own formula:
//   - usable(channel, L) is what Evaluate gives the state without the
//     stock of the locations outside L (same policies, same region, same
//     time): the same eligibility, closed, stale and region rules;
//   - available never exceeds the unrestricted answer nor usable(L), and
//     is never negative; it is exactly min(usable(L), unrestricted);
//   - reservations, caps, sellability and backorders are the SKU's;
//   - only L's locations are listed, OnHand sums them, unknown locations
//     are reported, reasons are the SKU's and L's.
func TestPropertyRestrictToLocations(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawRestrictCase(t)
		ids := drawLocationSet(t, "locations")
		f := mustFilter(t, ids, nil, c.pol.Channels)
		before := cloneSnapshot(c.snap)
		r := inventory.Restrict(c.snap, f)
		if !reflect.DeepEqual(c.snap, before) {
			t.Fatalf("Restrict modified its input")
		}
		ref := inventory.Evaluate(withoutLocationsOutside(c.state, ids), c.pol, c.now)

		var listed []string
		var onHand int64
		for _, l := range r.Locations {
			listed = append(listed, l.ID)
			onHand += l.OnHand
		}
		var want, unknown []string
		for _, l := range c.snap.Locations {
			if slices.Contains(ids, l.ID) {
				want = append(want, l.ID)
			}
		}
		for _, id := range f.Locations {
			if !slices.Contains(want, id) {
				unknown = append(unknown, id)
			}
		}
		if !slices.Equal(listed, want) || !slices.Equal(r.UnknownLocations, unknown) {
			t.Fatalf("filter %v on locations %v: listed %v unknown %v, want %v and %v", ids, c.state.LocationIDs(), listed, r.UnknownLocations, want, unknown)
		}
		if r.OnHand != onHand {
			t.Fatalf("OnHand %d, listed locations hold %d", r.OnHand, onHand)
		}
		if len(r.Channels) != len(c.snap.Channels) {
			t.Fatalf("%d channels, unrestricted %d", len(r.Channels), len(c.snap.Channels))
		}
		for i, rc := range r.Channels {
			u := c.snap.Channels[i]
			if rc.Channel != u.Channel {
				t.Fatalf("channel %d is %s, unrestricted %s", i, rc.Channel, u.Channel)
			}
			refc, _ := channelByName(ref, rc.Channel)
			if rc.Usable != refc.Usable {
				t.Fatalf("%s: usable(L) %d, Evaluate without the other locations gives %d", rc.Channel, rc.Usable, refc.Usable)
			}
			if rc.Available < 0 || rc.Available > u.Available || rc.Available > rc.Usable || rc.Available != min(rc.Usable, u.Available) {
				t.Fatalf("%s: available %d with usable(L) %d, unrestricted available %d", rc.Channel, rc.Available, rc.Usable, u.Available)
			}
			if rc.Reserved != u.Reserved || rc.HasCap != u.HasCap || rc.CapRemaining != u.CapRemaining ||
				rc.Sellable != u.Sellable || rc.Backorderable != u.Backorderable {
				t.Fatalf("%s: the SKU's terms changed:\n restricted   %+v\n unrestricted %+v", rc.Channel, rc, u)
			}
			var reasons []inventory.Reason
			for _, why := range u.Reasons {
				if why.Location == "" || slices.Contains(ids, why.Location) {
					reasons = append(reasons, why)
				}
			}
			if !slices.Equal(rc.Reasons, reasons) {
				t.Fatalf("%s: reasons %+v, want %+v", rc.Channel, rc.Reasons, reasons)
			}
		}
		if !r.UpdatedAt.Equal(c.snap.UpdatedAt) || !r.NextChangeAt.Equal(c.snap.NextChangeAt) || r.ShipTo != c.snap.ShipTo || r.SKU != c.snap.SKU {
			t.Fatalf("restricted answer's times or identity differ: %+v", r)
		}
	})
}

// Restricting to every location the SKU has (with or without locations it
// does not have) and to every channel answers what the unrestricted answer
// does; only the version (and the filter it carries) differ.
func TestPropertyRestrictToEverythingIsUnrestricted(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawRestrictCase(t)
		ids := c.state.LocationIDs()
		if len(ids) == 0 {
			t.Skip("no locations")
		}
		if rapid.Bool().Draw(t, "extra") {
			ids = append(ids, "XX-9")
		}
		var chans []string
		if rapid.Bool().Draw(t, "all-channels-named") {
			chans = c.pol.Channels
		}
		f := mustFilter(t, ids, chans, c.pol.Channels)
		r := inventory.Restrict(c.snap, f)
		got, want := r.Snapshot, c.snap
		if got.Version == want.Version {
			t.Fatalf("restricted and unrestricted answers share version %s", got.Version)
		}
		got.Version, want.Version = "", ""
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("restricted to everything:\n got  %+v\n want %+v", got, want)
		}
	})
}

// More locations never offer fewer units; two disjoint sets together offer
// at most what they offer apart; and the parts of any partition of the
// SKU's locations together offer at least the unrestricted answer: every
// unit available is available somewhere.
func TestPropertyRestrictMonotoneAndCovering(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawRestrictCase(t)
		ids := c.state.LocationIDs()
		if len(ids) == 0 {
			t.Skip("no locations")
		}
		part := make(map[string]int, len(ids))
		k := rapid.IntRange(1, len(ids)).Draw(t, "parts")
		for _, id := range ids {
			part[id] = rapid.IntRange(0, k-1).Draw(t, "part-of-"+id)
		}
		parts := make([][]string, k)
		for _, id := range ids {
			parts[part[id]] = append(parts[part[id]], id)
		}
		avail := func(locs []string) []int64 {
			if len(locs) == 0 {
				return make([]int64, len(c.snap.Channels))
			}
			r := inventory.Restrict(c.snap, mustFilter(t, locs, nil, c.pol.Channels))
			out := make([]int64, len(r.Channels))
			for i, ch := range r.Channels {
				out[i] = ch.Available
			}
			return out
		}
		sum := make([]int64, len(c.snap.Channels))
		for _, p := range parts {
			for i, a := range avail(p) {
				sum[i] += a
			}
		}
		for i, ch := range c.snap.Channels {
			if sum[i] < ch.Available {
				t.Fatalf("%s: parts %v offer %d together, the SKU %d", ch.Channel, parts, sum[i], ch.Available)
			}
		}
		a, b := parts[0], slices.Concat(parts[1:]...)
		sub := a[:rapid.IntRange(0, len(a)).Draw(t, "subset")]
		aa, ab, aab, asub := avail(a), avail(b), avail(slices.Concat(a, b)), avail(sub)
		for i, ch := range c.snap.Channels {
			if aab[i] > aa[i]+ab[i] {
				t.Fatalf("%s: %v and %v offer %d and %d apart but %d together", ch.Channel, a, b, aa[i], ab[i], aab[i])
			}
			if asub[i] > aa[i] || aa[i] > aab[i] {
				t.Fatalf("%s: not monotone: %v offers %d, %v %d, %v %d", ch.Channel, sub, asub[i], a, aa[i], slices.Concat(a, b), aab[i])
			}
		}
	})
}

// A channel filter answers exactly the named channels, as the unrestricted
// answer has them; locations are untouched.
func TestPropertyRestrictToChannels(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawRestrictCase(t)
		if len(c.pol.Channels) == 0 {
			t.Skip("no channels")
		}
		chans := rapid.SliceOfN(rapid.SampledFrom(c.pol.Channels), 1, 4).Draw(t, "channels")
		r := inventory.Restrict(c.snap, mustFilter(t, nil, chans, c.pol.Channels))
		var want []inventory.ChannelSnapshot
		for _, ch := range c.snap.Channels {
			if slices.Contains(chans, ch.Channel) {
				want = append(want, ch)
			}
		}
		if !reflect.DeepEqual(r.Channels, want) {
			t.Fatalf("channels %v:\n got  %+v\n want %+v", chans, r.Channels, want)
		}
		if !reflect.DeepEqual(r.Locations, c.snap.Locations) || r.OnHand != c.snap.OnHand || len(r.UnknownLocations) != 0 {
			t.Fatalf("a channel filter changed the locations: %+v", r)
		}
	})
}

// The version covers the filter: the same filter however spelt gives the
// same version, a different filter a different one, and only the zero
// filter keeps the unrestricted version.
func TestPropertyRestrictVersion(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawRestrictCase(t)
		draw := func(label string) inventory.Filter {
			var locs, chans []string
			if rapid.Bool().Draw(t, label+"-has-locations") {
				locs = drawLocationSet(t, label+"-locations")
			}
			if len(c.pol.Channels) > 0 && rapid.Bool().Draw(t, label+"-has-channels") {
				chans = rapid.SliceOfN(rapid.SampledFrom(c.pol.Channels), 1, 3).Draw(t, label+"-channels")
			}
			return mustFilter(t, locs, chans, c.pol.Channels)
		}
		f, g := draw("f"), draw("g")
		rf, rg := inventory.Restrict(c.snap, f), inventory.Restrict(c.snap, g)
		same := reflect.DeepEqual(f, g)
		if (rf.Version == rg.Version) != same {
			t.Fatalf("filters %+v and %+v: versions %s and %s", f, g, rf.Version, rg.Version)
		}
		if (rf.Version == c.snap.Version) != f.IsZero() {
			t.Fatalf("filter %+v: version %s, unrestricted %s", f, rf.Version, c.snap.Version)
		}
		// Spelt differently: reordered, repeated.
		spelt := inventory.Filter{
			Locations: slices.Concat(rapid.Permutation(f.Locations).Draw(t, "reordered-locations"), f.Locations),
			Channels:  slices.Concat(f.Channels, rapid.Permutation(f.Channels).Draw(t, "reordered-channels")),
		}
		if again := inventory.Restrict(c.snap, spelt); !reflect.DeepEqual(again, rf) {
			t.Fatalf("filter %+v spelt %+v answers differently:\n%+v\n%+v", f, spelt, rf, again)
		}
	})
}

// cloneSnapshot copies s deeply, to detect a modification.
func cloneSnapshot(s inventory.Snapshot) inventory.Snapshot {
	out := s
	out.Locations = slices.Clone(s.Locations)
	for i, l := range out.Locations {
		out.Locations[i].Areas = slices.Clone(l.Areas)
		out.Locations[i].Channels = slices.Clone(l.Channels)
	}
	out.Channels = slices.Clone(s.Channels)
	for i, ch := range out.Channels {
		out.Channels[i].Reasons = slices.Clone(ch.Reasons)
	}
	return out
}

// A worked example: a warehouse, a pickup store and a stale merchant, with
// a hold on store-pickup.
func TestRestrictExample(t *testing.T) {
	now := at(100)
	s := applyAll(t, inventory.State{SKU: sku},
		lvl("WH-1", 10, at(90), 1),
		lvl("ST-2", 4, at(90), 1),
		lvl("MC-3", 7, at(10), 1), // stale at 10+60
	)
	s.Reservations = []inventory.Reservation{{ID: "R-1", OrderID: "O-1", Channel: "pickup", Quantity: 12, Status: inventory.StatusHeld, DecidedAt: at(95), ExpiresAt: at(200)}}
	p := pol([]string{"pickup", "web"},
		inventory.LocationPolicy{Location: "ST-2", Kind: inventory.KindStore, Channels: []string{"pickup"}, SafetyStock: 1, AsOf: at(0)},
		inventory.LocationPolicy{Location: "MC-3", Kind: inventory.KindMerchant, MerchantID: "M1", AsOf: at(0)},
	)
	p.DefaultStaleAfter = 60 * time.Second
	snap := inventory.Evaluate(s, p, now)
	// Unrestricted: pickup 10+3 usable, 12 held: 1; web: 10 usable, but
	// pickup's hold leaves 13-12 = 1 of the shared units: 1.
	if got := []int64{snap.Channels[0].Available, snap.Channels[1].Available}; !slices.Equal(got, []int64{1, 1}) {
		t.Fatalf("unrestricted pickup, web available %v, want [1 1]", got)
	}

	r := inventory.Restrict(snap, mustFilter(t, []string{"ST-2", "MC-3", "ST-9"}, []string{"pickup"}, p.Channels))
	if len(r.Channels) != 1 || r.Channels[0].Channel != "pickup" {
		t.Fatalf("channels %+v, want pickup only", r.Channels)
	}
	pk := r.Channels[0]
	if pk.Usable != 3 || pk.Available != 1 || pk.Reserved != 12 {
		t.Errorf("pickup at ST-2 and stale MC-3: %+v, want usable 3 (ST-2's 4 - 1), available 1 (the SKU's), reserved 12", pk)
	}
	if !slices.Equal(r.UnknownLocations, []string{"ST-9"}) || r.OnHand != 11 || len(r.Locations) != 2 {
		t.Errorf("unknown %v, on-hand %d, %d locations; want [ST-9], 11, 2", r.UnknownLocations, r.OnHand, len(r.Locations))
	}
	if len(pk.Reasons) != 1 || pk.Reasons[0].Location != "MC-3" || pk.Reasons[0].Code != inventory.ReasonLocationStale {
		t.Errorf("reasons %+v, want MC-3 stale only", pk.Reasons)
	}

	// Without the hold, the store offers its own 3 although the SKU could
	// sell 13 for pickup.
	s.Reservations = nil
	free := inventory.Restrict(inventory.Evaluate(s, p, now), mustFilter(t, []string{"ST-2"}, nil, p.Channels))
	if got := []int64{free.Channels[0].Available, free.Channels[1].Available}; !slices.Equal(got, []int64{3, 0}) {
		t.Errorf("ST-2 alone: pickup, web available %v, want [3 0] (it does not fulfil web)", got)
	}
}

func TestRestrictZeroFilter(t *testing.T) {
	s := applyAll(t, inventory.State{SKU: sku}, lvl("WH-1", 3, at(1), 1))
	snap := inventory.Evaluate(s, pol([]string{"web"}), at(2))
	r := inventory.Restrict(snap, inventory.Filter{})
	if !reflect.DeepEqual(r, inventory.Restricted{Snapshot: snap}) {
		t.Fatalf("zero filter: %+v", r)
	}
	if f := mustFilter(t, nil, nil, []string{"web"}); !f.IsZero() {
		t.Fatalf("NewFilter(nil, nil) = %+v, not zero", f)
	}
}

func TestNewFilter(t *testing.T) {
	configured := []string{"web", "marketplace", "store-pickup"}
	f, err := inventory.NewFilter([]string{"ST-2", "WH-1", "ST-2"}, []string{"web", "marketplace", "web"}, configured)
	if err != nil {
		t.Fatal(err)
	}
	if want := (inventory.Filter{Locations: []string{"ST-2", "WH-1"}, Channels: []string{"marketplace", "web"}}); !reflect.DeepEqual(f, want) {
		t.Errorf("NewFilter = %+v, want %+v", f, want)
	}
	many := make([]string, inventory.MaxFilterIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("L-%d", i)
	}
	for _, tt := range []struct {
		name             string
		locations, chans []string
		want             []string
		unknownChannel   bool
	}{
		{"malformed location", []string{"WH 1"}, nil, []string{`location "WH 1" has characters outside`}, false},
		{"empty location", []string{""}, nil, []string{"location is empty"}, false},
		{"unconfigured channel", nil, []string{"app"}, []string{`channel is not configured: "app" (configured: marketplace, store-pickup, web)`}, true},
		{"malformed channel", nil, []string{"web/1"}, []string{`channel "web/1" has characters outside`}, false},
		{"too many locations", many, nil, []string{"257 locations asked for, more than 256"}, false},
		{"every problem", []string{"a b", "c d", "a b"}, []string{"app", "web"}, []string{`"a b"`, `"c d"`, `"app"`}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inventory.NewFilter(tt.locations, tt.chans, configured)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Count(err.Error(), `"a b"`) > 1 {
				t.Errorf("error %q repeats a problem", err)
			}
			if errors.Is(err, inventory.ErrUnknownChannel) != tt.unknownChannel {
				t.Errorf("errors.Is(%q, ErrUnknownChannel) = %v", err, !tt.unknownChannel)
			}
		})
	}
}
