package orders_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/orders"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

const (
	ttl     = 15 * time.Minute
	timeout = 30 * time.Second
)

func place(id string, lines ...inventory.OrderLine) inventory.PlaceOrder {
	return inventory.PlaceOrder{OrderID: id, Channel: "web", Lines: lines, ReservationTTL: ttl, DecisionTimeout: timeout}
}

func line(sku string, qty int64) inventory.OrderLine {
	return inventory.OrderLine{SKU: sku, Quantity: qty}
}

// threeLines is the order most tests place: three SKUs, so a failure can
// come while one line is accepted and one is still undecided.
func threeLines(id string) inventory.PlaceOrder {
	return place(id, line("SKU-A", 2), line("SKU-B", 1), line("SKU-C", 3))
}

// saga is the orders processor on goka's tester with the pure rule beside
// it: every message goes to both, and after each one the table bytes, the
// demand messages and the dead letters must be what inventory.ApplyOrder
// gives.
type saga struct {
	t                       *testing.T
	gkt                     *tester.Tester
	demand, dead, changelog *tester.QueueTracker
	cmds, outs              *tester.QueueTracker
	model                   map[string]inventory.Order
}

func start(t *testing.T) *saga { return startSkew(t, 0) }

// startSkew is start with a maximum event skew (0: no limit).
func startSkew(t *testing.T, skew time.Duration) *saga {
	t.Helper()
	gkt := tester.New(t)
	p, err := orders.New(nil, nil, skew, goka.WithTester(gkt))
	if err != nil {
		t.Fatalf("orders.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("processor Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("processor did not stop within 10s")
		}
	})
	return &saga{
		t: t, gkt: gkt,
		demand:    gkt.NewQueueTracker(string(schema.Demand)),
		dead:      gkt.NewQueueTracker(string(schema.DeadLetter)),
		changelog: gkt.NewQueueTracker(string(schema.OrdersTable)),
		cmds:      gkt.NewQueueTracker(string(schema.Orders)),
		outs:      gkt.NewQueueTracker(string(schema.Outcomes)),
		model:     map[string]inventory.Order{},
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	data, err := codecs.MarshalDeterministic(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return data
}

func encodeCommand(t testing.TB, in any) []byte {
	t.Helper()
	switch c := in.(type) {
	case inventory.PlaceOrder:
		return marshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(c)}})
	case inventory.CancelOrder:
		return marshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Cancel{Cancel: &pb.CancelOrderCommand{OrderId: c.OrderID}}})
	case inventory.OrderTick:
		return marshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: c.OrderID, At: timestamppb.New(c.At)}}})
	case inventory.ExtendOrder:
		return marshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Extend{Extend: codecs.ExtendOrderToProto(c)}})
	}
	t.Fatalf("no command for %T", in)
	return nil
}

func encodeDemand(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	env, err := codecs.DemandEventToProto(ev)
	if err != nil {
		t.Fatal(err)
	}
	return marshal(t, env)
}

type message struct {
	key   string
	value any
}

func drain(q *tester.QueueTracker) []message {
	var out []message
	for {
		k, v, ok := q.Next()
		if !ok {
			return out
		}
		out = append(out, message{k, v})
	}
}

// raw is the table's stored bytes for id (nil without a value).
func (h *saga) raw(id string) []byte {
	h.t.Helper()
	st, err := h.gkt.StorageBuilder()(string(schema.OrdersTable), 0)
	if err != nil {
		h.t.Fatalf("table storage: %v", err)
	}
	v, err := st.Get(id)
	if err != nil {
		h.t.Fatalf("table get %q: %v", id, err)
	}
	return bytes.Clone(v)
}

// order is the table's value for id.
func (h *saga) order(id string) inventory.Order {
	h.t.Helper()
	v, ok := h.gkt.TableValue(schema.OrdersTable, id).(inventory.Order)
	if !ok {
		h.t.Fatalf("no order %q in the table", id)
	}
	return v
}

// send feeds a saga input to the processor and the model and checks the
// processor did exactly what the rule says: the same table bytes, one table
// write if the order changed, the same demand messages keyed by SKU, no
// dead letter. It returns the effects.
func (h *saga) send(in any, ts time.Time) inventory.OrderEffects {
	h.t.Helper()
	var id string
	var topic goka.Stream
	var value []byte
	at := ts
	switch c := in.(type) {
	case inventory.PlaceOrder:
		id, topic, value = c.OrderID, schema.Orders, encodeCommand(h.t, c)
	case inventory.CancelOrder:
		id, topic, value = c.OrderID, schema.Orders, encodeCommand(h.t, c)
	case inventory.ExtendOrder:
		id, topic, value = c.OrderID, schema.Orders, encodeCommand(h.t, c)
	case inventory.OrderTick:
		id, topic, value, at = c.OrderID, schema.Orders, encodeCommand(h.t, c), c.At
	case inventory.Outcome:
		id, topic, value = c.OrderID, schema.Outcomes, marshal(h.t, codecs.OutcomeToProto(c))
	default:
		h.t.Fatalf("no input %T", in)
	}
	cur, found := h.model[id]
	next, eff, res, err := inventory.ApplyOrder(cur, found, in, at)
	if err != nil {
		h.t.Fatalf("model refuses %#v: %v", in, err)
	}
	if res.Changed {
		h.model[id] = next
	}
	h.gkt.Consume(string(topic), id, value, tester.WithTime(ts))

	if d := drain(h.dead); len(d) != 0 {
		h.t.Fatalf("%T: dead-lettered %v", in, d)
	}
	// A change is one table write; an input that changes nothing may
	// rewrite the unchanged value (processors.Store heals a changelog left
	// behind by a crash), never write anything else.
	writes := drain(h.changelog)
	if res.Changed && len(writes) != 1 {
		h.t.Errorf("%T: %d table writes, want 1", in, len(writes))
	}
	if len(writes) > 1 {
		h.t.Errorf("%T: %d table writes for one input", in, len(writes))
	}
	if _, ok := h.model[id]; ok {
		want, err := codecs.Order{}.Encode(h.model[id])
		if err != nil {
			h.t.Fatal(err)
		}
		if got := h.raw(id); !bytes.Equal(got, want) {
			h.t.Fatalf("%T: table holds\n%#v\nwant\n%#v", in, h.order(id), h.model[id])
		}
		for _, w := range writes {
			if w.key != id || !reflect.DeepEqual(w.value, h.model[id]) {
				h.t.Errorf("%T: wrote %q = %#v, want %q = %#v", in, w.key, w.value, id, h.model[id])
			}
		}
	} else if len(writes) != 0 {
		h.t.Errorf("%T: wrote %v for an order that does not exist", in, writes)
	}
	var want []inventory.Event
	for _, r := range eff.Requests {
		want = append(want, r)
	}
	for _, r := range eff.Releases {
		want = append(want, r)
	}
	for _, x := range eff.Extensions {
		want = append(want, x)
	}
	got := drain(h.demand)
	if len(got) != len(want) {
		h.t.Fatalf("%T: %d demand messages, want %d: %v", in, len(got), len(want), decodeAll(h.t, got))
	}
	for i, m := range got {
		b, ok := m.value.([]byte)
		if !ok {
			h.t.Fatalf("demand message is %T", m.value)
		}
		if !bytes.Equal(b, encodeDemand(h.t, want[i])) {
			h.t.Errorf("%T: demand message %d is %v, want %#v", in, i, decodeAll(h.t, got[i:i+1]), want[i])
		}
		if m.key != want[i].EventSKU() {
			h.t.Errorf("%T: demand message %d keyed %q, want the sku %q", in, i, m.key, want[i].EventSKU())
		}
	}
	return eff
}

func decodeAll(t *testing.T, ms []message) []string {
	var out []string
	for _, m := range ms {
		ev, err := codecs.DecodeDemandEvent(m.value.([]byte))
		if err != nil {
			t.Fatalf("demand message does not decode: %v", err)
		}
		out = append(out, fmt.Sprintf("%s: %#v", m.key, ev))
	}
	return out
}

// expectQuietAfter sends in and fails if anything at all happened.
func (h *saga) expectQuietAfter(what string, in any, ts time.Time, id string) {
	h.t.Helper()
	before := h.raw(id)
	eff := h.send(in, ts)
	if len(eff.Requests)+len(eff.Releases)+len(eff.Extensions) != 0 {
		h.t.Errorf("%s: effects %+v, want none", what, eff)
	}
	if !bytes.Equal(h.raw(id), before) {
		h.t.Errorf("%s: table bytes changed", what)
	}
}

func accepted(o inventory.Order, i int) inventory.Outcome {
	l := o.Lines[i]
	return inventory.Outcome{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Quantity: l.Quantity, Accepted: true, DecidedAt: at(1)}
}

func rejected(o inventory.Order, i int, r inventory.RejectReason) inventory.Outcome {
	l := o.Lines[i]
	return inventory.Outcome{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Quantity: l.Quantity, Reason: r,
		Message: "not enough units available on web", DecidedAt: at(1)}
}

func lineStatuses(o inventory.Order) []inventory.LineStatus {
	var out []inventory.LineStatus
	for _, l := range o.Lines {
		out = append(out, l.Status)
	}
	return out
}

func TestPlaceRequestsOneReservationPerLine(t *testing.T) {
	h := start(t)
	eff := h.send(threeLines("o-1"), at(0))
	if len(eff.Requests) != 3 || len(eff.Releases) != 0 {
		t.Fatalf("effects %+v, want 3 requests", eff)
	}
	for i, r := range eff.Requests {
		l := threeLines("o-1").Lines[i]
		want := inventory.ReservationRequested{ReservationID: fmt.Sprintf("o-1:%d", i+1), OrderID: "o-1", SKU: l.SKU,
			Channel: "web", Quantity: l.Quantity, TTL: ttl}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("request %d = %#v, want %#v", i, r, want)
		}
	}
	o := h.order("o-1")
	if o.Status != inventory.OrderPending || !o.PlacedAt.Equal(at(0)) || !o.DecideBy.Equal(at(0).Add(timeout)) || o.ReservationTTL != ttl {
		t.Errorf("order %+v, want pending, placed at %v, decide by %v", o, at(0), at(0).Add(timeout))
	}
	if !slices.Equal(lineStatuses(o), []inventory.LineStatus{inventory.LinePending, inventory.LinePending, inventory.LinePending}) {
		t.Errorf("line statuses %v", lineStatuses(o))
	}
}

func TestAllAcceptedReserves(t *testing.T) {
	h := start(t)
	h.send(threeLines("o-1"), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 0), at(1))
	bo := accepted(o, 1)
	bo.Backorder = true
	h.send(bo, at(2))
	if got := h.order("o-1").Status; got != inventory.OrderPending {
		t.Fatalf("status %d after two of three lines, want pending", got)
	}
	if eff := h.send(accepted(o, 2), at(3)); len(eff.Requests)+len(eff.Releases) != 0 {
		t.Errorf("reserving emitted %+v", eff)
	}
	o = h.order("o-1")
	if o.Status != inventory.OrderReserved || o.Reason != "" {
		t.Errorf("order %+v, want reserved", o)
	}
	if !slices.Equal(lineStatuses(o), []inventory.LineStatus{inventory.LineAccepted, inventory.LineAccepted, inventory.LineAccepted}) {
		t.Errorf("line statuses %v", lineStatuses(o))
	}
	if !o.Lines[1].Backorder || o.Lines[0].Backorder {
		t.Errorf("backorder flags %v %v, want only line 2", o.Lines[0].Backorder, o.Lines[1].Backorder)
	}
}

// One rejected line rejects the order and releases every accepted line;
// undecided lines are marked and released when their acceptance comes.
func TestOneRejectedRejectsAndCompensates(t *testing.T) {
	h := start(t)
	h.send(threeLines("o-1"), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 0), at(1))
	eff := h.send(rejected(o, 1, inventory.RejectInsufficient), at(2))
	want := []inventory.ReservationReleased{{ReservationID: "o-1:1", SKU: "SKU-A", Reason: inventory.ReleaseCompensated}}
	if !reflect.DeepEqual(eff.Releases, want) || len(eff.Requests) != 0 {
		t.Errorf("effects %+v, want the release of line 1", eff)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderRejected || !strings.Contains(got.Reason, "line 2 (SKU-B)") || !strings.Contains(got.Reason, "not enough units") {
		t.Errorf("order %+v, want rejected naming line 2", got)
	}
	if !slices.Equal(lineStatuses(got), []inventory.LineStatus{inventory.LineReleased, inventory.LineRejected, inventory.LineRejected}) {
		t.Errorf("line statuses %v", lineStatuses(got))
	}
	if got.Lines[1].Reject != inventory.RejectInsufficient || got.Lines[1].Message == "" || got.Lines[2].Reject != inventory.RejectCancelled {
		t.Errorf("line reasons %+v", got.Lines)
	}
	// The undecided line's acceptance arrives later: released at once.
	eff = h.send(accepted(o, 2), at(3))
	if want := []inventory.ReservationReleased{{ReservationID: "o-1:3", SKU: "SKU-C", Reason: inventory.ReleaseCompensated}}; !reflect.DeepEqual(eff.Releases, want) {
		t.Errorf("late acceptance: effects %+v, want the release of line 3", eff)
	}
}

// An acceptance that arrives after the order ended (rejected by another
// line, cancelled, timed out) is released at once; a late rejection does
// nothing.
func TestLateOutcomesAfterTheOrderEnded(t *testing.T) {
	for name, end := range map[string]func(h *saga, o inventory.Order){
		"rejected":  func(h *saga, o inventory.Order) { h.send(rejected(o, 0, inventory.RejectNotSellable), at(2)) },
		"cancelled": func(h *saga, o inventory.Order) { h.send(inventory.CancelOrder{OrderID: o.ID}, at(2)) },
		"timed out": func(h *saga, o inventory.Order) { h.send(inventory.OrderTick{OrderID: o.ID, At: o.DecideBy}, at(99)) },
	} {
		t.Run(name, func(t *testing.T) {
			h := start(t)
			h.send(threeLines("o-1"), at(0))
			o := h.order("o-1")
			end(h, o)
			if st := h.order("o-1").Status; st == inventory.OrderPending || st == inventory.OrderReserved {
				t.Fatalf("order status %d, want ended", st)
			}
			eff := h.send(accepted(o, 1), at(40))
			if want := []inventory.ReservationReleased{{ReservationID: "o-1:2", SKU: "SKU-B", Reason: inventory.ReleaseCompensated}}; !reflect.DeepEqual(eff.Releases, want) {
				t.Errorf("late acceptance: effects %+v, want the release of line 2", eff)
			}
			h.expectQuietAfter("late rejection", rejected(o, 2, inventory.RejectInsufficient), at(41), "o-1")
			// A redelivered late acceptance releases again: releases are
			// idempotent on the SKU side, and the saga keeps no record of it.
			before := h.raw("o-1")
			if eff := h.send(accepted(o, 1), at(42)); len(eff.Releases) != 1 || !bytes.Equal(h.raw("o-1"), before) {
				t.Errorf("redelivered late acceptance: effects %+v", eff)
			}
			if got := h.order("o-1"); got.Lines[1].Status != inventory.LineRejected {
				t.Errorf("late line recorded as %+v", got.Lines[1])
			}
		})
	}
}

// Redelivery of any message changes nothing: same table bytes (at most a
// rewrite of the same value) and no emits, except that a re-placed pending
// order re-requests exactly its undecided lines and a redelivered
// acceptance of a line that holds nothing repeats its release.
func TestRedeliveryChangesNothing(t *testing.T) {
	h := start(t)
	p := threeLines("o-1")
	first := h.send(p, at(0))
	o := h.order("o-1")

	eff := h.send(p, at(5)) // redelivered: all three still undecided
	if !reflect.DeepEqual(eff.Requests, first.Requests) || len(eff.Releases) != 0 {
		t.Errorf("re-place of an undecided order: %+v, want the same three requests", eff)
	}
	h.send(accepted(o, 0), at(6))
	h.expectQuietAfter("duplicate acceptance", accepted(o, 0), at(7), "o-1")
	eff = h.send(p, at(8))
	if !reflect.DeepEqual(eff.Requests, first.Requests[1:]) || len(eff.Releases) != 0 {
		t.Errorf("re-place with line 1 decided: %+v, want requests for lines 2 and 3", eff)
	}
	h.expectQuietAfter("tick before the deadline", inventory.OrderTick{OrderID: "o-1", At: at(29)}, at(9), "o-1")
	h.send(rejected(o, 1, inventory.RejectInsufficient), at(10))
	for i, in := range []any{
		rejected(o, 1, inventory.RejectInsufficient),
		p,
		inventory.CancelOrder{OrderID: "o-1"},
		inventory.OrderTick{OrderID: "o-1", At: at(31)},
		inventory.OrderTick{OrderID: "o-1", At: at(3000)},
		rejected(o, 2, inventory.RejectInsufficient),
	} {
		h.expectQuietAfter(fmt.Sprintf("redelivery %d (%T) after rejection", i, in), in, at(20+i), "o-1")
	}
	// A redelivered acceptance of a line that no longer holds (released by
	// compensation, or refused and then decided anew by the SKU side) only
	// repeats that line's release, which the SKU side ignores if done.
	for i, idx := range []int{0, 1, 0} {
		before := h.raw("o-1")
		eff := h.send(accepted(o, idx), at(30+i))
		want := []inventory.ReservationReleased{{ReservationID: o.Lines[idx].ReservationID, SKU: o.Lines[idx].SKU, Reason: inventory.ReleaseCompensated}}
		if !reflect.DeepEqual(eff.Releases, want) || len(eff.Requests) != 0 {
			t.Errorf("acceptance of ended line %d: effects %+v, want %+v", idx+1, eff, want)
		}
		if !bytes.Equal(h.raw("o-1"), before) {
			t.Errorf("acceptance of ended line %d changed the table", idx+1)
		}
	}

	// A reserved order: every redelivery is a no-op.
	h.send(place("o-2", line("SKU-A", 1), line("SKU-B", 1)), at(0))
	o2 := h.order("o-2")
	h.send(accepted(o2, 0), at(1))
	h.send(accepted(o2, 1), at(2))
	if h.order("o-2").Status != inventory.OrderReserved {
		t.Fatal("o-2 not reserved")
	}
	for i, in := range []any{
		place("o-2", line("SKU-A", 1), line("SKU-B", 1)),
		accepted(o2, 0),
		accepted(o2, 1),
		inventory.OrderTick{OrderID: "o-2", At: at(31)},
	} {
		h.expectQuietAfter(fmt.Sprintf("redelivery %d (%T) after reservation", i, in), in, at(40+i), "o-2")
	}
	// A cancelled order: a second cancel is a no-op.
	h.send(inventory.CancelOrder{OrderID: "o-2"}, at(50))
	h.expectQuietAfter("second cancel", inventory.CancelOrder{OrderID: "o-2"}, at(51), "o-2")
	h.expectQuietAfter("re-place after cancel", place("o-2", line("SKU-A", 1), line("SKU-B", 1)), at(52), "o-2")
}

func TestCancelReservedReleasesAll(t *testing.T) {
	h := start(t)
	h.send(threeLines("o-1"), at(0))
	o := h.order("o-1")
	for i := range o.Lines {
		h.send(accepted(o, i), at(1+i))
	}
	eff := h.send(inventory.CancelOrder{OrderID: "o-1"}, at(10))
	var want []inventory.ReservationReleased
	for _, l := range o.Lines {
		want = append(want, inventory.ReservationReleased{ReservationID: l.ReservationID, SKU: l.SKU, Reason: inventory.ReleaseCancelled})
	}
	if !reflect.DeepEqual(eff.Releases, want) || len(eff.Requests) != 0 {
		t.Errorf("cancel: effects %+v, want releases %+v", eff, want)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderCancelled ||
		!slices.Equal(lineStatuses(got), []inventory.LineStatus{inventory.LineReleased, inventory.LineReleased, inventory.LineReleased}) {
		t.Errorf("order %+v, want cancelled with every line released", got)
	}
}

func TestCancelPendingReleasesAcceptedLines(t *testing.T) {
	h := start(t)
	h.send(threeLines("o-1"), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 1), at(1))
	eff := h.send(inventory.CancelOrder{OrderID: "o-1"}, at(2))
	if want := []inventory.ReservationReleased{{ReservationID: "o-1:2", SKU: "SKU-B", Reason: inventory.ReleaseCancelled}}; !reflect.DeepEqual(eff.Releases, want) {
		t.Errorf("cancel: effects %+v, want %+v", eff, want)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderCancelled || got.Lines[0].Reject != inventory.RejectCancelled || got.Lines[2].Reject != inventory.RejectCancelled {
		t.Errorf("order %+v, want cancelled with undecided lines marked cancelled", got)
	}
}

func TestDecisionDeadline(t *testing.T) {
	h := start(t)
	h.send(threeLines("o-1"), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 0), at(1))
	deadline := o.DecideBy
	h.expectQuietAfter("tick a nanosecond early", inventory.OrderTick{OrderID: "o-1", At: deadline.Add(-time.Nanosecond)}, at(2), "o-1")
	// The tick's own time counts, not the message's.
	h.expectQuietAfter("early tick delivered late", inventory.OrderTick{OrderID: "o-1", At: at(5)}, at(9999), "o-1")
	eff := h.send(inventory.OrderTick{OrderID: "o-1", At: deadline}, at(3))
	if want := []inventory.ReservationReleased{{ReservationID: "o-1:1", SKU: "SKU-A", Reason: inventory.ReleaseCompensated}}; !reflect.DeepEqual(eff.Releases, want) {
		t.Errorf("deadline: effects %+v, want %+v", eff, want)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderRejected || got.Lines[1].Reject != inventory.RejectTimeout || got.Lines[2].Reject != inventory.RejectTimeout ||
		!strings.Contains(got.Reason, "no decision") {
		t.Errorf("order %+v, want rejected with the undecided lines timed out", got)
	}
	// A reserved order's deadline does not undo it; an unknown order's tick
	// is ignored and creates nothing.
	h.send(place("o-2", line("SKU-A", 1)), at(0))
	h.send(accepted(h.order("o-2"), 0), at(1))
	h.expectQuietAfter("deadline of a reserved order", inventory.OrderTick{OrderID: "o-2", At: at(600)}, at(600), "o-2")
	h.send(inventory.OrderTick{OrderID: "o-404", At: at(3600)}, at(3600))
	if v := h.gkt.TableValue(schema.OrdersTable, "o-404"); v != nil {
		t.Errorf("a tick for an unknown order stored %v", v)
	}
}

type badCase struct {
	name   string
	topic  goka.Stream
	key    string
	value  []byte
	reason []string
}

// sendBad feeds one message and expects it dead-lettered and nothing else.
func (h *saga) sendBad(tc badCase) {
	h.t.Helper()
	before := h.raw("o-1")
	keys := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.OrdersTable)))
	msgTime := at(7)
	if tc.value == nil {
		h.gkt.Consume(string(tc.topic), tc.key, nil, tester.WithTime(msgTime))
	} else {
		h.gkt.Consume(string(tc.topic), tc.key, tc.value, tester.WithTime(msgTime))
	}
	var dls []*pb.DeadLetter
	for _, m := range drain(h.dead) {
		dl, ok := m.value.(*pb.DeadLetter)
		if !ok {
			h.t.Fatalf("dead letter is %T", m.value)
		}
		if m.key != tc.key {
			h.t.Errorf("dead letter keyed %q, want %q", m.key, tc.key)
		}
		dls = append(dls, dl)
	}
	if len(dls) != 1 {
		h.t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	for _, want := range tc.reason {
		if !strings.Contains(dl.GetReason(), want) {
			h.t.Errorf("reason %q does not mention %q", dl.GetReason(), want)
		}
	}
	if !bytes.Equal(dl.GetValue(), tc.value) || string(dl.GetKey()) != tc.key || dl.GetTopic() != string(tc.topic) || dl.GetGroup() != string(schema.OrdersGroup) {
		h.t.Errorf("dead letter %v, want the original message from %s", dl, tc.topic)
	}
	src := h.cmds
	if tc.topic == schema.Outcomes {
		src = h.outs
	}
	if want := src.Hwm() - 1; dl.GetOffset() != want {
		h.t.Errorf("dead letter offset %d, want %d", dl.GetOffset(), want)
	}
	if !dl.GetMessageTime().AsTime().Equal(msgTime) {
		h.t.Errorf("message_time %v", dl.GetMessageTime().AsTime())
	}
	if d := drain(h.demand); len(d) != 0 {
		h.t.Errorf("bad input emitted demand %v", decodeAll(h.t, d))
	}
	if c := drain(h.changelog); len(c) != 0 {
		h.t.Errorf("bad input wrote the table %d times", len(c))
	}
	if !bytes.Equal(h.raw("o-1"), before) {
		h.t.Error("bad input changed o-1's table bytes")
	}
	if got := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.OrdersTable))); !slices.Equal(got, keys) {
		h.t.Errorf("table keys %q, want %q", got, keys)
	}
}

func TestBadInputIsDeadLettered(t *testing.T) {
	o1 := threeLines("o-1")
	cmd := func(c *pb.OrderCommand) []byte { return marshal(t, c) }
	outcome := func(o *pb.ReservationOutcome) []byte { return marshal(t, o) }
	cases := []badCase{
		{"different order under the same id", schema.Orders, "o-1", encodeCommand(t, place("o-1", line("SKU-A", 2))),
			[]string{"already used for a different order", "o-1"}},
		{"same lines on another channel", schema.Orders, "o-1", encodeCommand(t, inventory.PlaceOrder{OrderID: "o-1", Channel: "marketplace",
			Lines: o1.Lines, ReservationTTL: ttl, DecisionTimeout: timeout}), []string{"already used for a different order"}},
		{"same lines with another ttl", schema.Orders, "o-1", encodeCommand(t, inventory.PlaceOrder{OrderID: "o-1", Channel: "web",
			Lines: o1.Lines, ReservationTTL: time.Hour, DecisionTimeout: timeout}), []string{"already used for a different order"}},
		{"garbage command", schema.Orders, "o-1", []byte{0xff, 0xff}, []string{"malformed", "OrderCommand"}},
		{"empty command", schema.Orders, "o-1", []byte{}, []string{"malformed", "no command set"}},
		{"command tombstone", schema.Orders, "o-1", nil, []string{"tombstone"}},
		{"command key differs from the order id", schema.Orders, "o-2", encodeCommand(t, o1), []string{"o-2", "o-1", "differs"}},
		{"order without lines", schema.Orders, "o-3", encodeCommand(t, place("o-3")), []string{"1 to 100 lines"}},
		{"order with a duplicate sku", schema.Orders, "o-3", encodeCommand(t, place("o-3", line("A", 1), line("A", 2))), []string{"appears twice"}},
		{"order with quantity 0", schema.Orders, "o-3", encodeCommand(t, place("o-3", line("A", 0))), []string{"quantity 0"}},
		{"order with a bad id", schema.Orders, "o 3", encodeCommand(t, place("o 3", line("A", 1))), []string{"order_id"}},
		{"order with a bad duration", schema.Orders, "o-3", cmd(&pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: &pb.PlaceOrderCommand{
			OrderId: "o-3", Channel: "web", Lines: []*pb.OrderLine{{Sku: "A", Quantity: 1}}, ReservationTtl: &durationpb.Duration{Seconds: -1, Nanos: 5},
			DecisionTimeout: durationpb.New(timeout)}}}), []string{"malformed", "reservation_ttl"}},
		{"tick outside the domain", schema.Orders, "o-1", encodeCommand(t, inventory.OrderTick{OrderID: "o-1", At: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}),
			[]string{"malformed", "outside"}},
		{"tick without a time", schema.Orders, "o-1", cmd(&pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: "o-1"}}}),
			[]string{"malformed", "missing"}},
		{"extension of an unknown order", schema.Orders, "o-404", encodeCommand(t, inventory.ExtendOrder{OrderID: "o-404", ExpiresAt: at(3600)}),
			[]string{"unknown order", "o-404"}},
		{"cancel with a bad order id", schema.Orders, "o 404", encodeCommand(t, inventory.CancelOrder{OrderID: "o 404"}), []string{"order_id"}},
		{"garbage outcome", schema.Outcomes, "o-1", []byte{0xff, 0xff}, []string{"malformed", "ReservationOutcome"}},
		{"outcome tombstone", schema.Outcomes, "o-1", nil, []string{"tombstone"}},
		{"outcome without a reservation id", schema.Outcomes, "o-1", outcome(&pb.ReservationOutcome{OrderId: "o-1", Accepted: true}),
			[]string{"malformed", "reservation_id"}},
		{"outcome with a bad time", schema.Outcomes, "o-1", outcome(&pb.ReservationOutcome{ReservationId: "o-1:1", OrderId: "o-1",
			DecidedAt: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}}), []string{"malformed", "decided_at"}},
		{"outcome for an unknown order", schema.Outcomes, "o-404", outcome(&pb.ReservationOutcome{ReservationId: "o-404:1", OrderId: "o-404",
			Accepted: true}), []string{"unknown order", "o-404"}},
		{"outcome without an order id", schema.Outcomes, "", outcome(&pb.ReservationOutcome{ReservationId: "o-1:1", Reason: 4}),
			[]string{"unknown order"}},
		{"outcome keyed by another order", schema.Outcomes, "o-2", outcome(&pb.ReservationOutcome{ReservationId: "o-1:1", OrderId: "o-1",
			Accepted: true}), []string{"o-2", "o-1", "differs"}},
		{"outcome for a reservation not of the order", schema.Outcomes, "o-1", outcome(&pb.ReservationOutcome{ReservationId: "o-1:9",
			OrderId: "o-1", Accepted: true}), []string{"o-1:9", "not a line"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.send(o1, at(0))
			h.send(accepted(h.order("o-1"), 0), at(1))
			h.sendBad(tc)
			// The saga keeps working.
			h.send(accepted(h.order("o-1"), 1), at(8))
			if got := h.order("o-1"); got.Lines[1].Status != inventory.LineAccepted {
				t.Errorf("valid outcome after bad input: %+v", got.Lines[1])
			}
		})
	}
}

// The group reads commands and outcomes, writes demand, and declares every
// topic it needs.
func TestTopology(t *testing.T) {
	g := orders.Define(nil, 0)
	for _, in := range []string{string(schema.Orders), string(schema.Outcomes)} {
		if !slices.Contains(g.InputStreams().Topics(), in) {
			t.Errorf("inputs %q lack %s", g.InputStreams().Topics(), in)
		}
	}
	for _, out := range []string{string(schema.Demand), string(schema.DeadLetter)} {
		if !slices.Contains(g.OutputStreams().Topics(), out) {
			t.Errorf("outputs %q lack %s", g.OutputStreams().Topics(), out)
		}
	}
	for _, e := range g.AllEdges() {
		if _, ok := schema.Lookup(e.Topic()); !ok {
			t.Errorf("topic %s of the group graph is not in schema.Topics", e.Topic())
		}
	}
}

// Random runs of places, outcomes, cancels, ticks and redeliveries of any
// of them, in any order: the processor matches the rule at every step
// (send checks it), and no units leak: every acceptance the saga saw is
// released unless its order is reserved, and a reserved order's lines are
// never released.
func TestRandomRedeliveryLeaksNothing(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			h := start(t)
			decision := map[string]bool{} // reservation id -> the SKU side's fixed answer
			requested := map[string]inventory.ReservationRequested{}
			acceptedSeen := map[string]bool{} // acceptances delivered to the saga
			releasedBy := map[string]bool{}   // releases the saga emitted
			var sent []any
			var ids []string
			skus := []string{"SKU-A", "SKU-B", "SKU-C", "SKU-D"}
			sec := 0
			deliver := func(in any) {
				sec++
				eff := h.send(in, at(sec))
				for _, r := range eff.Requests {
					requested[r.ReservationID] = r
					if _, ok := decision[r.ReservationID]; !ok {
						decision[r.ReservationID] = rng.IntN(4) != 0
					}
				}
				for _, r := range eff.Releases {
					releasedBy[r.ReservationID] = true
				}
				if o, ok := in.(inventory.Outcome); ok && o.Accepted {
					acceptedSeen[o.ReservationID] = true
				}
				sent = append(sent, in)
			}
			for range 150 {
				switch k := rng.IntN(10); {
				case k < 2 || len(ids) == 0:
					id := fmt.Sprintf("o-%d", len(ids))
					var lines []inventory.OrderLine
					for _, i := range rng.Perm(len(skus))[:1+rng.IntN(3)] {
						lines = append(lines, line(skus[i], int64(1+rng.IntN(3))))
					}
					ids = append(ids, id)
					deliver(place(id, lines...))
				case k < 6 && len(requested) > 0:
					keys := slices.Sorted(maps.Keys(requested))
					r := requested[keys[rng.IntN(len(keys))]]
					o := inventory.Outcome{ReservationID: r.ReservationID, OrderID: r.OrderID, SKU: r.SKU, Quantity: r.Quantity, DecidedAt: at(sec)}
					if decision[r.ReservationID] {
						o.Accepted = true
					} else {
						o.Reason, o.Message = inventory.RejectInsufficient, "not enough units available on web"
					}
					deliver(o)
				case k < 7:
					deliver(inventory.CancelOrder{OrderID: ids[rng.IntN(len(ids))]})
				case k < 8:
					deliver(inventory.OrderTick{OrderID: ids[rng.IntN(len(ids))], At: at(rng.IntN(sec + 60))})
				default:
					if len(sent) > 0 {
						deliver(sent[rng.IntN(len(sent))])
					}
				}
			}
			// The reconciler's deadline ticks end every order still pending.
			for _, id := range ids {
				deliver(inventory.OrderTick{OrderID: id, At: at(sec + 3600)})
			}
			statuses := map[inventory.OrderStatus]int{}
			for _, id := range ids {
				o := h.order(id)
				statuses[o.Status]++
				if o.Status == inventory.OrderPending {
					t.Errorf("order %s still pending after its deadline", id)
				}
				for _, l := range o.Lines {
					switch {
					case o.Status == inventory.OrderReserved && releasedBy[l.ReservationID]:
						t.Errorf("order %s is reserved but line %s was released", id, l.ReservationID)
					case o.Status != inventory.OrderReserved && acceptedSeen[l.ReservationID] && !releasedBy[l.ReservationID]:
						t.Errorf("order %s ended %d but accepted line %s was never released", id, o.Status, l.ReservationID)
					case o.Status == inventory.OrderReserved && l.Status != inventory.LineAccepted:
						t.Errorf("reserved order %s has line %+v", id, l)
					}
				}
			}
			t.Logf("%d orders: %d reserved, %d rejected, %d cancelled; %d acceptances, %d releases",
				len(ids), statuses[inventory.OrderReserved], statuses[inventory.OrderRejected], statuses[inventory.OrderCancelled],
				len(acceptedSeen), len(releasedBy))
		})
	}
}

// A reserved order's holds run out at their decision time plus the TTL: the
// reconciler's tick at that time (not a nanosecond before) records the
// order expired and releases every line; redelivery changes nothing, and
// a cancel afterwards leaves it expired.
func TestReservedOrderExpires(t *testing.T) {
	h := start(t)
	h.send(place("o-1", line("SKU-A", 2), line("SKU-B", 1)), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 0), at(1))
	late := accepted(o, 1)
	late.DecidedAt = at(5)
	h.send(late, at(5))
	o = h.order("o-1")
	if o.Status != inventory.OrderReserved || !o.Lines[0].ExpiresAt.Equal(at(1).Add(ttl)) || !o.Lines[1].ExpiresAt.Equal(at(5).Add(ttl)) {
		t.Fatalf("reserved order %+v, want expires_at = decided_at + ttl per line", o)
	}
	due := at(1).Add(ttl)
	if got := inventory.OrderDueAt(o); !got.Equal(due) {
		t.Errorf("due at %s, want %s", got, due)
	}
	h.expectQuietAfter("tick a nanosecond early", inventory.OrderTick{OrderID: "o-1", At: due.Add(-time.Nanosecond)}, at(10), "o-1")
	eff := h.send(inventory.OrderTick{OrderID: "o-1", At: due}, at(11))
	want := []inventory.ReservationReleased{{ReservationID: "o-1:1", SKU: "SKU-A", Reason: inventory.ReleaseExpired},
		{ReservationID: "o-1:2", SKU: "SKU-B", Reason: inventory.ReleaseExpired}}
	if !reflect.DeepEqual(eff.Releases, want) {
		t.Errorf("expiry released %+v, want %+v", eff.Releases, want)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderExpired || !slices.Equal(lineStatuses(got), []inventory.LineStatus{inventory.LineExpired, inventory.LineExpired}) ||
		!strings.Contains(got.Reason, "expired") {
		t.Errorf("order %+v, want expired with every line expired", got)
	}
	h.expectQuietAfter("redelivered tick", inventory.OrderTick{OrderID: "o-1", At: due}, at(12), "o-1")
	h.expectQuietAfter("cancel after expiry", inventory.CancelOrder{OrderID: "o-1"}, due.Add(time.Second), "o-1")
	h.expectQuietAfter("retry after expiry", place("o-1", line("SKU-A", 2), line("SKU-B", 1)), due.Add(time.Second), "o-1")
}

// A cancel whose time is past the hold expires the order instead.
func TestCancelAfterTheHoldRanOutExpires(t *testing.T) {
	h := start(t)
	h.send(place("o-1", line("SKU-A", 1)), at(0))
	h.send(accepted(h.order("o-1"), 0), at(1))
	eff := h.send(inventory.CancelOrder{OrderID: "o-1"}, at(1).Add(ttl))
	if got := h.order("o-1"); got.Status != inventory.OrderExpired || len(eff.Releases) != 1 || eff.Releases[0].Reason != inventory.ReleaseExpired {
		t.Errorf("late cancel: order %+v, effects %+v; want expired", got, eff)
	}
}

// A cancel that arrives before its place is remembered; the place is
// answered cancelled and requests nothing, however often it comes.
func TestCancelBeforePlace(t *testing.T) {
	h := start(t)
	h.send(inventory.CancelOrder{OrderID: "o-1"}, at(0))
	if got := h.order("o-1"); got.Status != inventory.OrderCancelled || got.Placed() {
		t.Fatalf("early cancel stored %+v, want a cancelled order without lines", got)
	}
	h.expectQuietAfter("duplicate cancel", inventory.CancelOrder{OrderID: "o-1"}, at(1), "o-1")
	eff := h.send(threeLines("o-1"), at(2))
	if len(eff.Requests)+len(eff.Releases) != 0 {
		t.Errorf("late place sent %+v", eff)
	}
	got := h.order("o-1")
	if got.Status != inventory.OrderCancelled || !got.SameOrder(threeLines("o-1")) ||
		!slices.Equal(lineStatuses(got), []inventory.LineStatus{inventory.LineRejected, inventory.LineRejected, inventory.LineRejected}) {
		t.Fatalf("late place: %+v, want cancelled with every line rejected", got)
	}
	for _, l := range got.Lines {
		if l.Reject != inventory.RejectCancelled || l.Message == "" {
			t.Errorf("line %+v, want rejected as cancelled with a message", l)
		}
	}
	h.expectQuietAfter("redelivered place", threeLines("o-1"), at(3), "o-1")
	h.expectQuietAfter("redelivered cancel", inventory.CancelOrder{OrderID: "o-1"}, at(4), "o-1")
	h.expectQuietAfter("tick", inventory.OrderTick{OrderID: "o-1", At: at(3600)}, at(3600), "o-1")
}

// ExtendOrder records the extension as pending on every held line and sends
// it to the line's SKU (again on redelivery); the expiry moves only with
// the SKU's accepted extension outcome (a redelivered one changes nothing),
// a refused one ends the order expired and releases every line; an
// extension of an expired order changes nothing.
func TestExtendOrder(t *testing.T) {
	h := start(t)
	h.send(place("o-1", line("SKU-A", 2), line("SKU-B", 1)), at(0))
	o := h.order("o-1")
	h.send(accepted(o, 0), at(1))
	h.send(accepted(o, 1), at(1))
	to := at(1).Add(ttl + time.Hour)
	eff := h.send(inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: to}, at(60))
	want := []inventory.ReservationExtended{{ReservationID: "o-1:1", OrderID: "o-1", SKU: "SKU-A", ExpiresAt: to},
		{ReservationID: "o-1:2", OrderID: "o-1", SKU: "SKU-B", ExpiresAt: to}}
	if !reflect.DeepEqual(eff.Extensions, want) {
		t.Fatalf("extension sent %+v, want %+v", eff.Extensions, want)
	}
	if got := h.order("o-1"); got.Status != inventory.OrderReserved || !inventory.OrderDueAt(got).Equal(at(1).Add(ttl)) ||
		!got.Lines[0].ExtendTo.Equal(to) || !got.Lines[1].ExtendTo.Equal(to) {
		t.Fatalf("extension not pending, or the expiry moved before the SKU confirmed it: %+v", got)
	}
	// Redelivered: the same expiries again, the table unchanged.
	before := h.raw("o-1")
	if eff := h.send(inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: to}, at(61)); !reflect.DeepEqual(eff.Extensions, want) || !bytes.Equal(h.raw("o-1"), before) {
		t.Errorf("redelivered extension: %+v", eff)
	}
	// The SKUs confirm: the expiry moves; a redelivered confirmation
	// changes nothing.
	for i, sku := range []string{"SKU-A", "SKU-B"} {
		ok := inventory.Outcome{ReservationID: fmt.Sprintf("o-1:%d", i+1), OrderID: "o-1", SKU: sku, Quantity: int64(2 - i), Accepted: true,
			DecidedAt: at(1), Extension: true, ExpiresAt: to}
		h.send(ok, at(62))
		h.expectQuietAfter("redelivered extension outcome", ok, at(62), "o-1")
	}
	if got := h.order("o-1"); !inventory.OrderDueAt(got).Equal(to) || got.Lines[0].ExtensionPending() || got.Lines[1].ExtensionPending() {
		t.Fatalf("confirmed extension: %+v", got)
	}
	// The old expiry passes without effect.
	h.expectQuietAfter("tick at the old expiry", inventory.OrderTick{OrderID: "o-1", At: at(1).Add(ttl)}, at(1).Add(ttl), "o-1")
	refused := inventory.Outcome{ReservationID: "o-1:2", OrderID: "o-1", SKU: "SKU-B", Quantity: 1, Reason: inventory.RejectReleased,
		Message: "no longer held", Extension: true}
	eff = h.send(refused, at(63))
	if got := h.order("o-1"); got.Status != inventory.OrderExpired || len(eff.Releases) != 2 {
		t.Fatalf("refused extension: order %+v, effects %+v", got, eff)
	}
	h.expectQuietAfter("extension of an expired order", inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: to.Add(time.Hour)}, at(64), "o-1")
}
