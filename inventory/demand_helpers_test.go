package inventory_test

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// Helpers shared by reservation_test.go and order_test.go. Their names start
// with dm (demand) so they never clash with the stock tests' helpers.

// dmLong is a reservation or order id of exactly MaxRefLength bytes.
var dmLong = strings.Repeat("r", inventory.MaxRefLength)

// dmPolicies answers for the channels app and web. WH-1 (no policy) is an
// owned warehouse serving both; ST-1 is a store with one unit of safety
// stock that fulfils only app.
func dmPolicies() inventory.Policies {
	return inventory.Policies{
		Channels: []string{"app", "web"},
		Locations: map[string]inventory.LocationPolicy{
			"ST-1": {Location: "ST-1", Kind: inventory.KindStore, Channels: []string{"app"}, SafetyStock: 1, AsOf: t0},
		},
	}
}

func dmReq(id, order, channel string, qty int64, ttl time.Duration) inventory.ReservationRequested {
	return inventory.ReservationRequested{ReservationID: id, OrderID: order, SKU: sku, Channel: channel, Quantity: qty, TTL: ttl}
}

func dmRel(id string, reason inventory.ReleaseReason) inventory.ReservationReleased {
	return inventory.ReservationReleased{ReservationID: id, SKU: sku, Reason: reason}
}

func dmFul(id, loc string, at time.Time) inventory.ReservationFulfilled {
	return inventory.ReservationFulfilled{ReservationID: id, SKU: sku, Location: loc, FulfilledAt: at}
}

func dmLevel(loc string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	return inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: seq}
}

// dmApply folds supply events (stock and SKU policies) with inventory.Apply,
// failing on any error.
func dmApply(t tb, s inventory.State, evs ...inventory.Event) inventory.State {
	t.Helper()
	for _, ev := range evs {
		next, _, err := inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("Apply(%+v): %v", ev, err)
		}
		s = next
	}
	return s
}

// dmDemand applies a demand event that must be valid, checking that the
// input state is left alone and the result is well formed.
func dmDemand(t tb, s inventory.State, ev inventory.Event, p inventory.Policies, now time.Time) (inventory.State, *inventory.Outcome, inventory.Result) {
	t.Helper()
	before := s.Clone()
	next, out, res, err := inventory.Demand(s, ev, p, now)
	if err != nil {
		t.Fatalf("Demand(%+v) at %s: %v", ev, now.Format(time.RFC3339Nano), err)
	}
	if !reflect.DeepEqual(s, before) {
		t.Fatalf("Demand(%+v) modified the state it was given", ev)
	}
	if !res.Changed && !reflect.DeepEqual(next, s) {
		t.Fatalf("Demand(%+v) reported no change but returned a different state", ev)
	}
	dmCheckState(t, next)
	return next, out, res
}

// dmDemandAll applies events in order at now, returning the outcomes.
func dmDemandAll(t tb, s inventory.State, p inventory.Policies, now time.Time, evs ...inventory.Event) (inventory.State, []inventory.Outcome) {
	t.Helper()
	var outs []inventory.Outcome
	for _, ev := range evs {
		var out *inventory.Outcome
		s, out, _ = dmDemand(t, s, ev, p, now)
		if out != nil {
			outs = append(outs, *out)
		}
	}
	return s, outs
}

// dmCheckState checks the demand part of a state's shape: reservations
// sorted by unique id, cap usage sorted by unique channel, counts in range.
func dmCheckState(t tb, s inventory.State) {
	t.Helper()
	for i, r := range s.Reservations {
		if i > 0 && s.Reservations[i-1].ID >= r.ID {
			t.Fatalf("reservations not sorted by unique id: %q then %q", s.Reservations[i-1].ID, r.ID)
		}
		if r.Quantity < 0 || r.Quantity > inventory.MaxUnits {
			t.Fatalf("reservation %q has quantity %d", r.ID, r.Quantity)
		}
		switch r.Status {
		case inventory.StatusHeld:
			if r.ExpiresAt.IsZero() || !r.ClosedAt.IsZero() || r.Reject != 0 {
				t.Fatalf("held reservation %+v has a missing expiry, a close time or a reject reason", r)
			}
		case inventory.StatusReleased, inventory.StatusFulfilled:
			if r.ClosedAt.IsZero() {
				t.Fatalf("closed reservation %+v has no close time", r)
			}
		case inventory.StatusRejected:
			if r.Reject == 0 || r.ClosedAt.IsZero() || r.Backorder {
				t.Fatalf("rejected reservation %+v lacks a reason or a close time, or is a backorder", r)
			}
		default:
			t.Fatalf("reservation %+v has status %d", r, r.Status)
		}
	}
	for i, u := range s.CapUsage {
		if i > 0 && s.CapUsage[i-1].Channel >= u.Channel {
			t.Fatalf("cap usage not sorted by unique channel: %+v", s.CapUsage)
		}
		if u.Used < 0 || u.Used > inventory.MaxUnits {
			t.Fatalf("cap usage %+v out of range", u)
		}
	}
}

// dmFind returns the reservation with id.
func dmFind(s inventory.State, id string) (inventory.Reservation, bool) {
	i := slices.IndexFunc(s.Reservations, func(r inventory.Reservation) bool { return r.ID == id })
	if i < 0 {
		return inventory.Reservation{}, false
	}
	return s.Reservations[i], true
}

// dmChannel returns the channel's line of a snapshot.
func dmChannel(t tb, snap inventory.Snapshot, channel string) inventory.ChannelSnapshot {
	t.Helper()
	for _, c := range snap.Channels {
		if c.Channel == channel {
			return c
		}
	}
	t.Fatalf("snapshot has no channel %q: %+v", channel, snap.Channels)
	return inventory.ChannelSnapshot{}
}

// dmAvailable is Evaluate's available units on channel at now.
func dmAvailable(t tb, s inventory.State, p inventory.Policies, channel string, now time.Time) int64 {
	t.Helper()
	return dmChannel(t, inventory.Evaluate(s, p, now), channel).Available
}

// dmHeld sums the units held at now by non-backorder reservations on
// channel ("" for every channel), counted straight from the reservations.
func dmHeld(s inventory.State, channel string, now time.Time) int64 {
	var n int64
	for _, r := range s.Reservations {
		if r.Status == inventory.StatusHeld && now.Before(r.ExpiresAt) && !r.Backorder && (channel == "" || r.Channel == channel) {
			n += r.Quantity - r.FulfilledUnits()
		}
	}
	return n
}

// dmBackordered sums the units held at now by backorder reservations.
func dmBackordered(s inventory.State, now time.Time) int64 {
	var n int64
	for _, r := range s.Reservations {
		if r.Status == inventory.StatusHeld && now.Before(r.ExpiresAt) && r.Backorder {
			n += r.Quantity - r.FulfilledUnits()
		}
	}
	return n
}

// dmCloneOrder deep-copies an order so a later comparison sees mutation.
func dmCloneOrder(o inventory.Order) inventory.Order {
	o.Lines = slices.Clone(o.Lines)
	o.Fulfilments = slices.Clone(o.Fulfilments)
	for i := range o.Fulfilments {
		o.Fulfilments[i].Lines = slices.Clone(o.Fulfilments[i].Lines)
	}
	return o
}
