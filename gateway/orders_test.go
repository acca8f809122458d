package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// memBus is an OrderBus that runs the real rules in memory: a published
// command goes through inventory.ApplyOrder, every reservation request and
// release it emits through inventory.Demand on the SKU's state, and every
// outcome back through ApplyOrder, until nothing is left to deliver. What
// the pipeline would dead-letter is kept in dead. With stall set the SKU side
// never answers: requests queue up in held (a pipeline that never decides).
// With gate set, Place waits at it before delivering (see barrier).
type memBus struct {
	mu      sync.Mutex
	now     time.Time
	pol     inventory.Policies
	skus    map[string]inventory.State
	orders  map[string]inventory.Order
	waiters map[string]chan struct{}
	places  int
	cancels int
	extends int
	fulfils int
	stall   bool
	held    []inventory.Event
	dead    []error
	ready   bool
	gate    *barrier
}

// barrier holds every caller of arrive until n have arrived. Gating Place
// with one of n makes n racing PlaceOrder calls all publish before the saga
// records any of them: each passed the gateway's check before publishing
// with nothing recorded, the worst interleaving of the race.
type barrier struct {
	mu   sync.Mutex
	n    int
	open chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (g *barrier) arrive(ctx context.Context) error {
	g.mu.Lock()
	if g.n--; g.n == 0 {
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newMemBus(states ...inventory.State) *memBus {
	b := &memBus{
		now:     now,
		pol:     inventory.Policies{Channels: channels, DefaultStaleAfter: defaultStaleAfter},
		skus:    map[string]inventory.State{},
		orders:  map[string]inventory.Order{},
		waiters: map[string]chan struct{}{},
		ready:   true,
	}
	for _, s := range states {
		b.skus[s.SKU] = s
	}
	return b
}

func (b *memBus) Place(ctx context.Context, c inventory.PlaceOrder) error {
	b.mu.Lock()
	g := b.gate
	b.mu.Unlock()
	if g != nil {
		if err := g.arrive(ctx); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.places++
	b.run(c.OrderID, c)
	return nil
}

func (b *memBus) Cancel(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cancels++
	b.run(id, inventory.CancelOrder{OrderID: id})
	return nil
}

func (b *memBus) Extend(_ context.Context, e inventory.ExtendOrder) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.extends++
	b.run(e.OrderID, e)
	return nil
}

func (b *memBus) Fulfil(_ context.Context, f inventory.FulfilOrder) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fulfils++
	b.run(f.OrderID, f)
	return nil
}

func (b *memBus) Get(id string) (inventory.Order, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ready {
		return inventory.Order{}, false, views.ErrNotReady
	}
	o, ok := b.orders[id]
	return o, ok, nil
}

func (b *memBus) Changed(id string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch, ok := b.waiters[id]
	if !ok {
		ch = make(chan struct{})
		b.waiters[id] = ch
	}
	return ch
}

func (b *memBus) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready
}

type sagaInput struct {
	id string
	in any
}

// run delivers a saga input and everything that follows from it.
func (b *memBus) run(id string, in any) {
	queue := []sagaInput{{id, in}}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		cur, found := b.orders[m.id]
		at := b.now
		if tk, ok := m.in.(inventory.OrderTick); ok {
			at = tk.At // as the orders processor does
		}
		next, eff, res, err := inventory.ApplyOrder(cur, found, m.in, at)
		if err != nil {
			b.dead = append(b.dead, err)
			continue
		}
		if res.Changed {
			b.orders[m.id] = next
			if ch, ok := b.waiters[m.id]; ok {
				close(ch)
				delete(b.waiters, m.id)
			}
		}
		var evs []inventory.Event
		for _, r := range eff.Requests {
			evs = append(evs, r)
		}
		for _, r := range eff.Releases {
			evs = append(evs, r)
		}
		for _, x := range eff.Extensions {
			evs = append(evs, x)
		}
		for _, f := range eff.Fulfilments {
			evs = append(evs, f)
		}
		for _, ev := range evs {
			if b.stall {
				b.held = append(b.held, ev)
				continue
			}
			if out := b.demand(ev); out != nil {
				queue = append(queue, sagaInput{out.OrderID, *out})
			}
		}
	}
}

func (b *memBus) demand(ev inventory.Event) *inventory.Outcome {
	s, ok := b.skus[ev.EventSKU()]
	if !ok {
		s = inventory.State{SKU: ev.EventSKU()}
	}
	next, out, res, err := inventory.Demand(s, ev, b.pol, b.now)
	if err != nil {
		b.dead = append(b.dead, err)
		return nil
	}
	if res.Changed {
		b.skus[ev.EventSKU()] = next
	}
	return out
}

// redeliverHeld delivers the requests held while stalled (a late, maybe
// duplicate, delivery).
func (b *memBus) redeliverHeld() {
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.held
	b.held = nil
	for _, ev := range held {
		if out := b.demand(ev); out != nil {
			b.run(out.OrderID, *out)
		}
	}
}

// heldCount is how many requests wait in held.
func (b *memBus) heldCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

func (b *memBus) setStall(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stall = v
}

func (b *memBus) setGate(g *barrier) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gate = g
}

func (b *memBus) setReady(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ready = v
}

// counts returns how many place and cancel commands were published.
func (b *memBus) counts() (places, cancels int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.places, b.cancels
}

// available is the SKU's answer on channel now, per the real rules.
func (b *memBus) available(sku, channel string) (available, reserved int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range inventory.Evaluate(b.skus[sku], b.pol, b.now).Channels {
		if c.Channel == channel {
			return c.Available, c.Reserved
		}
	}
	return -1, -1
}

func (b *memBus) deadLetters() []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]error(nil), b.dead...)
}

// SKUs of the reservation tests.
const (
	skuTen  = "ORD-TEN"  // 10 units
	skuOne  = "ORD-ONE"  // 1 unit
	skuNS   = "ORD-NS"   // 5 units, not sellable on marketplace
	skuCap  = "ORD-CAP"  // 10 units, web capped at 2
	skuBack = "ORD-BACK" // 1 unit, 3 more as backorders
)

func busStates(t *testing.T) []inventory.State {
	t.Helper()
	build := func(sku string, evs ...inventory.Event) inventory.State {
		s := inventory.State{SKU: sku}
		for _, ev := range evs {
			next, _, err := inventory.Apply(s, ev, now)
			if err != nil {
				t.Fatalf("fixture %s: %v", sku, err)
			}
			s = next
		}
		return s
	}
	level := func(sku string, n int64) inventory.Event {
		return inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: n, AsOf: now.Add(-time.Hour)}
	}
	return []inventory.State{
		build(skuTen, level(skuTen, 10)),
		build(skuOne, level(skuOne, 1)),
		build(skuNS, level(skuNS, 5), inventory.ChannelEligibility{SKU: skuNS, Channel: "marketplace", AsOf: now.Add(-time.Hour)}),
		build(skuCap, level(skuCap, 10), inventory.SalesCap{SKU: skuCap, Channel: "web", Limit: 2,
			WindowStart: now.Add(-time.Hour), WindowEnd: now.Add(time.Hour), AsOf: now.Add(-time.Hour)}),
		build(skuBack, level(skuBack, 1), inventory.BackorderLimit{SKU: skuBack, Limit: 3, AsOf: now.Add(-time.Hour)}),
	}
}

// ordEnv is a gateway serving the ReservationService over a memBus.
type ordEnv struct {
	bus  *memBus
	rs   pb.ReservationServiceClient
	http *http.Client
	base string
}

const ordDefaultTTL = 15 * time.Minute

func startOrders(t *testing.T, wait time.Duration) *ordEnv {
	t.Helper()
	e := &ordEnv{bus: newMemBus(busStates(t)...)}
	lookups := views.NewMemory()
	lookups.SetReady(true)
	opts := options(lookups, lookups)
	svc, err := gateway.NewOrders(gateway.OrdersOptions{
		Bus: e.bus, Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter}, DefaultTTL: ordDefaultTTL, DecisionTimeout: 30 * time.Second, Wait: wait, Poll: 20 * time.Millisecond,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("gateway.NewOrders: %v", err)
	}
	opts.Services = []gateway.Service{svc}
	srv, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	testkit.Go(t, srv.Run)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rs = pb.NewReservationServiceClient(conn)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	e.base = "http://" + srv.HTTPAddr()
	return e
}

func orderReq(id, channel string, lines ...*pb.OrderLine) *pb.PlaceOrderRequest {
	return &pb.PlaceOrderRequest{OrderId: id, Channel: channel, Lines: lines}
}

func ol(sku string, qty int64) *pb.OrderLine { return &pb.OrderLine{Sku: sku, Quantity: qty} }

func (e *ordEnv) do(t *testing.T, method, path string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// postOrder sends req as the REST JSON body of POST /v1/orders.
func (e *ordEnv) postOrder(t *testing.T, req *pb.PlaceOrderRequest) response {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, http.MethodPost, "/v1/orders", body)
}

func restOrder(t *testing.T, r response) *pb.Order {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var o pb.Order
	if err := protojson.Unmarshal(r.body, &o); err != nil {
		t.Fatalf("body %s is not an Order: %v", r.body, err)
	}
	return &o
}

func orderPath(id string) string { return "/v1/orders/" + url.PathEscape(id) }

type wantLine struct {
	status    pb.LineStatus
	reason    pb.RejectReason
	backorder bool
}

func checkOrder(t *testing.T, what string, o *pb.Order, id string, st pb.OrderStatus, lines ...wantLine) {
	t.Helper()
	if o.GetOrderId() != id || o.GetStatus() != st {
		t.Errorf("%s: order %s status %v, want %s %v (%v)", what, o.GetOrderId(), o.GetStatus(), id, st, o)
	}
	if len(o.GetLines()) != len(lines) {
		t.Fatalf("%s: %d lines, want %d", what, len(o.GetLines()), len(lines))
	}
	for i, l := range o.GetLines() {
		w := lines[i]
		if l.GetStatus() != w.status || l.GetRejectReason() != w.reason || l.GetBackorder() != w.backorder {
			t.Errorf("%s: line %d = %v, want %v %v backorder=%v", what, i+1, l, w.status, w.reason, w.backorder)
		}
		if l.GetReservationId() != inventory.ReservationIDFor(id, i) {
			t.Errorf("%s: line %d reservation id %q", what, i+1, l.GetReservationId())
		}
		if w.reason != pb.RejectReason_REJECT_REASON_UNSPECIFIED && w.reason != pb.RejectReason_REJECT_REASON_CANCELLED && l.GetMessage() == "" {
			t.Errorf("%s: rejected line %d has no message", what, i+1)
		}
	}
	if st == pb.OrderStatus_ORDER_STATUS_REJECTED && o.GetReason() == "" {
		t.Errorf("%s: rejected order has no reason", what)
	}
}

var (
	accepted = wantLine{status: pb.LineStatus_LINE_STATUS_ACCEPTED}
	released = wantLine{status: pb.LineStatus_LINE_STATUS_RELEASED}
)

func refused(r pb.RejectReason) wantLine {
	return wantLine{status: pb.LineStatus_LINE_STATUS_REJECTED, reason: r}
}

func rctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// placeCases are orders against busStates, in the order they are placed,
// with the saga's final answer.
var placeCases = []struct {
	name  string
	req   *pb.PlaceOrderRequest
	st    pb.OrderStatus
	lines []wantLine
}{
	{"every line available", orderReq("o-res", "web", ol(skuTen, 2), ol(skuOne, 1)),
		pb.OrderStatus_ORDER_STATUS_RESERVED, []wantLine{accepted, accepted}},
	{"the last unit is gone", orderReq("o-gone", "web", ol(skuOne, 1)),
		pb.OrderStatus_ORDER_STATUS_REJECTED, []wantLine{refused(pb.RejectReason_REJECT_REASON_INSUFFICIENT)}},
	{"one impossible line releases the others", orderReq("o-mix", "web", ol(skuTen, 3), ol(skuOne, 1)),
		pb.OrderStatus_ORDER_STATUS_REJECTED, []wantLine{released, refused(pb.RejectReason_REJECT_REASON_INSUFFICIENT)}},
	{"not sellable on the channel", orderReq("o-ns", "marketplace", ol(skuNS, 1)),
		pb.OrderStatus_ORDER_STATUS_REJECTED, []wantLine{refused(pb.RejectReason_REJECT_REASON_NOT_SELLABLE)}},
	{"over the sales cap", orderReq("o-cap", "web", ol(skuCap, 3)),
		pb.OrderStatus_ORDER_STATUS_REJECTED, []wantLine{refused(pb.RejectReason_REJECT_REASON_CAP_EXCEEDED)}},
	{"a backorder", orderReq("o-back", "web", ol(skuBack, 3)),
		pb.OrderStatus_ORDER_STATUS_RESERVED, []wantLine{{status: pb.LineStatus_LINE_STATUS_ACCEPTED, backorder: true}}},
}

// afterPlaceCases checks what placeCases leave held: only reserved orders'
// units, nothing of a rejected order.
func afterPlaceCases(t *testing.T, b *memBus) {
	t.Helper()
	for _, c := range []struct {
		sku             string
		channel         string
		avail, reserved int64
	}{
		{skuTen, "web", 8, 2}, // o-mix's 3 units were given back
		{skuOne, "web", 0, 1},
		{skuNS, "web", 5, 0},
		{skuCap, "web", 2, 0},
		{skuBack, "web", 1, 0}, // a backorder holds no stock
	} {
		if a, r := b.available(c.sku, c.channel); a != c.avail || r != c.reserved {
			t.Errorf("%s on %s: %d available, %d reserved; want %d and %d", c.sku, c.channel, a, r, c.avail, c.reserved)
		}
	}
	if d := b.deadLetters(); len(d) != 0 {
		t.Errorf("the pipeline refused messages: %v", d)
	}
}

func TestPlaceOrderGRPC(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	for _, tc := range placeCases {
		o, err := e.rs.PlaceOrder(rctx(t), tc.req)
		if err != nil {
			t.Fatalf("%s: PlaceOrder: %v", tc.name, err)
		}
		checkOrder(t, tc.name, o, tc.req.GetOrderId(), tc.st, tc.lines...)
		got, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: tc.req.GetOrderId()})
		if err != nil || !proto.Equal(got, o) {
			t.Errorf("%s: GetOrder = %v, %v; want the placed answer %v", tc.name, got, err, o)
		}
	}
	afterPlaceCases(t, e.bus)
	gone, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-gone"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(gone.GetLines()[0].GetMessage(), "not enough units available on web") ||
		!strings.Contains(gone.GetReason(), "line 1 ("+skuOne+")") {
		t.Errorf("rejection explains %q / %q", gone.GetReason(), gone.GetLines()[0].GetMessage())
	}
	o, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-res"})
	if err != nil {
		t.Fatal(err)
	}
	if o.GetReservationTtl().AsDuration() != ordDefaultTTL || !o.GetPlacedAt().AsTime().Equal(now) || o.GetChannel() != "web" {
		t.Errorf("o-res %v, want the default ttl %v, placed at %v on web", o, ordDefaultTTL, now)
	}
}

func TestPlaceOrderREST(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	for _, tc := range placeCases {
		r := e.postOrder(t, tc.req)
		o := restOrder(t, r)
		checkOrder(t, tc.name, o, tc.req.GetOrderId(), tc.st, tc.lines...)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
		g := e.do(t, http.MethodGet, orderPath(tc.req.GetOrderId()), nil)
		if got := restOrder(t, g); !proto.Equal(got, o) {
			t.Errorf("%s: GET = %v, want %v", tc.name, got, o)
		}
	}
	afterPlaceCases(t, e.bus)
	// The JSON names statuses and reasons, as the OpenAPI document says.
	var raw struct {
		Status string `json:"status"`
		Lines  []struct {
			Status       string `json:"status"`
			RejectReason string `json:"rejectReason"`
			Message      string `json:"message"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(e.do(t, http.MethodGet, orderPath("o-mix"), nil).body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Status != "ORDER_STATUS_REJECTED" || len(raw.Lines) != 2 || raw.Lines[0].Status != "LINE_STATUS_RELEASED" ||
		raw.Lines[1].RejectReason != "REJECT_REASON_INSUFFICIENT" || raw.Lines[1].Message == "" {
		t.Errorf("JSON %+v", raw)
	}
	// A hand-written body: snake or camel case, quantities as numbers or
	// strings, a ttl as a duration string.
	body := `{"order_id":"o-json","channel":"web","lines":[{"sku":"` + skuTen + `","quantity":1},{"sku":"` + skuNS + `","quantity":"2"}],"reservationTtl":"90s"}`
	o := restOrder(t, e.do(t, http.MethodPost, "/v1/orders", []byte(body)))
	checkOrder(t, "hand-written JSON", o, "o-json", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted, accepted)
	if o.GetReservationTtl().AsDuration() != 90*time.Second {
		t.Errorf("ttl %v, want 90s", o.GetReservationTtl().AsDuration())
	}
}

// A retried PlaceOrder returns the same order and publishes nothing once the
// order is final; over gRPC and REST alike.
func TestPlaceOrderRetryIsIdempotent(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	for _, req := range []*pb.PlaceOrderRequest{
		orderReq("o-ok", "web", ol(skuTen, 4)),
		orderReq("o-no", "web", ol(skuTen, 1), ol(skuOne, 2)),
	} {
		first, err := e.rs.PlaceOrder(rctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		places, _ := e.bus.counts()
		avail, reserved := e.bus.available(skuTen, "web")
		for i := range 3 {
			again, err := e.rs.PlaceOrder(rctx(t), req)
			if err != nil || !proto.Equal(again, first) {
				t.Fatalf("%s retry %d over gRPC: %v, %v; want %v", req.GetOrderId(), i, again, err, first)
			}
			if rest := restOrder(t, e.postOrder(t, req)); !proto.Equal(rest, first) {
				t.Fatalf("%s retry %d over REST: %v, want %v", req.GetOrderId(), i, rest, first)
			}
		}
		if p, _ := e.bus.counts(); p != places {
			t.Errorf("%s: retries published %d more orders", req.GetOrderId(), p-places)
		}
		if a, r := e.bus.available(skuTen, "web"); a != avail || r != reserved {
			t.Errorf("%s: retries moved %s to %d available, %d reserved; was %d, %d", req.GetOrderId(), skuTen, a, r, avail, reserved)
		}
	}
	if a, r := e.bus.available(skuTen, "web"); a != 6 || r != 4 {
		t.Errorf("%s: %d available, %d reserved; want 6 and 4", skuTen, a, r)
	}
}

// A retry while the order is still undecided publishes it again; the saga
// re-requests the undecided lines and the SKU side answers duplicates with
// their first decision, so nothing is reserved twice.
func TestPlaceOrderRetryWhilePending(t *testing.T) {
	e := startOrders(t, 300*time.Millisecond)
	req := orderReq("o-slow", "web", ol(skuTen, 3), ol(skuOne, 1))
	e.bus.setStall(true)
	if _, err := e.rs.PlaceOrder(rctx(t), req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("PlaceOrder on a stalled pipeline: %v, want DeadlineExceeded", err)
	}
	pending, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-slow"})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "stalled", pending, "o-slow", pb.OrderStatus_ORDER_STATUS_PENDING,
		wantLine{status: pb.LineStatus_LINE_STATUS_PENDING}, wantLine{status: pb.LineStatus_LINE_STATUS_PENDING})

	e.bus.setStall(false)
	o, err := e.rs.PlaceOrder(rctx(t), req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	checkOrder(t, "retry", o, "o-slow", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted, accepted)
	if p, _ := e.bus.counts(); p != 2 {
		t.Errorf("%d orders published, want 2 (the first and the retry of an undecided order)", p)
	}
	// The first requests arrive after all: duplicates, nothing more held.
	e.bus.redeliverHeld()
	if a, r := e.bus.available(skuTen, "web"); a != 7 || r != 3 {
		t.Errorf("%s: %d available, %d reserved; want 7 and 3", skuTen, a, r)
	}
	if a, r := e.bus.available(skuOne, "web"); a != 0 || r != 1 {
		t.Errorf("%s: %d available, %d reserved; want 0 and 1", skuOne, a, r)
	}
	if got, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-slow"}); err != nil || !proto.Equal(got, o) {
		t.Errorf("after the late duplicates: %v, %v; want %v", got, err, o)
	}
	if d := e.bus.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters %v", d)
	}
}

func TestPlaceOrderSameIDDifferentOrder(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	if _, err := e.rs.PlaceOrder(rctx(t), orderReq("o-1", "web", ol(skuTen, 1), ol(skuNS, 1))); err != nil {
		t.Fatal(err)
	}
	places, _ := e.bus.counts()
	for name, req := range map[string]*pb.PlaceOrderRequest{
		"another quantity":       orderReq("o-1", "web", ol(skuTen, 2), ol(skuNS, 1)),
		"another sku":            orderReq("o-1", "web", ol(skuTen, 1), ol(skuCap, 1)),
		"lines in another order": orderReq("o-1", "web", ol(skuNS, 1), ol(skuTen, 1)),
		"one line fewer":         orderReq("o-1", "web", ol(skuTen, 1)),
		"another channel":        orderReq("o-1", "store-pickup", ol(skuTen, 1), ol(skuNS, 1)),
		"another ttl": {OrderId: "o-1", Channel: "web", Lines: []*pb.OrderLine{ol(skuTen, 1), ol(skuNS, 1)},
			ReservationTtl: durationpb.New(time.Hour)},
		"a ship-to region": {OrderId: "o-1", Channel: "web", Lines: []*pb.OrderLine{ol(skuTen, 1), ol(skuNS, 1)},
			ShipToRegion: "US"},
	} {
		_, err := e.rs.PlaceOrder(rctx(t), req)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), `"o-1"`) {
			t.Errorf("%s over gRPC: %v, want AlreadyExists naming the order id", name, err)
		}
		r := e.postOrder(t, req)
		if r.status != http.StatusConflict {
			t.Errorf("%s over REST: status %d, want 409: %s", name, r.status, r.body)
		} else if b := errorBody(t, r); b.Code != codes.AlreadyExists || !strings.Contains(b.Message, "already used for a different order") {
			t.Errorf("%s over REST: %+v", name, b)
		}
	}
	if p, _ := e.bus.counts(); p != places {
		t.Errorf("conflicting orders published %d commands", p-places)
	}
	if a, r := e.bus.available(skuTen, "web"); a != 9 || r != 1 {
		t.Errorf("%s: %d available, %d reserved; want 9 and 1", skuTen, a, r)
	}
}

func TestPlaceOrderMalformed(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	long := orderReq("o-long", "web")
	for i := range inventory.MaxOrderLines + 1 {
		long.Lines = append(long.Lines, ol(fmt.Sprintf("SKU-%03d", i), 1))
	}
	withTTL := func(d *durationpb.Duration) *pb.PlaceOrderRequest {
		r := orderReq("o-ttl", "web", ol(skuTen, 1))
		r.ReservationTtl = d
		return r
	}
	withShipTo := func(region string) *pb.PlaceOrderRequest {
		r := orderReq("o-region", "web", ol(skuTen, 1))
		r.ShipToRegion = region
		return r
	}
	cases := []struct {
		name string
		req  *pb.PlaceOrderRequest
		want []string
	}{
		{"no lines", orderReq("o-1", "web"), []string{"1 to 100 lines, this one 0"}},
		{"too many lines", long, []string{"this one 101"}},
		{"quantity 0", orderReq("o-1", "web", ol(skuTen, 0)), []string{"line 1", "quantity 0 is outside"}},
		{"negative quantity", orderReq("o-1", "web", ol(skuTen, 1), ol(skuOne, -2)), []string{"line 2", "quantity -2"}},
		{"quantity over the limit", orderReq("o-1", "web", ol(skuTen, inventory.MaxUnits+1)), []string{"quantity"}},
		{"duplicate sku", orderReq("o-1", "web", ol(skuTen, 1), ol(skuOne, 1), ol(skuTen, 2)), []string{"line 3", skuTen, "appears twice"}},
		{"empty sku", orderReq("o-1", "web", ol("", 1)), []string{"sku is empty"}},
		{"bad sku", orderReq("o-1", "web", ol("a\x01b", 1)), []string{`sku "a\x01b"`, "control character"}},
		{"empty id", orderReq("", "web", ol(skuTen, 1)), []string{"order_id is empty"}},
		{"id with a space", orderReq("bad id", "web", ol(skuTen, 1)), []string{`order_id "bad id" has characters outside`}},
		{"id too long", orderReq(strings.Repeat("o", inventory.MaxRefLength+1), "web", ol(skuTen, 1)), []string{"order_id", "longer than 128"}},
		{"no channel", orderReq("o-1", "", ol(skuTen, 1)), []string{"channel is empty"}},
		{"negative ttl", withTTL(durationpb.New(-5 * time.Second)), []string{"reservation ttl -5s is outside"}},
		{"zero ttl", withTTL(durationpb.New(0)), []string{"reservation ttl 0s is outside"}},
		{"ttl over 30 days", withTTL(durationpb.New(31 * 24 * time.Hour)), []string{"reservation ttl 744h0m0s is outside"}},
		{"everything wrong at once", orderReq("bad id", "", ol(skuTen, 0), ol(skuTen, 1)),
			[]string{"order_id", "channel is empty", "quantity 0", "appears twice"}},
		{"lower-case ship-to region", withShipTo("us-ca"), []string{`ship_to_region "us-ca" is not a region code`, inventory.RegionRule}},
		{"three-letter ship-to region", withShipTo("USA"), []string{`ship_to_region "USA"`, inventory.RegionRule}},
		{"ship-to region without subdivision", withShipTo("US-"), []string{`ship_to_region "US-"`, inventory.RegionRule}},
	}
	check := func(t *testing.T, what string, code codes.Code, msg string, want []string) {
		t.Helper()
		if code != codes.InvalidArgument {
			t.Errorf("%s: code %v (%q), want InvalidArgument", what, code, msg)
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: message %q does not mention %q", what, msg, w)
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.rs.PlaceOrder(rctx(t), tc.req)
			check(t, "gRPC", status.Code(err), status.Convert(err).Message(), tc.want)
			r := e.postOrder(t, tc.req)
			if r.status != http.StatusBadRequest {
				t.Errorf("REST: status %d, want 400: %s", r.status, r.body)
			} else {
				b := errorBody(t, r)
				check(t, "REST", b.Code, b.Message, tc.want)
			}
		})
	}
	// A duration protobuf itself rejects (gRPC only: JSON cannot say it).
	_, err := e.rs.PlaceOrder(rctx(t), withTTL(&durationpb.Duration{Seconds: 1, Nanos: -1}))
	check(t, "invalid duration", status.Code(err), status.Convert(err).Message(), []string{"reservation_ttl"})
	// Bodies that are not a PlaceOrderRequest at all.
	for name, body := range map[string]string{
		"not JSON":         `{"orderId":`,
		"bad ttl string":   `{"orderId":"o-1","channel":"web","lines":[{"sku":"` + skuTen + `","quantity":1}],"reservationTtl":"soon"}`,
		"quantity as text": `{"orderId":"o-1","channel":"web","lines":[{"sku":"` + skuTen + `","quantity":"one"}]}`,
		"lines not a list": `{"orderId":"o-1","channel":"web","lines":{"sku":"x"}}`,
	} {
		r := e.do(t, http.MethodPost, "/v1/orders", []byte(body))
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, r.status, r.body)
		}
	}
	if p, _ := e.bus.counts(); p != 0 {
		t.Errorf("malformed orders published %d commands", p)
	}
}

// A pipeline that never decides: DeadlineExceeded / 504 when the Wait bound
// passes, and a caller's shorter deadline ends the wait first. Which bound
// ended a wait shows in which deadline was still live when the answer
// came, never in how long the call took.
func TestPlaceOrderDeadline(t *testing.T) {
	e := startOrders(t, 200*time.Millisecond)
	e.bus.setStall(true)
	// The caller's deadline lies far beyond the configured 200ms bound and
	// short of the default one: an answer while the caller's context is
	// still live was ended by the configured bound.
	caller, cancel := context.WithTimeout(t.Context(), gateway.DefaultOrderWait/2)
	defer cancel()
	_, err := e.rs.PlaceOrder(caller, orderReq("o-1", "web", ol(skuTen, 1)))
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "still being decided") {
		t.Errorf("gRPC: %v, want DeadlineExceeded", err)
	}
	if caller.Err() != nil {
		t.Errorf("gRPC: the caller's own deadline ended the call (%v), not the wait bound", caller.Err())
	}

	// A REST request carries no deadline of its own, and the client's 10s
	// timeout (short of the default bound) fails the test rather than
	// return a response: a 504 can only come from the configured bound.
	r := e.postOrder(t, orderReq("o-2", "web", ol(skuTen, 1)))
	if r.status != http.StatusGatewayTimeout {
		t.Errorf("REST: status %d, want 504: %s", r.status, r.body)
	} else if b := errorBody(t, r); b.Code != codes.DeadlineExceeded {
		t.Errorf("REST body %+v", b)
	}
	// Nothing was decided, so nothing is held.
	if a, r := e.bus.available(skuTen, "web"); a != 10 || r != 0 {
		t.Errorf("%s: %d available, %d reserved while stalled", skuTen, a, r)
	}

	// With an hour's wait bound, only the caller's 100ms deadline can end
	// the wait. It goes over REST, in grpc-gateway's Grpc-Timeout header: a
	// gRPC client gives up at its deadline by itself, whatever the server
	// does, while an HTTP client gets a 504 only from the server.
	long := startOrders(t, time.Hour)
	long.bus.setStall(true)
	body, err := protojson.Marshal(orderReq("o-3", "web", ol(skuTen, 1)))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, long.base+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Grpc-Timeout", "100m") // 100 milliseconds
	resp, err := long.http.Do(req)
	if err != nil { // the client's own timeout: the server waited on
		t.Fatalf("caller deadline 100ms: %v; the wait did not end at the caller's deadline", err)
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("caller deadline 100ms: status %d, want 504: %s", resp.StatusCode, rb)
	}
	if a, r := long.bus.available(skuTen, "web"); a != 10 || r != 0 {
		t.Errorf("%s: %d available, %d reserved while stalled", skuTen, a, r)
	}
}

// A decision that arrives while PlaceOrder waits ends the wait with the
// decision: the hour-long bound and the caller's context are both still
// live when it returns.
func TestPlaceOrderReturnsWhenDecided(t *testing.T) {
	bus := newMemBus(busStates(t)...)
	bus.setStall(true)
	rs := reservationServer(t, gateway.OrdersOptions{Bus: bus, Wait: time.Hour, Poll: time.Hour})
	caller, cancel := context.WithCancel(t.Context())
	defer cancel()
	type answer struct {
		o   *pb.Order
		err error
	}
	done := make(chan answer, 1)
	go func() {
		o, err := rs.PlaceOrder(caller, orderReq("o-late", "web", ol(skuTen, 2)))
		done <- answer{o, err}
	}()
	// The order is published and its request is held: the SKU side has not
	// answered, so PlaceOrder cannot have its decision yet.
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := bus.heldCount(); n != 1 {
			return fmt.Errorf("%d requests held, want the order's one", n)
		}
		return nil
	})
	select {
	case a := <-done:
		t.Fatalf("PlaceOrder answered before the order was decided: %v, %v", a.o, a.err)
	default:
	}
	bus.redeliverHeld()
	var a answer
	select {
	case a = <-done: // with an hour's bound and poll, only the change can end the wait
	case <-time.After(time.Minute): // a hang guard: the property is that it returns at all
		t.Fatal("PlaceOrder still waiting a minute after its order was decided")
	}
	if a.err != nil {
		t.Fatalf("PlaceOrder: %v", a.err)
	}
	checkOrder(t, "decided while waiting", a.o, "o-late", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	if caller.Err() != nil {
		t.Errorf("the caller's context ended (%v) before the answer", caller.Err())
	}
}

// reservationServer is the reservation API's handler itself, without a
// gateway in front, to call in process.
func reservationServer(t *testing.T, o gateway.OrdersOptions) pb.ReservationServiceServer {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	svc, err := gateway.NewOrders(o)
	if err != nil {
		t.Fatalf("gateway.NewOrders: %v", err)
	}
	rs, ok := svc.(pb.ReservationServiceServer)
	if !ok {
		t.Fatalf("gateway.NewOrders returned %T, not a ReservationServiceServer", svc)
	}
	return rs
}

func TestGetOrder(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	_, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-404"})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "o-404") {
		t.Errorf("unknown order over gRPC: %v, want NotFound", err)
	}
	if r := e.do(t, http.MethodGet, orderPath("o-404"), nil); r.status != http.StatusNotFound {
		t.Errorf("unknown order over REST: %d, want 404: %s", r.status, r.body)
	}
	_, err = e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "bad id"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad id over gRPC: %v, want InvalidArgument", err)
	}
	if r := e.do(t, http.MethodGet, orderPath("bad id"), nil); r.status != http.StatusBadRequest {
		t.Errorf("bad id over REST: %d, want 400: %s", r.status, r.body)
	}
	placed, err := e.rs.PlaceOrder(rctx(t), orderReq("shop.eu_7-42", "web", ol(skuTen, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := restOrder(t, e.do(t, http.MethodGet, orderPath("shop.eu_7-42"), nil)); !proto.Equal(got, placed) {
		t.Errorf("GET = %v, want %v", got, placed)
	}
}

// Order ids may contain ':' (inventory.ValidateRef allows it); REST must
// reach such an order too, although ':' also starts a custom method.
func TestOrderIDWithColonOverREST(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	placed := restOrder(t, e.postOrder(t, orderReq("cart:42", "web", ol(skuTen, 1))))
	checkOrder(t, "place", placed, "cart:42", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	for _, path := range []string{"/v1/orders/cart:42", "/v1/orders/cart%3A42"} {
		r := e.do(t, http.MethodGet, path, nil)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want the order", path, r.status, r.body)
			continue
		}
		if got := restOrder(t, r); !proto.Equal(got, placed) {
			t.Errorf("GET %s = %v, want %v", path, got, placed)
		}
	}
	for _, path := range []string{"/v1/orders/cart:42:cancel", "/v1/orders/cart%3A42:cancel"} {
		r := e.do(t, http.MethodPost, path, nil)
		if r.status != http.StatusOK {
			t.Errorf("POST %s: %d %s, want the cancelled order", path, r.status, r.body)
			continue
		}
		if got := restOrder(t, r); got.GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Errorf("POST %s = %v, want cancelled", path, got)
		}
	}
}

func TestCancelOrder(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	if _, err := e.rs.PlaceOrder(rctx(t), orderReq("o-1", "web", ol(skuTen, 4), ol(skuOne, 1))); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.bus.available(skuTen, "web"); a != 6 {
		t.Fatalf("%s: %d available after the order, want 6", skuTen, a)
	}
	o, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatalf("CancelOrder: %v", err)
	}
	checkOrder(t, "cancel", o, "o-1", pb.OrderStatus_ORDER_STATUS_CANCELLED, released, released)
	for sku, want := range map[string]int64{skuTen: 10, skuOne: 1} {
		if a, r := e.bus.available(sku, "web"); a != want || r != 0 {
			t.Errorf("%s after cancel: %d available, %d reserved; want %d, 0", sku, a, r, want)
		}
	}
	_, cancels := e.bus.counts()
	again, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-1"})
	if err != nil || !proto.Equal(again, o) {
		t.Errorf("second cancel: %v, %v; want %v", again, err, o)
	}
	if _, c := e.bus.counts(); c != cancels {
		t.Errorf("a second cancel published %d commands", c-cancels)
	}
	// A retried PlaceOrder of the cancelled order answers it, reserving
	// nothing.
	if got, err := e.rs.PlaceOrder(rctx(t), orderReq("o-1", "web", ol(skuTen, 4), ol(skuOne, 1))); err != nil || !proto.Equal(got, o) {
		t.Errorf("place after cancel: %v, %v; want the cancelled order", got, err)
	}
	if a, _ := e.bus.available(skuTen, "web"); a != 10 {
		t.Errorf("%s: %d available after re-placing a cancelled order", skuTen, a)
	}

	// Over REST.
	restOrder(t, e.postOrder(t, orderReq("o-2", "web", ol(skuTen, 2))))
	r := e.do(t, http.MethodPost, orderPath("o-2")+":cancel", nil)
	checkOrder(t, "REST cancel", restOrder(t, r), "o-2", pb.OrderStatus_ORDER_STATUS_CANCELLED, released)
	if a, _ := e.bus.available(skuTen, "web"); a != 10 {
		t.Errorf("%s: %d available after the REST cancel", skuTen, a)
	}

	// A rejected order is answered as it is, nothing published.
	rej, err := e.rs.PlaceOrder(rctx(t), orderReq("o-3", "web", ol(skuTen, 11)))
	if err != nil || rej.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED {
		t.Fatalf("o-3: %v, %v", rej, err)
	}
	_, cancels = e.bus.counts()
	if got, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-3"}); err != nil || !proto.Equal(got, rej) {
		t.Errorf("cancel of a rejected order: %v, %v; want it unchanged", got, err)
	}
	if _, c := e.bus.counts(); c != cancels {
		t.Error("cancelling a rejected order published a command")
	}

	// A cancel before its place is remembered: the place that comes later
	// is answered cancelled and reserves nothing.
	early, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-404"})
	if err != nil || early.GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED || len(early.GetLines()) != 0 {
		t.Errorf("cancel of an unknown order: %v, %v; want it cancelled without lines", early, err)
	}
	if r := e.do(t, http.MethodPost, orderPath("o-405")+":cancel", nil); r.status != http.StatusOK ||
		restOrder(t, r).GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Errorf("REST cancel of an unknown order: %d, want 200 and cancelled", r.status)
	}
	late, err := e.rs.PlaceOrder(rctx(t), orderReq("o-404", "web", ol(skuTen, 2)))
	if err != nil {
		t.Fatalf("place after its cancel: %v", err)
	}
	checkOrder(t, "place after its cancel", late, "o-404", pb.OrderStatus_ORDER_STATUS_CANCELLED, refused(pb.RejectReason_REJECT_REASON_CANCELLED))
	if a, _ := e.bus.available(skuTen, "web"); a != 10 {
		t.Errorf("%s: %d available after placing a cancelled order", skuTen, a)
	}
	if got := restOrder(t, e.postOrder(t, orderReq("o-405", "web", ol(skuTen, 1)))); got.GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Errorf("REST place after its cancel: %v, want cancelled", got)
	}
	if _, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "bad id"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("cancel with a bad id: %v, want InvalidArgument", err)
	}
	if d := e.bus.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters %v", d)
	}
}

// Before the saga's view has recovered: /readyz and every call answer 503 /
// Unavailable, and nothing is published.
func TestOrdersNotReady(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	e.bus.setReady(false)
	if r := e.do(t, http.MethodGet, "/readyz", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %d, want 503", r.status)
	}
	req := orderReq("o-1", "web", ol(skuTen, 1))
	if _, err := e.rs.PlaceOrder(rctx(t), req); status.Code(err) != codes.Unavailable {
		t.Errorf("PlaceOrder: %v, want Unavailable", err)
	}
	if r := e.postOrder(t, req); r.status != http.StatusServiceUnavailable {
		t.Errorf("POST /v1/orders: %d, want 503: %s", r.status, r.body)
	}
	if _, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-1"}); status.Code(err) != codes.Unavailable {
		t.Errorf("GetOrder: %v, want Unavailable", err)
	}
	if r := e.do(t, http.MethodGet, orderPath("o-1"), nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/orders/o-1: %d, want 503", r.status)
	}
	if _, err := e.rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-1"}); status.Code(err) != codes.Unavailable {
		t.Errorf("CancelOrder: %v, want Unavailable", err)
	}
	if p, c := e.bus.counts(); p+c != 0 {
		t.Errorf("published %d places and %d cancels while not ready", p, c)
	}
	e.bus.setReady(true)
	if r := e.do(t, http.MethodGet, "/readyz", nil); r.status != http.StatusOK {
		t.Errorf("/readyz once ready: %d, want 200", r.status)
	}
	if _, err := e.rs.PlaceOrder(rctx(t), req); err != nil {
		t.Errorf("PlaceOrder once ready: %v", err)
	}
}

// Many clients race for the last units of a SKU: exactly as many orders are
// reserved as there are units.
func TestPlaceOrderConcurrentLastUnits(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	const clients = 40
	var wg sync.WaitGroup
	results := make([]*pb.Order, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.rs.PlaceOrder(rctx(t), orderReq(fmt.Sprintf("race-%02d", i), "web", ol(skuTen, 1)))
		}()
	}
	wg.Wait()
	reserved := 0
	for i, o := range results {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		switch o.GetStatus() {
		case pb.OrderStatus_ORDER_STATUS_RESERVED:
			reserved++
		case pb.OrderStatus_ORDER_STATUS_REJECTED:
			if o.GetLines()[0].GetRejectReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT {
				t.Errorf("client %d rejected for %v", i, o.GetLines()[0].GetRejectReason())
			}
		default:
			t.Errorf("client %d: %v", i, o)
		}
	}
	if reserved != 10 {
		t.Errorf("%d reserved, want 10", reserved)
	}
	if a, r := e.bus.available(skuTen, "web"); a != 0 || r != 10 {
		t.Errorf("%s: %d available, %d reserved; want 0 and 10", skuTen, a, r)
	}
}

// The fake bus follows the real rules: its SKU states are exactly the fold
// of the requests and releases its saga emitted, and every order it holds is
// the fold of its inputs.
func TestMemBusFollowsTheRules(t *testing.T) {
	b := newMemBus(busStates(t)...)
	ctx := t.Context()
	for _, p := range []inventory.PlaceOrder{
		{OrderID: "a", Channel: "web", Lines: []inventory.OrderLine{{SKU: skuOne, Quantity: 1}}, ReservationTTL: time.Minute, DecisionTimeout: time.Second},
		{OrderID: "b", Channel: "web", Lines: []inventory.OrderLine{{SKU: skuTen, Quantity: 2}, {SKU: skuOne, Quantity: 1}}, ReservationTTL: time.Minute, DecisionTimeout: time.Second},
	} {
		if err := b.Place(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	a, _, _ := b.Get("a")
	bo, _, _ := b.Get("b")
	if a.Status != inventory.OrderReserved || bo.Status != inventory.OrderRejected || bo.Lines[0].Status != inventory.LineReleased {
		t.Fatalf("a %+v\nb %+v", a, bo)
	}
	// The same messages, folded by hand.
	s := busStates(t)[0] // skuTen
	req := inventory.ReservationRequested{ReservationID: "b:1", OrderID: "b", SKU: skuTen, Channel: "web", Quantity: 2, TTL: time.Minute}
	s, out, _, err := inventory.Demand(s, req, b.pol, now)
	if err != nil || !out.Accepted {
		t.Fatalf("request: %v %v", out, err)
	}
	s, _, _, err = inventory.Demand(s, inventory.ReservationReleased{ReservationID: "b:1", SKU: skuTen, Reason: inventory.ReleaseCompensated}, b.pol, now)
	if err != nil {
		t.Fatal(err)
	}
	want, err := codecs.State{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	got, err := codecs.State{}.Encode(b.skus[skuTen])
	b.mu.Unlock()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("bus state of %s differs from the hand fold", skuTen)
	}
	// A waiter is woken by the order's next change.
	ch := b.Changed("c")
	if err := b.Place(ctx, inventory.PlaceOrder{OrderID: "c", Channel: "web", Lines: []inventory.OrderLine{{SKU: skuTen, Quantity: 1}},
		ReservationTTL: time.Minute, DecisionTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("Changed channel not closed by the order's update")
	}
}

// The last unit of a warehouse that serves every channel can be reserved
// once, whatever channel the orders come from.
func TestLastUnitIsReservedOnceAcrossChannels(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	web, err := e.rs.PlaceOrder(rctx(t), orderReq("o-web", "web", ol(skuOne, 1)))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "web", web, "o-web", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	mkt, err := e.rs.PlaceOrder(rctx(t), orderReq("o-mkt", "marketplace", ol(skuOne, 1)))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "marketplace", mkt, "o-mkt", pb.OrderStatus_ORDER_STATUS_REJECTED, refused(pb.RejectReason_REJECT_REASON_INSUFFICIENT))
	for _, ch := range channels {
		if a, _ := e.bus.available(skuOne, ch); a != 0 {
			t.Errorf("%s: %d available on %s with its only unit reserved", skuOne, a, ch)
		}
	}
}

// GetOrder tells the truth about what is held: each accepted line carries
// its expires_at, and once the earliest has passed the order is answered
// EXPIRED, even before the saga's tick records it; cancelling it then
// publishes nothing.
func TestOrderAnsweredExpired(t *testing.T) {
	bus := newMemBus(busStates(t)...)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	rs := reservationServer(t, gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter},
		Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	o, err := rs.PlaceOrder(rctx(t), orderReq("o-1", "web", ol(skuTen, 2), ol(skuOne, 1)))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "placed", o, "o-1", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted, accepted)
	exp := now.Add(gateway.DefaultReservationTTL)
	for i, l := range o.GetLines() {
		if !l.GetExpiresAt().AsTime().Equal(exp) {
			t.Errorf("line %d expires at %v, want %s", i+1, l.GetExpiresAt(), exp)
		}
	}
	clock.Store(exp.Add(-time.Nanosecond).UnixNano())
	if got, err := rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-1"}); err != nil || !proto.Equal(got, o) {
		t.Errorf("a nanosecond before expiry: %v, %v; want it reserved", got, err)
	}
	clock.Store(exp.UnixNano())
	got, err := rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	expiredLine := wantLine{status: pb.LineStatus_LINE_STATUS_EXPIRED}
	checkOrder(t, "at expiry", got, "o-1", pb.OrderStatus_ORDER_STATUS_EXPIRED, expiredLine, expiredLine)
	if !strings.Contains(got.GetReason(), "expired") {
		t.Errorf("expired order's reason %q", got.GetReason())
	}
	_, cancels := bus.counts()
	if c, err := rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-1"}); err != nil || !proto.Equal(c, got) {
		t.Errorf("cancel of an expired order: %v, %v; want it answered expired", c, err)
	}
	if _, c := bus.counts(); c != cancels {
		t.Error("cancelling an expired order published a command")
	}
	// The saga's tick records what the answer already said.
	bus.mu.Lock()
	bus.run("o-1", inventory.OrderTick{OrderID: "o-1", At: exp})
	stored := bus.orders["o-1"]
	bus.mu.Unlock()
	if !proto.Equal(codecs.OrderToProto(stored), got) {
		t.Errorf("after the tick the saga holds %+v, answered %v", stored, got)
	}
}

// ExtendOrder holds every line for the new TTL from now, answers the order
// with the new expires_at, and changes nothing when repeated; once the
// order expired it is refused (FailedPrecondition, 400) and publishes
// nothing; an unknown order is NotFound, a bad TTL InvalidArgument.
func TestExtendOrder(t *testing.T) {
	bus := newMemBus(busStates(t)...)
	clock := func() time.Time {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		return bus.now
	}
	setClock := func(at time.Time) {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		bus.now = at
	}
	t.Cleanup(func() { setClock(now) })
	rs := reservationServer(t, gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter}, Now: clock})
	if _, err := rs.PlaceOrder(rctx(t), orderReq("o-1", "web", ol(skuTen, 2), ol(skuOne, 1))); err != nil {
		t.Fatal(err)
	}
	setClock(now.Add(10 * time.Minute))
	o, err := rs.ExtendOrder(rctx(t), &pb.ExtendOrderRequest{OrderId: "o-1", ReservationTtl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatalf("ExtendOrder: %v", err)
	}
	checkOrder(t, "extended", o, "o-1", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted, accepted)
	want := now.Add(10*time.Minute + time.Hour)
	for i, l := range o.GetLines() {
		if !l.GetExpiresAt().AsTime().Equal(want) {
			t.Errorf("line %d expires at %v, want %s", i+1, l.GetExpiresAt().AsTime(), want)
		}
	}
	// The SKU side holds the units until then too.
	setClock(want.Add(-time.Second))
	if a, r := bus.available(skuTen, "web"); a != 8 || r != 2 {
		t.Errorf("%s just before the new expiry: %d available, %d reserved; want 8, 2", skuTen, a, r)
	}
	// A shorter TTL leaves the later expiry; repeating changes nothing.
	if again, err := rs.ExtendOrder(rctx(t), &pb.ExtendOrderRequest{OrderId: "o-1", ReservationTtl: durationpb.New(time.Second)}); err != nil || !proto.Equal(again, o) {
		t.Errorf("shorter extension: %v, %v; want the order unchanged", again, err)
	}
	setClock(want)
	if a, r := bus.available(skuTen, "web"); a != 10 || r != 0 {
		t.Errorf("%s at the new expiry: %d available, %d reserved; want 10, 0", skuTen, a, r)
	}
	bus.mu.Lock()
	extends := bus.extends
	bus.mu.Unlock()
	_, err = rs.ExtendOrder(rctx(t), &pb.ExtendOrderRequest{OrderId: "o-1", ReservationTtl: durationpb.New(time.Hour)})
	if apierr.Status(err).Code() != codes.FailedPrecondition || !strings.Contains(apierr.Status(err).Message(), "EXPIRED") {
		t.Errorf("extension after expiry: %v, want FailedPrecondition naming EXPIRED", err)
	}
	bus.mu.Lock()
	if bus.extends != extends {
		t.Error("a refused extension was published")
	}
	bus.mu.Unlock()

	for _, tc := range []struct {
		name string
		req  *pb.ExtendOrderRequest
		code codes.Code
	}{
		{"unknown order", &pb.ExtendOrderRequest{OrderId: "o-404", ReservationTtl: durationpb.New(time.Hour)}, codes.NotFound},
		{"no ttl", &pb.ExtendOrderRequest{OrderId: "o-1"}, codes.InvalidArgument},
		{"zero ttl", &pb.ExtendOrderRequest{OrderId: "o-1", ReservationTtl: durationpb.New(0)}, codes.InvalidArgument},
		{"ttl too long", &pb.ExtendOrderRequest{OrderId: "o-1", ReservationTtl: durationpb.New(31 * 24 * time.Hour)}, codes.InvalidArgument},
		{"bad id", &pb.ExtendOrderRequest{OrderId: "bad id", ReservationTtl: durationpb.New(time.Hour)}, codes.InvalidArgument},
	} {
		if _, err := rs.ExtendOrder(rctx(t), tc.req); apierr.Status(err).Code() != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
}

// ExtendOrder answers only once every line's SKU decided the extension:
// while the SKU side has not answered, the call waits and GetOrder shows the
// extension pending (extend_to) with the old, confirmed expires_at. A SKU
// that accepts late gives the new expiry. A SKU whose hold ran out between
// the saga's decision and its own refuses: the order ends EXPIRED and
// ExtendOrder answers FailedPrecondition, never the extended order.
func TestExtendOrderWaitsForTheSKU(t *testing.T) {
	bus := newMemBus(busStates(t)...)
	clock := func() time.Time {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		return bus.now
	}
	setClock := func(at time.Time) {
		bus.mu.Lock()
		defer bus.mu.Unlock()
		bus.now = at
	}
	t.Cleanup(func() { setClock(now) })
	rs := reservationServer(t, gateway.OrdersOptions{Bus: bus, Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter}, Now: clock})

	type answer struct {
		o   *pb.Order
		err error
	}
	// extendStalled starts ExtendOrder with the SKU side stalled and returns
	// once the saga sent the extensions; nothing may have been answered.
	extendStalled := func(id string, ttl time.Duration, lines int) <-chan answer {
		t.Helper()
		bus.setStall(true)
		done := make(chan answer, 1)
		go func() {
			o, err := rs.ExtendOrder(rctx(t), &pb.ExtendOrderRequest{OrderId: id, ReservationTtl: durationpb.New(ttl)})
			done <- answer{o, err}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for bus.heldCount() < lines {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the saga sent %d extensions, want %d", id, bus.heldCount(), lines)
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case a := <-done:
			t.Fatalf("%s: ExtendOrder answered before any SKU decided: %v, %v", id, a.o, a.err)
		case <-time.After(50 * time.Millisecond):
		}
		return done
	}
	pendingShown := func(id string, old, to time.Time) {
		t.Helper()
		got, err := rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: id})
		if err != nil || got.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
			t.Fatalf("GetOrder(%s) while pending: %v, %v", id, got, err)
		}
		for i, l := range got.GetLines() {
			if !l.GetExpiresAt().AsTime().Equal(old) || !l.GetExtendTo().AsTime().Equal(to) {
				t.Errorf("%s line %d while pending: expires_at %v extend_to %v; want %s and %s pending", id, i+1,
					l.GetExpiresAt().AsTime(), l.GetExtendTo().AsTime(), old, to)
			}
		}
	}
	wait := func(done <-chan answer) answer {
		t.Helper()
		select {
		case a := <-done:
			return a
		case <-time.After(10 * time.Second):
			t.Fatal("ExtendOrder did not answer after the SKU decided")
			return answer{}
		}
	}

	// Accepted late: the answer carries the confirmed expiry.
	placed, err := rs.PlaceOrder(rctx(t), orderReq("o-late", "web", ol(skuTen, 2), ol(skuOne, 1)))
	if err != nil {
		t.Fatal(err)
	}
	old := placed.GetLines()[0].GetExpiresAt().AsTime()
	setClock(now.Add(time.Minute))
	to := now.Add(time.Minute + time.Hour)
	done := extendStalled("o-late", time.Hour, 2)
	pendingShown("o-late", old, to)
	bus.setStall(false)
	bus.redeliverHeld()
	a := wait(done)
	if a.err != nil {
		t.Fatalf("ExtendOrder accepted late: %v", a.err)
	}
	checkOrder(t, "accepted late", a.o, "o-late", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted, accepted)
	for i, l := range a.o.GetLines() {
		if !l.GetExpiresAt().AsTime().Equal(to) || l.GetExtendTo() != nil {
			t.Errorf("line %d expires at %v (extend_to %v), want %s confirmed", i+1, l.GetExpiresAt().AsTime(), l.GetExtendTo(), to)
		}
	}
	// Releases the units for the next order.
	if _, err := rs.CancelOrder(rctx(t), &pb.CancelOrderRequest{OrderId: "o-late"}); err != nil {
		t.Fatal(err)
	}

	// Refused: the hold runs out at the SKU before the extension reaches
	// it, though the saga still held the order when it asked.
	setClock(now)
	placed, err = rs.PlaceOrder(rctx(t), orderReq("o-refused", "web", ol(skuTen, 2), ol(skuOne, 1)))
	if err != nil || placed.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("place: %v, %v", placed, err)
	}
	old = placed.GetLines()[0].GetExpiresAt().AsTime()
	setClock(old.Add(-time.Second))
	to = old.Add(-time.Second + time.Hour)
	done = extendStalled("o-refused", time.Hour, 2)
	pendingShown("o-refused", old, to)
	setClock(old.Add(time.Second))
	bus.setStall(false)
	bus.redeliverHeld()
	a = wait(done)
	if apierr.Status(a.err).Code() != codes.FailedPrecondition || !strings.Contains(apierr.Status(a.err).Message(), "EXPIRED") {
		t.Fatalf("extension the SKU refused: %v, %v; want FailedPrecondition naming EXPIRED", a.o, a.err)
	}
	got, err := rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-refused"})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "refused", got, "o-refused", pb.OrderStatus_ORDER_STATUS_EXPIRED,
		wantLine{status: pb.LineStatus_LINE_STATUS_EXPIRED}, wantLine{status: pb.LineStatus_LINE_STATUS_EXPIRED})
	for i, l := range got.GetLines() {
		if !l.GetExpiresAt().AsTime().Equal(old) || l.GetExtendTo() != nil {
			t.Errorf("refused line %d: expires_at %v extend_to %v; want %s, nothing pending", i+1, l.GetExpiresAt().AsTime(), l.GetExtendTo(), old)
		}
	}
	if a, r := bus.available(skuTen, "web"); a != 10 || r != 0 {
		t.Errorf("%s after the refusal: %d available, %d reserved; want 10, 0", skuTen, a, r)
	}
	if dead := bus.deadLetters(); len(dead) != 0 {
		t.Errorf("dead letters: %v", dead)
	}
}

// ExtendOrder over REST: POST /v1/orders/{id}:extend with the TTL in the
// body; an expired order answers 400.
func TestExtendOrderREST(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	restOrder(t, e.postOrder(t, orderReq("o-1", "web", ol(skuTen, 1))))
	r := e.do(t, http.MethodPost, orderPath("o-1")+":extend", []byte(`{"reservationTtl":"7200s"}`))
	o := restOrder(t, r)
	checkOrder(t, "REST extend", o, "o-1", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	if got, want := o.GetLines()[0].GetExpiresAt().AsTime(), now.Add(2*time.Hour); !got.Equal(want) {
		t.Errorf("REST extend: expires at %s, want %s", got, want)
	}
	if r := e.do(t, http.MethodPost, orderPath("o-404")+":extend", []byte(`{"reservationTtl":"60s"}`)); r.status != http.StatusNotFound {
		t.Errorf("REST extend of an unknown order: %d, want 404", r.status)
	}
}

// An order's ship-to region reaches the reservation decision: with the
// only stock at a warehouse that does not ship to US-CA, an order for
// US-CA is rejected as insufficient, the same order for US-NY (or with no
// region) is reserved, and GetOrder shows the region the order was
// placed with. Reusing an order id with another region is a conflict.
func TestPlaceOrderShipToRegion(t *testing.T) {
	e := startOrders(t, 5*time.Second)
	lp, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false,
		inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, ExcludedRegions: []string{"US-CA"}, AsOf: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.bus.mu.Lock()
	e.bus.pol.Locations = map[string]inventory.LocationPolicy{"WH-1": lp}
	e.bus.mu.Unlock()
	withRegion := func(id, region string) *pb.PlaceOrderRequest {
		r := orderReq(id, "web", ol(skuTen, 2))
		r.ShipToRegion = region
		return r
	}

	o, err := e.rs.PlaceOrder(rctx(t), withRegion("o-ca", "US-CA"))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "US-CA", o, "o-ca", pb.OrderStatus_ORDER_STATUS_REJECTED, refused(pb.RejectReason_REJECT_REASON_INSUFFICIENT))
	if o.GetShipToRegion() != "US-CA" {
		t.Errorf("US-CA order answered with ship_to_region %q", o.GetShipToRegion())
	}
	if a, r := e.bus.available(skuTen, "web"); a != 10 || r != 0 {
		t.Errorf("after the US-CA order: %d available, %d reserved; want 10 and 0", a, r)
	}

	ny := restOrder(t, e.postOrder(t, withRegion("o-ny", "US-NY")))
	checkOrder(t, "US-NY over REST", ny, "o-ny", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	if ny.GetShipToRegion() != "US-NY" {
		t.Errorf("US-NY order answered with ship_to_region %q", ny.GetShipToRegion())
	}
	plain, err := e.rs.PlaceOrder(rctx(t), withRegion("o-plain", ""))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, "no region", plain, "o-plain", pb.OrderStatus_ORDER_STATUS_RESERVED, accepted)
	if plain.GetShipToRegion() != "" {
		t.Errorf("region-less order answered with ship_to_region %q", plain.GetShipToRegion())
	}

	got, err := e.rs.GetOrder(rctx(t), &pb.GetOrderRequest{OrderId: "o-ca"})
	if err != nil || got.GetShipToRegion() != "US-CA" || got.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED {
		t.Errorf("GetOrder(o-ca) = %v, %v; want rejected, ship_to_region US-CA", got, err)
	}
	if r := e.do(t, http.MethodGet, orderPath("o-ny"), nil); !strings.Contains(string(r.body), `"shipToRegion":"US-NY"`) {
		t.Errorf("GET o-ny over REST: %d %s; want shipToRegion US-NY", r.status, r.body)
	}

	// A retry with the same region is the same order; another region, or
	// none, is a different order.
	if again, err := e.rs.PlaceOrder(rctx(t), withRegion("o-ny", "US-NY")); err != nil || again.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Errorf("retry of o-ny: %v, %v", again, err)
	}
	places, _ := e.bus.counts()
	for _, region := range []string{"", "US", "US-CA"} {
		if _, err := e.rs.PlaceOrder(rctx(t), withRegion("o-ny", region)); status.Code(err) != codes.AlreadyExists {
			t.Errorf("o-ny again for %q over gRPC: %v, want AlreadyExists", region, err)
		}
		if r := e.postOrder(t, withRegion("o-ny", region)); r.status != http.StatusConflict {
			t.Errorf("o-ny again for %q over REST: status %d, want 409: %s", region, r.status, r.body)
		}
	}
	if _, err := e.rs.PlaceOrder(rctx(t), withRegion("o-plain", "US-NY")); status.Code(err) != codes.AlreadyExists {
		t.Errorf("o-plain again for US-NY: %v, want AlreadyExists", err)
	}
	if p, _ := e.bus.counts(); p != places {
		t.Errorf("conflicting orders published %d commands", p-places)
	}
	if a, r := e.bus.available(skuTen, "web"); a != 6 || r != 4 {
		t.Errorf("%d available, %d reserved; want 6 and 4", a, r)
	}
	if d := e.bus.deadLetters(); len(d) != 0 {
		t.Errorf("dead letters %v", d)
	}
}
