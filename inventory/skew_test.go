package inventory_test

import (
	"errors"
	"testing"
	"time"

	"github.com/skuflow/skuflow/inventory"
)

// A consumer that configures no skew gets the default, not the absence of
// the check; NoEventSkewLimit (or any negative value) turns it off.
func TestEventSkewDefault(t *testing.T) {
	for configured, want := range map[time.Duration]time.Duration{
		0:                          inventory.DefaultMaxEventSkew,
		inventory.NoEventSkewLimit: 0,
		-time.Second:               0,
		time.Minute:                time.Minute,
	} {
		if got := inventory.EventSkew(configured); got != want {
			t.Errorf("EventSkew(%s) = %s, want %s", configured, got, want)
		}
	}
	far := inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1, AsOf: time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC), Sequence: 1}
	if err := inventory.CheckEventTimes(far, t0, inventory.EventSkew(0)); !errors.Is(err, inventory.ErrFutureTime) {
		t.Errorf("a level as of 2199 with the default skew: %v, want ErrFutureTime", err)
	}
	if err := inventory.CheckEventTimes(far, t0, inventory.EventSkew(inventory.NoEventSkewLimit)); err != nil {
		t.Errorf("with the check off: %v", err)
	}
}

// An absent message time (sarama reads Kafka's -1 as the zero time) or one
// outside 1970–2200 is a bad message time, checked before any event time:
// never reported as an event from the future.
func TestCheckMessageTime(t *testing.T) {
	ev := inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1, AsOf: t0, Sequence: 1}
	for _, msg := range []time.Time{{}, time.Unix(0, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		err := inventory.CheckEventTimes(ev, msg, time.Minute)
		if !errors.Is(err, inventory.ErrBadMessageTime) || errors.Is(err, inventory.ErrFutureTime) || errors.Is(err, inventory.ErrInvalidEvent) {
			t.Errorf("message time %s: %v, want ErrBadMessageTime only", msg, err)
		}
	}
	if err := inventory.CheckEventTimes(ev, t0, time.Minute); err != nil {
		t.Errorf("a valid message time: %v", err)
	}
}
