package inventory_test

import (
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
// Sales caps count sales, not attempts: accepted reservations still held and
// fulfilled ones use the cap; rejections never do; release, expiry,
// cancellation and compensation give the units back, once.

// capRemaining is Evaluate's remaining web cap at now.
func capRemaining(t tb, s inventory.State, now time.Time) int64 {
	t.Helper()
	c := dmChannel(t, inventory.Evaluate(s, dmPolicies(), now), "web")
	if !c.HasCap {
		t.Fatalf("web has no cap at %s", now.Sub(t0))
	}
	return c.CapRemaining
}

func TestSalesCapCountsSales(t *testing.T) {
	p := dmPolicies()
	windowEnd := t0.Add(30 * 24 * time.Hour)
	s := dmApply(t, dmStock(t, 100, 0), inventory.SalesCap{SKU: sku, Channel: "web", Limit: 5, WindowStart: t0, WindowEnd: windowEnd, AsOf: t0})
	want := func(s inventory.State, now time.Time, n int64, when string) {
		t.Helper()
		if got := capRemaining(t, s, now); got != n {
			t.Fatalf("%s: cap remaining %d, want %d", when, got, n)
		}
	}
	want(s, at(1), 5, "start")
	s, _, _ = dmDemand(t, s, dmReq("A", "O-1", "web", 3, time.Hour), p, at(1))
	want(s, at(1), 2, "A holds 3")
	s, out, _ := dmDemand(t, s, dmReq("B", "O-2", "web", 3, time.Hour), p, at(2))
	if out.Reason != inventory.RejectCapExceeded {
		t.Fatalf("B: %+v, want cap exceeded", *out)
	}
	want(s, at(2), 2, "B rejected")
	s, _, _ = dmDemand(t, s, dmRel("B", inventory.ReleaseCompensated), p, at(2))
	want(s, at(2), 2, "the release of a rejected request returns nothing")
	s, _, res := dmDemand(t, s, dmRel("A", inventory.ReleaseCancelled), p, at(3))
	if !res.Changed {
		t.Fatal("release of A changed nothing")
	}
	want(s, at(3), 5, "A cancelled")
	s, _, res = dmDemand(t, s, dmRel("A", inventory.ReleaseCancelled), p, at(4))
	if res.Changed {
		t.Fatal("a duplicate release changed the state")
	}
	want(s, at(4), 5, "A released twice")

	// Expiry gives the units back at once when read, and in the state.
	s, _, _ = dmDemand(t, s, dmReq("C", "O-3", "web", 5, 10*time.Second), p, at(5))
	want(s, at(14), 0, "C holds 5")
	want(s, at(15), 5, "C expired (read time)")
	s, _ = inventory.Expire(s, at(15))
	want(s, at(15), 5, "C expired (state)")

	// Compensation, and a fulfilment that keeps counting.
	s, _, _ = dmDemand(t, s, dmReq("D", "O-4", "web", 2, time.Hour), p, at(20))
	s, _, _ = dmDemand(t, s, dmReq("E", "O-4", "web", 3, time.Hour), p, at(20))
	want(s, at(20), 0, "D and E hold 5")
	s, _, _ = dmDemand(t, s, dmRel("E", inventory.ReleaseCompensated), p, at(21))
	want(s, at(21), 3, "E compensated")
	s, _, _ = dmDemand(t, s, dmFul("D", "WH-1", at(22)), p, at(22))
	want(s, at(22), 3, "D fulfilled")
	s, _, res = dmDemand(t, s, dmRel("D", inventory.ReleaseCancelled), p, at(23))
	if res.Changed {
		t.Fatal("a release after the fulfilment changed the state")
	}
	want(s, t0.Add(2*time.Hour), 3, "D fulfilled, its hold long over")

	// A fulfilled reservation forgotten after ClosedRetention still counts
	// until its window ends.
	s, _, _ = dmDemand(t, s, dmReq("F", "O-5", "web", 3, time.Hour), p, at(30))
	s, _, _ = dmDemand(t, s, dmFul("F", "WH-1", at(31)), p, at(31))
	want(s, at(31), 0, "D and F fulfilled")
	later := at(31).Add(inventory.ClosedRetention + time.Second)
	s, out, _ = dmDemand(t, s, dmReq("G", "O-6", "web", 1, time.Hour), p, later)
	if out.Reason != inventory.RejectCapExceeded {
		t.Fatalf("G after D and F were forgotten: %+v, want cap exceeded", *out)
	}
	for _, id := range []string{"D", "F"} {
		if _, ok := dmFind(s, id); ok {
			t.Fatalf("%s not forgotten after its retention", id)
		}
	}
	if wantUsage := []inventory.CapUsage{{Channel: "web", WindowStart: t0, Used: 5}}; !reflect.DeepEqual(s.CapUsage, wantUsage) {
		t.Fatalf("cap usage %+v, want %+v", s.CapUsage, wantUsage)
	}
	want(s, later, 0, "forgotten fulfilments")
	// A new window starts afresh.
	s = dmApply(t, s, inventory.SalesCap{SKU: sku, Channel: "web", Limit: 4, WindowStart: windowEnd, WindowEnd: windowEnd.Add(time.Hour), AsOf: at(40)})
	want(s, windowEnd, 4, "the next window")
}

// The remaining cap, as the reference counts it: units of reservations
// decided in the window that are held at now or fulfilled.
type capRef struct {
	id        string
	qty       int64
	accepted  bool
	released  bool
	fulfilled bool
	late      bool // fulfilled after its hold ended
	expiresAt time.Time
}

func (r *capRef) live(now time.Time) bool {
	return r.accepted && !r.released && !r.fulfilled && now.Before(r.expiresAt)
}

// A sales cap, under random requests, releases of every reason,
// fulfilments, time passing and redeliveries, checked against a reference:
// the cap is never exceeded by live and fulfilled reservations (only a
// fulfilment of a hold that already ended, a sale made anyway, can go
// beyond it); a rejected request never uses it; a released, expired,
// cancelled or compensated unit is sellable again within the cap at once,
// and only once.
func TestPropertyCapCountsSales(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := dmPolicies()
		limit := rapid.Int64Range(0, 8).Draw(t, "cap")
		s := dmApply(t, dmStock(t, 100, 0), inventory.SalesCap{SKU: sku, Channel: "web", Limit: limit, WindowStart: t0, WindowEnd: at(100_000), AsOf: t0})
		now := at(1)
		var refs []*capRef
		var sent []inventory.Event
		used := func(now time.Time) (all, late int64) {
			for _, r := range refs {
				if r.live(now) || r.fulfilled {
					all += r.qty
				}
				if r.late {
					late += r.qty
				}
			}
			return all, late
		}
		apply := func(ev inventory.Event) (*inventory.Outcome, inventory.Result) {
			next, out, res := dmDemand(t, s, ev, p, now)
			s = next
			sent = append(sent, ev)
			return out, res
		}
		t.Repeat(map[string]func(*rapid.T){
			"request": func(t *rapid.T) {
				before := capRemaining(t, s, now)
				r := &capRef{id: fmt.Sprintf("R-%03d", len(refs)), qty: rapid.Int64Range(1, 4).Draw(t, "qty")}
				ttl := time.Duration(rapid.IntRange(1, 60).Draw(t, "ttl")) * time.Second
				out, _ := apply(dmReq(r.id, "O-1", "web", r.qty, ttl))
				r.accepted, r.expiresAt = out.Accepted, now.Add(ttl)
				refs = append(refs, r)
				if out.Accepted != (r.qty <= before) || (!out.Accepted && (out.Reason != inventory.RejectCapExceeded || out.Message == "")) {
					t.Fatalf("%d units with %d left of the cap: %+v", r.qty, before, *out)
				}
				wantAfter := before
				if out.Accepted {
					wantAfter -= r.qty
				}
				if after := capRemaining(t, s, now); after != wantAfter {
					t.Fatalf("%s (accepted %v): cap remaining %d -> %d, want %d", r.id, out.Accepted, before, after, wantAfter)
				}
			},
			"release": func(t *rapid.T) {
				if len(refs) == 0 {
					t.Skip("nothing requested")
				}
				r := rapid.SampledFrom(refs).Draw(t, "reservation")
				reason := rapid.SampledFrom([]inventory.ReleaseReason{inventory.ReleaseCancelled, inventory.ReleaseExpired, inventory.ReleaseCompensated}).Draw(t, "reason")
				before := capRemaining(t, s, now)
				wasLive := r.live(now)
				apply(dmRel(r.id, reason))
				if r.accepted && !r.fulfilled {
					r.released = true
				}
				wantAfter := before
				if wasLive {
					all, _ := used(now)
					wantAfter = max(0, limit-all)
				}
				if after := capRemaining(t, s, now); after != wantAfter {
					t.Fatalf("release of %s (live %v): cap remaining %d -> %d, want %d", r.id, wasLive, before, after, wantAfter)
				}
				if wasLive && wantAfter > 0 {
					// Sellable again: exactly what is left, and no more.
					_, out, _ := dmDemand(t, s, dmReq("PROBE", "O-9", "web", wantAfter, time.Minute), p, now)
					_, over, _ := dmDemand(t, s, dmReq("PROBE", "O-9", "web", wantAfter+1, time.Minute), p, now)
					if !out.Accepted || over.Accepted {
						t.Fatalf("after releasing %s: %d units %+v, %d units %+v", r.id, wantAfter, *out, wantAfter+1, *over)
					}
				}
			},
			"fulfil": func(t *rapid.T) {
				var open []*capRef
				for _, r := range refs {
					if r.accepted && !r.fulfilled {
						open = append(open, r)
					}
				}
				if len(open) == 0 {
					t.Skip("nothing to fulfil")
				}
				r := rapid.SampledFrom(open).Draw(t, "reservation")
				r.late = !r.live(now)
				r.fulfilled = true
				apply(dmFul(r.id, "WH-1", now))
			},
			"advance": func(t *rapid.T) {
				before := capRemaining(t, s, now)
				now = now.Add(time.Duration(rapid.IntRange(0, 20_000).Draw(t, "ms")) * time.Millisecond)
				if rapid.Bool().Draw(t, "expire") {
					s, _ = inventory.Expire(s, now)
				}
				if after := capRemaining(t, s, now); after < before {
					t.Fatalf("time alone used the cap: %d -> %d", before, after)
				}
			},
			"redeliver": func(t *rapid.T) {
				if len(sent) == 0 {
					t.Skip("nothing sent")
				}
				ev := rapid.SampledFrom(sent).Draw(t, "event")
				rem := capRemaining(t, s, now)
				next, out, res := dmDemand(t, s, ev, p, now)
				id, _ := reservationOf(ev)
				if !slices.ContainsFunc(refs, func(r *capRef) bool { return r.id == id && r.accepted }) {
					// Rejected. Its rejection may have been forgotten (a SKU
					// lists only its inventory.MaxRejected newest): a request
					// is then decided anew, a release remembered anew. The
					// saga releases an acceptance that arrives after its line
					// ended. The cap is untouched either way.
					if out != nil && out.Accepted {
						next, _, _ = dmDemand(t, next, dmRel(id, inventory.ReleaseCompensated), p, now)
					}
					if capRemaining(t, next, now) != rem {
						t.Fatalf("a redelivery of forgotten %s changed the cap: %d -> %d", id, rem, capRemaining(t, next, now))
					}
					s = next
					return
				}
				// Accepted: listed until ClosedRetention, so nothing changes.
				if res.Changed || capRemaining(t, next, now) != rem || !reflect.DeepEqual(next, s) {
					t.Fatal("a redelivery changed the cap")
				}
			},
			"": func(t *rapid.T) {
				all, late := used(now)
				if all-late > limit {
					t.Fatalf("%d units live or fulfilled (%d fulfilled late), cap %d", all, late, limit)
				}
				if got := capRemaining(t, s, now); got != max(0, limit-all) {
					t.Fatalf("cap remaining %d, reference %d (limit %d, used %d)", got, max(0, limit-all), limit, all)
				}
			},
		})
	})
}

// ---------------------------------------------------------------------------
// Orders do not invent SKUs.

func TestDemandUnknownSKU(t *testing.T) {
	p := dmPolicies()
	for _, s := range []inventory.State{{}, {SKU: sku}} {
		req := dmReq("R-1", "O-1", "web", 2, time.Minute)
		next, out, res := dmDemand(t, s, req, p, at(1))
		if res.Changed || !reflect.DeepEqual(next, s) {
			t.Fatalf("a request for an unknown sku created %+v", next)
		}
		want := inventory.Outcome{ReservationID: "R-1", OrderID: "O-1", SKU: sku, Quantity: 2, Reason: inventory.RejectInsufficient,
			Message: `sku "SKU-1" is not known: no stock and no policy was ever received for it`}
		if out == nil || !reflect.DeepEqual(*out, want) {
			t.Fatalf("outcome %+v, want %+v", out, want)
		}
		// Nothing was recorded, so a duplicate is answered from the same
		// facts: the same outcome, whenever it comes.
		if _, again, res := dmDemand(t, s, req, p, at(1000)); res.Changed || !reflect.DeepEqual(*again, want) {
			t.Fatalf("duplicate: %+v, %+v", *again, res)
		}
		// A release creates nothing either; a fulfilment is invalid.
		if next, _, res := dmDemand(t, s, dmRel("R-1", inventory.ReleaseCompensated), p, at(2)); res.Changed || !reflect.DeepEqual(next, s) {
			t.Fatalf("a release for an unknown sku created %+v", next)
		}
		if _, _, _, err := inventory.Demand(s, dmFul("R-1", "WH-1", at(2)), p, at(2)); !inventory.IsInvalid(err) {
			t.Fatalf("fulfilment for an unknown sku: %v", err)
		}
		// An unconfigured channel is still bad input.
		if _, _, _, err := inventory.Demand(s, dmReq("R-2", "O-1", "phone", 1, time.Minute), p, at(2)); !inventory.IsInvalid(err) {
			t.Fatalf("unknown channel on an unknown sku: %v", err)
		}
	}
	// A SKU policy alone makes it known: the request is decided and
	// recorded (no stock: insufficient); supply makes it sellable.
	known := dmApply(t, inventory.State{}, inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: true, AsOf: t0})
	next, out, res := dmDemand(t, known, dmReq("R-1", "O-1", "web", 2, time.Minute), p, at(1))
	if !res.Changed || out.Reason != inventory.RejectInsufficient || strings.Contains(out.Message, "not known") {
		t.Fatalf("request for a sku with a policy: %+v, %+v", *out, res)
	}
	if _, ok := dmFind(next, "R-1"); !ok {
		t.Fatal("the decision on a known sku was not recorded")
	}
	stocked := dmApply(t, inventory.State{}, dmLevel("WH-1", 0, t0, 1))
	if !stocked.Known() {
		t.Fatal("a sku with a level of 0 is not known")
	}
	if (inventory.State{SKU: sku}).Known() {
		t.Fatal("an empty state is known")
	}
}

// reservationOf is the reservation a demand event is about.
func reservationOf(ev inventory.Event) (string, bool) {
	switch e := ev.(type) {
	case inventory.ReservationRequested:
		return e.ReservationID, true
	case inventory.ReservationReleased:
		return e.ReservationID, true
	case inventory.ReservationFulfilled:
		return e.ReservationID, true
	case inventory.ReservationExtended:
		return e.ReservationID, true
	}
	return "", false
}
