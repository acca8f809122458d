package stock_test

import (
	"bytes"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/backlog"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// backlogHarness is the stock processor on goka's tester with a Backlog
// whose input heads the test sets: far ahead (every event is behind) or at
// zero (caught up). The deferred ticks the Backlog sends are kept until
// deliver() consumes them, as the processor would read them from the ticks
// topic.
type backlogHarness struct {
	*harness
	b        *backlog.Backlog
	outcomes *tester.QueueTracker

	mu   sync.Mutex
	head int64
	sent []*pb.StockTick
}

// farAhead is a head no test reaches: every input offset is behind it.
const farAhead = 1 << 40

func startBacklog(t *testing.T) *backlogHarness {
	t.Helper()
	h := &backlogHarness{}
	heads := func() (map[string]map[int32]int64, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := map[string]map[int32]int64{}
		for _, in := range []goka.Stream{schema.Supply, schema.SkuPolicies, schema.Demand} {
			out[string(in)] = map[int32]int64{0: h.head}
		}
		return out, nil
	}
	send := func(sku string, at time.Time) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sent = append(h.sent, &pb.StockTick{Sku: sku, At: timestamppb.New(at), Deferred: true})
		return nil
	}
	// MaxDefer is out of reach: only catching up flushes.
	h.b = backlog.NewDetached(backlog.Options{Lag: 10, MaxDefer: time.Hour}, heads, send, nil)

	h.harness = startWith(t, h.b)
	h.outcomes = h.gkt.NewQueueTracker(string(schema.Outcomes))
	return h
}

// behind makes every input partition far behind its head. The Backlog
// learns heads only for partitions it has seen a message of, so a test
// consumes one (the seed) first.
func (h *backlogHarness) behind() {
	h.setHead(farAhead)
}

// caughtUp puts the heads at zero and runs one Backlog step, which sends
// the deferred ticks (kept until deliver).
func (h *backlogHarness) caughtUp() {
	h.setHead(0)
}

func (h *backlogHarness) setHead(head int64) {
	h.mu.Lock()
	h.head = head
	h.mu.Unlock()
	h.b.Step()
}

// takeSent returns the deferred ticks sent since the last call.
func (h *backlogHarness) takeSent() []*pb.StockTick {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.sent
	h.sent = nil
	return out
}

// deliver consumes ticks on the ticks topic.
func (h *backlogHarness) deliver(ticks ...*pb.StockTick) {
	h.t.Helper()
	for _, tk := range ticks {
		h.consumeOn(schema.StockTicks, tk.GetSku(), marshal(h.t, tk), tk.GetAt().AsTime())
	}
}

// flush catches up, checks exactly one deferred tick was sent, for sku,
// and delivers it; it returns the tick for re-delivery.
func (h *backlogHarness) flush(what string) *pb.StockTick {
	h.t.Helper()
	h.caughtUp()
	sent := h.takeSent()
	if len(sent) != 1 || sent[0].GetSku() != sku || !sent[0].GetDeferred() {
		h.t.Fatalf("%s: sent deferred ticks %v, want one for %s", what, sent, sku)
	}
	h.deliver(sent[0])
	return sent[0]
}

// supplyAt consumes supply events with message time ts.
func (h *backlogHarness) supplyAt(ts time.Time, evs ...inventory.Event) {
	h.t.Helper()
	for _, ev := range evs {
		h.consume(ev.EventSKU(), encode(h.t, ev), ts)
	}
}

// seed consumes evs while caught up and forgets what they published.
func (h *backlogHarness) seed(evs ...inventory.Event) {
	h.t.Helper()
	h.supplyAt(t0, evs...)
	if n := len(h.availabilities()); n == 0 {
		h.t.Fatal("seed published nothing")
	}
	drain(h.changelog)
	h.expectNothing("seed")
}

// expectNothing fails on any availability message or dead letter.
func (h *backlogHarness) expectNothing(what string) {
	h.t.Helper()
	if a := h.availabilities(); len(a) != 0 {
		h.t.Errorf("%s: published %d availability messages: %v", what, len(a), a)
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %v", what, d)
	}
}

// expectNoTableWrites fails if anything was written to the changelog.
func (h *backlogHarness) expectNoTableWrites(what string) {
	h.t.Helper()
	if c := drain(h.changelog); len(c) != 0 {
		h.t.Errorf("%s: %d table writes, want none: %v", what, len(c), c)
	}
}

// fold applies supply events to s the way the processor does, at their
// message time.
func fold(t *testing.T, s inventory.State, ts []time.Time, evs ...inventory.Event) inventory.State {
	t.Helper()
	for i, ev := range evs {
		var err error
		if s, _, err = inventory.Apply(s, ev, ts[i]); err != nil {
			t.Fatalf("event %d %#v: %v", i, ev, err)
		}
	}
	return s
}

func (h *backlogHarness) expectTable(what string, want inventory.State) {
	h.t.Helper()
	got, ok := h.state(sku)
	if !ok {
		h.t.Fatalf("%s: no table value", what)
	}
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("%s: table holds\n%#v\nwant\n%#v", what, got, want)
	}
}

func version(s inventory.State, now time.Time) string {
	return inventory.Evaluate(s, cfg.Policies(), now).Version
}

// While behind, changes are stored but not published; once caught up, one
// deferred tick publishes one answer: the final state's, at the latest
// change's time.
func TestBacklogDefersWhileBehindThenPublishesOnce(t *testing.T) {
	h := startBacklog(t)
	seed := lvl("WH-1", 10, at(1), 1)
	h.seed(seed)
	state := fold(t, inventory.State{SKU: sku}, []time.Time{t0}, seed)

	h.behind()
	evs := []inventory.Event{adj("sale-1", "WH-1", -3, at(2)), lvl("WH-2", 5, at(3), 1), adj("receipt-1", "WH-1", 4, at(4))}
	ts := []time.Time{at(20), at(30), at(40)}
	for i, ev := range evs {
		h.supplyAt(ts[i], ev)
		h.expectNothing("deferred change " + reflect.TypeOf(ev).Name())
		state = fold(t, state, ts[i:i+1], ev)
		// Queries read the table: it stays current.
		h.expectTable("deferred change", state)
	}
	if c := drain(h.changelog); len(c) != len(evs) {
		t.Errorf("%d table writes for %d deferred changes", len(c), len(evs))
	}
	if s := h.takeSent(); len(s) != 0 {
		t.Fatalf("ticks sent while behind: %v", s)
	}

	tick := h.flush("caught up")
	h.expectAnswer("deferred tick", state, cfg.Policies(), at(40))
	h.expectNoTableWrites("deferred tick")

	// Once handled, nothing more: another step sends nothing, and the same
	// tick again (a redelivery) publishes nothing.
	h.b.Step()
	if s := h.takeSent(); len(s) != 0 {
		t.Errorf("a second step sent %v", s)
	}
	h.deliver(tick)
	h.expectNothing("redelivered deferred tick")
	h.expectNoTableWrites("redelivered deferred tick")

	// Caught up, a change is published at once.
	next := adj("sale-2", "WH-2", -1, at(5))
	h.supplyAt(at(50), next)
	h.expectAnswer("change after catching up", fold(t, state, []time.Time{at(50)}, next), cfg.Policies(), at(50))
}

// A backlog whose changes end where they began publishes nothing: the
// answer published before it is still right.
func TestBacklogDeferralNettingToNoChangePublishesNothing(t *testing.T) {
	h := startBacklog(t)
	seed := []inventory.Event{lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1)}
	h.seed(seed...)
	state := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, seed...)
	before := version(state, at(20))

	h.behind()
	up, down := adj("found", "WH-1", 3, at(2)), adj("lost", "WH-1", -3, at(3))
	h.supplyAt(at(20), up)
	mid := fold(t, state, []time.Time{at(20)}, up)
	if version(mid, at(20)) == before {
		t.Fatal("test setup: the first change does not change the answer")
	}
	h.supplyAt(at(21), down)
	final := fold(t, mid, []time.Time{at(21)}, down)
	if version(final, at(21)) != before {
		t.Fatal("test setup: the changes do not net to the answer before them")
	}
	if reflect.DeepEqual(final, state) {
		t.Fatal("test setup: the state did not change")
	}
	h.expectNothing("deferred changes")
	h.expectTable("deferred changes", final)
	drain(h.changelog)

	h.flush("caught up")
	h.expectNothing("deferred tick after a net-zero backlog")
	h.expectNoTableWrites("deferred tick")
}

// A deferred tick for a SKU without a deferral (already published, or
// deferred by another instance before a rebalance) does nothing, though a
// reconciler tick would publish and expire reservations.
func TestBacklogDeferredTickWithoutDeferralDoesNothing(t *testing.T) {
	h := startBacklog(t)
	h.seed(lvl("WH-1", 10, at(1), 1))
	h.consumeOn(schema.Demand, sku, encodeDemandEvent(t, reserve("o-1:1", "o-1", 2, "web", time.Minute)), at(2))
	if len(h.availabilities()) != 1 || len(drain(h.outcomes)) != 1 {
		t.Fatal("test setup: the reservation was not decided and published")
	}
	drain(h.changelog)
	raw := h.raw(sku)
	keys := h.gkt.GetTableKeys(schema.StockTable)

	// Published version unknown, the reservation expired long ago: a
	// reconciler tick would expire it and publish.
	late := timestamppb.New(at(3600))
	h.deliver(&pb.StockTick{Sku: sku, At: late, Deferred: true})
	h.expectNothing("deferred tick without a deferral")
	h.expectNoTableWrites("deferred tick without a deferral")
	if !bytes.Equal(h.raw(sku), raw) {
		t.Error("deferred tick without a deferral changed the table")
	}
	h.deliver(&pb.StockTick{Sku: "SKU-NONE", At: late, Deferred: true})
	h.expectNothing("deferred tick for an unknown SKU")
	h.expectNoTableWrites("deferred tick for an unknown SKU")
	if got := h.gkt.GetTableKeys(schema.StockTable); len(got) != len(keys) {
		t.Errorf("table keys %q, want %q", got, keys)
	}

	// The same tick without the flag is the reconciler's: it does both.
	h.deliver(&pb.StockTick{Sku: sku, At: late})
	if len(h.availabilities()) != 1 || len(drain(h.changelog)) != 1 {
		t.Error("test setup: a reconciler tick did not expire and publish")
	}
}

// A change processed once caught up ends the SKU's deferral: it publishes
// the answer once, and the deferred tick that follows publishes nothing.
func TestBacklogChangeAfterCatchingUpEndsTheDeferral(t *testing.T) {
	h := startBacklog(t)
	seed := lvl("WH-1", 10, at(1), 1)
	h.seed(seed)
	h.behind()
	evs := []inventory.Event{adj("sale-1", "WH-1", -3, at(2)), adj("sale-2", "WH-1", -2, at(3)), adj("sale-3", "WH-1", -1, at(4))}
	ts := []time.Time{at(20), at(21), at(30)}
	h.supplyAt(ts[0], evs[0])
	h.supplyAt(ts[1], evs[1])
	h.expectNothing("deferred changes")

	h.caughtUp() // sends the deferred tick; it is still on its way
	sent := h.takeSent()
	if len(sent) != 1 {
		t.Fatalf("sent %v, want one deferred tick", sent)
	}
	h.supplyAt(ts[2], evs[2])
	final := fold(t, inventory.State{SKU: sku}, append([]time.Time{t0}, ts...), append([]inventory.Event{seed}, evs...)...)
	h.expectAnswer("first change once caught up", final, cfg.Policies(), at(30))
	drain(h.changelog)

	h.deliver(sent...)
	h.expectNothing("deferred tick after the deferral ended")
	h.expectNoTableWrites("deferred tick after the deferral ended")
}

// The first change once caught up publishes the deferred answer even when
// that change itself leaves the answer as the deferred changes made it: the
// answer is compared with the one published before the deferral.
func TestBacklogChangeAfterCatchingUpPublishesTheDeferredAnswer(t *testing.T) {
	h := startBacklog(t)
	seed := []inventory.Event{lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1)}
	h.seed(seed...)
	h.behind()
	receipt := adj("receipt", "WH-2", 3, at(11))
	h.supplyAt(at(20), receipt)
	h.expectNothing("deferred change")
	h.caughtUp()
	sent := h.takeSent()

	// WH-1 goes to -3 raw, read as 0: the state changes, the answer not.
	shrink := adj("shrink", "WH-1", -3, at(2))
	h.supplyAt(at(30), shrink)
	final := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0, at(20), at(30)}, append(seed, receipt, shrink)...)
	if version(final, at(30)) != version(fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0, at(20)}, append(seed, receipt)...), at(30)) {
		t.Fatal("test setup: the caught-up change changes the answer")
	}
	h.expectAnswer("first change once caught up", final, cfg.Policies(), at(30))
	drain(h.changelog)
	h.deliver(sent...)
	h.expectNothing("deferred tick after the deferral ended")
}

// Demand is decided at once while behind: the outcome is emitted
// immediately; only the availability answer waits for the deferred tick.
func TestBacklogDemandOutcomesNotDeferred(t *testing.T) {
	h := startBacklog(t)
	dh := &demandHarness{harness: h.harness, outcomes: h.outcomes, model: inventory.State{SKU: sku}}
	dh.supplyAt(t0, lvl("WH-1", 10, at(1), 1))

	h.behind()
	want := dh.demand(reserve("o-1:1", "o-1", 3, "web", 10*time.Minute), at(10))
	if o := dh.expectOutcome("request while behind", want); !o.GetAccepted() {
		t.Errorf("outcome %v, want accepted", o)
	}
	h.expectNothing("request while behind")
	dh.expectTable("request while behind")
	want = dh.demand(reserve("o-2:1", "o-2", 20, "web", 10*time.Minute), at(11))
	if o := dh.expectOutcome("second request while behind", want); o.GetAccepted() {
		t.Errorf("outcome %v, want rejected (7 available)", o)
	}
	h.expectNothing("second request while behind")

	h.flush("caught up")
	// The rejection is recorded in the state too (a redelivered request
	// gets the same outcome): it is the latest deferred change.
	m := dh.expectPublished("deferred tick", at(11))
	if web := webChannel(t, m); web.GetReserved() != 3 || web.GetAvailable() != 7 {
		t.Errorf("web %v, want 3 reserved, 7 available", web)
	}
}

// The reconciler ticks any SKU whose published answer is behind its table,
// so it ticks deferred SKUs during a long backlog. While a SKU is deferred
// its tick publishes nothing (the deferral will, so the topic is not
// written once per reconcile interval during a flood), but it moves the
// deferral's evaluation time up to the tick's: the deferred answer is
// published as of that time at the latest (a cap window, a merchant's
// staleness may have changed since the deferred events). And when later
// changes bring the answer back to the one published before the deferral,
// nothing is published at all: the topic already says it.
func TestBacklogReconcilerTickDuringDeferral(t *testing.T) {
	for _, end := range []string{"deferred tick", "change after catching up"} {
		t.Run(end, func(t *testing.T) {
			h := startBacklog(t)
			seed := []inventory.Event{lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1)}
			h.seed(seed...)
			state := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, seed...)

			h.behind()
			up := adj("found", "WH-1", 3, at(2))
			h.supplyAt(at(20), up)
			state = fold(t, state, []time.Time{at(20)}, up)
			h.expectNothing("deferred change")
			// The reconciler sees the seed's answer published and the table
			// ahead of it.
			h.deliver(&pb.StockTick{Sku: sku, At: timestamppb.New(at(25)), PublishedVersion: version(fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, seed...), at(25))})
			h.expectNothing("reconciler tick of a deferred SKU")

			down := adj("lost", "WH-1", -3, at(3))
			switch end {
			case "deferred tick":
				h.supplyAt(at(30), down)
				h.expectNothing("deferred change")
				h.flush("caught up")
			case "change after catching up":
				h.caughtUp()
				h.supplyAt(at(30), down)
			}
			h.expectNothing("the answer is back to the published one")
		})
	}
}

// A deferred answer is published as of the latest reconciler tick's time if
// that is later than the deferred events: here a sales cap window has
// opened between the deferred change and the tick.
func TestBacklogDeferredAnswerAsOfTheTick(t *testing.T) {
	h := startBacklog(t)
	capEv := inventory.SalesCap{SKU: sku, Channel: "web", Limit: 2, WindowStart: at(100), WindowEnd: at(1000), AsOf: at(1)}
	h.policy(t0, capEv)
	h.seed(lvl("WH-1", 10, at(1), 1))
	state := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, capEv, lvl("WH-1", 10, at(1), 1))

	h.behind()
	up := adj("found", "WH-1", 1, at(2))
	h.supplyAt(at(20), up)
	state = fold(t, state, []time.Time{at(20)}, up)
	h.deliver(&pb.StockTick{Sku: sku, At: timestamppb.New(at(200)), PublishedVersion: "seen"})
	h.expectNothing("reconciler tick of a deferred SKU")
	h.flush("caught up")
	got := h.expectAnswer("deferred answer", state, cfg.Policies(), at(200))
	if c := channel(t, got, "web"); c.GetAvailable() != 2 {
		t.Errorf("web available %d, want the cap's 2 (the window is open at the tick's time)", c.GetAvailable())
	}
}

// A publish lost in a crash leaves the topic behind the table. The
// reconciler's tick of a deferred SKU carries the version it saw there,
// and the deferral compares with that: deferred events that net to no
// change still publish the answer over the stale one.
func TestBacklogReconcilerTickRepairsALostPublishDuringADeferral(t *testing.T) {
	h := startBacklog(t)
	seed := []inventory.Event{lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1)}
	h.seed(seed...)
	state := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, seed...)

	h.behind()
	up, down := adj("up", "WH-1", 3, at(2)), adj("down", "WH-1", -3, at(3))
	h.supplyAt(at(20), up)
	h.deliver(&pb.StockTick{Sku: sku, At: timestamppb.New(at(25)), PublishedVersion: "lost-publish"})
	h.supplyAt(at(30), down)
	state = fold(t, state, []time.Time{at(20), at(30)}, up, down)
	h.expectNothing("deferred")
	h.flush("caught up")
	h.expectAnswer("the answer over the stale one", state, cfg.Policies(), at(30))
}

// A deferral taken by a change after catching up is evaluated no earlier
// than a reconciler tick it absorbed: here a sales cap window opened
// between the deferred change and the tick.
func TestBacklogCaughtUpChangeEvaluatesNoEarlierThanTheTick(t *testing.T) {
	h := startBacklog(t)
	capEv := inventory.SalesCap{SKU: sku, Channel: "web", Limit: 2, WindowStart: at(100), WindowEnd: at(1000), AsOf: at(1)}
	h.policy(t0, capEv)
	h.seed(lvl("WH-1", 10, at(1), 1))
	state := fold(t, inventory.State{SKU: sku}, []time.Time{t0, t0}, capEv, lvl("WH-1", 10, at(1), 1))

	h.behind()
	first, second := adj("found", "WH-1", 1, at(2)), adj("found2", "WH-1", 1, at(3))
	h.supplyAt(at(20), first)
	h.deliver(&pb.StockTick{Sku: sku, At: timestamppb.New(at(200)), PublishedVersion: "seen"})
	h.caughtUp()
	h.supplyAt(at(30), second)
	state = fold(t, state, []time.Time{at(20), at(30)}, first, second)
	got := h.expectAnswer("caught-up change", state, cfg.Policies(), at(200))
	if c := channel(t, got, "web"); c.GetAvailable() != 2 {
		t.Errorf("web available %d, want the cap's 2", c.GetAvailable())
	}
}
