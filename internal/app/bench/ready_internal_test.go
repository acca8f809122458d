package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The ready scenarios run at a small size, so the million-SKU run in
// `make bench` cannot rot; their figures are not checked (noisy machines).
func TestReadyScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	o := Options{Messages: 300, Keys: 300, Partitions: 2}
	by := map[string]Result{}
	for _, name := range []string{"changelog-consume", "serve-ready"} {
		r, err := scenarios[name].run(context.Background(), o, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Messages != 2*o.Keys || r.Seconds <= 0 {
			t.Errorf("%s: %d records in %f s, want %d records", name, r.Messages, r.Seconds, 2*o.Keys)
		}
		r.Scenario = name
		r.PerSecond = float64(r.Messages) / r.Seconds
		by[name] = r
	}
	var b strings.Builder
	printReady(&b, by)
	if !strings.Contains(b.String(), "of the raw rate") {
		t.Errorf("printReady: %q", b.String())
	}
	t.Log(b.String())
}

// A record's state and answer decode to the SKU they are keyed by.
func TestReadyRecordDecodes(t *testing.T) {
	key, state, answer, err := readyRecord(7, inventory.DefaultBase())
	if err != nil {
		t.Fatal(err)
	}
	sv, err := schema.StateCodec.Decode(state)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := sv.(inventory.State); !ok || s.SKU != key || len(s.Locations) != 2 {
		t.Fatalf("state of %q: %+v", key, sv)
	}
	av, err := schema.AvailabilityCodec.Decode(answer)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := av.(*pb.Availability); !ok || a.GetSku() != key || a.GetOnHand() <= 0 {
		t.Fatalf("answer of %q: %v", key, av)
	}
}
