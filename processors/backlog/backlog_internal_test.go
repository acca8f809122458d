package backlog

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/skuflow/skuflow/schema"
)

// fakeCluster stands in for what a Backlog reaches over the network and
// for its clock: settable heads (or an error reading them), a log of the
// deferred ticks sent (or an error sending them), and a manual clock.
type fakeCluster struct {
	mu       sync.Mutex
	heads    map[string]map[int32]int64
	headsErr error
	// failing are the partitions whose heads the failing read lacks (nil:
	// all).
	failing  map[int32]bool
	sendErr  error
	sent     []sentTick
	attempts int
	now      time.Time
}

type sentTick struct {
	sku string
	at  time.Time
}

var backlogT0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// newFakeBacklog returns a Backlog on a fake cluster whose clock reads
// backlogT0.
func newFakeBacklog(lag int64, maxDefer time.Duration) (*Backlog, *fakeCluster) {
	c := &fakeCluster{heads: map[string]map[int32]int64{}, now: backlogT0}
	b := newBacklog(Options{Lag: lag, MaxDefer: maxDefer, Period: time.Hour})
	b.heads = c.readHeads
	b.send = c.send
	b.now = c.clock
	return b, c
}

func (c *fakeCluster) readHeads() (map[string]map[int32]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[int32]int64{}
	for t, ps := range c.heads {
		out[t] = maps.Clone(ps)
	}
	// The other input topics of a partition with a head are empty.
	for _, ps := range c.heads {
		for p := range ps {
			for _, t := range []string{"supply", "sku-policies", "demand"} {
				if out[t] == nil {
					out[t] = map[int32]int64{}
				}
				if _, ok := out[t][p]; !ok {
					out[t][p] = 0
				}
			}
		}
	}
	if c.headsErr != nil {
		// The read failed for the failing partitions (all by default).
		for _, ps := range out {
			for p := range ps {
				if c.failing == nil || c.failing[p] {
					delete(ps, p)
				}
			}
		}
	}
	return out, c.headsErr
}

func (c *fakeCluster) send(sku string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts++
	if c.sendErr != nil {
		return c.sendErr
	}
	c.sent = append(c.sent, sentTick{sku, at})
	return nil
}

func (c *fakeCluster) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// at sets the clock to backlogT0 + d.
func (c *fakeCluster) at(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = backlogT0.Add(d)
}

func (c *fakeCluster) setHead(topic string, p int32, head int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heads[topic] == nil {
		c.heads[topic] = map[int32]int64{}
	}
	c.heads[topic][p] = head
}

func (c *fakeCluster) setHeadsErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.headsErr = err
}

func (c *fakeCluster) setSendErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendErr = err
}

// takeSent returns the SKUs of the ticks sent since the last call, sorted,
// and checks that each was sent at the clock's time.
func (c *fakeCluster) takeSent(t *testing.T) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var skus []string
	for _, s := range c.sent {
		if !s.at.Equal(c.now) {
			t.Errorf("tick for %s sent with time %v, want the clock's %v", s.sku, s.at, c.now)
		}
		skus = append(skus, s.sku)
	}
	c.sent = nil
	slices.Sort(skus)
	return skus
}

func expectSent(t *testing.T, c *fakeCluster, what string, want ...string) {
	t.Helper()
	if got := c.takeSent(t); !slices.Equal(got, want) {
		t.Errorf("%s: sent deferred ticks for %q, want %q", what, got, want)
	}
}

func gaugeValue(t *testing.T, g prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatalf("reading metric: %v", err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	t.Fatalf("metric is neither a gauge nor a counter: %v", &m)
	return 0
}

// supplyIn is the input topic the tests observe.
const supplyIn = string(schema.Supply)

func TestBacklogObserveBehindOnlyPastLag(t *testing.T) {
	b, c := newFakeBacklog(10, time.Hour)
	c.setHead(supplyIn, 0, 100)
	c.setHead(supplyIn, 1, 100)

	// No head known yet: never behind, however far the offset.
	if b.Observe(supplyIn, 0, 0) {
		t.Error("behind before any head was read")
	}
	b.Step() // reads heads for partition 0, the only one seen so far

	for _, tc := range []struct {
		offset int64
		behind bool
	}{
		{0, true},   // 100 - 1 = 99 behind
		{88, true},  // 100 - 89 = 11 > 10
		{89, false}, // 100 - 90 = 10, not more than Lag
		{90, false},
		{99, false},
		{150, false}, // past the (stale) head
		{50, true},   // a redelivery from further back is behind again
	} {
		if got := b.Observe(supplyIn, 0, tc.offset); got != tc.behind {
			t.Errorf("observe(offset %d) with head 100, lag 10 = %v, want %v", tc.offset, got, tc.behind)
		}
	}
	// Heads are per topic and per partition.
	if b.Observe(string(schema.Demand), 0, 0) {
		t.Error("behind on a topic whose head is unknown")
	}
	if b.Observe(supplyIn, 1, 0) {
		t.Error("partition 1 behind before a Step read its head")
	}
	b.Step()
	if !b.Observe(supplyIn, 1, 0) {
		t.Error("partition 1 not behind after a Step read its head")
	}
	// A head missing from a later read keeps the last one known.
	c.mu.Lock()
	delete(c.heads[supplyIn], 0)
	c.mu.Unlock()
	b.Step()
	if !b.Observe(supplyIn, 0, 0) {
		t.Error("partition 0 forgot its head when a read did not include it")
	}
}

func TestNilBacklogIsNeverBehind(t *testing.T) {
	var b *Backlog
	if b.Observe(supplyIn, 0, 0) {
		t.Error("nil Backlog behind")
	}
	if b.Extend(0, "SKU-1", backlogT0) {
		t.Error("nil Backlog extended a deferral")
	}
	if d, ok := b.Take(0, "SKU-1"); ok {
		t.Errorf("nil Backlog returned deferral %+v", d)
	}
}

func TestBacklogExtendAndTake(t *testing.T) {
	b, _ := newFakeBacklog(10, time.Hour)
	if b.Extend(0, "A", backlogT0) {
		t.Error("extend reported a deferral that was never held")
	}
	b.Hold(0, "A", "v0", backlogT0.Add(time.Second))
	if !b.Extend(0, "A", backlogT0.Add(3*time.Second)) {
		t.Error("extend did not find the deferral")
	}
	if !b.Extend(0, "A", backlogT0.Add(2*time.Second)) { // earlier: kept, time unchanged
		t.Error("extend did not find the deferral")
	}
	if b.Extend(1, "A", backlogT0) {
		t.Error("a deferral on partition 0 was found on partition 1")
	}
	d, ok := b.Take(0, "A")
	if !ok || d.Before != "v0" || !d.At.Equal(backlogT0.Add(3*time.Second)) {
		t.Errorf("take = %+v, %v; want before v0 at the latest change's time", d, ok)
	}
	if _, ok := b.Take(0, "A"); ok {
		t.Error("a deferral was taken twice")
	}
}

// A deferral made in an earlier ownership of its partition is kept, but
// forgets what was published before it (another instance may have
// published meanwhile), so its answer is published whatever it is; the
// same ownership keeps everything.
func TestBacklogClaimForgetsWhatAnotherOwnershipPublished(t *testing.T) {
	var nb *Backlog
	nb.Claim(0, context.Background()) // safe on nil

	b, _ := newFakeBacklog(10, time.Hour)
	first := context.WithValue(context.Background(), struct{}{}, 1)
	b.Claim(0, first)
	b.Claim(1, first)
	b.Hold(0, "A", "va", backlogT0)
	b.Hold(1, "B", "vb", backlogT0)
	b.Claim(0, first)
	if d, ok := b.Take(0, "A"); !ok || d.Before != "va" {
		t.Fatalf("the same ownership changed its deferral: %+v, %v", d, ok)
	}
	b.Hold(0, "A", "va", backlogT0)
	second := context.WithValue(context.Background(), struct{}{}, 2)
	b.Claim(0, second)
	if d, ok := b.Take(0, "A"); !ok || d.Before != "" {
		t.Errorf("after a new ownership the deferral is %+v, %v; want it kept with nothing known published", d, ok)
	}
	if d, ok := b.Take(1, "B"); !ok || d.Before != "vb" {
		t.Errorf("another partition's deferral changed: %+v, %v", d, ok)
	}
}

func TestBacklogStepFlushesCaughtUpPartitionOnce(t *testing.T) {
	b, c := newFakeBacklog(10, time.Hour)
	c.setHead(supplyIn, 0, 100)
	b.Observe(supplyIn, 0, 0)
	b.Step()
	if !b.Observe(supplyIn, 0, 50) {
		t.Fatal("not behind at offset 50 of 100")
	}
	b.Hold(0, "A", "va", backlogT0)
	b.Hold(0, "B", "vb", backlogT0)
	c.at(time.Second)
	b.Step()
	expectSent(t, c, "still behind")
	if got := gaugeValue(t, deferredSKUs); got != 2 {
		t.Errorf("deferred SKUs gauge %v, want 2", got)
	}

	b.Observe(supplyIn, 0, 95) // within Lag of the head
	c.at(2 * time.Second)
	b.Step()
	expectSent(t, c, "caught up", "A", "B")
	if got := gaugeValue(t, inputLag.WithLabelValues(supplyIn, "0")); got != 4 {
		t.Errorf("input lag gauge %v, want 4 (head 100, next offset 96)", got)
	}
	c.at(3 * time.Second)
	b.Step()
	expectSent(t, c, "second step")
	// Sent but not yet answered: still pending.
	if got := gaugeValue(t, deferredSKUs); got != 2 {
		t.Errorf("deferred SKUs gauge %v, want 2 until the ticks are handled", got)
	}
	if _, ok := b.Take(0, "A"); !ok {
		t.Fatal("the flushed deferral of A is gone before its tick was handled")
	}
	b.Step()
	if got := gaugeValue(t, deferredSKUs); got != 1 {
		t.Errorf("deferred SKUs gauge %v, want 1 after A's tick", got)
	}
	b.Take(0, "B")
	b.Step()
	if got := gaugeValue(t, deferredSKUs); got != 0 {
		t.Errorf("deferred SKUs gauge %v, want 0", got)
	}
	expectSent(t, c, "after the ticks")

	// A new deferral on the caught-up partition (a burst within the Lag is
	// not deferred, but a new backlog is) is flushed by the next caught-up
	// Step, once.
	b.Hold(0, "A", "va2", backlogT0)
	b.Step()
	b.Step()
	expectSent(t, c, "new deferral", "A")
}

func TestBacklogStepMaxDeferWhileBehind(t *testing.T) {
	const maxDefer = 5 * time.Second
	b, c := newFakeBacklog(10, maxDefer)
	c.setHead(supplyIn, 0, 1000)
	b.Observe(supplyIn, 0, 0)
	b.Step()
	b.Hold(0, "A", "va", backlogT0)
	c.at(2 * time.Second)
	b.Hold(0, "B", "vb", backlogT0.Add(2*time.Second))

	c.at(maxDefer - time.Millisecond)
	b.Step()
	expectSent(t, c, "before MaxDefer")
	c.at(maxDefer)
	b.Step()
	expectSent(t, c, "A deferred for MaxDefer", "A")
	c.at(maxDefer + time.Second)
	b.Step()
	expectSent(t, c, "A just sent, B not due")
	c.at(2*time.Second + maxDefer)
	b.Step()
	expectSent(t, c, "B deferred for MaxDefer", "B")
	// A's tick was not handled (lost, say): sent again MaxDefer after it.
	c.at(2*maxDefer - time.Millisecond)
	b.Step()
	expectSent(t, c, "A not due again yet")
	c.at(2 * maxDefer)
	b.Step()
	expectSent(t, c, "A still pending after another MaxDefer", "A")
	// Once handled, nothing is sent for it again.
	b.Take(0, "A")
	b.Take(0, "B")
	c.at(10 * maxDefer)
	b.Step()
	expectSent(t, c, "after the ticks were handled")
}

// A deferral taken and held again starts a new MaxDefer period: the old
// one's queue entry must not flush it early.
func TestBacklogMaxDeferCountsFromTheNewDeferral(t *testing.T) {
	const maxDefer = 5 * time.Second
	b, c := newFakeBacklog(10, maxDefer)
	c.setHead(supplyIn, 0, 1000)
	b.Observe(supplyIn, 0, 0)
	b.Step()
	b.Hold(0, "A", "v1", backlogT0)
	c.at(time.Second)
	b.Take(0, "A")
	c.at(2 * time.Second)
	b.Hold(0, "A", "v2", backlogT0.Add(2*time.Second))
	c.at(maxDefer)
	b.Step()
	expectSent(t, c, "the first deferral's MaxDefer")
	c.at(2*time.Second + maxDefer)
	b.Step()
	expectSent(t, c, "the second deferral's MaxDefer", "A")
}

func TestBacklogHeadsErrorBlocksOnlyTheCaughtUpFlush(t *testing.T) {
	const maxDefer = 5 * time.Second
	b, c := newFakeBacklog(10, maxDefer)
	c.setHead(supplyIn, 0, 100)
	b.Observe(supplyIn, 0, 0)
	b.Step()
	b.Observe(supplyIn, 0, 50)
	b.Hold(0, "A", "va", backlogT0)
	c.at(3 * time.Second)
	b.Hold(0, "B", "vb", backlogT0.Add(3*time.Second))

	// Caught up, but the heads read fails: without a fresh head the
	// partition is not taken to have caught up.
	b.Observe(supplyIn, 0, 99)
	c.setHeadsErr(errors.New("broker unreachable"))
	c.at(4 * time.Second)
	b.Step()
	expectSent(t, c, "heads unreadable")
	c.at(maxDefer)
	b.Step()
	expectSent(t, c, "heads unreadable, A deferred for MaxDefer", "A")

	c.setHeadsErr(nil)
	c.at(maxDefer + time.Millisecond)
	b.Step()
	expectSent(t, c, "heads readable again", "B")
}

// A read that fails for some partitions still lets the others catch up.
func TestBacklogPartialHeadsLetTheReadPartitionsCatchUp(t *testing.T) {
	b, c := newFakeBacklog(10, time.Hour)
	for p := range int32(2) {
		c.setHead(supplyIn, p, 100)
		b.Observe(supplyIn, p, 0)
	}
	b.Step()
	b.Hold(0, "A", "va", backlogT0)
	b.Hold(1, "B", "vb", backlogT0)
	b.Observe(supplyIn, 0, 99)
	b.Observe(supplyIn, 1, 99)
	c.mu.Lock()
	c.headsErr, c.failing = errors.New("partition 0's leader is gone"), map[int32]bool{0: true}
	c.mu.Unlock()
	b.Step()
	expectSent(t, c, "partition 0 unreadable", "B")
}

func TestBacklogRebalancedForgetsUnassignedPartitions(t *testing.T) {
	const maxDefer = 5 * time.Second
	b, c := newFakeBacklog(10, maxDefer)
	for p := range int32(3) {
		c.setHead(supplyIn, p, 100)
		b.Observe(supplyIn, p, 0)
	}
	b.Step()
	b.Hold(0, "A", "va", backlogT0)
	b.Hold(1, "B", "vb", backlogT0)
	b.Hold(2, "C", "vc", backlogT0)

	b.Rebalanced(goka.Assignment{0: -1, 2: -1})
	if b.Observe(supplyIn, 1, 0) {
		t.Error("a partition assigned anew is behind before its head was read again")
	}
	for _, p := range []int32{0, 2} {
		b.Observe(supplyIn, p, 99) // caught up
	}
	c.at(time.Second)
	b.Step()
	if got := gaugeValue(t, deferredSKUs); got != 2 {
		t.Errorf("deferred SKUs gauge %v, want 2 (A and C)", got)
	}
	expectSent(t, c, "caught up after the rebalance", "A", "C")
	c.at(time.Second + maxDefer)
	b.Step()
	expectSent(t, c, "MaxDefer after the rebalance", "A", "C")
	if _, ok := b.Take(1, "B"); ok {
		t.Error("the deferral of an unassigned partition survived the rebalance")
	}
}

func TestBacklogSendErrorKeepsTheDeferral(t *testing.T) {
	const maxDefer = 5 * time.Second
	b, c := newFakeBacklog(10, maxDefer)
	c.setHead(supplyIn, 0, 100)
	b.Observe(supplyIn, 0, 0)
	b.Step()
	b.Observe(supplyIn, 0, 50)
	b.Hold(0, "A", "va", backlogT0)
	b.Observe(supplyIn, 0, 99)
	flushes := gaugeValue(t, deferredFlushes)

	c.setSendErr(errors.New("producer closed"))
	c.at(time.Second)
	b.Step()
	if c.attempts != 1 {
		t.Fatalf("%d send attempts, want 1", c.attempts)
	}
	if got := gaugeValue(t, deferredFlushes); got != flushes {
		t.Errorf("flush counter moved by %v on a failed send", got-flushes)
	}
	c.setSendErr(nil)
	c.at(time.Second + maxDefer)
	b.Step()
	expectSent(t, c, "retry after MaxDefer", "A")
	if got := gaugeValue(t, deferredFlushes); got != flushes+1 {
		t.Errorf("flush counter moved by %v, want 1", got-flushes)
	}
	if d, ok := b.Take(0, "A"); !ok || d.Before != "va" {
		t.Errorf("deferral after the retry: %+v, %v", d, ok)
	}
}

// Step runs on its own goroutine beside the processor's callbacks; the race
// detector checks the locking.
func TestBacklogConcurrentStepAndCallbacks(t *testing.T) {
	b, c := newFakeBacklog(5, time.Millisecond)
	for p := range int32(4) {
		c.setHead(supplyIn, p, 1000)
	}
	done := make(chan struct{})
	stepped := make(chan struct{})
	go func() {
		defer close(stepped)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			c.at(time.Duration(i) * time.Millisecond)
			b.Step()
			if i%50 == 0 {
				b.Rebalanced(goka.Assignment{0: -1, 1: -1, 2: -1, 3: -1})
			}
		}
	}()
	var wg sync.WaitGroup
	for p := range int32(4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := range int64(2000) {
				sku := string(rune('A' + off%7))
				if b.Observe(supplyIn, p, off) && !b.Extend(p, sku, backlogT0) {
					b.Hold(p, sku, "v", backlogT0)
				} else if off%3 == 0 {
					b.Take(p, sku)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	<-stepped
}

// An assigned partition's heads are read at the next Step, so the first
// message of a replay is already known to be behind; a dropped partition's
// lag is no longer exported.
func TestBacklogRebalancedTracksAssignedPartitions(t *testing.T) {
	b, c := newFakeBacklog(10, 5*time.Second)
	c.setHead(supplyIn, 4, 100)
	c.setHead(supplyIn, 5, 100)
	b.Rebalanced(goka.Assignment{4: -1, 5: -1})
	b.Step()
	if !b.Observe(supplyIn, 4, 0) {
		t.Error("the first message of an assigned partition 90 behind its head is not behind")
	}
	b.Observe(supplyIn, 5, 0)
	b.Step()
	if got := gaugeValue(t, inputLag.WithLabelValues(supplyIn, "5")); got != 99 {
		t.Fatalf("lag of partition 5 is %v, want 99", got)
	}
	b.Rebalanced(goka.Assignment{4: -1})
	if inputLag.DeleteLabelValues(supplyIn, "5") {
		t.Error("the lag of a partition no longer assigned is still exported")
	}
}

// Before its first message, a newly assigned partition's position is the
// group's committed offset, so its lag shows while it recovers.
func TestBacklogLagFromCommittedOffsetsBeforeTheFirstMessage(t *testing.T) {
	b, c := newFakeBacklog(10, time.Hour)
	var asked []int32
	b.committed = func(parts []int32) (map[string]map[int32]int64, error) {
		asked = append(asked, parts...)
		return map[string]map[int32]int64{supplyIn: {7: 40}}, nil
	}
	c.setHead(supplyIn, 7, 100)
	b.Rebalanced(goka.Assignment{7: -1})
	b.Step()
	if got := gaugeValue(t, inputLag.WithLabelValues(supplyIn, "7")); got != 60 {
		t.Fatalf("lag of partition 7 before its first message is %v, want 60 (head 100, committed 40)", got)
	}
	if !b.Observe(supplyIn, 7, 40) {
		t.Error("the first message, 59 behind the head, is not behind")
	}
	b.Step()
	if len(asked) != 1 || asked[0] != 7 {
		t.Errorf("committed offsets asked for partitions %v, want [7] once", asked)
	}
}
