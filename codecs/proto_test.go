package codecs_test

import (
	"bytes"
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
	for name, s := range map[string]inventory.State{
		"empty":    {SKU: sku},
		"rich":     richState(t),
		"no level": applyAll(t, adj("a", "WH-1", 3, at(1))),
	} {
		t.Run(name, func(t *testing.T) {
			snap := inventory.Availability(s)
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

// checkSnapshotProto checks SnapshotToProto field by field.
func checkSnapshotProto(t *testing.T, snap inventory.Snapshot, m *pb.Availability) {
	t.Helper()
	if m.GetSku() != snap.SKU || m.GetOnHand() != snap.OnHand || m.GetAvailable() != snap.Available || m.GetVersion() != snap.Version {
		t.Errorf("SnapshotToProto header = %v, want %+v", m, snap)
	}
	checkTS(t, "updated_at", m.GetUpdatedAt(), snap.UpdatedAt)
	if len(m.GetLocations()) != len(snap.Locations) {
		t.Fatalf("%d locations, want %d", len(m.GetLocations()), len(snap.Locations))
	}
	for i, l := range snap.Locations {
		ml := m.GetLocations()[i]
		if ml.GetLocation() != l.ID || ml.GetOnHand() != l.OnHand {
			t.Errorf("location %d = %v, want %+v", i, ml, l)
		}
		checkTS(t, "level_as_of", ml.GetLevelAsOf(), l.LevelAsOf)
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
