package inventory_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// goldenCase is a state, its policies and a time whose answer's Version was
// recorded before ship-to regions existed.
type goldenCase struct {
	name    string
	s       inventory.State
	p       inventory.Policies
	now     time.Time
	version string
}

// goldenCases cover every part of an answer: areas, safety stock, closed,
// ineligible, stale and fresh merchant locations, a sales cap, a backorder
// limit, reservations and a channel that may not be sold on.
func goldenCases(t tb) []goldenCase {
	rich := applyAll(t, inventory.State{},
		lvl("WH-1", 10, at(1), 0),
		adj("a", "WH-1", 1, at(2)),
		lvlIn("ST-2", inventory.AreaFloor, 4, at(1), 0),
		adjIn("b", "ST-2", inventory.AreaFloor, 2, at(2)),
		lvlIn("ST-2", inventory.AreaBackroom, 3, at(1), 0),
		lvl("MC-1", 7, at(3), 0),
		lvl("MC-2", 5, at(0), 0),
		lvl("WH-9", 6, at(1), 0),
		sellable("web", true, at(1)),
		sellable("market", false, at(1)),
		salesCap("web", 9, at(1), at(50), at(1)),
		backorder(2, at(1)),
		safety("WH-1", 1, at(1)),
	)
	p := pol([]string{"app", "market", "store-pickup", "web"},
		inventory.LocationPolicy{Location: "ST-2", Kind: inventory.KindStore, Channels: []string{"store-pickup", "web"}, SafetyStock: 1},
		inventory.LocationPolicy{Location: "MC-1", Kind: inventory.KindMerchant, Channels: []string{"market", "web"}},
		inventory.LocationPolicy{Location: "MC-2", Kind: inventory.KindMerchant},
		inventory.LocationPolicy{Location: "WH-9", Kind: inventory.KindWarehouse, Closed: true},
	)
	held := rich
	held.Reservations = []inventory.Reservation{
		{ID: "r-1", OrderID: "o-1", Channel: "web", Quantity: 3, Status: inventory.StatusHeld, DecidedAt: at(4), ExpiresAt: at(64)},
		{ID: "r-2", OrderID: "o-2", Channel: "app", Quantity: 2, Status: inventory.StatusHeld, DecidedAt: at(4), ExpiresAt: at(64)},
	}
	return []goldenCase{
		{name: "empty", s: inventory.State{SKU: sku}, p: pol([]string{"web"}), now: at(0), version: "6682e196a0d07a5a"},
		{name: "one warehouse", s: applyAll(t, inventory.State{}, lvl("WH-1", 5, at(1), 0)), p: pol([]string{"web"}), now: at(2), version: "87bb31c84eed348d"},
		{name: "rich", s: rich, p: p, now: at(5), version: "592118af4f6b0929"},
		{name: "rich, merchant stale", s: rich, p: p, now: at(12), version: "8df725b7325c2aa2"},
		{name: "rich with holds", s: held, p: p, now: at(6), version: "dc110f970f87debc"},
	}
}

// Answers for states whose policies name no region, and answers asked for no
// region, keep the versions they had before ship-to regions existed (pinned
// above): adding a region to another location's policy changes neither.
func TestRegionlessVersionsUnchanged(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			snap := inventory.Evaluate(c.s, c.p, c.now)
			if snap.Version != c.version {
				t.Errorf("version %s, was %s before ship-to regions", snap.Version, c.version)
			}
			p := withRegions(c.p, map[string][]string{"WH-1": {"US"}, "MC-1": {"DE-BY", "FR"}, "NO-STOCK": {"US-CA"}})
			if again := inventory.Evaluate(c.s, p, c.now); again.Version != c.version {
				t.Errorf("excluded regions changed the region-less version: %s, want %s", again.Version, c.version)
			}
		})
	}
}

// withRegions returns p with each named location's policy excluding the
// given regions (a location without a policy gets a warehouse policy),
// normalised through ApplyLocationPolicy as the policy table stores it.
func withRegions(p inventory.Policies, regions map[string][]string) inventory.Policies {
	out := p
	out.Locations = maps.Clone(p.Locations)
	if out.Locations == nil {
		out.Locations = map[string]inventory.LocationPolicy{}
	}
	for id, rs := range regions {
		lp, ok := out.Locations[id]
		if !ok {
			lp = inventory.LocationPolicy{Location: id, Kind: inventory.KindWarehouse, AsOf: at(0)}
		}
		lp.ExcludedRegions = slices.Clone(rs)
		norm, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, lp)
		if err != nil {
			panic(fmt.Sprintf("location policy %+v: %v", lp, err))
		}
		out.Locations[id] = norm
	}
	return out
}
