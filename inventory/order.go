package inventory

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The order saga: a multi-item order reserves all of its lines or none. It
// requests one reservation per line, collects the outcomes, and ends
// RESERVED when every line was accepted, or REJECTED (a line failed or the
// decision deadline passed) or CANCELLED, releasing every accepted line.
// Outcomes that arrive after the order ended are released at once, so no
// units leak. Every step is idempotent under redelivery.

// OrderStatus is the saga's state; numbers match skuflow.v1.OrderStatus.
type OrderStatus int

// Order statuses.
const (
	OrderPending   OrderStatus = 1
	OrderReserved  OrderStatus = 2
	OrderRejected  OrderStatus = 3
	OrderCancelled OrderStatus = 4
)

// LineStatus is one line's state; numbers match skuflow.v1.LineStatus.
type LineStatus int

// Line statuses.
const (
	LinePending  LineStatus = 1
	LineAccepted LineStatus = 2
	LineRejected LineStatus = 3
	LineReleased LineStatus = 4
)

// Limits on orders.
const (
	MaxOrderLines      = 100
	MaxDecisionTimeout = 10 * time.Minute
	// MaxOrderIDLength leaves room in reservation ids (MaxRefLength) for
	// the ":<line>" suffix.
	MaxOrderIDLength = MaxRefLength - 4
)

// ErrOrderConflict rejects an order id reused for a different order.
var ErrOrderConflict = errors.New("order id already used for a different order")

// OrderLine is one line of an order.
type OrderLine struct {
	SKU           string
	Quantity      int64
	ReservationID string
	Status        LineStatus
	Backorder     bool
	Reject        RejectReason
	Message       string
}

// Order is the saga's state for one order.
type Order struct {
	ID             string
	Channel        string
	Status         OrderStatus
	Lines          []OrderLine
	PlacedAt       time.Time
	DecideBy       time.Time
	ReservationTTL time.Duration
	Reason         string
}

// PlaceOrder starts an order.
type PlaceOrder struct {
	OrderID         string
	Channel         string
	Lines           []OrderLine // SKU and Quantity only
	ReservationTTL  time.Duration
	DecisionTimeout time.Duration
}

// CancelOrder cancels an order and releases what it holds.
type CancelOrder struct{ OrderID string }

// OrderTick applies the order's deadline as of At.
type OrderTick struct {
	OrderID string
	At      time.Time
}

// OrderEffects are the messages the saga sends: reservation requests and
// releases, keyed by SKU on the demand topic.
type OrderEffects struct {
	Requests []ReservationRequested
	Releases []ReservationReleased
}

// Validate reports every problem with the command.
func (c PlaceOrder) Validate() error {
	errs := []error{validRef("order_id", c.OrderID), validID("channel", c.Channel)}
	if len(c.OrderID) > MaxOrderIDLength {
		errs = append(errs, fmt.Errorf("%w: order_id is %d bytes, longer than %d", ErrInvalidEvent, len(c.OrderID), MaxOrderIDLength))
	}
	if len(c.Lines) == 0 || len(c.Lines) > MaxOrderLines {
		errs = append(errs, fmt.Errorf("%w: an order has 1 to %d lines, this one %d", ErrInvalidEvent, MaxOrderLines, len(c.Lines)))
	}
	seen := map[string]bool{}
	for i, l := range c.Lines {
		if err := ValidateID("sku", l.SKU); err != nil {
			errs = append(errs, fmt.Errorf("%w: line %d: %w", ErrInvalidEvent, i+1, err))
		}
		if l.Quantity < 1 || l.Quantity > MaxUnits {
			errs = append(errs, fmt.Errorf("%w: line %d: quantity %d is outside 1..%d", ErrInvalidEvent, i+1, l.Quantity, int64(MaxUnits)))
		}
		if seen[l.SKU] {
			errs = append(errs, fmt.Errorf("%w: line %d: sku %q appears twice; put its units on one line", ErrInvalidEvent, i+1, l.SKU))
		}
		seen[l.SKU] = true
	}
	if c.ReservationTTL <= 0 || c.ReservationTTL > MaxReservationTTL {
		errs = append(errs, fmt.Errorf("%w: reservation ttl %s is outside (0, %s]", ErrInvalidEvent, c.ReservationTTL, MaxReservationTTL))
	}
	if c.DecisionTimeout <= 0 || c.DecisionTimeout > MaxDecisionTimeout {
		errs = append(errs, fmt.Errorf("%w: decision timeout %s is outside (0, %s]", ErrInvalidEvent, c.DecisionTimeout, MaxDecisionTimeout))
	}
	return errors.Join(errs...)
}

// ReservationIDFor is the reservation id of an order's line i.
func ReservationIDFor(orderID string, i int) string { return orderID + ":" + strconv.Itoa(i+1) }

// SameOrder reports whether c places this order again (same channel, TTL
// and lines), as a retry would, rather than a different order under its id.
func (o Order) SameOrder(c PlaceOrder) bool {
	if o.Channel != c.Channel || o.ReservationTTL != c.ReservationTTL || len(o.Lines) != len(c.Lines) {
		return false
	}
	for i, l := range c.Lines {
		if o.Lines[i].SKU != l.SKU || o.Lines[i].Quantity != l.Quantity {
			return false
		}
	}
	return true
}

// Final reports whether the order has ended.
func (o Order) Final() bool { return o.Status != OrderPending }

// ApplyOrder folds a saga input (PlaceOrder, CancelOrder, OrderTick or an
// Outcome) into the order at t. found is false before the order exists.
func ApplyOrder(o Order, found bool, in any, t time.Time) (Order, OrderEffects, Result, error) {
	t = t.UTC()
	switch c := in.(type) {
	case PlaceOrder:
		return place(o, found, c, t)
	case CancelOrder:
		if !found {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: cancel of unknown order %q", ErrInvalidEvent, c.OrderID)
		}
		return finish(o, OrderCancelled, RejectCancelled, "cancelled", "order was cancelled before this line was decided")
	case OrderTick:
		if !found || o.Final() || t.Before(o.DecideBy) {
			return o, OrderEffects{}, Result{}, nil
		}
		return finish(o, OrderRejected, RejectTimeout, "no decision for every line before "+o.DecideBy.Format(time.RFC3339),
			"no decision for this line before the order's deadline "+o.DecideBy.Format(time.RFC3339))
	case Outcome:
		if !found {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: outcome for unknown order %q", ErrInvalidEvent, c.OrderID)
		}
		return outcome(o, c)
	}
	return o, OrderEffects{}, Result{}, fmt.Errorf("%w: %T is not an order input", ErrInvalidEvent, in)
}

func place(o Order, found bool, c PlaceOrder, t time.Time) (Order, OrderEffects, Result, error) {
	if err := c.Validate(); err != nil {
		return o, OrderEffects{}, Result{}, err
	}
	if found {
		if !o.SameOrder(c) {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: %q", ErrOrderConflict, c.OrderID)
		}
		// A redelivered or retried order: re-request lines still undecided
		// (the first requests may have been lost in a crash); the SKU side
		// answers duplicates with their recorded outcome.
		var eff OrderEffects
		if !o.Final() {
			for _, l := range o.Lines {
				if l.Status == LinePending {
					eff.Requests = append(eff.Requests, requestFor(o, l))
				}
			}
		}
		return o, eff, Result{}, nil
	}
	n := Order{ID: c.OrderID, Channel: c.Channel, Status: OrderPending, PlacedAt: t,
		DecideBy: t.Add(c.DecisionTimeout), ReservationTTL: c.ReservationTTL}
	var eff OrderEffects
	for i, l := range c.Lines {
		line := OrderLine{SKU: l.SKU, Quantity: l.Quantity, ReservationID: ReservationIDFor(c.OrderID, i), Status: LinePending}
		n.Lines = append(n.Lines, line)
		eff.Requests = append(eff.Requests, requestFor(n, line))
	}
	return n, eff, Result{Changed: true}, nil
}

func requestFor(o Order, l OrderLine) ReservationRequested {
	return ReservationRequested{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Channel: o.Channel,
		Quantity: l.Quantity, TTL: o.ReservationTTL}
}

func releaseFor(l OrderLine, r ReleaseReason) ReservationReleased {
	return ReservationReleased{ReservationID: l.ReservationID, SKU: l.SKU, Reason: r}
}

// finish ends a pending or reserved order: accepted lines are released,
// undecided lines are marked with reason and message (why the line was not
// reserved, never empty) and released when their outcome comes.
func finish(o Order, status OrderStatus, reason RejectReason, why, lineMsg string) (Order, OrderEffects, Result, error) {
	if o.Status == OrderRejected || o.Status == OrderCancelled {
		return o, OrderEffects{}, Result{}, nil
	}
	if status == OrderRejected && o.Status != OrderPending {
		return o, OrderEffects{}, Result{}, nil // a deadline does not undo a reserved order
	}
	rel := ReleaseCompensated
	if status == OrderCancelled {
		rel = ReleaseCancelled
	}
	n := o
	n.Lines = slices.Clone(o.Lines)
	n.Status, n.Reason = status, why
	var eff OrderEffects
	for i, l := range n.Lines {
		switch l.Status {
		case LineAccepted:
			n.Lines[i].Status = LineReleased
			eff.Releases = append(eff.Releases, releaseFor(l, rel))
		case LinePending:
			n.Lines[i].Status, n.Lines[i].Reject, n.Lines[i].Message = LineRejected, reason, lineMsg
		}
	}
	return n, eff, Result{Changed: true}, nil
}

func outcome(o Order, c Outcome) (Order, OrderEffects, Result, error) {
	i := slices.IndexFunc(o.Lines, func(l OrderLine) bool { return l.ReservationID == c.ReservationID })
	if i < 0 {
		return o, OrderEffects{}, Result{}, fmt.Errorf("%w: outcome for reservation %q, not a line of order %q", ErrInvalidEvent, c.ReservationID, o.ID)
	}
	l := o.Lines[i]
	switch {
	case l.Status == LinePending:
	case c.Accepted && l.Status != LineAccepted:
		// Accepted after the line ended (the order failed, was cancelled or
		// timed out, or the SKU side decided a redelivered request anew):
		// give the units back at once. Releases are idempotent.
		return o, OrderEffects{Releases: []ReservationReleased{releaseFor(l, ReleaseCompensated)}}, Result{}, nil
	default:
		return o, OrderEffects{}, Result{}, nil // a duplicate
	}
	n := o
	n.Lines = slices.Clone(o.Lines)
	msg := c.Message
	if !c.Accepted && msg == "" {
		// Every rejected line says why, even when its outcome did not.
		msg = rejectMessage(c.Reason, o.Channel)
	}
	if c.Accepted {
		n.Lines[i].Status, n.Lines[i].Backorder = LineAccepted, c.Backorder
	} else {
		n.Lines[i].Status, n.Lines[i].Reject, n.Lines[i].Message = LineRejected, c.Reason, msg
	}
	if n.Status != OrderPending {
		// Only possible for a reserved order, which has no pending lines.
		return n, OrderEffects{}, Result{Changed: true}, nil
	}
	if !c.Accepted {
		why := fmt.Sprintf("line %d (%s): %s", i+1, l.SKU, msg)
		n, eff, _, err := finish(n, OrderRejected, RejectCancelled, why, "not reserved because the order failed: "+why)
		// Lines still pending were not refused by their SKU: they are marked
		// rejected because the order failed, as with a cancellation.
		return n, eff, Result{Changed: true}, err
	}
	if !slices.ContainsFunc(n.Lines, func(l OrderLine) bool { return l.Status != LineAccepted }) {
		n.Status = OrderReserved
	}
	return n, OrderEffects{}, Result{Changed: true}, nil
}
