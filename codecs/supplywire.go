package codecs

import (
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
)

// decodeSupplyFast decodes the common shape of a supply message (one
// StockLevel or StockAdjustment, each field at most once, no unknown
// fields, valid UTF-8) straight into the domain event, without building
// the protobuf messages; the stock processor decodes every supply message,
// and the generic path was a tenth of its callback. ok is false for any
// other input, which DecodeSupplyEvent then decodes the generic way (and
// with its errors). TestPropertySupplyFastPathIsTheGenericPath holds the
// two to the same results.
func decodeSupplyFast(data []byte) (ev inventory.Event, ok bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
		return nil, false
	}
	body, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return nil, false // malformed, or more fields after the event
	}
	var f fields
	if !f.parse(body) {
		return nil, false
	}
	if num == 1 { // stock_level: sku 1, location 2, on_hand 3, as_of 4, sequence 5, area 6
		if !f.only(1, 2, 3, 4, 5, 6) || !f.strings(1, 2, 6) || !f.varints(3, 5) {
			return nil, false
		}
		asOf, ok := f.time(4)
		if !ok {
			return nil, false
		}
		return inventory.StockLevel{SKU: f.str[1], Location: f.str[2], OnHand: int64(f.num[3]), AsOf: asOf,
			Sequence: f.num[5], Area: f.str[6]}, true
	}
	// stock_adjustment: event_id 1, sku 2, location 3, delta 4, occurred_at 5, area 6
	if !f.only(1, 2, 3, 4, 5, 6) || !f.strings(1, 2, 3, 6) || !f.varints(4) {
		return nil, false
	}
	at, ok := f.time(5)
	if !ok {
		return nil, false
	}
	return inventory.StockAdjustment{EventID: f.str[1], SKU: f.str[2], Location: f.str[3], Delta: int64(f.num[4]),
		OccurredAt: at, Area: f.str[6]}, true
}

// fields holds fields 1..7 of one message level: kind 1 for bytes, 2 for
// varint (0: absent).
type fields struct {
	seen uint32
	kind [8]uint8
	str  [8]string
	raw  [8][]byte
	num  [8]uint64
}

// parse reads a message of fields 1..7, each at most once; false for
// anything else.
func (f *fields) parse(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 7 || f.seen&(1<<num) != 0 {
			return false
		}
		b = b[n:]
		f.seen |= 1 << num
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			f.kind[num], f.raw[num] = 1, v
			b = b[m:]
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			f.kind[num], f.num[num] = 2, v
			b = b[m:]
		default:
			return false
		}
	}
	return true
}

// only reports whether no field but these is present.
func (f *fields) only(nums ...int) bool {
	seen := f.seen
	for _, n := range nums {
		seen &^= 1 << n
	}
	return seen == 0
}

// strings converts these fields to strings, reporting false if one is a
// varint or not valid UTF-8 (as proto3 strings must be).
func (f *fields) strings(nums ...int) bool {
	for _, n := range nums {
		switch f.kind[n] {
		case 2:
			return false
		case 1:
			if !utf8.Valid(f.raw[n]) {
				return false
			}
			f.str[n] = string(f.raw[n])
		}
	}
	return true
}

// varints reports whether none of these fields is present as bytes.
func (f *fields) varints(nums ...int) bool {
	for _, n := range nums {
		if f.kind[n] == 1 {
			return false
		}
	}
	return true
}

// time reads field i as a google.protobuf.Timestamp (seconds 1, nanos 2):
// absent is the zero time; an invalid one is left to the generic path.
func (f *fields) time(i int) (time.Time, bool) {
	switch f.kind[i] {
	case 0:
		return time.Time{}, true
	case 2:
		return time.Time{}, false
	}
	var ts fields
	if !ts.parse(f.raw[i]) || !ts.only(1, 2) || !ts.varints(1, 2) {
		return time.Time{}, false
	}
	t := timestamppb.Timestamp{Seconds: int64(ts.num[1]), Nanos: int32(ts.num[2])}
	if t.CheckValid() != nil {
		return time.Time{}, false
	}
	return t.AsTime(), true
}
