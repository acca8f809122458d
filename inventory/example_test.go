package inventory_test

import (
	"fmt"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// The package doc's example, run.
func ExampleApply() {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := inventory.State{SKU: "SKU-1"}
	s, _, err := inventory.Apply(s, inventory.StockLevel{
		SKU: "SKU-1", Location: "WH-1", OnHand: 10, AsOf: t0, Sequence: 1,
	}, t0)
	if err != nil {
		panic(err)
	}
	sale := inventory.StockAdjustment{EventID: "order-7", SKU: "SKU-1", Location: "WH-1", Delta: -3, OccurredAt: t0.Add(time.Minute)}
	s, res, _ := inventory.Apply(s, sale, t0.Add(time.Minute))
	fmt.Println("sale changed state:", res.Changed)
	s, res, _ = inventory.Apply(s, sale, t0.Add(time.Minute)) // re-delivered
	fmt.Println("re-delivery changed state:", res.Changed)
	snap := inventory.Evaluate(s, inventory.Policies{Channels: []string{"web"}}, t0.Add(time.Minute))
	fmt.Println("on hand:", snap.OnHand)
	fmt.Println("available on web:", snap.Channels[0].Available)
	// Output:
	// sale changed state: true
	// re-delivery changed state: false
	// on hand: 7
	// available on web: 7
}

// A merchant's stock counts until its feed has been silent for the
// merchant's TTL; a sales cap limits a channel within its window.
func ExampleEvaluate() {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var s inventory.State
	for _, ev := range []inventory.Event{
		inventory.StockLevel{SKU: "SKU-1", Location: "WH-1", OnHand: 10, AsOf: t0},
		inventory.StockLevel{SKU: "SKU-1", Location: "MC-1", OnHand: 5, AsOf: t0},
		inventory.SalesCap{SKU: "SKU-1", Channel: "web", Limit: 12, AsOf: t0,
			WindowStart: t0.Add(time.Hour), WindowEnd: t0.Add(2 * time.Hour)},
	} {
		var err error
		if s, _, err = inventory.Apply(s, ev, t0); err != nil {
			panic(err)
		}
	}
	p := inventory.Policies{
		Channels: []string{"web"},
		Locations: map[string]inventory.LocationPolicy{
			"MC-1": {Location: "MC-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: t0},
		},
		Merchants: map[string]inventory.MerchantPolicy{
			"acme": {MerchantID: "acme", StaleAfter: 90 * time.Minute, AsOf: t0},
		},
		DefaultStaleAfter: time.Hour,
	}
	for _, m := range []int{0, 60, 90} {
		snap := inventory.Evaluate(s, p, t0.Add(time.Duration(m)*time.Minute))
		web := snap.Channels[0]
		fmt.Printf("+%dm: available %d (cap %v), changes at +%s\n", m, web.Available, web.HasCap, snap.NextChangeAt.Sub(t0))
	}
	// Output:
	// +0m: available 15 (cap false), changes at +1h0m0s
	// +60m: available 12 (cap true), changes at +1h30m0s
	// +90m: available 10 (cap true), changes at +2h0m0s
}
