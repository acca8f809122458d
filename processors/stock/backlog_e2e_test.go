package stock_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/backlog"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestBacklogCoalescesAFloodOnTheBroker runs the stock processor with a
// real Backlog on the embedded broker over loopback TCP: a flood of supply
// events ends with every SKU's final answer on the availability topic,
// published far fewer times than there were events; after the flood a
// single change is published by its own handling, not deferred.
func TestBacklogCoalescesAFloodOnTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	const events, skus = 3000, 200
	b := testkit.StartBroker(t)
	k := b.Kafka
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	watch := watchAvailability(t, k)

	// MaxDefer is out of the test's reach: only catching up flushes.
	bl, err := backlog.New(backlog.Options{Kafka: k, Lag: 20, Period: 20 * time.Millisecond, MaxDefer: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	backlog := &holdCounter{Backlog: bl, holds: map[string]int{}}
	p, err := stock.New(k.Brokers, cfg, nil, backlog, 0, append(k.ProcessorOptions(),
		goka.WithStorageBuilder(storage.DefaultBuilder(t.TempDir())),
		goka.WithRebalanceCallback(backlog.Rebalanced),
		goka.WithLogger(quietGoka{}))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, backlog.Run)
	testkit.Go(t, p.Run)
	ready, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitForReadyContext(ready); err != nil {
		t.Fatalf("processor not ready: %v", err)
	}
	flushesBefore := metricValue(t, "skuflow_stock_deferred_flushes_total")

	keys, vals := flood(t, events, skus)
	want := finalVersions(t, keys, vals)
	start := time.Now()
	produceAll(t, k, keys, vals)
	testkit.Eventually(t, 30*time.Second, func() error { return watch.matches(want) })
	t.Logf("every final answer published %s after the flood began", time.Since(start).Round(time.Millisecond))

	published := highWaterMarks(t, k, string(schema.Availability))
	t.Logf("%d availability messages for %d events over %d SKUs", published, events, len(want))
	if published < int64(len(want)) {
		t.Errorf("%d availability messages for %d SKUs", published, len(want))
	}
	if published > events/2 {
		t.Errorf("%d availability messages for %d events: publishing was not coalesced", published, events)
	}
	if n := metricValue(t, "skuflow_stock_deferred_flushes_total") - flushesBefore; n == 0 {
		t.Error("no deferred ticks were sent")
	}
	if backlog.total() == 0 {
		t.Error("no answer was deferred during the flood")
	}
	// Every deferral is resolved once the ticks are handled.
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := metricValue(t, "skuflow_stock_deferred_skus"); n != 0 {
			return fmt.Errorf("%v SKUs still deferred", n)
		}
		return nil
	})

	// After the flood, one change is published by its own handling: within
	// Lag of the head, it is not deferred (held back for a tick).
	one := keys[0]
	level := inventory.StockLevel{SKU: one, Location: "WH-0", OnHand: 4242, AsOf: floodBase.Add(time.Hour), Sequence: 1 << 40}
	v, err := codecs.EncodeSupplyEvent(level)
	if err != nil {
		t.Fatal(err)
	}
	want = finalVersions(t, append(slices.Clone(keys), one), append(slices.Clone(vals), v))
	heldBefore := backlog.count(one)
	flushesBefore = metricValue(t, "skuflow_stock_deferred_flushes_total")
	produceAll(t, k, []string{one}, [][]byte{v})
	testkit.Eventually(t, 30*time.Second, func() error { return watch.matches(map[string]string{one: want[one]}) })
	if n := backlog.count(one) - heldBefore; n != 0 {
		t.Errorf("the single change after the flood was deferred (%d holds) instead of published at once", n)
	}
	if n := metricValue(t, "skuflow_stock_deferred_flushes_total") - flushesBefore; n != 0 {
		t.Errorf("%v deferred ticks after the flood, want none", n)
	}
}

// holdCounter is a Backlog that counts, per SKU, the deferrals the
// processor starts (Hold).
type holdCounter struct {
	*backlog.Backlog
	mu    sync.Mutex
	holds map[string]int
}

func (h *holdCounter) Hold(p int32, sku, before string, at time.Time) {
	h.mu.Lock()
	h.holds[sku]++
	h.mu.Unlock()
	h.Backlog.Hold(p, sku, before, at)
}

func (h *holdCounter) count(sku string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holds[sku]
}

func (h *holdCounter) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.holds {
		n += c
	}
	return n
}

var floodBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// flood makes n supply events over nSKU SKUs and four locations, keyed by
// SKU: a third stock levels, the rest adjustments.
func flood(t *testing.T, n, nSKU int) ([]string, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 5))
	keys := make([]string, n)
	vals := make([][]byte, n)
	for i := range n {
		sku := fmt.Sprintf("SKU-%04d", i%nSKU) // every SKU, then at random
		if i >= nSKU {
			sku = fmt.Sprintf("SKU-%04d", rng.IntN(nSKU))
		}
		loc := fmt.Sprintf("WH-%d", rng.IntN(4))
		at := floodBase.Add(time.Duration(i) * time.Millisecond)
		var ev inventory.Event
		if i%3 == 0 {
			ev = inventory.StockLevel{SKU: sku, Location: loc, OnHand: int64(rng.IntN(1000)), AsOf: at, Sequence: uint64(i)}
		} else {
			ev = inventory.StockAdjustment{EventID: fmt.Sprintf("adj-%d", i), SKU: sku, Location: loc, Delta: int64(rng.IntN(21)-10) | 1, OccurredAt: at}
		}
		b, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		keys[i], vals[i] = sku, b
	}
	return keys, vals
}

// finalVersions folds the events through the domain and returns each
// SKU's final answer version with the default policies (no location
// policies are stored: every location is a warehouse).
func finalVersions(t *testing.T, keys []string, vals [][]byte) map[string]string {
	t.Helper()
	states := map[string]inventory.State{}
	for i, v := range vals {
		ev, err := codecs.DecodeSupplyEvent(v)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := states[keys[i]]
		if !ok {
			s = inventory.State{SKU: keys[i]}
		}
		if s, _, err = inventory.Apply(s, ev, floodBase); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		states[keys[i]] = s
	}
	want := make(map[string]string, len(states))
	for sku, s := range states {
		pol, err := schema.Gather(s, func(string) (*pb.PolicyEvent, error) { return nil, nil }, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want[sku] = inventory.Evaluate(s, pol, floodBase).Version
	}
	return want
}

// produceAll emits the messages on the supply topic with goka's emitter
// (its FNV-1a partitioner), as fast as it takes them, and returns once all
// are acknowledged.
func produceAll(t *testing.T, k kafkacfg.Options, keys []string, vals [][]byte) {
	t.Helper()
	em, err := goka.NewEmitter(k.Brokers, schema.Supply, new(codec.Bytes), k.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int64
	for i := range keys {
		pr, err := em.Emit(keys[i], vals[i])
		if err != nil {
			t.Fatal(err)
		}
		pr.Then(func(err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d messages not delivered", n)
	}
}

// availabilityWatch follows the availability topic: the latest version
// published per SKU.
type availabilityWatch struct {
	mu     sync.Mutex
	latest map[string]string
}

func watchAvailability(t *testing.T, k kafkacfg.Options) *availabilityWatch {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	w := &availabilityWatch{latest: map[string]string{}}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	t.Cleanup(func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		if err := c.Close(); err != nil {
			t.Errorf("closing the availability consumer: %v", err)
		}
	})
	for p := range int32(k.Partitions) {
		pc, err := c.ConsumePartition(string(schema.Availability), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				var a pb.Availability
				if err := proto.Unmarshal(m.Value, &a); err != nil {
					t.Errorf("availability message for %q does not decode: %v", m.Key, err)
					continue
				}
				if a.GetSku() != string(m.Key) {
					t.Errorf("availability for %q published under key %q", a.GetSku(), m.Key)
				}
				w.mu.Lock()
				w.latest[string(m.Key)] = a.GetVersion()
				w.mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			for err := range pc.Errors() {
				t.Errorf("consuming availability: %v", err)
			}
		}()
	}
	return w
}

// matches reports the first SKU whose latest published version is not
// the wanted one.
func (w *availabilityWatch) matches(want map[string]string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	wrong := 0
	var example error
	for sku, v := range want {
		if got := w.latest[sku]; got != v {
			wrong++
			example = fmt.Errorf("%s: latest published %q, want %q", sku, got, v)
		}
	}
	if wrong > 0 {
		return fmt.Errorf("%d of %d SKUs without their final answer, e.g. %w", wrong, len(want), example)
	}
	return nil
}

// highWaterMarks is how many messages were ever written to topic (offsets
// survive compaction).
func highWaterMarks(t *testing.T, k kafkacfg.Options, topic string) int64 {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var n int64
	for p := range int32(k.Partitions) {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		n += off
	}
	return n
}

// metricValue reads one of the stock package's metrics (a counter or a
// gauge, summed over its labels) from the default registry.
func metricValue(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	return 0
}

// quietGoka discards goka's log lines.
type quietGoka struct{}

func (quietGoka) Print(...any)          {}
func (quietGoka) Println(...any)        {}
func (quietGoka) Printf(string, ...any) {}
