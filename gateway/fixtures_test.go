package gateway_test

import (
	"sync"
	"testing"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

// The gateway's configuration in these tests.
var (
	channels          = []string{"web", "marketplace", "store-pickup"}
	defaultStaleAfter = 24 * time.Hour
	// now is the gateway's fixed clock reading unless a test moves it.
	now = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
)

// Fixture ids a test needs to name.
const (
	policySKU      = "SKU-POL"
	cappedSKU      = "SKU-CAPPED"
	fastMerchant   = "m-fast"
	fastStaleAfter = 30 * time.Minute
	fastLocation   = "mx.berlin"    // m-fast's location, level at now-10m: stale at now+20m
	closedLocation = "store.closed" // closed store
	pickupLocation = "store.pickup" // fulfils store-pickup only
	noLevelMxLoc   = "mx.no-level"  // merchant location with adjustments only
	slowLocation   = "mx.slow"      // merchant without a policy: the default TTL
	notSellable    = "marketplace"  // policySKU may not be sold here
	cappedChannel  = "store-pickup" // policySKU's active sales cap
	backorderUnits = int64(5)       // policySKU's backorder limit
	fastLevelAge   = 10 * time.Minute
)

// fastStaleAt is when fastLocation's stock stops counting.
var fastStaleAt = now.Add(-fastLevelAge).Add(fastStaleAfter)

// clock is the gateway's injectable Now, safe to move while it serves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fixture is what the gateway's lookups hold: viewtest's states plus SKUs
// with SKU policies, and location and merchant policies covering a closed
// location, a channel-limited one and merchant locations with a short, the
// default and no TTL-relevant level.
type fixture struct {
	states    []inventory.State
	locations []inventory.LocationPolicy
	merchants []inventory.MerchantPolicy
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{states: viewtest.States(t)}
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	build := func(sku string, evs ...inventory.Event) inventory.State {
		s := inventory.State{SKU: sku}
		for i, ev := range evs {
			next, res, err := inventory.Apply(s, ev, now)
			if err != nil || !res.Changed {
				t.Fatalf("fixture %s event %d (%+v): changed=%v err=%v", sku, i, ev, res.Changed, err)
			}
			s = next
		}
		return s
	}
	lvl := func(sku, loc string, n int64, age time.Duration) inventory.Event {
		return inventory.StockLevel{SKU: sku, Location: loc, OnHand: n, AsOf: ago(age)}
	}
	f.states = append(f.states,
		build(policySKU,
			lvl(policySKU, "WH-1", 10, 2*time.Hour),
			lvl(policySKU, closedLocation, 5, 2*time.Hour),
			lvl(policySKU, pickupLocation, 4, 2*time.Hour),
			lvl(policySKU, fastLocation, 6, fastLevelAge),
			lvl(policySKU, slowLocation, 3, time.Hour),
			inventory.StockAdjustment{EventID: "nl-1", SKU: policySKU, Location: noLevelMxLoc, Delta: 2, OccurredAt: ago(time.Hour)},
			inventory.ChannelEligibility{SKU: policySKU, Channel: notSellable, Sellable: false, AsOf: ago(time.Hour)},
			inventory.SalesCap{SKU: policySKU, Channel: cappedChannel, Limit: 2,
				WindowStart: ago(time.Hour), WindowEnd: now.Add(2 * time.Hour), AsOf: ago(time.Hour)},
			inventory.BackorderLimit{SKU: policySKU, Limit: backorderUnits, AsOf: ago(time.Hour)},
		),
		build(cappedSKU,
			lvl(cappedSKU, "WH-1", 8, time.Hour),
			inventory.SalesCap{SKU: cappedSKU, Channel: "web", Limit: 0,
				WindowStart: ago(time.Hour), WindowEnd: now.Add(time.Hour), AsOf: ago(time.Hour)},
		),
	)
	loc := func(p inventory.LocationPolicy) {
		p.AsOf = ago(3 * time.Hour)
		out, res, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p)
		if err != nil || !res.Changed {
			t.Fatalf("fixture %+v: changed=%v err=%v", p, res.Changed, err)
		}
		f.locations = append(f.locations, out)
	}
	loc(inventory.LocationPolicy{Location: closedLocation, Kind: inventory.KindStore, Closed: true})
	loc(inventory.LocationPolicy{Location: "store.berlin", Kind: inventory.KindStore, Closed: true}) // viewtest's SKU-2
	loc(inventory.LocationPolicy{Location: pickupLocation, Kind: inventory.KindStore, Channels: []string{"store-pickup"}, SafetyStock: 1})
	loc(inventory.LocationPolicy{Location: fastLocation, Kind: inventory.KindMerchant, MerchantID: fastMerchant})
	loc(inventory.LocationPolicy{Location: noLevelMxLoc, Kind: inventory.KindMerchant, MerchantID: fastMerchant})
	loc(inventory.LocationPolicy{Location: slowLocation, Kind: inventory.KindMerchant, MerchantID: "m-default"})
	out, res, err := inventory.ApplyMerchantPolicy(inventory.MerchantPolicy{}, false,
		inventory.MerchantPolicy{MerchantID: fastMerchant, StaleAfter: fastStaleAfter, AsOf: ago(3 * time.Hour)})
	if err != nil || !res.Changed {
		t.Fatalf("merchant fixture: changed=%v err=%v", res.Changed, err)
	}
	f.merchants = append(f.merchants, out)
	return f
}

// putStates stores the fixture's states in m.
func (f fixture) putStates(m *views.Memory) {
	for _, s := range f.states {
		m.Put(s)
	}
}

// putPolicies stores the fixture's policies in m, as the policies table
// holds them.
func (f fixture) putPolicies(t *testing.T, m *views.Memory) {
	t.Helper()
	for _, p := range f.locations {
		if err := m.PutPolicy(&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(p)}}); err != nil {
			t.Fatalf("PutPolicy(%s): %v", p.Location, err)
		}
	}
	for _, p := range f.merchants {
		if err := m.PutPolicy(&pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(p)}}); err != nil {
			t.Fatalf("PutPolicy(%s): %v", p.MerchantID, err)
		}
	}
}

// policies is every policy the fixture holds, with the gateway's channels
// and default TTL: what the gateway gathers for any SKU, plus entries
// Evaluate does not look at.
func (f fixture) policies() inventory.Policies {
	p := inventory.Policies{
		Channels: channels, DefaultStaleAfter: defaultStaleAfter,
		Locations: map[string]inventory.LocationPolicy{}, Merchants: map[string]inventory.MerchantPolicy{},
	}
	for _, l := range f.locations {
		p.Locations[l.Location] = l
	}
	for _, m := range f.merchants {
		p.Merchants[m.MerchantID] = m
	}
	return p
}

func (f fixture) state(t *testing.T, sku string) inventory.State {
	t.Helper()
	for _, s := range f.states {
		if s.SKU == sku {
			return s
		}
	}
	t.Fatalf("no fixture state %q", sku)
	return inventory.State{}
}

// want is the answer the gateway must give for s at at: the pure function's.
func (f fixture) want(s inventory.State, at time.Time) *pb.Availability {
	return codecs.SnapshotToProto(inventory.Evaluate(s, f.policies(), at))
}

// options are valid gateway options over the given lookups on free
// loopback ports.
func options(stock views.StockLookup, pol views.PolicyLookup) gateway.Options {
	return gateway.Options{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Stock: stock, Policies: pol,
		Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter},
	}
}
