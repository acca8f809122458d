package codecs_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// garbageSeeds start every fuzz target: truncated, invalid and empty input.
var garbageSeeds = [][]byte{
	nil,
	{0xff, 0xff, 0xff},
	{0x0f},
	{0x0a, 0x05, 0x01},
	{0x0a, 0x03, 0x0a, 0x01, 0xff},
	{0x18, 0x01},
	[]byte("not protobuf at all"),
}

// FuzzDecodeSupplyEvent: DecodeSupplyEvent never panics, fails only with
// ErrMalformed, and what it accepts re-encodes to a fixed point.
func FuzzDecodeSupplyEvent(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, ev := range supplyCases() {
		data, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(mustMarshal(f, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
		Sku: sku, AsOf: &timestamppb.Timestamp{Seconds: 1, Nanos: -1},
	}}}))
	f.Add(mustMarshal(f, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockAdjustment{StockAdjustment: &pb.StockAdjustment{}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := codecs.DecodeSupplyEvent(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			if ev != nil {
				t.Fatalf("event %#v returned with error %v", ev, err)
			}
			return
		}
		// Validation must not panic on whatever the codec let through.
		if verr := ev.Validate(); verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
			t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
		}
		enc, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", ev, err)
		}
		ev2, err := codecs.DecodeSupplyEvent(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", ev, enc, err)
		}
		if !reflect.DeepEqual(ev2, ev) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", ev, ev2)
		}
		enc2, err := codecs.EncodeSupplyEvent(ev2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzStateDecode: the table codec never panics on stored bytes, and a
// decoded state re-encodes to a fixed point.
func FuzzStateDecode(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, s := range stateCases(f) {
		data, err := codecs.State{}.Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// Fields the domain never writes: a level time without has_level, a
	// has_level without a time, negative times, an empty location.
	f.Add(mustMarshal(f, &pb.SkuState{Sku: sku, Locations: []*pb.LocationState{
		{Location: "A", LevelAsOfUnixNano: 5, LevelOnHand: -3},
		{Location: "B", HasLevel: true},
		{Location: "C", HasLevel: true, LevelAsOfUnixNano: -1 << 62, Adjustments: []*pb.AppliedAdjustment{
			{EventId: "x", OccurredAtUnixNano: 1<<63 - 1},
			{},
		}},
		{},
	}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := codecs.State{}.Decode(data)
		if err != nil {
			if v != nil {
				t.Fatalf("value %#v returned with error %v", v, err)
			}
			return
		}
		s, ok := v.(inventory.State)
		if !ok {
			t.Fatalf("Decode returned %T", v)
		}
		_ = inventory.Availability(s) // must not panic on any stored state
		enc, err := codecs.State{}.Encode(s)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", s, err)
		}
		v2, err := codecs.State{}.Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", s, enc, err)
		}
		if !reflect.DeepEqual(v2, s) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", s, v2)
		}
		enc2, err := codecs.State{}.Encode(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzAvailabilityDecode: the availability codec never panics, and a
// decoded message re-encodes to a fixed point (unknown fields included).
func FuzzAvailabilityDecode(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, s := range stateCases(f) {
		data, err := codecs.Availability.Encode(codecs.SnapshotToProto(inventory.Availability(s)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(append(mustMarshal(f, &pb.Availability{Sku: sku, OnHand: -1}), 0x78, 0x01)) // unknown field 15
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := codecs.Availability.Decode(data)
		if err != nil {
			if v != nil {
				t.Fatalf("value %v returned with error %v", v, err)
			}
			return
		}
		m, ok := v.(*pb.Availability)
		if !ok {
			t.Fatalf("Decode returned %T", v)
		}
		enc, err := codecs.Availability.Encode(m)
		if err != nil {
			t.Fatalf("re-encode %v: %v", m, err)
		}
		v2, err := codecs.Availability.Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %v (%x): %v", m, enc, err)
		}
		if !proto.Equal(v2.(*pb.Availability), m) {
			t.Fatalf("unstable round trip\nfirst:  %v\nsecond: %v", m, v2)
		}
		enc2, err := codecs.Availability.Encode(v2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}
