package audit_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	tspb "google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/audit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The audit's folds skip what the processors dead-letter for the event
// skew (they share inventory.CheckEventTimes, CheckTickTimes,
// CheckOrderTimes and codecs.CheckPolicyTimes): a level as of 2199, a
// stock tick at 2199, a policy as of 2199 and an order tick at 2199 are
// not folded, so the audit reports no divergence where the processors
// applied nothing. With the check off (inventory.NoEventSkewLimit) they
// are folded, as the processors would.
func TestFoldsApplyTheEventSkew(t *testing.T) {
	const sku = "SKU-1"
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	far := time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)
	supply := func(ev inventory.Event, at time.Time) audit.Message {
		b, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		return audit.Message{Topic: string(schema.Supply), Time: at, Key: sku, Value: b}
	}
	marshal := func(m proto.Message) []byte {
		b, err := codecs.MarshalDeterministic(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stock := map[string][]audit.Message{sku: {
		supply(inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 5, AsOf: now, Sequence: 1}, now),
		supply(inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 2199, AsOf: far, Sequence: 2}, now.Add(time.Second)),
	}}
	policy := []audit.Message{{Topic: string(schema.Policies), Time: now, Key: "location/WH-1", Value: marshal(&pb.PolicyEvent{
		Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, AsOf: far})}})}}
	place := inventory.PlaceOrder{OrderID: "o-1", Channel: "web", Lines: []inventory.OrderLine{{SKU: sku, Quantity: 1}},
		ReservationTTL: time.Hour, DecisionTimeout: time.Minute}
	orders := map[string][]audit.Message{"o-1": {
		{Topic: string(schema.Orders), Time: now, Key: "o-1", Value: marshal(&pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(place)}})},
		{Topic: string(schema.Orders), Time: now.Add(time.Second), Key: "o-1", Value: marshal(&pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: "o-1", At: tspb.New(far)}}})},
	}}
	for _, tc := range []struct {
		name       string
		skew       time.Duration
		onHand     int64
		policies   int
		orderFinal bool
	}{
		{"default skew", inventory.EventSkew(0), 5, 0, false},
		{"check off", inventory.EventSkew(inventory.NoEventSkewLimit), 2199, 1, true},
	} {
		pol := audit.FoldPolicies(policy, tc.skew)
		if n := len(pol.Final()); n != tc.policies {
			t.Errorf("%s: %d policies folded, want %d", tc.name, n, tc.policies)
		}
		f := audit.FoldStock(stock, pol, inventory.DefaultBase(), audit.ByTime, tc.skew)[sku]
		if f == nil || len(f.State.Locations) != 1 || f.State.Locations[0].OnHand() != tc.onHand {
			t.Errorf("%s: stock fold %+v, want on hand %d", tc.name, f, tc.onHand)
		}
		o := audit.FoldOrders(orders, audit.ByTime, tc.skew)["o-1"]
		if o == nil || !o.Found || o.Order.Final() != tc.orderFinal {
			t.Errorf("%s: order fold %+v, final %v", tc.name, o, tc.orderFinal)
		}
	}
}
