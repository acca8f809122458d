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

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// encodeSkuPolicy is SkuPolicyEventToProto followed by deterministic
// marshalling, what a producer of the sku-policies topic does.
func encodeSkuPolicy(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	env, err := codecs.SkuPolicyEventToProto(ev)
	if err != nil {
		t.Fatalf("SkuPolicyEventToProto(%#v): %v", ev, err)
	}
	return mustMarshal(t, env)
}

func skuPolicyCases() map[string]inventory.Event {
	return map[string]inventory.Event{
		"sellable":              sellable("web", true, at(1)),
		"not sellable":          sellable("marketplace", false, at(1).Add(time.Nanosecond)),
		"sales cap":             salesCap("web", 5, at(0), at(3600), at(1)),
		"sales cap, zero limit": salesCap("web", 0, epoch, at(0).Add(999999999*time.Nanosecond), at(2)),
		"sales cap at max":      salesCap("store-pickup", inventory.MaxUnits, at(0), time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC), at(0)),
		"cleared sales cap":     inventory.SalesCap{SKU: sku, Channel: "web", Cleared: true, AsOf: at(3)},
		// A cleared cap may still carry a window; it survives the trip.
		"cleared cap with window":      inventory.SalesCap{SKU: sku, Channel: "web", Limit: 2, WindowStart: at(0), WindowEnd: at(1), Cleared: true, AsOf: at(3)},
		"backorder limit":              backorder(12, at(4)),
		"backorder zero":               backorder(0, at(4)),
		"safety stock":                 safety("WH-1", 3, at(5)),
		"cleared safety stock":         inventory.SafetyStockOverride{SKU: sku, Location: "ST-1", Cleared: true, AsOf: at(6)},
		"invalid but decodable":        inventory.BackorderLimit{SKU: "bad sku!", Limit: -1, AsOf: at(0)},
		"inverted window is decodable": salesCap("web", 1, at(10), at(5), at(0)),
	}
}

func TestSkuPolicyEventRoundTrip(t *testing.T) {
	for name, want := range skuPolicyCases() {
		t.Run(name, func(t *testing.T) {
			data := encodeSkuPolicy(t, want)
			got, err := codecs.DecodeSkuPolicyEvent(data)
			if err != nil {
				t.Fatalf("DecodeSkuPolicyEvent: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the event\n got: %#v\nwant: %#v", got, want)
			}
			if got.EventSKU() != want.EventSKU() {
				t.Errorf("EventSKU %q, want %q", got.EventSKU(), want.EventSKU())
			}
			if again := encodeSkuPolicy(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
			// The wire envelope names the kind of policy.
			env, err := codecs.SkuPolicyEventToProto(want)
			if err != nil {
				t.Fatal(err)
			}
			var kind string
			switch env.GetPolicy().(type) {
			case *pb.SkuPolicyEvent_ChannelEligibility:
				kind = "inventory.ChannelEligibility"
			case *pb.SkuPolicyEvent_SalesCap:
				kind = "inventory.SalesCap"
			case *pb.SkuPolicyEvent_BackorderLimit:
				kind = "inventory.BackorderLimit"
			case *pb.SkuPolicyEvent_SafetyStock:
				kind = "inventory.SafetyStockOverride"
			}
			if got := fmt.Sprintf("%T", want); got != kind {
				t.Errorf("%s went into the %s envelope", got, kind)
			}
		})
	}
}

// Wire messages decode field by field into the domain (the other direction
// of the round trip, written from the .proto rather than from the encoder).
func TestSkuPolicyEventFromWire(t *testing.T) {
	zone := time.FixedZone("UTC+9", 9*60*60)
	cases := map[string]struct {
		env  *pb.SkuPolicyEvent
		want inventory.Event
	}{
		"channel eligibility": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_ChannelEligibility{ChannelEligibility: &pb.ChannelEligibility{
				Sku: sku, Channel: "web", Sellable: true, AsOf: timestamppb.New(at(1).In(zone))}}},
			sellable("web", true, at(1)),
		},
		"sales cap": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{
				Sku: sku, Channel: "web", Limit: 7, WindowStart: timestamppb.New(at(0)), WindowEnd: timestamppb.New(at(60)),
				AsOf: timestamppb.New(at(2))}}},
			salesCap("web", 7, at(0), at(60), at(2)),
		},
		"sales cap without window": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{
				Sku: sku, Channel: "web", Cleared: true, AsOf: timestamppb.New(at(2))}}},
			inventory.SalesCap{SKU: sku, Channel: "web", Cleared: true, AsOf: at(2)},
		},
		"backorder": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_BackorderLimit{BackorderLimit: &pb.BackorderLimit{
				Sku: sku, Limit: 4, AsOf: timestamppb.New(at(3))}}},
			backorder(4, at(3)),
		},
		"safety stock": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SafetyStock{SafetyStock: &pb.SafetyStockOverride{
				Sku: sku, Location: "WH-1", Units: 2, Cleared: true, AsOf: timestamppb.New(at(4))}}},
			inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Units: 2, Cleared: true, AsOf: at(4)},
		},
		"empty channel eligibility": {
			&pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_ChannelEligibility{ChannelEligibility: &pb.ChannelEligibility{}}},
			inventory.ChannelEligibility{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := codecs.DecodeSkuPolicyEvent(mustMarshal(t, tc.env))
			if err != nil {
				t.Fatalf("DecodeSkuPolicyEvent: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded %#v\nwant    %#v", got, tc.want)
			}
		})
	}
}

// A missing as_of decodes to the zero time, which inventory rejects as
// missing: the codec does not validate.
func TestDecodeSkuPolicyEventMissingTimestamp(t *testing.T) {
	for _, env := range []*pb.SkuPolicyEvent{
		{Policy: &pb.SkuPolicyEvent_ChannelEligibility{ChannelEligibility: &pb.ChannelEligibility{Sku: sku, Channel: "web"}}},
		{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", Limit: 1,
			WindowStart: timestamppb.New(at(0)), WindowEnd: timestamppb.New(at(1))}}},
		{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", Limit: 1, AsOf: timestamppb.New(at(0))}}},
		{Policy: &pb.SkuPolicyEvent_BackorderLimit{BackorderLimit: &pb.BackorderLimit{Sku: sku, Limit: 1}}},
		{Policy: &pb.SkuPolicyEvent_SafetyStock{SafetyStock: &pb.SafetyStockOverride{Sku: sku, Location: "WH-1", Units: 1}}},
	} {
		ev, err := codecs.DecodeSkuPolicyEvent(mustMarshal(t, env))
		if err != nil {
			t.Fatalf("DecodeSkuPolicyEvent(%v): %v", env, err)
		}
		err = ev.Validate()
		if !errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("Validate() of %#v = %v, want a missing-time error", ev, err)
		}
	}
}

func TestDecodeSkuPolicyEventMalformed(t *testing.T) {
	type malformed struct {
		data []byte
		want string // in the error message
	}
	cases := map[string]malformed{
		"truncated varint":   {[]byte{0xff, 0xff, 0xff}, "not a skuflow.v1.SkuPolicyEvent"},
		"invalid wire type":  {[]byte{0x0f}, "not a skuflow.v1.SkuPolicyEvent"},
		"truncated length":   {[]byte{0x0a, 0x05, 0x01}, "not a skuflow.v1.SkuPolicyEvent"},
		"text":               {[]byte("not protobuf at all"), "not a skuflow.v1.SkuPolicyEvent"},
		"invalid utf-8 sku":  {[]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}, "not a skuflow.v1.SkuPolicyEvent"},
		"nil":                {nil, "no policy set"},
		"empty":              {[]byte{}, "no policy set"},
		"empty envelope":     {mustMarshal(t, &pb.SkuPolicyEvent{}), "no policy set"},
		"only unknown field": {[]byte{0x28, 0x01}, "no policy set"}, // field 5 varint
	}
	for _, ts := range badTimestamps() {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["eligibility as_of "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_ChannelEligibility{
			ChannelEligibility: &pb.ChannelEligibility{Sku: sku, Channel: "web", AsOf: ts}}}), "as_of"}
		cases["cap as_of "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{
			SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", WindowStart: timestamppb.New(at(0)), WindowEnd: timestamppb.New(at(1)), AsOf: ts}}}), "as_of"}
		cases["cap window_start "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{
			SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", WindowStart: ts, WindowEnd: timestamppb.New(at(1)), AsOf: timestamppb.New(at(0))}}}), "window_start"}
		cases["cap window_end "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{
			SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", WindowStart: timestamppb.New(at(0)), WindowEnd: ts, AsOf: timestamppb.New(at(0))}}}), "window_end"}
		cases["cleared cap window_end "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{
			SalesCap: &pb.SalesCap{Sku: sku, Channel: "web", Cleared: true, WindowEnd: ts, AsOf: timestamppb.New(at(0))}}}), "window_end"}
		cases["backorder as_of "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_BackorderLimit{
			BackorderLimit: &pb.BackorderLimit{Sku: sku, Limit: 1, AsOf: ts}}}), "as_of"}
		cases["safety as_of "+id] = malformed{mustMarshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SafetyStock{
			SafetyStock: &pb.SafetyStockOverride{Sku: sku, Location: "WH-1", AsOf: ts}}}), "as_of"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := codecs.DecodeSkuPolicyEvent(tc.data)
			if err == nil {
				t.Fatalf("DecodeSkuPolicyEvent(%x) = %#v, want an error", tc.data, ev)
			}
			if ev != nil {
				t.Errorf("DecodeSkuPolicyEvent(%x) returned event %#v with error", tc.data, ev)
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

// badTimestamps are outside what google.protobuf.Timestamp allows.
func badTimestamps() []*timestamppb.Timestamp {
	return []*timestamppb.Timestamp{
		{Seconds: math.MaxInt64},
		{Seconds: math.MinInt64},
		{Seconds: 253402300800}, // 10000-01-01
		{Seconds: 1, Nanos: -1},
		{Seconds: 1, Nanos: 1e9},
	}
}

func TestSkuPolicyEventToProtoWrongType(t *testing.T) {
	c := sellable("web", true, at(0))
	for _, tc := range []struct {
		ev   inventory.Event
		name string
	}{
		{nil, "<nil>"},
		{&c, "*inventory.ChannelEligibility"},
		{lvl("WH-1", 1, at(0), 1), "inventory.StockLevel"},
		{adj("a", "WH-1", 1, at(0)), "inventory.StockAdjustment"},
	} {
		env, err := codecs.SkuPolicyEventToProto(tc.ev)
		if err == nil {
			t.Errorf("SkuPolicyEventToProto(%T) = %v, want an error", tc.ev, env)
			continue
		}
		if env != nil {
			t.Errorf("SkuPolicyEventToProto(%T) returned %v with its error", tc.ev, env)
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("SkuPolicyEventToProto(%T) error %q does not name the type %s", tc.ev, err, tc.name)
		}
	}
}

// Times in other zones come back as the same instant in UTC.
func TestSkuPolicyEventRoundTripZonedTime(t *testing.T) {
	zone := time.FixedZone("UTC-5", -5*60*60)
	ev := salesCap("web", 1, at(0).In(zone), at(9).In(zone), at(1).In(zone))
	got, err := codecs.DecodeSkuPolicyEvent(encodeSkuPolicy(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := got.(inventory.SalesCap)
	if !ok {
		t.Fatalf("decoded %T", got)
	}
	for name, pair := range map[string][2]time.Time{
		"window_start": {c.WindowStart, at(0)},
		"window_end":   {c.WindowEnd, at(9)},
		"as_of":        {c.AsOf, at(1)},
	} {
		if !pair[0].Equal(pair[1]) || pair[0].Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", name, pair[0], pair[1])
		}
	}
}
