package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// orders-flood runs end to end at a small size: every order is answered
// (RESERVED, or counted as rejected TIMEOUT), and the figures are reported.
func TestOrdersFloodSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker and the whole stack")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := Options{Messages: 5000, Keys: 500, Partitions: 2, Clients: 4}
	r, err := runOrdersFlood(ctx, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != requests(o) || r.P99Ms <= 0 || !strings.Contains(r.Detail, "rejected TIMEOUT") {
		t.Fatalf("result %+v", r)
	}
	var b strings.Builder
	r.Scenario = "orders-flood"
	printFlood(&b, map[string]Result{"orders-flood": r, "orders": {P50Ms: 1, P99Ms: 2, PerSecond: 100}})
	if !strings.Contains(b.String(), "PlaceOrder during the flood vs idle") {
		t.Fatalf("printed %q", b.String())
	}
	t.Log(b.String())
}
