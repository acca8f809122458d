package inventory_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// ---------------------------------------------------------------------------
// Commands and ids.

func dmLine(sku string, qty int64) inventory.OrderLine {
	return inventory.OrderLine{SKU: sku, Quantity: qty}
}

func dmPlace(id string, lines ...inventory.OrderLine) inventory.PlaceOrder {
	return inventory.PlaceOrder{OrderID: id, Channel: "web", Lines: lines, ReservationTTL: time.Hour, DecisionTimeout: time.Minute}
}

func dmLines(n int) []inventory.OrderLine {
	lines := make([]inventory.OrderLine, n)
	for i := range lines {
		lines[i] = dmLine(fmt.Sprintf("SKU-%03d", i), 1)
	}
	return lines
}

func TestPlaceOrderValidate(t *testing.T) {
	valid := func() inventory.PlaceOrder { return dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2)) }
	type P = inventory.PlaceOrder
	cases := slices.Concat(
		slices.DeleteFunc(refBreaks("order_id", func(c *P, v string) { c.OrderID = v }), func(b dmBreak[P]) bool {
			return b.name == "order_id at the limit" // order ids leave room for the line suffix
		}),
		[]dmBreak[P]{
			{name: "order_id at its limit", set: func(c *P) { c.OrderID = dmLong[:inventory.MaxOrderIDLength] }, ok: true},
			{name: "order_id past its limit", set: func(c *P) { c.OrderID = dmLong[:inventory.MaxOrderIDLength+1] }, words: "order_id"},
		},
		idBreaks("channel", func(c *P, v string) { c.Channel = v }),
		[]dmBreak[P]{
			{name: "no lines", set: func(c *P) { c.Lines = nil }, words: "lines"},
			{name: "one line", set: func(c *P) { c.Lines = dmLines(1) }, ok: true},
			{name: "the most lines", set: func(c *P) { c.Lines = dmLines(inventory.MaxOrderLines) }, ok: true},
			{name: "too many lines", set: func(c *P) { c.Lines = dmLines(inventory.MaxOrderLines + 1) }, words: "lines"},
			{name: "line sku empty", set: func(c *P) { c.Lines[1].SKU = "" }, words: "line 2: sku"},
			{name: "line sku with a control character", set: func(c *P) { c.Lines[1].SKU = "A\x01B" }, words: "line 2: sku"},
			{name: "line quantity 0", set: func(c *P) { c.Lines[0].Quantity = 0 }, words: "line 1: quantity"},
			{name: "line quantity negative", set: func(c *P) { c.Lines[0].Quantity = -3 }, words: "line 1: quantity"},
			{name: "line quantity at the limit", set: func(c *P) { c.Lines[0].Quantity = inventory.MaxUnits }, ok: true},
			{name: "line quantity beyond the limit", set: func(c *P) { c.Lines[0].Quantity = inventory.MaxUnits + 1 }, words: "line 1: quantity"},
			{name: "line status is ignored", set: func(c *P) { c.Lines[0].Status, c.Lines[0].ReservationID = inventory.LineAccepted, "x y" }, ok: true},
			{name: "a sku twice", set: func(c *P) { c.Lines[2].SKU = c.Lines[0].SKU }, words: "appears twice"},
			{name: "ttl 0", set: func(c *P) { c.ReservationTTL = 0 }, words: "reservation ttl"},
			{name: "ttl negative", set: func(c *P) { c.ReservationTTL = -time.Second }, words: "reservation ttl"},
			{name: "ttl at the limit", set: func(c *P) { c.ReservationTTL = inventory.MaxReservationTTL }, ok: true},
			{name: "ttl beyond the limit", set: func(c *P) { c.ReservationTTL = inventory.MaxReservationTTL + 1 }, words: "reservation ttl"},
			{name: "decision timeout 0", set: func(c *P) { c.DecisionTimeout = 0 }, words: "decision timeout"},
			{name: "decision timeout at the limit", set: func(c *P) { c.DecisionTimeout = inventory.MaxDecisionTimeout }, ok: true},
			{name: "decision timeout beyond the limit", set: func(c *P) { c.DecisionTimeout = inventory.MaxDecisionTimeout + 1 }, words: "decision timeout"},
		})
	// "a sku twice" needs a third line; give every case one.
	three := func() P {
		c := valid()
		c.Lines = append(c.Lines, dmLine("SKU-C", 3))
		return c
	}
	dmBreakEach(t, three, cases)
}

func TestReservationIDFor(t *testing.T) {
	for _, tt := range []struct {
		order string
		i     int
		want  string
	}{
		{"O-1", 0, "O-1:1"}, {"O-1", 9, "O-1:10"}, {"O-1", inventory.MaxOrderLines - 1, "O-1:100"}, {"a:b", 1, "a:b:2"},
	} {
		if got := inventory.ReservationIDFor(tt.order, tt.i); got != tt.want {
			t.Errorf("ReservationIDFor(%q, %d) = %q, want %q", tt.order, tt.i, got, tt.want)
		}
	}
	// Distinct lines of distinct orders never share a reservation id, even
	// when order ids contain colons and digits.
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.StringOfN(rapid.SampledFrom([]rune("a1:")), 1, 6, -1)
		a, b := gen.Draw(t, "a"), gen.Draw(t, "b")
		i, j := rapid.IntRange(0, 120).Draw(t, "i"), rapid.IntRange(0, 120).Draw(t, "j")
		if (a != b || i != j) && inventory.ReservationIDFor(a, i) == inventory.ReservationIDFor(b, j) {
			t.Fatalf("(%q, %d) and (%q, %d) share %q", a, i, b, j, inventory.ReservationIDFor(a, i))
		}
	})
}

// Every order PlaceOrder.Validate accepts must produce reservation
// requests the SKU side accepts: reservation ids ("<order id>:<line>") must
// stay within MaxRefLength, so longer order ids are refused up front.
func TestLongOrderIDs(t *testing.T) {
	if err := dmPlace(dmLong, dmLine("SKU-A", 1)).Validate(); err == nil || !strings.Contains(err.Error(), "order_id") {
		t.Fatalf("a %d-byte order id: %v, want an error naming order_id", len(dmLong), err)
	}
	lines := make([]inventory.OrderLine, inventory.MaxOrderLines)
	for i := range lines {
		lines[i] = dmLine(fmt.Sprintf("SKU-%d", i), 1)
	}
	cmd := dmPlace(dmLong[:inventory.MaxOrderIDLength], lines...)
	if err := cmd.Validate(); err != nil {
		t.Fatal(err)
	}
	_, eff, _, err := inventory.ApplyOrder(inventory.Order{}, false, cmd, at(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range eff.Requests {
		if err := r.Validate(); err != nil {
			t.Fatalf("order %d bytes long, request %q: %v", len(cmd.OrderID), r.ReservationID, err)
		}
	}
}

// ---------------------------------------------------------------------------
// Deterministic examples of the saga.

// dmSaga folds inputs into one order the way the orders processor does:
// the order is stored only when Result.Changed.
type dmSaga struct {
	t     *testing.T
	o     inventory.Order
	found bool
}

func (g *dmSaga) apply(in any, at time.Time) inventory.OrderEffects {
	g.t.Helper()
	before := dmCloneOrder(g.o)
	next, eff, res, err := inventory.ApplyOrder(g.o, g.found, in, at)
	if err != nil {
		g.t.Fatalf("ApplyOrder(%+v): %v", in, err)
	}
	if !reflect.DeepEqual(g.o, before) {
		g.t.Fatalf("ApplyOrder(%+v) modified the order it was given", in)
	}
	if res.Changed {
		g.o, g.found = next, true
	} else if !reflect.DeepEqual(next, g.o) {
		g.t.Fatalf("ApplyOrder(%+v) reported no change but returned %+v", in, next)
	}
	return eff
}

// same applies in and checks that nothing changes and no effect is sent.
func (g *dmSaga) same(in any, at time.Time) {
	g.t.Helper()
	before := dmCloneOrder(g.o)
	if eff := g.apply(in, at); len(eff.Requests)+len(eff.Releases)+len(eff.Extensions) != 0 || !reflect.DeepEqual(g.o, before) {
		g.t.Fatalf("ApplyOrder(%+v) changed %+v or sent %+v", in, g.o, eff)
	}
}

func dmAccept(r inventory.ReservationRequested, backorder bool) inventory.Outcome {
	return inventory.Outcome{ReservationID: r.ReservationID, OrderID: r.OrderID, SKU: r.SKU, Quantity: r.Quantity, Accepted: true, Backorder: backorder, DecidedAt: at(1)}
}

func dmRefuse(r inventory.ReservationRequested, reason inventory.RejectReason) inventory.Outcome {
	return inventory.Outcome{ReservationID: r.ReservationID, OrderID: r.OrderID, SKU: r.SKU, Quantity: r.Quantity, Reason: reason,
		Message: "refused: " + r.SKU, DecidedAt: at(1)}
}

func dmReleaseOf(r inventory.ReservationRequested, why inventory.ReleaseReason) inventory.ReservationReleased {
	return inventory.ReservationReleased{ReservationID: r.ReservationID, SKU: r.SKU, Reason: why}
}

func dmLineStatuses(o inventory.Order) []inventory.LineStatus {
	var s []inventory.LineStatus
	for _, l := range o.Lines {
		s = append(s, l.Status)
	}
	return s
}

// dmStarted places a three-line order at at(0) and returns its requests.
func dmStarted(t *testing.T) (*dmSaga, []inventory.ReservationRequested) {
	g := &dmSaga{t: t}
	cmd := dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2), dmLine("SKU-C", 3))
	eff := g.apply(cmd, at(0))
	var want []inventory.ReservationRequested
	for i, l := range cmd.Lines {
		want = append(want, inventory.ReservationRequested{ReservationID: inventory.ReservationIDFor("O-1", i), OrderID: "O-1",
			SKU: l.SKU, Channel: "web", Quantity: l.Quantity, TTL: time.Hour})
	}
	if !reflect.DeepEqual(eff, inventory.OrderEffects{Requests: want}) {
		t.Fatalf("placing sent %+v, want one request per line %+v", eff, want)
	}
	if g.o.Status != inventory.OrderPending || !g.o.PlacedAt.Equal(at(0)) || !g.o.DecideBy.Equal(at(60)) || g.o.ID != "O-1" ||
		g.o.Channel != "web" || g.o.ReservationTTL != time.Hour || len(g.o.Lines) != 3 {
		t.Fatalf("placed order %+v", g.o)
	}
	for i, l := range g.o.Lines {
		if l.Status != inventory.LinePending || l.ReservationID != want[i].ReservationID || l.SKU != want[i].SKU || l.Quantity != want[i].Quantity {
			t.Fatalf("line %d: %+v", i+1, l)
		}
	}
	return g, want
}

// Every rejected line says why: a cancellation, the deadline, another
// line's failure, and a refusal whose outcome carried no message.
func TestSagaRejectedLinesSayWhy(t *testing.T) {
	messages := func(o inventory.Order) []string {
		var m []string
		for _, l := range o.Lines {
			m = append(m, l.Message)
		}
		return m
	}
	g, _ := dmStarted(t)
	g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(1))
	want := slices.Repeat([]string{"order was cancelled before this line was decided"}, 3)
	if got := messages(g.o); !slices.Equal(got, want) {
		t.Errorf("cancelled: %q, want %q", got, want)
	}

	g, _ = dmStarted(t)
	g.apply(inventory.OrderTick{OrderID: "O-1", At: at(60)}, at(60))
	want = slices.Repeat([]string{"no decision for this line before the order's deadline 2024-03-01T12:01:00Z"}, 3)
	if got := messages(g.o); !slices.Equal(got, want) {
		t.Errorf("timed out: %q, want %q", got, want)
	}

	g, req := dmStarted(t)
	silent := dmRefuse(req[1], inventory.RejectCapExceeded)
	silent.Message = ""
	g.apply(silent, at(1))
	why := "line 2 (SKU-B): sales cap on web does not allow that many units"
	want = []string{"not reserved because the order failed: " + why, "sales cap on web does not allow that many units",
		"not reserved because the order failed: " + why}
	if got := messages(g.o); !slices.Equal(got, want) || g.o.Reason != why {
		t.Errorf("refused without a message: lines %q, reason %q; want %q, %q", got, g.o.Reason, want, why)
	}
}

func TestSagaReserved(t *testing.T) {
	g, req := dmStarted(t)
	if eff := g.apply(dmAccept(req[1], false), at(1)); len(eff.Requests)+len(eff.Releases) != 0 {
		t.Fatalf("an acceptance sent %+v", eff)
	}
	if g.o.Lines[1].Status != inventory.LineAccepted || g.o.Status != inventory.OrderPending {
		t.Fatalf("after one acceptance: %+v", g.o)
	}
	g.apply(dmAccept(req[0], false), at(2))
	eff := g.apply(dmAccept(req[2], true), at(3))
	if len(eff.Requests)+len(eff.Releases) != 0 || g.o.Status != inventory.OrderReserved || !g.o.Lines[2].Backorder || g.o.Lines[0].Backorder {
		t.Fatalf("after every acceptance: %+v, %+v", g.o, eff)
	}
	if !g.o.Final() {
		t.Fatal("a reserved order is final")
	}
	// Redeliveries and the deadline change nothing.
	g.same(dmAccept(req[0], false), at(4))
	g.same(dmRefuse(req[1], inventory.RejectInsufficient), at(4))
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(600)}, at(600))
	g.same(dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2), dmLine("SKU-C", 3)), at(5))
}

func TestSagaRejectedCompensates(t *testing.T) {
	g, req := dmStarted(t)
	g.apply(dmAccept(req[0], false), at(1))
	refusal := dmRefuse(req[1], inventory.RejectInsufficient)
	eff := g.apply(refusal, at(2))
	if want := (inventory.OrderEffects{Releases: []inventory.ReservationReleased{dmReleaseOf(req[0], inventory.ReleaseCompensated)}}); !reflect.DeepEqual(eff, want) {
		t.Fatalf("compensation %+v, want %+v", eff, want)
	}
	if g.o.Status != inventory.OrderRejected || !strings.Contains(g.o.Reason, "line 2 (SKU-B)") || !strings.Contains(g.o.Reason, refusal.Message) {
		t.Fatalf("rejected order %+v", g.o)
	}
	if got := dmLineStatuses(g.o); !slices.Equal(got, []inventory.LineStatus{inventory.LineReleased, inventory.LineRejected, inventory.LineRejected}) {
		t.Fatalf("line statuses %v", got)
	}
	if l := g.o.Lines[1]; l.Reject != inventory.RejectInsufficient || l.Message != refusal.Message {
		t.Fatalf("failing line %+v", l)
	}
	if l := g.o.Lines[2]; l.Reject != inventory.RejectCancelled {
		t.Fatalf("undecided line %+v", l)
	}
	// A late acceptance of the undecided line is released at once, and
	// again on every redelivery (the SKU side ignores the duplicates).
	late := dmAccept(req[2], false)
	for range 2 {
		before := dmCloneOrder(g.o)
		eff := g.apply(late, at(3))
		if want := []inventory.ReservationReleased{dmReleaseOf(req[2], inventory.ReleaseCompensated)}; !reflect.DeepEqual(eff.Releases, want) || len(eff.Requests) != 0 {
			t.Fatalf("late acceptance: %+v", eff)
		}
		if !reflect.DeepEqual(g.o, before) {
			t.Fatal("a late acceptance changed the order")
		}
	}
	g.same(dmRefuse(req[2], inventory.RejectInsufficient), at(4))
	g.same(refusal, at(4))
	// The compensated line's acceptance, redelivered: released again.
	before := dmCloneOrder(g.o)
	if eff := g.apply(dmAccept(req[0], false), at(4)); !reflect.DeepEqual(eff.Releases, []inventory.ReservationReleased{dmReleaseOf(req[0], inventory.ReleaseCompensated)}) ||
		!reflect.DeepEqual(g.o, before) {
		t.Fatalf("redelivered acceptance of a compensated line: %+v", eff)
	}
	// Even the refused line, should its SKU ever accept it (a redelivered
	// request decided anew after retention), gives its units back.
	if eff := g.apply(dmAccept(req[1], false), at(4)); !reflect.DeepEqual(eff.Releases, []inventory.ReservationReleased{dmReleaseOf(req[1], inventory.ReleaseCompensated)}) ||
		!reflect.DeepEqual(g.o, before) {
		t.Fatalf("acceptance of a refused line: %+v", eff)
	}
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(5))
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(600)}, at(600))
}

func TestSagaCancel(t *testing.T) {
	g, req := dmStarted(t)
	g.apply(dmAccept(req[0], false), at(1))
	eff := g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(2))
	if want := []inventory.ReservationReleased{dmReleaseOf(req[0], inventory.ReleaseCancelled)}; !reflect.DeepEqual(eff.Releases, want) || len(eff.Requests) != 0 {
		t.Fatalf("cancel sent %+v", eff)
	}
	if g.o.Status != inventory.OrderCancelled || g.o.Reason == "" || g.o.Lines[1].Reject != inventory.RejectCancelled || g.o.Lines[2].Reject != inventory.RejectCancelled {
		t.Fatalf("cancelled order %+v", g.o)
	}
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(3))
	if eff := g.apply(dmAccept(req[1], false), at(3)); len(eff.Releases) != 1 || eff.Releases[0].Reason != inventory.ReleaseCompensated {
		t.Fatalf("a late acceptance after cancellation: %+v", eff)
	}

	// A reserved order can still be cancelled: every line is released.
	g, req = dmStarted(t)
	for _, r := range req {
		g.apply(dmAccept(r, false), at(1))
	}
	eff = g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(2))
	var want []inventory.ReservationReleased
	for _, r := range req {
		want = append(want, dmReleaseOf(r, inventory.ReleaseCancelled))
	}
	if !reflect.DeepEqual(eff.Releases, want) || g.o.Status != inventory.OrderCancelled {
		t.Fatalf("cancel of a reserved order: %+v, %+v", g.o, eff)
	}
	if got := dmLineStatuses(g.o); !slices.Equal(got, []inventory.LineStatus{inventory.LineReleased, inventory.LineReleased, inventory.LineReleased}) {
		t.Fatalf("line statuses %v", got)
	}

	// A rejected order stays rejected.
	g, req = dmStarted(t)
	g.apply(dmRefuse(req[0], inventory.RejectNotSellable), at(1))
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(2))
	if g.o.Status != inventory.OrderRejected {
		t.Fatalf("cancel after rejection: %+v", g.o)
	}
}

func TestSagaDeadline(t *testing.T) {
	g, req := dmStarted(t)
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(59)}, at(59))
	g.apply(dmAccept(req[0], true), at(30))
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(60).Add(-time.Nanosecond)}, at(60).Add(-time.Nanosecond))
	eff := g.apply(inventory.OrderTick{OrderID: "O-1", At: at(60)}, at(60))
	if want := []inventory.ReservationReleased{dmReleaseOf(req[0], inventory.ReleaseCompensated)}; !reflect.DeepEqual(eff.Releases, want) {
		t.Fatalf("deadline sent %+v", eff)
	}
	if g.o.Status != inventory.OrderRejected || !strings.Contains(g.o.Reason, "no decision") ||
		g.o.Lines[1].Reject != inventory.RejectTimeout || g.o.Lines[2].Reject != inventory.RejectTimeout || !g.o.Lines[0].Backorder {
		t.Fatalf("timed-out order %+v", g.o)
	}
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(61)}, at(61))
	if eff := g.apply(dmAccept(req[2], false), at(62)); len(eff.Releases) != 1 || eff.Releases[0].ReservationID != req[2].ReservationID {
		t.Fatalf("a late acceptance after the deadline: %+v", eff)
	}
	g.same(dmRefuse(req[1], inventory.RejectInsufficient), at(62))
	if g.o.Lines[1].Reject != inventory.RejectTimeout {
		t.Fatal("a late refusal rewrote the timed-out line")
	}
	// A tick for an order that does not exist (yet) does nothing.
	(&dmSaga{t: t}).same(inventory.OrderTick{OrderID: "O-9", At: at(1)}, at(1))
}

func TestSagaReplace(t *testing.T) {
	g, req := dmStarted(t)
	cmd := dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2), dmLine("SKU-C", 3))
	g.apply(dmAccept(req[1], false), at(1))
	placed := dmCloneOrder(g.o)
	for _, retry := range []inventory.PlaceOrder{cmd, func() inventory.PlaceOrder { c := cmd; c.DecisionTimeout = 5 * time.Minute; return c }()} {
		eff := g.apply(retry, at(2))
		if want := []inventory.ReservationRequested{req[0], req[2]}; !reflect.DeepEqual(eff.Requests, want) || len(eff.Releases) != 0 {
			t.Fatalf("re-placed order requested %+v, want only the pending lines %+v", eff, want)
		}
		if !reflect.DeepEqual(g.o, placed) {
			t.Fatalf("re-placing changed the order: %+v", g.o)
		}
	}
	conflicts := map[string]func(*inventory.PlaceOrder){
		"another channel":    func(c *inventory.PlaceOrder) { c.Channel = "app" },
		"another ttl":        func(c *inventory.PlaceOrder) { c.ReservationTTL = time.Minute },
		"another quantity":   func(c *inventory.PlaceOrder) { c.Lines[1].Quantity = 5 },
		"another sku":        func(c *inventory.PlaceOrder) { c.Lines[2].SKU = "SKU-D" },
		"a line fewer":       func(c *inventory.PlaceOrder) { c.Lines = c.Lines[:2] },
		"a line more":        func(c *inventory.PlaceOrder) { c.Lines = append(c.Lines, dmLine("SKU-D", 1)) },
		"lines in new order": func(c *inventory.PlaceOrder) { c.Lines[0], c.Lines[1] = c.Lines[1], c.Lines[0] },
	}
	for name, change := range conflicts {
		c := cmd
		c.Lines = slices.Clone(cmd.Lines)
		change(&c)
		next, eff, res, err := inventory.ApplyOrder(g.o, true, c, at(3))
		if !errors.Is(err, inventory.ErrOrderConflict) || res.Changed || !reflect.DeepEqual(next, g.o) || len(eff.Requests)+len(eff.Releases) != 0 {
			t.Errorf("%s: %v, %+v, %+v", name, err, res, eff)
		}
	}
	bad := cmd
	bad.ReservationTTL = 0
	if _, _, _, err := inventory.ApplyOrder(g.o, true, bad, at(3)); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Errorf("an invalid re-placement: %v", err)
	}
	// Once the order ended, a retry requests nothing.
	g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(4))
	g.same(cmd, at(5))
}

func TestApplyOrderRejectsInvalid(t *testing.T) {
	g, req := dmStarted(t)
	foreign := dmAccept(req[0], false)
	foreign.ReservationID = "O-2:1"
	for _, tt := range []struct {
		name  string
		o     inventory.Order
		found bool
		in    any
	}{
		{"nil input", g.o, true, nil},
		{"unknown input", g.o, true, "place it"},
		{"a pointer to a command", g.o, true, &inventory.CancelOrder{OrderID: "O-1"}},
		{"a demand event", g.o, true, req[0]},
		{"invalid new order", inventory.Order{}, false, dmPlace("O 2", dmLine("SKU-A", 1))},
		{"cancel of an unknown order with a bad id", inventory.Order{}, false, inventory.CancelOrder{OrderID: "O 2"}},
		{"outcome for an unknown order", inventory.Order{}, false, dmAccept(req[0], false)},
		{"outcome for another order's line", g.o, true, foreign},
	} {
		before := dmCloneOrder(tt.o)
		next, eff, res, err := inventory.ApplyOrder(tt.o, tt.found, tt.in, at(1))
		if !errors.Is(err, inventory.ErrInvalidEvent) || !inventory.IsInvalid(err) {
			t.Errorf("%s: error %v", tt.name, err)
		}
		if res.Changed || len(eff.Requests)+len(eff.Releases) != 0 || !reflect.DeepEqual(next, before) || !reflect.DeepEqual(tt.o, before) {
			t.Errorf("%s: an error changed something: %+v, %+v, %+v", tt.name, next, eff, res)
		}
	}
}

func TestSagaTimesAreUTC(t *testing.T) {
	zone := time.FixedZone("UTC-5", -5*60*60)
	g := &dmSaga{t: t}
	g.apply(dmPlace("O-1", dmLine("SKU-A", 1)), at(0).In(zone))
	if g.o.PlacedAt.Location() != time.UTC || g.o.DecideBy.Location() != time.UTC || !g.o.DecideBy.Equal(at(60)) {
		t.Fatalf("times not in UTC: %+v", g.o)
	}
	g.apply(inventory.OrderTick{OrderID: "O-1", At: at(60).In(zone)}, at(60).In(zone))
	if g.o.Status != inventory.OrderRejected {
		t.Fatalf("deadline in another zone: %+v", g.o)
	}
}

// ---------------------------------------------------------------------------
// The saga against the SKU side: a simulation of the whole protocol. The
// SKU side is real inventory.Demand on one State per SKU, fed in the order
// the saga emitted for that SKU (demand is partitioned by SKU); every saga
// input (commands, ticks, outcomes) is delivered in any order, duplicated,
// and late.

type sagaStep struct {
	in any
	at time.Time
}

type sagaOrder struct {
	cmd   inventory.PlaceOrder
	o     inventory.Order
	found bool
	trace []sagaStep // inputs applied without error, in delivery order
}

type sagaSim struct {
	p           inventory.Policies
	skus        []string
	states      map[string]inventory.State
	stock       map[string]int64
	blocked     map[string]bool // not sellable on web
	unknown     map[string]bool // never supplied: no state may appear for it
	queue       map[string][]inventory.Event
	log         map[string][]inventory.Event
	first       map[string]inventory.Outcome // first outcome per reservation id
	pool        []any                        // saga inputs in flight
	applied     []any                        // saga inputs applied without error
	orders      map[string]*sagaOrder
	ids         []string
	now         time.Time
	cancels     map[string]bool // orders a cancel was sent for
	fulfilments int             // fulfilment ids handed out
	// confirmed holds every expiry a SKU answered for each reservation:
	// its acceptance's decision time plus the TTL, and the expiry of every
	// accepted extension. An order may show no other.
	confirmed map[string][]time.Time
}

func sagaKey(in any) string {
	switch c := in.(type) {
	case inventory.PlaceOrder:
		return c.OrderID
	case inventory.CancelOrder:
		return c.OrderID
	case inventory.OrderTick:
		return c.OrderID
	case inventory.ExtendOrder:
		return c.OrderID
	case inventory.FulfilOrder:
		return c.OrderID
	case inventory.Outcome:
		return c.OrderID
	}
	panic(fmt.Sprintf("%T is not a saga input", in))
}

// newSagaSim draws the SKUs (unknown, not sellable, short of stock, or
// with every SKU known, sellable and stocked for every order when stocked
// is set) and the orders to place.
func newSagaSim(t *rapid.T, stocked bool) *sagaSim {
	sim := &sagaSim{p: inventory.Policies{Channels: []string{"app", "web"}}, skus: []string{"SKU-A", "SKU-B", "SKU-C"},
		states: map[string]inventory.State{}, stock: map[string]int64{}, blocked: map[string]bool{}, unknown: map[string]bool{},
		queue: map[string][]inventory.Event{}, log: map[string][]inventory.Event{}, first: map[string]inventory.Outcome{},
		orders: map[string]*sagaOrder{}, now: at(1), cancels: map[string]bool{},
		confirmed: map[string][]time.Time{}}
	for _, s := range sim.skus {
		if !stocked && rapid.IntRange(0, 5).Draw(t, s+" known") == 0 {
			// A SKU skuflow never heard of: every line for it is rejected
			// and nothing is created for it.
			sim.states[s], sim.unknown[s] = inventory.State{SKU: s}, true
			continue
		}
		n := int64(12)
		if !stocked {
			n = rapid.Int64Range(0, 6).Draw(t, s+" stock")
		}
		state, _, err := inventory.Apply(inventory.State{SKU: s}, inventory.StockLevel{SKU: s, Location: "WH-1", OnHand: n, AsOf: t0, Sequence: 1}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !stocked && rapid.IntRange(0, 5).Draw(t, s+" sellable") == 0 {
			state, _, err = inventory.Apply(state, inventory.ChannelEligibility{SKU: s, Channel: "web", Sellable: false, AsOf: t0}, t0)
			if err != nil {
				t.Fatal(err)
			}
			sim.blocked[s] = true
		}
		sim.states[s], sim.stock[s] = state, n
	}
	for i := range rapid.IntRange(1, 4).Draw(t, "orders") {
		id := fmt.Sprintf("O-%d", i+1)
		skus := rapid.Permutation(sim.skus).Draw(t, "skus")[:rapid.IntRange(1, 3).Draw(t, "lines")]
		var lines []inventory.OrderLine
		for _, s := range skus {
			lines = append(lines, dmLine(s, rapid.Int64Range(1, 3).Draw(t, "qty")))
		}
		cmd := dmPlace(id, lines...)
		// Short enough for holds to run out within a run ("advance" moves
		// up to 30s), long enough for many to stay held.
		cmd.ReservationTTL = time.Duration(rapid.IntRange(5, 120).Draw(t, "ttl")) * time.Second
		cmd.DecisionTimeout = time.Duration(rapid.IntRange(2, 40).Draw(t, "timeout")) * time.Second
		sim.orders[id] = &sagaOrder{cmd: cmd}
		sim.ids = append(sim.ids, id)
		sim.pool = append(sim.pool, cmd)
	}
	return sim
}

// deliverSaga applies one saga input like the orders processor does.
func (sim *sagaSim) deliverSaga(t *rapid.T, in any, redelivery bool) {
	so := sim.orders[sagaKey(in)]
	at := sim.now
	if tk, ok := in.(inventory.OrderTick); ok {
		at = tk.At
	}
	before := dmCloneOrder(so.o)
	wasFound := so.found
	next, eff, res, err := inventory.ApplyOrder(so.o, so.found, in, at)
	if !reflect.DeepEqual(so.o, before) {
		t.Fatalf("ApplyOrder(%+v) modified its input", in)
	}
	if err != nil {
		t.Fatalf("ApplyOrder(%+v): %v", in, err)
	}
	if !res.Changed && !reflect.DeepEqual(next, so.o) {
		t.Fatalf("ApplyOrder(%+v) reported no change but returned another order", in)
	}
	// A redelivered tick may find the order reserved since its first
	// delivery, with the hold run out by the tick's time: it expires it.
	expiredNow := so.o.Status == inventory.OrderReserved && next.Status == inventory.OrderExpired
	if _, tick := in.(inventory.OrderTick); tick && expiredNow {
		redelivery = false
	}
	// A redelivered extension may find the order reserved since its first
	// delivery: it extends it then (or finds it expired).
	if _, ext := in.(inventory.ExtendOrder); ext {
		redelivery = false
	}
	// A fulfilment is decided once: its redelivery changes nothing and
	// resends exactly what its first delivery sent.
	if f, ok := in.(inventory.FulfilOrder); ok {
		if dec, seen := before.FulfilmentByID(f.FulfilmentID); seen {
			if res.Changed {
				t.Fatalf("fulfilment %s decided again", f.FulfilmentID)
			}
			if (dec.Refused == "") != (len(eff.Fulfilments) > 0) {
				t.Fatalf("redelivered fulfilment %+v (refused %q) sent %+v", f, dec.Refused, eff.Fulfilments)
			}
		}
	}
	if redelivery && res.Changed {
		t.Fatalf("redelivery of %+v changed the order from %+v to %+v", in, so.o, next)
	}
	if res.Changed {
		so.o, so.found = next, true
	}
	if len(eff.Fulfilments) > 0 && !redelivery {
		sagaShipments++
		if next.Status == inventory.OrderPartiallyFulfilled {
			sagaPartialShipments++
		}
	}
	so.trace = append(so.trace, sagaStep{in, at})
	sim.applied = append(sim.applied, in)

	// What the saga sends must follow from what it knows.
	pending := map[string]inventory.OrderLine{}
	for _, l := range so.o.Lines {
		if l.Status == inventory.LinePending {
			pending[l.ReservationID] = l
		}
	}
	var requested []string
	for _, r := range eff.Requests {
		l, ok := pending[r.ReservationID]
		want := inventory.ReservationRequested{ReservationID: l.ReservationID, OrderID: so.o.ID, SKU: l.SKU, Channel: so.o.Channel,
			Quantity: l.Quantity, TTL: so.o.ReservationTTL}
		if !ok || r != want {
			t.Fatalf("request %+v is not for a pending line (%+v)", r, so.o)
		}
		requested = append(requested, r.ReservationID)
		sim.queue[r.SKU] = append(sim.queue[r.SKU], r)
	}
	if _, ok := in.(inventory.PlaceOrder); ok && wasFound {
		// A re-placed order re-requests exactly its pending lines.
		var want []string
		for _, l := range so.o.Lines {
			if l.Status == inventory.LinePending && !so.o.Final() {
				want = append(want, l.ReservationID)
			}
		}
		if !slices.Equal(requested, want) {
			t.Fatalf("re-placed order requested %v, pending %v", requested, want)
		}
	}
	for _, r := range eff.Releases {
		// Only a reservation the saga saw accepted is released.
		seen := slices.ContainsFunc(so.trace, func(s sagaStep) bool {
			o, ok := s.in.(inventory.Outcome)
			return ok && o.Accepted && o.ReservationID == r.ReservationID
		})
		if !seen {
			t.Fatalf("release %+v of a reservation never seen accepted", r)
		}
		sim.queue[r.SKU] = append(sim.queue[r.SKU], r)
	}
	for _, f := range eff.Fulfilments {
		// Only an applied fulfilment ships, each line once under its own id.
		c, ok := in.(inventory.FulfilOrder)
		i := slices.IndexFunc(so.o.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == f.ReservationID })
		if !ok || i < 0 || so.o.Lines[i].SKU != f.SKU || f.Validate() != nil || !strings.HasPrefix(f.FulfilmentID, c.FulfilmentID+":") {
			t.Fatalf("fulfilment %+v does not follow from %+v on %+v", f, in, so.o)
		}
		sim.queue[f.SKU] = append(sim.queue[f.SKU], f)
	}
	for _, x := range eff.Extensions {
		// Only a held line is extended, to the latest expiry the order
		// asked for: its pending extension, else its confirmed expiry.
		i := slices.IndexFunc(so.o.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == x.ReservationID })
		if (so.o.Status != inventory.OrderReserved && so.o.Status != inventory.OrderPartiallyFulfilled) || i < 0 || !so.o.Lines[i].Held() ||
			!x.ExpiresAt.Equal(sagaRequested(so.o.Lines[i])) || x.SKU != so.o.Lines[i].SKU || x.OrderID != so.o.ID {
			t.Fatalf("extension %+v does not match the order %+v", x, so.o)
		}
		sim.queue[x.SKU] = append(sim.queue[x.SKU], x)
	}
	sagaCheckOrder(t, so)
	sim.checkConfirmed(t, so)
}

// sagaRequested is the latest expiry the saga asked a held line's SKU for.
func sagaRequested(l inventory.OrderLine) time.Time {
	if l.ExtendTo.After(l.ExpiresAt) {
		return l.ExtendTo
	}
	return l.ExpiresAt
}

// checkConfirmed: an order is never shown with an expiry its SKU has not
// confirmed. Every line's expires_at, in the saga's state and as readers
// see it (OrderAt), is one its SKU answered, and the SKU holds (or held)
// the reservation at least that long; an extension not yet confirmed is
// only ever pending (ExtendTo, later than the expiry), and only on a held
// line.
func (sim *sagaSim) checkConfirmed(t *rapid.T, so *sagaOrder) {
	for _, o := range []inventory.Order{so.o, inventory.OrderAt(so.o, sim.now)} {
		for _, l := range o.Lines {
			if !l.ExtendTo.IsZero() && (!l.Held() || !l.ExtendTo.After(l.ExpiresAt)) {
				t.Fatalf("order %s line %s: extension to %s pending on a %v line expiring %s", o.ID, l.ReservationID, l.ExtendTo, l.Status, l.ExpiresAt)
			}
			if l.ExpiresAt.IsZero() {
				continue
			}
			if !slices.ContainsFunc(sim.confirmed[l.ReservationID], l.ExpiresAt.Equal) {
				t.Fatalf("order %s line %s shown expiring at %s, which its SKU never confirmed (confirmed %v)", o.ID, l.ReservationID,
					l.ExpiresAt, sim.confirmed[l.ReservationID])
			}
			if r, ok := dmFind(sim.states[l.SKU], l.ReservationID); !ok || r.ExpiresAt.Before(l.ExpiresAt) {
				t.Fatalf("order %s line %s shown expiring at %s, the SKU has %+v", o.ID, l.ReservationID, l.ExpiresAt, r)
			}
		}
	}
}

// deliverDemand hands the oldest demand message of a SKU to the SKU side.
func (sim *sagaSim) deliverDemand(t *rapid.T, s string) {
	ev := sim.queue[s][0]
	sim.queue[s] = sim.queue[s][1:]
	sim.log[s] = append(sim.log[s], ev)
	next, out, res := dmDemand(t, sim.states[s], ev, sim.p, sim.now)
	if sim.unknown[s] {
		if res.Changed {
			t.Fatalf("%+v created unknown sku %s", ev, s)
		}
		if out != nil && (out.Accepted || out.Reason != inventory.RejectInsufficient || out.Message == "") {
			t.Fatalf("unknown sku %s: outcome %+v", s, *out)
		}
	}
	sim.states[s] = next
	sim.emit(t, out)
}

func (sim *sagaSim) emit(t *rapid.T, out *inventory.Outcome) {
	if out == nil {
		return
	}
	switch so := sim.orders[out.OrderID]; {
	case out.Accepted && out.Extension:
		sim.confirmed[out.ReservationID] = append(sim.confirmed[out.ReservationID], out.ExpiresAt)
	case out.Accepted && so != nil:
		sim.confirmed[out.ReservationID] = append(sim.confirmed[out.ReservationID], out.DecidedAt.Add(so.cmd.ReservationTTL))
	}
	if out.Extension {
		// The answer to an extension depends on when it arrives.
		sim.pool = append(sim.pool, *out)
		return
	}
	if first, ok := sim.first[out.ReservationID]; ok && !reflect.DeepEqual(first, *out) {
		t.Fatalf("outcome %+v differs from the first %+v", *out, first)
	} else if !ok {
		sim.first[out.ReservationID] = *out
	}
	sim.pool = append(sim.pool, *out)
}

// The reference model: what an order must be after the inputs it saw, in
// the order it saw them. The order ends at the first of: a cancel, a tick
// at or after its deadline, a line's first outcome being a refusal, or the
// moment every line's first outcome is an acceptance (reserved; a later
// cancel still cancels it, unless the cancel or a tick comes at or after
// the earliest acceptance's decision time plus the TTL: then it expired).
// Outcomes after the end decide nothing. A cancel before the place ends the
// order cancelled, and the place then records its lines rejected.
func sagaExpect(trace []sagaStep) (inventory.OrderStatus, []inventory.OrderLine, bool) {
	var cmd inventory.PlaceOrder
	placed, unplaced := false, false
	var decideBy time.Time
	var first []*inventory.Outcome
	status := inventory.OrderPending
	ended, failing := false, -1
	why := inventory.RejectReason(0)
	var exp []time.Time // each accepted line's confirmed expiry: decision + TTL, or a later accepted extension's
	var ext []time.Time // each held line's pending extension: requested, not yet confirmed
	var shipped []int64 // each line's units shipped
	decided := map[string]bool{}
	holding := func() bool { return status == inventory.OrderReserved || status == inventory.OrderPartiallyFulfilled }
	heldLine := func(i int) bool { return shipped[i] < cmd.Lines[i].Quantity }
	expired := func(at time.Time) bool {
		if !holding() {
			return false
		}
		for i, e := range exp {
			if heldLine(i) && !at.Before(e) {
				return true
			}
		}
		return false
	}
	for _, st := range trace {
		switch in := st.in.(type) {
		case inventory.PlaceOrder:
			if !placed {
				placed, cmd, decideBy = true, in, st.at.Add(in.DecisionTimeout)
				first = make([]*inventory.Outcome, len(in.Lines))
				exp = make([]time.Time, len(in.Lines))
				ext = make([]time.Time, len(in.Lines))
				shipped = make([]int64, len(in.Lines))
			}
		case inventory.ExtendOrder:
			if expired(st.at) {
				status = inventory.OrderExpired
			} else if holding() {
				// Only pending: the expiry moves when the SKU accepts.
				for i := range exp {
					if heldLine(i) && in.ExpiresAt.After(exp[i]) && in.ExpiresAt.After(ext[i]) {
						ext[i] = in.ExpiresAt
					}
				}
			}
		case inventory.FulfilOrder:
			if decided[in.FulfilmentID] {
				continue
			}
			decided[in.FulfilmentID] = true
			if expired(st.at) {
				status = inventory.OrderExpired
			}
			if !holding() {
				continue // refused
			}
			want := make([]int64, len(cmd.Lines))
			ok := true
			for _, fl := range in.Lines {
				i := slices.IndexFunc(cmd.Lines, func(l inventory.OrderLine) bool { return l.SKU == fl.SKU })
				if i < 0 {
					ok = false
					continue
				}
				want[i] += fl.Quantity
				ok = ok && shipped[i]+want[i] <= cmd.Lines[i].Quantity
			}
			if !ok {
				continue // refused
			}
			status = inventory.OrderFulfilled
			for i := range shipped {
				shipped[i] += want[i]
				if heldLine(i) {
					status = inventory.OrderPartiallyFulfilled
				}
				if !heldLine(i) {
					ext[i] = time.Time{}
				}
			}
		case inventory.CancelOrder:
			switch {
			case !placed && !ended:
				ended, status, why, unplaced = true, inventory.OrderCancelled, inventory.RejectCancelled, true
			case expired(st.at):
				status = inventory.OrderExpired
			case !ended || holding():
				ended, status, why = true, inventory.OrderCancelled, inventory.RejectCancelled
			}
		case inventory.OrderTick:
			if expired(st.at) {
				status = inventory.OrderExpired
			}
			if placed && !ended && !st.at.Before(decideBy) {
				ended, status, why = true, inventory.OrderRejected, inventory.RejectTimeout
			}
		case inventory.Outcome:
			if in.Extension {
				held := holding()
				for i := range cmd.Lines {
					if inventory.ReservationIDFor(cmd.OrderID, i) == in.ReservationID {
						held = held && heldLine(i)
					}
				}
				if !held {
					continue
				}
				if !in.Accepted {
					// Refused: the SKU's hold ran out before the extension
					// came.
					status = inventory.OrderExpired
					continue
				}
				// Accepted: the expiry the SKU confirmed, if later; the
				// pending extension ends once confirmed.
				for i := range cmd.Lines {
					if inventory.ReservationIDFor(cmd.OrderID, i) != in.ReservationID {
						continue
					}
					if in.ExpiresAt.After(exp[i]) {
						exp[i] = in.ExpiresAt
					}
					if !ext[i].After(exp[i]) {
						ext[i] = time.Time{}
					}
				}
				continue
			}
			if ended {
				continue
			}
			for i := range cmd.Lines {
				if inventory.ReservationIDFor(cmd.OrderID, i) == in.ReservationID && first[i] == nil {
					first[i] = &in
					if in.Accepted {
						exp[i] = in.DecidedAt.Add(cmd.ReservationTTL)
					}
					if !in.Accepted {
						ended, status, why, failing = true, inventory.OrderRejected, inventory.RejectCancelled, i
					}
				}
			}
			if !ended && !slices.Contains(first, nil) {
				ended, status = true, inventory.OrderReserved
			}
		}
	}
	if !placed {
		return status, nil, unplaced
	}
	lines := make([]inventory.OrderLine, len(cmd.Lines))
	for i, l := range cmd.Lines {
		lines[i] = inventory.OrderLine{SKU: l.SKU, Quantity: l.Quantity, ReservationID: inventory.ReservationIDFor(cmd.OrderID, i), Status: inventory.LinePending}
		o := first[i]
		if o != nil && o.Accepted {
			lines[i].ExpiresAt = exp[i]
		}
		lines[i].Fulfilled = shipped[i]
		switch {
		case shipped[i] == l.Quantity:
			lines[i].Status, lines[i].Backorder = inventory.LineFulfilled, o.Backorder
		case unplaced:
			lines[i].Status, lines[i].Reject, lines[i].Message = inventory.LineRejected, inventory.RejectCancelled, "order was cancelled before it was placed"
		case o != nil && o.Accepted && status == inventory.OrderExpired:
			lines[i].Status, lines[i].Backorder = inventory.LineExpired, o.Backorder
		case i == failing:
			lines[i].Status, lines[i].Reject, lines[i].Message = inventory.LineRejected, o.Reason, o.Message
		case o != nil && o.Accepted:
			lines[i].Status, lines[i].Backorder = inventory.LineAccepted, o.Backorder
			if shipped[i] > 0 {
				lines[i].Status = inventory.LinePartiallyFulfilled
			}
			if status == inventory.OrderCancelled || status == inventory.OrderRejected {
				lines[i].Status = inventory.LineReleased
			}
			if lines[i].Held() {
				lines[i].ExtendTo = ext[i]
			}
		case ended:
			lines[i].Status, lines[i].Reject = inventory.LineRejected, why
			switch why {
			case inventory.RejectTimeout:
				lines[i].Message = "no decision for this line before the order's deadline " + decideBy.Format(time.RFC3339)
			case inventory.RejectCancelled:
				lines[i].Message = "order was cancelled before this line was decided"
			}
			if failing >= 0 {
				f := first[failing]
				lines[i].Message = fmt.Sprintf("not reserved because the order failed: line %d (%s): %s", failing+1, cmd.Lines[failing].SKU, f.Message)
			}
		}
	}
	return status, lines, true
}

func sagaCheckOrder(t *rapid.T, so *sagaOrder) {
	status, lines, placed := sagaExpect(so.trace)
	if placed != so.found {
		t.Fatalf("order %s exists %v, model %v", so.cmd.OrderID, so.found, placed)
	}
	if !placed {
		return
	}
	if !so.o.Placed() && (status != inventory.OrderCancelled || lines != nil) {
		t.Fatalf("order %s is an unplaced %v, model %v %+v", so.o.ID, so.o.Status, status, lines)
	}
	got := so.o
	if got.Status != status || !reflect.DeepEqual(got.Lines, lines) {
		t.Fatalf("order %s after %d inputs:\n got %v %+v\nwant %v %+v", got.ID, len(so.trace), got.Status, got.Lines, status, lines)
	}
	if (status == inventory.OrderRejected || status == inventory.OrderCancelled || status == inventory.OrderExpired) != (got.Reason != "") {
		t.Fatalf("order %s is %v with reason %q", got.ID, got.Status, got.Reason)
	}
	// Every rejected line says why, whatever rejected it: its SKU, the
	// order's deadline, a cancellation or another line's failure.
	for _, l := range got.Lines {
		if l.Status == inventory.LineRejected && (l.Message == "" || l.Reject == 0) {
			t.Fatalf("order %s: rejected line without a reason: %+v", got.ID, l)
		}
	}
}

func (sim *sagaSim) randomOrder(t *rapid.T) *sagaOrder {
	return sim.orders[rapid.SampledFrom(sim.ids).Draw(t, "order")]
}

func (sim *sagaSim) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"deliver a saga input": func(t *rapid.T) {
			if len(sim.pool) == 0 {
				t.Skip("nothing in flight")
			}
			i := rapid.IntRange(0, len(sim.pool)-1).Draw(t, "input")
			in := sim.pool[i]
			sim.pool = slices.Delete(sim.pool, i, i+1)
			sim.deliverSaga(t, in, false)
		},
		"redeliver a saga input": func(t *rapid.T) {
			if len(sim.applied) == 0 {
				t.Skip("nothing delivered yet")
			}
			sim.deliverSaga(t, rapid.SampledFrom(sim.applied).Draw(t, "input"), true)
		},
		"deliver demand": func(t *rapid.T) {
			var ready []string
			for _, s := range sim.skus {
				if len(sim.queue[s]) > 0 {
					ready = append(ready, s)
				}
			}
			if len(ready) == 0 {
				t.Skip("no demand in flight")
			}
			sim.deliverDemand(t, rapid.SampledFrom(ready).Draw(t, "sku"))
		},
		// A SKU partition re-read from an earlier offset: the same events
		// again, in the same order; nothing changes, outcomes repeat.
		"rewind a sku": func(t *rapid.T) {
			s := rapid.SampledFrom(sim.skus).Draw(t, "sku")
			if len(sim.log[s]) == 0 {
				t.Skip("nothing delivered")
			}
			before := sim.states[s]
			for _, ev := range sim.log[s][rapid.IntRange(0, len(sim.log[s])-1).Draw(t, "from"):] {
				next, out, res := dmDemand(t, sim.states[s], ev, sim.p, sim.now)
				if res.Changed {
					t.Fatalf("redelivered %+v changed the SKU", ev)
				}
				sim.states[s] = next
				sim.emit(t, out)
			}
			if !reflect.DeepEqual(sim.states[s], before) {
				t.Fatal("a rewind changed the SKU")
			}
		},
		"advance": func(t *rapid.T) {
			sim.now = sim.now.Add(time.Duration(rapid.IntRange(0, 30_000).Draw(t, "ms")) * time.Millisecond)
		},
		"tick": func(t *rapid.T) {
			sim.pool = append(sim.pool, inventory.OrderTick{OrderID: sim.randomOrder(t).cmd.OrderID, At: sim.now})
		},
		// The reconciler's tick once an order's deadline has passed.
		"deadline passes": func(t *rapid.T) {
			so := sim.randomOrder(t)
			if !so.found || so.o.Final() {
				t.Skip("no pending order")
			}
			if so.o.DecideBy.After(sim.now) {
				sim.now = so.o.DecideBy
			}
			sim.pool = append(sim.pool, inventory.OrderTick{OrderID: so.o.ID, At: sim.now})
		},
		// The client extends the order: its held lines' expiry moves to
		// now plus the new TTL, if later.
		// The warehouse ships some units of a held order, from WH-1: the
		// command in flight, or delivered at once.
		"fulfil": func(t *rapid.T) {
			if c, ok := sim.shipment(t); ok {
				sim.pool = append(sim.pool, c)
			}
		},
		"fulfil now": func(t *rapid.T) {
			if c, ok := sim.shipment(t); ok {
				sim.deliverSaga(t, c, false)
			}
		},
		"extend": func(t *rapid.T) {
			so := sim.randomOrder(t)
			if so.o.Status != inventory.OrderReserved && so.o.Status != inventory.OrderPartiallyFulfilled {
				// (An extension of an order that is not reserved changes
				// nothing: TestSagaExtend.)
				t.Skip("not reserved")
			}
			sim.pool = append(sim.pool, inventory.ExtendOrder{OrderID: so.o.ID,
				ExpiresAt: sim.now.Add(time.Duration(rapid.IntRange(1, 120).Draw(t, "new ttl")) * time.Second)})
		},
		"cancel": func(t *rapid.T) {
			id := sim.randomOrder(t).cmd.OrderID
			if sim.cancels[id] {
				t.Skip("cancelled already") // redeliveries cover duplicates
			}
			sim.cancels[id] = true
			sim.pool = append(sim.pool, inventory.CancelOrder{OrderID: id})
		},
		// The client retries with the same order (another decision timeout
		// is the same order).
		"retry the order": func(t *rapid.T) {
			so := sim.randomOrder(t)
			if !so.o.Placed() {
				t.Skip("not placed yet")
			}
			c := so.cmd
			c.DecisionTimeout = time.Duration(rapid.IntRange(1, 600).Draw(t, "timeout")) * time.Second
			sim.deliverSaga(t, c, true)
		},
		"reuse the order id": func(t *rapid.T) {
			so := sim.randomOrder(t)
			if so.found && !so.o.Placed() {
				t.Skip("cancelled before it was placed: the first place fills it in")
			}
			c := so.cmd
			c.Lines = slices.Clone(c.Lines)
			c.Lines[rapid.IntRange(0, len(c.Lines)-1).Draw(t, "line")].Quantity += rapid.Int64Range(1, 3).Draw(t, "more")
			next, eff, res, err := inventory.ApplyOrder(so.o, so.found, c, sim.now)
			if so.found != errors.Is(err, inventory.ErrOrderConflict) || res.Changed != !so.found {
				t.Fatalf("another order under id %s (placed %v): %v", c.OrderID, so.found, err)
			}
			if so.found && (!reflect.DeepEqual(next, so.o) || len(eff.Requests)+len(eff.Releases) != 0) {
				t.Fatal("a conflicting order changed something")
			}
		},
		"": func(t *rapid.T) {
			for _, s := range sim.skus {
				st := sim.states[s]
				if held := dmHeld(st, "", sim.now) + dmBackordered(st, sim.now); held > sim.stock[s] {
					t.Fatalf("%s: %d units held, %d in stock", s, held, sim.stock[s])
				}
				for _, c := range inventory.Evaluate(st, sim.p, sim.now).Channels {
					if c.Available < 0 || c.Backorderable < 0 {
						t.Fatalf("%s: negative availability %+v", s, c)
					}
				}
			}
		},
	}
}

// shipment draws a fulfilment of a held order, or reports that there is
// none to draw.
func (sim *sagaSim) shipment(t *rapid.T) (inventory.FulfilOrder, bool) {
	so := sim.randomOrder(t)
	if so.o.Status != inventory.OrderReserved && so.o.Status != inventory.OrderPartiallyFulfilled {
		return inventory.FulfilOrder{}, false
	}
	sim.fulfilments++
	c := inventory.FulfilOrder{OrderID: so.o.ID, FulfilmentID: fmt.Sprintf("F-%d", sim.fulfilments)}
	for _, l := range so.o.Lines {
		if left := l.Quantity - l.Fulfilled; l.Held() && rapid.Bool().Draw(t, "ship "+l.SKU) {
			n := rapid.Int64Range(1, left).Draw(t, "units")
			if rapid.IntRange(0, 5).Draw(t, "too many") == 0 {
				n = left + 1 // refused
			}
			if n >= 2 && rapid.Bool().Draw(t, "in two lines") {
				// One SKU on two lines: each ships once.
				c.Lines = append(c.Lines, inventory.FulfilmentLine{SKU: l.SKU, Location: "WH-1", Quantity: 1})
				n--
			}
			c.Lines = append(c.Lines, inventory.FulfilmentLine{SKU: l.SKU, Location: "WH-1", Quantity: n})
		}
	}
	if len(c.Lines) == 0 {
		return inventory.FulfilOrder{}, false
	}
	return c, true
}

// drain delivers everything still in flight, in a random order.
func (sim *sagaSim) drain(t *rapid.T) {
	for range 10_000 {
		var ready []string
		for _, s := range sim.skus {
			if len(sim.queue[s]) > 0 {
				ready = append(ready, s)
			}
		}
		switch {
		case len(sim.pool) == 0 && len(ready) == 0:
			return
		case len(sim.pool) > 0 && (len(ready) == 0 || rapid.Bool().Draw(t, "saga first")):
			i := rapid.IntRange(0, len(sim.pool)-1).Draw(t, "input")
			in := sim.pool[i]
			sim.pool = slices.Delete(sim.pool, i, i+1)
			sim.deliverSaga(t, in, false)
		default:
			sim.deliverDemand(t, rapid.SampledFrom(ready).Draw(t, "sku"))
		}
	}
	t.Fatal("the protocol did not quiesce")
}

// Once every message is delivered: every order has ended; a reserved order
// holds all of its lines and any other holds none; an order with an
// impossible line is never reserved; the units held on each SKU are
// exactly those of its reserved lines, never more than its stock.
func (sim *sagaSim) checkQuiescent(t *rapid.T) {
	heldFor := map[string]int64{}
	for _, id := range sim.ids {
		so := sim.orders[id]
		if !so.found || !so.o.Final() {
			t.Fatalf("order %s did not end: %+v", id, so.o)
		}
		impossible := false
		for _, l := range so.o.Lines {
			impossible = impossible || l.Quantity > sim.stock[l.SKU] || sim.blocked[l.SKU] || sim.unknown[l.SKU]
			r, ok := dmFind(sim.states[l.SKU], l.ReservationID)
			held := ok && r.Status == inventory.StatusHeld && sim.now.Before(r.ExpiresAt)
			if r.FulfilledUnits() != l.Fulfilled {
				t.Fatalf("order %s line %s shipped %d units, the SKU %d: %+v", id, l.ReservationID, l.Fulfilled, r.FulfilledUnits(), r)
			}
			if held && !r.ExpiresAt.Equal(l.ExpiresAt) {
				t.Fatalf("order %s line %s expires at %s, the SKU holds it until %s", id, l.ReservationID, l.ExpiresAt, r.ExpiresAt)
			}
			if !l.ExtendTo.IsZero() {
				t.Fatalf("order %s line %s: extension to %s still pending with every answer delivered", id, l.ReservationID, l.ExtendTo)
			}
			holding := so.o.Status == inventory.OrderReserved || so.o.Status == inventory.OrderPartiallyFulfilled
			if held != (holding && l.Held()) {
				t.Fatalf("order %s is %v but line %s is %+v at the SKU", id, so.o.Status, l.ReservationID, r)
			}
			if holding && l.Held() {
				heldFor[l.SKU] += l.Quantity - l.Fulfilled
			}
		}
		cancelled := slices.ContainsFunc(so.trace, func(s sagaStep) bool { _, ok := s.in.(inventory.CancelOrder); return ok })
		switch {
		case impossible && so.o.Status != inventory.OrderRejected && so.o.Status != inventory.OrderCancelled:
			t.Fatalf("order %s with an impossible line is reserved", id)
		case impossible && !cancelled && so.o.Status != inventory.OrderRejected:
			t.Fatalf("order %s with an impossible line is %v", id, so.o.Status)
		}
	}
	for _, s := range sim.skus {
		if sim.unknown[s] && !reflect.DeepEqual(sim.states[s], inventory.State{SKU: s}) {
			t.Fatalf("unknown sku %s was created: %+v", s, sim.states[s])
		}
		if got := dmHeld(sim.states[s], "", sim.now) + dmBackordered(sim.states[s], sim.now); got != heldFor[s] {
			t.Fatalf("%s: %d units held, reserved orders account for %d", s, got, heldFor[s])
		}
	}
}

func TestPropertySaga(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSagaSim(t, false)
		t.Repeat(sim.actions())
		sim.drain(t)
		sim.tickDue()
		sim.drain(t)
		sim.checkQuiescent(t)
	})
}

// sagaShipments and sagaPartialShipments count the fulfilments the saga
// simulations applied (first deliveries), and those that left the order
// partially fulfilled, so a test can tell that it exercised them.
var sagaShipments, sagaPartialShipments int

// TestPropertySagaLifecycle runs the saga model from orders already
// decided, so that reserved orders meet extensions, fulfilments (partial,
// repeated, refused), expiry (ticks, late cancels, holds running out at the
// SKU before an extension reaches it), cancels and redeliveries in every
// interleaving.
func TestPropertySagaLifecycle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sim := newSagaSim(t, false)
		sim.drain(t)
		t.Repeat(sim.actions())
		sim.drain(t)
		sim.tickDue()
		sim.drain(t)
		sim.checkQuiescent(t)
	})
}

// TestPropertySagaFulfilment runs the lifecycle with every order reserved
// to start with (every SKU known, sellable and stocked), so that shipments
// (partial, of one SKU on two lines, repeated, refused, racing expiry,
// extension and cancellation) are the common case; it fails if they were
// not.
func TestPropertySagaFulfilment(t *testing.T) {
	shipments, partial := sagaShipments, sagaPartialShipments
	rapid.Check(t, func(t *rapid.T) {
		sim := newSagaSim(t, true)
		sim.drain(t)
		t.Repeat(sim.actions())
		sim.drain(t)
		sim.tickDue()
		sim.drain(t)
		sim.checkQuiescent(t)
	})
	t.Logf("%d fulfilments applied, %d partial", sagaShipments-shipments, sagaPartialShipments-partial)
	if !t.Failed() && (sagaShipments-shipments < 25 || sagaPartialShipments-partial < 15) {
		t.Errorf("the simulation applied only %d fulfilments, %d of them partial: it does not exercise fulfilment",
			sagaShipments-shipments, sagaPartialShipments-partial)
	}
}

// tickDue sends what the reconciler sends: a tick for every order that is
// due (inventory.OrderDueAt) at the current time.
func (sim *sagaSim) tickDue() {
	for _, id := range sim.ids {
		so := sim.orders[id]
		if due := inventory.OrderDueAt(so.o); so.found && !due.IsZero() && !sim.now.Before(due) {
			sim.pool = append(sim.pool, inventory.OrderTick{OrderID: id, At: sim.now})
		}
	}
}

// The multi-item rule end to end with FIFO delivery: one impossible line
// (beyond stock, or a channel the SKU may not be sold on) and the order
// ends rejected with nothing held on any line.
func TestSagaImpossibleLineHoldsNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lines []inventory.OrderLine
		want  inventory.OrderStatus
	}{
		{"every line possible", []inventory.OrderLine{dmLine("SKU-A", 2), dmLine("SKU-B", 1), dmLine("SKU-C", 1)}, inventory.OrderReserved},
		{"beyond stock", []inventory.OrderLine{dmLine("SKU-A", 2), dmLine("SKU-B", 4), dmLine("SKU-C", 1)}, inventory.OrderRejected},
		{"not sellable", []inventory.OrderLine{dmLine("SKU-A", 2), dmLine("SKU-C", 1), dmLine("SKU-D", 1)}, inventory.OrderRejected},
		{"first line impossible", []inventory.OrderLine{dmLine("SKU-D", 1), dmLine("SKU-A", 5)}, inventory.OrderRejected},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := inventory.Policies{Channels: []string{"web"}}
			states := map[string]inventory.State{}
			for s, n := range map[string]int64{"SKU-A": 5, "SKU-B": 3, "SKU-C": 1, "SKU-D": 9} {
				states[s] = dmApply(t, inventory.State{SKU: s}, inventory.StockLevel{SKU: s, Location: "WH-1", OnHand: n, AsOf: t0, Sequence: 1})
			}
			states["SKU-D"] = dmApply(t, states["SKU-D"], inventory.ChannelEligibility{SKU: "SKU-D", Channel: "web", Sellable: false, AsOf: t0})
			g := &dmSaga{t: t}
			demand := g.apply(dmPlace("O-1", tt.lines...), at(0))
			// FIFO: every demand message, then every outcome, until quiet.
			for len(demand.Requests)+len(demand.Releases) > 0 {
				var outs []inventory.Outcome
				for _, ev := range slices.Concat(asEvents(demand.Requests), asEvents(demand.Releases)) {
					next, out, _ := dmDemand(t, states[ev.EventSKU()], ev, p, at(1))
					states[ev.EventSKU()] = next
					if out != nil {
						outs = append(outs, *out)
					}
				}
				demand = inventory.OrderEffects{}
				for _, o := range outs {
					eff := g.apply(o, at(2))
					demand.Requests = append(demand.Requests, eff.Requests...)
					demand.Releases = append(demand.Releases, eff.Releases...)
				}
			}
			if g.o.Status != tt.want {
				t.Fatalf("order %v, want %v: %+v", g.o.Status, tt.want, g.o)
			}
			for s, st := range states {
				want := int64(0)
				if tt.want == inventory.OrderReserved {
					for _, l := range tt.lines {
						if l.SKU == s {
							want = l.Quantity
						}
					}
				}
				if got := dmHeld(st, "", at(3)); got != want {
					t.Errorf("%s: %d units held, want %d", s, got, want)
				}
			}
		})
	}
}

func asEvents[E inventory.Event](evs []E) []inventory.Event {
	out := make([]inventory.Event, len(evs))
	for i, e := range evs {
		out[i] = e
	}
	return out
}

// ---------------------------------------------------------------------------
// Fuzzing.

type dmOrderStart struct {
	name  string
	o     inventory.Order
	found bool
}

// dmOrderStarts are the orders fuzzed saga inputs are applied to: none,
// pending, partly accepted, reserved, rejected, cancelled and timed out.
func dmOrderStarts(t *testing.T) []dmOrderStart {
	starts := []dmOrderStart{{name: "none"}}
	add := func(name string, inputs ...any) {
		g, req := dmStarted(t)
		for _, in := range inputs {
			switch in := in.(type) {
			case int: // accept line in
				g.apply(dmAccept(req[in], in == 2), at(1))
			case inventory.RejectReason: // refuse line 2
				g.apply(dmRefuse(req[1], in), at(1))
			default:
				g.apply(in, at(120))
			}
		}
		starts = append(starts, dmOrderStart{name: name, o: g.o, found: true})
	}
	add("pending")
	add("partly accepted", 0)
	add("reserved", 0, 1, 2)
	add("rejected", 0, inventory.RejectInsufficient)
	add("cancelled", 2, inventory.CancelOrder{OrderID: "O-1"})
	add("timed out", 0, inventory.OrderTick{OrderID: "O-1", At: at(120)})
	add("extension pending", 0, 1, 2, inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)})
	add("extended", 0, 1, 2, inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)},
		inventory.Outcome{ReservationID: "O-1:1", OrderID: "O-1", SKU: "SKU-A", Quantity: 1, Accepted: true, Extension: true, ExpiresAt: at(7200)})
	add("expired", 0, 1, 2, inventory.OrderTick{OrderID: "O-1", At: at(3601)})
	add("partly fulfilled", 0, 1, 2, inventory.FulfilOrder{OrderID: "O-1", FulfilmentID: "F-1",
		Lines: []inventory.FulfilmentLine{{SKU: "SKU-C", Quantity: 2, Location: "WH-1"}}})
	add("fulfilled", 0, 1, 2, inventory.FulfilOrder{OrderID: "O-1", FulfilmentID: "F-1", Lines: []inventory.FulfilmentLine{
		{SKU: "SKU-A", Quantity: 1, Location: "WH-1"}, {SKU: "SKU-B", Quantity: 2, Location: "WH-1"}, {SKU: "SKU-C", Quantity: 3, Location: "WH-1"}}})
	g := &dmSaga{t: t}
	g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(0))
	starts = append(starts, dmOrderStart{name: "cancelled before placed", o: g.o, found: true})
	return starts
}

// dmCheckOrderShape checks what holds for every order, whatever it saw.
func dmCheckOrderShape(t *testing.T, o inventory.Order) {
	t.Helper()
	for i, l := range o.Lines {
		if l.ReservationID != inventory.ReservationIDFor(o.ID, i) {
			t.Fatalf("line %d has reservation id %q", i+1, l.ReservationID)
		}
		switch {
		case o.Final() && l.Status == inventory.LinePending:
			t.Fatalf("%v order with a pending line: %+v", o.Status, o)
		case o.Status == inventory.OrderReserved && l.Status != inventory.LineAccepted:
			t.Fatalf("reserved order with a line %v: %+v", l.Status, o)
		case (o.Status == inventory.OrderRejected || o.Status == inventory.OrderCancelled || o.Status == inventory.OrderExpired || o.Status == inventory.OrderFulfilled) && l.Held():
			t.Fatalf("%v order still holds a line: %+v", o.Status, o)
		case o.Status != inventory.OrderExpired && l.Status == inventory.LineExpired:
			t.Fatalf("%v order with an expired line: %+v", o.Status, o)
		case l.Fulfilled > l.Quantity || (l.Status == inventory.LineFulfilled) != (l.Quantity > 0 && l.Fulfilled == l.Quantity):
			t.Fatalf("line %d shipped %d of %d as %v: %+v", i+1, l.Fulfilled, l.Quantity, l.Status, o)
		case l.Status == inventory.LineAccepted && l.ExpiresAt.IsZero():
			t.Fatalf("accepted line %d without expires_at: %+v", i+1, o)
		case !l.ExtendTo.IsZero() && !l.ExtensionPending():
			t.Fatalf("line %d: an extension pending on a line not held, or not later than its expiry: %+v", i+1, o)
		case o.Status == inventory.OrderPending && l.Status == inventory.LineReleased:
			t.Fatalf("pending order with a released line: %+v", o)
		case l.Status == inventory.LineRejected && l.Message == "":
			t.Fatalf("rejected line %d without a message: %+v", i+1, o)
		}
	}
}

// FuzzApplyOrder: never panics; an error changes nothing; requests are for
// pending lines and releases for lines given up; the same input again
// changes nothing.
func FuzzApplyOrder(f *testing.F) {
	f.Add(uint8(0), "O-1", "web", "SKU-A", "SKU-B", int64(1), int64(3600), int64(60), uint8(0), true, false, uint8(1), int64(30))
	f.Add(uint8(1), "O-1", "web", "", "", int64(0), int64(0), int64(300), uint8(0), true, false, uint8(1), int64(30))
	f.Add(uint8(0), "O-1", "web", "SKU-A", "SKU-A", int64(1), int64(3600), int64(60), uint8(0), true, false, uint8(1), int64(30))
	f.Add(uint8(0), dmLong, "web", "SKU-A", "", int64(1), int64(3600), int64(60), uint8(0), true, false, uint8(1), int64(30))
	f.Add(uint8(2), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(0))
	f.Add(uint8(3), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(60))
	f.Add(uint8(3), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(59))
	f.Add(uint8(4), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(1), true, true, uint8(0), int64(5))
	f.Add(uint8(4), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(2), false, false, uint8(1), int64(5))
	f.Add(uint8(4), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(7), true, false, uint8(0), int64(5))
	f.Add(uint8(5), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(7200))
	f.Add(uint8(6), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(0))
	f.Add(uint8(6), "O-1", "F-1", "SKU-C", "", int64(2), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(200))
	f.Add(uint8(6), "O-1", "F-1", "SKU-A", "SKU-B", int64(1), int64(2), int64(0), uint8(0), false, false, uint8(0), int64(200))
	f.Add(uint8(7), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(0), false, false, uint8(0), int64(0))
	f.Add(uint8(4), "O-1", "", "", "", int64(0), int64(0), int64(0), uint8(130), false, false, uint8(4), int64(5))
	f.Fuzz(func(t *testing.T, kind uint8, orderID, channel, sku1, sku2 string, qty, ttlSec, timeoutSec int64, line uint8,
		accepted, backorder bool, reason uint8, atSec int64) {
		when := dmFuzzTime(atSec)
		lines := []inventory.OrderLine{dmLine(sku1, qty)}
		if sku2 != "" {
			lines = append(lines, dmLine(sku2, qty))
		}
		var in any
		switch kind % 8 {
		case 0:
			in = inventory.PlaceOrder{OrderID: orderID, Channel: channel, Lines: lines,
				ReservationTTL: time.Duration(ttlSec%(1<<33)) * time.Second, DecisionTimeout: time.Duration(timeoutSec%(1<<33)) * time.Second}
		case 1: // the starts' own order, with any decision timeout
			c := dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2), dmLine("SKU-C", 3))
			c.DecisionTimeout = time.Duration(timeoutSec%(1<<33)) * time.Second
			in = c
		case 2:
			in = inventory.CancelOrder{OrderID: orderID}
		case 3:
			in = inventory.OrderTick{OrderID: orderID, At: when}
		case 4:
			in = inventory.Outcome{ReservationID: inventory.ReservationIDFor(orderID, int(line)%4), OrderID: orderID, SKU: sku1, Quantity: qty,
				Accepted: accepted, Backorder: backorder, Reason: inventory.RejectReason(reason), Message: channel, DecidedAt: when,
				Extension: line >= 128}
		case 5:
			in = inventory.ExtendOrder{OrderID: orderID, ExpiresAt: when}
		case 6: // a shipment of sku1 (and sku2), its id the channel argument
			f := inventory.FulfilOrder{OrderID: orderID, FulfilmentID: channel, Lines: []inventory.FulfilmentLine{{SKU: sku1, Quantity: qty, Location: "WH-1"}}}
			if sku2 != "" {
				f.Lines = append(f.Lines, inventory.FulfilmentLine{SKU: sku2, Quantity: ttlSec, Location: "WH-2", Area: sku1})
			}
			in = f
		default:
			in = orderID
		}
		for _, st := range dmOrderStarts(t) {
			before := dmCloneOrder(st.o)
			next, eff, res, err := inventory.ApplyOrder(st.o, st.found, in, when)
			if !reflect.DeepEqual(st.o, before) {
				t.Fatalf("%s: ApplyOrder modified its input", st.name)
			}
			if err != nil {
				if !inventory.IsInvalid(err) && !errors.Is(err, inventory.ErrOrderConflict) && !errors.Is(err, inventory.ErrFulfilmentConflict) {
					t.Fatalf("%s: unexpected kind of error %v", st.name, err)
				}
				if res.Changed || len(eff.Requests)+len(eff.Releases)+len(eff.Fulfilments) != 0 || !reflect.DeepEqual(next, st.o) {
					t.Fatalf("%s: error %v but changed something", st.name, err)
				}
				continue
			}
			if !res.Changed && !reflect.DeepEqual(next, st.o) {
				t.Fatalf("%s: no change reported but the order changed", st.name)
			}
			found := st.found || res.Changed
			if found {
				dmCheckOrderShape(t, next)
			}
			for _, r := range eff.Requests {
				i := slices.IndexFunc(next.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == r.ReservationID })
				if i < 0 || next.Lines[i].Status != inventory.LinePending || next.Final() {
					t.Fatalf("%s: request %+v for no pending line of %+v", st.name, r, next)
				}
				if err := r.Validate(); err != nil { // see TestLongOrderIDs
					t.Fatalf("%s: the saga sent an invalid request %+v: %v", st.name, r, err)
				}
			}
			for _, r := range eff.Releases {
				i := slices.IndexFunc(next.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == r.ReservationID })
				if i < 0 || r.Validate() != nil {
					t.Fatalf("%s: release %+v for no line of %+v", st.name, r, next)
				}
				if l := next.Lines[i]; l.Status != inventory.LineReleased && l.Status != inventory.LineRejected && l.Status != inventory.LineExpired &&
					l.Status != inventory.LineFulfilled {
					t.Fatalf("%s: release of line %+v, which was not given up", st.name, l)
				}
				if o, ok := in.(inventory.Outcome); ok && !o.Accepted && !o.Extension && next.Lines[i].Status != inventory.LineReleased {
					t.Fatalf("%s: a refusal released %+v, which is not a compensated line", st.name, r)
				}
			}
			for _, x := range eff.Extensions {
				i := slices.IndexFunc(next.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == x.ReservationID })
				if i < 0 || x.Validate() != nil || (next.Status != inventory.OrderReserved && next.Status != inventory.OrderPartiallyFulfilled) || !next.Lines[i].Held() ||
					!x.ExpiresAt.Equal(sagaRequested(next.Lines[i])) {
					t.Fatalf("%s: extension %+v for no held line of %+v", st.name, x, next)
				}
			}
			for _, f := range eff.Fulfilments {
				i := slices.IndexFunc(next.Lines, func(l inventory.OrderLine) bool { return l.ReservationID == f.ReservationID })
				if i < 0 || f.Validate() != nil || next.Lines[i].Fulfilled < f.Quantity {
					t.Fatalf("%s: fulfilment %+v for no shipped line of %+v", st.name, f, next)
				}
			}
			again, eff2, res2, err := inventory.ApplyOrder(next, found, in, when)
			if err != nil || res2.Changed || !reflect.DeepEqual(again, next) {
				t.Fatalf("%s: the same input again: %v, %+v", st.name, err, res2)
			}
			if _, ok := in.(inventory.PlaceOrder); ok && len(eff2.Requests) > 0 && next.Final() {
				t.Fatalf("%s: a retry of an ended order requested %+v", st.name, eff2.Requests)
			}
		}
	})
}
