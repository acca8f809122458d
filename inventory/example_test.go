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
	snap := inventory.Availability(s)
	fmt.Println("available:", snap.Available)
	// Output:
	// sale changed state: true
	// re-delivery changed state: false
	// available: 7
}
