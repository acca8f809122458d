package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// sku-flooded runs end to end at its smallest measured phase and reports
// both SKUs' rates and states.
func TestSKUFloodedSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := Options{Messages: 2000, Keys: 1, Partitions: 2}
	r, err := runFlooded(ctx, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != floodedEvents(o) || r.Seconds <= 0 || !strings.Contains(r.Detail, "ratio") {
		t.Fatalf("result %+v", r)
	}
	var b strings.Builder
	printFlooded(&b, map[string]Result{"sku-flooded": r})
	if !strings.HasPrefix(b.String(), "sku-flooded: new adjustments and rejected requests: ") {
		t.Fatalf("printed %q", b.String())
	}
	t.Log(b.String())
}
