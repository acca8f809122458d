package codecs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
)

// maxRejectedStateBytes is topology.md's bound ("Bounded state per SKU")
// on the encoded state of a SKU with one location flooded by rejected
// requests, every id as long as the rules allow: inventory.MaxRejected
// records of about 300 bytes each.
const maxRejectedStateBytes = 16 << 10

// Rejected requests were remembered for ClosedRetention (7 days) each: a
// flood of them grew a SKU's state without limit (299 KB after 5,000).
func TestStateBoundedAfterRejectedRequests(t *testing.T) {
	s := applyAll(t, lvl("WH-1", 0, at(0), 1))
	p := inventory.Policies{Channels: []string{"web"}}
	long := func(i int) string {
		tail := fmt.Sprintf("-%d", i)
		return strings.Repeat("x", inventory.MaxRefLength-len(tail)) + tail
	}
	for i := range 10_000 {
		req := inventory.ReservationRequested{ReservationID: long(i), OrderID: long(i), SKU: sku, Channel: "web", Quantity: 1, TTL: time.Minute}
		next, out, _, err := inventory.Demand(s, req, p, at(1).Add(time.Duration(i)*time.Millisecond))
		if err != nil || out == nil || out.Accepted {
			t.Fatalf("request %d: %+v %v, want a rejection", i, out, err)
		}
		s = next
	}
	b, err := codecs.State{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxRejectedStateBytes {
		t.Fatalf("state after 10,000 rejected requests is %d bytes, more than %d (%d reservations listed)", len(b), maxRejectedStateBytes, len(s.Reservations))
	}
	t.Logf("state after 10,000 rejected requests with the longest ids: %d bytes", len(b))
}

// sizeBound, which spares the stock processor an encoding per event, is
// never below the encoded size, with every id as long as the rules allow.
func TestSizeBound(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	loc := long(inventory.MaxIDLength, "l")
	s := inventory.State{SKU: long(inventory.MaxIDLength, "s"),
		Locations: []inventory.Location{{ID: loc, Area: "backroom", HasLevel: true, Level: inventory.MaxUnits, LevelAsOf: at(1), LevelSeq: 1 << 63,
			Adjustment: []inventory.Adjustment{{EventID: long(inventory.MaxEventIDLen, "e"), Delta: -inventory.MaxUnits, OccurredAt: at(2)}}}},
		ChannelRules:    []inventory.ChannelRule{{Channel: long(inventory.MaxIDLength, "c"), Sellable: true, AsOf: at(3)}},
		SalesCaps:       []inventory.SalesCapRule{{Channel: long(inventory.MaxIDLength, "c"), Limit: inventory.MaxUnits, WindowStart: at(1), WindowEnd: at(9), AsOf: at(3)}},
		SafetyOverrides: []inventory.SafetyOverrideRule{{Location: loc, Units: inventory.MaxUnits, AsOf: at(3)}},
		Reservations: []inventory.Reservation{{ID: long(inventory.MaxRefLength, "r"), OrderID: long(inventory.MaxRefLength, "o"),
			Channel: long(inventory.MaxIDLength, "c"), Quantity: inventory.MaxUnits, Status: inventory.StatusReleased, Backorder: true,
			Reject: inventory.RejectInsufficient, Release: inventory.ReleaseCompensated, DecidedAt: at(4), ExpiresAt: at(5), ClosedAt: at(6),
			Fulfilled: inventory.MaxUnits, Fulfilments: []string{long(inventory.MaxRefLength, "f")}}},
		CapUsage: []inventory.CapUsage{{Channel: long(inventory.MaxIDLength, "c"), WindowStart: at(1), Used: inventory.MaxUnits}},
	}
	if got, bound := codecs.StateSize(s), codecs.SizeBound(s); got > bound || got == 0 {
		t.Fatalf("state of %d bytes, bound %d", got, bound)
	}
	// Each record alone stays under the per-record allowance.
	one := s
	one.Locations, one.ChannelRules, one.SalesCaps, one.SafetyOverrides, one.CapUsage = nil, nil, nil, nil, nil
	one.Reservations[0].Fulfilments = nil
	if got := codecs.StateSize(one) - codecs.StateSize(inventory.State{SKU: s.SKU}); got > codecs.MaxRecordBytes/2 {
		t.Fatalf("one reservation with the longest ids takes %d bytes, more than half the allowance %d", got, codecs.MaxRecordBytes)
	}
}
