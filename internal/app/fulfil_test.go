package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/lovoo/goka"
	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestFulfilOrder: FulfilOrder over gRPC and REST on the embedded broker.
// A partial shipment drops the SKU's stock at its location by exactly the
// units shipped, however often it is repeated, and leaves the rest held
// (PARTIALLY_FULFILLED); a fulfilment id reused for other lines is
// ALREADY_EXISTS, shipping more than a line holds FAILED_PRECONDITION, and
// shipping the rest ends the order FULFILLED with nothing held.
func TestFulfilOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s, stock := startLifecycleStack(t)
	asOf := time.Now().Add(-time.Minute)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: "SKU-FUL", Location: "WH-1", OnHand: 10, AsOf: asOf, Sequence: 1},
		inventory.StockLevel{SKU: "SKU-FUL/2", Location: "WH-1", OnHand: 4, AsOf: asOf, Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		if _, _, err := s.webAvailable("SKU-FUL/2"); err != nil {
			return err
		}
		_, _, err := s.webAvailable("SKU-FUL")
		return err
	})
	ctx := context.Background()
	o, err := s.orders.PlaceOrder(ctx, &pb.PlaceOrderRequest{OrderId: "ful-1", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: "SKU-FUL", Quantity: 5}, {Sku: "SKU-FUL/2", Quantity: 2}}})
	if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("place: %v %v", o, err)
	}
	// onHand waits until the SKU's state shows on-hand units at WH-1 and
	// the reservation's shipped units.
	onHand := func(sku string, want, shipped int64) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error {
			st, ok, err := stock.Get(sku)
			if err != nil || !ok {
				return fmt.Errorf("stock %s: %v %v", sku, ok, err)
			}
			var got int64
			for _, l := range st.Locations {
				if l.ID == "WH-1" {
					got += l.OnHand()
				}
			}
			var fulfilled int64
			for _, r := range st.Reservations {
				if strings.HasPrefix(r.ID, "ful-1:") {
					fulfilled = r.FulfilledUnits()
				}
			}
			if got != want || fulfilled != shipped {
				return fmt.Errorf("%s: %d on hand at WH-1 and %d shipped, want %d and %d", sku, got, fulfilled, want, shipped)
			}
			return nil
		})
	}

	first := &pb.FulfilOrderRequest{OrderId: "ful-1", FulfilmentId: "ship-1",
		Lines: []*pb.FulfilmentLine{{Sku: "SKU-FUL", Quantity: 2, Location: "WH-1"}}}
	f, err := s.orders.FulfilOrder(ctx, first)
	if err != nil || f.GetStatus() != pb.OrderStatus_ORDER_STATUS_PARTIALLY_FULFILLED {
		t.Fatalf("first shipment: %v %v", f, err)
	}
	if l := f.GetLines()[0]; l.GetStatus() != pb.LineStatus_LINE_STATUS_PARTIALLY_FULFILLED || l.GetFulfilledQuantity() != 2 {
		t.Fatalf("line after shipping 2 of 5: %v", l)
	}
	// Repeated (a client retry): the same answer, the stock drops once.
	for range 3 {
		if again, err := s.orders.FulfilOrder(ctx, first); err != nil || again.GetLines()[0].GetFulfilledQuantity() != 2 {
			t.Fatalf("repeat: %v %v", again, err)
		}
	}
	code, body := restPost(t, s, "/v1/orders/ful-1:fulfil", `{"fulfilmentId":"ship-1","lines":[{"sku":"SKU-FUL","quantity":"2","location":"WH-1"}]}`)
	if code != 200 || !strings.Contains(body, "ORDER_STATUS_PARTIALLY_FULFILLED") {
		t.Fatalf("REST repeat: %d %s", code, body)
	}
	onHand("SKU-FUL", 8, 2)
	if n, held, err := s.webAvailable("SKU-FUL"); err != nil || n != 5 || held != 3 {
		t.Errorf("after shipping 2 of 5: available %d reserved %d (%v); want 5 and 3", n, held, err)
	}
	// Redelivered behind the gateway (a producer retry, a replay): the saga
	// sends the shipment to the SKU again and the SKU applies it once. The
	// shipments below come after these on the order's partition, so the
	// final counts show it.
	redeliver := &pb.FulfilOrderCommand{OrderId: first.GetOrderId(), FulfilmentId: first.GetFulfilmentId(), Lines: first.GetLines()}
	emitFulfilCommands(t, s, redeliver, redeliver)

	// The id reused for other lines, more than the line holds, an unknown
	// order, a malformed line.
	_, err = s.orders.FulfilOrder(ctx, &pb.FulfilOrderRequest{OrderId: "ful-1", FulfilmentId: "ship-1",
		Lines: []*pb.FulfilmentLine{{Sku: "SKU-FUL", Quantity: 3, Location: "WH-1"}}})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("reused fulfilment id: %v, want AlreadyExists", err)
	}
	_, err = s.orders.FulfilOrder(ctx, &pb.FulfilOrderRequest{OrderId: "ful-1", FulfilmentId: "ship-2",
		Lines: []*pb.FulfilmentLine{{Sku: "SKU-FUL", Quantity: 4, Location: "WH-1"}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "holds 3 units not shipped") {
		t.Errorf("over-shipping: %v, want FailedPrecondition naming the 3 units held", err)
	}
	if code, body := restPost(t, s, "/v1/orders/nope:fulfil", `{"fulfilmentId":"s","lines":[{"sku":"A","quantity":"1","location":"WH-1"}]}`); code != 404 {
		t.Errorf("REST fulfilment of an unknown order: %d %s", code, body)
	}
	if code, body := restPost(t, s, "/v1/orders/ful-1:fulfil", `{"fulfilmentId":"s","lines":[{"sku":"SKU-FUL","quantity":"0","location":"WH-1"}]}`); code != 400 ||
		!strings.Contains(body, "quantity 0") {
		t.Errorf("REST fulfilment of 0 units: %d %s", code, body)
	}
	// From where the SKU has no stock: refused before it is published.
	for _, l := range []*pb.FulfilmentLine{{Sku: "SKU-FUL", Quantity: 1, Location: "WH-TYPO"}, {Sku: "SKU-FUL", Quantity: 1, Location: "WH-1", Area: "floor"}} {
		_, err = s.orders.FulfilOrder(ctx, &pb.FulfilOrderRequest{OrderId: "ful-1", FulfilmentId: "ship-x", Lines: []*pb.FulfilmentLine{l}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "no stock record") {
			t.Errorf("shipping from %s %q: %v, want FailedPrecondition", l.GetLocation(), l.GetArea(), err)
		}
	}

	// The rest ships, over REST, from two locations' worth of lines.
	code, body = restPost(t, s, "/v1/orders/ful-1:fulfil", `{"fulfilmentId":"ship-3","lines":[`+
		`{"sku":"SKU-FUL","quantity":"3","location":"WH-1"},{"sku":"SKU-FUL/2","quantity":"2","location":"WH-1"}]}`)
	if code != 200 || !strings.Contains(body, "ORDER_STATUS_FULFILLED") {
		t.Fatalf("REST last shipment: %d %s", code, body)
	}
	onHand("SKU-FUL", 5, 5)
	onHand("SKU-FUL/2", 2, 2)
	if n, held, err := s.webAvailable("SKU-FUL"); err != nil || n != 5 || held != 0 {
		t.Errorf("after shipping everything: available %d reserved %d (%v); want 5 and 0", n, held, err)
	}
	// A fulfilled order holds nothing to cancel or extend.
	if c, err := s.orders.CancelOrder(ctx, &pb.CancelOrderRequest{OrderId: "ful-1"}); err != nil || c.GetStatus() != pb.OrderStatus_ORDER_STATUS_FULFILLED {
		t.Errorf("cancel after fulfilment: %v %v", c.GetStatus(), err)
	}
	if _, err := s.orders.ExtendOrder(ctx, &pb.ExtendOrderRequest{OrderId: "ful-1", ReservationTtl: durationpb.New(time.Hour)}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("extension after fulfilment: %v, want FailedPrecondition", err)
	}
	got, err := s.orders.GetOrder(ctx, &pb.GetOrderRequest{OrderId: "ful-1"})
	if err != nil || len(got.GetFulfilments()) != 2 || got.GetFulfilments()[1].GetFulfilmentId() != "ship-3" {
		t.Errorf("GetOrder: fulfilments %v (%v); want ship-1 and ship-3", got.GetFulfilments(), err)
	}
}

// emitFulfilCommands publishes fulfil commands straight to the orders
// topic, keyed by order id, as the gateway does.
func emitFulfilCommands(t *testing.T, s *orderStack, cmds ...*pb.FulfilOrderCommand) {
	t.Helper()
	em, err := goka.NewEmitter(s.k.Brokers, schema.Orders, schema.BytesCodec, s.k.LowLatencyEmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Finish()
	for _, c := range cmds {
		b, err := codecs.MarshalDeterministic(&pb.OrderCommand{Command: &pb.OrderCommand_Fulfil{Fulfil: c}})
		if err != nil {
			t.Fatal(err)
		}
		if err := em.EmitSync(c.GetOrderId(), b); err != nil {
			t.Fatal(err)
		}
	}
}
