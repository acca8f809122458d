package codecs_test

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
)

// drawSupplyBytes draws supply messages: encodings of events with any
// field values (empty, long, invalid UTF-8 strings; extreme numbers and
// times), then perhaps an edit the fast path must hand to the generic one
// (a repeated or unknown field, a wrong wire type, a second event, a
// truncation, a flipped byte).
func drawSupplyBytes(t *rapid.T) []byte {
	str := func(label string) string {
		return rapid.SampledFrom(append([]string{"", "SKU-1", "WH-1", "floor", "\xff\xfe", "é", string(make([]byte, 200)), "a\x01b"},
			catalogueSKUs...)).Draw(t, label)
	}
	at := func(label string) time.Time {
		return rapid.SampledFrom([]time.Time{{}, time.Unix(0, 0), time.Unix(1, -1), t0, time.Unix(253402300799, 999999999),
			time.Unix(253402300800, 0), time.Unix(-62135596801, 0)}).Draw(t, label)
	}
	num := func(label string) int64 {
		return rapid.SampledFrom([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 31}).Draw(t, label)
	}
	var ev inventory.Event
	if rapid.Bool().Draw(t, "level") {
		ev = inventory.StockLevel{SKU: str("sku"), Location: str("location"), OnHand: num("on hand"), AsOf: at("as of"),
			Sequence: uint64(num("seq")), Area: str("area")}
	} else {
		ev = inventory.StockAdjustment{EventID: str("id"), SKU: str("sku"), Location: str("location"), Delta: num("delta"),
			OccurredAt: at("occurred"), Area: str("area")}
	}
	m, err := codecs.SupplyEventToProto(ev)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal leniently: invalid UTF-8 must reach the decoder.
	data, err := codecs.MarshalDeterministic(m)
	if err != nil {
		data = protowire.AppendTag(nil, 1, protowire.BytesType)
		data = protowire.AppendString(data, "\x0a\x02\xff\xfe")
	}
	if !rapid.Bool().Draw(t, "edit") {
		return data
	}
	switch rapid.IntRange(0, 5).Draw(t, "edit kind") {
	case 0: // the whole event again (last wins / merge)
		return append(data, data...)
	case 1: // an unknown field at the top level
		return protowire.AppendVarint(protowire.AppendTag(data, 9, protowire.VarintType), 1)
	case 2: // a varint where the envelope wants a message
		return protowire.AppendVarint(protowire.AppendTag(nil, protowire.Number(rapid.IntRange(1, 2).Draw(t, "field")), protowire.VarintType), 5)
	case 3:
		return data[:rapid.IntRange(0, len(data)).Draw(t, "truncate")]
	case 4:
		if len(data) == 0 {
			return data
		}
		i := rapid.IntRange(0, len(data)-1).Draw(t, "flip at")
		out := append([]byte(nil), data...)
		out[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "flip"))
		return out
	default: // an inner field repeated or unknown: append inside the event
		tag := protowire.Number(rapid.IntRange(1, 9).Draw(t, "inner field"))
		inner := protowire.AppendVarint(protowire.AppendTag(nil, tag, protowire.VarintType), 7)
		num, _, n := protowire.ConsumeTag(data)
		body, _ := protowire.ConsumeBytes(data[n:])
		out := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(out, append(append([]byte(nil), body...), inner...))
	}
}

// The fast decoder gives what the protobuf messages give, for well-formed
// and edited messages alike.
func TestPropertySupplyFastPathIsTheGenericPath(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		data := drawSupplyBytes(t)
		ev, err := codecs.DecodeSupplyEvent(data)
		gev, gerr := codecs.DecodeSupplyGeneric(data)
		if (err == nil) != (gerr == nil) || !reflect.DeepEqual(ev, gev) {
			t.Fatalf("DecodeSupplyEvent(%x) = %#v, %v; the generic path gives %#v, %v", data, ev, err, gev, gerr)
		}
		if err != nil && gerr != nil && err.Error() != gerr.Error() {
			t.Fatalf("errors differ: %v / %v", err, gerr)
		}
	})
}

// SKUs as catalogues write them (inventory.ValidateSKU): the longest one
// crosses the one-byte length varint.
var catalogueSKUs = []string{
	"A/B", "Ä-Öl 5/8\" +%", "100% Wolle, Größe XL", "a+b c", "品番/001", "🙂 x", "%2F", "\ufffd",
	strings.Repeat("é", inventory.MaxSKULength/2),
}

// A catalogue SKU comes through the fast decoder as it went in, the same as
// through the generic one, and the event it belongs to is valid.
func TestCatalogueSKUsDecode(t *testing.T) {
	for _, s := range catalogueSKUs {
		for _, ev := range []inventory.Event{
			inventory.StockLevel{SKU: s, Location: "WH-1", OnHand: 5, AsOf: t0, Sequence: 1},
			inventory.StockAdjustment{EventID: "e/1", SKU: s, Location: "WH-1", Delta: -1, OccurredAt: t0, Area: inventory.AreaFloor},
		} {
			data, err := codecs.EncodeSupplyEvent(ev)
			if err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			got, err := codecs.DecodeSupplyEvent(data)
			if err != nil || !reflect.DeepEqual(got, ev) {
				t.Errorf("%q: decoded %#v, %v; want %#v", s, got, err, ev)
			}
			if gev, err := codecs.DecodeSupplyGeneric(data); err != nil || !reflect.DeepEqual(gev, got) {
				t.Errorf("%q: the generic path gives %#v, %v", s, gev, err)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("%q: %v", s, err)
			}
		}
	}
}
