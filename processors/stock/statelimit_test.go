package stock_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

// nearLimit is a state of sku whose encoding is as close to limit as
// another adjustment with the longest id allows: one location with a level
// and thousands of adjustments after it (what an adjustment flood with no
// newer level leaves; nothing bounds those).
func nearLimit(t *testing.T, id string, limit int) inventory.State {
	t.Helper()
	loc := inventory.Location{ID: "WH-1", HasLevel: true, Level: 1_000_000, LevelAsOf: t0.Add(-time.Hour), LevelSeq: 1}
	s := inventory.State{SKU: id, Locations: []inventory.Location{loc}}
	one := len(strings.Repeat("a", inventory.MaxEventIDLen)) + 24
	n := 0
	for codecs.StateSize(s)+one <= limit {
		id := fmt.Sprintf("%s-%06d", strings.Repeat("a", inventory.MaxEventIDLen-7), n)
		s.Locations[0].Adjustment = append(s.Locations[0].Adjustment, inventory.Adjustment{EventID: id, Delta: -1, OccurredAt: t0.Add(time.Duration(n) * time.Millisecond)})
		n++
	}
	if sz := codecs.StateSize(s); sz > limit {
		t.Fatalf("setup: %d bytes", sz)
	}
	return s
}

// A reservation request that would grow a SKU's state past
// codecs.MaxStateBytes, and any event that would grow it past
// codecs.HardStateBytes (a Kafka message the changelog could not store,
// which used to stop the whole stock group), is dead-lettered with reason
// class state_limit and changes nothing; a request refused so gets no
// outcome (its saga fails it at its decision timeout). Facts are taken past
// MaxStateBytes, and an event that shrinks the state is never refused: the
// group keeps running, and a newer level, which prunes the adjustments it
// covers, is applied and published.
func TestStateLimitDeadLetters(t *testing.T) {
	h := &demandHarness{harness: start(t), model: inventory.State{SKU: sku}}
	h.outcomes = h.gkt.NewQueueTracker(string(schema.Outcomes))
	long := strings.Repeat("z", inventory.MaxRefLength)

	// At the soft limit: a request is refused, a fact is taken (another
	// SKU: the processor keeps the states it wrote in memory).
	const soft = "SKU-SOFT"
	h.gkt.SetTableValue(schema.StockTable, soft, nearLimit(t, soft, codecs.MaxStateBytes))
	drain(h.changelog)
	h.consumeOn(schema.Demand, soft, encodeDemandEvent(t, withSKU(reserve(long, long, 1, "web", time.Hour), soft)), at(10))
	if dead := h.deadLetters(); len(dead) != 1 || schema.ClassifyReason(dead[0].GetReason()) != schema.ReasonStateLimit {
		t.Fatalf("a request at the soft limit: dead letters %v, want one of class state_limit", dead)
	}
	if o := h.emittedOutcomes(); len(o) != 0 {
		t.Errorf("a request refused for the limit: outcomes %v", o)
	}
	h.consume(soft, encode(t, withAdjSKU(adj(strings.Repeat("c", inventory.MaxEventIDLen), "WH-1", 5, at(10)), soft)), at(10))
	if dead := h.deadLetters(); len(dead) != 0 {
		t.Fatalf("an adjustment at the soft limit was refused: %v", dead)
	}
	if s, _ := h.state(soft); codecs.StateSize(s) <= codecs.MaxStateBytes {
		t.Fatalf("the adjustment was not applied past the soft limit: %d bytes", codecs.StateSize(s))
	}
	drain(h.changelog)
	_ = h.availabilities()

	// At the hard limit: every growing event is refused.
	big := nearLimit(t, sku, codecs.HardStateBytes)
	h.gkt.SetTableValue(schema.StockTable, sku, big)
	drain(h.changelog)
	for _, tc := range []struct {
		name string
		send func()
	}{
		{"adjustment", func() {
			h.consume(sku, encode(t, adj(strings.Repeat("b", inventory.MaxEventIDLen), "WH-1", 5, at(10))), at(10))
		}},
		{"reservation request", func() {
			h.consumeOn(schema.Demand, sku, encodeDemandEvent(t, reserve(long, long, 1, "web", time.Hour)), at(10))
		}},
	} {
		tc.send()
		dead := h.deadLetters()
		if len(dead) != 1 || !strings.Contains(dead[0].GetReason(), "size limit") || !strings.Contains(dead[0].GetReason(), sku) {
			t.Fatalf("%s: dead letters %v, want one naming the size limit", tc.name, dead)
		}
		if got := schema.ClassifyReason(dead[0].GetReason()); got != schema.ReasonStateLimit {
			t.Errorf("%s: reason class %q, want %q", tc.name, got, schema.ReasonStateLimit)
		}
		if s, _ := h.state(sku); !reflect.DeepEqual(s, big) {
			t.Fatalf("%s: the state changed", tc.name)
		}
		if a := h.availabilities(); len(a) != 0 {
			t.Errorf("%s: published %v", tc.name, a)
		}
		if o := h.emittedOutcomes(); len(o) != 0 {
			t.Errorf("%s: outcomes %v", tc.name, o)
		}
		h.expectOnlyRewrites(tc.name)
	}
	// Still running: a level newer than every adjustment shrinks the state.
	h.consume(sku, encode(t, lvl("WH-1", 7, at(20), 2)), at(20))
	if d := h.deadLetters(); len(d) != 0 {
		t.Fatalf("newer level dead-lettered: %v", d)
	}
	s, _ := h.state(sku)
	if len(s.Locations) != 1 || len(s.Locations[0].Adjustment) != 0 || s.Locations[0].OnHand() != 7 {
		t.Fatalf("after the newer level: %+v", s.Locations)
	}
	if a := h.availabilities(); len(a) != 1 {
		t.Fatalf("published %d answers after the newer level, want 1", len(a))
	}
}

func withSKU(r inventory.ReservationRequested, id string) inventory.ReservationRequested {
	r.SKU = id
	return r
}

func withAdjSKU(a inventory.StockAdjustment, id string) inventory.StockAdjustment {
	a.SKU = id
	return a
}
