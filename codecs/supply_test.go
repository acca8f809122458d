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
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func supplyCases() map[string]inventory.Event {
	return map[string]inventory.Event{
		"level":                 lvl("WH-1", 10, at(0), 7),
		"level with nanos":      lvl("WH-1", 0, at(1).Add(999999999*time.Nanosecond), math.MaxUint64),
		"level at epoch":        lvl("WH-1", inventory.MaxUnits, epoch, 0),
		"adjustment":            adj("evt-1", "WH-2", -3, at(5)),
		"positive adjustment":   adj("evt-2", "STORE.7_x", inventory.MaxUnits, at(5).Add(time.Nanosecond)),
		"invalid but decodable": inventory.StockLevel{SKU: "", Location: "bad location!", OnHand: -5, AsOf: at(0)},
		"zero adjustment":       inventory.StockAdjustment{SKU: sku, OccurredAt: at(0)},
	}
}

func TestSupplyEventRoundTrip(t *testing.T) {
	for name, want := range supplyCases() {
		t.Run(name, func(t *testing.T) {
			data, err := codecs.EncodeSupplyEvent(want)
			if err != nil {
				t.Fatalf("EncodeSupplyEvent: %v", err)
			}
			got, err := codecs.DecodeSupplyEvent(data)
			if err != nil {
				t.Fatalf("DecodeSupplyEvent: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the event\n got: %#v\nwant: %#v", got, want)
			}
			again, err := codecs.EncodeSupplyEvent(got)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
		})
	}
}

// Times in other zones come back as the same instant in UTC.
func TestSupplyEventRoundTripZonedTime(t *testing.T) {
	zone := time.FixedZone("UTC-5", -5*60*60)
	for _, ev := range []inventory.Event{
		lvl("WH-1", 1, at(0).In(zone), 1),
		adj("a", "WH-1", 1, at(0).In(zone)),
	} {
		data, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := codecs.DecodeSupplyEvent(data)
		if err != nil {
			t.Fatal(err)
		}
		var tm time.Time
		switch e := got.(type) {
		case inventory.StockLevel:
			tm = e.AsOf
		case inventory.StockAdjustment:
			tm = e.OccurredAt
		default:
			t.Fatalf("decoded %T", got)
		}
		if !tm.Equal(at(0)) || tm.Location() != time.UTC {
			t.Errorf("%T time = %v, want %v in UTC", ev, tm, at(0))
		}
	}
}

func TestSupplyEventEncodingIsDeterministic(t *testing.T) {
	for name, ev := range supplyCases() {
		first, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for range 20 {
			again, err := codecs.EncodeSupplyEvent(ev)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.Equal(first, again) {
				t.Fatalf("%s: Encode gave different bytes:\n%x\n%x", name, again, first)
			}
		}
	}
}

// A missing timestamp decodes to the zero time, which inventory rejects as
// missing: the codec does not validate.
func TestDecodeSupplyEventMissingTimestamp(t *testing.T) {
	for _, env := range []*pb.SupplyEvent{
		{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{Sku: sku, Location: "WH-1", OnHand: 1}}},
		{Event: &pb.SupplyEvent_StockAdjustment{StockAdjustment: &pb.StockAdjustment{EventId: "a", Sku: sku, Location: "WH-1", Delta: 1}}},
	} {
		ev, err := codecs.DecodeSupplyEvent(mustMarshal(t, env))
		if err != nil {
			t.Fatalf("DecodeSupplyEvent(%v): %v", env, err)
		}
		err = ev.Validate()
		if !errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("Validate() of %#v = %v, want a missing-time error", ev, err)
		}
	}
}

func TestDecodeSupplyEventMalformed(t *testing.T) {
	badTS := []*timestamppb.Timestamp{
		{Seconds: math.MaxInt64},
		{Seconds: math.MinInt64},
		{Seconds: 253402300800}, // 10000-01-01
		{Seconds: 1, Nanos: -1},
		{Seconds: 1, Nanos: 1e9},
	}
	type malformed struct {
		data []byte
		want string // in the error message
	}
	cases := map[string]malformed{
		"truncated varint":  {[]byte{0xff, 0xff, 0xff}, "not a skuflow.v1.SupplyEvent"},
		"invalid wire type": {[]byte{0x0f}, "not a skuflow.v1.SupplyEvent"},
		"truncated length":  {[]byte{0x0a, 0x05, 0x01}, "not a skuflow.v1.SupplyEvent"},
		"text":              {[]byte("not protobuf at all"), "not a skuflow.v1.SupplyEvent"},
		// A string field with invalid UTF-8 is rejected by proto3 decoding.
		"invalid utf-8 sku":  {[]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}, "not a skuflow.v1.SupplyEvent"},
		"nil":                {nil, "no event set"},
		"empty":              {[]byte{}, "no event set"},
		"empty envelope":     {mustMarshal(t, &pb.SupplyEvent{}), "no event set"},
		"only unknown field": {[]byte{0x18, 0x01}, "no event set"}, // field 3 varint
	}
	for _, ts := range badTS {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["level as_of "+id] = malformed{mustMarshal(t, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
			Sku: sku, Location: "WH-1", OnHand: 1, AsOf: ts,
		}}}), "as_of"}
		cases["adjustment occurred_at "+id] = malformed{mustMarshal(t, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockAdjustment{StockAdjustment: &pb.StockAdjustment{
			EventId: "a", Sku: sku, Location: "WH-1", Delta: 1, OccurredAt: ts,
		}}}), "occurred_at"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := codecs.DecodeSupplyEvent(tc.data)
			if err == nil {
				t.Fatalf("DecodeSupplyEvent(%x) = %#v, want an error", tc.data, ev)
			}
			if ev != nil {
				t.Errorf("DecodeSupplyEvent(%x) returned event %#v with error", tc.data, ev)
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

func TestEncodeSupplyEventWrongType(t *testing.T) {
	l := lvl("WH-1", 1, at(0), 1)
	for _, tc := range []struct {
		ev   inventory.Event
		name string
	}{
		{nil, "<nil>"},
		{&l, "*inventory.StockLevel"},
		{&inventory.StockAdjustment{}, "*inventory.StockAdjustment"},
	} {
		data, err := codecs.EncodeSupplyEvent(tc.ev)
		if err == nil {
			t.Errorf("EncodeSupplyEvent(%T) = %x, want an error", tc.ev, data)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("EncodeSupplyEvent(%T) error %q does not name the type %s", tc.ev, err, tc.name)
		}
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return data
}
