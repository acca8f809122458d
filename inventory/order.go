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
//
// A reserved order ends EXPIRED once its first line's hold runs out: each
// accepted line expires at its outcome's decision time plus the order's
// reservation TTL, exactly when the SKU processor stops counting the hold
// (Reservation.ExpiresAt). The saga learns of it from an OrderTick (or a
// CancelOrder) timestamped at or after that time, which the reconciler sends
// once OrderDueAt has passed; it then releases every line (reason expired),
// so the order holds all of its lines or none. OrderAt shows the same
// answer to readers before the tick lands.
//
// ExtendOrder asks for the expiry of every line of a reserved order that
// still holds to move to a later time (never earlier); once the order
// expired it changes nothing. The saga records the requested expiry on each
// line as pending (ExtendTo) and sends it to the line's SKU, which decides
// it at its own, later, time and answers with an extension outcome. Only an
// accepted outcome moves the line's ExpiresAt (to the expiry the SKU
// confirmed), so the order never claims a hold its SKU has not granted; a
// refusal (the hold ran out at the SKU before the extension arrived) ends
// the order EXPIRED, releasing every line.
//
// A CancelOrder for an order not yet placed is remembered as a cancelled
// order without lines; the PlaceOrder that arrives later fills in its lines,
// all rejected as cancelled, and requests nothing.
//
// FulfilOrder records a shipment of a held order's units: per line a
// quantity (partial allowed) from a location. The saga decides it at its
// time: applied if every line it names still holds the units (the order is
// reserved or partially fulfilled, its hold has not run out, and no line
// ships more than it holds not shipped), refused otherwise, and keeps the
// decision under the fulfilment's id, so a repeat gets the same answer and
// ships nothing more. An applied fulfilment sends one ReservationFulfilled
// per line to the SKU, with its own fulfilment id, which the SKU applies
// once. Shipped units stay shipped whatever happens to the rest: a line
// with units left is PARTIALLY_FULFILLED and still held (it can expire,
// be cancelled or extended), one shipped in full is FULFILLED and no
// longer held; an order whose every line shipped in full is FULFILLED.

// OrderStatus is the saga's state; numbers match skuflow.v1.OrderStatus.
type OrderStatus int

// Order statuses.
const (
	OrderPending   OrderStatus = 1
	OrderReserved  OrderStatus = 2
	OrderRejected  OrderStatus = 3
	OrderCancelled OrderStatus = 4
	// OrderExpired: reserved, then a line's hold ran out; nothing is held.
	OrderExpired OrderStatus = 5
	// OrderFulfilled: every unit of every line shipped; nothing is held.
	OrderFulfilled OrderStatus = 6
	// OrderPartiallyFulfilled: some units shipped, the rest still held.
	OrderPartiallyFulfilled OrderStatus = 7
)

var orderStatusNames = map[OrderStatus]string{OrderPending: "pending", OrderReserved: "reserved", OrderRejected: "rejected",
	OrderCancelled: "cancelled", OrderExpired: "expired", OrderFulfilled: "fulfilled", OrderPartiallyFulfilled: "partially fulfilled"}

func (s OrderStatus) String() string { return statusName(orderStatusNames, s) }

// statusName names s, or gives its number if it has no name.
func statusName[S ~int](names map[S]string, s S) string {
	if n, ok := names[s]; ok {
		return n
	}
	return "status " + strconv.Itoa(int(s))
}

// LineStatus is one line's state; numbers match skuflow.v1.LineStatus.
type LineStatus int

// Line statuses.
const (
	LinePending  LineStatus = 1
	LineAccepted LineStatus = 2
	LineRejected LineStatus = 3
	LineReleased LineStatus = 4
	// LineExpired: accepted, then the order's hold ran out.
	LineExpired LineStatus = 5
	// LineFulfilled: every unit shipped; nothing held.
	LineFulfilled LineStatus = 6
	// LinePartiallyFulfilled: some units shipped, the rest held.
	LinePartiallyFulfilled LineStatus = 7
)

var lineStatusNames = map[LineStatus]string{LinePending: "pending", LineAccepted: "accepted", LineRejected: "rejected",
	LineReleased: "released", LineExpired: "expired", LineFulfilled: "fulfilled", LinePartiallyFulfilled: "partially fulfilled"}

func (s LineStatus) String() string { return statusName(lineStatusNames, s) }

// Limits on orders.
const (
	MaxOrderLines      = 100
	MaxDecisionTimeout = 10 * time.Minute
	// MaxOrderIDLength leaves room in reservation ids (MaxRefLength) for
	// the ":<line>" suffix; so does MaxFulfilmentIDLength in the ids of the
	// SKU-side fulfilments.
	MaxOrderIDLength      = MaxRefLength - 4
	MaxFulfilmentIDLength = MaxRefLength - 4
	// MaxShipmentLines bounds the lines of the fulfilments applied to one
	// order; a fulfilment beyond it is refused. MaxRefusedFulfilments
	// bounds the refused fulfilments an order remembers: the oldest is
	// forgotten first (a repeat of it is decided again).
	MaxShipmentLines      = 1000
	MaxRefusedFulfilments = 100
)

// ErrOrderConflict rejects an order id reused for a different order.
var ErrOrderConflict = errors.New("order id already used for a different order")

// ErrFulfilmentConflict rejects a fulfilment id reused for other lines.
var ErrFulfilmentConflict = errors.New("fulfilment id already used for a different fulfilment of this order")

// OrderLine is one line of an order.
type OrderLine struct {
	SKU           string
	Quantity      int64
	ReservationID string
	Status        LineStatus
	Backorder     bool
	Reject        RejectReason
	Message       string
	// ExpiresAt is when an accepted line's hold runs out (its outcome's
	// decision time plus the order's reservation TTL); zero for a line never
	// accepted. It stays set after the line is released or expires. It is
	// only ever an expiry the SKU confirmed: an extension moves it once the
	// SKU accepted it.
	ExpiresAt time.Time
	// ExtendTo is the expiry an extension asked the SKU for and the SKU has
	// not confirmed yet (later than ExpiresAt); zero when none is pending.
	// It is cleared once the SKU confirms an expiry at least as late, and
	// when the line stops being held.
	ExtendTo time.Time
	// Fulfilled is the units shipped so far; Quantity-Fulfilled is held
	// while the line is held.
	Fulfilled int64
}

// Held reports whether the line holds units: accepted, or partially
// fulfilled (what has not shipped).
func (l OrderLine) Held() bool { return l.Status == LineAccepted || l.Status == LinePartiallyFulfilled }

// ExtensionPending reports whether a held line waits for its SKU to
// confirm an extension.
func (l OrderLine) ExtensionPending() bool {
	return l.Held() && l.ExtendTo.After(l.ExpiresAt)
}

// FulfilmentLine ships Quantity units of SKU from Location (and Area).
type FulfilmentLine struct {
	SKU      string
	Quantity int64
	Location string
	Area     string
}

// Fulfilment is a shipment the saga decided: applied, or refused (Refused
// says why; nothing shipped).
type Fulfilment struct {
	ID        string
	Lines     []FulfilmentLine
	DecidedAt time.Time
	Refused   string
}

// FulfilOrder records a shipment of units the order holds.
type FulfilOrder struct {
	OrderID      string
	FulfilmentID string
	Lines        []FulfilmentLine
}

// Validate reports every problem with the command.
func (c FulfilOrder) Validate() error {
	errs := []error{validRef("order_id", c.OrderID), validRef("fulfilment_id", c.FulfilmentID)}
	if len(c.FulfilmentID) > MaxFulfilmentIDLength {
		errs = append(errs, fmt.Errorf("%w: fulfilment_id is %d bytes, longer than %d", ErrInvalidEvent, len(c.FulfilmentID), MaxFulfilmentIDLength))
	}
	if len(c.Lines) == 0 || len(c.Lines) > MaxOrderLines {
		errs = append(errs, fmt.Errorf("%w: a fulfilment has 1 to %d lines, this one %d", ErrInvalidEvent, MaxOrderLines, len(c.Lines)))
	}
	for i, l := range c.Lines {
		if err := ValidateID("sku", l.SKU); err != nil {
			errs = append(errs, fmt.Errorf("%w: line %d: %w", ErrInvalidEvent, i+1, err))
		}
		if l.Quantity < 1 || l.Quantity > MaxUnits {
			errs = append(errs, fmt.Errorf("%w: line %d: quantity %d is outside 1..%d", ErrInvalidEvent, i+1, l.Quantity, int64(MaxUnits)))
		}
		if err := errors.Join(validID("location", l.Location), checkArea(l.Area)); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// FulfilmentByID returns the fulfilment recorded under id.
func (o Order) FulfilmentByID(id string) (Fulfilment, bool) {
	i := slices.IndexFunc(o.Fulfilments, func(f Fulfilment) bool { return f.ID == id })
	if i < 0 {
		return Fulfilment{}, false
	}
	return o.Fulfilments[i], true
}

// SameFulfilment reports whether c repeats the fulfilment f (same lines in
// the same order) rather than reusing its id for another.
func (f Fulfilment) SameFulfilment(c FulfilOrder) bool { return slices.Equal(f.Lines, c.Lines) }

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
	// ShipTo is the order's ship-to region (RegionRule), or empty; every
	// line's request carries it.
	ShipTo string
	// Fulfilments are the shipments decided, applied or refused, in the
	// order they were decided.
	Fulfilments []Fulfilment
}

// holding reports whether the order is in a status that holds units:
// reserved or partially fulfilled (until its hold runs out).
func (o Order) holding() bool {
	return o.Status == OrderReserved || o.Status == OrderPartiallyFulfilled
}

// PlaceOrder starts an order.
type PlaceOrder struct {
	OrderID         string
	Channel         string
	Lines           []OrderLine // SKU and Quantity only
	ReservationTTL  time.Duration
	DecisionTimeout time.Duration
	// ShipTo is where the order ships to (RegionRule), or empty: each line
	// is then reserved without the locations that exclude the region.
	ShipTo string
}

// CancelOrder cancels an order and releases what it holds.
type CancelOrder struct{ OrderID string }

// ExtendOrder asks for every held line of the order to be held until
// ExpiresAt (the API sets it to the request time plus the new TTL).
type ExtendOrder struct {
	OrderID   string
	ExpiresAt time.Time
}

// OrderTick applies the order's deadline as of At.
type OrderTick struct {
	OrderID string
	At      time.Time
}

// OrderEffects are the messages the saga sends: reservation requests and
// releases, keyed by SKU on the demand topic.
type OrderEffects struct {
	Requests    []ReservationRequested
	Releases    []ReservationReleased
	Extensions  []ReservationExtended
	Fulfilments []ReservationFulfilled
}

// Validate reports every problem with the command.
func (c PlaceOrder) Validate() error {
	errs := []error{validRef("order_id", c.OrderID), validID("channel", c.Channel)}
	if len(c.OrderID) > MaxOrderIDLength {
		errs = append(errs, fmt.Errorf("%w: order_id is %d bytes, longer than %d", ErrInvalidEvent, len(c.OrderID), MaxOrderIDLength))
	}
	if c.ShipTo != "" {
		if err := ValidateRegion("ship_to_region", c.ShipTo); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidEvent, err))
		}
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

// SameOrder reports whether c places this order again (same channel, TTL,
// ship-to region and lines), as a retry would, rather than a different
// order under its id.
func (o Order) SameOrder(c PlaceOrder) bool {
	if o.Channel != c.Channel || o.ReservationTTL != c.ReservationTTL || o.ShipTo != c.ShipTo || len(o.Lines) != len(c.Lines) {
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

// Placed reports whether the order was placed: false for an order only
// cancelled so far (a cancel that arrived before its place).
func (o Order) Placed() bool { return len(o.Lines) > 0 }

// Holds reports whether the order holds units at t: it is reserved (or
// partially fulfilled) and no held line's hold has run out.
func (o Order) Holds(t time.Time) bool {
	due := OrderDueAt(o)
	return o.holding() && (due.IsZero() || t.Before(due))
}

// OrderDueAt is when the order next changes with time alone (zero if
// never): a pending order's decision deadline, or the earliest expiry of a
// reserved order's lines. The reconciler ticks the order once it has passed.
func OrderDueAt(o Order) time.Time {
	switch o.Status {
	case OrderPending:
		return o.DecideBy
	case OrderReserved, OrderPartiallyFulfilled:
		var due time.Time
		for _, l := range o.Lines {
			if !l.Held() {
				continue
			}
			exp := l.ExpiresAt
			if exp.IsZero() && !o.DecideBy.IsZero() {
				// A line accepted before lines recorded their expiry: its
				// hold ran out by the decision deadline plus the TTL at the
				// latest (the SKU decided it before the deadline).
				exp = o.DecideBy.Add(o.ReservationTTL)
			}
			if !exp.IsZero() && (due.IsZero() || exp.Before(due)) {
				due = exp
			}
		}
		return due
	}
	return time.Time{}
}

// OrderAt is the order as it stands at t, for readers: a reserved order
// whose hold ran out by t is shown expired, as the saga will record it at
// the next tick. The saga's own state changes only through ApplyOrder.
func OrderAt(o Order, t time.Time) Order {
	n, _, _ := expire(o, t.UTC())
	return n
}

// expire ends a reserved order whose first hold has run out at t: every
// line is released (reason expired) and marked expired.
func expire(o Order, t time.Time) (Order, OrderEffects, bool) {
	if !o.holding() || o.Holds(t) {
		return o, OrderEffects{}, false
	}
	n, eff := expireWith(o, "the reservation expired at "+OrderDueAt(o).Format(time.RFC3339Nano))
	return n, eff, true
}

// expireWith ends a reserved order EXPIRED for reason, releasing every
// held line (shipped units stay shipped).
func expireWith(o Order, reason string) (Order, OrderEffects) {
	n := o
	n.Lines = slices.Clone(o.Lines)
	n.Status, n.Reason = OrderExpired, reason
	var eff OrderEffects
	for i, l := range n.Lines {
		if l.Held() {
			n.Lines[i].Status, n.Lines[i].ExtendTo = LineExpired, time.Time{}
			eff.Releases = append(eff.Releases, releaseFor(l, ReleaseExpired))
		}
	}
	return n, eff
}

// extendOrder records c.ExpiresAt as every held line's pending extension
// (ExtendTo) if later than both its confirmed expiry and any extension
// already pending, and sends every held line's latest requested expiry to
// its SKU (again on a duplicate: the first messages may have been lost in a
// crash; the SKU side takes the later of two expiries, so the messages
// commute). ExpiresAt moves only when the SKU accepts (outcome).
func extendOrder(o Order, c ExtendOrder, t time.Time) (Order, OrderEffects, Result, error) {
	if err := errors.Join(validRef("order_id", c.OrderID), checkTime("expires_at", c.ExpiresAt)); err != nil {
		return o, OrderEffects{}, Result{}, err
	}
	if c.ExpiresAt.Sub(t) > MaxReservationTTL {
		return o, OrderEffects{}, Result{}, fmt.Errorf("%w: extension to %s is more than %s after %s", ErrInvalidEvent,
			c.ExpiresAt.Format(time.RFC3339), MaxReservationTTL, t.Format(time.RFC3339))
	}
	if n, eff, ok := expire(o, t); ok {
		return n, eff, Result{Changed: true}, nil // too late: it expired first
	}
	if !o.holding() {
		return o, OrderEffects{}, Result{}, nil // holds nothing to extend
	}
	n := o
	n.Lines = slices.Clone(o.Lines)
	changed := false
	var eff OrderEffects
	for i, l := range n.Lines {
		if !l.Held() {
			continue
		}
		if c.ExpiresAt.After(l.ExpiresAt) && c.ExpiresAt.After(l.ExtendTo) {
			n.Lines[i].ExtendTo, changed = c.ExpiresAt.UTC(), true
		}
		eff.Extensions = append(eff.Extensions, ReservationExtended{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU,
			ExpiresAt: requestedExpiry(n.Lines[i])})
	}
	if !changed {
		n = o
	}
	return n, eff, Result{Changed: changed}, nil
}

// requestedExpiry is the latest expiry asked of a held line's SKU: its
// pending extension, or its confirmed expiry when none is pending.
func requestedExpiry(l OrderLine) time.Time {
	if l.ExtendTo.After(l.ExpiresAt) {
		return l.ExtendTo
	}
	return l.ExpiresAt
}

// ApplyOrder folds a saga input (PlaceOrder, CancelOrder, ExtendOrder,
// FulfilOrder, OrderTick or an Outcome) into the order at t. found is false
// before the order exists.
func ApplyOrder(o Order, found bool, in any, t time.Time) (Order, OrderEffects, Result, error) {
	t = t.UTC()
	switch c := in.(type) {
	case PlaceOrder:
		return place(o, found, c, t)
	case CancelOrder:
		if !found {
			// Cancelled before it was placed (reordering, or a client giving
			// up on a place still in flight): remember it, so the place is
			// answered cancelled.
			if err := validRef("order_id", c.OrderID); err != nil {
				return o, OrderEffects{}, Result{}, err
			}
			return Order{ID: c.OrderID, Status: OrderCancelled, Reason: cancelledUnplaced}, OrderEffects{}, Result{Changed: true}, nil
		}
		if n, eff, ok := expire(o, t); ok {
			return n, eff, Result{Changed: true}, nil // too late to cancel: it expired first
		}
		return finish(o, OrderCancelled, RejectCancelled, "cancelled", "order was cancelled before this line was decided")
	case ExtendOrder:
		if !found {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: extension of unknown order %q", ErrInvalidEvent, c.OrderID)
		}
		return extendOrder(o, c, t)
	case FulfilOrder:
		return fulfilOrder(o, found, c, t)
	case OrderTick:
		if !found {
			return o, OrderEffects{}, Result{}, nil
		}
		if n, eff, ok := expire(o, t); ok {
			return n, eff, Result{Changed: true}, nil
		}
		if o.Final() || t.Before(o.DecideBy) {
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
	if found && !o.Placed() {
		// Cancelled before it was placed: record the order, every line
		// rejected as cancelled, and request nothing.
		if c.OrderID != o.ID {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: place of order %q applied to order %q", ErrInvalidEvent, c.OrderID, o.ID)
		}
		n := o
		n.Channel, n.PlacedAt, n.DecideBy, n.ReservationTTL, n.ShipTo = c.Channel, t, t.Add(c.DecisionTimeout), c.ReservationTTL, c.ShipTo
		for i, l := range c.Lines {
			n.Lines = append(n.Lines, OrderLine{SKU: l.SKU, Quantity: l.Quantity, ReservationID: ReservationIDFor(c.OrderID, i),
				Status: LineRejected, Reject: RejectCancelled, Message: cancelledUnplaced})
		}
		return n, OrderEffects{}, Result{Changed: true}, nil
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
		DecideBy: t.Add(c.DecisionTimeout), ReservationTTL: c.ReservationTTL, ShipTo: c.ShipTo}
	var eff OrderEffects
	for i, l := range c.Lines {
		line := OrderLine{SKU: l.SKU, Quantity: l.Quantity, ReservationID: ReservationIDFor(c.OrderID, i), Status: LinePending}
		n.Lines = append(n.Lines, line)
		eff.Requests = append(eff.Requests, requestFor(n, line))
	}
	return n, eff, Result{Changed: true}, nil
}

// cancelledUnplaced is the reason of an order cancelled before it was
// placed, and the message of each of its lines.
const cancelledUnplaced = "order was cancelled before it was placed"

func requestFor(o Order, l OrderLine) ReservationRequested {
	return ReservationRequested{ReservationID: l.ReservationID, OrderID: o.ID, SKU: l.SKU, Channel: o.Channel,
		Quantity: l.Quantity, TTL: o.ReservationTTL, ShipTo: o.ShipTo}
}

func releaseFor(l OrderLine, r ReleaseReason) ReservationReleased {
	return ReservationReleased{ReservationID: l.ReservationID, SKU: l.SKU, Reason: r}
}

// finish ends a pending or reserved order: accepted lines are released,
// undecided lines are marked with reason and message (why the line was not
// reserved, never empty) and released when their outcome comes.
func finish(o Order, status OrderStatus, reason RejectReason, why, lineMsg string) (Order, OrderEffects, Result, error) {
	if o.Status == OrderRejected || o.Status == OrderCancelled || o.Status == OrderExpired || o.Status == OrderFulfilled {
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
		case LineAccepted, LinePartiallyFulfilled:
			n.Lines[i].Status, n.Lines[i].ExtendTo = LineReleased, time.Time{}
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
	if c.Extension {
		if !o.holding() || !l.Held() {
			return o, OrderEffects{}, Result{}, nil // the order no longer holds the line
		}
		if c.Accepted {
			return confirmExtension(o, i, c.ExpiresAt)
		}
		// A refusal: the SKU's hold ran out before the extension reached
		// it, so the order no longer holds every line.
		n, eff := expireWith(o, fmt.Sprintf("line %d (%s): the hold ran out before its extension reached the sku", i+1, l.SKU))
		return n, eff, Result{Changed: true}, nil
	}
	switch {
	case l.Status == LinePending:
	case c.Accepted && !l.Held():
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
		// The SKU holds the units until its decision time plus the TTL
		// (Reservation.ExpiresAt); the saga requested exactly that TTL. An
		// acceptance without a decision time (not one the SKU processor
		// sends) sets no expiry.
		n.Lines[i].Status, n.Lines[i].Backorder = LineAccepted, c.Backorder
		if !c.DecidedAt.IsZero() {
			n.Lines[i].ExpiresAt = c.DecidedAt.UTC().Add(o.ReservationTTL)
		}
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

// confirmExtension records the expiry the SKU confirmed for held line i:
// ExpiresAt moves to it if later, and the pending extension is cleared once
// the confirmed expiry reaches it. Taking the later of two expiries makes
// duplicates and reordered outcomes end in the same state.
func confirmExtension(o Order, i int, at time.Time) (Order, OrderEffects, Result, error) {
	l, changed := o.Lines[i], false
	if at.After(l.ExpiresAt) {
		l.ExpiresAt, changed = at.UTC(), true
	}
	if !l.ExtendTo.IsZero() && !l.ExtendTo.After(l.ExpiresAt) {
		l.ExtendTo, changed = time.Time{}, true
	}
	if !changed {
		return o, OrderEffects{}, Result{}, nil
	}
	n := o
	n.Lines = slices.Clone(o.Lines)
	n.Lines[i] = l
	return n, OrderEffects{}, Result{Changed: true}, nil
}

// fulfilOrder decides the fulfilment c at t (see the package comment on
// FulfilOrder).
func fulfilOrder(o Order, found bool, c FulfilOrder, t time.Time) (Order, OrderEffects, Result, error) {
	if err := c.Validate(); err != nil {
		return o, OrderEffects{}, Result{}, err
	}
	if !found || !o.Placed() {
		return o, OrderEffects{}, Result{}, fmt.Errorf("%w: fulfilment of unknown order %q", ErrInvalidEvent, c.OrderID)
	}
	if f, ok := o.FulfilmentByID(c.FulfilmentID); ok {
		if !f.SameFulfilment(c) {
			return o, OrderEffects{}, Result{}, fmt.Errorf("%w: %q", ErrFulfilmentConflict, c.FulfilmentID)
		}
		// A repeat: send an applied fulfilment again (the first messages
		// may have been lost in a crash; the SKU applies each once).
		return o, OrderEffects{Fulfilments: fulfilmentsFor(o, f)}, Result{}, nil
	}
	n, eff, _ := expire(o, t) // a hold that ran out by t ships nothing
	n.Lines = slices.Clone(n.Lines)
	f := Fulfilment{ID: c.FulfilmentID, Lines: slices.Clone(c.Lines), DecidedAt: t}
	if f.Refused = refusal(n, c); f.Refused == "" {
		for _, fl := range c.Lines {
			i := slices.IndexFunc(n.Lines, func(l OrderLine) bool { return l.SKU == fl.SKU })
			l := &n.Lines[i]
			l.Fulfilled += fl.Quantity
			l.Status = LinePartiallyFulfilled
			if l.Fulfilled == l.Quantity {
				l.Status, l.ExtendTo = LineFulfilled, time.Time{}
			}
		}
		n.Status = OrderFulfilled
		if slices.ContainsFunc(n.Lines, func(l OrderLine) bool { return l.Status != LineFulfilled }) {
			n.Status = OrderPartiallyFulfilled
		}
		eff.Fulfilments = fulfilmentsFor(n, f)
	}
	n.Fulfilments = append(slices.Clone(n.Fulfilments), f)
	if refused := slices.IndexFunc(n.Fulfilments, func(f Fulfilment) bool { return f.Refused != "" }); refused >= 0 &&
		countFunc(n.Fulfilments, func(f Fulfilment) bool { return f.Refused != "" }) > MaxRefusedFulfilments {
		n.Fulfilments = slices.Delete(n.Fulfilments, refused, refused+1)
	}
	return n, eff, Result{Changed: true}, nil
}

func countFunc[E any](s []E, f func(E) bool) int {
	n := 0
	for _, e := range s {
		if f(e) {
			n++
		}
	}
	return n
}

// refusal says why the order cannot ship c's units, or "".
func refusal(o Order, c FulfilOrder) string {
	if !o.holding() {
		return fmt.Sprintf("order %q is %s: it holds no units to ship", o.ID, o.Status)
	}
	ships, shipments, lines := map[string]int64{}, map[string]int{}, len(c.Lines)
	for _, f := range o.Fulfilments {
		if f.Refused == "" {
			lines += len(f.Lines)
			for _, fl := range f.Lines {
				shipments[fl.SKU]++
			}
		}
	}
	if lines > MaxShipmentLines {
		return fmt.Sprintf("order %q would have %d shipment lines, more than the limit of %d", o.ID, lines, MaxShipmentLines)
	}
	for _, fl := range c.Lines {
		ships[fl.SKU] += fl.Quantity
		shipments[fl.SKU]++
	}
	for _, fl := range c.Lines {
		i := slices.IndexFunc(o.Lines, func(l OrderLine) bool { return l.SKU == fl.SKU })
		if i < 0 {
			return fmt.Sprintf("sku %q is not a line of order %q", fl.SKU, o.ID)
		}
		l := o.Lines[i]
		switch left := l.Quantity - l.Fulfilled; {
		case !l.Held():
			return fmt.Sprintf("line %d (%s) is %s: it holds no units to ship", i+1, l.SKU, l.Status)
		case ships[fl.SKU] > left:
			return fmt.Sprintf("line %d (%s) holds %d units not shipped, the fulfilment ships %d", i+1, l.SKU, left, ships[fl.SKU])
		case shipments[fl.SKU] > MaxFulfilments:
			return fmt.Sprintf("line %d (%s) would have %d shipments, more than the limit of %d", i+1, l.SKU, shipments[fl.SKU], MaxFulfilments)
		}
	}
	return ""
}

// fulfilmentsFor is what an applied fulfilment sends: one
// ReservationFulfilled per line, each with its own SKU-side fulfilment id
// ("<fulfilment id>:<line>"), so two lines of one SKU ship from two
// locations.
func fulfilmentsFor(o Order, f Fulfilment) []ReservationFulfilled {
	if f.Refused != "" {
		return nil
	}
	out := make([]ReservationFulfilled, 0, len(f.Lines))
	for k, fl := range f.Lines {
		i := slices.IndexFunc(o.Lines, func(l OrderLine) bool { return l.SKU == fl.SKU })
		out = append(out, ReservationFulfilled{ReservationID: o.Lines[i].ReservationID, SKU: fl.SKU, Location: fl.Location,
			Area: fl.Area, FulfilledAt: f.DecidedAt, FulfilmentID: f.ID + ":" + strconv.Itoa(k+1), Quantity: fl.Quantity})
	}
	return out
}
