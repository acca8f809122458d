package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

var sweepCfg = inventory.Base{Channels: []string{"web", "marketplace"}, DefaultStaleAfter: time.Hour}

// clock is a settable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// sweepHarness is a reconciler whose views, and the stock processor it
// ticks, run on goka's tester: no broker. Ticks it emits stay queued until
// catchup() lets the processor read them.
type sweepHarness struct {
	t     *testing.T
	gkt   *tester.Tester
	r     *Reconciler
	em    *goka.Emitter
	clock *clock
	ticks *tester.QueueTracker
	avail *tester.QueueTracker
}

func startSweep(t *testing.T, partitions int) *sweepHarness {
	t.Helper()
	gkt := tester.New(t)
	proc, err := stock.New(nil, sweepCfg, nil, nil, 0, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := views.NewStock(nil, goka.WithViewTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	pv, err := views.NewPolicies(nil, goka.WithViewTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	av, err := views.NewAvailability(nil, goka.WithViewTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	// The tester's emitter waits for every consumer after each Emit; the
	// plain producer does not, so ticks stay queued, as behind a busy
	// partition, until catchup().
	em, err := goka.NewEmitter(nil, schema.StockTicks, new(codec.Bytes),
		goka.WithEmitterTester(gkt), goka.WithEmitterProducerBuilder(gkt.ProducerBuilder()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runners := []interface{ Run(context.Context) error }{proc, sv, pv, av}
	done := make(chan error, len(runners))
	for _, r := range runners {
		go func() { done <- r.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range runners {
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("a processor or view did not stop within 10s")
				return
			}
		}
		if err := em.Finish(); err != nil {
			t.Errorf("emitter: %v", err)
		}
	})
	c := &clock{now: t0}
	o := Options{
		Kafka:    kafkacfg.Options{Brokers: []string{"tester:0"}, Partitions: partitions, Replication: 1},
		Base:     sweepCfg,
		Interval: time.Second,
		DataDir:  t.TempDir(),
		Now:      c.Now,
	}
	r := &Reconciler{o: o, log: slog.New(slog.DiscardHandler), stock: sv, pols: pv, avail: av,
		sent: map[string]sentTick{}}
	h := &sweepHarness{t: t, gkt: gkt, r: r, em: em, clock: c,
		ticks: gkt.NewQueueTracker(string(schema.StockTicks)),
		avail: gkt.NewQueueTracker(string(schema.Availability))}
	gkt.Catchup()
	testkit.Eventually(t, 30*time.Second, func() error {
		if !(sv.Ready() && pv.Ready() && av.Ready()) {
			return fmt.Errorf("views not ready: stock %v, policies %v, availability %v", sv.Ready(), pv.Ready(), av.Ready())
		}
		return nil
	})
	return h
}

// sweep runs one scan and returns the ticks it emitted.
func (h *sweepHarness) sweep() []*pb.StockTick {
	h.t.Helper()
	if _, err := h.r.Sweep(h.em); err != nil {
		h.t.Fatalf("Sweep: %v", err)
	}
	var out []*pb.StockTick
	for {
		key, raw, ok := h.ticks.NextRaw()
		if !ok {
			return out
		}
		tk, err := codecs.DecodeStockTick(raw)
		if err != nil {
			h.t.Fatalf("tick %x: %v", raw, err)
		}
		if tk.GetSku() != key {
			h.t.Errorf("tick for %q emitted under key %q", tk.GetSku(), key)
		}
		out = append(out, tk)
	}
}

// catchup lets the stock processor and the views read everything queued,
// and returns the answers published meanwhile.
func (h *sweepHarness) catchup() []*pb.Availability {
	h.t.Helper()
	h.gkt.Catchup()
	var out []*pb.Availability
	for {
		_, v, ok := h.avail.Next()
		if !ok {
			return out
		}
		out = append(out, v.(*pb.Availability))
	}
}

func level(sku, loc string, onHand int64, asOf time.Time) inventory.State {
	s, _, err := inventory.Apply(inventory.State{SKU: sku}, inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: 1}, asOf)
	if err != nil {
		panic(err)
	}
	return s
}

// The reconciler ticks a SKU whose state was stored but never published,
// the processor publishes it, and the next scan finds nothing to do.
func TestSweepHealsUnpublishedState(t *testing.T) {
	h := startSweep(t, 1)
	s1, s2 := level("SKU-1", "WH-1", 10, t0.Add(-time.Minute)), level("SKU-2", "WH-1", 3, t0.Add(-time.Minute))
	h.gkt.SetTableValue(schema.StockTable, "SKU-1", s1)
	h.gkt.SetTableValue(schema.StockTable, "SKU-2", s2)
	h.gkt.Catchup()

	ticks := h.sweep()
	if len(ticks) != 2 {
		t.Fatalf("%d ticks, want 2: %v", len(ticks), ticks)
	}
	for _, tk := range ticks {
		if !tk.GetAt().AsTime().Equal(t0) || tk.GetPublishedVersion() != "" {
			t.Errorf("tick %v, want at %v with no published version", tk, t0)
		}
	}
	published := h.catchup()
	if len(published) != 2 {
		t.Fatalf("%d answers published, want 2: %v", len(published), published)
	}
	for _, m := range published {
		s := map[string]inventory.State{"SKU-1": s1, "SKU-2": s2}[m.GetSku()]
		want := codecs.SnapshotToProto(inventory.Evaluate(s, sweepCfg.Policies(), t0))
		if !proto.Equal(m, want) {
			t.Errorf("published\n%v\nwant\n%v", m, want)
		}
	}
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Errorf("scan after healing emitted %v", ticks)
	}
}

// A location policy change moves no SKU event; the reconciler notices the
// answer differs and the tick publishes it.
func TestSweepTicksOnPolicyChange(t *testing.T) {
	h := startSweep(t, 1)
	s := level("SKU-1", "WH-1", 10, t0.Add(-time.Minute))
	h.gkt.SetTableValue(schema.StockTable, "SKU-1", s)
	h.sweep()
	if got := h.catchup(); len(got) != 1 {
		t.Fatalf("%d answers, want 1", len(got))
	}
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Fatalf("ticks %v with nothing changed", ticks)
	}

	closed := inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, Closed: true, AsOf: t0}
	h.gkt.SetTableValue(schema.PoliciesTable, schema.LocationKey("WH-1"),
		&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(closed)}})
	h.clock.Set(t0.Add(time.Second))
	ticks := h.sweep()
	if len(ticks) != 1 || ticks[0].GetSku() != "SKU-1" || ticks[0].GetPublishedVersion() == "" {
		t.Fatalf("ticks %v, want one for SKU-1 naming the published version", ticks)
	}
	got := h.catchup()
	if len(got) != 1 {
		t.Fatalf("%d answers, want 1", len(got))
	}
	pol := sweepCfg.Policies()
	pol.Locations = map[string]inventory.LocationPolicy{"WH-1": closed}
	if want := codecs.SnapshotToProto(inventory.Evaluate(s, pol, t0.Add(time.Second))); !proto.Equal(got[0], want) {
		t.Errorf("published\n%v\nwant\n%v", got[0], want)
	}
	for _, c := range got[0].GetChannels() {
		if c.GetAvailable() != 0 {
			t.Errorf("%s available %d at a closed location", c.GetChannel(), c.GetAvailable())
		}
	}
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Errorf("ticks %v after the policy change was published", ticks)
	}
}

// A tick still queued is not repeated every scan, only after retickAfter.
func TestSweepDoesNotRepeatQueuedTicks(t *testing.T) {
	h := startSweep(t, 1)
	h.gkt.SetTableValue(schema.StockTable, "SKU-1", level("SKU-1", "WH-1", 10, t0.Add(-time.Minute)))
	if ticks := h.sweep(); len(ticks) != 1 {
		t.Fatalf("%d ticks, want 1", len(ticks))
	}
	for i := range 9 {
		h.clock.Set(t0.Add(time.Duration(i+1) * time.Second))
		if ticks := h.sweep(); len(ticks) != 0 {
			t.Fatalf("scan %d re-ticked a queued SKU: %v", i+2, ticks)
		}
	}
	h.clock.Set(t0.Add(h.r.retickAfter()))
	if ticks := h.sweep(); len(ticks) != 1 {
		t.Fatalf("after retickAfter: %d ticks, want 1", len(ticks))
	}
	// Once the answer is published the memory of the tick goes.
	h.catchup()
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Fatalf("ticks %v after publishing", ticks)
	}
	if len(h.r.sent) != 0 {
		t.Errorf("sent still remembers %v", h.r.sent)
	}
}

// A merchant location going stale changes the answer with no event at all.
func TestSweepTicksWhenMerchantGoesStale(t *testing.T) {
	h := startSweep(t, 1)
	loc := inventory.LocationPolicy{Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: t0}
	h.gkt.SetTableValue(schema.PoliciesTable, schema.LocationKey("M-1"),
		&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(loc)}})
	s := level("SKU-1", "M-1", 4, t0)
	h.gkt.SetTableValue(schema.StockTable, "SKU-1", s)
	h.sweep()
	if got := h.catchup(); len(got) != 1 || got[0].GetChannels()[0].GetAvailable() != 4 {
		t.Fatalf("first answer %v, want 4 available", got)
	}
	h.clock.Set(t0.Add(59 * time.Minute))
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Fatalf("ticks %v before the ttl", ticks)
	}
	h.clock.Set(t0.Add(time.Hour))
	if ticks := h.sweep(); len(ticks) != 1 || !ticks[0].GetAt().AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("ticks %v at the ttl, want one at %v", ticks, t0.Add(time.Hour))
	}
	got := h.catchup()
	if len(got) != 1 || got[0].GetChannels()[0].GetAvailable() != 0 || !got[0].GetLocations()[0].GetStale() {
		t.Fatalf("answer at the ttl %v, want M-1 stale and nothing available", got)
	}
}

// With an assignment, only SKUs in owned partitions are ticked.
func TestSweepOnlyOwnedPartitions(t *testing.T) {
	const partitions = 4
	h := startSweep(t, partitions)
	byPartition := map[int32]string{}
	for i := 0; len(byPartition) < partitions; i++ {
		sku := "SKU-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		p := h.r.partition(sku)
		if _, ok := byPartition[p]; !ok {
			byPartition[p] = sku
			h.gkt.SetTableValue(schema.StockTable, sku, level(sku, "WH-1", 1, t0))
		}
	}
	h.r.Rebalanced(goka.Assignment{1: 0, 3: 0})
	got := map[string]bool{}
	for _, tk := range h.sweep() {
		got[tk.GetSku()] = true
	}
	want := map[string]bool{byPartition[1]: true, byPartition[3]: true}
	if len(got) != len(want) || !got[byPartition[1]] || !got[byPartition[3]] {
		t.Errorf("ticked %v, want exactly the SKUs of partitions 1 and 3 %v", got, want)
	}
	// Losing every partition stops ticking altogether.
	h.r.Rebalanced(goka.Assignment{})
	h.clock.Set(t0.Add(h.r.retickAfter()))
	if ticks := h.sweep(); len(ticks) != 0 {
		t.Errorf("ticked %v with no partitions owned", ticks)
	}
}
