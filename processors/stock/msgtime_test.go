package stock_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/schema"
)

// A message timestamped outside 1970–2200 (a producer writing microseconds
// as milliseconds, a legacy message without a time) is dead-lettered with
// the reason, on the supply and the demand topic alike, and changes
// nothing: as the processor's clock it would decide and expire
// reservations at times the table cannot store exactly.
func TestMessageTimeOutOfRangeIsDeadLettered(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.UnixMilli(1_763_000_000_000_000)} {
		t.Run(ts.Format(time.RFC3339), func(t *testing.T) {
			h := startDemand(t)
			h.consumeOn(schema.Supply, sku, encode(t, lvl("WH-1", 5, at(1), 1)), ts)
			h.consumeOn(schema.Demand, sku, encodeDemandEvent(t, reserve("r1", "o1", 1, "web", time.Minute)), ts)
			dead := h.deadLetters()
			if len(dead) != 2 {
				t.Fatalf("dead-lettered %d messages, want 2: %v", len(dead), dead)
			}
			for _, d := range dead {
				if !strings.Contains(d.GetReason(), "message timestamp") {
					t.Errorf("reason %q does not name the message timestamp", d.GetReason())
				}
			}
			if s, ok := h.state(sku); ok {
				t.Errorf("table holds %+v, want nothing", s)
			}
			if a := h.availabilities(); len(a) != 0 {
				t.Errorf("published %v", a)
			}
		})
	}
}
