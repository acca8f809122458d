package inventory_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// Tests of the bound on rejected reservations (inventory.MaxRejected):
// the only records a SKU forgets before ClosedRetention are those that
// never held units.

// rbModel is the reference: it remembers every reservation for good.
type rbModel struct {
	level, capLimit int64
	res             map[string]*rbRes
}

type rbRes struct {
	accepted  bool // decided and accepted (held units at some point)
	tombstone bool // released before requested: a request is rejected
	released  bool
	fulfilled bool
	decidedAt time.Time
	expires   time.Time
	qty       int64
}

func (m *rbModel) holds(r *rbRes, now time.Time) bool {
	return r.accepted && !r.released && !r.fulfilled && now.Before(r.expires)
}

func (m *rbModel) onHand() int64 {
	n := m.level
	for _, r := range m.res {
		if r.fulfilled {
			n -= r.qty
		}
	}
	return max(n, 0)
}

func (m *rbModel) held(now time.Time) int64 {
	var n int64
	for _, r := range m.res {
		if m.holds(r, now) {
			n += r.qty
		}
	}
	return n
}

func (m *rbModel) capUsed(now time.Time) int64 {
	var n int64
	for _, r := range m.res {
		if m.holds(r, now) || r.fulfilled {
			n += r.qty
		}
	}
	return n
}

// fits reports whether the model would accept qty units at now.
func (m *rbModel) fits(qty int64, now time.Time) bool {
	return qty <= m.onHand()-m.held(now) && qty <= m.capLimit-m.capUsed(now)
}

func rbID(i int) string { return fmt.Sprintf("R-%02d", i) }

// rbReq is reservation i's request: each id always carries the same one,
// so a second send is a redelivery.
func rbReq(i int) inventory.ReservationRequested {
	return inventory.ReservationRequested{ReservationID: rbID(i), OrderID: fmt.Sprintf("O-%02d", i), SKU: sku, Channel: "web",
		Quantity: int64(1 + i%4), TTL: time.Duration(5+(7*i)%50) * time.Second}
}

func rbHeld(s inventory.State, now time.Time) int64 {
	var n int64
	for _, r := range s.Reservations {
		if r.Status == inventory.StatusHeld && now.Before(r.ExpiresAt) {
			n += r.Quantity - r.FulfilledUnits()
		}
	}
	return n
}

func rbRejected(s inventory.State) int {
	n := 0
	for _, r := range s.Reservations {
		if r.Status == inventory.StatusRejected {
			n++
		}
	}
	return n
}

// Under any interleaving and redelivery of requests, releases (also
// before the request), fulfilments and expiries, a SKU that forgets its
// oldest rejected reservations counts exactly what a model that forgets
// nothing counts: on hand, units held, the sales cap. A request it decides
// anew (its rejection was forgotten) is accepted only if the units fit
// what the model has available, and the order saga releases it (it
// arrives after the line ended); a reservation that held units is never
// forgotten, so it is never accepted twice and its fulfilment is never
// refused or applied twice.
func TestPropertyRejectedBoundNeverOversells(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const ids = 60
		m := &rbModel{level: rapid.Int64Range(0, 8).Draw(t, "level"), capLimit: rapid.Int64Range(1, 12).Draw(t, "cap"),
			res: map[string]*rbRes{}}
		p := inventory.Policies{Channels: []string{"web"}}
		now := t0
		s := dmApply(t, inventory.State{}, dmLevel("WH-1", m.level, t0.Add(-time.Hour), 1),
			inventory.SalesCap{SKU: sku, Channel: "web", Limit: m.capLimit, WindowStart: t0.Add(-time.Hour),
				WindowEnd: t0.Add(30 * 24 * time.Hour), AsOf: t0.Add(-time.Hour)})
		var sent []inventory.Event
		floods := 0
		// anew counts the new decisions that accepted, per id: one at most,
		// whatever is redelivered.
		anew := map[string]int{}
		demand := func(ev inventory.Event) *inventory.Outcome {
			next, out, _ := dmDemand(t, s, ev, p, now)
			s = next
			return out
		}
		request := func(req inventory.ReservationRequested) {
			r, known := m.res[req.ReservationID]
			fits := m.fits(req.Quantity, now)
			// listed: the SKU answers from its record, deciding nothing.
			listed := slices.ContainsFunc(s.Reservations, func(r inventory.Reservation) bool {
				return r.ID == req.ReservationID && r.OrderID != ""
			})
			out := demand(req)
			if out == nil {
				t.Fatalf("no outcome for %s", req.ReservationID)
			}
			if out.Accepted && !listed {
				if anew[req.ReservationID]++; anew[req.ReservationID] > 1 {
					t.Fatalf("%s decided and accepted twice", req.ReservationID)
				}
			}
			switch {
			case !known:
				m.res[req.ReservationID] = &rbRes{qty: req.Quantity, accepted: fits, decidedAt: now, expires: now.Add(req.TTL)}
				if out.Accepted != fits {
					t.Fatalf("fresh %s: accepted %v, the model says %v", req.ReservationID, out.Accepted, fits)
				}
			case r.accepted:
				// Remembered, never decided anew.
				if !listed || !out.Accepted || !out.DecidedAt.Equal(r.decidedAt) {
					t.Fatalf("redelivered %s (accepted at %s): outcome %+v", req.ReservationID, r.decidedAt, out)
				}
			default:
				if r.tombstone && r.qty == 0 {
					r.qty = req.Quantity // the model's tombstone learns its request
				}
				// Rejected in the model. The SKU may have forgotten it and
				// decide anew: an acceptance must fit; the saga releases
				// an acceptance that arrives after its line ended (again
				// for a redelivered one: releases are idempotent).
				if out.Accepted && !listed && !fits {
					t.Fatalf("redelivered %s decided anew and accepted %d units, which the model has not got (on hand %d, held %d, cap used %d of %d)",
						req.ReservationID, req.Quantity, m.onHand(), m.held(now), m.capUsed(now), m.capLimit)
				}
				if out.Accepted {
					demand(dmRel(req.ReservationID, inventory.ReleaseCompensated))
				}
			}
			sent = append(sent, req)
		}
		release := func(id string) {
			demand(dmRel(id, inventory.ReleaseCancelled))
			switch r, known := m.res[id]; {
			case !known:
				m.res[id] = &rbRes{tombstone: true, decidedAt: now}
			case r.accepted && !r.fulfilled && !r.released && now.Before(r.expires):
				r.released = true
			}
			sent = append(sent, dmRel(id, inventory.ReleaseCancelled))
		}
		t.Repeat(map[string]func(*rapid.T){
			"request": func(t *rapid.T) { request(rbReq(rapid.IntRange(0, ids-1).Draw(t, "id"))) },
			"flood": func(t *rapid.T) {
				// Requests that cannot fit, from a pool of their own.
				for range rapid.IntRange(1, 2*inventory.MaxRejected).Draw(t, "n") {
					floods++
					request(inventory.ReservationRequested{ReservationID: fmt.Sprintf("F-%04d", floods), OrderID: "flood", SKU: sku,
						Channel: "web", Quantity: inventory.MaxUnits, TTL: time.Minute})
				}
			},
			"release": func(t *rapid.T) { release(rbID(rapid.IntRange(0, ids-1).Draw(t, "id"))) },
			"fulfil": func(t *rapid.T) {
				// The saga ships only lines the SKU accepted (a late
				// fulfilment of an expired or released hold too).
				var open []string
				for id, r := range m.res {
					if r.accepted && !r.fulfilled {
						open = append(open, id)
					}
				}
				if len(open) == 0 {
					t.Skip("nothing to ship")
				}
				id := rapid.SampledFrom(sortedStrings(open)).Draw(t, "open")
				ev := dmFul(id, "WH-1", now)
				next, _, res, err := inventory.Demand(s, ev, p, now)
				if err != nil || !res.Changed {
					t.Fatalf("fulfilment of %s refused: %v %+v", id, err, res)
				}
				s = next
				m.res[id].fulfilled = true
				sent = append(sent, ev)
			},
			"time": func(t *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(0, 20_000).Draw(t, "ms")) * time.Millisecond)
				if rapid.Bool().Draw(t, "tick") {
					s, _ = inventory.Expire(s, now)
				}
			},
			"redeliver": func(t *rapid.T) {
				if len(sent) == 0 {
					t.Skip("nothing sent")
				}
				switch ev := rapid.SampledFrom(sent).Draw(t, "event").(type) {
				case inventory.ReservationRequested:
					request(ev)
				case inventory.ReservationReleased:
					release(ev.ReservationID)
				default:
					// A redelivered fulfilment changes nothing.
					next, _, res, err := inventory.Demand(s, ev, p, now)
					if err != nil || res.Changed {
						t.Fatalf("redelivered %+v: %+v %v", ev, res, err)
					}
					s = next
				}
			},
			"": func(t *rapid.T) {
				if n := rbRejected(s); n > inventory.MaxRejected {
					t.Fatalf("%d rejected reservations listed, more than %d", n, inventory.MaxRejected)
				}
				if got, want := s.Locations[0].OnHand(), m.onHand(); got != want {
					t.Fatalf("on hand %d, the model says %d", got, want)
				}
				if got, want := rbHeld(s, now), m.held(now); got != want {
					t.Fatalf("units held %d, the model says %d", got, want)
				}
				snap := inventory.Evaluate(s, p, now)
				if len(snap.Channels) != 1 {
					t.Fatalf("channels %+v", snap.Channels)
				}
				ch := snap.Channels[0]
				if want := max(m.capLimit-m.capUsed(now), 0); ch.CapRemaining != want {
					t.Fatalf("cap remaining %d, the model says %d", ch.CapRemaining, want)
				}
				if want := max(min(m.onHand()-m.held(now), m.capLimit-m.capUsed(now)), 0); ch.Available > want || ch.Available < 0 {
					t.Fatalf("available %d, the model allows %d", ch.Available, want)
				}
				for id, r := range m.res {
					if r.accepted && !slicesContainsID(s, id) {
						t.Fatalf("reservation %s held units and is forgotten", id)
					}
				}
			},
		})
	})
}

func slicesContainsID(s inventory.State, id string) bool {
	for _, r := range s.Reservations {
		if r.ID == id {
			return true
		}
	}
	return false
}

func sortedStrings(ss []string) []string {
	out := append([]string(nil), ss...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// 10,000 rejected orders leave at most MaxRejected records, the newest;
// a duplicate of one still listed gets its recorded outcome. (The bytes
// are checked in codecs: TestStateBoundedAfterRejectedRequests.)
func TestRejectedRequestsBounded(t *testing.T) {
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 0, t0, 1))
	p := inventory.Policies{Channels: []string{"web"}}
	long := func(i int) string {
		tail := fmt.Sprintf("-%d", i)
		return strings.Repeat("x", inventory.MaxRefLength-len(tail)) + tail
	}
	var last inventory.ReservationRequested
	var lastOut inventory.Outcome
	for i := range 10_000 {
		last = inventory.ReservationRequested{ReservationID: long(i), OrderID: long(i), SKU: sku, Channel: "web", Quantity: 1, TTL: time.Minute}
		next, out, _ := dmDemand(t, s, last, p, t0.Add(time.Duration(i)*time.Millisecond))
		if out == nil || out.Accepted {
			t.Fatalf("request %d: outcome %+v, want a rejection", i, out)
		}
		s, lastOut = next, *out
	}
	if n := len(s.Reservations); n != inventory.MaxRejected {
		t.Fatalf("%d reservations listed after 10,000 rejected requests, want %d", n, inventory.MaxRejected)
	}
	if s.Reservations[0].ID != long(10_000-inventory.MaxRejected) {
		t.Fatalf("oldest listed %q, want the newest %d kept", s.Reservations[0].ID, inventory.MaxRejected)
	}
	_, again, res := dmDemand(t, s, last, p, t0.Add(time.Hour))
	if res.Changed || again == nil || *again != lastOut {
		t.Fatalf("duplicate of the newest: %+v %+v, want %+v unchanged", again, res, lastOut)
	}
}

// Releases before their request (tombstones) are bounded the same way,
// and never push out a reservation that holds units or was fulfilled.
func TestRejectedBoundKeepsHeldAndClosed(t *testing.T) {
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 10, t0, 1))
	p := inventory.Policies{Channels: []string{"web"}}
	s, outs := dmDemandAll(t, s, p, t0.Add(time.Second),
		dmReq("held", "o-1", "web", 1, time.Hour), dmReq("released", "o-2", "web", 1, time.Hour),
		dmReq("fulfilled", "o-3", "web", 1, time.Hour), dmReq("expired", "o-4", "web", 1, time.Second),
		dmRel("released", inventory.ReleaseCancelled), dmFul("fulfilled", "WH-1", t0.Add(time.Second)))
	for _, o := range outs {
		if !o.Accepted {
			t.Fatalf("outcome %+v", o)
		}
	}
	for i := range 3 * inventory.MaxRejected {
		s, _ = dmDemandAll(t, s, p, t0.Add(time.Minute+time.Duration(i)*time.Second),
			dmRel(fmt.Sprintf("t-%03d", i), inventory.ReleaseCompensated), dmReq(fmt.Sprintf("big-%03d", i), "o", "web", 100, time.Hour))
	}
	if n := rbRejected(s); n != inventory.MaxRejected {
		t.Fatalf("%d rejected listed, want %d", n, inventory.MaxRejected)
	}
	for _, id := range []string{"held", "released", "fulfilled", "expired"} {
		if !slicesContainsID(s, id) {
			t.Errorf("%s was forgotten", id)
		}
	}
	// The late fulfilment of the expired hold still applies (units left).
	next, _, res, err := inventory.Demand(s, dmFul("expired", "WH-1", t0.Add(time.Hour)), p, t0.Add(time.Hour))
	if err != nil || !res.Changed || next.Locations[0].OnHand() != 8 {
		t.Fatalf("late fulfilment: %+v %v, on hand %d", res, err, next.Locations[0].OnHand())
	}
}

// End to end at the domain level: an order whose only line was rejected
// ends; its SKU forgets the rejection under a flood of other rejected
// requests; stock arrives; the request is redelivered and accepted anew;
// the saga gives the units back, so nothing stays held for an order that
// failed.
func TestForgottenRejectionRedeliveredIsReleasedBySaga(t *testing.T) {
	p := inventory.Policies{Channels: []string{"web"}}
	s := dmApply(t, inventory.State{}, dmLevel("WH-1", 0, t0, 1))
	place := inventory.PlaceOrder{OrderID: "O-1", Channel: "web", Lines: []inventory.OrderLine{{SKU: sku, Quantity: 2}},
		ReservationTTL: time.Hour, DecisionTimeout: time.Minute}
	o, eff, _, err := inventory.ApplyOrder(inventory.Order{}, false, place, t0)
	if err != nil || len(eff.Requests) != 1 {
		t.Fatalf("place: %+v %v", eff, err)
	}
	req := eff.Requests[0]
	next, out, _ := dmDemand(t, s, req, p, t0.Add(time.Second))
	s = next
	if out.Accepted {
		t.Fatalf("first decision accepted with no stock: %+v", out)
	}
	o, eff, _, err = inventory.ApplyOrder(o, true, *out, t0.Add(2*time.Second))
	if err != nil || o.Status != inventory.OrderRejected || len(eff.Releases) != 0 {
		t.Fatalf("order after the rejection: %+v %+v %v", o, eff, err)
	}
	for i := range inventory.MaxRejected {
		s, _ = dmDemandAll(t, s, p, t0.Add(time.Minute+time.Duration(i)*time.Second), dmReq(fmt.Sprintf("other-%02d", i), "o", "web", 1, time.Hour))
	}
	if slicesContainsID(s, req.ReservationID) {
		t.Fatalf("%s still listed after %d newer rejections", req.ReservationID, inventory.MaxRejected)
	}
	s = dmApply(t, s, dmLevel("WH-1", 5, t0.Add(time.Hour), 2))
	now := t0.Add(2 * time.Hour)
	s, out, _ = dmDemand(t, s, req, p, now)
	if !out.Accepted {
		t.Fatalf("redelivered request decided anew with 5 units: %+v", out)
	}
	if got := rbHeld(s, now); got != 2 {
		t.Fatalf("held %d", got)
	}
	o2, eff, _, err := inventory.ApplyOrder(o, true, *out, now)
	if err != nil || o2.Status != inventory.OrderRejected || len(eff.Releases) != 1 || eff.Releases[0].ReservationID != req.ReservationID {
		t.Fatalf("saga on the late acceptance: %+v %+v %v, want one release", o2, eff, err)
	}
	s, _, _ = dmDemand(t, s, eff.Releases[0], p, now)
	if got := rbHeld(s, now); got != 0 {
		t.Fatalf("held %d after the saga's release", got)
	}
	if a := inventory.Evaluate(s, p, now).Channels[0].Available; a != 5 {
		t.Fatalf("available %d, want 5", a)
	}
}
