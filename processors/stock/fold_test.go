package stock_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

// A flood of adjustments with no newer level keeps the SKU's state bounded
// (inventory.MaxAdjustments listed, the rest folded into a base), and a
// redelivered adjustment that was folded is dead-lettered with the reason
// (class "folded"), never counted twice.
func TestFoldedAdjustmentRedeliveryIsDeadLettered(t *testing.T) {
	h := start(t)
	n := 3 * inventory.MaxAdjustments
	var evs []inventory.Event
	for i := range n {
		evs = append(evs, adj(fmt.Sprintf("a-%03d", i), "WH-1", 1, at(i+1)))
	}
	h.apply(evs...)
	s, ok := h.state(sku)
	if !ok || len(s.Locations) != 1 || len(s.Locations[0].Adjustment) != inventory.MaxAdjustments || s.Locations[0].OnHand() != int64(n) {
		t.Fatalf("state after %d adjustments: %+v", n, s)
	}
	if d := h.deadLetters(); len(d) != 0 {
		t.Fatalf("dead-lettered %v", d)
	}
	drain(h.avail)
	drain(h.changelog)
	h.apply(evs[0])
	dead := h.deadLetters()
	if len(dead) != 1 || !strings.Contains(dead[0].GetReason(), "fold horizon") || !strings.Contains(dead[0].GetReason(), "a-000") {
		t.Fatalf("redelivered folded adjustment: dead letters %v, want one naming the fold horizon", dead)
	}
	if got := schema.ClassifyReason(dead[0].GetReason()); got != schema.ReasonFolded {
		t.Errorf("reason class %q, want %q", got, schema.ReasonFolded)
	}
	if after, _ := h.state(sku); !reflect.DeepEqual(after, s) {
		t.Fatalf("the redelivery changed the state")
	}
	if a := h.availabilities(); len(a) != 0 {
		t.Errorf("published %v", a)
	}
}
