package codecs

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/skuflow/skuflow/inventory"
)

// appendState appends s encoded as skuflow.v1.SkuState: byte for byte what
// deterministic proto.Marshal of StateToProto(s) gives (fields in number
// order, zero scalars omitted), without building the message first. The
// stock processor encodes a state for every message; this is several
// times faster than the generic path. TestAppendStateMatchesProto holds it
// to the generic encoding.
func appendState(b []byte, s inventory.State) []byte {
	b = appendString(b, 1, s.SKU)
	for _, l := range s.Locations {
		var at int
		b, at = beginNested(b, 2)
		b = appendString(b, 1, l.ID)
		b = appendBool(b, 2, l.HasLevel)
		b = appendInt64(b, 3, l.Level)
		b = appendInt64(b, 4, unixNano(l.LevelAsOf))
		b = appendUint64(b, 5, l.LevelSeq)
		for _, a := range l.Adjustment {
			var at int
			b, at = beginNested(b, 6)
			b = appendString(b, 1, a.EventID)
			b = appendInt64(b, 2, a.Delta)
			b = appendInt64(b, 3, unixNano(a.OccurredAt))
			b = endNested(b, at)
		}
		b = appendString(b, 7, l.Area)
		b = endNested(b, at)
	}
	for _, r := range s.ChannelRules {
		var at int
		b, at = beginNested(b, 3)
		b = appendString(b, 1, r.Channel)
		b = appendBool(b, 2, r.Sellable)
		b = appendInt64(b, 3, unixNano(r.AsOf))
		b = endNested(b, at)
	}
	for _, r := range s.SalesCaps {
		var at int
		b, at = beginNested(b, 4)
		b = appendString(b, 1, r.Channel)
		b = appendInt64(b, 2, r.Limit)
		b = appendInt64(b, 3, unixNano(r.WindowStart))
		b = appendInt64(b, 4, unixNano(r.WindowEnd))
		b = appendBool(b, 5, r.Cleared)
		b = appendInt64(b, 6, unixNano(r.AsOf))
		b = endNested(b, at)
	}
	if !s.Backorder.AsOf.IsZero() {
		var at int
		b, at = beginNested(b, 5)
		b = appendInt64(b, 1, s.Backorder.Limit)
		b = appendInt64(b, 2, unixNano(s.Backorder.AsOf))
		b = endNested(b, at)
	}
	for _, r := range s.SafetyOverrides {
		var at int
		b, at = beginNested(b, 6)
		b = appendString(b, 1, r.Location)
		b = appendInt64(b, 2, r.Units)
		b = appendBool(b, 3, r.Cleared)
		b = appendInt64(b, 4, unixNano(r.AsOf))
		b = endNested(b, at)
	}
	for _, r := range s.Reservations {
		var at int
		b, at = beginNested(b, 7)
		b = appendString(b, 1, r.ID)
		b = appendString(b, 2, r.OrderID)
		b = appendString(b, 3, r.Channel)
		b = appendInt64(b, 4, r.Quantity)
		b = appendInt64(b, 5, int64(int32(r.Status)))
		b = appendBool(b, 6, r.Backorder)
		b = appendInt64(b, 7, int64(int32(r.Reject)))
		b = appendInt64(b, 8, int64(int32(r.Release)))
		b = appendInt64(b, 9, unixNano(r.DecidedAt))
		b = appendInt64(b, 10, unixNano(r.ExpiresAt))
		b = appendInt64(b, 11, unixNano(r.ClosedAt))
		b = appendInt64(b, 12, r.Fulfilled)
		for _, id := range r.Fulfilments {
			b = protowire.AppendTag(b, 13, protowire.BytesType)
			b = protowire.AppendString(b, id)
		}
		b = endNested(b, at)
	}
	for _, u := range s.CapUsage {
		var at int
		b, at = beginNested(b, 8)
		b = appendString(b, 1, u.Channel)
		b = appendInt64(b, 2, unixNano(u.WindowStart))
		b = appendInt64(b, 3, u.Used)
		b = endNested(b, at)
	}
	return appendInt64(b, 9, inventory.StateFormat)
}

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendInt64(b []byte, num protowire.Number, v int64) []byte {
	return appendUint64(b, num, uint64(v))
}

func appendUint64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return append(b, 1)
}

// beginNested appends a length-delimited field's tag and a one-byte length
// placeholder; endNested fills the length in once the body is appended.
func beginNested(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b)
}

func endNested(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-1)...)
	copy(b[at+size:], b[at+1:at+1+n])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}
