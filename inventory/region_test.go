package inventory_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// excludesRef is the ship-to rule written out for the tests: a location's
// excluded regions exclude a ship-to region when they list it or its
// country (the part before the hyphen); no region is never excluded.
func excludesRef(excluded []string, shipTo string) bool {
	if shipTo == "" {
		return false
	}
	for _, r := range excluded {
		if r == shipTo || strings.HasPrefix(shipTo, r+"-") {
			return true
		}
	}
	return false
}

func TestValidateRegion(t *testing.T) {
	for _, code := range []string{"US", "DE", "US-CA", "GB-SCT", "FR-75", "FR-2A", "CN-11", "IT-A", "AB-9Z9"} {
		if err := inventory.ValidateRegion("ship_to_region", code); err != nil {
			t.Errorf("ValidateRegion(%q) = %v, want nil", code, err)
		}
	}
	for _, code := range []string{"", "U", "us", "Us", "USA", "U1", "12", "US-", "US-ca", "US-CALI", "US_CA", "US CA",
		"US--C", "US-C-", "-US", " US", "US ", "ÜS", "US-\x00", "US\n"} {
		err := inventory.ValidateRegion("ship_to_region", code)
		if err == nil {
			t.Errorf("ValidateRegion(%q) = nil, want an error", code)
			continue
		}
		if !strings.HasSuffix(err.Error(), inventory.RegionRule) || !strings.HasPrefix(err.Error(), "ship_to_region ") {
			t.Errorf("ValidateRegion(%q) = %q: does not name the field and end with the rule", code, err)
		}
	}
}

func TestRegionCountry(t *testing.T) {
	for code, want := range map[string]string{"US": "US", "US-CA": "US", "GB-SCT": "GB", "": ""} {
		if got := inventory.RegionCountry(code); got != want {
			t.Errorf("RegionCountry(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestExcludesRegion(t *testing.T) {
	for _, tc := range []struct {
		excluded []string
		shipTo   string
		want     bool
	}{
		{nil, "US", false},
		{[]string{"US"}, "", false},
		{[]string{"US"}, "US", true},
		{[]string{"US"}, "US-CA", true}, // a country excludes its subdivisions
		{[]string{"US-CA"}, "US-CA", true},
		{[]string{"US-CA"}, "US", false}, // a subdivision does not exclude its country
		{[]string{"US-CA"}, "US-NY", false},
		{[]string{"DE", "FR"}, "FR-75", true},
		{[]string{"DE", "FR"}, "GB", false},
		{[]string{"U"}, "US", false}, // codes compare whole, not as prefixes
	} {
		p := inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: tc.excluded}
		if got := p.ExcludesRegion(tc.shipTo); got != tc.want || got != excludesRef(tc.excluded, tc.shipTo) {
			t.Errorf("%v excludes %q = %v, want %v", tc.excluded, tc.shipTo, got, tc.want)
		}
	}
}

func TestLocationPolicyExcludedRegionsValidate(t *testing.T) {
	valid := inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, AsOf: at(0)}
	ok := valid
	ok.ExcludedRegions = []string{"US-CA", "DE", "US-CA"} // duplicates are fine: Apply removes them
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid regions: %v", err)
	}
	most := valid
	for i := range inventory.MaxExcludedRegions {
		most.ExcludedRegions = append(most.ExcludedRegions, string(rune('A'+i/26%26))+string(rune('A'+i%26)))
	}
	if err := most.Validate(); err != nil {
		t.Fatalf("%d regions: %v", len(most.ExcludedRegions), err)
	}
	for name, tc := range map[string]struct {
		regions []string
		want    []string
	}{
		"lower case":  {[]string{"us"}, []string{`excluded_regions entry "us" is not a region code`, inventory.RegionRule}},
		"empty entry": {[]string{"DE", ""}, []string{`excluded_regions entry "" is not a region code`}},
		"several bad": {[]string{"DE", "usa", "x", "FR"}, []string{`2 invalid excluded_regions entries, the first: excluded_regions entry "usa"`}},
		"too many":    {append(slices.Clone(most.ExcludedRegions), "ZZ"), []string{"513 excluded_regions, more than 512"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := valid
			p.ExcludedRegions = tc.regions
			err := p.Validate()
			if !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate = %v, want ErrInvalidEvent", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p); !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Errorf("ApplyLocationPolicy accepted it: %v", err)
			}
		})
	}
}

// The policy table stores excluded regions sorted without duplicates, and
// an empty list as nil, so equal policies have equal content.
func TestApplyLocationPolicyNormalisesRegions(t *testing.T) {
	in := inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, AsOf: at(0), ExcludedRegions: []string{"US-CA", "DE", "US-CA", "AT"}}
	out, res, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, in)
	if err != nil || !res.Changed {
		t.Fatalf("ApplyLocationPolicy: %v %+v", err, res)
	}
	if want := []string{"AT", "DE", "US-CA"}; !slices.Equal(out.ExcludedRegions, want) {
		t.Errorf("ExcludedRegions %v, want %v", out.ExcludedRegions, want)
	}
	if in.ExcludedRegions[0] != "US-CA" {
		t.Error("ApplyLocationPolicy modified its input")
	}
	in.ExcludedRegions = []string{}
	if out, _, _ := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, in); out.ExcludedRegions != nil {
		t.Errorf("empty regions stored as %#v, want nil", out.ExcludedRegions)
	}
}

func TestEvaluateShipTo(t *testing.T) {
	s := applyAll(t, inventory.State{},
		lvl("WH-1", 10, at(1), 0), lvl("WH-2", 4, at(1), 0), lvl("WH-3", 3, at(1), 0), lvl("ST-4", 2, at(1), 0))
	p := pol([]string{"pickup", "web"},
		inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US"}},
		inventory.LocationPolicy{Location: "WH-2", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"DE-BY"}},
		inventory.LocationPolicy{Location: "WH-3", Kind: inventory.KindWarehouse, Closed: true, ExcludedRegions: []string{"US"}},
		inventory.LocationPolicy{Location: "ST-4", Kind: inventory.KindStore, Channels: []string{"pickup"}, ExcludedRegions: []string{"US-CA"}},
	)
	plain := evaluate(t, s, p, at(2))
	checkChannel(t, plain, "web", chanWant{available: 14, usable: 14, sellable: true, reasons: []reasonKey{
		{inventory.ReasonLocationIneligible, "ST-4"}, {inventory.ReasonLocationClosed, "WH-3"}}})

	p.ShipTo = "US-CA"
	snap := evaluate(t, s, p, at(2))
	if snap.ShipTo != "US-CA" {
		t.Errorf("ShipTo %q", snap.ShipTo)
	}
	// WH-1 excludes the whole country; ST-4 the subdivision but it is not
	// eligible for web anyway; WH-3's closure is reported before its region.
	checkChannel(t, snap, "web", chanWant{available: 4, usable: 4, sellable: true, reasons: []reasonKey{
		{inventory.ReasonLocationIneligible, "ST-4"}, {inventory.ReasonLocationExcludedRegion, "WH-1"}, {inventory.ReasonLocationClosed, "WH-3"}}})
	checkChannel(t, snap, "pickup", chanWant{available: 4, usable: 4, sellable: true, reasons: []reasonKey{
		{inventory.ReasonLocationExcludedRegion, "ST-4"}, {inventory.ReasonLocationExcludedRegion, "WH-1"}, {inventory.ReasonLocationClosed, "WH-3"}}})
	for id, want := range map[string]bool{"WH-1": true, "WH-2": false, "WH-3": true, "ST-4": true} {
		if got := locationOf(t, snap, id).RegionExcluded; got != want {
			t.Errorf("%s RegionExcluded %v, want %v", id, got, want)
		}
	}
	if snap.OnHand != plain.OnHand {
		t.Errorf("on hand %d, want every location's %d", snap.OnHand, plain.OnHand)
	}
	for _, r := range channelOf(t, snap, "web").Reasons {
		if r.Code == inventory.ReasonLocationExcludedRegion && r.Message != "location does not ship to US-CA" {
			t.Errorf("reason message %q", r.Message)
		}
	}
	if snap.Version == plain.Version {
		t.Error("the answer for US-CA has the region-less version")
	}

	// A country ship-to is not excluded by a subdivision.
	p.ShipTo = "DE"
	checkChannel(t, evaluate(t, s, p, at(2)), "web", chanWant{available: 14, usable: 14, sellable: true, reasons: []reasonKey{
		{inventory.ReasonLocationIneligible, "ST-4"}, {inventory.ReasonLocationClosed, "WH-3"}}})
	p.ShipTo = "DE-BY"
	checkChannel(t, evaluate(t, s, p, at(2)), "web", chanWant{available: 10, usable: 10, sellable: true, reasons: []reasonKey{
		{inventory.ReasonLocationIneligible, "ST-4"}, {inventory.ReasonLocationExcludedRegion, "WH-2"}, {inventory.ReasonLocationClosed, "WH-3"}}})
}

// The reservation decision is made for the request's ship-to region: it
// counts only the locations that ship there, so an order never reserves
// units that cannot reach it. The policies' own ShipTo does not matter:
// the processor's policies are region-less, and the region travels in the
// event, so a replay decides the same.
func TestDemandRespectsShipTo(t *testing.T) {
	s := applyAll(t, inventory.State{}, lvl("WH-1", 5, at(1), 0), lvl("WH-2", 2, at(1), 0))
	p := pol([]string{"web"}, inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US"}})
	req := dmReq("r-1", "o-1", "web", 3, time.Minute)

	for _, polShipTo := range []string{"", "GB", "US-NY"} {
		p.ShipTo = polShipTo
		req.ShipTo = "US-NY"
		_, out, _, err := inventory.Demand(s, req, p, at(2))
		if err != nil || out == nil || out.Accepted || out.Reason != inventory.RejectInsufficient || out.Message == "" {
			t.Fatalf("policies %q: 3 units for US-NY with 2 shipping there: %+v, %v; want rejected as insufficient", polShipTo, out, err)
		}
		req.ShipTo = "GB"
		_, out, _, err = inventory.Demand(s, req, p, at(2))
		if err != nil || out == nil || !out.Accepted {
			t.Fatalf("policies %q: 3 units for GB with 7 shipping there: %+v, %v; want accepted", polShipTo, out, err)
		}
		req.ShipTo = ""
		_, out, _, err = inventory.Demand(s, req, p, at(2))
		if err != nil || out == nil || !out.Accepted {
			t.Fatalf("policies %q: 3 units with no region: %+v, %v; want accepted", polShipTo, out, err)
		}
	}
}

func TestReservationRequestedShipToValidate(t *testing.T) {
	req := dmReq("r-1", "o-1", "web", 1, time.Minute)
	for _, ok := range []string{"", "US", "US-CA", "GB-SCT"} {
		req.ShipTo = ok
		if err := req.Validate(); err != nil {
			t.Errorf("ship-to %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"us", "USA", "US-", "U1", "US-ca"} {
		req.ShipTo = bad
		err := req.Validate()
		if !errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), "ship_to_region") || !strings.Contains(err.Error(), inventory.RegionRule) {
			t.Errorf("ship-to %q: %v, want an invalid event naming ship_to_region and the rule", bad, err)
		}
		c := dmPlace("O-1", dmLine("SKU-A", 1))
		c.ShipTo = bad
		if err := c.Validate(); !errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), "ship_to_region") {
			t.Errorf("order with ship-to %q: %v, want an invalid event naming ship_to_region", bad, err)
		}
	}
}

// The saga records the order's region, sends it with every line's request
// (again when re-requesting), and takes an order id reused with another
// region for a different order.
func TestSagaCarriesShipTo(t *testing.T) {
	g := &dmSaga{t: t}
	c := dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2))
	c.ShipTo = "US-CA"
	eff := g.apply(c, at(0))
	if g.o.ShipTo != "US-CA" || len(eff.Requests) != 2 {
		t.Fatalf("order %+v, effects %+v", g.o, eff)
	}
	for _, r := range eff.Requests {
		if r.ShipTo != "US-CA" {
			t.Errorf("request %+v without the order's region", r)
		}
	}
	if again := g.apply(c, at(1)); len(again.Requests) != 2 || again.Requests[0].ShipTo != "US-CA" {
		t.Errorf("retry re-requested %+v", again.Requests)
	}
	for _, other := range []string{"", "US", "DE"} {
		d := c
		d.ShipTo = other
		if g.o.SameOrder(d) {
			t.Errorf("order for US-CA is the same order as one for %q", other)
		}
		if _, _, _, err := inventory.ApplyOrder(g.o, true, d, at(1)); !errors.Is(err, inventory.ErrOrderConflict) {
			t.Errorf("reuse with ship-to %q: %v, want a conflict", other, err)
		}
	}
	if !g.o.SameOrder(c) {
		t.Error("the same order is not SameOrder")
	}
	plain := &dmSaga{t: t}
	for _, r := range plain.apply(dmPlace("O-2", dmLine("SKU-A", 1)), at(0)).Requests {
		if r.ShipTo != "" {
			t.Errorf("region-less order sent %+v", r)
		}
	}
}

// The saga and the SKU processors together: an order for a region the only
// stocked warehouse excludes is rejected as insufficient; the same order
// without a region, or for a region it ships to, is reserved.
func TestSagaShipToDecidesWithoutExcludedStock(t *testing.T) {
	p := pol([]string{"web"}, inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US-CA"}})
	for _, tc := range []struct {
		shipTo string
		want   inventory.OrderStatus
	}{{"US-CA", inventory.OrderRejected}, {"", inventory.OrderReserved}, {"US", inventory.OrderReserved}, {"US-NY", inventory.OrderReserved}} {
		states := map[string]inventory.State{
			"SKU-A": dmApply(t, inventory.State{SKU: "SKU-A"}, inventory.StockLevel{SKU: "SKU-A", Location: "WH-1", OnHand: 5, AsOf: at(0), Sequence: 1}),
		}
		g := &dmSaga{t: t}
		c := dmPlace("O-1", dmLine("SKU-A", 2))
		c.ShipTo = tc.shipTo
		for _, r := range g.apply(c, at(0)).Requests {
			next, out, _ := dmDemand(t, states[r.SKU], r, p, at(1))
			states[r.SKU] = next
			g.apply(*out, at(2))
		}
		if g.o.Status != tc.want {
			t.Errorf("ship-to %q: order %+v, want status %v", tc.shipTo, g.o, tc.want)
		}
		if tc.want == inventory.OrderRejected && (g.o.Lines[0].Reject != inventory.RejectInsufficient || g.o.Lines[0].Message == "") {
			t.Errorf("ship-to %q: line %+v, want insufficient with a message", tc.shipTo, g.o.Lines[0])
		}
	}
}

// The reference model of a request's ship-to region: the decision for a
// request with ShipTo is the region-less decision on the state without the
// stock of the locations that exclude the region, and with no ShipTo the
// decision is as if no policy excluded any region. The policies' ShipTo
// never matters.
func TestPropertyRequestShipToIsExcludedStockRemoved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawRegionPolicies(t)
		if len(p.Channels) == 0 {
			t.Skip("no channel to request on")
		}
		now := drawNow(t, s, p)
		req := dmReq("R-1", "O-1", rapid.SampledFrom(p.Channels).Draw(t, "channel"), rapid.Int64Range(1, 12).Draw(t, "qty"), time.Minute)
		req.ShipTo = rapid.SampledFrom(append([]string{""}, shipTos...)).Draw(t, "ship-to")
		p.ShipTo = rapid.SampledFrom(append([]string{""}, shipTos...)).Draw(t, "policies' ship-to")

		got, out, _ := dmDemand(t, s, req, p, now)
		ref := s
		for _, id := range s.LocationIDs() {
			if lp, ok := p.Locations[id]; ok && excludesRef(lp.ExcludedRegions, req.ShipTo) {
				ref = withoutLocation(ref, id)
			}
		}
		if !ref.Known() {
			return // nothing left that makes the SKU exist: not comparable
		}
		plain := req
		plain.ShipTo = ""
		refNext, want, _ := dmDemand(t, ref, plain, withoutRegions(p), now)
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("ship-to %q:\n got %+v\nwant %+v", req.ShipTo, out, want)
		}
		if !reflect.DeepEqual(got.Reservations, refNext.Reservations) {
			t.Fatalf("ship-to %q: reservations\n got %+v\nwant %+v", req.ShipTo, got.Reservations, refNext.Reservations)
		}
	})
}

var (
	// excludable are the regions policies exclude in the properties;
	// shipTos adds codes they never name (JP, BR) and subdivisions of
	// excluded countries.
	excludable = []string{"US", "US-CA", "DE-BY", "FR", "GB-SCT"}
	shipTos    = []string{"US", "US-CA", "US-NY", "DE", "DE-BY", "FR", "FR-75", "GB", "GB-SCT", "JP", "BR-SP"}
)

// drawRegionPolicies is drawPolicies with excluded regions on some
// locations (one without a policy may get a warehouse policy for them).
func drawRegionPolicies(t *rapid.T) inventory.Policies {
	p := drawPolicies(t)
	regions := map[string][]string{}
	for _, id := range locationIDs {
		if rapid.IntRange(0, 2).Draw(t, "has-regions-"+id) > 0 {
			regions[id] = rapid.SliceOfN(rapid.SampledFrom(excludable), 0, 3).Draw(t, "regions-"+id)
		}
	}
	return withRegions(p, regions)
}

// withoutRegions is p with every excluded region removed and no ShipTo.
func withoutRegions(p inventory.Policies) inventory.Policies {
	regions := map[string][]string{}
	for id := range p.Locations {
		regions[id] = nil
	}
	out := withRegions(p, regions)
	out.ShipTo = ""
	return out
}

// The reference model of a ship-to region: the answer for a region is the
// region-less answer for the state without the stock of the locations that
// exclude it. Every channel is equal (but for the reasons naming those
// locations, which say why they are missing), every other location's line
// is equal, and the excluded ones are still listed, flagged RegionExcluded.
func TestPropertyShipToIsExcludedStockRemoved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawRegionPolicies(t)
		now := drawNow(t, s, p)
		p.ShipTo = rapid.SampledFrom(shipTos).Draw(t, "ship-to")
		snap := evaluate(t, s, p, now)

		gone := map[string]bool{}
		ref := s
		for _, id := range s.LocationIDs() {
			if lp, ok := p.Locations[id]; ok && excludesRef(lp.ExcludedRegions, p.ShipTo) {
				gone[id] = true
				ref = withoutLocation(ref, id)
			}
		}
		rp := p
		rp.ShipTo = ""
		want := evaluate(t, ref, rp, now)

		for i, c := range snap.Channels {
			var kept []inventory.Reason
			reported := map[string]inventory.ReasonCode{}
			for _, r := range c.Reasons {
				if gone[r.Location] {
					reported[r.Location] = r.Code
					continue
				}
				kept = append(kept, r)
			}
			for _, l := range snap.Locations {
				if !gone[l.ID] {
					continue
				}
				wantCode := inventory.ReasonLocationExcludedRegion
				switch {
				case l.Closed:
					wantCode = inventory.ReasonLocationClosed
				case len(l.Channels) > 0 && !slices.Contains(l.Channels, c.Channel):
					wantCode = inventory.ReasonLocationIneligible
				}
				if got, ok := reported[l.ID]; ok != (l.Usable > 0) || ok && got != wantCode {
					t.Fatalf("channel %s: location %s (usable %d) reported as %v (%v), want code %v", c.Channel, l.ID, l.Usable, got, ok, wantCode)
				}
			}
			c.Reasons = kept
			w := want.Channels[i]
			if len(w.Reasons) == 0 {
				w.Reasons = nil
			}
			if !reflect.DeepEqual(c, w) {
				t.Fatalf("ship-to %s, channel %s:\n got %+v\nwant %+v (without %v)", p.ShipTo, c.Channel, c, w, gone)
			}
		}
		j := 0
		for _, l := range snap.Locations {
			if l.RegionExcluded != gone[l.ID] {
				t.Fatalf("location %s RegionExcluded %v, excluded by its policy %v", l.ID, l.RegionExcluded, gone[l.ID])
			}
			if gone[l.ID] {
				continue
			}
			if !reflect.DeepEqual(l, want.Locations[j]) {
				t.Fatalf("location %s:\n got %+v\nwant %+v", l.ID, l, want.Locations[j])
			}
			j++
		}
		if j != len(want.Locations) {
			t.Fatalf("%d locations kept, the reference has %d", j, len(want.Locations))
		}
	})
}

// With no ship-to region the answer is today's, byte for byte: excluded
// regions in policies change nothing, Version included.
func TestPropertyNoShipToChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawRegionPolicies(t)
		now := drawNow(t, s, p)
		got := evaluate(t, s, p, now)
		want := evaluate(t, s, withoutRegions(p), now)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("excluded regions changed the region-less answer:\n got %+v\nwant %+v", got, want)
		}
		for _, l := range got.Locations {
			if l.RegionExcluded {
				t.Fatalf("location %s is RegionExcluded with no ship-to", l.ID)
			}
		}
	})
}

// A region that no location excludes changes nothing but ShipTo and the
// version (which digests the region, so a regional answer's ETag never
// equals the region-less one's).
func TestPropertyUnexcludedRegionChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 25))
		p := drawRegionPolicies(t)
		now := drawNow(t, s, p)
		shipTo := rapid.SampledFrom(shipTos).Draw(t, "ship-to")
		for _, lp := range p.Locations {
			if excludesRef(lp.ExcludedRegions, shipTo) {
				shipTo = "JP-13"
			}
		}
		plain := evaluate(t, s, p, now)
		p.ShipTo = shipTo
		got := evaluate(t, s, p, now)
		if got.ShipTo != shipTo || got.Version == plain.Version {
			t.Fatalf("ship-to %s: ShipTo %q, version %s (region-less %s)", shipTo, got.ShipTo, got.Version, plain.Version)
		}
		got.ShipTo, got.Version, plain.Version = "", "", ""
		if !reflect.DeepEqual(got, plain) {
			t.Fatalf("ship-to %s, which no location excludes, changed the answer:\n got %+v\nwant %+v", shipTo, got, plain)
		}
	})
}
