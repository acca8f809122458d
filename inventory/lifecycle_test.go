package inventory_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// Deterministic examples of the reservation lifecycle after the decision:
// expiry, extension and a cancel that comes before its place. The
// properties are TestPropertySaga, TestPropertySagaLifecycle and
// TestPropertyReservationStateMachine.

// dmReserved places O-1 (three lines, TTL 1h) and accepts every line at
// at(1), so each line expires at at(3601).
func dmReserved(t *testing.T) (*dmSaga, []inventory.ReservationRequested) {
	g, req := dmStarted(t)
	for _, r := range req {
		g.apply(dmAccept(r, false), at(1))
	}
	if g.o.Status != inventory.OrderReserved {
		t.Fatalf("order %+v, want reserved", g.o)
	}
	for _, l := range g.o.Lines {
		if !l.ExpiresAt.Equal(at(3601)) {
			t.Fatalf("line %+v: expires_at is not decided_at + ttl", l)
		}
	}
	return g, req
}

func dmReleases(req []inventory.ReservationRequested, why inventory.ReleaseReason) []inventory.ReservationReleased {
	var out []inventory.ReservationReleased
	for _, r := range req {
		out = append(out, dmReleaseOf(r, why))
	}
	return out
}

func TestSagaExpiry(t *testing.T) {
	g, req := dmReserved(t)
	if due := inventory.OrderDueAt(g.o); !due.Equal(at(3601)) {
		t.Fatalf("due at %s", due)
	}
	if !g.o.Holds(at(3600)) || g.o.Holds(at(3601)) {
		t.Fatal("Holds is not 'before the earliest expires_at'")
	}
	// Readers see the expiry from expires_at on; the state does not change.
	if v := inventory.OrderAt(g.o, at(3600)); !reflect.DeepEqual(v, g.o) {
		t.Fatalf("OrderAt before expiry: %+v", v)
	}
	if v := inventory.OrderAt(g.o, at(3601)); v.Status != inventory.OrderExpired || g.o.Status != inventory.OrderReserved {
		t.Fatalf("OrderAt at expiry: %+v", v)
	}
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(3601).Add(-time.Nanosecond)}, at(3600))
	eff := g.apply(inventory.OrderTick{OrderID: "O-1", At: at(3601)}, at(3601))
	if !reflect.DeepEqual(eff, inventory.OrderEffects{Releases: dmReleases(req, inventory.ReleaseExpired)}) {
		t.Fatalf("expiry sent %+v", eff)
	}
	if g.o.Status != inventory.OrderExpired || !strings.Contains(g.o.Reason, "expired") ||
		!slices.Equal(dmLineStatuses(g.o), []inventory.LineStatus{inventory.LineExpired, inventory.LineExpired, inventory.LineExpired}) {
		t.Fatalf("expired order %+v", g.o)
	}
	if !inventory.OrderDueAt(g.o).IsZero() || !reflect.DeepEqual(inventory.OrderAt(g.o, at(9999)), g.o) {
		t.Fatal("an expired order is still due")
	}
	// Nothing brings it back or ends it again.
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(9999)}, at(9999))
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(9999))
	g.same(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(99999)}, at(9999))
}

// A cancel whose time is at or past the expiry finds the order expired.
func TestSagaLateCancelFindsItExpired(t *testing.T) {
	g, req := dmReserved(t)
	eff := g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(3601))
	if g.o.Status != inventory.OrderExpired || !reflect.DeepEqual(eff.Releases, dmReleases(req, inventory.ReleaseExpired)) {
		t.Fatalf("late cancel: %+v, %+v", g.o, eff)
	}
	g2, req2 := dmReserved(t)
	eff = g2.apply(inventory.CancelOrder{OrderID: "O-1"}, at(3600))
	if g2.o.Status != inventory.OrderCancelled || !reflect.DeepEqual(eff.Releases, dmReleases(req2, inventory.ReleaseCancelled)) {
		t.Fatalf("cancel in time: %+v, %+v", g2.o, eff)
	}
}

func TestSagaExtend(t *testing.T) {
	// Not reserved yet: nothing to extend. Unknown: an error.
	g, req := dmStarted(t)
	g.same(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)}, at(2))
	if _, _, _, err := inventory.ApplyOrder(inventory.Order{}, false, inventory.ExtendOrder{OrderID: "O-2", ExpiresAt: at(7200)}, at(2)); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Errorf("extension of an unknown order: %v", err)
	}
	if _, _, _, err := inventory.ApplyOrder(g.o, true, inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(2).Add(inventory.MaxReservationTTL + time.Second)}, at(2)); !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Errorf("extension beyond the longest TTL: %v", err)
	}

	g, req = dmReserved(t)
	want := func(to time.Time) []inventory.ReservationExtended {
		var out []inventory.ReservationExtended
		for _, r := range req {
			out = append(out, inventory.ReservationExtended{ReservationID: r.ReservationID, OrderID: "O-1", SKU: r.SKU, ExpiresAt: to})
		}
		return out
	}
	// The extension is recorded as pending on every held line and sent to
	// the SKUs; the confirmed expiry (and so OrderDueAt) does not move yet.
	eff := g.apply(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)}, at(3000))
	if !reflect.DeepEqual(eff, inventory.OrderEffects{Extensions: want(at(7200))}) || !inventory.OrderDueAt(g.o).Equal(at(3601)) {
		t.Fatalf("extension: %+v, order %+v", eff, g.o)
	}
	for _, l := range g.o.Lines {
		if !l.ExpiresAt.Equal(at(3601)) || !l.ExtendTo.Equal(at(7200)) || !l.ExtensionPending() {
			t.Fatalf("line %+v: want expires_at unchanged, extension to 7200s pending", l)
		}
	}
	// A duplicate, or an earlier expiry, changes nothing but sends the
	// requested expiries again (the first messages may have been lost).
	before := dmCloneOrder(g.o)
	for _, to := range []time.Time{at(7200), at(5000)} {
		if eff := g.apply(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: to}, at(3100)); !reflect.DeepEqual(eff, inventory.OrderEffects{Extensions: want(at(7200))}) ||
			!reflect.DeepEqual(g.o, before) {
			t.Fatalf("extension to %s: %+v, %+v", to.Sub(t0), eff, g.o)
		}
	}
	// Each SKU's acceptance confirms its line's expiry; duplicates, and an
	// older confirmation arriving late, change nothing.
	okFor := func(i int, to time.Time) inventory.Outcome {
		return inventory.Outcome{ReservationID: req[i].ReservationID, OrderID: "O-1", SKU: req[i].SKU, Quantity: req[i].Quantity,
			Accepted: true, Extension: true, ExpiresAt: to}
	}
	g.apply(okFor(0, at(7200)), at(3200))
	if l := g.o.Lines[0]; !l.ExpiresAt.Equal(at(7200)) || !l.ExtendTo.IsZero() || l.ExtensionPending() {
		t.Fatalf("confirmed line %+v", l)
	}
	if !inventory.OrderDueAt(g.o).Equal(at(3601)) {
		t.Fatalf("due at %s with two lines unconfirmed", inventory.OrderDueAt(g.o))
	}
	g.same(okFor(0, at(7200)), at(3201))
	g.same(okFor(0, at(3601)), at(3202))
	// A confirmation short of the pending extension (an earlier extension's
	// answer) moves the expiry and leaves the extension pending.
	g.apply(okFor(1, at(5000)), at(3203))
	if l := g.o.Lines[1]; !l.ExpiresAt.Equal(at(5000)) || !l.ExtendTo.Equal(at(7200)) || !l.ExtensionPending() {
		t.Fatalf("partly confirmed line %+v", l)
	}
	g.apply(okFor(1, at(7200)), at(3204))
	g.apply(okFor(2, at(7200)), at(3205))
	for _, l := range g.o.Lines {
		if !l.ExpiresAt.Equal(at(7200)) || l.ExtensionPending() {
			t.Fatalf("line %+v after every confirmation", l)
		}
	}
	if !inventory.OrderDueAt(g.o).Equal(at(7200)) {
		t.Fatalf("due at %s after every confirmation", inventory.OrderDueAt(g.o))
	}
	// The old expiry passes: still held.
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(3601)}, at(3601))
	// Another extension; a refusal (the SKU's hold ran out before the
	// extension came) ends the order expired, releasing every line, and
	// leaves no extension pending.
	g.apply(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(9000)}, at(3700))
	refused := inventory.Outcome{ReservationID: req[1].ReservationID, OrderID: "O-1", SKU: req[1].SKU, Quantity: 2, Extension: true,
		Reason: inventory.RejectReleased, Message: "no longer held"}
	eff = g.apply(refused, at(3701))
	if g.o.Status != inventory.OrderExpired || !strings.Contains(g.o.Reason, "line 2 (SKU-B)") ||
		!reflect.DeepEqual(eff, inventory.OrderEffects{Releases: dmReleases(req, inventory.ReleaseExpired)}) {
		t.Fatalf("refused extension: %+v, %+v", g.o, eff)
	}
	for _, l := range g.o.Lines {
		if !l.ExpiresAt.Equal(at(7200)) || !l.ExtendTo.IsZero() {
			t.Fatalf("expired line %+v: want the confirmed expiry, nothing pending", l)
		}
	}
	g.same(refused, at(3702))
	// A late acceptance for an expired order changes nothing.
	g.same(okFor(0, at(9000)), at(3703))

	// The SKU refuses while the saga still counts the old expiry (its hold
	// ran out between the saga's decision and the SKU's): never extended.
	g, req = dmReserved(t)
	g.apply(inventory.ExtendOrder{OrderID: "O-1", ExpiresAt: at(7200)}, at(3599))
	g.apply(inventory.Outcome{ReservationID: req[0].ReservationID, OrderID: "O-1", SKU: req[0].SKU, Quantity: 1, Extension: true,
		Reason: inventory.RejectReleased, Message: "no longer held"}, at(3602))
	if g.o.Status != inventory.OrderExpired || !inventory.OrderDueAt(g.o).IsZero() {
		t.Fatalf("refused before confirmation: %+v", g.o)
	}
	for _, l := range g.o.Lines {
		if !l.ExpiresAt.Equal(at(3601)) || !l.ExtendTo.IsZero() {
			t.Fatalf("line %+v claims an expiry the SKU never confirmed", l)
		}
	}
}

func TestSagaCancelBeforePlace(t *testing.T) {
	g := &dmSaga{t: t}
	if eff := g.apply(inventory.CancelOrder{OrderID: "O-1"}, at(0)); len(eff.Requests)+len(eff.Releases) != 0 {
		t.Fatalf("early cancel sent %+v", eff)
	}
	if !g.found || g.o.Status != inventory.OrderCancelled || g.o.Placed() || g.o.Reason == "" {
		t.Fatalf("early cancel recorded %+v", g.o)
	}
	g.same(inventory.CancelOrder{OrderID: "O-1"}, at(1))
	g.same(inventory.OrderTick{OrderID: "O-1", At: at(999)}, at(999))
	cmd := dmPlace("O-1", dmLine("SKU-A", 1), dmLine("SKU-B", 2))
	if eff := g.apply(cmd, at(2)); len(eff.Requests)+len(eff.Releases) != 0 {
		t.Fatalf("late place sent %+v", eff)
	}
	if g.o.Status != inventory.OrderCancelled || !g.o.Placed() || !g.o.SameOrder(cmd) || !g.o.PlacedAt.Equal(at(2)) {
		t.Fatalf("late place recorded %+v", g.o)
	}
	for i, l := range g.o.Lines {
		if l.Status != inventory.LineRejected || l.Reject != inventory.RejectCancelled || l.Message == "" ||
			l.ReservationID != inventory.ReservationIDFor("O-1", i) {
			t.Errorf("line %d: %+v", i+1, l)
		}
	}
	g.same(cmd, at(3))
	other := dmPlace("O-1", dmLine("SKU-A", 5))
	if _, _, _, err := inventory.ApplyOrder(g.o, true, other, at(4)); !errors.Is(err, inventory.ErrOrderConflict) {
		t.Errorf("another order under the id after the late place: %v", err)
	}
	// A bad id is still refused.
	if _, _, res, err := inventory.ApplyOrder(inventory.Order{}, false, inventory.CancelOrder{OrderID: "O 1"}, at(0)); err == nil || res.Changed {
		t.Errorf("early cancel with a bad id: %v", err)
	}
}

// An order accepted before lines recorded their expiry (a table written by
// an older skuflow) is still due, at its decision deadline plus its TTL,
// so the saga expires it and readers are told.
func TestLegacyReservedOrderIsDue(t *testing.T) {
	decideBy := time.Date(2026, 11, 20, 8, 0, 10, 0, time.UTC)
	o := inventory.Order{ID: "old-1", Channel: "web", Status: inventory.OrderReserved, DecideBy: decideBy, ReservationTTL: time.Minute,
		Lines: []inventory.OrderLine{{SKU: "SKU-1", Quantity: 1, ReservationID: "old-1:1", Status: inventory.LineAccepted}}}
	if due, want := inventory.OrderDueAt(o), decideBy.Add(time.Minute); !due.Equal(want) {
		t.Fatalf("OrderDueAt = %v, want %v", due, want)
	}
	if !o.Holds(decideBy) || o.Holds(decideBy.Add(time.Minute)) {
		t.Errorf("Holds: before the bound %v, at it %v; want true then false", o.Holds(decideBy), o.Holds(decideBy.Add(time.Minute)))
	}
	if got := inventory.OrderAt(o, decideBy.Add(2*time.Minute)); got.Status != inventory.OrderExpired {
		t.Errorf("OrderAt after the bound: %v, want expired", got.Status)
	}
}
