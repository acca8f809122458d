package inventory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Demand: reservations held by carts in checkout, decided by the SKU's
// processor one at a time, so of N carts racing for the last k units exactly
// k win.

// ReservationStatus is where a reservation is in its lifecycle.
type ReservationStatus int

// Reservation statuses; the numbers are stored in the table.
const (
	StatusHeld      ReservationStatus = 1
	StatusReleased  ReservationStatus = 2
	StatusFulfilled ReservationStatus = 3
	StatusRejected  ReservationStatus = 4
)

// RejectReason says why a reservation was not accepted; the numbers match
// skuflow.v1.RejectReason.
type RejectReason int

// Reject reasons.
const (
	RejectInsufficient RejectReason = 1
	RejectNotSellable  RejectReason = 2
	RejectCapExceeded  RejectReason = 3
	// RejectReleased: a release for the id arrived before its request.
	RejectReleased RejectReason = 4
	// RejectTimeout and RejectCancelled are set by the order saga on lines
	// that were not decided before the order ended.
	RejectTimeout   RejectReason = 5
	RejectCancelled RejectReason = 6
)

// ReleaseReason says why units were given back; numbers match
// skuflow.v1.ReleaseReason.
type ReleaseReason int

// Release reasons.
const (
	ReleaseCancelled   ReleaseReason = 1
	ReleaseExpired     ReleaseReason = 2
	ReleaseCompensated ReleaseReason = 3
)

// Limits on demand.
const (
	MaxReservationTTL = 30 * 24 * time.Hour
	// ClosedRetention is how long a closed reservation is remembered, so a
	// duplicate request still gets its original outcome.
	ClosedRetention = 7 * 24 * time.Hour
	MaxRefLength    = 128
	// MaxRejected is the most rejected reservations a SKU remembers:
	// requests it refused, and releases that arrived before their request
	// (see boundRejected). None of them ever held units.
	MaxRejected = 32
)

// ValidateRef checks a reservation or order id: 1 to 128 characters of
// A-Z a-z 0-9 . _ - :
func ValidateRef(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", kind)
	case len(id) > MaxRefLength:
		return fmt.Errorf("%s is %d bytes, longer than %d", kind, len(id), MaxRefLength)
	case !idChars(id, ":"):
		return fmt.Errorf("%s %q has characters outside A-Z a-z 0-9 . _ - :", kind, id)
	}
	return nil
}

func validRef(kind, id string) error {
	if err := ValidateRef(kind, id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

// ReservationRequested asks to hold Quantity units on Channel for TTL.
type ReservationRequested struct {
	ReservationID string
	OrderID       string
	SKU           string
	Channel       string
	Quantity      int64
	TTL           time.Duration
	// ShipTo is the order's ship-to region (RegionRule), or empty: the
	// request is decided without the locations whose policy excludes it.
	ShipTo string
}

// ReservationReleased gives a reservation's units back.
type ReservationReleased struct {
	ReservationID string
	SKU           string
	Reason        ReleaseReason
}

// ReservationFulfilled says units of the reservation shipped from Location
// at FulfilledAt. It consumes the stock there exactly once, as an adjustment
// of -Quantity: an absolute level with as_of at or after FulfilledAt already
// reflects the shipment and supersedes it, one before does not.
//
// A fulfilment with a FulfilmentID ships Quantity units (partial allowed;
// never more than the reservation has not shipped yet), once per
// FulfilmentID: the adjustment's event id is "fulfil:<reservation
// id>:<fulfilment id>", and the reservation remembers the ids it applied,
// so a redelivered fulfilment changes nothing. The rest stays held. One
// without a FulfilmentID (and Quantity 0) ships every unit not shipped yet,
// as fulfilments did before they had ids ("fulfil:<reservation id>").
type ReservationFulfilled struct {
	ReservationID string
	SKU           string
	Location      string
	Area          string
	FulfilledAt   time.Time
	FulfilmentID  string
	Quantity      int64
}

// ReservationExtended moves a held reservation's expiry to ExpiresAt, never
// earlier: the order saga sends one per line of an order it extends. The
// SKU processor answers it with an Outcome marked Extension: accepted (with
// the reservation's expiry) if the reservation still held its units at the
// message time, refused otherwise (it expired or was released first), so
// the saga learns that its order no longer holds every line.
type ReservationExtended struct {
	ReservationID string
	OrderID       string
	SKU           string
	ExpiresAt     time.Time
}

func (ReservationRequested) isEvent() {}
func (ReservationReleased) isEvent()  {}
func (ReservationFulfilled) isEvent() {}
func (ReservationExtended) isEvent()  {}

func (e ReservationRequested) EventSKU() string { return e.SKU }
func (e ReservationReleased) EventSKU() string  { return e.SKU }
func (e ReservationFulfilled) EventSKU() string { return e.SKU }
func (e ReservationExtended) EventSKU() string  { return e.SKU }

// Validate implements Event.
func (e ReservationExtended) Validate() error {
	return errors.Join(validRef("reservation_id", e.ReservationID), validRef("order_id", e.OrderID), validID("sku", e.SKU),
		checkTime("expires_at", e.ExpiresAt))
}

// Validate implements Event.
func (e ReservationRequested) Validate() error {
	errs := []error{validRef("reservation_id", e.ReservationID), validRef("order_id", e.OrderID),
		validID("sku", e.SKU), validID("channel", e.Channel)}
	if e.Quantity < 1 || e.Quantity > MaxUnits {
		errs = append(errs, fmt.Errorf("%w: quantity %d is outside 1..%d", ErrInvalidEvent, e.Quantity, int64(MaxUnits)))
	}
	if e.TTL <= 0 || e.TTL > MaxReservationTTL {
		errs = append(errs, fmt.Errorf("%w: ttl %s is outside (0, %s]", ErrInvalidEvent, e.TTL, MaxReservationTTL))
	}
	if e.ShipTo != "" {
		if err := ValidateRegion("ship_to_region", e.ShipTo); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidEvent, err))
		}
	}
	return errors.Join(errs...)
}

// Validate implements Event.
func (e ReservationReleased) Validate() error {
	errs := []error{validRef("reservation_id", e.ReservationID), validID("sku", e.SKU)}
	if e.Reason < ReleaseCancelled || e.Reason > ReleaseCompensated {
		errs = append(errs, fmt.Errorf("%w: release reason %d is not cancelled, expired or compensated", ErrInvalidEvent, int(e.Reason)))
	}
	return errors.Join(errs...)
}

// Validate implements Event.
func (e ReservationFulfilled) Validate() error {
	errs := []error{validRef("reservation_id", e.ReservationID), validID("sku", e.SKU),
		validID("location", e.Location), checkArea(e.Area), checkTime("fulfilled_at", e.FulfilledAt)}
	switch {
	case e.FulfilmentID == "" && e.Quantity != 0:
		errs = append(errs, fmt.Errorf("%w: a fulfilment of %d units needs a fulfilment_id", ErrInvalidEvent, e.Quantity))
	case e.FulfilmentID != "":
		errs = append(errs, validRef("fulfilment_id", e.FulfilmentID))
		if e.Quantity < 1 || e.Quantity > MaxUnits {
			errs = append(errs, fmt.Errorf("%w: fulfilment quantity %d is outside 1..%d", ErrInvalidEvent, e.Quantity, int64(MaxUnits)))
		}
	}
	return errors.Join(errs...)
}

// Reservation is a decided request: held, or closed (released, fulfilled,
// rejected) and remembered for ClosedRetention.
type Reservation struct {
	ID        string
	OrderID   string
	Channel   string
	Quantity  int64
	Status    ReservationStatus
	Backorder bool
	Reject    RejectReason
	Release   ReleaseReason
	DecidedAt time.Time
	ExpiresAt time.Time
	ClosedAt  time.Time
	// Fulfilled is the units shipped so far (see FulfilledUnits).
	Fulfilled int64
	// Fulfilments are the ids of the fulfilments applied, sorted: a
	// redelivered one changes nothing.
	Fulfilments []string
}

// MaxFulfilments bounds the fulfilments applied to one reservation (and
// recorded on one order).
const MaxFulfilments = 100

// holds reports whether r holds units at now.
func (r Reservation) holds(now time.Time) bool {
	return r.Status == StatusHeld && now.Before(r.ExpiresAt)
}

// FulfilledUnits is the units of r that shipped: all of them once it is
// fulfilled (a reservation fulfilled before fulfilments were counted
// records none), otherwise what its partial fulfilments shipped.
func (r Reservation) FulfilledUnits() int64 {
	if r.Status == StatusFulfilled {
		return r.Quantity
	}
	return r.Fulfilled
}

// heldUnits is the units r holds while it holds: those not shipped yet.
func (r Reservation) heldUnits() int64 { return r.Quantity - r.FulfilledUnits() }

// CapUsage carries the sales-cap units of fulfilled reservations that are
// no longer listed individually: when prune forgets a fulfilled reservation
// decided within its channel's cap window, its units are added here, under
// the window's start, so they keep counting until that window ends (or
// another window replaces it). Held and fulfilled reservations still listed
// are counted from State.Reservations directly (see capUsed).
type CapUsage struct {
	Channel     string
	WindowStart time.Time
	Used        int64
}

// StateFormat is the version of a State's stored form: 1 since
// reservations count their shipped units (Reservation.Fulfilled). Format 0
// is every state stored before; UpgradeState converts it.
const StateFormat = 1

// UpgradeState brings a state stored in an older format to StateFormat,
// so that it encodes as a replay under the current rules would.
//
// From format 0, a fulfilled reservation that records no shipped units
// shipped all of them. Its CapUsage is kept as it is: format 0 covers two
// meanings of it (every unit accepted in the window, before caps counted
// sales; the shipped units of forgotten reservations, since), which cannot
// be told apart, and keeping it can only count more units against the cap
// than were sold, never fewer, until its window ends or the cap changes.
func UpgradeState(s State, format int) State {
	if format >= StateFormat {
		return s
	}
	legacy := func(r Reservation) bool { return r.Status == StatusFulfilled && r.Fulfilled == 0 }
	if !slices.ContainsFunc(s.Reservations, legacy) {
		return s
	}
	out := s
	out.Reservations = slices.Clone(s.Reservations)
	for i, r := range out.Reservations {
		if legacy(r) {
			out.Reservations[i].Fulfilled = r.Quantity
		}
	}
	return out
}

// Outcome is the decision on a reservation request; a duplicate request
// yields the same Outcome again.
type Outcome struct {
	ReservationID string
	OrderID       string
	SKU           string
	Quantity      int64
	Accepted      bool
	Backorder     bool
	Reason        RejectReason
	Message       string
	DecidedAt     time.Time
	// Extension marks the answer to a ReservationExtended; ExpiresAt is then
	// the reservation's expiry if it was accepted.
	Extension bool
	ExpiresAt time.Time
}

// OutcomeOf describes a decided reservation.
func OutcomeOf(sku string, r Reservation) Outcome {
	o := Outcome{ReservationID: r.ID, OrderID: r.OrderID, SKU: sku, Quantity: r.Quantity, DecidedAt: r.DecidedAt}
	if r.Status == StatusRejected {
		o.Reason, o.Message = r.Reject, rejectMessage(r.Reject, r.Channel)
		return o
	}
	o.Accepted, o.Backorder = true, r.Backorder
	return o
}

func rejectMessage(r RejectReason, channel string) string {
	switch r {
	case RejectInsufficient:
		return "not enough units available on " + channel
	case RejectNotSellable:
		return "sku may not be sold on " + channel
	case RejectCapExceeded:
		return "sales cap on " + channel + " does not allow that many units"
	case RejectReleased:
		return "reservation was released before it was decided"
	case RejectTimeout:
		return "no decision before the order's deadline"
	case RejectCancelled:
		return "order ended before this line was decided"
	}
	return fmt.Sprintf("rejected (reason code %d)", int(r))
}

// Known reports whether skuflow has seen anything about the SKU that makes
// it exist: supply (a stock level or adjustment at some location) or a SKU
// policy (channel eligibility, sales cap, backorder limit, safety-stock
// override). Reservations alone do not: a request for a SKU that is not
// known is rejected without creating it (see Demand).
func (s State) Known() bool {
	return len(s.Locations) > 0 || len(s.ChannelRules) > 0 || len(s.SalesCaps) > 0 ||
		len(s.SafetyOverrides) > 0 || !s.Backorder.AsOf.IsZero()
}

// unknownSKUOutcome is the answer to a request for a SKU that is not known:
// rejected as insufficient. Nothing is recorded, so the outcome carries no
// decision time and every copy of the request gets exactly this outcome.
func unknownSKUOutcome(e ReservationRequested) Outcome {
	return Outcome{ReservationID: e.ReservationID, OrderID: e.OrderID, SKU: e.SKU, Quantity: e.Quantity,
		Reason: RejectInsufficient, Message: fmt.Sprintf("sku %q is not known: no stock and no policy was ever received for it", e.SKU)}
}

// ErrUnknownChannel rejects a request for a channel that is not configured.
var ErrUnknownChannel = errors.New("channel is not configured")

// Demand applies a demand event (request, release, fulfilment or
// extension) at t,
// deciding requests against the SKU's availability under p for the
// request's ship-to region (its ShipTo stands for p.ShipTo). Reservations due
// at t are expired first. It returns the outcome for a request (also for a
// duplicate, which changes nothing) and for an extension, nil otherwise.
//
// Demand never creates a SKU: for a state that is not Known, a request is
// rejected (RejectInsufficient, "sku … is not known") and a release changes
// nothing, both with Result.Changed false and the state returned as given,
// so the processor writes no table entry and publishes no answer. The
// rejection is not recorded (there is no state to record it in), so a
// duplicate is answered again from the same facts: the same outcome, with
// no DecidedAt, as long as the SKU stays unknown. Should the SKU become
// known before a duplicate arrives, the duplicate is decided afresh; the
// order saga releases an acceptance that arrives after its line ended.
func Demand(s State, ev Event, p Policies, t time.Time) (State, *Outcome, Result, error) {
	if ev == nil {
		return s, nil, Result{}, fmt.Errorf("%w: no event", ErrInvalidEvent)
	}
	if err := ev.Validate(); err != nil {
		return s, nil, Result{}, err
	}
	if s.SKU != "" && s.SKU != ev.EventSKU() {
		return s, nil, Result{}, fmt.Errorf("%w: event for sku %q applied to state of sku %q", ErrInvalidEvent, ev.EventSKU(), s.SKU)
	}
	t = t.UTC()
	switch e := ev.(type) {
	case ReservationRequested:
		next, out, res, err := request(s, e, p, t)
		if res.Changed {
			next = boundRejected(next)
		}
		return next, out, res, err
	case ReservationReleased:
		next, res := release(s, e.SKU, e.ReservationID, e.Reason, t)
		if res.Changed {
			next = boundRejected(next)
		}
		return next, nil, res, nil
	case ReservationFulfilled:
		next, res, err := fulfil(s, e, t)
		return next, nil, res, err
	case ReservationExtended:
		next, out, res := extend(s, e, t)
		return next, &out, res, nil
	}
	return s, nil, Result{}, fmt.Errorf("%w: %T is not a demand event", ErrInvalidEvent, ev)
}

func findReservation(rs []Reservation, id string) (int, bool) {
	return slices.BinarySearchFunc(rs, id, func(r Reservation, id string) int { return strings.Compare(r.ID, id) })
}

// withReservation returns a copy of s with r stored (replacing or inserting).
func withReservation(s State, sku string, r Reservation) State {
	out := s
	out.SKU = sku
	out.Reservations = slices.Clone(s.Reservations)
	i, found := findReservation(out.Reservations, r.ID)
	if found {
		out.Reservations[i] = r
	} else {
		out.Reservations = slices.Insert(out.Reservations, i, r)
	}
	return out
}

func request(s State, e ReservationRequested, p Policies, t time.Time) (State, *Outcome, Result, error) {
	if i, found := findReservation(s.Reservations, e.ReservationID); found {
		r := s.Reservations[i]
		if r.OrderID == "" {
			// Released before it was requested: the request is rejected, and
			// its outcome must reach its order like any other.
			r.OrderID, r.Channel, r.Quantity = e.OrderID, e.Channel, e.Quantity
			o := OutcomeOf(e.SKU, r)
			return withReservation(s, e.SKU, r), &o, Result{Changed: true}, nil
		}
		o := OutcomeOf(e.SKU, r)
		return s, &o, Result{}, nil
	}
	if !slices.Contains(p.Channels, e.Channel) {
		return s, nil, Result{}, fmt.Errorf("%w: %w: %q", ErrInvalidEvent, ErrUnknownChannel, e.Channel)
	}
	if !s.Known() {
		o := unknownSKUOutcome(e)
		return s, &o, Result{}, nil
	}
	s, _ = Expire(s, t)
	s = prune(s, t)
	// Decided for the request's ship-to region: locations that may not ship
	// there count for nothing. p is a copy, so the answer the processor
	// publishes stays region-less; replays agree because the region is in
	// the event.
	p.ShipTo = e.ShipTo
	snap := Evaluate(s, p, t)
	var ch ChannelSnapshot
	for _, c := range snap.Channels {
		if c.Channel == e.Channel {
			ch = c
		}
	}
	r := Reservation{ID: e.ReservationID, OrderID: e.OrderID, Channel: e.Channel, Quantity: e.Quantity, DecidedAt: t}
	switch {
	case !ch.Sellable:
		r.Status, r.Reject = StatusRejected, RejectNotSellable
	case ch.HasCap && e.Quantity > ch.CapRemaining:
		r.Status, r.Reject = StatusRejected, RejectCapExceeded
	case e.Quantity <= ch.Available:
		r.Status = StatusHeld
	case e.Quantity <= ch.Backorderable:
		r.Status, r.Backorder = StatusHeld, true
	default:
		r.Status, r.Reject = StatusRejected, RejectInsufficient
	}
	if r.Status == StatusHeld {
		r.ExpiresAt = t.Add(e.TTL)
	} else {
		r.ClosedAt = t
	}
	next := withReservation(s, e.SKU, r)
	o := OutcomeOf(e.SKU, r)
	return next, &o, Result{Changed: true}, nil
}

// Sales caps count sales, not attempts. Within a cap window
// [WindowStart, WindowEnd), the units that use the channel's cap are those
// of its reservations decided in the window that are
//
//   - held and not expired at the time of the question (those not shipped
//     yet), or
//   - shipped (fulfilled, in full or in part; listed, or forgotten by prune
//     and kept in CapUsage).
//
// Rejected requests never use it; a release, expiry, cancellation or saga
// compensation gives a held reservation's units back, because the
// reservation stops being held. The count is derived from the reservations
// every time, so a duplicate release cannot give units back twice and the
// state stays a pure fold of the events. A fulfilment after the hold was
// released or expired still counts (the units were sold), and may then take
// the channel beyond its limit; acceptances never do.

// decidedIn reports whether r was decided on c's channel within c's window.
func decidedIn(r Reservation, c SalesCapRule) bool {
	return r.Channel == c.Channel && !r.DecidedAt.Before(c.WindowStart) && r.DecidedAt.Before(c.WindowEnd)
}

// capUnits is the units of r that use the cap c at now.
func capUnits(r Reservation, c SalesCapRule, now time.Time) int64 {
	if !decidedIn(r, c) {
		return 0
	}
	if r.holds(now) {
		return r.Quantity
	}
	return r.FulfilledUnits()
}

// capUsed is the units using the cap c at now: the listed reservations
// that count, plus fulfilled ones already forgotten in c's window.
func capUsed(s State, c SalesCapRule, now time.Time) int64 {
	var used int64
	for _, u := range s.CapUsage {
		if u.Channel == c.Channel && u.WindowStart.Equal(c.WindowStart) {
			used = u.Used
		}
	}
	for _, r := range s.Reservations {
		used = min(used+capUnits(r, c, now), MaxUnits)
	}
	return used
}

// keepCapUsage records in CapUsage the shipped units of a reservation
// that prune forgets, if its channel's cap (not cleared) has a window
// containing its decision: a usage kept for another window start is
// replaced, since only the cap's current window is ever counted.
func keepCapUsage(s State, r Reservation) State {
	i, found := slices.BinarySearchFunc(s.SalesCaps, r.Channel, func(c SalesCapRule, ch string) int { return strings.Compare(c.Channel, ch) })
	units := r.FulfilledUnits()
	if !found || units == 0 {
		return s
	}
	c := s.SalesCaps[i]
	if c.Cleared || !decidedIn(r, c) {
		return s
	}
	out := s
	out.CapUsage = slices.Clone(s.CapUsage)
	j, found := slices.BinarySearchFunc(out.CapUsage, r.Channel, func(u CapUsage, ch string) int { return strings.Compare(u.Channel, ch) })
	switch {
	case !found:
		out.CapUsage = slices.Insert(out.CapUsage, j, CapUsage{Channel: r.Channel, WindowStart: c.WindowStart, Used: units})
	case !out.CapUsage[j].WindowStart.Equal(c.WindowStart):
		out.CapUsage[j] = CapUsage{Channel: r.Channel, WindowStart: c.WindowStart, Used: units}
	default:
		out.CapUsage[j].Used = min(out.CapUsage[j].Used+units, MaxUnits)
	}
	return out
}

func release(s State, sku, id string, reason ReleaseReason, t time.Time) (State, Result) {
	i, found := findReservation(s.Reservations, id)
	if !found && !s.Known() {
		// Nothing was ever held for a SKU skuflow does not know, and a
		// request for it is rejected anyway: record nothing, so a release
		// never creates a SKU.
		return s, Result{}
	}
	if !found {
		// Released before it was requested (reordering, or a compensation
		// racing the request): remember it, so the request is rejected.
		return withReservation(s, sku, Reservation{ID: id, Status: StatusRejected, Reject: RejectReleased,
			Release: reason, DecidedAt: t, ClosedAt: t}), Result{Changed: true}
	}
	r := s.Reservations[i]
	if r.Status != StatusHeld {
		return s, Result{}
	}
	r.Status, r.Release, r.ClosedAt = StatusReleased, reason, t
	return withReservation(s, sku, r), Result{Changed: true}
}

func fulfil(s State, e ReservationFulfilled, t time.Time) (State, Result, error) {
	i, found := findReservation(s.Reservations, e.ReservationID)
	if !found || s.Reservations[i].Quantity == 0 {
		return s, Result{}, fmt.Errorf("%w: fulfilment of unknown reservation %q", ErrInvalidEvent, e.ReservationID)
	}
	r := s.Reservations[i]
	if r.Status == StatusRejected {
		return s, Result{}, fmt.Errorf("%w: fulfilment of reservation %q, which was rejected", ErrInvalidEvent, e.ReservationID)
	}
	if _, known := findLocation(s.Locations, e.Location, e.Area); !known {
		// A shipment from where the SKU has no stock would record stock
		// that is not there (a location floored at zero) while the units
		// stop being held: refuse it.
		return s, Result{}, fmt.Errorf("%w: fulfilment of reservation %q from location %q%s, where sku %q has no stock record",
			ErrInvalidEvent, e.ReservationID, e.Location, areaSuffix(e.Area), e.SKU)
	}
	left := r.Quantity - r.FulfilledUnits()
	units, eventID := left, "fulfil:"+e.ReservationID
	if e.FulfilmentID != "" {
		if _, seen := slices.BinarySearch(r.Fulfilments, e.FulfilmentID); seen {
			return s, Result{}, nil // applied once already: a duplicate
		}
		if e.Quantity > left {
			return s, Result{}, fmt.Errorf("%w: fulfilment %q ships %d units of reservation %q, which has %d not shipped",
				ErrInvalidEvent, e.FulfilmentID, e.Quantity, e.ReservationID, left)
		}
		if len(r.Fulfilments) >= MaxFulfilments {
			return s, Result{}, fmt.Errorf("%w: reservation %q already has %d fulfilments, the limit", ErrInvalidEvent, e.ReservationID, MaxFulfilments)
		}
		units, eventID = e.Quantity, eventID+":"+e.FulfilmentID
	}
	if units == 0 {
		return s, Result{}, nil // shipped in full already: a duplicate
	}
	// The units left the location whatever happened to the hold (it may
	// have expired or been released meanwhile): consume them once.
	next, _, err := applyAdjustment(s, StockAdjustment{EventID: eventID, SKU: e.SKU,
		Location: e.Location, Area: e.Area, Delta: -units, OccurredAt: e.FulfilledAt})
	if err != nil {
		return s, Result{}, err
	}
	r.Fulfilled = r.FulfilledUnits() + units
	if e.FulfilmentID != "" {
		r.Fulfilments = slices.Clone(r.Fulfilments)
		k, _ := slices.BinarySearch(r.Fulfilments, e.FulfilmentID)
		r.Fulfilments = slices.Insert(r.Fulfilments, k, e.FulfilmentID)
	}
	if r.Fulfilled == r.Quantity {
		// Shipped in full: fulfilled, even after its hold ran out or was
		// released meanwhile.
		r.Status, r.ClosedAt = StatusFulfilled, t
	}
	return withReservation(next, e.SKU, r), Result{Changed: true}, nil
}

// extend moves a held reservation's expiry to e.ExpiresAt. An extension
// already in effect (the reservation is held until e.ExpiresAt or later) is
// accepted and changes nothing, at any time, so a duplicate gets the same
// answer. A later expiry is set only if the reservation holds its units at
// t; one that does not (not known, never requested, rejected, released,
// fulfilled, or past its expiry) is refused and nothing changes, so a hold
// never comes back once it ran out.
func extend(s State, e ReservationExtended, t time.Time) (State, Outcome, Result) {
	out := Outcome{ReservationID: e.ReservationID, OrderID: e.OrderID, SKU: e.SKU, Extension: true, Reason: RejectReleased,
		Message: "reservation no longer held its units when its extension arrived"}
	i, found := findReservation(s.Reservations, e.ReservationID)
	if found {
		out.Quantity = s.Reservations[i].Quantity
	}
	if !found || s.Reservations[i].Status != StatusHeld {
		return s, out, Result{}
	}
	r := s.Reservations[i]
	changed := e.ExpiresAt.After(r.ExpiresAt)
	if changed && !r.holds(t) {
		return s, out, Result{}
	}
	if changed {
		r.ExpiresAt = e.ExpiresAt.UTC()
		s = withReservation(s, e.SKU, r)
	}
	out = OutcomeOf(e.SKU, r)
	out.Extension, out.ExpiresAt = true, r.ExpiresAt
	return s, out, Result{Changed: changed}
}

// Expire releases every held reservation whose TTL has run out at t.
func Expire(s State, t time.Time) (State, Result) {
	var out *State
	for i, r := range s.Reservations {
		if r.Status != StatusHeld || t.Before(r.ExpiresAt) {
			continue
		}
		if out == nil {
			c := s
			c.Reservations = slices.Clone(s.Reservations)
			out = &c
		}
		r.Status, r.Release, r.ClosedAt = StatusReleased, ReleaseExpired, t
		out.Reservations[i] = r
	}
	if out == nil {
		return s, Result{}
	}
	return *out, Result{Changed: true}
}

// boundRejected forgets the oldest rejected reservations, by (ClosedAt,
// ID), beyond MaxRejected, so that a flood of requests that are refused
// (or of releases of reservations never requested) cannot grow a SKU's
// state. A rejected reservation never held units, uses no sales cap and
// cannot be fulfilled, so forgetting it changes no count: a redelivered
// request it answered is decided anew (the order saga releases an
// acceptance that arrives after its line ended), a redelivered release
// is remembered again, a fulfilment or extension of it is refused as
// before. Reservations that held units (held, released, fulfilled) are
// never forgotten here, only by prune after ClosedRetention.
func boundRejected(s State) State {
	n := 0
	for _, r := range s.Reservations {
		if r.Status == StatusRejected {
			n++
		}
	}
	if n <= MaxRejected {
		return s
	}
	rejected := make([]Reservation, 0, n)
	for _, r := range s.Reservations {
		if r.Status == StatusRejected {
			rejected = append(rejected, r)
		}
	}
	slices.SortFunc(rejected, func(a, b Reservation) int {
		if c := a.ClosedAt.Compare(b.ClosedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	gone := make(map[string]bool, n-MaxRejected)
	for _, r := range rejected[:n-MaxRejected] {
		gone[r.ID] = true
	}
	out := s
	out.Reservations = slices.DeleteFunc(slices.Clone(s.Reservations), func(r Reservation) bool {
		return r.Status == StatusRejected && gone[r.ID]
	})
	return out
}

// prune forgets reservations closed more than ClosedRetention before t. A
// forgotten reservation's shipped units stay counted against its channel's
// cap window, in CapUsage.
func prune(s State, t time.Time) State {
	cut := t.Add(-ClosedRetention)
	keep := slices.IndexFunc(s.Reservations, func(r Reservation) bool {
		return r.Status != StatusHeld && r.ClosedAt.Before(cut)
	})
	if keep < 0 {
		return s
	}
	out := s
	for _, r := range s.Reservations {
		if r.Status != StatusHeld && r.ClosedAt.Before(cut) {
			out = keepCapUsage(out, r)
		}
	}
	out.Reservations = slices.DeleteFunc(slices.Clone(s.Reservations), func(r Reservation) bool {
		return r.Status != StatusHeld && r.ClosedAt.Before(cut)
	})
	return out
}

// DueAt is the earliest time a held reservation expires (zero if none): the
// reconciler ticks the SKU once it has passed, so expiry changes the state
// within seconds even with no other traffic.
func DueAt(s State) time.Time {
	var due time.Time
	for _, r := range s.Reservations {
		if r.Status == StatusHeld && (due.IsZero() || r.ExpiresAt.Before(due)) {
			due = r.ExpiresAt
		}
	}
	return due
}

// areaSuffix names an area in a message about a location.
func areaSuffix(area string) string {
	if area == "" {
		return ""
	}
	return " (area " + area + ")"
}
