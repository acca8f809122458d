package views_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

// Both implementations track their updates.
var (
	_ views.StockChanges  = (*views.Stock)(nil)
	_ views.StockChanges  = (*views.Memory)(nil)
	_ views.PolicyChanges = (*views.Policies)(nil)
	_ views.PolicyChanges = (*views.Memory)(nil)
)

func TestChangesNote(t *testing.T) {
	var c views.Changes
	a, b, total := c.Of("A"), c.Of("B"), c.Total()
	c.Note("A")
	if c.Of("A") == a {
		t.Error("noting A leaves A's counter")
	}
	if c.Total() != total+1 {
		t.Errorf("Total %d after one note, was %d", c.Total(), total)
	}
	// B shares A's counter only if they hash alike; either way B's counter
	// never goes back.
	if c.Of("B") < b {
		t.Error("B's counter went back")
	}
	// Many distinct keys do not all share one counter.
	moved := 0
	for i := range 100 {
		k := fmt.Sprintf("K-%d", i)
		before := c.Of(k)
		c.Note("A")
		if c.Of(k) != before {
			moved++
		}
	}
	if moved > 10 {
		t.Errorf("%d of 100 keys changed with A: the counters are not spread", moved)
	}
}

func TestMemoryTracksChanges(t *testing.T) {
	m := views.NewMemory()
	s := viewtest.States(t)[0]
	sc, pc := m.StockChanges(), m.PolicyChanges()
	before, pols := sc.Of(s.SKU), pc.Total()
	m.Put(s)
	if sc.Of(s.SKU) == before {
		t.Error("Put leaves the SKU's counter")
	}
	if pc.Total() != pols {
		t.Error("Put of a state advances the policy counter")
	}
	ev := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{MerchantId: "m-1"}}}
	if err := m.PutPolicy(ev); err != nil {
		t.Fatal(err)
	}
	key, err := schema.PolicyKey(ev)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Total() == pols || pc.Of(key) == 0 {
		t.Error("PutPolicy leaves the policy counters")
	}
}

// TestViewsTrackChanges: the goka views advance a key's counter when they
// apply an update of it, tombstones included, for the stock and the
// policies tables. (That the counter moves only once the value is readable
// is TestTrackNotesAfterStoring's: a view may also apply a message twice,
// which moves the counter without a new value.)
func TestViewsTrackChanges(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	emitTable(t, b, states[0], states[1])
	pol := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE}}}
	emitPolicies(t, b, pol)
	sv := startStock(t, b)
	pv, err := views.NewPolicies(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, pv.Run)
	waitVisible(t, sv, states[0], states[1])
	waitPolicies(t, pv, pol)
	sc, pc := sv.StockChanges(), pv.PolicyChanges()
	if sc.Total() == 0 || pc.Total() == 0 {
		t.Fatalf("recovering the tables noted %d stock and %d policy updates", sc.Total(), pc.Total())
	}

	seen := sc.Of(states[0].SKU)
	updated, _, err := inventory.Apply(states[0], inventory.StockLevel{
		SKU: states[0].SKU, Location: "WH-9", OnHand: 42, AsOf: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC),
	}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	emitTable(t, b, updated)
	testkit.Eventually(t, 15*time.Second, func() error {
		got, found, err := sv.Get(updated.SKU)
		if err != nil || !found || got.Locations[len(got.Locations)-1].ID != "WH-9" {
			return fmt.Errorf("the update is not visible: %+v (found %v, %v)", got, found, err)
		}
		if sc.Of(states[0].SKU) == seen {
			return errors.New("the update is visible but the SKU's counter has not moved")
		}
		return nil
	})

	seen = sc.Of(states[1].SKU)
	emitTombstone(t, b, states[1].SKU)
	testkit.Eventually(t, 15*time.Second, func() error {
		if _, found, err := sv.Get(states[1].SKU); err != nil || found {
			return fmt.Errorf("the deleted SKU is found=%v (%v)", found, err)
		}
		if sc.Of(states[1].SKU) == seen {
			return errors.New("the deletion is visible but the SKU's counter has not moved")
		}
		return nil
	})

	seenPol := pc.Total()
	pol2 := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, Closed: true}}}
	emitPolicies(t, b, pol2)
	key, err := schema.PolicyKey(pol2)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		if got, err := pv.GetPolicy(key); err != nil || !got.GetLocation().GetClosed() {
			return fmt.Errorf("the policy update is not visible: %v (%v)", got, err)
		}
		if pc.Total() == seenPol {
			return errors.New("the policy update is visible but the counter has not moved")
		}
		return nil
	})
}
