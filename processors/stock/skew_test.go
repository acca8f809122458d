package stock_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// An event whose own time is more than the allowed skew ahead of its
// message's timestamp is dead-lettered with the reason and changes
// nothing, on every input that folds event times: a level as of 2199 (it
// would pin its location for good), an adjustment, a SKU policy, a
// fulfilment, and a StockTick at 2199 (it expired every hold on the SKU
// while its orders still said RESERVED). Times within the skew are
// applied.
func TestFarFutureEventTimesAreDeadLettered(t *testing.T) {
	const skew = 5 * time.Minute
	far := time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := at(100)
	h := &demandHarness{harness: startSkew(t, nil, skew), model: inventory.State{SKU: sku}}
	h.outcomes = h.gkt.NewQueueTracker(string(schema.Outcomes))
	// Within the skew: applied.
	h.supplyAt(msg, lvl("WH-1", 5, msg.Add(skew), 1))
	if out := h.demand(reserve("r1", "o1", 3, "web", time.Hour), msg); out == nil || !out.Accepted {
		t.Fatalf("setup: reservation %+v, want accepted", out)
	}
	drain(h.outcomes)
	drain(h.avail)
	drain(h.changelog)
	before := h.stateOrFail()

	cases := []struct {
		name, field string
		send        func()
	}{
		{"level", "as_of", func() { h.consume(sku, encode(t, lvl("WH-1", 1000, far, 2)), msg) }},
		{"adjustment", "occurred_at", func() { h.consume(sku, encode(t, adj("a1", "WH-1", 50, far)), msg) }},
		{"sku policy", "as_of", func() {
			h.consumeOn(schema.SkuPolicies, sku, encodeSkuPolicy(t, inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: false, AsOf: far}), msg)
		}},
		{"fulfilment", "fulfilled_at", func() { h.consumeOn(schema.Demand, sku, encodeDemandEvent(t, fulfil("r1", "WH-1", far)), msg) }},
		{"stock tick", "tick at", func() { h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(far)}, msg) }},
		{"stock tick just beyond the skew", "tick at", func() {
			h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(msg.Add(time.Hour + skew + time.Nanosecond))}, msg.Add(time.Hour))
		}},
	}
	for _, c := range cases {
		c.send()
		dead := h.deadLetters()
		if len(dead) != 1 {
			t.Fatalf("%s: dead-lettered %d messages, want 1: %v", c.name, len(dead), dead)
		}
		if r := dead[0].GetReason(); !strings.Contains(r, c.field) || !strings.Contains(r, "after the message time") || !strings.Contains(r, skew.String()) {
			t.Errorf("%s: reason %q does not name %s, the message time and the skew", c.name, r, c.field)
		}
		if s := h.stateOrFail(); !reflect.DeepEqual(s, before) {
			t.Fatalf("%s changed the state:\n got %+v\nwant %+v", c.name, s, before)
		}
		if a := h.availabilities(); len(a) != 0 {
			t.Errorf("%s published %v", c.name, a)
		}
		if o := drain(h.outcomes); len(o) != 0 {
			t.Errorf("%s emitted outcomes %v", c.name, o)
		}
		drain(h.changelog)
	}
	// The hold is still there: a tick at the present expires nothing.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(msg.Add(time.Minute))}, msg.Add(time.Minute))
	if r := h.stateOrFail().Reservations; len(r) != 1 || r[0].Status != inventory.StatusHeld {
		t.Fatalf("reservations %+v, want r1 held", r)
	}
}
