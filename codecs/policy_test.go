package codecs_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func locationPolicyCases() map[string]inventory.LocationPolicy {
	return map[string]inventory.LocationPolicy{
		"warehouse":           {Location: "WH-1", Kind: inventory.KindWarehouse, AsOf: at(1)},
		"closed warehouse":    {Location: "WH-1", Kind: inventory.KindWarehouse, Closed: true, SafetyStock: 4, AsOf: at(1).Add(time.Nanosecond)},
		"store with channels": {Location: "ST-1", Kind: inventory.KindStore, Channels: []string{"store-pickup", "web"}, SafetyStock: 2, AsOf: at(2)},
		"merchant":            {Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(3)},
		"max safety stock":    {Location: "WH-2", Kind: inventory.KindWarehouse, SafetyStock: inventory.MaxUnits, AsOf: epoch},
		"excluded regions":    {Location: "WH-4", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"DE", "US-CA"}, AsOf: at(4)},
		// The codec does not validate: these reach inventory, which rejects them.
		"no time":                    {Location: "WH-1", Kind: inventory.KindWarehouse},
		"unknown kind":               {Location: "X", Kind: inventory.LocationKind(42), AsOf: at(0)},
		"merchant without id":        {Location: "M-2", Kind: inventory.KindMerchant, AsOf: at(0)},
		"unsorted duplicate channel": {Location: "ST-2", Kind: inventory.KindStore, Channels: []string{"web", "bad channel!", "web"}, AsOf: at(0)},
		"negative safety stock":      {Location: "WH-3", Kind: inventory.KindWarehouse, SafetyStock: -1, AsOf: at(0)},
		"unsorted invalid regions":   {Location: "WH-5", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US", "usa", "US"}, AsOf: at(0)},
	}
}

func merchantPolicyCases() map[string]inventory.MerchantPolicy {
	return map[string]inventory.MerchantPolicy{
		"default ttl":  {MerchantID: "acme", AsOf: at(1)},
		"one hour":     {MerchantID: "acme", StaleAfter: time.Hour, AsOf: at(2)},
		"sub-second":   {MerchantID: "fast", StaleAfter: 1500 * time.Millisecond, AsOf: at(2)},
		"nanosecond":   {MerchantID: "fast", StaleAfter: time.Nanosecond, AsOf: at(2)},
		"maximum":      {MerchantID: "slow", StaleAfter: inventory.MaxStaleAfter, AsOf: at(3)},
		"negative ttl": {MerchantID: "odd", StaleAfter: -time.Minute, AsOf: at(3)}, // decodable, invalid
		"no time":      {MerchantID: "acme", StaleAfter: time.Minute},
	}
}

// encodePolicy wraps a domain policy in its topic envelope and marshals it.
func encodePolicy(t testing.TB, p any) []byte {
	t.Helper()
	env := &pb.PolicyEvent{}
	switch p := p.(type) {
	case inventory.LocationPolicy:
		env.Policy = &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(p)}
	case inventory.MerchantPolicy:
		env.Policy = &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(p)}
	default:
		t.Fatalf("no policy envelope for %T", p)
	}
	return mustMarshal(t, env)
}

func TestLocationPolicyRoundTrip(t *testing.T) {
	for name, want := range locationPolicyCases() {
		t.Run(name, func(t *testing.T) {
			data := encodePolicy(t, want)
			env, err := codecs.DecodePolicyEvent(data)
			if err != nil {
				t.Fatalf("DecodePolicyEvent: %v", err)
			}
			if env.GetLocation() == nil || env.GetMerchant() != nil {
				t.Fatalf("decoded %v, want a location policy", env)
			}
			got, err := codecs.LocationPolicyFromProto(env.GetLocation())
			if err != nil {
				t.Fatalf("LocationPolicyFromProto: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the policy\n got: %#v\nwant: %#v", got, want)
			}
			if again := encodePolicy(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
			// The table codec stores the same envelope byte for byte.
			stored, err := codecs.PolicyTable.Encode(env)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stored, data) {
				t.Errorf("PolicyTable.Encode gave\n%x\nwant\n%x", stored, data)
			}
			v, err := codecs.PolicyTable.Decode(stored)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(v.(*pb.PolicyEvent), env) {
				t.Errorf("PolicyTable round trip gave %v, want %v", v, env)
			}
		})
	}
}

func TestMerchantPolicyRoundTrip(t *testing.T) {
	for name, want := range merchantPolicyCases() {
		t.Run(name, func(t *testing.T) {
			data := encodePolicy(t, want)
			env, err := codecs.DecodePolicyEvent(data)
			if err != nil {
				t.Fatalf("DecodePolicyEvent: %v", err)
			}
			if env.GetMerchant() == nil || env.GetLocation() != nil {
				t.Fatalf("decoded %v, want a merchant policy", env)
			}
			// Zero means "the configured default" and is left off the wire.
			if (env.GetMerchant().GetStaleAfter() != nil) != (want.StaleAfter != 0) {
				t.Errorf("stale_after on the wire = %v for StaleAfter %s", env.GetMerchant().GetStaleAfter(), want.StaleAfter)
			}
			got, err := codecs.MerchantPolicyFromProto(env.GetMerchant())
			if err != nil {
				t.Fatalf("MerchantPolicyFromProto: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the policy\n got: %#v\nwant: %#v", got, want)
			}
			if again := encodePolicy(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
		})
	}
}

// Wire messages decode field by field (the direction written from the
// .proto, not from the encoder).
func TestPolicyFromWire(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	lp, err := codecs.LocationPolicyFromProto(&pb.LocationPolicy{
		Location: "ST-1", Kind: pb.LocationKind_LOCATION_KIND_STORE, Closed: true,
		Channels: []string{"web"}, SafetyStock: 3, ExcludedRegions: []string{"US-CA", "FR"}, AsOf: timestamppb.New(at(5).In(zone)),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := inventory.LocationPolicy{Location: "ST-1", Kind: inventory.KindStore, Closed: true, Channels: []string{"web"}, SafetyStock: 3,
		ExcludedRegions: []string{"US-CA", "FR"}, AsOf: at(5)}
	if !reflect.DeepEqual(lp, want) {
		t.Errorf("location policy %#v, want %#v", lp, want)
	}
	mp, err := codecs.MerchantPolicyFromProto(&pb.MerchantPolicy{MerchantId: "acme", StaleAfter: durationpb.New(90 * time.Minute), AsOf: timestamppb.New(at(6))})
	if err != nil {
		t.Fatal(err)
	}
	if wantM := (inventory.MerchantPolicy{MerchantID: "acme", StaleAfter: 90 * time.Minute, AsOf: at(6)}); !reflect.DeepEqual(mp, wantM) {
		t.Errorf("merchant policy %#v, want %#v", mp, wantM)
	}
	// An explicit zero duration is the default, like an absent one.
	mp, err = codecs.MerchantPolicyFromProto(&pb.MerchantPolicy{MerchantId: "acme", StaleAfter: &durationpb.Duration{}, AsOf: timestamppb.New(at(6))})
	if err != nil || mp.StaleAfter != 0 {
		t.Errorf("zero stale_after gave %#v, %v; want StaleAfter 0", mp, err)
	}
	// A nil message converts to the zero policy (which inventory rejects).
	if lp, err := codecs.LocationPolicyFromProto(nil); err != nil || !reflect.DeepEqual(lp, inventory.LocationPolicy{}) {
		t.Errorf("LocationPolicyFromProto(nil) = %#v, %v", lp, err)
	}
	if mp, err := codecs.MerchantPolicyFromProto(nil); err != nil || !reflect.DeepEqual(mp, inventory.MerchantPolicy{}) {
		t.Errorf("MerchantPolicyFromProto(nil) = %#v, %v", mp, err)
	}
}

// A policy that went through the codecs and inventory.Apply*Policy comes out
// of the table codec unchanged: the stored value is a fixed point.
func TestAppliedPolicyIsStable(t *testing.T) {
	in := inventory.LocationPolicy{Location: "ST-1", Kind: inventory.KindStore, Channels: []string{"web", "store-pickup", "web"},
		ExcludedRegions: []string{"US-CA", "DE", "US-CA"}, AsOf: at(1).In(time.FixedZone("x", 3600))}
	out, res, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, in)
	if err != nil || !res.Changed {
		t.Fatalf("ApplyLocationPolicy: %v, %+v", err, res)
	}
	back, err := codecs.LocationPolicyFromProto(codecs.LocationPolicyToProto(out))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, out) {
		t.Errorf("stored policy reads back as %#v, want %#v", back, out)
	}
	again, res, err := inventory.ApplyLocationPolicy(back, true, back)
	if err != nil || res.Changed || !reflect.DeepEqual(again, out) {
		t.Errorf("re-applying the stored policy: %#v, %+v, %v; want unchanged", again, res, err)
	}
}

func TestDecodePolicyEventMalformed(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"truncated varint":   {[]byte{0xff, 0xff, 0xff}, "not a skuflow.v1.PolicyEvent"},
		"invalid wire type":  {[]byte{0x0f}, "not a skuflow.v1.PolicyEvent"},
		"truncated length":   {[]byte{0x0a, 0x05, 0x01}, "not a skuflow.v1.PolicyEvent"},
		"text":               {[]byte("not protobuf at all"), "not a skuflow.v1.PolicyEvent"},
		"invalid utf-8":      {[]byte{0x0a, 0x03, 0x0a, 0x01, 0xff}, "not a skuflow.v1.PolicyEvent"},
		"nil":                {nil, "no policy set"},
		"empty":              {[]byte{}, "no policy set"},
		"empty envelope":     {mustMarshal(t, &pb.PolicyEvent{}), "no policy set"},
		"only unknown field": {[]byte{0x18, 0x01}, "no policy set"},
	} {
		t.Run(name, func(t *testing.T) {
			env, err := codecs.DecodePolicyEvent(tc.data)
			if err == nil {
				t.Fatalf("DecodePolicyEvent(%x) = %v, want an error", tc.data, env)
			}
			if env != nil {
				t.Errorf("DecodePolicyEvent(%x) returned %v with its error", tc.data, env)
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

// Invalid timestamps and durations decode into the envelope and are
// rejected, as ErrMalformed, by the conversion to the domain.
func TestPolicyFromProtoMalformed(t *testing.T) {
	type conv func(*pb.PolicyEvent) error
	location := func(env *pb.PolicyEvent) error {
		_, err := codecs.LocationPolicyFromProto(env.GetLocation())
		return err
	}
	merchant := func(env *pb.PolicyEvent) error {
		_, err := codecs.MerchantPolicyFromProto(env.GetMerchant())
		return err
	}
	type convCase struct {
		env  *pb.PolicyEvent
		conv conv
		want string
	}
	cases := map[string]convCase{}
	for _, ts := range badTimestamps() {
		id := fmt.Sprintf("%ds%dns", ts.GetSeconds(), ts.GetNanos())
		cases["location as_of "+id] = convCase{&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{Location: "WH-1", Kind: 1, AsOf: ts}}}, location, "as_of"}
		cases["merchant as_of "+id] = convCase{&pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{MerchantId: "acme", AsOf: ts}}}, merchant, "as_of"}
	}
	for _, d := range []*durationpb.Duration{
		{Seconds: 1, Nanos: -1},              // signs differ
		{Seconds: -1, Nanos: 1},              // signs differ
		{Nanos: 1e9},                         // nanos out of range
		{Seconds: 315576000001},              // beyond 10000 years
		{Seconds: math.MinInt64, Nanos: -1},  // far out of range
		{Seconds: math.MaxInt64, Nanos: 1e9}, // both out of range
	} {
		cases[fmt.Sprintf("stale_after %ds%dns", d.GetSeconds(), d.GetNanos())] = convCase{&pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{MerchantId: "acme", StaleAfter: d, AsOf: timestamppb.New(at(0))}}}, merchant, "stale_after"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env, err := codecs.DecodePolicyEvent(mustMarshal(t, tc.env))
			if err != nil {
				t.Fatalf("DecodePolicyEvent: %v", err)
			}
			err = tc.conv(env)
			if err == nil {
				t.Fatalf("conversion of %v succeeded, want an error", env)
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

func TestPolicyTableEncodeWrongType(t *testing.T) {
	for _, tc := range []struct {
		value any
		got   string
	}{
		{pb.PolicyEvent{}, "skuflowv1.PolicyEvent"},
		{&pb.LocationPolicy{}, "*skuflowv1.LocationPolicy"},
		{inventory.LocationPolicy{}, "inventory.LocationPolicy"},
		{nil, "<nil>"},
	} {
		data, err := codecs.PolicyTable.Encode(tc.value)
		if err == nil {
			t.Errorf("PolicyTable.Encode(%T) = %x, want an error", tc.value, data)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "cannot encode "+tc.got) || !strings.Contains(msg, "*skuflowv1.PolicyEvent") {
			t.Errorf("PolicyTable.Encode(%T) error %q should name %s and *skuflowv1.PolicyEvent", tc.value, msg, tc.got)
		}
	}
}

func TestDecodeStockTick(t *testing.T) {
	for name, want := range map[string]*pb.StockTick{
		"full":            {Sku: sku, At: timestamppb.New(at(5).Add(7 * time.Nanosecond)), PublishedVersion: "0123456789abcdef"},
		"never published": {Sku: sku, At: timestamppb.New(at(5))},
		"no sku":          {At: timestamppb.New(at(5))}, // the processor checks the key
		"late":            {Sku: sku, At: timestamppb.New(time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC))},
		// Ticks at the epoch, in year 1 or in 9999 decode today, but should
		// not (see processors/stock TestTickOutsideDomainTimeRangeIsDeadLettered):
		// they are left out so that the fix does not break this test.
	} {
		t.Run(name, func(t *testing.T) {
			data := mustMarshal(t, want)
			got, err := codecs.DecodeStockTick(data)
			if err != nil {
				t.Fatalf("DecodeStockTick: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("decoded %v, want %v", got, want)
			}
			if again := mustMarshal(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encoding gave different bytes:\n%x\n%x", again, data)
			}
		})
	}
}

func TestDecodeStockTickMalformed(t *testing.T) {
	type tickCase struct {
		data []byte
		want string
	}
	cases := map[string]tickCase{
		"truncated varint":  {[]byte{0xff, 0xff, 0xff}, "not a skuflow.v1.StockTick"},
		"invalid wire type": {[]byte{0x0f}, "not a skuflow.v1.StockTick"},
		"truncated length":  {[]byte{0x0a, 0x05, 0x01}, "not a skuflow.v1.StockTick"},
		"invalid utf-8 sku": {[]byte{0x0a, 0x01, 0xff}, "not a skuflow.v1.StockTick"},
		"nil":               {nil, "no time"},
		"empty":             {[]byte{}, "no time"},
		"missing time":      {mustMarshal(t, &pb.StockTick{Sku: sku, PublishedVersion: "v"}), "no time"},
		"unknown field":     {[]byte{0x20, 0x01}, "no time"},
	}
	for _, ts := range badTimestamps() {
		cases[fmt.Sprintf("invalid time %ds%dns", ts.GetSeconds(), ts.GetNanos())] = tickCase{mustMarshal(t, &pb.StockTick{Sku: sku, At: ts}), "stock tick time"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tick, err := codecs.DecodeStockTick(tc.data)
			if err == nil {
				t.Fatalf("DecodeStockTick(%x) = %v, want an error", tc.data, tick)
			}
			if tick != nil {
				t.Errorf("DecodeStockTick(%x) returned %v with its error", tc.data, tick)
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

// Operators write policies as protojson (`skuflow emit --topic policies`):
// excluded regions arrive under their JSON name, and the domain checks them.
func TestLocationPolicyExcludedRegionsJSON(t *testing.T) {
	var env pb.PolicyEvent
	line := `{"location":{"location":"WH-EU","kind":"LOCATION_KIND_WAREHOUSE","excludedRegions":["US","CA-QC"],"asOf":"2026-11-21T10:00:00Z"}}`
	if err := protojson.Unmarshal([]byte(line), &env); err != nil {
		t.Fatal(err)
	}
	p, err := codecs.LocationPolicyFromProto(env.GetLocation())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil || !slices.Equal(p.ExcludedRegions, []string{"US", "CA-QC"}) {
		t.Errorf("policy %+v, Validate %v", p, err)
	}
	out, err := protojson.Marshal(codecs.LocationPolicyToProto(p))
	if err != nil || !strings.Contains(string(out), "excludedRegions") {
		t.Fatalf("protojson %s, %v", out, err)
	}
	var back pb.LocationPolicy
	if err := protojson.Unmarshal(out, &back); err != nil || !proto.Equal(&back, env.GetLocation()) {
		t.Errorf("protojson round trip %v, %v; want %v", &back, err, env.GetLocation())
	}
}

// The answer carries the region it was evaluated for and flags the
// locations that do not ship there; a region-less answer encodes exactly as
// before (neither field on the wire).
func TestSnapshotToProtoShipTo(t *testing.T) {
	s := inventory.State{SKU: sku, Locations: []inventory.Location{
		{ID: "WH-1", HasLevel: true, Level: 5, LevelAsOf: at(1)},
		{ID: "WH-2", HasLevel: true, Level: 3, LevelAsOf: at(1)},
	}}
	p := inventory.Policies{Channels: []string{"web"}, Locations: map[string]inventory.LocationPolicy{
		"WH-1": {Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US"}, AsOf: at(0)},
	}}
	plain := codecs.SnapshotToProto(inventory.Evaluate(s, p, at(2)))
	if plain.GetShipToRegion() != "" || plain.GetLocations()[0].GetRegionExcluded() {
		t.Fatalf("region-less answer %v", plain)
	}
	p.ShipTo = "US-CA"
	m := codecs.SnapshotToProto(inventory.Evaluate(s, p, at(2)))
	if m.GetShipToRegion() != "US-CA" || !m.GetLocations()[0].GetRegionExcluded() || m.GetLocations()[1].GetRegionExcluded() {
		t.Fatalf("answer for US-CA %v", m)
	}
	c := m.GetChannels()[0]
	if c.GetAvailable() != 3 || len(c.GetReasons()) != 1 || c.GetReasons()[0].GetCode() != pb.Reason_LOCATION_EXCLUDED_REGION ||
		c.GetReasons()[0].GetLocation() != "WH-1" {
		t.Errorf("web for US-CA %v", c)
	}
	if int32(pb.Reason_LOCATION_EXCLUDED_REGION) != int32(inventory.ReasonLocationExcludedRegion) {
		t.Error("reason code numbers differ")
	}
}
