package inventory_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// A SKU remembers at most MaxClosedReservations closed reservations: the
// oldest closed are forgotten first (before ClosedRetention), held ones
// never; a fulfilled one forgotten keeps counting against its cap window.
// A duplicate of a forgotten rejected request is decided anew (the order
// saga keeps the first outcome and gives back a late acceptance); one of a
// remembered request gets its outcome again.
func TestClosedReservationsBounded(t *testing.T) {
	p := dmPolicies()
	s := dmApply(t, dmStock(t, 3, 0), inventory.SalesCap{SKU: sku, Channel: "web", Limit: 1000, WindowStart: t0, WindowEnd: at(100_000), AsOf: t0})
	s, _, _ = dmDemand(t, s, dmReq("held", "O-held", "web", 1, time.Hour), p, at(1))
	s, _, _ = dmDemand(t, s, dmReq("shipped", "O-shipped", "web", 1, time.Hour), p, at(1))
	s, _, _ = dmDemand(t, s, dmFul("shipped", "WH-1", at(2)), p, at(2))
	n := 2 * inventory.MaxClosedReservations
	for i := range n {
		// 5 units asked of 1 left: rejected, recorded, closed.
		s, _, _ = dmDemand(t, s, dmReq(fmt.Sprintf("rej-%03d", i), "O-x", "web", 5, time.Hour), p, at(10+i))
	}
	closed := 0
	for _, r := range s.Reservations {
		if r.Status != inventory.StatusHeld {
			closed++
		}
	}
	if closed != inventory.MaxClosedReservations {
		t.Fatalf("%d closed reservations listed, want %d", closed, inventory.MaxClosedReservations)
	}
	if _, ok := dmFind(s, "held"); !ok {
		t.Fatal("a held reservation was forgotten")
	}
	for _, id := range []string{"shipped", "rej-000"} {
		if _, ok := dmFind(s, id); ok {
			t.Fatalf("%s, among the oldest closed, is still listed", id)
		}
	}
	if _, ok := dmFind(s, fmt.Sprintf("rej-%03d", n-1)); !ok {
		t.Fatal("the newest closed reservation was forgotten")
	}
	// The shipped unit still counts against the cap.
	if c := dmChannel(t, inventory.Evaluate(s, p, at(200)), "web"); c.CapRemaining != 1000-2 {
		t.Fatalf("cap remaining %d, want %d: the held and the forgotten shipped unit", c.CapRemaining, 1000-2)
	}
	// A remembered duplicate: its outcome again, nothing changes.
	last := dmReq(fmt.Sprintf("rej-%03d", n-1), "O-x", "web", 5, time.Hour)
	if _, out, res := dmDemand(t, s, last, p, at(300)); res.Changed || out.Accepted || !out.DecidedAt.Equal(at(10+n-1)) {
		t.Fatalf("duplicate of a remembered request: %+v %+v", out, res)
	}
	// A forgotten one is decided anew.
	if _, out, res := dmDemand(t, s, dmReq("rej-000", "O-x", "web", 1, time.Hour), p, at(300)); !res.Changed || !out.Accepted {
		t.Fatalf("duplicate of a forgotten request: %+v %+v, want decided anew", out, res)
	}
}

// A SKU holds at most MaxHeldReservations at once; a request beyond is
// rejected with the reason and not recorded, so the state does not grow.
func TestHeldReservationsBounded(t *testing.T) {
	p := dmPolicies()
	s := dmStock(t, 10*inventory.MaxHeldReservations, 0)
	for i := range inventory.MaxHeldReservations {
		var out *inventory.Outcome
		s, out, _ = dmDemand(t, s, dmReq(fmt.Sprintf("R-%04d", i), "O-1", "web", 1, time.Hour), p, at(1))
		if !out.Accepted {
			t.Fatalf("request %d: %+v", i, out)
		}
	}
	next, out, res := dmDemand(t, s, dmReq("one-more", "O-2", "web", 1, time.Hour), p, at(2))
	if out.Accepted || res.Changed || !strings.Contains(out.Message, "holds 500 reservations") || len(next.Reservations) != len(s.Reservations) {
		t.Fatalf("request beyond the held bound: %+v %+v (%d listed)", out, res, len(next.Reservations))
	}
	// Once one is released, there is room again.
	s, _, _ = dmDemand(t, s, dmRel("R-0000", inventory.ReleaseCancelled), p, at(3))
	if _, out, _ := dmDemand(t, s, dmReq("one-more", "O-2", "web", 1, time.Hour), p, at(4)); !out.Accepted {
		t.Fatalf("after a release: %+v", out)
	}
}

// The reservations of one SKU list at most MaxFulfilmentIDs fulfilment ids;
// a fulfilment beyond is refused with the reason.
func TestFulfilmentIDsBounded(t *testing.T) {
	p := dmPolicies()
	s := dmStock(t, inventory.MaxUnits, 0)
	per := inventory.MaxFulfilments
	n := inventory.MaxFulfilmentIDs / per
	for i := range n + 1 {
		s, _, _ = dmDemand(t, s, dmReq(fmt.Sprintf("R-%02d", i), "O-1", "web", int64(per+1), time.Hour), p, at(1))
	}
	for i := range n {
		for j := range per {
			s, _, _ = dmDemand(t, s, dmPartial(fmt.Sprintf("R-%02d", i), fmt.Sprintf("F-%03d", j), "WH-1", 1, at(2)), p, at(2))
		}
	}
	_, _, _, err := inventory.Demand(s, dmPartial(fmt.Sprintf("R-%02d", n), "F-000", "WH-1", 1, at(2)), p, at(3))
	if !inventory.IsInvalid(err) || !strings.Contains(err.Error(), "fulfilment ids, the limit") {
		t.Fatalf("fulfilment beyond the bound: %v", err)
	}
}

// Folding and levels: a level older than the fold horizon is refused
// (the base mixes adjustments before and after it); one at or after it
// covers the base. A fulfilment at or before the horizon, recorded once on
// its reservation, is added to the base.
func TestFoldHorizonWithLevelsAndFulfilments(t *testing.T) {
	p := dmPolicies()
	s := dmStock(t, 100, 0)
	s, _, _ = dmDemand(t, s, dmReq("R-1", "O-1", "web", 2, time.Hour), p, at(1))
	for i := range inventory.MaxAdjustments + 10 {
		s = dmApply(t, s, adj(fmt.Sprintf("a-%03d", i), "WH-1", 1, at(10+i)))
	}
	wh, _ := location(s, "WH-1")
	if !wh.FoldedThrough.Equal(at(19)) || wh.Folded != 10 || len(wh.Adjustment) != inventory.MaxAdjustments {
		t.Fatalf("WH-1 after %d adjustments: folded %d through %s, %d listed", inventory.MaxAdjustments+10, wh.Folded, wh.FoldedThrough, len(wh.Adjustment))
	}
	s, _, _ = dmDemand(t, s, dmPartial("R-1", "F-1", "WH-1", 1, at(15)), p, at(200))
	if wh, _ = location(s, "WH-1"); wh.Folded != 9 {
		t.Fatalf("a fulfilment before the horizon: base %d, want 9", wh.Folded)
	}
	if _, _, err := inventory.Apply(s, dmLevel("WH-1", 5, at(18), 2), t0); !errors.Is(err, inventory.ErrFolded) || !inventory.IsInvalid(err) {
		t.Fatalf("a level before the horizon: %v, want ErrFolded", err)
	}
	next, res, err := inventory.Apply(s, dmLevel("WH-1", 5, at(19), 2), t0)
	if wh, _ = location(next, "WH-1"); err != nil || !res.Changed || wh.Folded != 0 || !wh.FoldedThrough.IsZero() || wh.OnHand() != 5+inventory.MaxAdjustments {
		t.Fatalf("a level at the horizon: %v %+v, location %+v", err, res, wh)
	}
}
