package codecs_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func TestProtoEncodeWrongTypeNamesIt(t *testing.T) {
	avail := &pb.Availability{Sku: sku}
	for _, tc := range []struct {
		codec interface {
			Encode(any) ([]byte, error)
		}
		value any
		got   string // %T of value
		want  string // %T of the codec's message
	}{
		{codecs.Availability, pb.Availability{}, "skuflowv1.Availability", "*skuflowv1.Availability"},
		{codecs.Availability, &pb.DeadLetter{}, "*skuflowv1.DeadLetter", "*skuflowv1.Availability"},
		{codecs.Availability, "SKU-1", "string", "*skuflowv1.Availability"},
		{codecs.Availability, nil, "<nil>", "*skuflowv1.Availability"},
		{codecs.Availability, inventory.Snapshot{}, "inventory.Snapshot", "*skuflowv1.Availability"},
		{codecs.DeadLetter, avail, "*skuflowv1.Availability", "*skuflowv1.DeadLetter"},
		{codecs.DeadLetter, []byte("raw"), "[]uint8", "*skuflowv1.DeadLetter"},
	} {
		data, err := tc.codec.Encode(tc.value)
		if err == nil {
			t.Errorf("%T.Encode(%T) = %x, want an error", tc.codec, tc.value, data)
			continue
		}
		if data != nil {
			t.Errorf("%T.Encode(%T) returned bytes %x with its error", tc.codec, tc.value, data)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot encode "+tc.got) || !strings.Contains(msg, tc.want) {
			t.Errorf("%T.Encode(%T) error %q should name %s and %s", tc.codec, tc.value, msg, tc.got, tc.want)
		}
	}
}

func TestAvailabilityRoundTrip(t *testing.T) {
	for name, tc := range map[string]struct {
		s   inventory.State
		pol inventory.Policies
		now time.Time
	}{
		"empty":                    {inventory.State{SKU: sku}, inventory.Policies{}, at(0)},
		"empty with channels":      {inventory.State{SKU: sku}, testPolicies(), at(0)},
		"rich":                     {richState(t), inventory.Policies{Channels: channels}, at(10)},
		"no level":                 {applyAll(t, adj("a", "WH-1", 3, at(1))), inventory.Policies{Channels: []string{"web"}}, at(1)},
		"every policy":             {policyState(t), testPolicies(), at(30)},
		"every policy, all stale":  {policyState(t), testPolicies(), at(7200)},
		"every policy, before all": {policyState(t), testPolicies(), at(-10).Add(-123 * time.Nanosecond)},
	} {
		t.Run(name, func(t *testing.T) {
			snap := inventory.Evaluate(tc.s, tc.pol, tc.now)
			m := codecs.SnapshotToProto(snap)
			checkSnapshotProto(t, snap, m)
			data, err := codecs.Availability.Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			v, err := codecs.Availability.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, ok := v.(*pb.Availability)
			if !ok {
				t.Fatalf("Decode returned %T", v)
			}
			if !proto.Equal(got, m) {
				t.Fatalf("round trip changed the message\n got: %v\nwant: %v", got, m)
			}
			checkSnapshotProto(t, snap, got)
			for i := range 10 {
				again, err := codecs.Availability.Encode(got)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, data) {
					t.Fatalf("Encode #%d gave different bytes:\n%x\n%x", i, again, data)
				}
			}
		})
	}
}

// SnapshotToProto carries every channel line, reason and the presence of
// cap_remaining (set exactly when a cap is active, even at 0).
func TestSnapshotToProtoChannels(t *testing.T) {
	snap := inventory.Evaluate(policyState(t), testPolicies(), at(30))
	m := codecs.SnapshotToProto(snap)
	checkSnapshotProto(t, snap, m)

	byChannel := map[string]*pb.ChannelAvailability{}
	var order []string
	for _, c := range m.GetChannels() {
		byChannel[c.GetChannel()] = c
		order = append(order, c.GetChannel())
	}
	if want := []string{"kiosk", "marketplace", "store-pickup", "web"}; !slices.Equal(order, want) {
		t.Fatalf("channels %q, want %q (sorted, one per configured channel)", order, want)
	}
	type capWant struct {
		present bool
		value   int64
	}
	for ch, want := range map[string]capWant{
		"web":          {true, 0}, // exhausted: present although 0
		"store-pickup": {true, 3},
		"kiosk":        {false, 0}, // cleared
		"marketplace":  {false, 0}, // never capped
	} {
		c := byChannel[ch]
		if hasCap(c) != want.present || c.GetCapRemaining() != want.value {
			t.Errorf("%s: cap_remaining present=%v value=%d, want present=%v value=%d",
				ch, hasCap(c), c.GetCapRemaining(), want.present, want.value)
		}
	}
	codes := func(ch string) []pb.Reason_Code {
		var out []pb.Reason_Code
		for _, r := range byChannel[ch].GetReasons() {
			out = append(out, r.GetCode())
		}
		return out
	}
	if got := codes("marketplace"); len(got) == 0 || got[0] != pb.Reason_NOT_SELLABLE {
		t.Errorf("marketplace reasons %v, want NOT_SELLABLE first", got)
	}
	if byChannel["marketplace"].GetSellable() || byChannel["marketplace"].GetAvailable() != 0 {
		t.Errorf("marketplace = %v, want not sellable with nothing available", byChannel["marketplace"])
	}
	if got := codes("web"); len(got) == 0 || got[0] != pb.Reason_CAP_EXHAUSTED {
		t.Errorf("web reasons %v, want CAP_EXHAUSTED first", got)
	}
	for _, want := range []pb.Reason_Code{pb.Reason_LOCATION_CLOSED, pb.Reason_LOCATION_INELIGIBLE, pb.Reason_LOCATION_STALE} {
		if !slices.Contains(codes("kiosk"), want) {
			t.Errorf("kiosk reasons %v lack %v", codes("kiosk"), want)
		}
	}
	// The numeric values are the contract between inventory and the wire.
	for code, want := range map[inventory.ReasonCode]pb.Reason_Code{
		inventory.ReasonNotSellable:        pb.Reason_NOT_SELLABLE,
		inventory.ReasonCapExhausted:       pb.Reason_CAP_EXHAUSTED,
		inventory.ReasonLocationClosed:     pb.Reason_LOCATION_CLOSED,
		inventory.ReasonLocationIneligible: pb.Reason_LOCATION_INELIGIBLE,
		inventory.ReasonLocationStale:      pb.Reason_LOCATION_STALE,
	} {
		if int32(code) != int32(want) {
			t.Errorf("inventory reason %d is %v (%d) on the wire", code, want, want)
		}
	}
	for kind, want := range map[inventory.LocationKind]pb.LocationKind{
		inventory.KindWarehouse: pb.LocationKind_LOCATION_KIND_WAREHOUSE,
		inventory.KindStore:     pb.LocationKind_LOCATION_KIND_STORE,
		inventory.KindMerchant:  pb.LocationKind_LOCATION_KIND_MERCHANT,
	} {
		if int32(kind) != int32(want) {
			t.Errorf("inventory kind %v is %v on the wire", kind, want)
		}
	}
	if m.GetNextChangeAt() == nil || !m.GetNextChangeAt().AsTime().Equal(at(100)) {
		t.Errorf("next_change_at %v, want %v (the caps' window end)", m.GetNextChangeAt(), at(100))
	}
	if !m.GetEvaluatedAt().AsTime().Equal(at(30)) {
		t.Errorf("evaluated_at %v, want %v", m.GetEvaluatedAt(), at(30))
	}
}

// An answer with nothing time-dependent has no next_change_at.
func TestSnapshotToProtoOmitsZeroTimes(t *testing.T) {
	m := codecs.SnapshotToProto(inventory.Evaluate(applyAll(t, adj("a", "WH-1", 1, at(1))), inventory.Policies{Channels: []string{"web"}}, at(5)))
	if m.GetNextChangeAt() != nil {
		t.Errorf("next_change_at %v, want absent", m.GetNextChangeAt())
	}
	l := m.GetLocations()[0]
	if l.GetLevelAsOf() != nil || l.GetStaleAt() != nil {
		t.Errorf("location %v: level_as_of and stale_at should be absent", l)
	}
	if hasCap(m.GetChannels()[0]) {
		t.Errorf("cap_remaining present without a cap: %v", m.GetChannels()[0])
	}
}

// checkSnapshotProto checks SnapshotToProto field by field.
func checkSnapshotProto(t *testing.T, snap inventory.Snapshot, m *pb.Availability) {
	t.Helper()
	if m.GetSku() != snap.SKU || m.GetOnHand() != snap.OnHand || m.GetVersion() != snap.Version {
		t.Errorf("SnapshotToProto header = %v, want %+v", m, snap)
	}
	checkTS(t, "updated_at", m.GetUpdatedAt(), snap.UpdatedAt)
	checkTS(t, "next_change_at", m.GetNextChangeAt(), snap.NextChangeAt)
	checkTS(t, "evaluated_at", m.GetEvaluatedAt(), snap.EvaluatedAt)
	if len(m.GetLocations()) != len(snap.Locations) {
		t.Fatalf("%d locations, want %d", len(m.GetLocations()), len(snap.Locations))
	}
	for i, l := range snap.Locations {
		ml := m.GetLocations()[i]
		if ml.GetLocation() != l.ID || ml.GetOnHand() != l.OnHand || int32(ml.GetKind()) != int32(l.Kind) ||
			ml.GetMerchantId() != l.MerchantID || ml.GetSafetyStock() != l.SafetyStock || ml.GetUsable() != l.Usable ||
			ml.GetClosed() != l.Closed || ml.GetStale() != l.Stale || !slices.Equal(ml.GetChannels(), l.Channels) {
			t.Errorf("location %d = %v, want %+v", i, ml, l)
		}
		checkTS(t, "level_as_of", ml.GetLevelAsOf(), l.LevelAsOf)
		checkTS(t, "stale_at", ml.GetStaleAt(), l.StaleAt)
		if len(ml.GetAreas()) != len(l.Areas) {
			t.Errorf("location %s: %d areas, want %d", l.ID, len(ml.GetAreas()), len(l.Areas))
			continue
		}
		for j, a := range l.Areas {
			if ma := ml.GetAreas()[j]; ma.GetArea() != a.Area || ma.GetOnHand() != a.OnHand {
				t.Errorf("location %s area %d = %v, want %+v", l.ID, j, ma, a)
			}
		}
	}
	if len(m.GetChannels()) != len(snap.Channels) {
		t.Fatalf("%d channels, want %d", len(m.GetChannels()), len(snap.Channels))
	}
	for i, c := range snap.Channels {
		mc := m.GetChannels()[i]
		if mc.GetChannel() != c.Channel || mc.GetAvailable() != c.Available || mc.GetBackorderable() != c.Backorderable ||
			mc.GetSellable() != c.Sellable || mc.GetUsable() != c.Usable || mc.GetReserved() != c.Reserved {
			t.Errorf("channel %d = %v, want %+v", i, mc, c)
		}
		if hasCap(mc) != c.HasCap || mc.GetCapRemaining() != c.CapRemaining {
			t.Errorf("channel %s cap_remaining present=%v %d, want present=%v %d",
				c.Channel, hasCap(mc), mc.GetCapRemaining(), c.HasCap, c.CapRemaining)
		}
		if len(mc.GetReasons()) != len(c.Reasons) {
			t.Errorf("channel %s: reasons %v, want %+v", c.Channel, mc.GetReasons(), c.Reasons)
			continue
		}
		for j, r := range c.Reasons {
			mr := mc.GetReasons()[j]
			if int32(mr.GetCode()) != int32(r.Code) || mr.GetLocation() != r.Location || mr.GetMessage() != r.Message {
				t.Errorf("channel %s reason %d = %v, want %+v", c.Channel, j, mr, r)
			}
		}
	}
}

// checkTS: a zero time is an absent timestamp, anything else the same instant.
func checkTS(t *testing.T, field string, ts *timestamppb.Timestamp, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if ts != nil {
			t.Errorf("%s = %v, want absent", field, ts)
		}
		return
	}
	if ts == nil || !ts.AsTime().Equal(want) {
		t.Errorf("%s = %v, want %v", field, ts, want)
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	m := &pb.DeadLetter{
		Topic: "supply", Partition: 3, Offset: 1 << 40, Key: []byte(sku), Value: []byte{0xff, 0x00, 0x01},
		Reason: "malformed message: x", Group: "skuflow-stock", MessageTime: timestamppb.New(at(9)),
	}
	data, err := codecs.DeadLetter.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codecs.DeadLetter.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(v.(*pb.DeadLetter), m) {
		t.Fatalf("round trip changed the message\n got: %v\nwant: %v", v, m)
	}
}

func TestProtoDecodeGarbageNamesType(t *testing.T) {
	v, err := codecs.Availability.Decode([]byte{0x0a, 0x05, 0x01})
	if err == nil {
		t.Fatalf("Decode(garbage) = %v, want an error", v)
	}
	if v != nil {
		t.Errorf("Decode(garbage) returned %v with its error", v)
	}
	if !strings.Contains(err.Error(), "*skuflowv1.Availability") {
		t.Errorf("error %q does not name the message type", err)
	}
}

// Each Decode returns a fresh message: decoding must not share memory with
// earlier results.
func TestProtoDecodeReturnsFreshMessages(t *testing.T) {
	a, err := codecs.Availability.Encode(&pb.Availability{Sku: "A", OnHand: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := codecs.Availability.Encode(&pb.Availability{Sku: "B"})
	if err != nil {
		t.Fatal(err)
	}
	va, err := codecs.Availability.Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := codecs.Availability.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if va.(*pb.Availability).GetSku() != "A" || va.(*pb.Availability).GetOnHand() != 1 || vb.(*pb.Availability).GetOnHand() != 0 {
		t.Fatalf("decoded messages share state: %v, %v", va, vb)
	}
}

// hasCap reports whether the optional cap_remaining is present.
func hasCap(c *pb.ChannelAvailability) bool { return c != nil && c.CapRemaining != nil }
