package inventory

import (
	"errors"
	"fmt"
	"time"
)

// DefaultMaxEventSkew is how far an event's own time may be ahead of its
// message's time when none is configured.
const DefaultMaxEventSkew = 5 * time.Minute

// ErrFutureTime refuses an event whose own time is more than the allowed
// skew ahead of its message's time: a level or policy from the far future
// would win over every real one for good, a tick would expire holds early.
var ErrFutureTime = errors.New("event time is ahead of the message time")

// CheckSkew refuses t, the event's field, when it is more than skew after
// msg, the time of the message that carried it; a skew of 0 (or less)
// allows any time. The error wraps ErrInvalidEvent and ErrFutureTime.
func CheckSkew(field string, t, msg time.Time, skew time.Duration) error {
	if skew <= 0 || !t.After(msg.Add(skew)) {
		return nil
	}
	return fmt.Errorf("%w: %w: %s %s is %s after the message time %s, more than the allowed %s",
		ErrInvalidEvent, ErrFutureTime, field, t.UTC().Format(time.RFC3339Nano), t.Sub(msg).Round(time.Millisecond),
		msg.UTC().Format(time.RFC3339Nano), skew)
}

// CheckEventSkew applies CheckSkew to every time ev carries that the rules
// fold (a source time: a level's or a policy's as_of, an adjustment's or
// a fulfilment's time). A reservation's or an extension's expiry is in
// the future by design and is not checked.
func CheckEventSkew(ev Event, msg time.Time, skew time.Duration) error {
	switch e := ev.(type) {
	case StockLevel:
		return CheckSkew("as_of", e.AsOf, msg, skew)
	case StockAdjustment:
		return CheckSkew("occurred_at", e.OccurredAt, msg, skew)
	case ChannelEligibility:
		return CheckSkew("as_of", e.AsOf, msg, skew)
	case SalesCap:
		return CheckSkew("as_of", e.AsOf, msg, skew)
	case BackorderLimit:
		return CheckSkew("as_of", e.AsOf, msg, skew)
	case SafetyStockOverride:
		return CheckSkew("as_of", e.AsOf, msg, skew)
	case ReservationFulfilled:
		return CheckSkew("fulfilled_at", e.FulfilledAt, msg, skew)
	}
	return nil
}
