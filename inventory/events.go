package inventory

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on event fields. Values beyond them are rejected as absurd rather
// than risking overflow in sums.
const (
	MaxUnits      = 1_000_000_000_000 // 10^12 units
	MaxIDLength   = 64
	MaxSKULength  = 256 // bytes of UTF-8, not characters
	MaxEventIDLen = 128
)

// KindSKU is the kind ValidateID checks by the SKU rule (ValidateSKU).
const KindSKU = "sku"

// SKURule states the SKU rule; ValidateSKU's errors end with it.
const SKURule = "a sku is 1 to 256 bytes of valid UTF-8, every character printable " +
	"(a Unicode letter, mark, number, punctuation or symbol, or the ASCII space), " +
	"not starting or ending with a space"

// ErrInvalidEvent is wrapped by every validation failure.
var ErrInvalidEvent = errors.New("invalid event")

// ErrConflictingDuplicate reports an event id seen before with different content.
var ErrConflictingDuplicate = errors.New("conflicting duplicate event id")

// idChars reports whether id has only A-Z a-z 0-9 . _ - and the bytes in
// extra (a loop: the check runs on every event, where a regexp was a
// measurable part of the stock processor's time).
func idChars(id, extra string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidateID checks an id of the given kind. A SKU (kind KindSKU, "sku")
// follows the SKU rule of ValidateSKU; every other id (location, channel,
// merchant) is 1 to 64 characters of A-Z a-z 0-9 . _ - (so such ids are
// safe in URL paths, logs and the registry's keys without escaping).
func ValidateID(kind, id string) error {
	if kind == KindSKU {
		return ValidateSKU(kind, id)
	}
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", kind)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%s is %d bytes, longer than %d", kind, len(id), MaxIDLength)
	case !idChars(id, ""):
		return fmt.Errorf("%s %q has characters outside A-Z a-z 0-9 . _ -", kind, id)
	}
	return nil
}

// ValidateSKU checks a SKU code as catalogues write them (SKURule): 1 to
// MaxSKULength bytes of valid UTF-8 whose every character is printable in
// the sense of unicode.IsPrint (categories L, M, N, P, S and the ASCII space:
// no control characters, no format characters such as zero-width or bidi
// marks, no other spaces, no unassigned or private-use code points), and
// neither first nor last a space (a data error far more often than meant).
// '/', '%', '+', ',', quotes and non-ASCII letters are all allowed: REST
// paths carry a SKU percent-encoded. kind names the field in the error. It
// is a loop, not a regexp, for the stock processor's sake; ids_test.go holds
// it to the pattern it implements.
func ValidateSKU(kind, sku string) error {
	switch {
	case sku == "":
		return fmt.Errorf("%s is empty: %s", kind, SKURule)
	case len(sku) > MaxSKULength:
		return fmt.Errorf("%s is %d bytes, longer than %d: %s", kind, len(sku), MaxSKULength, SKURule)
	case sku[0] == ' ' || sku[len(sku)-1] == ' ':
		return fmt.Errorf("%s %q starts or ends with a space: %s", kind, sku, SKURule)
	}
	// Ranging over a string decodes UTF-8: an invalid byte reads as U+FFFD
	// of width 1, where a real U+FFFD is its 3 bytes. strconv.IsPrint is
	// unicode.IsPrint (this package imports no unicode tables of its own).
	for i, r := range sku {
		switch {
		case r < ' ' || r == 0x7f:
			return fmt.Errorf("%s %q has a control character (%U) at byte %d: %s", kind, sku, r, i, SKURule)
		case r < 0x80:
		case r == '\uFFFD' && !strings.HasPrefix(sku[i:], "\uFFFD"):
			return fmt.Errorf("%s %q is not valid UTF-8 (byte %d): %s", kind, sku, i, SKURule)
		case !strconv.IsPrint(r):
			return fmt.Errorf("%s %q has a character that is not printable (%U) at byte %d: %s", kind, sku, r, i, SKURule)
		}
	}
	return nil
}

// validID is ValidateID for event fields: failures wrap ErrInvalidEvent.
func validID(kind, id string) error {
	if err := ValidateID(kind, id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

// Event is one input to Apply. The set of events is closed: StockLevel,
// StockAdjustment and the SKU policies in policy.go.
type Event interface {
	// EventSKU is the SKU the event belongs to; it must equal the message key.
	EventSKU() string
	// Validate reports every problem with the event's fields.
	Validate() error
	isEvent()
}

// Areas of a location. A store keeps its sales floor and back room as
// separate stock; other locations use AreaWhole.
const (
	AreaWhole    = ""
	AreaFloor    = "floor"
	AreaBackroom = "backroom"
)

// StockLevel is an absolute on-hand count at a location, observed at AsOf.
type StockLevel struct {
	SKU      string
	Location string
	OnHand   int64
	AsOf     time.Time
	Sequence uint64
	Area     string
}

// StockAdjustment is a relative change at a location, deduplicated by EventID.
type StockAdjustment struct {
	EventID    string
	SKU        string
	Location   string
	Delta      int64
	OccurredAt time.Time
	Area       string
}

func (StockLevel) isEvent()      {}
func (StockAdjustment) isEvent() {}

func (e StockLevel) EventSKU() string      { return e.SKU }
func (e StockAdjustment) EventSKU() string { return e.SKU }

// Validate implements Event.
func (e StockLevel) Validate() error {
	return errors.Join(
		validID("sku", e.SKU),
		validID("location", e.Location),
		checkUnits("on_hand", e.OnHand, false),
		checkTime("as_of", e.AsOf),
		checkArea(e.Area),
	)
}

// Validate implements Event.
func (e StockAdjustment) Validate() error {
	var idErr error
	switch {
	case e.EventID == "":
		idErr = fmt.Errorf("%w: event_id is empty", ErrInvalidEvent)
	case len(e.EventID) > MaxEventIDLen:
		idErr = fmt.Errorf("%w: event_id is longer than %d bytes", ErrInvalidEvent, MaxEventIDLen)
	}
	var deltaErr error
	if e.Delta == 0 {
		deltaErr = fmt.Errorf("%w: delta is 0", ErrInvalidEvent)
	} else {
		deltaErr = checkUnits("delta", e.Delta, true)
	}
	return errors.Join(
		idErr,
		validID("sku", e.SKU),
		validID("location", e.Location),
		deltaErr,
		checkTime("occurred_at", e.OccurredAt),
		checkArea(e.Area),
	)
}

func checkArea(area string) error {
	switch area {
	case AreaWhole, AreaFloor, AreaBackroom:
		return nil
	}
	return fmt.Errorf("%w: area %q is not one of \"\", %q, %q", ErrInvalidEvent, area, AreaFloor, AreaBackroom)
}

func checkUnits(field string, v int64, signed bool) error {
	if !signed && v < 0 {
		return fmt.Errorf("%w: %s is negative (%d)", ErrInvalidEvent, field, v)
	}
	if v > MaxUnits || v < -MaxUnits {
		return fmt.Errorf("%w: %s %d is beyond the limit of %d units", ErrInvalidEvent, field, v, int64(MaxUnits))
	}
	return nil
}

// minTime (exclusive) and maxTime bound accepted source times: UnixNano must
// not overflow, and the epoch itself is what an unset timestamp decodes to.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ValidateTime checks a source or tick time: set, after the Unix epoch (what
// an unset protobuf timestamp decodes to) and before 2200.
func ValidateTime(field string, t time.Time) error { return checkTime(field, t) }

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: %s is missing", ErrInvalidEvent, field)
	}
	if !t.After(minTime) || !t.Before(maxTime) {
		return fmt.Errorf("%w: %s %s is outside (1970-01-01, 2200-01-01): an unset protobuf timestamp reads as 1970", ErrInvalidEvent, field, t.Format(time.RFC3339Nano))
	}
	return nil
}
