package codecs_test

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
)

// drawState draws any value an inventory.State can hold, reachable or not:
// empty and long strings, zero and extreme numbers, zero and far times, up
// to four entries per list (so nested lengths cross the one-byte varint).
func drawState(t *rapid.T) inventory.State {
	str := func(label string) string {
		return rapid.OneOf(rapid.Just(""), rapid.StringMatching(`[a-z0-9-]{1,8}`), rapid.SampledFrom(catalogueSKUs),
			rapid.Map(rapid.IntRange(100, 300), func(n int) string { return strings.Repeat("x", n) })).Draw(t, label)
	}
	num := func(label string) int64 {
		return rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(-5, 5), rapid.Just(int64(math.MinInt64)),
			rapid.Just(int64(math.MaxInt64)), rapid.Int64()).Draw(t, label)
	}
	tm := func(label string) time.Time {
		if rapid.Bool().Draw(t, label+" zero") {
			return time.Time{}
		}
		return time.Unix(0, rapid.Int64Range(-1<<62, 1<<62).Draw(t, label)).UTC()
	}
	n := func(label string) int { return rapid.IntRange(0, 4).Draw(t, label) }
	var s inventory.State
	s.SKU = str("sku")
	for range n("locations") {
		l := inventory.Location{ID: str("location"), Area: str("area"), HasLevel: rapid.Bool().Draw(t, "has level"),
			Level: num("level"), LevelAsOf: tm("level as of"), LevelSeq: rapid.Uint64().Draw(t, "seq")}
		for range n("adjustments") {
			l.Adjustment = append(l.Adjustment, inventory.Adjustment{EventID: str("event id"), Delta: num("delta"), OccurredAt: tm("occurred")})
		}
		s.Locations = append(s.Locations, l)
	}
	for range n("channel rules") {
		s.ChannelRules = append(s.ChannelRules, inventory.ChannelRule{Channel: str("channel"), Sellable: rapid.Bool().Draw(t, "sellable"), AsOf: tm("as of")})
	}
	for range n("caps") {
		s.SalesCaps = append(s.SalesCaps, inventory.SalesCapRule{Channel: str("channel"), Limit: num("limit"), Cleared: rapid.Bool().Draw(t, "cleared"),
			AsOf: tm("as of"), WindowStart: tm("start"), WindowEnd: tm("end")})
	}
	s.Backorder = inventory.BackorderRule{Limit: num("backorder"), AsOf: tm("backorder as of")}
	for range n("overrides") {
		s.SafetyOverrides = append(s.SafetyOverrides, inventory.SafetyOverrideRule{Location: str("location"), Units: num("units"),
			Cleared: rapid.Bool().Draw(t, "cleared"), AsOf: tm("as of")})
	}
	for range n("reservations") {
		s.Reservations = append(s.Reservations, inventory.Reservation{ID: str("id"), OrderID: str("order"), Channel: str("channel"),
			Quantity: num("quantity"), Status: inventory.ReservationStatus(rapid.IntRange(-3, 5).Draw(t, "status")),
			Backorder: rapid.Bool().Draw(t, "backorder"), Reject: inventory.RejectReason(rapid.IntRange(-3, 5).Draw(t, "reject")),
			Release:   inventory.ReleaseReason(rapid.IntRange(-3, 5).Draw(t, "release")),
			DecidedAt: tm("decided"), ExpiresAt: tm("expires"), ClosedAt: tm("closed"), Fulfilled: num("fulfilled"),
			Fulfilments: rapid.SliceOfN(rapid.StringMatching(`[a-z:0-9-]{1,12}`), 0, 3).Draw(t, "fulfilments")})
	}
	for range n("cap usage") {
		s.CapUsage = append(s.CapUsage, inventory.CapUsage{Channel: str("channel"), WindowStart: tm("start"), Used: num("used")})
	}
	return s
}

// The hand-written table encoding is byte for byte the generic
// deterministic protobuf encoding of the same state.
func TestAppendStateMatchesProto(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawState(t)
		got, err := codecs.State{}.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := codecs.MarshalDeterministic(codecs.StateToProto(s))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodings differ:\n got %x\nwant %x", got, want)
		}
	})
}

// canonical is s as the table gives it back: encoded, then decoded.
func canonical(t interface{ Fatal(...any) }, s inventory.State) inventory.State {
	data, err := codecs.State{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codecs.State{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return v.(inventory.State)
}

// Every state the domain reaches (stock and policy events, reservation
// requests and releases, expiry, in any order and at any valid times, some
// in other zones) decodes from its encoding deep-equal to itself. The stock
// processor relies on it: it keeps using the state it wrote in place of
// reading the table's bytes back, and must behave the same either way.
func TestPropertyReachableStatesRoundTrip(t *testing.T) {
	zoned := time.FixedZone("UTC-5", -5*60*60)
	rapid.Check(t, func(t *rapid.T) {
		tm := func(label string) time.Time {
			v := at(rapid.IntRange(0, 100).Draw(t, label)).Add(time.Duration(rapid.IntRange(0, 999).Draw(t, label+" ns")))
			if rapid.Bool().Draw(t, label+" zoned") {
				v = v.In(zoned)
			}
			return v
		}
		loc := func() string { return rapid.SampledFrom([]string{"WH-1", "ST-1", "M-1"}).Draw(t, "location") }
		ch := func() string {
			return rapid.SampledFrom([]string{"web", "marketplace", "store-pickup"}).Draw(t, "channel")
		}
		units := func(label string) int64 { return rapid.Int64Range(0, 50).Draw(t, label) }
		// The events are the usual SKU's; the state is checked under a
		// SKU as catalogues write it too (the SKU is only State.SKU).
		other := rapid.SampledFrom(catalogueSKUs).Draw(t, "catalogue sku")
		s := inventory.State{SKU: sku}
		for i := range rapid.IntRange(1, 25).Draw(t, "events") {
			// The processor's clock is the message time in UTC (events'
			// own source times come in any zone), within the range it
			// accepts (1970–2200), its ends included.
			now := rapid.SampledFrom([]time.Time{tm("now").UTC(), time.Unix(0, 1).UTC(),
				time.Date(2199, 12, 31, 23, 59, 59, 999999999, time.UTC)}).Draw(t, "clock")
			var ev inventory.Event
			demand := false
			switch rapid.IntRange(0, 10).Draw(t, "kind") {
			case 0:
				ev = areaLvl(loc(), rapid.SampledFrom([]string{"", inventory.AreaFloor, inventory.AreaBackroom}).Draw(t, "area"), units("on hand"), tm("as of"), rapid.Uint64Range(0, 3).Draw(t, "seq"))
			case 1, 2:
				ev = adj(fmt.Sprintf("a%d", rapid.IntRange(0, 5).Draw(t, "adj id")), loc(), rapid.Int64Range(-20, 20).Draw(t, "delta"), tm("occurred"))
			case 3:
				ev = sellable(ch(), rapid.Bool().Draw(t, "sellable"), tm("as of"))
			case 4:
				from := tm("from")
				if rapid.Bool().Draw(t, "clear cap") {
					ev = inventory.SalesCap{SKU: sku, Channel: ch(), Cleared: true, AsOf: tm("as of")}
				} else {
					ev = salesCap(ch(), units("limit"), from, from.Add(time.Duration(rapid.IntRange(1, 100).Draw(t, "window"))*time.Second), tm("as of"))
				}
			case 5:
				ev = backorder(units("backorder"), tm("as of"))
			case 6:
				if rapid.Bool().Draw(t, "clear override") {
					ev = inventory.SafetyStockOverride{SKU: sku, Location: loc(), Cleared: true, AsOf: tm("as of")}
				} else {
					ev = safety(loc(), units("safety"), tm("as of"))
				}
			case 7, 8:
				ev, demand = request(fmt.Sprintf("r%d", i), fmt.Sprintf("o%d", i), rapid.Int64Range(1, 5).Draw(t, "qty"), ch(),
					time.Duration(rapid.IntRange(1, 60).Draw(t, "ttl"))*time.Second), true
			case 9:
				ev, demand = released(fmt.Sprintf("r%d", rapid.IntRange(0, i).Draw(t, "release")), inventory.ReleaseReason(rapid.IntRange(1, 3).Draw(t, "why"))), true
			default:
				s, _ = inventory.Expire(s, now)
			}
			var err error
			switch {
			case ev == nil:
			case demand:
				s, _, _, err = inventory.Demand(s, ev, testPolicies(), now)
			default:
				s, _, err = inventory.Apply(s, ev, now)
			}
			if err != nil {
				continue // an invalid combination: the processor dead-letters it
			}
			if got := canonical(t, s); !reflect.DeepEqual(got, s) {
				t.Fatalf("state after %+v does not round-trip:\n got %#v\nwant %#v", ev, got, s)
			}
			renamed := s
			renamed.SKU = other
			if got := canonical(t, renamed); !reflect.DeepEqual(got, renamed) {
				t.Fatalf("state of sku %q does not round-trip:\n got %#v\nwant %#v", other, got, renamed)
			}
		}
	})
}
