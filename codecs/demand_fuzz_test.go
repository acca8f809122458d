package codecs_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// FuzzDecodeDemandEvent: DecodeDemandEvent never panics, fails only with
// ErrMalformed and no event, whatever it accepts the domain can validate and
// decide without panicking, and it re-encodes to a fixed point.
func FuzzDecodeDemandEvent(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, ev := range demandCases() {
		f.Add(encodeDemand(f, ev))
	}
	f.Add(mustMarshal(f, &pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
		ReservationId: "o-1:1", OrderId: "o-1", Sku: sku, Quantity: 1, Channel: "web", Ttl: &durationpb.Duration{Seconds: 315576000000}}}}))
	f.Add(mustMarshal(f, &pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
		ReservationId: "o-1:1", OrderId: "o-1", Sku: sku, Quantity: 1, Channel: "web", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}}}}))
	f.Add(mustMarshal(f, &pb.DemandEvent{Event: &pb.DemandEvent_Fulfilled{Fulfilled: &pb.ReservationFulfilled{
		ReservationId: "r-held", Sku: sku, Location: "WH-1", FulfilledAt: &timestamppb.Timestamp{Seconds: -62135596800}}}}))
	f.Add(mustMarshal(f, &pb.DemandEvent{Event: &pb.DemandEvent_Released{Released: &pb.ReservationReleased{ReservationId: "r-held", Sku: sku, Reason: 2}}}))
	f.Add(mustMarshal(f, &pb.DemandEvent{Event: &pb.DemandEvent_Released{}}))
	state, _ := demandState(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := codecs.DecodeDemandEvent(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			if ev != nil {
				t.Fatalf("event %#v returned with error %v", ev, err)
			}
			return
		}
		if verr := ev.Validate(); verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
			t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
		}
		// Deciding whatever got through must not panic, and a refusal is an
		// invalid event, never anything else.
		for _, now := range []time.Time{at(50), at(7200)} {
			if _, _, _, derr := inventory.Demand(state, ev, demandChannels, now); derr != nil && !errors.Is(derr, inventory.ErrInvalidEvent) {
				t.Fatalf("Demand(%#v) = %v, does not wrap ErrInvalidEvent", ev, derr)
			}
		}
		enc := encodeDemand(t, ev)
		ev2, err := codecs.DecodeDemandEvent(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", ev, enc, err)
		}
		if !reflect.DeepEqual(ev2, ev) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", ev, ev2)
		}
		if enc2 := encodeDemand(t, ev2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzDecodeOutcome: DecodeOutcome never panics, fails only with
// ErrMalformed, returns only outcomes with a valid reservation id, the saga
// folds any of them without panicking, and it re-encodes to a fixed point.
func FuzzDecodeOutcome(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, o := range outcomeCases(f) {
		f.Add(encodeOutcome(f, o))
	}
	f.Add(mustMarshal(f, &pb.ReservationOutcome{ReservationId: "o-1:1", DecidedAt: &timestamppb.Timestamp{Seconds: -62135596800}}))
	f.Add(mustMarshal(f, &pb.ReservationOutcome{ReservationId: "o-1:1", OrderId: "o-1", Accepted: true, Reason: 3}))
	orders := sagaOrders(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := codecs.DecodeOutcome(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		if err := inventory.ValidateRef("reservation_id", o.ReservationID); err != nil {
			t.Fatalf("accepted outcome %#v with an invalid reservation id: %v", o, err)
		}
		for _, ord := range orders {
			if _, _, _, aerr := inventory.ApplyOrder(ord, ord.ID != "", o, at(5)); aerr != nil && !errors.Is(aerr, inventory.ErrInvalidEvent) {
				t.Fatalf("ApplyOrder(%#v) = %v, does not wrap ErrInvalidEvent", o, aerr)
			}
		}
		enc := encodeOutcome(t, o)
		o2, err := codecs.DecodeOutcome(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", o, enc, err)
		}
		if !reflect.DeepEqual(o2, o) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", o, o2)
		}
		if enc2 := encodeOutcome(t, o2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzDecodeOrderCommand: DecodeOrderCommand never panics, fails only with
// ErrMalformed, returns the id of the command it decoded, accepts only tick
// times inside the domain's range, the saga folds any accepted command
// without panicking, and it re-encodes to a fixed point.
func FuzzDecodeOrderCommand(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, in := range []any{
		placeOrder("o-1", line("A", 2), line("B", 1)),
		placeOrder("o-1", line("A", 2), line("A", 1)),
		inventory.PlaceOrder{OrderID: "o-1"},
		inventory.CancelOrder{OrderID: "o-1"},
		inventory.OrderTick{OrderID: "o-1", At: at(31)},
		inventory.OrderTick{OrderID: "o-1", At: at(0)},
		inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: at(3600)},
		inventory.ExtendOrder{OrderID: "o-1"},
	} {
		f.Add(encodeCommand(f, in))
	}
	f.Add(mustMarshal(f, &pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: "o-1"}}}))
	f.Add(mustMarshal(f, &pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: "o-1", At: &timestamppb.Timestamp{Seconds: 7258118400}}}}))
	f.Add(mustMarshal(f, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: &pb.PlaceOrderCommand{OrderId: "o-1",
		Lines: []*pb.OrderLine{{}, {Sku: "A", Quantity: -1}}, ReservationTtl: &durationpb.Duration{Seconds: 1 << 40}}}}))
	f.Add(mustMarshal(f, &pb.OrderCommand{Command: &pb.OrderCommand_Cancel{}}))
	orders := sagaOrders(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, id, err := codecs.DecodeOrderCommand(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		switch c := in.(type) {
		case inventory.PlaceOrder:
			if id != c.OrderID {
				t.Fatalf("id %q for place %q", id, c.OrderID)
			}
			if verr := c.Validate(); verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
			}
		case inventory.CancelOrder:
			if id != c.OrderID {
				t.Fatalf("id %q for cancel %q", id, c.OrderID)
			}
		case inventory.ExtendOrder:
			if id != c.OrderID {
				t.Fatalf("id %q for extension %q", id, c.OrderID)
			}
		case inventory.OrderTick:
			if id != c.OrderID {
				t.Fatalf("id %q for tick %q", id, c.OrderID)
			}
			if verr := inventory.ValidateTime("tick", c.At); verr != nil {
				t.Fatalf("accepted tick at %v outside the domain: %v", c.At, verr)
			}
		default:
			t.Fatalf("decoded %T", in)
		}
		for _, ord := range orders {
			_, _, _, aerr := inventory.ApplyOrder(ord, ord.ID != "", in, at(5))
			if aerr != nil && !errors.Is(aerr, inventory.ErrInvalidEvent) && !errors.Is(aerr, inventory.ErrOrderConflict) {
				t.Fatalf("ApplyOrder(%#v) = %v, wraps neither ErrInvalidEvent nor ErrOrderConflict", in, aerr)
			}
		}
		enc := encodeCommand(t, in)
		in2, id2, err := codecs.DecodeOrderCommand(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", in, enc, err)
		}
		if id2 != id || !reflect.DeepEqual(in2, in) {
			t.Fatalf("unstable round trip\nfirst:  %q %#v\nsecond: %q %#v", id, in, id2, in2)
		}
		if enc2 := encodeCommand(t, in2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzOrderDecode: the saga table codec never panics on stored bytes, names
// the message type when it fails, and a decoded order re-encodes to a fixed
// point.
func FuzzOrderDecode(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, o := range sagaOrders(f) {
		data, err := codecs.Order{}.Encode(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// Values the saga never writes: invalid durations and timestamps, a
	// placed_at that reads as the zero time, empty lines.
	f.Add(mustMarshal(f, &pb.Order{OrderId: "o", ReservationTtl: &durationpb.Duration{Seconds: 5, Nanos: -3},
		PlacedAt: &timestamppb.Timestamp{Seconds: -62135596800}, DecideBy: &timestamppb.Timestamp{Seconds: 1 << 62, Nanos: -7},
		Lines: []*pb.OrderLineState{{}, {Sku: "A", Status: 9}}}))
	f.Add(mustMarshal(f, &pb.Order{ReservationTtl: &durationpb.Duration{Seconds: -1 << 62}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := codecs.Order{}.Decode(data)
		if err != nil {
			if v != nil {
				t.Fatalf("value %#v returned with error %v", v, err)
			}
			if !strings.Contains(err.Error(), "skuflow.v1.Order") {
				t.Fatalf("error %q does not name the message type", err)
			}
			return
		}
		o, ok := v.(inventory.Order)
		if !ok {
			t.Fatalf("Decode returned %T", v)
		}
		// The saga must not panic on any stored order.
		for _, in := range []any{inventory.CancelOrder{OrderID: o.ID}, inventory.OrderTick{OrderID: o.ID, At: at(100)},
			placeOrder("o-1", line("A", 1)), inventory.Outcome{ReservationID: "o-1:1", OrderID: o.ID, Accepted: true}} {
			_, _, _, _ = inventory.ApplyOrder(o, true, in, at(100))
		}
		enc, err := codecs.Order{}.Encode(o)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", o, err)
		}
		v2, err := codecs.Order{}.Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", o, enc, err)
		}
		if !reflect.DeepEqual(v2, o) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", o, v2)
		}
		enc2, err := codecs.Order{}.Encode(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}
