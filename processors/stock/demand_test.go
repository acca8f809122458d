package stock_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// demandHarness is the stock processor on goka's tester with a pure model
// beside it: every message goes to both, and the table, the outcomes and
// the availability messages must be what inventory.Apply, Demand, Expire
// and Evaluate give.
type demandHarness struct {
	*harness
	outcomes *tester.QueueTracker
	demandQ  *tester.QueueTracker
	model    inventory.State
}

func startDemand(t *testing.T) *demandHarness {
	t.Helper()
	h := start(t)
	return &demandHarness{
		harness:  h,
		outcomes: h.gkt.NewQueueTracker(string(schema.Outcomes)),
		demandQ:  h.gkt.NewQueueTracker(string(schema.Demand)),
		model:    inventory.State{SKU: sku},
	}
}

func encodeDemandEvent(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	env, err := codecs.DemandEventToProto(ev)
	if err != nil {
		t.Fatalf("DemandEventToProto(%#v): %v", ev, err)
	}
	data, err := codecs.MarshalDeterministic(env)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return data
}

func reserve(id, order string, qty int64, channel string, ttl time.Duration) inventory.ReservationRequested {
	return inventory.ReservationRequested{ReservationID: id, OrderID: order, SKU: sku, Channel: channel, Quantity: qty, TTL: ttl}
}

func release(id string) inventory.ReservationReleased {
	return inventory.ReservationReleased{ReservationID: id, SKU: sku, Reason: inventory.ReleaseCancelled}
}

func fulfil(id, loc string, at time.Time) inventory.ReservationFulfilled {
	return inventory.ReservationFulfilled{ReservationID: id, SKU: sku, Location: loc, FulfilledAt: at}
}

// supplyAt feeds supply or SKU policy events to the processor and the
// model, at message time ts, and forgets what they published.
func (h *demandHarness) supplyAt(ts time.Time, evs ...inventory.Event) {
	h.t.Helper()
	for _, ev := range evs {
		var err error
		if h.model, _, err = inventory.Apply(h.model, ev, ts); err != nil {
			h.t.Fatalf("model: %#v: %v", ev, err)
		}
		switch ev.(type) {
		case inventory.StockLevel, inventory.StockAdjustment:
			h.consume(sku, encode(h.t, ev), ts)
		default:
			h.consumeOn(schema.SkuPolicies, sku, encodeSkuPolicy(h.t, ev), ts)
		}
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Fatalf("setup dead-lettered %v", d)
	}
	drain(h.avail)
	drain(h.changelog)
}

// demand feeds one demand event at ts to the processor and the model and
// returns the model's outcome (nil for releases and fulfilments).
func (h *demandHarness) demand(ev inventory.Event, ts time.Time) *inventory.Outcome {
	h.t.Helper()
	next, out, res, err := inventory.Demand(h.model, ev, cfg.Policies(), ts)
	if err != nil {
		h.t.Fatalf("model: %#v: %v", ev, err)
	}
	if res.Changed {
		h.model = next
	}
	h.consumeOn(schema.Demand, ev.EventSKU(), encodeDemandEvent(h.t, ev), ts)
	return out
}

type keyedOutcome struct {
	key string
	o   *pb.ReservationOutcome
}

func (k keyedOutcome) String() string { return fmt.Sprintf("%q: {%v}", k.key, k.o) }

func (h *demandHarness) emittedOutcomes() []keyedOutcome {
	h.t.Helper()
	var out []keyedOutcome
	for _, m := range drain(h.outcomes) {
		o, ok := m.value.(*pb.ReservationOutcome)
		if !ok {
			h.t.Fatalf("outcome message is %T", m.value)
		}
		out = append(out, keyedOutcome{m.key, o})
	}
	return out
}

// expectOutcome checks that exactly one outcome was emitted, keyed by its
// order id, equal to want.
func (h *demandHarness) expectOutcome(what string, want *inventory.Outcome) *pb.ReservationOutcome {
	h.t.Helper()
	if want == nil {
		h.t.Fatalf("%s: the model decided nothing", what)
	}
	outs := h.emittedOutcomes()
	if len(outs) != 1 {
		h.t.Fatalf("%s: %d outcomes, want 1: %v", what, len(outs), outs)
	}
	if !proto.Equal(outs[0].o, codecs.OutcomeToProto(*want)) {
		h.t.Fatalf("%s: outcome\n%v\nwant\n%v", what, outs[0].o, codecs.OutcomeToProto(*want))
	}
	if outs[0].key != want.OrderID {
		h.t.Errorf("%s: outcome keyed %q, want the order id %q", what, outs[0].key, want.OrderID)
	}
	return outs[0].o
}

// expectTable checks the table holds the model's state.
func (h *demandHarness) expectTable(what string) {
	h.t.Helper()
	got, ok := h.state(sku)
	if !ok {
		h.t.Fatalf("%s: no table value", what)
	}
	if !equalStates(got, h.model) {
		h.t.Fatalf("%s: table holds\n%#v\nwant\n%#v", what, got, h.model)
	}
}

// equalStates compares through the table codec: the bytes are what the
// changelog holds.
func equalStates(a, b inventory.State) bool {
	x, err1 := codecs.State{}.Encode(a)
	y, err2 := codecs.State{}.Encode(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// expectPublished checks one availability message was published, the
// model's answer at now, and returns it.
func (h *demandHarness) expectPublished(what string, now time.Time) *pb.Availability {
	h.t.Helper()
	return h.expectAnswer(what, h.model, cfg.Policies(), now)
}

func webChannel(t *testing.T, m *pb.Availability) *pb.ChannelAvailability {
	return channel(t, m, "web")
}

func reservationOf(t *testing.T, s inventory.State, id string) inventory.Reservation {
	t.Helper()
	for _, r := range s.Reservations {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no reservation %q in %#v", id, s.Reservations)
	return inventory.Reservation{}
}

func TestDemandRequestWithinAvailability(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))

	want := h.demand(reserve("o-1:1", "o-1", 3, "web", 10*time.Minute), at(10))
	o := h.expectOutcome("request", want)
	if !o.GetAccepted() || o.GetBackorder() || o.GetReason() != pb.RejectReason_REJECT_REASON_UNSPECIFIED || o.GetQuantity() != 3 ||
		o.GetOrderId() != "o-1" || o.GetReservationId() != "o-1:1" || o.GetSku() != sku || !o.GetDecidedAt().AsTime().Equal(at(10)) {
		t.Errorf("outcome %v, want accepted 3 units of o-1:1 for o-1 decided at %v", o, at(10))
	}
	h.expectTable("request")
	if c := drain(h.changelog); len(c) != 1 {
		t.Errorf("%d table writes, want 1", len(c))
	}
	r := reservationOf(t, h.model, "o-1:1")
	if r.Status != inventory.StatusHeld || !r.ExpiresAt.Equal(at(10).Add(10*time.Minute)) || r.Quantity != 3 || r.Channel != "web" {
		t.Errorf("reservation %+v, want held 3 on web until %v", r, at(10).Add(10*time.Minute))
	}
	m := h.expectPublished("request", at(10))
	web := webChannel(t, m)
	if web.GetReserved() != 3 || web.GetAvailable() != 7 || web.GetUsable() != 10 || m.GetOnHand() != 10 {
		t.Errorf("web %v on_hand %d, want 3 reserved, 7 available of 10", web, m.GetOnHand())
	}
	if !m.GetNextChangeAt().AsTime().Equal(r.ExpiresAt) {
		t.Errorf("next_change_at %v, want the reservation's expiry %v", m.GetNextChangeAt().AsTime(), r.ExpiresAt)
	}
}

// A redelivered request re-emits the identical outcome (decided at the
// first time) and reserves nothing more; the table is not written.
func TestDemandDuplicateRequest(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	req := reserve("o-1:1", "o-1", 3, "web", 10*time.Minute)
	first := h.expectOutcome("request", h.demand(req, at(10)))
	drain(h.avail)
	drain(h.changelog)
	before := h.raw(sku)
	for i, ts := range []time.Time{at(10), at(20), at(500)} {
		h.demand(req, ts)
		outs := h.emittedOutcomes()
		if len(outs) != 1 || outs[0].key != "o-1" || !proto.Equal(outs[0].o, first) {
			t.Fatalf("duplicate %d: outcomes %v, want the first %v again", i, outs, first)
		}
		h.expectQuiet("duplicate request")
		if after := h.raw(sku); !bytes.Equal(after, before) {
			t.Fatalf("duplicate %d changed the table bytes", i)
		}
	}
	// A rejected request's duplicate is rejected again the same way.
	big := reserve("o-2:1", "o-2", 8, "web", time.Minute)
	rejected := h.expectOutcome("too big", h.demand(big, at(30)))
	if rejected.GetAccepted() || rejected.GetReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT {
		t.Fatalf("outcome %v, want INSUFFICIENT", rejected)
	}
	drain(h.changelog)
	h.supplyAt(at(31), adj("receipt", "WH-1", 100, at(31))) // now there would be room
	h.demand(big, at(40))
	if outs := h.emittedOutcomes(); len(outs) != 1 || !proto.Equal(outs[0].o, rejected) {
		t.Errorf("duplicate of a rejected request: %v, want the recorded rejection %v", outs, rejected)
	}
	h.expectQuiet("duplicate rejected request")
}

// Of 11 one-unit requests for the last 10 units exactly 10 win.
func TestDemandLastUnitsGoToTheFirstTen(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	accepted, rejected := 0, 0
	for i := range 11 {
		order := "o-" + string(rune('a'+i))
		want := h.demand(reserve(order+":1", order, 1, "web", time.Hour), at(10+i))
		o := h.expectOutcome(order, want)
		switch {
		case o.GetAccepted():
			accepted++
		case o.GetReason() == pb.RejectReason_REJECT_REASON_INSUFFICIENT:
			rejected++
			if i != 10 {
				t.Errorf("request %d rejected, want only the 11th", i+1)
			}
			if !strings.Contains(o.GetMessage(), "not enough units") {
				t.Errorf("rejection message %q", o.GetMessage())
			}
		default:
			t.Errorf("outcome %v", o)
		}
	}
	if accepted != 10 || rejected != 1 {
		t.Fatalf("%d accepted, %d rejected; want 10 and 1", accepted, rejected)
	}
	h.expectTable("after 11 requests")
	a := h.availabilities()
	if len(a) != 10 { // the rejection changes no answer
		t.Fatalf("%d availability messages, want 10", len(a))
	}
	last := webChannel(t, a[9])
	if last.GetAvailable() != 0 || last.GetReserved() != 10 {
		t.Errorf("web after 10 reservations: %v, want 0 available, 10 reserved", last)
	}
}

// A unit reserved on one channel cannot be reserved again on another: the
// stock is shared by every channel a location serves.
func TestDemandReservationHoldsUnitsOnEveryChannel(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 1, at(1), 1))
	h.expectOutcome("web", h.demand(reserve("o-1:1", "o-1", 1, "web", time.Hour), at(10)))
	h.demand(reserve("o-2:1", "o-2", 1, "marketplace", time.Hour), at(11))
	got := h.emittedOutcomes()
	if len(got) != 1 || got[0].o.GetAccepted() || got[0].o.GetReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT {
		t.Fatalf("second request for the only unit, on marketplace: %v, want rejected INSUFFICIENT", got)
	}
	s, _ := h.state(sku)
	snap := inventory.Evaluate(s, cfg.Policies(), at(12))
	for _, c := range snap.Channels {
		if c.Available != 0 {
			t.Errorf("%s available %d with the only unit reserved, want 0", c.Channel, c.Available)
		}
	}
}

func TestDemandNotSellable(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1), inventory.ChannelEligibility{SKU: sku, Channel: "marketplace", Sellable: false, AsOf: at(2)})
	o := h.expectOutcome("marketplace", h.demand(reserve("o-1:1", "o-1", 1, "marketplace", time.Hour), at(10)))
	if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_NOT_SELLABLE || !strings.Contains(o.GetMessage(), "marketplace") {
		t.Errorf("outcome %v, want NOT_SELLABLE naming marketplace", o)
	}
	h.expectTable("not sellable") // the rejection is recorded for duplicates
	if a := h.availabilities(); len(a) != 0 {
		t.Errorf("a rejection published %v", a)
	}
	if r := reservationOf(t, h.model, "o-1:1"); r.Status != inventory.StatusRejected || r.Reject != inventory.RejectNotSellable {
		t.Errorf("recorded %+v", r)
	}
	// Web is unaffected.
	if o := h.expectOutcome("web", h.demand(reserve("o-2:1", "o-2", 10, "web", time.Hour), at(11))); !o.GetAccepted() {
		t.Errorf("web outcome %v, want accepted", o)
	}
}

func TestDemandSalesCap(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1),
		inventory.SalesCap{SKU: sku, Channel: "web", Limit: 2, WindowStart: at(0), WindowEnd: at(3600), AsOf: at(1)})
	o := h.expectOutcome("3 of 2", h.demand(reserve("o-1:1", "o-1", 3, "web", time.Hour), at(10)))
	if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_CAP_EXCEEDED || !strings.Contains(o.GetMessage(), "cap") {
		t.Errorf("outcome %v, want CAP_EXCEEDED", o)
	}
	if o := h.expectOutcome("2 of 2", h.demand(reserve("o-2:1", "o-2", 2, "web", time.Hour), at(11))); !o.GetAccepted() {
		t.Errorf("outcome %v, want accepted", o)
	}
	h.expectTable("cap used")
	m := h.availabilities()
	if len(m) != 1 || webChannel(t, m[0]).GetCapRemaining() != 0 || webChannel(t, m[0]).GetAvailable() != 0 {
		t.Fatalf("published %v, want one answer with the web cap exhausted", m)
	}
	o = h.expectOutcome("1 more", h.demand(reserve("o-3:1", "o-3", 1, "web", time.Hour), at(12)))
	if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_CAP_EXCEEDED {
		t.Errorf("outcome %v, want CAP_EXCEEDED", o)
	}
	// Other channels have no cap.
	if o := h.expectOutcome("store-pickup", h.demand(reserve("o-4:1", "o-4", 5, "store-pickup", time.Hour), at(13))); !o.GetAccepted() {
		t.Errorf("store-pickup outcome %v, want accepted", o)
	}
	drain(h.avail)
	// Caps count sales, not attempts: the rejections used nothing, and a
	// release gives its units back to the cap at once.
	h.demand(release("o-2:1"), at(14))
	h.expectTable("released")
	m = h.availabilities()
	if len(m) != 1 || webChannel(t, m[0]).GetCapRemaining() != 2 || webChannel(t, m[0]).GetAvailable() != 2 {
		t.Fatalf("published %v, want one answer with 2 of the web cap left", m)
	}
	if o := h.expectOutcome("2 of 2 again", h.demand(reserve("o-5:1", "o-5", 2, "web", time.Hour), at(15))); !o.GetAccepted() {
		t.Errorf("outcome %v after the release, want accepted", o)
	}
}

// An order line for a SKU skuflow has never seen (no supply, no SKU
// policy) is rejected with a reason, and the SKU is not created: no table
// write, no availability answer. Its duplicate gets the same outcome, and
// a release for it creates nothing either.
func TestDemandUnknownSKU(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1)) // another SKU is known
	const ghost = "SKU-NEVER-SEEN"
	req := inventory.ReservationRequested{ReservationID: "o-1:1", OrderID: "o-1", SKU: ghost, Channel: "web", Quantity: 1, TTL: time.Hour}
	var first *pb.ReservationOutcome
	for i, ts := range []time.Time{at(10), at(10), at(500)} {
		h.consumeOn(schema.Demand, ghost, encodeDemandEvent(t, req), ts)
		outs := h.emittedOutcomes()
		if len(outs) != 1 || outs[0].key != "o-1" {
			t.Fatalf("request %d: outcomes %v, want one for o-1", i, outs)
		}
		o := outs[0].o
		if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT || !strings.Contains(o.GetMessage(), ghost) ||
			!strings.Contains(o.GetMessage(), "not known") || o.GetSku() != ghost || o.GetReservationId() != "o-1:1" || o.GetQuantity() != 1 {
			t.Fatalf("request %d: outcome %v, want INSUFFICIENT saying %s is not known", i, o, ghost)
		}
		if first == nil {
			first = o
		} else if !proto.Equal(o, first) {
			t.Fatalf("duplicate %d: outcome %v, first %v", i, o, first)
		}
		if c := drain(h.changelog); len(c) != 0 {
			t.Fatalf("request %d wrote the table: %v", i, c)
		}
		if a := h.availabilities(); len(a) != 0 {
			t.Fatalf("request %d published an answer for an unknown sku: %v", i, a)
		}
		if d := h.deadLetters(); len(d) != 0 {
			t.Fatalf("request %d dead-lettered: %v", i, d)
		}
	}
	h.consumeOn(schema.Demand, ghost, encodeDemandEvent(t, inventory.ReservationReleased{ReservationID: "o-1:1", SKU: ghost, Reason: inventory.ReleaseCompensated}), at(600))
	h.expectQuiet("release for an unknown sku")
	if _, ok := h.state(ghost); ok {
		t.Fatalf("the table holds %s", ghost)
	}
	if keys := h.gkt.GetTableKeys(schema.StockTable); slices.Contains(keys, ghost) {
		t.Fatalf("table keys %v include %s", keys, ghost)
	}
}

func TestDemandBackorder(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 2, at(1), 1), inventory.BackorderLimit{SKU: sku, Limit: 3, AsOf: at(1)})
	if o := h.expectOutcome("in stock", h.demand(reserve("o-1:1", "o-1", 2, "web", time.Hour), at(10))); !o.GetAccepted() || o.GetBackorder() {
		t.Errorf("outcome %v, want accepted from stock", o)
	}
	o := h.expectOutcome("backorder", h.demand(reserve("o-2:1", "o-2", 3, "web", time.Hour), at(11)))
	if !o.GetAccepted() || !o.GetBackorder() {
		t.Errorf("outcome %v, want accepted as a backorder", o)
	}
	h.expectTable("backorder")
	if r := reservationOf(t, h.model, "o-2:1"); !r.Backorder || r.Status != inventory.StatusHeld {
		t.Errorf("reservation %+v, want a held backorder", r)
	}
	a := h.availabilities()
	if len(a) != 2 || webChannel(t, a[1]).GetBackorderable() != 0 || webChannel(t, a[1]).GetAvailable() != 0 {
		t.Fatalf("published %v, want the backorder limit used up", a)
	}
	o = h.expectOutcome("beyond the limit", h.demand(reserve("o-3:1", "o-3", 1, "web", time.Hour), at(12)))
	if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT {
		t.Errorf("outcome %v, want INSUFFICIENT", o)
	}
}

func TestDemandReleaseReturnsUnits(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	h.expectOutcome("request", h.demand(reserve("o-1:1", "o-1", 4, "web", time.Hour), at(10)))
	if a := h.availabilities(); len(a) != 1 || webChannel(t, a[0]).GetAvailable() != 6 {
		t.Fatalf("after the request: %v", a)
	}
	drain(h.changelog)
	if out := h.demand(release("o-1:1"), at(20)); out != nil {
		t.Fatalf("model decided %v for a release", out)
	}
	if outs := h.emittedOutcomes(); len(outs) != 0 {
		t.Errorf("a release emitted outcomes %v", outs)
	}
	h.expectTable("release")
	m := h.expectPublished("release", at(20))
	if web := webChannel(t, m); web.GetAvailable() != 10 || web.GetReserved() != 0 {
		t.Errorf("web after release %v, want 10 available, none reserved", web)
	}
	if r := reservationOf(t, h.model, "o-1:1"); r.Status != inventory.StatusReleased || r.Release != inventory.ReleaseCancelled || !r.ClosedAt.Equal(at(20)) {
		t.Errorf("reservation %+v, want released (cancelled) at %v", r, at(20))
	}
	drain(h.changelog)
	before := h.raw(sku)
	h.demand(release("o-1:1"), at(30))
	h.expectQuiet("duplicate release")
	if !bytes.Equal(h.raw(sku), before) {
		t.Error("a duplicate release changed the table")
	}
	if outs := h.emittedOutcomes(); len(outs) != 0 {
		t.Errorf("duplicate release emitted %v", outs)
	}
}

// A release that overtakes its request makes the request fail: the units
// are never held.
func TestDemandReleaseBeforeRequest(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	h.demand(inventory.ReservationReleased{ReservationID: "o-1:1", SKU: sku, Reason: inventory.ReleaseCompensated}, at(10))
	h.expectTable("early release")
	if a := h.availabilities(); len(a) != 0 {
		t.Errorf("an early release published %v", a)
	}
	drain(h.changelog)
	h.demand(reserve("o-1:1", "o-1", 2, "web", time.Hour), at(11))
	outs := h.emittedOutcomes()
	if len(outs) != 1 {
		t.Fatalf("%d outcomes, want 1", len(outs))
	}
	o := outs[0].o
	if o.GetAccepted() || o.GetReason() != pb.RejectReason_REJECT_REASON_RELEASED || o.GetReservationId() != "o-1:1" {
		t.Errorf("outcome %v, want rejected RELEASED", o)
	}
	h.expectQuiet("request after its release")
	s := h.stateOrFail()
	for _, c := range inventory.Evaluate(s, cfg.Policies(), at(12)).Channels {
		if c.Reserved != 0 || c.Available != 10 {
			t.Errorf("%s: %d reserved, %d available after a released request, want 0 and 10", c.Channel, c.Reserved, c.Available)
		}
	}
}

// The outcome of a request that was released first must reach its order:
// it is keyed by, and names, the request's order id.
func TestDemandReleaseBeforeRequestOutcomeReachesTheOrder(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	h.demand(inventory.ReservationReleased{ReservationID: "o-1:1", SKU: sku, Reason: inventory.ReleaseCompensated}, at(10))
	h.demand(reserve("o-1:1", "o-1", 2, "web", time.Hour), at(11))
	outs := h.emittedOutcomes()
	if len(outs) != 1 || outs[0].key != "o-1" || outs[0].o.GetOrderId() != "o-1" || outs[0].o.GetSku() != sku || outs[0].o.GetQuantity() != 2 {
		t.Fatalf("outcomes %v, want one keyed and naming order o-1 with the requested quantity", outs)
	}
}

// A fulfilment consumes the reservation's units at the location once; a
// later absolute level (which counts the shipment) supersedes it, an older
// one does not.
func TestDemandFulfilment(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1), lvl("WH-2", 5, at(1), 1))
	h.expectOutcome("request", h.demand(reserve("o-1:1", "o-1", 3, "web", time.Hour), at(10)))
	drain(h.avail)
	drain(h.changelog)

	h.demand(fulfil("o-1:1", "WH-1", at(20)), at(21))
	h.expectTable("fulfilment")
	m := h.expectPublished("fulfilment", at(21))
	if web := webChannel(t, m); m.GetOnHand() != 12 || web.GetReserved() != 0 || web.GetAvailable() != 12 {
		t.Errorf("after fulfilment on_hand %d web %v, want 12 on hand, none reserved, 12 available", m.GetOnHand(), web)
	}
	if r := reservationOf(t, h.model, "o-1:1"); r.Status != inventory.StatusFulfilled {
		t.Errorf("reservation %+v, want fulfilled", r)
	}
	if outs := h.emittedOutcomes(); len(outs) != 0 {
		t.Errorf("a fulfilment emitted %v", outs)
	}
	drain(h.changelog)
	before := h.raw(sku)
	h.demand(fulfil("o-1:1", "WH-1", at(20)), at(40))
	h.expectQuiet("duplicate fulfilment")
	if !bytes.Equal(h.raw(sku), before) {
		t.Error("a duplicate fulfilment changed the table")
	}

	// A level taken before the shipment: the shipment still counts.
	h.supplyAt(at(50), lvl("WH-1", 9, at(15), 2))
	if got := inventory.Evaluate(h.model, cfg.Policies(), at(50)).OnHand; got != 6+5 {
		t.Fatalf("model on hand %d after an older level", got)
	}
	h.expectTable("older level")
	// A level taken at or after the shipment already reflects it.
	h.supplyAt(at(60), lvl("WH-1", 7, at(20), 3))
	s, _ := h.state(sku)
	if got := inventory.Evaluate(s, cfg.Policies(), at(60)).OnHand; got != 7+5 {
		t.Errorf("on hand %d after a level at the shipment time, want 12: the level supersedes the fulfilment", got)
	}
	h.expectTable("newer level")
	// Redelivering the fulfilment after the level changes nothing.
	drain(h.changelog)
	before = h.raw(sku)
	h.demand(fulfil("o-1:1", "WH-1", at(20)), at(70))
	h.expectQuiet("fulfilment redelivered after a newer level")
	if !bytes.Equal(h.raw(sku), before) {
		t.Error("the redelivered fulfilment changed the table")
	}
}

// Ticks expire due reservations: at or after ExpiresAt the units return,
// the table and the availability topic show it; before, nothing happens.
func TestDemandTickExpiresReservation(t *testing.T) {
	for name, late := range map[string]time.Duration{"at expiry": 0, "an hour late": time.Hour} {
		t.Run(name, func(t *testing.T) {
			h := startDemand(t)
			h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
			h.expectOutcome("request", h.demand(reserve("o-1:1", "o-1", 4, "web", time.Minute), at(10)))
			a := h.availabilities()
			if len(a) != 1 {
				t.Fatalf("%d availability messages", len(a))
			}
			published := a[0].GetVersion()
			drain(h.changelog)
			expires := at(10).Add(time.Minute)

			h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(expires.Add(-time.Nanosecond)), PublishedVersion: published}, expires)
			h.expectQuiet("tick before expiry")
			if r := reservationOf(t, h.stateOrFail(), "o-1:1"); r.Status != inventory.StatusHeld {
				t.Fatalf("reservation %+v after an early tick", r)
			}

			due := expires.Add(late)
			h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(due), PublishedVersion: published}, at(11))
			h.model, _ = inventory.Expire(h.model, due)
			h.expectTable("tick at expiry")
			if c := drain(h.changelog); len(c) != 1 {
				t.Errorf("%d table writes, want 1", len(c))
			}
			r := reservationOf(t, h.model, "o-1:1")
			if r.Status != inventory.StatusReleased || r.Release != inventory.ReleaseExpired || !r.ClosedAt.Equal(due) {
				t.Errorf("reservation %+v, want released (expired) at %v", r, due)
			}
			m := h.expectPublished("tick at expiry", due)
			if web := webChannel(t, m); web.GetAvailable() != 10 || web.GetReserved() != 0 {
				t.Errorf("web after expiry %v, want 10 available", web)
			}
			if m.GetNextChangeAt() != nil {
				t.Errorf("next_change_at %v, want none", m.GetNextChangeAt())
			}
			if outs := h.emittedOutcomes(); len(outs) != 0 {
				t.Errorf("expiry emitted outcomes %v", outs)
			}
			// A repeated tick for the new answer does nothing.
			h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(due.Add(time.Second)), PublishedVersion: m.GetVersion()}, at(12))
			h.expectQuiet("tick after expiry")
			// A late release of the expired reservation changes nothing.
			h.demand(release("o-1:1"), due.Add(time.Minute))
			h.expectQuiet("release after expiry")
		})
	}
}

func (h *demandHarness) stateOrFail() inventory.State {
	h.t.Helper()
	s, ok := h.state(sku)
	if !ok {
		h.t.Fatal("no table value")
	}
	return s
}

// A request at or after another's expiry expires it first, without a tick.
func TestDemandRequestExpiresDueReservations(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 5, at(1), 1))
	h.expectOutcome("first", h.demand(reserve("o-1:1", "o-1", 5, "web", time.Minute), at(10)))
	if o := h.expectOutcome("second", h.demand(reserve("o-2:1", "o-2", 5, "web", time.Minute), at(70))); !o.GetAccepted() {
		t.Fatalf("request at the first's expiry: %v, want accepted", o)
	}
	h.expectTable("second")
	if r := reservationOf(t, h.model, "o-1:1"); r.Status != inventory.StatusReleased || r.Release != inventory.ReleaseExpired {
		t.Errorf("first reservation %+v, want expired", r)
	}
}

func TestDemandBadInputIsDeadLettered(t *testing.T) {
	good := reserve("o-9:1", "o-9", 1, "web", time.Hour)
	cases := []struct {
		name   string
		key    string
		value  []byte
		reason []string
	}{
		{"garbage", sku, []byte{0xff, 0xff, 0xff}, []string{"malformed", "DemandEvent"}},
		{"empty envelope", sku, []byte{}, []string{"malformed", "no event set"}},
		{"tombstone", sku, nil, []string{"tombstone"}},
		{"key differs from sku", "SKU-2", encodeDemandEvent(t, good), []string{"SKU-2", sku, "differs"}},
		{"bad ttl duration", sku, marshal(t, &pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
			ReservationId: "o-9:1", OrderId: "o-9", Sku: sku, Quantity: 1, Channel: "web", Ttl: &durationpb.Duration{Seconds: 1, Nanos: -1}}}}),
			[]string{"malformed", "ttl"}},
		{"ttl too long", sku, encodeDemandEvent(t, reserve("o-9:1", "o-9", 1, "web", 31*24*time.Hour)), []string{"ttl"}},
		{"no ttl", sku, encodeDemandEvent(t, reserve("o-9:1", "o-9", 1, "web", 0)), []string{"ttl"}},
		{"zero quantity", sku, encodeDemandEvent(t, reserve("o-9:1", "o-9", 0, "web", time.Hour)), []string{"quantity 0"}},
		{"bad reservation id", sku, encodeDemandEvent(t, reserve("o 9", "o-9", 1, "web", time.Hour)), []string{"reservation_id"}},
		{"no order id", sku, encodeDemandEvent(t, reserve("o-9:1", "", 1, "web", time.Hour)), []string{"order_id"}},
		{"unknown channel", sku, encodeDemandEvent(t, reserve("o-9:1", "o-9", 1, "kiosk", time.Hour)), []string{"kiosk", "not configured"}},
		{"release without a reason", sku, encodeDemandEvent(t, inventory.ReservationReleased{ReservationID: "o-1:1", SKU: sku}), []string{"release reason"}},
		{"fulfilment of an unknown reservation", sku, encodeDemandEvent(t, fulfil("o-404:1", "WH-1", at(5))), []string{"unknown reservation"}},
		{"fulfilment without a time", sku, encodeDemandEvent(t, inventory.ReservationFulfilled{ReservationID: "o-1:1", SKU: sku, Location: "WH-1"}),
			[]string{"fulfilled_at"}},
		{"bad fulfilled_at", sku, marshal(t, &pb.DemandEvent{Event: &pb.DemandEvent_Fulfilled{Fulfilled: &pb.ReservationFulfilled{
			ReservationId: "o-1:1", Sku: sku, Location: "WH-1", FulfilledAt: &timestamppb.Timestamp{Seconds: 1 << 40}}}}),
			[]string{"malformed", "fulfilled_at"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startDemand(t)
			h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
			h.expectOutcome("seed", h.demand(reserve("o-1:1", "o-1", 2, "web", time.Hour), at(2)))
			drain(h.avail)
			drain(h.changelog)
			before := h.raw(sku)
			keys := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.StockTable)))

			msgTime := at(3)
			if tc.value == nil {
				h.gkt.Consume(string(schema.Demand), tc.key, nil, tester.WithTime(msgTime))
			} else {
				h.consumeOn(schema.Demand, tc.key, tc.value, msgTime)
			}
			dls := h.deadLetters()
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dls))
			}
			dl := dls[0]
			for _, want := range tc.reason {
				if !strings.Contains(dl.GetReason(), want) {
					t.Errorf("reason %q does not mention %q", dl.GetReason(), want)
				}
			}
			if !bytes.Equal(dl.GetValue(), tc.value) || string(dl.GetKey()) != tc.key {
				t.Errorf("dead letter key %q value %x, want the original %q %x", dl.GetKey(), dl.GetValue(), tc.key, tc.value)
			}
			if dl.GetTopic() != string(schema.Demand) || dl.GetGroup() != string(schema.StockGroup) {
				t.Errorf("dead letter source %s group %s", dl.GetTopic(), dl.GetGroup())
			}
			if want := h.demandQ.Hwm() - 1; dl.GetOffset() != want {
				t.Errorf("dead letter offset %d, want %d", dl.GetOffset(), want)
			}
			if !dl.GetMessageTime().AsTime().Equal(msgTime) {
				t.Errorf("dead letter message_time %v", dl.GetMessageTime().AsTime())
			}
			if outs := h.emittedOutcomes(); len(outs) != 0 {
				t.Errorf("bad input emitted outcomes %v", outs)
			}
			h.expectQuiet("after the dead letter")
			if !bytes.Equal(h.raw(sku), before) {
				t.Error("bad input changed the table bytes")
			}
			if got := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.StockTable))); !slices.Equal(got, keys) {
				t.Errorf("table keys %q, want %q", got, keys)
			}
			// The processor keeps deciding.
			if o := h.expectOutcome("after", h.demand(good, at(4))); !o.GetAccepted() {
				t.Errorf("valid request after bad input: %v", o)
			}
		})
	}
}

// The demand topic is declared with the group's other topics, and the
// outcomes topic is an output.
func TestDemandTopicsDeclared(t *testing.T) {
	for _, want := range []string{string(schema.Demand), string(schema.Outcomes), string(schema.DeadLetter)} {
		if _, ok := schema.Lookup(want); !ok {
			t.Errorf("schema.Topics lacks %q", want)
		}
	}
	g := stock.Define(cfg, nil, nil, 0)
	if in := g.InputStreams().Topics(); !slices.Contains(in, string(schema.Demand)) {
		t.Errorf("group inputs %q lack %s", in, schema.Demand)
	}
	if out := g.OutputStreams().Topics(); !slices.Contains(out, string(schema.Outcomes)) {
		t.Errorf("group outputs %q lack %s", out, schema.Outcomes)
	}
}

// An extension moves a held reservation's expiry (the units stay held past
// the old one), is answered with an extension outcome keyed by the order,
// and changes nothing when redelivered; once the hold ran out it is refused
// and the hold does not come back.
func TestDemandExtension(t *testing.T) {
	h := startDemand(t)
	h.supplyAt(t0, lvl("WH-1", 10, at(1), 1))
	h.expectOutcome("request", h.demand(reserve("o-1:1", "o-1", 4, "web", time.Minute), at(10)))
	drain(h.avail)
	drain(h.changelog)
	to := at(10).Add(time.Hour)
	ext := inventory.ReservationExtended{ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, ExpiresAt: to}
	o := h.expectOutcome("extension", h.demand(ext, at(20)))
	if !o.GetExtension() || !o.GetAccepted() || !o.GetExpiresAt().AsTime().Equal(to) {
		t.Fatalf("extension outcome %v", o)
	}
	h.expectTable("extension")
	if r := reservationOf(t, h.model, "o-1:1"); r.Status != inventory.StatusHeld || !r.ExpiresAt.Equal(to) {
		t.Fatalf("reservation %+v, want held until %s", r, to)
	}
	if c := drain(h.changelog); len(c) != 1 {
		t.Errorf("extension: %d table writes, want 1", len(c))
	}
	// Redelivered: the same answer, no change.
	before := h.stateOrFail()
	h.expectOutcome("redelivered extension", h.demand(ext, at(21)))
	if !equalStates(h.stateOrFail(), before) {
		t.Error("a redelivered extension changed the state")
	}
	// The old expiry passes: still held.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(10).Add(time.Minute))}, at(71))
	if r := reservationOf(t, h.stateOrFail(), "o-1:1"); r.Status != inventory.StatusHeld {
		t.Fatalf("reservation %+v after the old expiry", r)
	}
	drain(h.avail)
	drain(h.changelog)
	// After the new expiry it is refused and nothing changes.
	late := inventory.ReservationExtended{ReservationID: "o-1:1", OrderID: "o-1", SKU: sku, ExpiresAt: to.Add(time.Hour)}
	o = h.expectOutcome("late extension", h.demand(late, to))
	if !o.GetExtension() || o.GetAccepted() || o.GetMessage() == "" {
		t.Fatalf("late extension outcome %v", o)
	}
	if c := drain(h.changelog); len(c) > 1 {
		t.Errorf("late extension: %d table writes", len(c))
	}
	if r := reservationOf(t, h.stateOrFail(), "o-1:1"); !r.ExpiresAt.Equal(to) {
		t.Errorf("reservation %+v after a refused extension", r)
	}
	// An extension of a reservation the SKU never saw is refused, creating
	// nothing.
	o = h.expectOutcome("unknown reservation", h.demand(inventory.ReservationExtended{ReservationID: "o-9:1", OrderID: "o-9", SKU: sku, ExpiresAt: to}, to))
	if o.GetAccepted() || !o.GetExtension() {
		t.Errorf("extension of an unknown reservation: %v", o)
	}
	if d := h.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters %v", d)
	}
}
