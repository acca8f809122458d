package audit

import (
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The invariants' names.
const (
	ruleNegative  = "no negative counts"
	ruleExpired   = "no reservation held past its expiry"
	ruleStale     = "no stale merchant counted"
	ruleReserved  = "no order RESERVED with a released line"
	ruleSalesCaps = "the sales cap respected"
)

// stockInvariants checks a stored SKU state, evaluated now with the
// final policies.
func (a *auditor) stockInvariants(source, k string, s inventory.State, final schema.PolicyGetter) {
	pol, _ := schema.Gather(s, final, a.o.Base)
	snap := inventory.Evaluate(s, pol, a.now)
	if snap.OnHand < 0 {
		a.violated(source, k, ruleNegative, "on_hand %d", snap.OnHand)
	}
	for _, l := range snap.Locations {
		if l.OnHand < 0 || l.Usable < 0 {
			a.violated(source, k, ruleNegative, "location %s on_hand %d usable %d", l.ID, l.OnHand, l.Usable)
		}
	}
	for _, c := range snap.Channels {
		if c.Available < 0 || c.Backorderable < 0 || c.Usable < 0 || c.Reserved < 0 || c.CapRemaining < 0 {
			a.violated(source, k, ruleNegative, "channel %s available %d backorderable %d usable %d reserved %d cap remaining %d",
				c.Channel, c.Available, c.Backorderable, c.Usable, c.Reserved, c.CapRemaining)
		}
		var counted int64
		for _, l := range snap.Locations {
			if !l.Stale && !l.Closed {
				counted += l.Usable
			}
		}
		if c.Usable > counted {
			a.violated(source, k, ruleStale, "channel %s counts %d usable units, more than its open, fresh locations hold (%d)", c.Channel, c.Usable, counted)
		}
	}
	for _, r := range s.Reservations {
		if r.Quantity <= 0 || r.Fulfilled < 0 || r.Fulfilled > r.Quantity {
			a.violated(source, k, ruleNegative, "reservation %s quantity %d shipped %d", r.ID, r.Quantity, r.Fulfilled)
		}
		if r.Status == inventory.StatusHeld && r.ExpiresAt.Add(a.o.Grace).Before(a.now) {
			a.violated(source, k, ruleExpired, "reservation %s (order %s) held, expired at %s; audit at %s allows %s", r.ID, r.OrderID, ts(r.ExpiresAt), ts(a.now), a.o.Grace)
		}
	}
	for _, c := range s.SalesCaps {
		a.salesCap(source, k, s, c)
	}
}

// salesCap checks a cap in its window: once a reservation was accepted
// under the rule, the units it counts (held, or shipped by reservations
// not released) never exceed its limit. Shipments after a release may
// (they were sold), so released reservations are left out.
func (a *auditor) salesCap(source, k string, s inventory.State, c inventory.SalesCapRule) {
	if c.Cleared || a.now.Before(c.WindowStart) || !a.now.Before(c.WindowEnd) {
		return
	}
	var used int64
	acceptedUnder := false
	for _, u := range s.CapUsage {
		if u.Channel == c.Channel && u.WindowStart.Equal(c.WindowStart) {
			used = u.Used
		}
	}
	for _, r := range s.Reservations {
		if r.Channel != c.Channel || r.DecidedAt.Before(c.WindowStart) || !r.DecidedAt.Before(c.WindowEnd) {
			continue
		}
		switch r.Status {
		case inventory.StatusHeld:
			if a.now.Before(r.ExpiresAt) {
				used += r.Quantity
			} else {
				used += r.FulfilledUnits()
			}
		case inventory.StatusFulfilled:
			used += r.FulfilledUnits()
		default:
			continue
		}
		if !r.DecidedAt.Before(c.AsOf) {
			acceptedUnder = true
		}
	}
	if acceptedUnder && used > c.Limit {
		a.violated(source, k, ruleSalesCaps, "channel %s uses %d units of a cap of %d in [%s, %s)", c.Channel, used, c.Limit, ts(c.WindowStart), ts(c.WindowEnd))
	}
}

// availabilityInvariants checks a published answer at the audit's time.
func (a *auditor) availabilityInvariants(k string, raw []byte) {
	r := decodeRecord(raw)
	if r == nil {
		return
	}
	if r.GetOnHand() < 0 {
		a.violated("availability", k, ruleNegative, "on_hand %d", r.GetOnHand())
	}
	var fresh int64
	for _, l := range r.GetLocations() {
		if l.GetOnHand() < 0 || l.GetUsable() < 0 {
			a.violated("availability", k, ruleNegative, "location %s on_hand %d usable %d", l.GetLocation(), l.GetOnHand(), l.GetUsable())
		}
		stale := l.GetStale() || (l.GetKind() == pb.LocationKind_LOCATION_KIND_MERCHANT && l.GetStaleAt() != nil &&
			l.GetStaleAt().AsTime().Add(a.o.Grace).Before(a.now))
		if !stale && !l.GetClosed() {
			fresh += l.GetUsable()
		}
	}
	for _, c := range r.GetChannels() {
		if c.GetAvailable() < 0 || c.GetBackorderable() < 0 {
			a.violated("availability", k, ruleNegative, "channel %s available %d backorderable %d", c.GetChannel(), c.GetAvailable(), c.GetBackorderable())
		}
		if c.GetAvailable() > fresh {
			a.violated("availability", k, ruleStale, "channel %s offers %d units; open locations not stale at %s (allowing %s) hold %d usable",
				c.GetChannel(), c.GetAvailable(), ts(a.now), a.o.Grace, fresh)
		}
	}
}

// orderInvariants checks a saga state against itself and the SKUs'.
func (a *auditor) orderInvariants(k string, o inventory.Order, skus map[string]inventory.State) {
	if o.Status != inventory.OrderReserved && o.Status != inventory.OrderPartiallyFulfilled {
		return
	}
	for _, l := range o.Lines {
		if !l.Held() && l.Status != inventory.LineFulfilled {
			a.violated("orders-table", k, ruleReserved, "order is %s, line %s (%s) is %s", o.Status, l.ReservationID, l.SKU, l.Status)
			continue
		}
		s, ok := skus[l.SKU]
		if !ok || !l.Held() {
			continue
		}
		for _, r := range s.Reservations {
			if r.ID == l.ReservationID && (r.Status == inventory.StatusRejected ||
				(r.Status == inventory.StatusReleased && r.Release != inventory.ReleaseExpired)) {
				a.violated("orders-table", k, ruleReserved, "order is %s, but SKU %s has reservation %s %s", o.Status, l.SKU, r.ID, resStatus(r.Status))
			}
		}
	}
}
