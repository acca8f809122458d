package inventory

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// State is everything known about one SKU. Locations are sorted by (ID,
// Area), each location's Adjustments by EventID and every policy list by its
// subject, so equal states encode to equal bytes. A State is a value: Apply
// never modifies the one it is given.
type State struct {
	SKU       string
	Locations []Location
	// SKU-level policies (see policy.go).
	ChannelRules    []ChannelRule
	SalesCaps       []SalesCapRule
	Backorder       BackorderRule
	SafetyOverrides []SafetyOverrideRule
	// Demand (see reservation.go): reservations sorted by ID, and the cap
	// units of fulfilled reservations no longer listed (a cap counts held
	// and fulfilled reservations; see CapUsage).
	Reservations []Reservation
	CapUsage     []CapUsage
}

// Location is the stock of the SKU at one area of one location.
type Location struct {
	ID string
	// Area is "" for the whole location, or AreaFloor / AreaBackroom.
	Area string
	// HasLevel is true once an absolute StockLevel was seen.
	HasLevel   bool
	Level      int64
	LevelAsOf  time.Time
	LevelSeq   uint64
	Adjustment []Adjustment // after LevelAsOf, sorted by EventID
}

// Adjustment is an applied StockAdjustment, kept for deduplication until a
// newer level covers it.
type Adjustment struct {
	EventID    string
	Delta      int64
	OccurredAt time.Time
}

// Result says what Apply did.
type Result struct {
	// Changed is false when the event was a duplicate or already covered by
	// newer data; the state returned is then the one given.
	Changed bool
}

// OnHand is the location's units: the level plus later adjustments, floored
// at 0 and capped at MaxUnits. The bounds are applied when reading, never to
// stored values, so they cannot make the result depend on arrival order.
func (l Location) OnHand() int64 {
	n := l.Level
	for _, a := range l.Adjustment {
		n = addSaturating(n, a.Delta)
	}
	return min(max(0, n), MaxUnits)
}

// addSaturating adds without wrapping around. Each term is within ±MaxUnits,
// so it only saturates after millions of adjustments to one location.
func addSaturating(n, d int64) int64 {
	switch {
	case d > 0 && n > math.MaxInt64-d:
		return math.MaxInt64
	case d < 0 && n < math.MinInt64-d:
		return math.MinInt64
	}
	return n + d
}

// Apply folds one event into a SKU's state. eventTime is the message's
// timestamp; the stock rules use the events' own source times.
//
// It returns an error wrapping ErrInvalidEvent for a malformed event, or
// ErrConflictingDuplicate for a reused event id with different content; the
// state is then returned unchanged and the caller dead-letters the event.
func Apply(s State, ev Event, eventTime time.Time) (State, Result, error) {
	if ev == nil {
		return s, Result{}, fmt.Errorf("%w: no event", ErrInvalidEvent)
	}
	if err := ev.Validate(); err != nil {
		return s, Result{}, err
	}
	if s.SKU != "" && s.SKU != ev.EventSKU() {
		return s, Result{}, fmt.Errorf("%w: event for sku %q applied to state of sku %q", ErrInvalidEvent, ev.EventSKU(), s.SKU)
	}
	switch e := ev.(type) {
	case StockLevel:
		return applyLevel(s, e)
	case StockAdjustment:
		return applyAdjustment(s, e)
	case ChannelEligibility:
		return applyChannelEligibility(s, e)
	case SalesCap:
		return applySalesCap(s, e)
	case BackorderLimit:
		return applyBackorderLimit(s, e)
	case SafetyStockOverride:
		return applySafetyOverride(s, e)
	default:
		return s, Result{}, fmt.Errorf("%w: unknown event type %T", ErrInvalidEvent, ev)
	}
}

// levelWins reports whether level (asOf, seq, onHand) beats the location's.
func levelWins(l Location, e StockLevel) bool {
	if !l.HasLevel {
		return true
	}
	if c := e.AsOf.Compare(l.LevelAsOf); c != 0 {
		return c > 0
	}
	if e.Sequence != l.LevelSeq {
		return e.Sequence > l.LevelSeq
	}
	return e.OnHand > l.Level
}

func applyLevel(s State, e StockLevel) (State, Result, error) {
	i, found := findLocation(s.Locations, e.Location, e.Area)
	var loc Location
	if found {
		loc = s.Locations[i]
	} else {
		loc = Location{ID: e.Location, Area: e.Area}
	}
	if !levelWins(loc, e) {
		return s, Result{}, nil
	}
	asOf := e.AsOf.UTC()
	kept := make([]Adjustment, 0, len(loc.Adjustment))
	for _, a := range loc.Adjustment {
		if a.OccurredAt.After(asOf) {
			kept = append(kept, a)
		}
	}
	loc.HasLevel, loc.Level, loc.LevelAsOf, loc.LevelSeq = true, e.OnHand, asOf, e.Sequence
	loc.Adjustment = nilIfEmpty(kept)
	return withLocation(s, e.SKU, i, found, loc), Result{Changed: true}, nil
}

func applyAdjustment(s State, e StockAdjustment) (State, Result, error) {
	i, found := findLocation(s.Locations, e.Location, e.Area)
	var loc Location
	if found {
		loc = s.Locations[i]
	} else {
		loc = Location{ID: e.Location, Area: e.Area}
	}
	at := e.OccurredAt.UTC()
	if loc.HasLevel && !at.After(loc.LevelAsOf) {
		return s, Result{}, nil // covered by the absolute level
	}
	j, seen := findAdjustment(loc.Adjustment, e.EventID)
	if seen {
		prev := loc.Adjustment[j]
		if prev.Delta != e.Delta || !prev.OccurredAt.Equal(at) {
			return s, Result{}, fmt.Errorf("%w: %q at location %q was %+d at %s, now %+d at %s",
				ErrConflictingDuplicate, e.EventID, e.Location,
				prev.Delta, prev.OccurredAt.Format(time.RFC3339Nano), e.Delta, at.Format(time.RFC3339Nano))
		}
		return s, Result{}, nil
	}
	// A new slice with the adjustment at j: the state given is not modified.
	adjs := make([]Adjustment, len(loc.Adjustment)+1)
	copy(adjs, loc.Adjustment[:j])
	adjs[j] = Adjustment{EventID: e.EventID, Delta: e.Delta, OccurredAt: at}
	copy(adjs[j+1:], loc.Adjustment[j:])
	loc.Adjustment = adjs
	return withLocation(s, e.SKU, i, found, loc), Result{Changed: true}, nil
}

// findAdjustment is the position of id in adjs, sorted by event id, and
// whether it is there (a loop, like findLocation).
func findAdjustment(adjs []Adjustment, id string) (int, bool) {
	lo, hi := 0, len(adjs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if adjs[m].EventID < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(adjs) && adjs[lo].EventID == id
}

// findLocation is the position of (id, area) in locs, sorted by ID then
// Area, and whether it is there. (A plain loop: slices.BinarySearchFunc
// copied a Location per comparison, a measurable part of Apply.)
func findLocation(locs []Location, id, area string) (int, bool) {
	lo, hi := 0, len(locs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		l := &locs[m]
		if l.ID < id || (l.ID == id && l.Area < area) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(locs) && locs[lo].ID == id && locs[lo].Area == area
}

// withLocation returns a copy of s with loc stored at index i (replacing the
// location there if found, inserting otherwise).
func withLocation(s State, sku string, i int, found bool, loc Location) State {
	out := s
	out.SKU = sku
	out.Locations = slices.Clone(s.Locations)
	if found {
		out.Locations[i] = loc
	} else {
		out.Locations = slices.Insert(out.Locations, i, loc)
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// IsInvalid reports whether err rejects the event itself (malformed or a
// conflicting duplicate), as opposed to an infrastructure failure.
func IsInvalid(err error) bool {
	return errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrConflictingDuplicate)
}
