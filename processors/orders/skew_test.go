package orders_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// An order tick more than the allowed skew ahead of its message's
// timestamp is dead-lettered with the reason and changes nothing: at 2199
// it would time out or expire the order long before its deadline. A tick
// within the skew applies.
func TestFarFutureOrderTickIsDeadLettered(t *testing.T) {
	const skew = 5 * time.Minute
	h := startSkew(t, skew)
	h.send(threeLines("o-1"), at(1))
	before := h.raw("o-1")
	drain(h.changelog)
	drain(h.demand)

	far := time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tick := range []inventory.OrderTick{{OrderID: "o-1", At: far}, {OrderID: "o-1", At: at(2).Add(skew + time.Nanosecond)}} {
		h.gkt.Consume(string(schema.Orders), "o-1", encodeCommand(t, tick), tester.WithTime(at(2)))
		dead := drain(h.dead)
		if len(dead) != 1 {
			t.Fatalf("tick at %s: dead-lettered %d messages, want 1", tick.At, len(dead))
		}
		dl, _ := dead[0].value.(*pb.DeadLetter)
		if r := dl.GetReason(); !strings.Contains(r, "tick at") || !strings.Contains(r, "after the message time") || !strings.Contains(r, skew.String()) {
			t.Errorf("tick at %s: reason %q does not name the tick time, the message time and the skew", tick.At, r)
		}
		if got := h.raw("o-1"); !bytes.Equal(got, before) {
			t.Fatalf("tick at %s changed the order: %+v", tick.At, h.order("o-1"))
		}
		if d := drain(h.demand); len(d) != 0 {
			t.Fatalf("tick at %s sent %v", tick.At, d)
		}
		drain(h.changelog)
	}
	// Within the skew: the deadline (at(31)) passes and the order fails.
	h.send(inventory.OrderTick{OrderID: "o-1", At: at(29).Add(skew)}, at(29))
	if o := h.order("o-1"); o.Status != inventory.OrderRejected {
		t.Fatalf("order %v after a tick past its deadline within the skew, want rejected", o.Status)
	}
}

// A command or an outcome whose message has no timestamp (Kafka's -1,
// which sarama reads as the zero time) is dead-lettered as a bad
// timestamp, not as a tick from the future, and changes nothing: the
// message time is the saga's clock.
func TestOrderMessageWithoutTimeIsBadTimestamp(t *testing.T) {
	h := startSkew(t, 5*time.Minute)
	h.send(threeLines("o-1"), at(1))
	before := h.raw("o-1")
	drain(h.changelog)
	drain(h.demand)
	o := h.order("o-1")
	for _, in := range []struct {
		topic goka.Stream
		value []byte
	}{
		{schema.Orders, encodeCommand(t, inventory.OrderTick{OrderID: "o-1", At: at(2)})},
		{schema.Orders, encodeCommand(t, inventory.CancelOrder{OrderID: "o-1"})},
		{schema.Outcomes, marshal(t, codecs.OutcomeToProto(inventory.Outcome{ReservationID: o.Lines[0].ReservationID, OrderID: "o-1",
			SKU: o.Lines[0].SKU, Quantity: o.Lines[0].Quantity, Accepted: true, DecidedAt: at(2)}))},
	} {
		h.gkt.Consume(string(in.topic), "o-1", in.value, tester.WithTime(time.Time{}))
		dead := drain(h.dead)
		if len(dead) != 1 {
			t.Fatalf("%s: dead-lettered %d messages, want 1", in.topic, len(dead))
		}
		dl, _ := dead[0].value.(*pb.DeadLetter)
		if c := schema.ClassifyReason(dl.GetReason()); c != schema.ReasonBadTimestamp {
			t.Errorf("reason %q (class %q), want %s", dl.GetReason(), c, schema.ReasonBadTimestamp)
		}
		if got := h.raw("o-1"); !bytes.Equal(got, before) {
			t.Fatalf("changed the order: %+v", h.order("o-1"))
		}
		if d := drain(h.demand); len(d) != 0 {
			t.Fatalf("sent %v", d)
		}
	}
}
