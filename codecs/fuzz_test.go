package codecs_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
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
		// The fast path decides exactly as the protobuf messages do.
		gev, gerr := codecs.DecodeSupplyGeneric(data)
		if (err == nil) != (gerr == nil) || !reflect.DeepEqual(ev, gev) {
			t.Fatalf("DecodeSupplyEvent(%x) = %#v, %v; the generic path gives %#v, %v", data, ev, err, gev, gerr)
		}
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
		// Evaluation must not panic on any stored state, whatever the
		// policies and the time.
		for _, now := range []time.Time{{}, at(30), at(7200)} {
			_ = inventory.Evaluate(s, testPolicies(), now)
			_ = inventory.Evaluate(s, inventory.Policies{}, now)
		}
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
		for _, now := range []time.Time{at(30), at(7200)} {
			data, err := codecs.Availability.Encode(codecs.SnapshotToProto(inventory.Evaluate(s, testPolicies(), now)))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
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

// FuzzDecodeSkuPolicyEvent: DecodeSkuPolicyEvent never panics, fails only
// with ErrMalformed, and what it accepts re-encodes to a fixed point.
func FuzzDecodeSkuPolicyEvent(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, ev := range skuPolicyCases() {
		f.Add(encodeSkuPolicy(f, ev))
	}
	f.Add(mustMarshal(f, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{
		Sku: sku, WindowStart: &timestamppb.Timestamp{Seconds: -62135596800}, WindowEnd: &timestamppb.Timestamp{Seconds: 1, Nanos: -1},
	}}}))
	f.Add(mustMarshal(f, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SafetyStock{SafetyStock: &pb.SafetyStockOverride{}}}))
	f.Add(mustMarshal(f, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_BackorderLimit{}}))
	states := []inventory.State{{}, policyState(f)}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := codecs.DecodeSkuPolicyEvent(data)
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
		// Applying whatever the codec let through must not panic, on an
		// empty state and on one with every kind of rule.
		for _, s := range states {
			if next, _, err := inventory.Apply(s, ev, at(0)); err == nil {
				_ = inventory.Evaluate(next, testPolicies(), at(30))
			}
		}
		env, err := codecs.SkuPolicyEventToProto(ev)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", ev, err)
		}
		enc := mustMarshal(t, env)
		ev2, err := codecs.DecodeSkuPolicyEvent(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %#v (%x): %v", ev, enc, err)
		}
		if !reflect.DeepEqual(ev2, ev) {
			t.Fatalf("unstable round trip\nfirst:  %#v\nsecond: %#v", ev, ev2)
		}
		if enc2 := encodeSkuPolicy(t, ev2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzDecodePolicyEvent: DecodePolicyEvent never panics, fails only with
// ErrMalformed, re-encodes to a fixed point, and its conversion to the
// domain either fails with ErrMalformed or is stable too.
func FuzzDecodePolicyEvent(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	for _, p := range locationPolicyCases() {
		f.Add(encodePolicy(f, p))
	}
	for _, p := range merchantPolicyCases() {
		f.Add(encodePolicy(f, p))
	}
	f.Add(mustMarshal(f, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{
		MerchantId: "m", StaleAfter: &durationpb.Duration{Seconds: 315576000000}, AsOf: &timestamppb.Timestamp{Seconds: -62135596800},
	}}}))
	f.Add(mustMarshal(f, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{StaleAfter: &durationpb.Duration{Seconds: 1, Nanos: -1}}}}))
	f.Add(mustMarshal(f, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := codecs.DecodePolicyEvent(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			if env != nil {
				t.Fatalf("envelope %v returned with error %v", env, err)
			}
			return
		}
		enc, err := codecs.PolicyTable.Encode(env)
		if err != nil {
			t.Fatalf("re-encode %v: %v", env, err)
		}
		env2, err := codecs.DecodePolicyEvent(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %v (%x): %v", env, enc, err)
		}
		if !proto.Equal(env2, env) {
			t.Fatalf("unstable round trip\nfirst:  %v\nsecond: %v", env, env2)
		}
		if enc2, err := codecs.PolicyTable.Encode(env2); err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point (%v):\n%x\n%x", err, enc, enc2)
		}

		var (
			dom, dom2 any
			wire      []byte
		)
		switch {
		case env.GetLocation() != nil:
			p, err := codecs.LocationPolicyFromProto(env.GetLocation())
			if err != nil {
				checkMalformed(t, err)
				return
			}
			if verr := p.Validate(); verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
			}
			_, _, _ = inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p)
			dom, wire = p, encodePolicy(t, p)
			env3, err := codecs.DecodePolicyEvent(wire)
			if err != nil {
				t.Fatalf("decode of converted %#v: %v", p, err)
			}
			if dom2, err = codecs.LocationPolicyFromProto(env3.GetLocation()); err != nil {
				t.Fatalf("convert back %#v: %v", p, err)
			}
		case env.GetMerchant() != nil:
			p, err := codecs.MerchantPolicyFromProto(env.GetMerchant())
			if err != nil {
				checkMalformed(t, err)
				return
			}
			if verr := p.Validate(); verr != nil && !errors.Is(verr, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, does not wrap ErrInvalidEvent", verr)
			}
			_, _, _ = inventory.ApplyMerchantPolicy(inventory.MerchantPolicy{}, false, p)
			dom, wire = p, encodePolicy(t, p)
			env3, err := codecs.DecodePolicyEvent(wire)
			if err != nil {
				t.Fatalf("decode of converted %#v: %v", p, err)
			}
			if dom2, err = codecs.MerchantPolicyFromProto(env3.GetMerchant()); err != nil {
				t.Fatalf("convert back %#v: %v", p, err)
			}
		default:
			t.Fatalf("decoded %v without error, but neither policy is set", env)
		}
		if !reflect.DeepEqual(dom2, dom) {
			t.Fatalf("unstable domain round trip\nfirst:  %#v\nsecond: %#v", dom, dom2)
		}
		if again := encodePolicy(t, dom2); !bytes.Equal(again, wire) {
			t.Fatalf("domain re-encoding is not a fixed point:\n%x\n%x", wire, again)
		}
	})
}

func checkMalformed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, codecs.ErrMalformed) {
		t.Fatalf("conversion error %q does not wrap ErrMalformed", err)
	}
}

// FuzzDecodeStockTick: DecodeStockTick never panics, fails only with
// ErrMalformed, returns only ticks with a valid time, and what it accepts
// re-encodes to a fixed point.
func FuzzDecodeStockTick(f *testing.F) {
	for _, s := range garbageSeeds {
		f.Add(s)
	}
	f.Add(mustMarshal(f, &pb.StockTick{Sku: sku, At: timestamppb.New(at(5)), PublishedVersion: "0123456789abcdef"}))
	f.Add(mustMarshal(f, &pb.StockTick{Sku: sku, At: &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999999999}}))
	f.Add(mustMarshal(f, &pb.StockTick{Sku: sku, At: &timestamppb.Timestamp{Seconds: 253402300800}}))
	f.Add(mustMarshal(f, &pb.StockTick{Sku: sku}))
	s := policyState(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tick, err := codecs.DecodeStockTick(data)
		if err != nil {
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			if tick != nil {
				t.Fatalf("tick %v returned with error %v", tick, err)
			}
			return
		}
		if err := tick.GetAt().CheckValid(); err != nil {
			t.Fatalf("accepted tick %v with an invalid time: %v", tick, err)
		}
		// Evaluating at any accepted time must not panic.
		_ = inventory.Evaluate(s, testPolicies(), tick.GetAt().AsTime())
		enc := mustMarshal(t, tick)
		tick2, err := codecs.DecodeStockTick(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %v (%x): %v", tick, enc, err)
		}
		if !proto.Equal(tick2, tick) {
			t.Fatalf("unstable round trip\nfirst:  %v\nsecond: %v", tick, tick2)
		}
		if enc2 := mustMarshal(t, tick2); !bytes.Equal(enc2, enc) {
			t.Fatalf("re-encoding is not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}
