package inventory

import (
	"errors"
	"fmt"
	"time"
)

// DefaultMaxEventSkew is how far an event's own time may be ahead of its
// message's time when none is configured.
const DefaultMaxEventSkew = 5 * time.Minute

// NoEventSkewLimit is the configured skew that turns the check off.
const NoEventSkewLimit time.Duration = -1

// EventSkew is the skew a consumer applies for a configured one: the
// default for 0 (unset), none (0, which CheckSkew reads as no limit) for
// NoEventSkewLimit or any other negative value.
// Every processor and the audit's fold take their skew through it, so a
// caller that sets nothing gets the check, not its absence.
func EventSkew(configured time.Duration) time.Duration {
	switch {
	case configured == 0:
		return DefaultMaxEventSkew
	case configured < 0:
		return 0
	}
	return configured
}

// ErrBadMessageTime refuses a message whose timestamp is absent (sarama
// reads Kafka's -1 as the zero time) or outside the times the domain
// stores exactly: it is the clock of the rules that fold the message.
var ErrBadMessageTime = errors.New("not a usable message time")

// CheckMessageTime refuses a message timestamp that is absent or outside
// (1970-01-01, 2200-01-01). The error's text starts "message timestamp ".
func CheckMessageTime(msg time.Time) error {
	if msg.IsZero() {
		return fmt.Errorf("message timestamp is absent: %w", ErrBadMessageTime)
	}
	if !msg.After(minTime) || !msg.Before(maxTime) {
		return fmt.Errorf("message timestamp %s is outside (1970-01-01, 2200-01-01): %w", msg.UTC().Format(time.RFC3339Nano), ErrBadMessageTime)
	}
	return nil
}

// CheckEventTimes is the check of a message's times that the stock
// processor and the audit's fold both apply before folding an event: the
// message time (CheckMessageTime), then the event's own times against it
// (CheckEventSkew; skew 0 or less: no limit).
func CheckEventTimes(ev Event, msg time.Time, skew time.Duration) error {
	if err := CheckMessageTime(msg); err != nil {
		return err
	}
	return CheckEventSkew(ev, msg, skew)
}

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

// CheckTickTimes is CheckEventTimes for a tick (a stock tick or an order
// tick) at at: a tick from the future would expire holds, or time out
// orders, early.
// With no skew limit (0 or less) a stock tick is not checked: its own time
// is the clock it is applied at, and nothing holds it against the message.
func CheckTickTimes(at, msg time.Time, skew time.Duration) error {
	if skew <= 0 {
		return nil
	}
	if err := CheckMessageTime(msg); err != nil {
		return err
	}
	return CheckSkew("tick at", at, msg, skew)
}

// CheckOrderTimes is CheckEventTimes for the order saga's inputs (an order
// command or a reservation outcome): the message time, which is the
// saga's clock, and an OrderTick's time against it.
func CheckOrderTimes(in any, msg time.Time, skew time.Duration) error {
	if err := CheckMessageTime(msg); err != nil {
		return err
	}
	if t, ok := in.(OrderTick); ok {
		return CheckSkew("tick at", t.At, msg, skew)
	}
	return nil
}
