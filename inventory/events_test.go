package inventory_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

var (
	epoch       = time.Unix(0, 0).UTC()
	beforeEpoch = epoch.Add(-time.Nanosecond)
	lastValid   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
	firstAfter  = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	long64      = strings.Repeat("a", inventory.MaxIDLength)
	long65      = strings.Repeat("a", inventory.MaxIDLength+1)
	longSKU     = strings.Repeat("s", inventory.MaxSKULength)
	eventID128  = strings.Repeat("e", inventory.MaxEventIDLen)
	eventID129  = strings.Repeat("e", inventory.MaxEventIDLen+1)
)

// ValidateID keeps the narrow rule for every kind but "sku", which is
// ValidateSKU (TestValidateSKU in ids_test.go).
func TestValidateID(t *testing.T) {
	tests := []struct {
		id      string
		ok, sku bool // valid as a location id, as a SKU
	}{
		{"SKU-1", true, true},
		{"a", true, true},
		{"A.b_c-9", true, true},
		{long64, true, true},
		{"", false, false},
		{long65, false, true},
		{longSKU, false, true},
		{longSKU + "x", false, false},
		{"has space", false, true},
		{"slash/id", false, true},
		{"colon:id", false, true},
		{"caf\u00e9", false, true},
		{"trailing-newline\n", false, false},
		{"\x00", false, false},
		{"tab\tid", false, false},
		{" leading-space", false, false},
		{"bad\xffutf8", false, false},
	}
	for _, tt := range tests {
		for _, kind := range []string{"location", "sku"} {
			want := tt.ok
			if kind == "sku" {
				want = tt.sku
			}
			err := inventory.ValidateID(kind, tt.id)
			if want && err != nil {
				t.Errorf("ValidateID(%s, %q) = %v, want nil", kind, tt.id, err)
			}
			if !want {
				// ValidateID also serves the gateway, so it does not claim
				// ErrInvalidEvent itself; the events' Validate wraps it.
				if err == nil {
					t.Errorf("ValidateID(%s, %q) = nil, want an error", kind, tt.id)
				} else if !strings.Contains(err.Error(), kind) {
					t.Errorf("ValidateID(%s, %q) = %q does not name the field", kind, tt.id, err)
				}
			}
		}
	}
}

func validLevel() inventory.StockLevel { return lvl("WH-1", 10, at(0), 1) }

func validAdjustment() inventory.StockAdjustment { return adj("ev-1", "WH-1", -2, at(1)) }

// invalidLevels breaks one field of a valid StockLevel at a time; the string
// is a fragment the error message must contain.
func invalidLevels() []struct {
	name  string
	ev    inventory.StockLevel
	field string
} {
	mod := func(f func(*inventory.StockLevel)) inventory.StockLevel {
		e := validLevel()
		f(&e)
		return e
	}
	return []struct {
		name  string
		ev    inventory.StockLevel
		field string
	}{
		{"empty sku", mod(func(e *inventory.StockLevel) { e.SKU = "" }), "sku"},
		{"long sku", mod(func(e *inventory.StockLevel) { e.SKU = longSKU + "x" }), "sku"},
		{"bad sku chars", mod(func(e *inventory.StockLevel) { e.SKU = "SKU\x001" }), "sku"},
		{"sku with a trailing space", mod(func(e *inventory.StockLevel) { e.SKU = "SKU-1 " }), "sku"},
		{"sku not UTF-8", mod(func(e *inventory.StockLevel) { e.SKU = "SKU-\xff" }), "sku"},
		{"empty location", mod(func(e *inventory.StockLevel) { e.Location = "" }), "location"},
		{"long location", mod(func(e *inventory.StockLevel) { e.Location = long65 }), "location"},
		{"bad location chars", mod(func(e *inventory.StockLevel) { e.Location = "WH/1" }), "location"},
		{"negative on_hand", mod(func(e *inventory.StockLevel) { e.OnHand = -1 }), "on_hand"},
		{"min int on_hand", mod(func(e *inventory.StockLevel) { e.OnHand = math.MinInt64 }), "on_hand"},
		{"absurd on_hand", mod(func(e *inventory.StockLevel) { e.OnHand = inventory.MaxUnits + 1 }), "on_hand"},
		{"max int on_hand", mod(func(e *inventory.StockLevel) { e.OnHand = math.MaxInt64 }), "on_hand"},
		{"missing as_of", mod(func(e *inventory.StockLevel) { e.AsOf = time.Time{} }), "as_of"},
		{"as_of before 1970", mod(func(e *inventory.StockLevel) { e.AsOf = beforeEpoch }), "as_of"},
		{"as_of at the epoch (an unset protobuf timestamp)", mod(func(e *inventory.StockLevel) { e.AsOf = epoch }), "as_of"},
		{"as_of at 2200", mod(func(e *inventory.StockLevel) { e.AsOf = firstAfter }), "as_of"},
		{"as_of far future", mod(func(e *inventory.StockLevel) { e.AsOf = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }), "as_of"},
		{"unknown area", mod(func(e *inventory.StockLevel) { e.Area = "attic" }), "area"},
		{"area in another case", mod(func(e *inventory.StockLevel) { e.Area = "Floor" }), "area"},
		{"area with a space", mod(func(e *inventory.StockLevel) { e.Area = " " }), "area"},
	}
}

func invalidAdjustments() []struct {
	name  string
	ev    inventory.StockAdjustment
	field string
} {
	mod := func(f func(*inventory.StockAdjustment)) inventory.StockAdjustment {
		e := validAdjustment()
		f(&e)
		return e
	}
	return []struct {
		name  string
		ev    inventory.StockAdjustment
		field string
	}{
		{"empty event id", mod(func(e *inventory.StockAdjustment) { e.EventID = "" }), "event_id"},
		{"long event id", mod(func(e *inventory.StockAdjustment) { e.EventID = eventID129 }), "event_id"},
		{"empty sku", mod(func(e *inventory.StockAdjustment) { e.SKU = "" }), "sku"},
		{"long sku", mod(func(e *inventory.StockAdjustment) { e.SKU = longSKU + "x" }), "sku"},
		{"bad sku chars", mod(func(e *inventory.StockAdjustment) { e.SKU = "sku\n" }), "sku"},
		{"empty location", mod(func(e *inventory.StockAdjustment) { e.Location = "" }), "location"},
		{"long location", mod(func(e *inventory.StockAdjustment) { e.Location = long65 }), "location"},
		{"bad location chars", mod(func(e *inventory.StockAdjustment) { e.Location = "WH#1" }), "location"},
		{"zero delta", mod(func(e *inventory.StockAdjustment) { e.Delta = 0 }), "delta"},
		{"absurd positive delta", mod(func(e *inventory.StockAdjustment) { e.Delta = inventory.MaxUnits + 1 }), "delta"},
		{"absurd negative delta", mod(func(e *inventory.StockAdjustment) { e.Delta = -inventory.MaxUnits - 1 }), "delta"},
		{"min int delta", mod(func(e *inventory.StockAdjustment) { e.Delta = math.MinInt64 }), "delta"},
		{"max int delta", mod(func(e *inventory.StockAdjustment) { e.Delta = math.MaxInt64 }), "delta"},
		{"missing occurred_at", mod(func(e *inventory.StockAdjustment) { e.OccurredAt = time.Time{} }), "occurred_at"},
		{"occurred_at before 1970", mod(func(e *inventory.StockAdjustment) { e.OccurredAt = beforeEpoch }), "occurred_at"},
		{"occurred_at at the epoch (an unset protobuf timestamp)", mod(func(e *inventory.StockAdjustment) { e.OccurredAt = epoch }), "occurred_at"},
		{"occurred_at at 2200", mod(func(e *inventory.StockAdjustment) { e.OccurredAt = firstAfter }), "occurred_at"},
		{"unknown area", mod(func(e *inventory.StockAdjustment) { e.Area = "attic" }), "area"},
		{"area in another case", mod(func(e *inventory.StockAdjustment) { e.Area = "BACKROOM" }), "area"},
	}
}

func TestStockLevelValidate(t *testing.T) {
	valid := []inventory.StockLevel{
		validLevel(),
		lvl("WH-1", 0, at(0), 0),
		lvl("WH-1", inventory.MaxUnits, at(0), math.MaxUint64),
		lvl(long64, 1, epoch.Add(time.Nanosecond), 0),
		lvl("WH-1", 1, lastValid, 0),
		lvl("WH-1", 1, at(0).In(zonePlus2), 0),
		lvlIn("ST-1", inventory.AreaFloor, 1, at(0), 0),
		lvlIn("ST-1", inventory.AreaBackroom, 1, at(0), 0),
	}
	for _, s := range goodSKUs {
		l := validLevel()
		l.SKU = s
		valid = append(valid, l)
	}
	for _, ev := range valid {
		if err := ev.Validate(); err != nil {
			t.Errorf("%+v: Validate() = %v, want nil", ev, err)
		}
	}
	for _, tt := range invalidLevels() {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ev.Validate()
			if !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, want ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.field)
			}
			if !inventory.IsInvalid(err) {
				t.Errorf("IsInvalid(%v) = false", err)
			}
		})
	}
}

func TestStockAdjustmentValidate(t *testing.T) {
	valid := []inventory.StockAdjustment{
		validAdjustment(),
		adj("x", "WH-1", 1, at(0)),
		adj(eventID128, "WH-1", inventory.MaxUnits, at(0)),
		adj("id with spaces/and:colons", "WH-1", -inventory.MaxUnits, at(0)),
		adj("e", long64, 5, epoch.Add(time.Nanosecond)),
		adj("e", "WH-1", 5, lastValid),
		adjIn("e", "ST-1", inventory.AreaFloor, 5, at(0)),
		adjIn("e", "ST-1", inventory.AreaBackroom, -5, at(0)),
	}
	for _, s := range goodSKUs {
		a := validAdjustment()
		a.SKU = s
		valid = append(valid, a)
	}
	for _, ev := range valid {
		if err := ev.Validate(); err != nil {
			t.Errorf("%+v: Validate() = %v, want nil", ev, err)
		}
	}
	for _, tt := range invalidAdjustments() {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ev.Validate()
			if !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Validate() = %v, want ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.field)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	l := inventory.StockLevel{OnHand: -1, Area: "?"}
	err := l.Validate()
	for _, field := range []string{"sku", "location", "on_hand", "as_of", "area"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("StockLevel.Validate() = %v, want it to name %s", err, field)
		}
	}
	a := inventory.StockAdjustment{}
	err = a.Validate()
	for _, field := range []string{"event_id", "sku", "location", "delta", "occurred_at"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("StockAdjustment.Validate() = %v, want it to name %s", err, field)
		}
	}
	if !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Errorf("joined error %v does not wrap ErrInvalidEvent", err)
	}
}

func TestEventSKU(t *testing.T) {
	var evs = []inventory.Event{lvl("WH-1", 1, at(0), 0), adj("e", "WH-1", 1, at(0))}
	for _, ev := range evs {
		if ev.EventSKU() != sku {
			t.Errorf("%T.EventSKU() = %q, want %q", ev, ev.EventSKU(), sku)
		}
	}
}

func TestIsInvalid(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{inventory.ErrInvalidEvent, true},
		{inventory.ErrConflictingDuplicate, true},
		{errors.Join(errors.New("x"), inventory.ErrInvalidEvent), true},
	}
	for _, tt := range tests {
		if got := inventory.IsInvalid(tt.err); got != tt.want {
			t.Errorf("IsInvalid(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestValidateTime(t *testing.T) {
	tests := []struct {
		t  time.Time
		ok bool
	}{
		{at(0), true},
		{at(0).In(zonePlus2), true},
		{epoch.Add(time.Nanosecond), true},
		{lastValid, true},
		{time.Time{}, false},
		{epoch, false},
		{beforeEpoch, false},
		{firstAfter, false},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		err := inventory.ValidateTime("tick_at", tt.t)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTime(%v) = %v, want ok = %v", tt.t, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, inventory.ErrInvalidEvent) || !strings.Contains(err.Error(), "tick_at")) {
			t.Errorf("ValidateTime(%v) = %v, want ErrInvalidEvent naming the field", tt.t, err)
		}
	}
}
