package inventory_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

func dmPartial(id, fid, loc string, qty int64, when time.Time) inventory.ReservationFulfilled {
	f := dmFul(id, loc, when)
	f.FulfilmentID, f.Quantity = fid, qty
	return f
}

// A reservation ships in parts: each fulfilment id drops the stock once,
// the rest stays held, and the reservation is fulfilled once every unit
// shipped.
func TestPartialFulfilmentAtTheSKU(t *testing.T) {
	p := dmPolicies()
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 10, at(0), 1), dmLevel("ST-1", 4, at(0), 1))
	s, _, _ = dmDemand(t, s, dmReq("R-1", "O-1", "web", 5, time.Hour), p, at(1))
	s, _, res := dmDemand(t, s, dmPartial("R-1", "F-1", "WH-1", 2, at(2)), p, at(2))
	r, _ := dmFind(s, "R-1")
	if !res.Changed || r.Status != inventory.StatusHeld || r.Fulfilled != 2 || !reflect.DeepEqual(r.Fulfilments, []string{"F-1"}) {
		t.Fatalf("after shipping 2 of 5: %+v", r)
	}
	web := dmChannel(t, inventory.Evaluate(s, p, at(3)), "web")
	if web.Reserved != 3 || web.Available != 5 { // 8 on hand at WH-1 (ST-1 serves app only), 3 still held
		t.Fatalf("web after shipping 2 of 5: reserved %d available %d", web.Reserved, web.Available)
	}
	// The same fulfilment again, even much later: nothing changes.
	if again, _, res := dmDemand(t, s, dmPartial("R-1", "F-1", "WH-1", 2, at(2)), p, at(50)); res.Changed || !reflect.DeepEqual(again, s) {
		t.Fatalf("a redelivered fulfilment changed the state: %+v", res)
	}
	// From where the SKU has no stock (a typo, or a whole location whose
	// stock is kept per area): refused, nothing changes.
	for _, f := range []inventory.ReservationFulfilled{dmPartial("R-1", "F-9", "WH-TYPO", 1, at(4)),
		func() inventory.ReservationFulfilled {
			f := dmPartial("R-1", "F-9", "WH-1", 1, at(4))
			f.Area = inventory.AreaFloor
			return f
		}()} {
		if next, _, _, err := inventory.Demand(s, f, p, at(4)); !errors.Is(err, inventory.ErrInvalidEvent) ||
			!strings.Contains(err.Error(), "no stock record") || !reflect.DeepEqual(next, s) {
			t.Fatalf("shipping from %s %q: %v", f.Location, f.Area, err)
		}
	}
	// More than is left is refused, and changes nothing.
	if next, _, _, err := inventory.Demand(s, dmPartial("R-1", "F-2", "WH-1", 4, at(4)), p, at(4)); !errors.Is(err, inventory.ErrInvalidEvent) ||
		!strings.Contains(err.Error(), "3 not shipped") || !reflect.DeepEqual(next, s) {
		t.Fatalf("over-shipping: %v", err)
	}
	s, _, _ = dmDemand(t, s, dmPartial("R-1", "F-2", "ST-1", 3, at(4)), p, at(4))
	r, _ = dmFind(s, "R-1")
	if r.Status != inventory.StatusFulfilled || r.Fulfilled != 5 || !r.ClosedAt.Equal(at(4)) || !reflect.DeepEqual(r.Fulfilments, []string{"F-1", "F-2"}) {
		t.Fatalf("after shipping the rest: %+v", r)
	}
	if wh, _ := location(s, "WH-1"); wh.OnHand() != 8 {
		t.Fatalf("WH-1 has %d, want 8", wh.OnHand())
	}
	// A whole-reservation fulfilment (no id) after every unit shipped is a
	// duplicate.
	if again, _, res := dmDemand(t, s, dmFul("R-1", "WH-1", at(5)), p, at(5)); res.Changed || !reflect.DeepEqual(again, s) {
		t.Fatal("a whole fulfilment of a shipped reservation changed the state")
	}
}

// A whole fulfilment (no id) ships what the partial ones left.
func TestWholeFulfilmentShipsTheRest(t *testing.T) {
	p := dmPolicies()
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 10, at(0), 1))
	s, _, _ = dmDemand(t, s, dmReq("R-1", "O-1", "web", 5, time.Hour), p, at(1))
	s, _, _ = dmDemand(t, s, dmPartial("R-1", "F-1", "WH-1", 2, at(2)), p, at(2))
	s, _, _ = dmDemand(t, s, dmFul("R-1", "WH-1", at(3)), p, at(3))
	r, _ := dmFind(s, "R-1")
	wh, _ := location(s, "WH-1")
	if r.Status != inventory.StatusFulfilled || r.Fulfilled != 5 || wh.OnHand() != 5 {
		t.Fatalf("after the whole fulfilment: %+v, WH-1 %d", r, wh.OnHand())
	}
}

// A partial fulfilment after the hold ran out still ships (the units left)
// and counts against the cap; the rest is not held.
func TestPartialFulfilmentAfterExpiry(t *testing.T) {
	p := dmPolicies()
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 10, at(0), 1), salesCap("web", 6, at(0), at(1000), at(0)))
	s, _, _ = dmDemand(t, s, dmReq("R-1", "O-1", "web", 5, time.Minute), p, at(1))
	s, _, _ = dmDemand(t, s, dmPartial("R-1", "F-1", "WH-1", 2, at(100)), p, at(100))
	r, _ := dmFind(s, "R-1")
	web := dmChannel(t, inventory.Evaluate(s, p, at(101)), "web")
	if r.Fulfilled != 2 || web.Reserved != 0 || web.CapRemaining != 4 {
		t.Fatalf("late partial shipment: %+v, web %+v", r, web)
	}
}

func TestFulfilmentValidation(t *testing.T) {
	for name, ev := range map[string]inventory.ReservationFulfilled{
		"quantity without an id": func() inventory.ReservationFulfilled { f := dmFul("R-1", "WH-1", at(1)); f.Quantity = 2; return f }(),
		"id without a quantity":  dmPartial("R-1", "F-1", "WH-1", 0, at(1)),
		"negative quantity":      dmPartial("R-1", "F-1", "WH-1", -1, at(1)),
		"malformed id":           dmPartial("R-1", "F 1", "WH-1", 1, at(1)),
		"too many units":         dmPartial("R-1", "F-1", "WH-1", inventory.MaxUnits+1, at(1)),
	} {
		if err := ev.Validate(); !errors.Is(err, inventory.ErrInvalidEvent) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// UpgradeState: a reservation fulfilled in format 0 records no shipped
// units; after the upgrade it records all of them, as a replay under the
// current rules would. Cap usage is kept as it is (the safe reading).
func TestUpgradeStateFromFormat0(t *testing.T) {
	p := dmPolicies()
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 50, at(0), 1), salesCap("web", 20, at(0), at(10_000), at(0)))
	s, _, _ = dmDemand(t, s, dmReq("R-1", "O-1", "web", 2, time.Hour), p, at(1))
	s, _, _ = dmDemand(t, s, dmReq("R-2", "O-2", "web", 3, time.Hour), p, at(2))
	s, _, _ = dmDemand(t, s, dmFul("R-2", "WH-1", at(3)), p, at(3))
	old := s.Clone()
	old.Reservations[1].Fulfilled = 0 // as format 0 stored it
	old.CapUsage = []inventory.CapUsage{{Channel: "web", WindowStart: at(0), Used: 9}}
	up := inventory.UpgradeState(old, 0)
	if r := up.Reservations[1]; r.Fulfilled != 3 || r.Status != inventory.StatusFulfilled {
		t.Fatalf("upgraded %+v, want 3 units shipped", r)
	}
	if !reflect.DeepEqual(up.CapUsage, old.CapUsage) || old.Reservations[1].Fulfilled != 0 {
		t.Fatalf("upgrade changed cap usage %+v or its input", up.CapUsage)
	}
	if again := inventory.UpgradeState(s, inventory.StateFormat); !reflect.DeepEqual(again, s) {
		t.Fatal("upgrading a current state changed it")
	}
}

func dmShip(fid string, lines ...inventory.FulfilmentLine) inventory.FulfilOrder {
	return inventory.FulfilOrder{OrderID: "O-1", FulfilmentID: fid, Lines: lines}
}

func dmShipLine(sku string, qty int64) inventory.FulfilmentLine {
	return inventory.FulfilmentLine{SKU: sku, Quantity: qty, Location: "WH-1"}
}

// The saga's fulfilments: partial, repeated, conflicting, refused, then
// complete.
func TestSagaFulfil(t *testing.T) {
	g, req := dmStarted(t) // SKU-A 1, SKU-B 2, SKU-C 3
	for _, r := range req {
		g.apply(dmAccept(r, false), at(1))
	}
	if g.o.Status != inventory.OrderReserved {
		t.Fatalf("not reserved: %+v", g.o)
	}
	// Two lines of SKU-C from two locations, and SKU-A in full.
	first := dmShip("F-1", dmShipLine("SKU-A", 1), dmShipLine("SKU-C", 1), inventory.FulfilmentLine{SKU: "SKU-C", Quantity: 1, Location: "ST-1", Area: inventory.AreaFloor})
	eff := g.apply(first, at(10))
	want := []inventory.ReservationFulfilled{
		{ReservationID: "O-1:1", SKU: "SKU-A", Location: "WH-1", FulfilledAt: at(10), FulfilmentID: "F-1:1", Quantity: 1},
		{ReservationID: "O-1:3", SKU: "SKU-C", Location: "WH-1", FulfilledAt: at(10), FulfilmentID: "F-1:2", Quantity: 1},
		{ReservationID: "O-1:3", SKU: "SKU-C", Location: "ST-1", Area: inventory.AreaFloor, FulfilledAt: at(10), FulfilmentID: "F-1:3", Quantity: 1},
	}
	if !reflect.DeepEqual(eff.Fulfilments, want) {
		t.Fatalf("sent %+v\nwant %+v", eff.Fulfilments, want)
	}
	if g.o.Status != inventory.OrderPartiallyFulfilled || g.o.Lines[0].Status != inventory.LineFulfilled || g.o.Lines[1].Status != inventory.LineAccepted ||
		g.o.Lines[2].Status != inventory.LinePartiallyFulfilled || g.o.Lines[2].Fulfilled != 2 {
		t.Fatalf("after the first shipment: %+v", g.o)
	}
	// Repeated: the same messages again, nothing recorded twice.
	before := dmCloneOrder(g.o)
	if next, again, res, err := inventory.ApplyOrder(g.o, true, first, at(20)); err != nil || res.Changed || !reflect.DeepEqual(next, before) ||
		!reflect.DeepEqual(again.Fulfilments, want) {
		t.Fatalf("repeat: %v %+v %+v", err, res, again)
	}
	// The id reused for other lines: a conflict.
	if _, _, _, err := inventory.ApplyOrder(g.o, true, dmShip("F-1", dmShipLine("SKU-B", 1)), at(20)); !errors.Is(err, inventory.ErrFulfilmentConflict) {
		t.Fatalf("reused fulfilment id: %v", err)
	}
	// Refused: more than a line holds, a SKU not in the order, a line shipped in full.
	for fid, c := range map[string]inventory.FulfilOrder{
		"F-2": dmShip("F-2", dmShipLine("SKU-C", 2)),
		"F-3": dmShip("F-3", dmShipLine("SKU-X", 1)),
		"F-4": dmShip("F-4", dmShipLine("SKU-A", 1)),
	} {
		c.FulfilmentID = fid
		eff := g.apply(c, at(30))
		f, ok := g.o.FulfilmentByID(fid)
		if !ok || f.Refused == "" || len(eff.Fulfilments) != 0 || g.o.Status != inventory.OrderPartiallyFulfilled {
			t.Fatalf("%s: %+v, sent %+v", fid, f, eff)
		}
	}
	// An extension covers the lines still held, not the one shipped.
	eff = g.apply(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)}, at(40))
	if len(eff.Extensions) != 2 || eff.Extensions[0].SKU != "SKU-B" || eff.Extensions[1].SKU != "SKU-C" {
		t.Fatalf("extension sent %+v", eff.Extensions)
	}
	// The rest ships: fulfilled, nothing held, a cancel changes nothing.
	g.apply(dmShip("F-5", dmShipLine("SKU-B", 2), dmShipLine("SKU-C", 1)), at(50))
	if g.o.Status != inventory.OrderFulfilled || inventory.OrderDueAt(g.o) != (time.Time{}) {
		t.Fatalf("after the last shipment: %+v", g.o)
	}
	for _, l := range g.o.Lines {
		if l.Status != inventory.LineFulfilled || l.Fulfilled != l.Quantity || !l.ExtendTo.IsZero() {
			t.Fatalf("line %+v", l)
		}
	}
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(60))
}

// A partly fulfilled order whose hold runs out expires what is still held;
// what shipped stays shipped, and a later fulfilment is refused.
func TestSagaPartlyFulfilledExpires(t *testing.T) {
	g, req := dmStarted(t)
	for _, r := range req {
		g.apply(dmAccept(r, false), at(1))
	}
	g.apply(dmShip("F-1", dmShipLine("SKU-A", 1), dmShipLine("SKU-B", 1)), at(10))
	due := inventory.OrderDueAt(g.o) // at(1) + 1h
	eff := g.apply(dmShip("F-2", dmShipLine("SKU-C", 1)), due)
	f, _ := g.o.FulfilmentByID("F-2")
	if g.o.Status != inventory.OrderExpired || f.Refused == "" || len(eff.Fulfilments) != 0 || len(eff.Releases) != 2 {
		t.Fatalf("fulfilment at expiry: %+v, sent %+v", g.o, eff)
	}
	got := []inventory.LineStatus{g.o.Lines[0].Status, g.o.Lines[1].Status, g.o.Lines[2].Status}
	if want := []inventory.LineStatus{inventory.LineFulfilled, inventory.LineExpired, inventory.LineExpired}; !reflect.DeepEqual(got, want) ||
		g.o.Lines[1].Fulfilled != 1 {
		t.Fatalf("lines %v (%+v), want %v", got, g.o.Lines, want)
	}
}

func TestFulfilOrderValidation(t *testing.T) {
	long := strings.Repeat("f", inventory.MaxFulfilmentIDLength+1)
	for name, c := range map[string]inventory.FulfilOrder{
		"no lines":         dmShip("F-1"),
		"no fulfilment id": dmShip("", dmShipLine("SKU-A", 1)),
		"long id":          dmShip(long, dmShipLine("SKU-A", 1)),
		"zero quantity":    dmShip("F-1", dmShipLine("SKU-A", 0)),
		"no location":      dmShip("F-1", inventory.FulfilmentLine{SKU: "SKU-A", Quantity: 1}),
		"bad area":         dmShip("F-1", inventory.FulfilmentLine{SKU: "SKU-A", Quantity: 1, Location: "WH-1", Area: "roof"}),
	} {
		if err := c.Validate(); !errors.Is(err, inventory.ErrInvalidEvent) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, _, err := inventory.ApplyOrder(inventory.Order{}, false, dmShip("F-1", dmShipLine("SKU-A", 1)), at(1)); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Errorf("fulfilment of an unknown order: %v", err)
	}
}
