package schema

import (
	"strings"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
)

// The headers of dead-letter records and of the messages redrive re-sends.
const (
	// HeaderReasonClass holds a dead letter's reason class (one of
	// ReasonClasses). Letters written before it existed have none: readers
	// classify their reason text with ClassifyReason.
	HeaderReasonClass = "skuflow-reason-class"
	// HeaderRedrivenFrom marks a message `skuflow deadletter redrive`
	// re-sent to its original topic: DeadLetterKey of the letter it came
	// from.
	HeaderRedrivenFrom = "skuflow-redriven-from"
)

// The classes of dead-letter reasons: a bounded set, fit for a metric
// label and a filter (a reason's text names SKUs, ids and values, so it
// never is a label).
const (
	ReasonTombstone      = "tombstone"             // an empty value on a stream topic
	ReasonMalformed      = "malformed"             // does not decode (codecs.ErrMalformed)
	ReasonUnknownChannel = "unknown_channel"       // a channel this deployment does not serve (inventory.ErrUnknownChannel)
	ReasonConflictingDup = "conflicting_duplicate" // an event id reused for a different event
	ReasonInvalidEvent   = "invalid_event"         // the domain rejects the event (inventory.ErrInvalidEvent)
	ReasonKeyMismatch    = "key_mismatch"          // the message key differs from the id inside
	ReasonBadTimestamp   = "bad_timestamp"         // the message timestamp is out of range
	ReasonFutureTime     = "future_time"           // an event time too far ahead of the message's (inventory.ErrFutureTime)
	ReasonStateLimit     = "state_limit"           // the SKU's state would exceed its size limit (codecs.ErrStateLimit)
	ReasonOther          = "other"                 // any other rejection
)

// ReasonClasses lists every reason class.
func ReasonClasses() []string {
	return []string{ReasonTombstone, ReasonMalformed, ReasonUnknownChannel, ReasonConflictingDup, ReasonInvalidEvent,
		ReasonKeyMismatch, ReasonBadTimestamp, ReasonFutureTime, ReasonStateLimit, ReasonOther}
}

// ClassifyReason is the class of a dead letter's reason text. The
// processors classify by the error's sentinels first (see
// processors/deadletter.ReasonClass); this is what is left when only the
// text is known (letters written before the class header existed).
func ClassifyReason(reason string) string {
	switch {
	case strings.HasPrefix(reason, "empty message value"):
		return ReasonTombstone
	case strings.Contains(reason, codecs.ErrMalformed.Error()):
		return ReasonMalformed
	case strings.Contains(reason, inventory.ErrUnknownChannel.Error()):
		return ReasonUnknownChannel
	case strings.Contains(reason, inventory.ErrConflictingDuplicate.Error()):
		return ReasonConflictingDup
	case strings.Contains(reason, inventory.ErrFutureTime.Error()):
		return ReasonFutureTime
	case strings.Contains(reason, codecs.ErrStateLimit.Error()):
		return ReasonStateLimit
	case strings.Contains(reason, inventory.ErrInvalidEvent.Error()):
		return ReasonInvalidEvent
	case strings.HasPrefix(reason, "message key ") && strings.Contains(reason, " differs from "):
		return ReasonKeyMismatch
	case strings.HasPrefix(reason, "message timestamp "):
		return ReasonBadTimestamp
	}
	return ReasonOther
}
