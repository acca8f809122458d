package codecs_test

import (
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

const sku = "SKU-1"

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func lvl(loc string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	return inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: seq}
}

func areaLvl(loc, area string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	l := lvl(loc, onHand, asOf, seq)
	l.Area = area
	return l
}

func adj(id, loc string, delta int64, occurredAt time.Time) inventory.StockAdjustment {
	return inventory.StockAdjustment{EventID: id, SKU: sku, Location: loc, Delta: delta, OccurredAt: occurredAt}
}

func sellable(channel string, ok bool, asOf time.Time) inventory.ChannelEligibility {
	return inventory.ChannelEligibility{SKU: sku, Channel: channel, Sellable: ok, AsOf: asOf}
}

func salesCap(channel string, limit int64, from, to, asOf time.Time) inventory.SalesCap {
	return inventory.SalesCap{SKU: sku, Channel: channel, Limit: limit, WindowStart: from, WindowEnd: to, AsOf: asOf}
}

func backorder(limit int64, asOf time.Time) inventory.BackorderLimit {
	return inventory.BackorderLimit{SKU: sku, Limit: limit, AsOf: asOf}
}

func safety(loc string, units int64, asOf time.Time) inventory.SafetyStockOverride {
	return inventory.SafetyStockOverride{SKU: sku, Location: loc, Units: units, AsOf: asOf}
}

// applyAll folds events into a fresh state the way the processor does,
// failing on any error, so tests encode states the domain really produces.
func applyAll(t testing.TB, evs ...inventory.Event) inventory.State {
	t.Helper()
	s := inventory.State{SKU: sku}
	for i, ev := range evs {
		var err error
		s, _, err = inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("event %d %+v: %v", i, ev, err)
		}
	}
	return s
}

// richState has several locations, one without a level, adjustments before
// and after levels, a sub-second time and a negative raw level+delta.
func richState(t testing.TB) inventory.State {
	t.Helper()
	return applyAll(t,
		lvl("WH-1", 10, at(2), 1),
		adj("a", "WH-1", -2, at(3)),
		adj("c", "WH-1", 5, at(4).Add(123456789*time.Nanosecond)),
		adj("b", "WH-2", 4, at(1)),
		adj("z", "WH-2", -9, at(7)),
		lvl("STORE.7_x", 0, at(5), 42),
		adj("neg", "STORE.7_x", -3, at(6)),
		lvl("WH-3", inventory.MaxUnits, at(1).Add(time.Nanosecond), 0),
	)
}

// channels are the configured channels of the tests; "kiosk" has no rule
// of any kind.
var channels = []string{"web", "marketplace", "store-pickup", "kiosk"}

// policyState exercises every SKU-level rule and every location policy of
// testPolicies: areas, a closed location, a store limited to one channel,
// a fresh and a stale merchant location, a channel the SKU may not be sold
// on, an exhausted and a partly used sales cap, a cleared cap, a backorder
// limit and safety-stock overrides (one cleared).
func policyState(t testing.TB) inventory.State {
	t.Helper()
	return applyAll(t,
		lvl("WH-1", 10, at(1), 1),
		areaLvl("ST-1", inventory.AreaFloor, 4, at(2), 1),
		areaLvl("ST-1", inventory.AreaBackroom, 6, at(2), 2),
		adj("floor-sale", "ST-1", -1, at(3)),
		lvl("CL-1", 7, at(1), 1),
		lvl("M-1", 5, at(0), 1),
		lvl("M-2", 3, at(0).Add(500*time.Millisecond), 1),
		adj("m3-receipt", "M-3", 2, at(4)), // merchant location without a level
		sellable("marketplace", false, at(1)),
		sellable("kiosk", true, at(1)),
		salesCap("web", 0, at(0), at(100), at(1)),
		salesCap("store-pickup", 3, at(0), at(100), at(1)),
		salesCap("kiosk", 1, at(0), at(100), at(1)),
		inventory.SalesCap{SKU: sku, Channel: "kiosk", Cleared: true, AsOf: at(2)},
		salesCap("later", 9, at(200), at(300), at(1)),
		backorder(5, at(1)),
		safety("WH-1", 1, at(1)),
		safety("ST-1", 2, at(1)),
		inventory.SafetyStockOverride{SKU: sku, Location: "ST-1", Cleared: true, AsOf: at(2)},
	)
}

// testPolicies are the location and merchant policies of policyState's
// locations.
func testPolicies() inventory.Policies {
	return inventory.Policies{
		Channels: channels,
		Locations: map[string]inventory.LocationPolicy{
			"ST-1": {Location: "ST-1", Kind: inventory.KindStore, Channels: []string{"store-pickup"}, SafetyStock: 2, AsOf: at(0)},
			"CL-1": {Location: "CL-1", Kind: inventory.KindWarehouse, Closed: true, AsOf: at(0)},
			"M-1":  {Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)},
			"M-2":  {Location: "M-2", Kind: inventory.KindMerchant, MerchantID: "slow", AsOf: at(0)},
			"M-3":  {Location: "M-3", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)},
		},
		Merchants: map[string]inventory.MerchantPolicy{
			"acme": {MerchantID: "acme", StaleAfter: time.Hour, AsOf: at(0)},
		},
		DefaultStaleAfter: 10 * time.Second,
	}
}
