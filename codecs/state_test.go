package codecs_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

var epoch = time.Unix(0, 0).UTC()

func stateCases(t testing.TB) map[string]inventory.State {
	zoned := time.FixedZone("UTC+2", 2*60*60)
	return map[string]inventory.State{
		"zero":     {},
		"sku only": {SKU: sku},
		"one level": applyAll(t,
			lvl("WH-1", 7, at(0), 3),
		),
		"adjustments without a level": applyAll(t,
			adj("b", "WH-1", -4, at(2)),
			adj("a", "WH-1", 9, at(1)),
		),
		"zoned source times": applyAll(t,
			lvl("WH-1", 5, at(0).In(zoned), 1),
			adj("x", "WH-1", 1, at(1).In(zoned)),
		),
		"several locations":          richState(t),
		"areas and every sku policy": policyState(t),
		"policies only": applyAll(t,
			sellable("web", false, at(1).Add(7*time.Nanosecond)),
			inventory.SalesCap{SKU: sku, Channel: "web", Cleared: true, AsOf: at(2)},
			backorder(0, at(3)),
			inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Cleared: true, AsOf: at(4)},
		),
		"hand-built extremes": {
			SKU: strings.Repeat("s", inventory.MaxIDLength),
			Locations: []inventory.Location{
				// With has_level set, a level time of 0 ns decodes as the
				// Unix epoch, never as the zero time.
				{ID: "A", HasLevel: true, Level: 0, LevelAsOf: epoch, LevelSeq: math.MaxUint64},
				{ID: "B", HasLevel: true, Level: inventory.MaxUnits, LevelAsOf: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC),
					Adjustment: []inventory.Adjustment{
						{EventID: strings.Repeat("e", inventory.MaxEventIDLen), Delta: -inventory.MaxUnits, OccurredAt: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC)},
					}},
				{ID: "C", Adjustment: []inventory.Adjustment{
					{EventID: "at-epoch", Delta: 1, OccurredAt: epoch},
					{EventID: "later", Delta: -1, OccurredAt: at(1)},
				}},
				{ID: "C", Area: inventory.AreaBackroom, HasLevel: true, Level: 1, LevelAsOf: at(1)},
				{ID: "C", Area: inventory.AreaFloor},
			},
			ChannelRules: []inventory.ChannelRule{
				{Channel: "a", Sellable: true, AsOf: epoch},
				{Channel: strings.Repeat("c", inventory.MaxIDLength), AsOf: time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC)},
			},
			SalesCaps: []inventory.SalesCapRule{
				{Channel: "a", Limit: inventory.MaxUnits, WindowStart: epoch, WindowEnd: at(1), AsOf: at(0)},
				{Channel: "b", Cleared: true, AsOf: at(0)},
				{Channel: "c", Limit: 0, WindowStart: at(0), WindowEnd: at(0).Add(time.Nanosecond), AsOf: epoch},
			},
			Backorder: inventory.BackorderRule{Limit: inventory.MaxUnits, AsOf: epoch},
			SafetyOverrides: []inventory.SafetyOverrideRule{
				{Location: "A", Units: inventory.MaxUnits, AsOf: at(0)},
				{Location: "B", Cleared: true, AsOf: at(0)},
			},
		},
	}
}

func TestStateRoundTrip(t *testing.T) {
	for name, want := range stateCases(t) {
		t.Run(name, func(t *testing.T) {
			data, err := codecs.State{}.Encode(want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			v, err := codecs.State{}.Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, ok := v.(inventory.State)
			if !ok {
				t.Fatalf("Decode returned %T, want inventory.State", v)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the state\n got: %#v\nwant: %#v", got, want)
			}
			// The derived answer, version included, survives too.
			pol := testPolicies()
			if g, w := inventory.Evaluate(got, pol, at(30)).Version, inventory.Evaluate(want, pol, at(30)).Version; g != w {
				t.Errorf("snapshot version %s after round trip, want %s", g, w)
			}
			again, err := codecs.State{}.Encode(got)
			if err != nil {
				t.Fatalf("re-Encode: %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("re-encoding the decoded state gave different bytes:\n%x\n%x", again, data)
			}
		})
	}
}

func TestStateEncodingIsDeterministic(t *testing.T) {
	for name, s := range stateCases(t) {
		t.Run(name, func(t *testing.T) {
			first, err := codecs.State{}.Encode(s)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			for i := range 20 {
				again, err := codecs.State{}.Encode(s)
				if err != nil {
					t.Fatalf("Encode #%d: %v", i, err)
				}
				if !bytes.Equal(first, again) {
					t.Fatalf("Encode #%d gave different bytes:\n%x\n%x", i, again, first)
				}
			}
		})
	}
}

// The same events in another order give the same state, so the table
// holds the same bytes whatever order replicas saw the events in.
func TestStateBytesIndependentOfEventOrder(t *testing.T) {
	evs := []inventory.Event{
		lvl("WH-2", 3, at(1), 1),
		adj("b", "WH-1", 2, at(2)),
		lvl("WH-1", 10, at(1), 1),
		adj("a", "WH-1", -1, at(3)),
		adj("c", "WH-2", 5, at(4)),
	}
	reversed := make([]inventory.Event, len(evs))
	for i, ev := range evs {
		reversed[len(evs)-1-i] = ev
	}
	a, err := codecs.State{}.Encode(applyAll(t, evs...))
	if err != nil {
		t.Fatal(err)
	}
	b, err := codecs.State{}.Encode(applyAll(t, reversed...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("different bytes for the same events in another order:\n%x\n%x", a, b)
	}
}

func TestStateDecodeEmptyIsZeroState(t *testing.T) {
	for _, data := range [][]byte{nil, {}} {
		v, err := codecs.State{}.Decode(data)
		if err != nil {
			t.Fatalf("Decode(%x): %v", data, err)
		}
		if !reflect.DeepEqual(v, inventory.State{}) {
			t.Errorf("Decode(%x) = %#v, want the zero state", data, v)
		}
	}
}

func TestStateDecodeGarbage(t *testing.T) {
	v, err := codecs.State{}.Decode([]byte{0xff, 0xff, 0xff})
	if err == nil {
		t.Fatalf("Decode(garbage) = %#v, want an error", v)
	}
	if !strings.Contains(err.Error(), "SkuState") {
		t.Errorf("error %q does not name the message type", err)
	}
}

func TestStateEncodeWrongType(t *testing.T) {
	s := inventory.State{SKU: sku}
	for _, tc := range []struct {
		value any
		name  string
	}{
		{&s, "*inventory.State"},
		{"SKU-1", "string"},
		{nil, "<nil>"},
		{inventory.Snapshot{}, "inventory.Snapshot"},
	} {
		data, err := codecs.State{}.Encode(tc.value)
		if err == nil {
			t.Errorf("Encode(%T) = %x, want an error", tc.value, data)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("Encode(%T) error %q does not name the type %s", tc.value, err, tc.name)
		}
	}
}

// A state stored before reservations counted shipped units (format 0) is
// upgraded on decoding: a fulfilled reservation records its units as
// shipped; cap usage stays; the state is stored in the current format
// from then on.
func TestDecodeUpgradesFormat0(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := &pb.SkuState{Sku: "SKU-1",
		SalesCaps: []*pb.SalesCapState{{Channel: "web", Limit: 20, WindowStartUnixNano: start.UnixNano(),
			WindowEndUnixNano: start.Add(time.Hour).UnixNano(), AsOfUnixNano: start.UnixNano()}},
		Reservations: []*pb.ReservationState{{ReservationId: "r-1", OrderId: "o-1", Channel: "web", Quantity: 2,
			Status: int32(inventory.StatusFulfilled), DecidedAtUnixNano: start.Add(time.Minute).UnixNano(), ClosedAtUnixNano: start.Add(2 * time.Minute).UnixNano()}},
		CapUsage: []*pb.CapUsageState{{Channel: "web", WindowStartUnixNano: start.UnixNano(), Used: 7}},
	}
	data, err := proto.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codecs.State{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	s := v.(inventory.State)
	if len(s.CapUsage) != 1 || s.CapUsage[0].Used != 7 || s.Reservations[0].Fulfilled != 2 {
		t.Fatalf("format-0 state decoded as %+v", s)
	}
	again, err := codecs.State{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	var m pb.SkuState
	if err := proto.Unmarshal(again, &m); err != nil || m.GetFormat() != inventory.StateFormat {
		t.Fatalf("re-encoded format %d (%v), want %d", m.GetFormat(), err, inventory.StateFormat)
	}
	if v2, err := (codecs.State{}).Decode(again); err != nil || !reflect.DeepEqual(v2, s) {
		t.Fatalf("a current-format state was upgraded again: %+v %v", v2, err)
	}
}

// A state written by a newer binary (a format above inventory.StateFormat)
// is refused with a clear error, never read with what only the newer
// binary knows dropped (and then written back without it).
func TestDecodeRefusesNewerFormat(t *testing.T) {
	data, err := proto.Marshal(&pb.SkuState{Sku: "SKU-1", Format: inventory.StateFormat + 1,
		Locations: []*pb.LocationState{{Location: "WH-1", HasLevel: true, LevelOnHand: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := codecs.State{}.Decode(data)
	if !errors.Is(err, codecs.ErrNewerStateFormat) || v != nil || !strings.Contains(err.Error(), `"SKU-1"`) {
		t.Fatalf("decode of a newer format: %v %v, want ErrNewerStateFormat naming the sku", v, err)
	}
	// The current format still decodes.
	data, err = proto.Marshal(&pb.SkuState{Sku: "SKU-1", Format: inventory.StateFormat})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (codecs.State{}).Decode(data); err != nil {
		t.Fatal(err)
	}
}
