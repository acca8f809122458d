package codecs_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// demandChannels are the channels of the demand tests.
var demandChannels = inventory.Policies{Channels: []string{"web", "marketplace", "store-pickup"}}

func request(id, order string, qty int64, channel string, ttl time.Duration) inventory.ReservationRequested {
	return inventory.ReservationRequested{ReservationID: id, OrderID: order, SKU: sku, Channel: channel, Quantity: qty, TTL: ttl}
}

func shipTo(r inventory.ReservationRequested, region string) inventory.ReservationRequested {
	r.ShipTo = region
	return r
}

func released(id string, why inventory.ReleaseReason) inventory.ReservationReleased {
	return inventory.ReservationReleased{ReservationID: id, SKU: sku, Reason: why}
}

// encodeDemand is what the saga puts on the demand topic.
func encodeDemand(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	env, err := codecs.DemandEventToProto(ev)
	if err != nil {
		t.Fatalf("DemandEventToProto(%#v): %v", ev, err)
	}
	data, err := codecs.MarshalDeterministic(env)
	if err != nil {
		t.Fatalf("marshal %v: %v", env, err)
	}
	return data
}

// encodeCommand wraps a saga input in the orders topic envelope.
func encodeCommand(t testing.TB, in any) []byte {
	t.Helper()
	var env *pb.OrderCommand
	switch c := in.(type) {
	case inventory.PlaceOrder:
		env = &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(c)}}
	case inventory.CancelOrder:
		env = &pb.OrderCommand{Command: &pb.OrderCommand_Cancel{Cancel: &pb.CancelOrderCommand{OrderId: c.OrderID}}}
	case inventory.OrderTick:
		env = &pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: c.OrderID, At: timestamppb.New(c.At)}}}
	case inventory.ExtendOrder:
		env = &pb.OrderCommand{Command: &pb.OrderCommand_Extend{Extend: codecs.ExtendOrderToProto(c)}}
	default:
		t.Fatalf("no order command for %T", in)
	}
	return mustMarshal(t, env)
}

func encodeOutcome(t testing.TB, o inventory.Outcome) []byte {
	t.Helper()
	data, err := codecs.Outcome.Encode(codecs.OutcomeToProto(o))
	if err != nil {
		t.Fatalf("encode outcome %+v: %v", o, err)
	}
	return data
}

// demandState is a SKU with stock, a channel it may not be sold on, a
// sales cap and a backorder limit, and reservations in every status: held,
// held as a backorder, rejected for each reason a SKU gives, released,
// expired and fulfilled, plus cap usage. It returns the outcomes too.
func demandState(t testing.TB) (inventory.State, []inventory.Outcome) {
	t.Helper()
	s := applyAll(t,
		lvl("WH-1", 10, at(1), 1),
		sellable("marketplace", false, at(1)),
		salesCap("store-pickup", 3, at(0), at(3600), at(1)),
		backorder(5, at(1)),
	)
	evs := []struct {
		ev inventory.Event
		at time.Time
	}{
		{request("r-held", "o-1", 4, "web", time.Hour), at(10)},
		{request("r-big", "o-2", 20, "web", time.Hour), at(11)},            // insufficient
		{request("r-ns", "o-3", 1, "marketplace", time.Hour), at(12)},      // not sellable
		{request("r-cap", "o-4", 4, "store-pickup", time.Hour), at(13)},    // cap exceeded
		{request("r-pickup", "o-5", 2, "store-pickup", time.Hour), at(14)}, // uses the cap
		{request("r-rel", "o-6", 1, "web", time.Hour), at(15)},             // released below
		{request("r-exp", "o-7", 1, "web", time.Minute), at(16)},           // expires below
		{request("r-ful", "o-8", 1, "web", time.Hour), at(17)},             // fulfilled below
		{request("r-back", "o-9", 5, "web", time.Hour), at(18)},            // beyond stock: backorder
		{released("r-rel", inventory.ReleaseCancelled), at(20)},            // released
		{released("r-early", inventory.ReleaseCompensated), at(21)},        // before its request
		{inventory.ReservationFulfilled{ReservationID: "r-ful", SKU: sku, Location: "WH-1", FulfilledAt: at(22)}, at(23)},
		{request("r-late", "o-10", 1, "web", time.Hour), at(90)}, // expires r-exp first
	}
	var outs []inventory.Outcome
	for i, e := range evs {
		next, out, _, err := inventory.Demand(s, e.ev, demandChannels, e.at)
		if err != nil {
			t.Fatalf("demand event %d %#v: %v", i, e.ev, err)
		}
		s = next
		if out != nil {
			outs = append(outs, *out)
		}
	}
	return s, outs
}

func demandCases() map[string]inventory.Event {
	return map[string]inventory.Event{
		"request":                                  request("o-1:1", "o-1", 3, "web", 15*time.Minute),
		"request with sub-second ttl":              request("o-1:2", "o-1", inventory.MaxUnits, "store-pickup", 1500*time.Millisecond+7),
		"request with the longest ttl":             request("a.b_c-d:9", "a.b_c-d", 1, "web", inventory.MaxReservationTTL),
		"request without ttl (decodable, invalid)": request("o-2:1", "o-2", 1, "web", 0),
		"request with a negative ttl":              request("o-2:1", "o-2", -4, "web", -time.Second),
		"empty request":                            inventory.ReservationRequested{},
		"request with a ship-to region":            shipTo(request("o-3:1", "o-3", 2, "web", time.Minute), "US-CA"),
		"request with a malformed ship-to region":  shipTo(request("o-3:1", "o-3", 2, "web", time.Minute), "usa"),
		"release cancelled":                        released("o-1:1", inventory.ReleaseCancelled),
		"release expired":                          released("o-1:1", inventory.ReleaseExpired),
		"release compensated":                      released("o-1:1", inventory.ReleaseCompensated),
		"release without a reason":                 released("o-1:1", 0),
		"release with an unknown reason":           released("o-1:1", 99),
		"fulfilment":                               inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1", FulfilledAt: at(5)},
		"fulfilment from an area with nanos": inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "ST-1",
			Area: inventory.AreaBackroom, FulfilledAt: at(5).Add(123456789)},
		"fulfilment at the zero time": inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1"},
		"partial fulfilment": inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1", FulfilledAt: at(5),
			FulfilmentID: "f-1:2", Quantity: inventory.MaxUnits},
		"extension":                  inventory.ReservationExtended{ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, ExpiresAt: at(900).Add(7)},
		"extension at the zero time": inventory.ReservationExtended{ReservationID: "o-1:1", OrderID: "o-1", SKU: sku},
	}
}

func TestDemandEventRoundTrip(t *testing.T) {
	for name, want := range demandCases() {
		t.Run(name, func(t *testing.T) {
			data := encodeDemand(t, want)
			got, err := codecs.DecodeDemandEvent(data)
			if err != nil {
				t.Fatalf("DecodeDemandEvent: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the event\n got: %#v\nwant: %#v", got, want)
			}
			if again := encodeDemand(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
			for i := range 10 {
				if again := encodeDemand(t, want); !bytes.Equal(again, data) {
					t.Fatalf("encoding #%d gave different bytes:\n%x\n%x", i, again, data)
				}
			}
		})
	}
}

// Every valid kind of demand event survives the codec and stays valid.
func TestDemandEventRoundTripKeepsValidity(t *testing.T) {
	for _, ev := range []inventory.Event{
		request("o-1:1", "o-1", 3, "web", 15*time.Minute),
		shipTo(request("o-1:1", "o-1", 3, "web", 15*time.Minute), "GB-SCT"),
		released("o-1:1", inventory.ReleaseExpired),
		inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1", FulfilledAt: at(5)},
	} {
		if err := ev.Validate(); err != nil {
			t.Fatalf("fixture %#v invalid: %v", ev, err)
		}
		got, err := codecs.DecodeDemandEvent(encodeDemand(t, ev))
		if err != nil {
			t.Fatalf("DecodeDemandEvent: %v", err)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("decoded %#v is invalid: %v", got, err)
		}
	}
}

// A fulfilment time in another zone is the same instant, in UTC.
func TestDemandEventRoundTripZonedTime(t *testing.T) {
	zone := time.FixedZone("UTC+9", 9*60*60)
	ev := inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1", FulfilledAt: at(5).In(zone)}
	got, err := codecs.DecodeDemandEvent(encodeDemand(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := got.(inventory.ReservationFulfilled)
	if !ok {
		t.Fatalf("decoded %T", got)
	}
	if !f.FulfilledAt.Equal(at(5)) || f.FulfilledAt.Location() != time.UTC {
		t.Errorf("fulfilled_at %v, want %v in UTC", f.FulfilledAt, at(5))
	}
}

// Absent durations and timestamps decode to zero values, which the domain
// rejects; the codec does not validate.
func TestDecodeDemandEventMissingFields(t *testing.T) {
	for name, tc := range map[string]struct {
		env  *pb.DemandEvent
		want string
	}{
		"request without ttl": {&pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
			ReservationId: "o-1:1", OrderId: "o-1", Sku: sku, Quantity: 1, Channel: "web"}}}, "ttl 0s is outside"},
		"fulfilment without a time": {&pb.DemandEvent{Event: &pb.DemandEvent_Fulfilled{Fulfilled: &pb.ReservationFulfilled{
			ReservationId: "o-1:1", Sku: sku, Location: "WH-1"}}}, "fulfilled_at is missing"},
		"release without a reason": {&pb.DemandEvent{Event: &pb.DemandEvent_Released{Released: &pb.ReservationReleased{
			ReservationId: "o-1:1", Sku: sku}}}, "release reason 0"},
		"request without anything": {&pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{}}}, "reservation_id is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := codecs.DecodeDemandEvent(mustMarshal(t, tc.env))
			if err != nil {
				t.Fatalf("DecodeDemandEvent: %v", err)
			}
			err = ev.Validate()
			if !errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() of %#v = %v, want an invalid event mentioning %q", ev, err, tc.want)
			}
		})
	}
}

// badDurations are outside what google.protobuf.Duration allows.
func badDurations() []*durationpb.Duration {
	return []*durationpb.Duration{
		{Seconds: 315576000001},
		{Seconds: -315576000001},
		{Seconds: math.MaxInt64},
		{Seconds: 1, Nanos: -1},
		{Seconds: -1, Nanos: 1},
		{Nanos: 1e9},
		{Nanos: -1e9},
	}
}

type malformedCase struct {
	data []byte
	want string // in the error message
}

// garbageCases are bytes that are no protobuf message of type name.
func garbageCases(name string) map[string]malformedCase {
	return map[string]malformedCase{
		"truncated varint":  {[]byte{0xff, 0xff, 0xff}, "not a skuflow.v1." + name},
		"invalid wire type": {[]byte{0x0f}, "not a skuflow.v1." + name},
		"truncated length":  {[]byte{0x0a, 0x05, 0x01}, "not a skuflow.v1." + name},
		"text":              {[]byte("not protobuf at all"), "not a skuflow.v1." + name},
	}
}

func TestDecodeDemandEventMalformed(t *testing.T) {
	cases := garbageCases("DemandEvent")
	cases["nil"] = malformedCase{nil, "no event set"}
	cases["empty"] = malformedCase{[]byte{}, "no event set"}
	cases["empty envelope"] = malformedCase{mustMarshal(t, &pb.DemandEvent{}), "no event set"}
	cases["only an unknown field"] = malformedCase{[]byte{0x28, 0x01}, "no event set"} // field 5 varint
	cases["invalid utf-8 in a string"] = malformedCase{
		[]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}, "not a skuflow.v1.DemandEvent"} // requested.reservation_id = "\xff"
	for _, d := range badDurations() {
		id := fmt.Sprintf("%ds%dns", d.GetSeconds(), d.GetNanos())
		cases["ttl "+id] = malformedCase{mustMarshal(t, &pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
			ReservationId: "o-1:1", OrderId: "o-1", Sku: sku, Quantity: 1, Channel: "web", Ttl: d}}}), "ttl"}
	}
	for _, ts := range badTimestamps() {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["fulfilled_at "+id] = malformedCase{mustMarshal(t, &pb.DemandEvent{Event: &pb.DemandEvent_Fulfilled{Fulfilled: &pb.ReservationFulfilled{
			ReservationId: "o-1:1", Sku: sku, Location: "WH-1", FulfilledAt: ts}}}), "fulfilled_at"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := codecs.DecodeDemandEvent(tc.data)
			if err == nil {
				t.Fatalf("DecodeDemandEvent(%x) = %#v, want an error", tc.data, ev)
			}
			if ev != nil {
				t.Errorf("DecodeDemandEvent(%x) returned event %#v with the error", tc.data, ev)
			}
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDemandEventToProtoWrongType(t *testing.T) {
	for _, tc := range []struct {
		ev   inventory.Event
		name string
	}{
		{lvl("WH-1", 1, at(0), 1), "inventory.StockLevel"},
		{sellable("web", true, at(0)), "inventory.ChannelEligibility"},
		{nil, "<nil>"},
	} {
		env, err := codecs.DemandEventToProto(tc.ev)
		if err == nil {
			t.Errorf("DemandEventToProto(%T) = %v, want an error", tc.ev, env)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("DemandEventToProto(%T) error %q does not name the type %s", tc.ev, err, tc.name)
		}
	}
}

func outcomeCases(t testing.TB) map[string]inventory.Outcome {
	cases := map[string]inventory.Outcome{
		"accepted": {ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, Quantity: 3, Accepted: true, DecidedAt: at(1)},
		"backorder": {ReservationID: "o-1:2", OrderID: "o-1", SKU: sku, Quantity: inventory.MaxUnits, Accepted: true, Backorder: true,
			DecidedAt: at(1).Add(999999999)},
		"without a decision time": {ReservationID: "o-1:3", OrderID: "o-1", SKU: sku, Quantity: 1, Accepted: true},
		"only a reservation id":   {ReservationID: "x"},
		"unknown reason":          {ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, Reason: 42, Message: "?", DecidedAt: at(2)},
		"extension accepted": {ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, Quantity: 3, Accepted: true, DecidedAt: at(1),
			Extension: true, ExpiresAt: at(3600).Add(5)},
		"extension refused": {ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, Quantity: 3, Reason: inventory.RejectReleased,
			Message: "no longer held", Extension: true},
	}
	for _, r := range []inventory.RejectReason{inventory.RejectInsufficient, inventory.RejectNotSellable, inventory.RejectCapExceeded,
		inventory.RejectReleased, inventory.RejectTimeout, inventory.RejectCancelled} {
		cases[fmt.Sprintf("rejected %d", r)] = inventory.Outcome{ReservationID: "o-2:1", OrderID: "o-2", SKU: sku, Quantity: 2,
			Reason: r, Message: fmt.Sprintf("reason %d, ünïcode", r), DecidedAt: at(3)}
	}
	// And the outcomes the domain really produces.
	_, outs := demandState(t)
	for i, o := range outs {
		cases[fmt.Sprintf("decided %d (%s)", i, o.ReservationID)] = o
	}
	return cases
}

func TestOutcomeRoundTrip(t *testing.T) {
	for name, want := range outcomeCases(t) {
		t.Run(name, func(t *testing.T) {
			data := encodeOutcome(t, want)
			got, err := codecs.DecodeOutcome(data)
			if err != nil {
				t.Fatalf("DecodeOutcome: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the outcome\n got: %#v\nwant: %#v", got, want)
			}
			if again := encodeOutcome(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
			// The topic codec decodes the same bytes to the same message.
			v, err := codecs.Outcome.Decode(data)
			if err != nil {
				t.Fatalf("Outcome.Decode: %v", err)
			}
			if m, ok := v.(*pb.ReservationOutcome); !ok || !proto.Equal(m, codecs.OutcomeToProto(want)) {
				t.Errorf("Outcome.Decode = %v, want %v", v, codecs.OutcomeToProto(want))
			}
		})
	}
}

func TestOutcomeToProtoFields(t *testing.T) {
	m := codecs.OutcomeToProto(inventory.Outcome{ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, Quantity: 2,
		Reason: inventory.RejectCapExceeded, Message: "cap", DecidedAt: at(4)})
	if m.GetReason() != pb.RejectReason_REJECT_REASON_CAP_EXCEEDED || m.GetAccepted() || m.GetOrderId() != "o-1" ||
		m.GetReservationId() != "o-1:1" || m.GetSku() != sku || m.GetQuantity() != 2 || m.GetMessage() != "cap" ||
		!m.GetDecidedAt().AsTime().Equal(at(4)) {
		t.Errorf("OutcomeToProto = %v", m)
	}
	if m := codecs.OutcomeToProto(inventory.Outcome{ReservationID: "x"}); m.DecidedAt != nil {
		t.Errorf("zero decided_at encoded as %v, want unset", m.DecidedAt)
	}
	// The domain's reason numbers are the wire's.
	for r, want := range map[inventory.RejectReason]pb.RejectReason{
		inventory.RejectInsufficient: pb.RejectReason_REJECT_REASON_INSUFFICIENT,
		inventory.RejectNotSellable:  pb.RejectReason_REJECT_REASON_NOT_SELLABLE,
		inventory.RejectCapExceeded:  pb.RejectReason_REJECT_REASON_CAP_EXCEEDED,
		inventory.RejectReleased:     pb.RejectReason_REJECT_REASON_RELEASED,
		inventory.RejectTimeout:      pb.RejectReason_REJECT_REASON_TIMEOUT,
		inventory.RejectCancelled:    pb.RejectReason_REJECT_REASON_CANCELLED,
	} {
		if got := codecs.OutcomeToProto(inventory.Outcome{Reason: r}).GetReason(); got != want {
			t.Errorf("reason %d encoded as %v, want %v", r, got, want)
		}
	}
}

func TestDecodeOutcomeMalformed(t *testing.T) {
	cases := garbageCases("ReservationOutcome")
	cases["nil"] = malformedCase{nil, "reservation_id is empty"}
	cases["empty message"] = malformedCase{mustMarshal(t, &pb.ReservationOutcome{OrderId: "o-1", Accepted: true}), "reservation_id is empty"}
	cases["reservation id with a space"] = malformedCase{mustMarshal(t, &pb.ReservationOutcome{ReservationId: "o 1", OrderId: "o-1"}), "reservation_id"}
	cases["reservation id too long"] = malformedCase{mustMarshal(t, &pb.ReservationOutcome{
		ReservationId: strings.Repeat("r", inventory.MaxRefLength+1), OrderId: "o-1"}), "longer than"}
	for _, ts := range badTimestamps() {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["decided_at "+id] = malformedCase{mustMarshal(t, &pb.ReservationOutcome{ReservationId: "o-1:1", OrderId: "o-1", DecidedAt: ts}), "decided_at"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o, err := codecs.DecodeOutcome(tc.data)
			if err == nil {
				t.Fatalf("DecodeOutcome(%x) = %#v, want an error", tc.data, o)
			}
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func placeOrder(id string, lines ...inventory.OrderLine) inventory.PlaceOrder {
	return inventory.PlaceOrder{OrderID: id, Channel: "web", Lines: lines, ReservationTTL: 15 * time.Minute, DecisionTimeout: 30 * time.Second}
}

func line(sku string, qty int64) inventory.OrderLine {
	return inventory.OrderLine{SKU: sku, Quantity: qty}
}

func TestOrderCommandRoundTrip(t *testing.T) {
	long := placeOrder("o-long", line("A", 1))
	for i := 2; i <= inventory.MaxOrderLines; i++ {
		long.Lines = append(long.Lines, line(fmt.Sprintf("SKU-%03d", i), int64(i)))
	}
	cases := map[string]struct {
		in any
		id string
	}{
		"place":                    {placeOrder("o-1", line("A", 2), line("B", 1)), "o-1"},
		"place with odd durations": {inventory.PlaceOrder{OrderID: "o:2", Channel: "store-pickup", Lines: []inventory.OrderLine{line("A", inventory.MaxUnits)}, ReservationTTL: inventory.MaxReservationTTL, DecisionTimeout: 1500 * time.Millisecond}, "o:2"},
		"place with 100 lines":     {long, "o-long"},
		"place without lines":      {inventory.PlaceOrder{OrderID: "o-3", Channel: "web"}, "o-3"},
		"empty place":              {inventory.PlaceOrder{}, ""},
		"cancel":                   {inventory.CancelOrder{OrderID: "o-1"}, "o-1"},
		"empty cancel":             {inventory.CancelOrder{}, ""},
		"tick":                     {inventory.OrderTick{OrderID: "o-1", At: at(30)}, "o-1"},
		"tick with nanos":          {inventory.OrderTick{OrderID: "o-1", At: at(30).Add(1)}, "o-1"},
		"tick just inside the domain": {inventory.OrderTick{OrderID: "o-1",
			At: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC)}, "o-1"},
		"extend":              {inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: at(3600).Add(1)}, "o-1"},
		"extend at time zero": {inventory.ExtendOrder{OrderID: "o-1"}, "o-1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data := encodeCommand(t, tc.in)
			got, id, err := codecs.DecodeOrderCommand(data)
			if err != nil {
				t.Fatalf("DecodeOrderCommand: %v", err)
			}
			if id != tc.id {
				t.Errorf("order id %q, want %q", id, tc.id)
			}
			if !reflect.DeepEqual(got, tc.in) {
				t.Fatalf("round trip changed the command\n got: %#v\nwant: %#v", got, tc.in)
			}
			if again := encodeCommand(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
		})
	}
}

// A place command's wire form names every field of the domain command.
func TestPlaceOrderToProtoFields(t *testing.T) {
	p := placeOrder("o-1", line("A", 2), line("B", 1))
	p.ShipTo = "US-CA"
	m := codecs.PlaceOrderToProto(p)
	if m.GetOrderId() != "o-1" || m.GetChannel() != "web" || m.GetShipToRegion() != "US-CA" || m.GetReservationTtl().AsDuration() != 15*time.Minute ||
		m.GetDecisionTimeout().AsDuration() != 30*time.Second || len(m.GetLines()) != 2 ||
		m.GetLines()[0].GetSku() != "A" || m.GetLines()[0].GetQuantity() != 2 || m.GetLines()[1].GetSku() != "B" {
		t.Errorf("PlaceOrderToProto = %v", m)
	}
	back, err := codecs.PlaceOrderFromProto(m)
	if err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("PlaceOrderFromProto = %#v, %v; want %#v", back, err, p)
	}
}

func TestDecodeOrderCommandMalformed(t *testing.T) {
	cases := garbageCases("OrderCommand")
	cases["nil"] = malformedCase{nil, "no command set"}
	cases["empty"] = malformedCase{[]byte{}, "no command set"}
	cases["empty envelope"] = malformedCase{mustMarshal(t, &pb.OrderCommand{}), "no command set"}
	cases["only an unknown field"] = malformedCase{[]byte{0x28, 0x01}, "no command set"}
	place := func(ttl, timeout *durationpb.Duration) []byte {
		return mustMarshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: &pb.PlaceOrderCommand{
			OrderId: "o-1", Channel: "web", Lines: []*pb.OrderLine{{Sku: "A", Quantity: 1}}, ReservationTtl: ttl, DecisionTimeout: timeout}}})
	}
	tick := func(ts *timestamppb.Timestamp) []byte {
		return mustMarshal(t, &pb.OrderCommand{Command: &pb.OrderCommand_Tick{Tick: &pb.OrderTick{OrderId: "o-1", At: ts}}})
	}
	for _, d := range badDurations() {
		id := fmt.Sprintf("%ds%dns", d.GetSeconds(), d.GetNanos())
		cases["reservation_ttl "+id] = malformedCase{place(d, durationpb.New(time.Second)), "reservation_ttl"}
		cases["decision_timeout "+id] = malformedCase{place(durationpb.New(time.Minute), d), "decision_timeout"}
	}
	for _, ts := range badTimestamps() {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["tick at "+id] = malformedCase{tick(ts), "at"}
	}
	// Tick times valid for protobuf but outside the domain's range.
	cases["tick without a time"] = malformedCase{tick(nil), "missing"}
	cases["tick at the epoch"] = malformedCase{tick(timestamppb.New(time.Unix(0, 0))), "outside"}
	cases["tick before the epoch"] = malformedCase{tick(timestamppb.New(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC))), "outside"}
	cases["tick in year 1"] = malformedCase{tick(timestamppb.New(time.Time{})), "tick"}
	cases["tick at 2200"] = malformedCase{tick(timestamppb.New(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))), "outside"}
	cases["tick in 9999"] = malformedCase{tick(&timestamppb.Timestamp{Seconds: 253402300799}), "outside"}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in, id, err := codecs.DecodeOrderCommand(tc.data)
			if err == nil {
				t.Fatalf("DecodeOrderCommand(%x) = %#v %q, want an error", tc.data, in, id)
			}
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// sagaOrders are saga states the rules really produce: pending, reserved
// (with a backorder line), rejected with a released line, cancelled, timed
// out, and the unplaced zero order.
func sagaOrders(t testing.TB) map[string]inventory.Order {
	t.Helper()
	step := func(o inventory.Order, found bool, in any, at time.Time) inventory.Order {
		t.Helper()
		next, _, _, err := inventory.ApplyOrder(o, found, in, at)
		if err != nil {
			t.Fatalf("ApplyOrder(%#v): %v", in, err)
		}
		return next
	}
	accept := func(o inventory.Order, i int, backorder bool) inventory.Outcome {
		l := o.Lines[i]
		return inventory.Outcome{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Quantity: l.Quantity, Accepted: true, Backorder: backorder, DecidedAt: at(2)}
	}
	reject := func(o inventory.Order, i int, r inventory.RejectReason, msg string) inventory.Outcome {
		l := o.Lines[i]
		return inventory.Outcome{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Quantity: l.Quantity, Reason: r, Message: msg, DecidedAt: at(2)}
	}
	zoned := time.FixedZone("UTC-3", -3*60*60)
	pending := step(inventory.Order{}, false, placeOrder("o-1", line("A", 2), line("B", 1), line("C", 7)), at(0).Add(123456789).In(zoned))
	partly := step(pending, true, accept(pending, 0, false), at(1))
	reserved := step(step(step(pending, true, accept(pending, 0, false), at(1)), true, accept(pending, 1, true), at(1)), true, accept(pending, 2, false), at(1))
	rejected := step(partly, true, reject(partly, 1, inventory.RejectInsufficient, "not enough units available on web"), at(2))
	cancelled := step(reserved, true, inventory.CancelOrder{OrderID: "o-1"}, at(3))
	timedOut := step(partly, true, inventory.OrderTick{OrderID: "o-1", At: at(31)}, at(31))
	extended := step(reserved, true, inventory.ExtendOrder{OrderID: "o-1", ExpiresAt: at(7200).Add(9)}, at(100))
	confirm := func(o inventory.Order, i int, to time.Time) inventory.Outcome {
		l := o.Lines[i]
		return inventory.Outcome{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Quantity: l.Quantity, Accepted: true, Extension: true, ExpiresAt: to}
	}
	// One line confirmed, one short of its pending extension, one pending.
	partlyExtended := step(step(extended, true, confirm(extended, 0, at(7200).Add(9)), at(101)), true, confirm(extended, 1, at(5000)), at(102))
	if l := partlyExtended.Lines; !l[0].ExtendTo.IsZero() || l[1].ExtendTo.IsZero() || l[2].ExtendTo.IsZero() || !l[1].ExpiresAt.Equal(at(5000)) {
		t.Fatalf("partly extended fixture %+v", l)
	}
	expired := step(extended, true, inventory.OrderTick{OrderID: "o-1", At: at(7200).Add(9)}, at(7300))
	ship := func(id string, ls ...inventory.FulfilmentLine) inventory.FulfilOrder {
		return inventory.FulfilOrder{OrderID: "o-1", FulfilmentID: id, Lines: ls}
	}
	partlyFulfilled := step(reserved, true, ship("f-1", inventory.FulfilmentLine{SKU: "A", Quantity: 1, Location: "WH-1"},
		inventory.FulfilmentLine{SKU: "C", Quantity: 7, Location: "ST-1", Area: inventory.AreaFloor}), at(4))
	refusedFulfilment := step(partlyFulfilled, true, ship("f-2", inventory.FulfilmentLine{SKU: "A", Quantity: 2, Location: "WH-1"}), at(5))
	fulfilled := step(refusedFulfilment, true, ship("f-3", inventory.FulfilmentLine{SKU: "A", Quantity: 1, Location: "WH-1"},
		inventory.FulfilmentLine{SKU: "B", Quantity: 1, Location: "WH-2"}), at(6).Add(7))
	if partlyFulfilled.Status != inventory.OrderPartiallyFulfilled || fulfilled.Status != inventory.OrderFulfilled ||
		len(refusedFulfilment.Fulfilments) != 2 || refusedFulfilment.Fulfilments[1].Refused == "" {
		t.Fatalf("fulfilment fixtures %v %v %+v", partlyFulfilled.Status, fulfilled.Status, refusedFulfilment.Fulfilments)
	}
	early := step(inventory.Order{}, false, inventory.CancelOrder{OrderID: "o-2"}, at(0))
	latePlace := step(early, true, placeOrder("o-2", line("A", 1)), at(1))
	regional := placeOrder("o-3", line("A", 1))
	regional.ShipTo = "DE-BY"
	withRegion := step(inventory.Order{}, false, regional, at(0))
	if withRegion.ShipTo != "DE-BY" {
		t.Fatalf("order placed for DE-BY recorded ship-to %q", withRegion.ShipTo)
	}
	if expired.Status != inventory.OrderExpired || early.Status != inventory.OrderCancelled || latePlace.Status != inventory.OrderCancelled {
		t.Fatalf("lifecycle fixture statuses %d %d %d", expired.Status, early.Status, latePlace.Status)
	}
	if reserved.Status != inventory.OrderReserved || rejected.Status != inventory.OrderRejected ||
		cancelled.Status != inventory.OrderCancelled || timedOut.Status != inventory.OrderRejected {
		t.Fatalf("fixture statuses %d %d %d %d", reserved.Status, rejected.Status, cancelled.Status, timedOut.Status)
	}
	return map[string]inventory.Order{
		"pending":                        pending,
		"partly":                         partly,
		"reserved":                       reserved,
		"rejected":                       rejected,
		"cancelled":                      cancelled,
		"timed out":                      timedOut,
		"extended":                       extended,
		"partly extended":                partlyExtended,
		"expired":                        expired,
		"partly fulfilled":               partlyFulfilled,
		"with a refused fulfilment":      refusedFulfilment,
		"fulfilled":                      fulfilled,
		"cancelled before it was placed": early,
		"placed after its cancel":        latePlace,
		"with a ship-to region":          withRegion,
		"zero":                           {},
		"hand-built": {ID: strings.Repeat("o", inventory.MaxRefLength), Channel: "c", Status: 99, PlacedAt: epoch.Add(1),
			DecideBy: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC), ReservationTTL: -time.Nanosecond, Reason: "ü",
			Lines: []inventory.OrderLine{{}, {SKU: "x", Quantity: -1, Status: 77, Reject: 88, Message: "m",
				ExpiresAt: epoch.Add(2), ExtendTo: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC)}}},
	}
}

func TestOrderTableRoundTrip(t *testing.T) {
	for name, want := range sagaOrders(t) {
		t.Run(name, func(t *testing.T) {
			data, err := codecs.Order{}.Encode(want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			v, err := codecs.Order{}.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, ok := v.(inventory.Order)
			if !ok {
				t.Fatalf("Decode returned %T, want inventory.Order", v)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the order\n got: %#v\nwant: %#v", got, want)
			}
			for i := range 20 {
				again, err := codecs.Order{}.Encode(got)
				if err != nil {
					t.Fatalf("re-Encode #%d: %v", i, err)
				}
				if !bytes.Equal(again, data) {
					t.Fatalf("re-encoding #%d gave different bytes:\n%x\n%x", i, again, data)
				}
			}
			// The API message is the table message.
			if m := codecs.OrderToProto(want); !reflect.DeepEqual(codecs.OrderFromProto(m), want) {
				t.Errorf("OrderFromProto(OrderToProto(o)) = %#v", codecs.OrderFromProto(m))
			}
		})
	}
}

func TestOrderToProtoFields(t *testing.T) {
	o := sagaOrders(t)["rejected"]
	m := codecs.OrderToProto(o)
	if m.GetOrderId() != "o-1" || m.GetChannel() != "web" || m.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED ||
		!m.GetPlacedAt().AsTime().Equal(o.PlacedAt) || !m.GetDecideBy().AsTime().Equal(o.PlacedAt.Add(30*time.Second)) ||
		m.GetReservationTtl().AsDuration() != 15*time.Minute || !strings.Contains(m.GetReason(), "line 2 (B)") {
		t.Errorf("OrderToProto = %v", m)
	}
	want := []struct {
		st     pb.LineStatus
		reason pb.RejectReason
	}{
		{pb.LineStatus_LINE_STATUS_RELEASED, pb.RejectReason_REJECT_REASON_UNSPECIFIED},
		{pb.LineStatus_LINE_STATUS_REJECTED, pb.RejectReason_REJECT_REASON_INSUFFICIENT},
		{pb.LineStatus_LINE_STATUS_REJECTED, pb.RejectReason_REJECT_REASON_CANCELLED},
	}
	for i, l := range m.GetLines() {
		if l.GetStatus() != want[i].st || l.GetRejectReason() != want[i].reason || l.GetReservationId() != inventory.ReservationIDFor("o-1", i) {
			t.Errorf("line %d = %v, want %v %v", i+1, l, want[i].st, want[i].reason)
		}
	}
	if zero := codecs.OrderToProto(inventory.Order{}); zero.PlacedAt != nil || zero.DecideBy != nil {
		t.Errorf("zero times encoded as %v / %v, want unset", zero.PlacedAt, zero.DecideBy)
	}
}

func TestOrderTableDecodeEmptyIsZeroOrder(t *testing.T) {
	for _, data := range [][]byte{nil, {}} {
		v, err := codecs.Order{}.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%x): %v", data, err)
		}
		if !reflect.DeepEqual(v, inventory.Order{}) {
			t.Errorf("Decode(%x) = %#v, want the zero order", data, v)
		}
	}
}

func TestOrderTableDecodeGarbage(t *testing.T) {
	v, err := codecs.Order{}.Decode([]byte{0xff, 0xff, 0xff})
	if err == nil {
		t.Fatalf("Decode(garbage) = %#v, want an error", v)
	}
	if v != nil {
		t.Errorf("Decode(garbage) returned %#v with the error", v)
	}
	if !strings.Contains(err.Error(), "skuflow.v1.Order") {
		t.Errorf("error %q does not name the message type", err)
	}
}

func TestOrderTableEncodeWrongType(t *testing.T) {
	o := inventory.Order{ID: "o-1"}
	for _, tc := range []struct {
		value any
		name  string
	}{
		{&o, "*inventory.Order"},
		{codecs.OrderToProto(o), "*skuflowv1.Order"},
		{nil, "<nil>"},
		{inventory.State{}, "inventory.State"},
	} {
		data, err := codecs.Order{}.Encode(tc.value)
		if err == nil {
			t.Errorf("Encode(%T) = %x, want an error", tc.value, data)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), "inventory.Order") {
			t.Errorf("Encode(%T) error %q does not name the type %s and the wanted one", tc.value, err, tc.name)
		}
	}
}

// The stock table keeps reservations (every status, backorder flags,
// reasons, three times) and cap usage exactly. Cap usage appears only once
// a fulfilled reservation is forgotten, so the hand-built state carries it.
func TestStateWithReservationsRoundTrip(t *testing.T) {
	s, _ := demandState(t)
	statuses := map[inventory.ReservationStatus]int{}
	for _, r := range s.Reservations {
		statuses[r.Status]++
	}
	if statuses[inventory.StatusHeld] == 0 || statuses[inventory.StatusReleased] < 2 || statuses[inventory.StatusFulfilled] != 1 ||
		statuses[inventory.StatusRejected] < 4 {
		t.Fatalf("fixture lacks a status: %v", statuses)
	}
	hand := inventory.State{SKU: sku,
		Reservations: []inventory.Reservation{
			{ID: "a", OrderID: "o", Channel: "web", Quantity: inventory.MaxUnits, Status: inventory.StatusHeld, Backorder: true,
				DecidedAt: at(1).Add(1), ExpiresAt: at(1).Add(inventory.MaxReservationTTL), Fulfilled: inventory.MaxUnits - 1,
				Fulfilments: []string{"f-1:1", "f-2:1"}},
			{ID: "b", Status: inventory.StatusRejected, Reject: inventory.RejectReleased, Release: inventory.ReleaseCompensated, DecidedAt: at(2), ClosedAt: at(2)},
		},
		CapUsage: []inventory.CapUsage{{Channel: "web", WindowStart: epoch, Used: 0}, {Channel: "x", WindowStart: at(1), Used: inventory.MaxUnits}},
	}
	for name, want := range map[string]inventory.State{"decided": s, "hand-built": hand} {
		t.Run(name, func(t *testing.T) {
			data, err := codecs.State{}.Encode(want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			v, err := codecs.State{}.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Fatalf("round trip changed the state\n got: %#v\nwant: %#v", v, want)
			}
			again, err := codecs.State{}.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
			got := v.(inventory.State)
			for _, now := range []time.Time{at(20), at(100), at(7200)} {
				if a, b := inventory.Evaluate(got, demandChannels, now), inventory.Evaluate(want, demandChannels, now); a.Version != b.Version {
					t.Errorf("decoded state answers %+v at %v, original %+v", a, now, b)
				}
			}
		})
	}
}

// A decoded state decides a duplicate request exactly as the original: the
// recorded outcome comes back.
func TestDecodedStateRemembersOutcomes(t *testing.T) {
	s, outs := demandState(t)
	dec := canonical(t, s)
	for _, o := range outs {
		dup := request(o.ReservationID, o.OrderID, max(o.Quantity, 1), "web", time.Hour)
		_, got, res, err := inventory.Demand(dec, dup, demandChannels, at(100))
		if err != nil || got == nil || res.Changed {
			t.Fatalf("duplicate %s: outcome %v changed=%v err=%v", o.ReservationID, got, res.Changed, err)
		}
		if !reflect.DeepEqual(*got, o) {
			t.Errorf("duplicate %s after decoding: outcome\n%#v\nwant\n%#v", o.ReservationID, *got, o)
		}
	}
}
