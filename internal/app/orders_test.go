package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// orderStack runs processors and a gateway with the reservation API on the
// embedded broker; restart replaces both on the same data.
type orderStack struct {
	t        *testing.T
	k        kafkaOpts
	cfg      inventory.Base
	ocfg     gateway.OrdersOptions
	procDir  string
	serveDir string
	stop     []context.CancelFunc
	avail    pb.AvailabilityServiceClient
	orders   pb.ReservationServiceClient
	http     string // the gateway's REST address
}

func startOrderStack(t *testing.T, ocfg gateway.OrdersOptions, reconcile time.Duration) *orderStack {
	b := testkit.StartBroker(t)
	s := &orderStack{t: t, k: b.Kafka, ocfg: ocfg, procDir: t.TempDir(), serveDir: t.TempDir(),
		cfg: inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour}}
	s.start(reconcile)
	return s
}

func (s *orderStack) start(reconcile time.Duration) {
	t := s.t
	s.stop = append(s.stop, testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: s.k, Base: s.cfg, DataDir: s.procDir, ReconcileEvery: reconcile, Coalescing: app.DefaultCoalescing})
	}))
	srv, err := app.NewServe(app.ServeOptions{Kafka: s.k, Base: s.cfg, DataDir: s.serveDir, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Services: []app.ServiceFactory{app.Reservations(s.ocfg)}})
	if err != nil {
		t.Fatal(err)
	}
	s.stop = append(s.stop, testkit.Go(t, srv.Run))
	s.http = srv.HTTPAddr()
	conn := dialGRPC(t, srv.GRPCAddr())
	s.avail, s.orders = pb.NewAvailabilityServiceClient(conn), pb.NewReservationServiceClient(conn)
	testkit.Eventually(t, 30*time.Second, func() error {
		if !srv.Ready() {
			return fmt.Errorf("gateway not ready")
		}
		return nil
	})
}

// restart stops the gateway and the processors, then starts them again on
// the same LevelDB directories.
func (s *orderStack) restart(reconcile time.Duration) {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
	s.stop = nil
	s.start(reconcile)
}

func (s *orderStack) webAvailable(sku string) (int64, int64, error) {
	a, err := s.avail.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range a.GetChannels() {
		if c.GetChannel() == "web" {
			return c.GetAvailable(), c.GetReserved(), nil
		}
	}
	return 0, 0, fmt.Errorf("no web channel in %v", a)
}

// TestLastUnitsRace: 1,000 concurrent PlaceOrder calls of one unit each, for
// a SKU with 10 units, through the real gateway and the embedded broker.
// Exactly 10 are reserved and 990 rejected, availability ends at 0, and all
// of it holds after a restart.
func TestLastUnitsRace(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: 2 * time.Minute, Wait: 2 * time.Minute}, time.Second)
	const sku, units, carts = "SKU-RACE", 10, 1000
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: units, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		if n, _, err := s.webAvailable(sku); err != nil || n != units {
			return fmt.Errorf("available %d, %v", n, err)
		}
		return nil
	})

	var wg sync.WaitGroup
	results := make([]*pb.Order, carts)
	errs := make([]error, carts)
	start := time.Now()
	for i := range carts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{
				OrderId: fmt.Sprintf("race-%04d", i), Channel: "web", Lines: []*pb.OrderLine{{Sku: sku, Quantity: 1}},
			})
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent PlaceOrder calls answered in %s", carts, time.Since(start).Round(time.Millisecond))
	reserved, rejected := 0, 0
	for i, o := range results {
		if errs[i] != nil {
			t.Fatalf("order %d: %v", i, errs[i])
		}
		switch o.GetStatus() {
		case pb.OrderStatus_ORDER_STATUS_RESERVED:
			reserved++
		case pb.OrderStatus_ORDER_STATUS_REJECTED:
			rejected++
			if r := o.GetLines()[0].GetRejectReason(); r != pb.RejectReason_REJECT_REASON_INSUFFICIENT {
				t.Errorf("order %d rejected with %v, want INSUFFICIENT", i, r)
			}
		default:
			t.Errorf("order %d ended %v", i, o.GetStatus())
		}
	}
	if reserved != units || rejected != carts-units {
		t.Fatalf("%d reserved, %d rejected; want %d and %d", reserved, rejected, units, carts-units)
	}
	check := func() {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error {
			n, held, err := s.webAvailable(sku)
			if err != nil || n != 0 || held != units {
				return fmt.Errorf("available %d, reserved %d (%v); want 0 and %d", n, held, err, units)
			}
			return nil
		})
	}
	check()
	// A retried PlaceOrder returns the same result and reserves nothing more.
	for i := range 20 {
		again, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{
			OrderId: fmt.Sprintf("race-%04d", i), Channel: "web", Lines: []*pb.OrderLine{{Sku: sku, Quantity: 1}},
		})
		if err != nil || again.GetStatus() != results[i].GetStatus() {
			t.Fatalf("retry of order %d: %v, %v; first answer %v", i, again.GetStatus(), err, results[i].GetStatus())
		}
	}
	s.restart(time.Second)
	check()
	for i, o := range results {
		got, err := s.orders.GetOrder(context.Background(), &pb.GetOrderRequest{OrderId: o.GetOrderId()})
		if err != nil || got.GetStatus() != o.GetStatus() {
			t.Fatalf("after restart, order %d: %v, %v; want %v", i, got.GetStatus(), err, o.GetStatus())
		}
	}
}

// TestImpossibleLineHoldsNothing: an order whose last line cannot be
// reserved ends REJECTED and holds no units on any line.
func TestImpossibleLineHoldsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, time.Second)
	now := time.Now().Add(-time.Minute)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: "SKU-A", Location: "WH-1", OnHand: 5, AsOf: now, Sequence: 1},
		inventory.StockLevel{SKU: "SKU-B", Location: "WH-1", OnHand: 7, AsOf: now, Sequence: 1},
		inventory.StockLevel{SKU: "SKU-C", Location: "WH-1", OnHand: 1, AsOf: now, Sequence: 1},
	})
	for _, sku := range []string{"SKU-A", "SKU-B", "SKU-C"} {
		testkit.Eventually(t, 30*time.Second, func() error {
			_, _, err := s.webAvailable(sku)
			return err
		})
	}
	cases := []struct {
		id    string
		lines []*pb.OrderLine
	}{
		{"multi-1", []*pb.OrderLine{{Sku: "SKU-A", Quantity: 2}, {Sku: "SKU-B", Quantity: 3}, {Sku: "SKU-C", Quantity: 2}}},
		{"multi-2", []*pb.OrderLine{{Sku: "SKU-C", Quantity: 5}, {Sku: "SKU-A", Quantity: 5}, {Sku: "SKU-B", Quantity: 7}}},
		{"multi-3", []*pb.OrderLine{{Sku: "SKU-A", Quantity: 1}, {Sku: "SKU-NONE", Quantity: 1}}},
	}
	for _, c := range cases {
		o, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: c.id, Channel: "web", Lines: c.lines})
		if err != nil {
			t.Fatal(err)
		}
		if o.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED {
			t.Fatalf("%s ended %v, want REJECTED: %v", c.id, o.GetStatus(), o)
		}
		for _, l := range o.GetLines() {
			if l.GetStatus() == pb.LineStatus_LINE_STATUS_ACCEPTED {
				t.Errorf("%s: line %s still accepted in a rejected order", c.id, l.GetSku())
			}
		}
	}
	want := map[string]int64{"SKU-A": 5, "SKU-B": 7, "SKU-C": 1}
	for sku, n := range want {
		testkit.Eventually(t, 30*time.Second, func() error {
			got, held, err := s.webAvailable(sku)
			if err != nil || got != n || held != 0 {
				return fmt.Errorf("%s: available %d reserved %d (%v); want %d and 0", sku, got, held, err, n)
			}
			return nil
		})
	}
}

// TestReservationExpires: an unconfirmed reservation's units come back
// after its TTL with no further traffic for the SKU, in queries and in the
// published availability topic.
func TestReservationExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, 200*time.Millisecond)
	published := availabilityView(t, s.k)
	sagaTable := ordersView(t, s.k)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: "SKU-EXP", Location: "WH-1", OnHand: 4, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := s.webAvailable("SKU-EXP")
		return err
	})
	o, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "exp-1", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: "SKU-EXP", Quantity: 3}}, ReservationTtl: durationpb.New(2 * time.Second)})
	if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("place: %v %v", o.GetStatus(), err)
	}
	placed := time.Now()
	exp := o.GetLines()[0].GetExpiresAt()
	// The hold runs from the SKU processor's decision, just after the place.
	if from := o.GetPlacedAt().AsTime().Add(2 * time.Second); exp == nil || exp.AsTime().Before(from) || exp.AsTime().After(from.Add(10*time.Second)) {
		t.Fatalf("reserved line expires at %v, placed at %v with a 2s TTL", exp, o.GetPlacedAt())
	}
	if n, held, err := s.webAvailable("SKU-EXP"); err != nil || n != 1 || held != 3 {
		t.Fatalf("while held: available %d reserved %d (%v); want 1 and 3", n, held, err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		n, held, err := s.webAvailable("SKU-EXP")
		if err != nil || n != 4 || held != 0 {
			return fmt.Errorf("available %d reserved %d (%v)", n, held, err)
		}
		return nil
	})
	t.Logf("query showed the units back %s after placing (TTL 2s)", time.Since(placed).Round(time.Millisecond))
	// The published topic catches up through the reconciler's tick, which
	// also releases the reservation in the SKU's state.
	testkit.Eventually(t, 30*time.Second, func() error {
		a, err := published.Get("SKU-EXP")
		if err != nil || a == nil {
			return fmt.Errorf("published: %v %v", a, err)
		}
		for _, c := range a.GetChannels() {
			if c.GetChannel() == "web" && (c.GetAvailable() != 4 || c.GetReserved() != 0) {
				return fmt.Errorf("published web available %d reserved %d", c.GetAvailable(), c.GetReserved())
			}
		}
		return nil
	})
	t.Logf("availability topic showed the units back %s after placing (TTL 2s)", time.Since(placed).Round(time.Millisecond))
	// GetOrder tells the truth: the order expired, nothing is held.
	got, err := s.orders.GetOrder(context.Background(), &pb.GetOrderRequest{OrderId: "exp-1"})
	if err != nil || got.GetStatus() != pb.OrderStatus_ORDER_STATUS_EXPIRED || got.GetLines()[0].GetStatus() != pb.LineStatus_LINE_STATUS_EXPIRED ||
		!proto.Equal(got.GetLines()[0].GetExpiresAt(), exp) {
		t.Fatalf("GetOrder after expiry: %v, %v; want expired at %v", got, err, exp)
	}
	// The saga records it too, from the reconciler's order tick.
	testkit.Eventually(t, 30*time.Second, func() error {
		o, found, err := sagaTable.Get("exp-1")
		if err != nil || !found || o.Status != inventory.OrderExpired || o.Lines[0].Status != inventory.LineExpired {
			return fmt.Errorf("saga holds %+v (found %v, %v)", o, found, err)
		}
		return nil
	})
	if c, err := s.orders.CancelOrder(context.Background(), &pb.CancelOrderRequest{OrderId: "exp-1"}); err != nil || c.GetStatus() != pb.OrderStatus_ORDER_STATUS_EXPIRED {
		t.Errorf("cancel after expiry: %v, %v; want it answered expired", c, err)
	}
	if n, held, err := s.webAvailable("SKU-EXP"); err != nil || n != 4 || held != 0 {
		t.Errorf("after the saga's expiry: available %d reserved %d (%v); want 4 and 0", n, held, err)
	}
}

// TestCancelBeforePlace: a cancel for an order id not known yet is
// remembered through the gateway, the saga and the broker; the place that
// follows is answered CANCELLED, holds nothing, and a retry of it too.
func TestCancelBeforePlace(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, time.Second)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: "SKU-CBP", Location: "WH-1", OnHand: 5, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := s.webAvailable("SKU-CBP")
		return err
	})
	c, err := s.orders.CancelOrder(context.Background(), &pb.CancelOrderRequest{OrderId: "cbp-1"})
	if err != nil || c.GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED || len(c.GetLines()) != 0 {
		t.Fatalf("early cancel: %v, %v; want cancelled without lines", c, err)
	}
	req := &pb.PlaceOrderRequest{OrderId: "cbp-1", Channel: "web", Lines: []*pb.OrderLine{{Sku: "SKU-CBP", Quantity: 2}}}
	for attempt := range 2 {
		o, err := s.orders.PlaceOrder(context.Background(), req)
		if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_CANCELLED || len(o.GetLines()) != 1 ||
			o.GetLines()[0].GetStatus() != pb.LineStatus_LINE_STATUS_REJECTED || o.GetLines()[0].GetRejectReason() != pb.RejectReason_REJECT_REASON_CANCELLED {
			t.Fatalf("place %d after its cancel: %v, %v; want cancelled, line rejected as cancelled", attempt+1, o, err)
		}
	}
	if n, held, err := s.webAvailable("SKU-CBP"); err != nil || n != 5 || held != 0 {
		t.Errorf("after the cancelled place: available %d reserved %d (%v); want 5 and 0", n, held, err)
	}
}

func ordersView(t *testing.T, k kafkaOpts) *views.Orders {
	t.Helper()
	v, err := views.NewOrders(k.Brokers, append(k.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, v.Run)
	return v
}

// TestOrderIDRace: eight callers race to place different orders under one
// id, five times over, through the gateway, the saga and the SKU processor
// on the embedded broker. The saga keeps the first order it reads; exactly
// the callers who placed that order get it, every other one AlreadyExists
// naming the id.
func TestOrderIDRace(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, time.Second)
	const sku, callers, rounds = "SKU-SAMEID", 8, 5
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 100, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := s.webAvailable(sku)
		return err
	})
	// Caller i orders i%3+1 units: three different orders, each placed by
	// two or three callers.
	qty := func(i int) int64 { return int64(i%3 + 1) }
	for round := range rounds {
		id := fmt.Sprintf("same-id-%d", round)
		answers := make([]*pb.Order, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				answers[i], errs[i] = s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{
					OrderId: id, Channel: "web", Lines: []*pb.OrderLine{{Sku: sku, Quantity: qty(i)}}})
			})
		}
		wg.Wait()
		recorded, err := s.orders.GetOrder(context.Background(), &pb.GetOrderRequest{OrderId: id})
		if err != nil {
			t.Fatalf("round %d: GetOrder: %v", round, err)
		}
		if recorded.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED || len(recorded.GetLines()) != 1 {
			t.Fatalf("round %d: recorded %v, want one reserved line", round, recorded)
		}
		winners := 0
		for i := range callers {
			if qty(i) == recorded.GetLines()[0].GetQuantity() {
				winners++
				if errs[i] != nil || !proto.Equal(answers[i], recorded) {
					t.Errorf("round %d caller %d placed the recorded order: %v, %v; want %v", round, i, answers[i], errs[i], recorded)
				}
				continue
			}
			if status.Code(errs[i]) != codes.AlreadyExists || !strings.Contains(status.Convert(errs[i]).Message(), `"`+id+`"`) {
				t.Errorf("round %d caller %d placed a different order: %v, %v; want AlreadyExists naming %q", round, i, answers[i], errs[i], id)
			}
		}
		if winners < 2 {
			t.Errorf("round %d: %d callers got the recorded order, want its 2 or 3", round, winners)
		}
	}
}

// TestUnknownChannelFailsFast: an order on a channel the stack does not
// answer for (it answers for web only) is refused InvalidArgument with the
// reason, and never published: the same id then places a good order, which
// the saga would refuse had it seen the first (same key, same partition).
func TestUnknownChannelFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, time.Second)
	const sku = "SKU-CHAN"
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 5, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := s.webAvailable(sku)
		return err
	})
	for _, ch := range []string{"Web", "mobile", "marketplace"} {
		_, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "chan-1", Channel: ch,
			Lines: []*pb.OrderLine{{Sku: sku, Quantity: 1}}})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument ||
			!strings.Contains(st.Message(), fmt.Sprintf("channel %q is not configured", ch)) || !strings.Contains(st.Message(), "web") {
			t.Errorf("%q: %v, want InvalidArgument naming the channel and the configured ones", ch, err)
		}
	}
	o, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "chan-1", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: sku, Quantity: 2}}})
	if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("the good order under the refused orders' id: %v, %v; want it reserved", o, err)
	}
}

// TestExtendOrder: ExtendOrder over gRPC and REST on the embedded broker
// moves every line's expires_at and the SKU's hold with it, answering once
// the SKU confirmed it; an order that expired is refused with
// FailedPrecondition (REST 400).
func TestExtendOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s, stock := startLifecycleStack(t)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: "SKU-EXT", Location: "WH-1", OnHand: 5, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := s.webAvailable("SKU-EXT")
		return err
	})
	ctx := context.Background()
	o, err := s.orders.PlaceOrder(ctx, &pb.PlaceOrderRequest{OrderId: "ext-1", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: "SKU-EXT", Quantity: 2}}, ReservationTtl: durationpb.New(time.Minute)})
	if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("place: %v %v", o, err)
	}
	before := o.GetLines()[0].GetExpiresAt().AsTime()
	x, err := s.orders.ExtendOrder(ctx, &pb.ExtendOrderRequest{OrderId: "ext-1", ReservationTtl: durationpb.New(2 * time.Hour)})
	if err != nil || x.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("extend: %v %v", x, err)
	}
	to := x.GetLines()[0].GetExpiresAt().AsTime()
	if to.Sub(before) < time.Hour {
		t.Fatalf("extended to %s, was %s", to, before)
	}
	// The answer came once the SKU confirmed the expiry: nothing pending.
	if p := x.GetLines()[0].GetExtendTo(); p != nil {
		t.Fatalf("extension answered while still pending (extend_to %s)", p.AsTime())
	}
	// The SKU holds the units until the same time.
	testkit.Eventually(t, 30*time.Second, func() error {
		st, ok, err := stock.Get("SKU-EXT")
		if err != nil || !ok {
			return fmt.Errorf("stock: %v %v", ok, err)
		}
		for _, r := range st.Reservations {
			if r.ID == "ext-1:1" && r.Status == inventory.StatusHeld && r.ExpiresAt.Equal(to) {
				return nil
			}
		}
		return fmt.Errorf("reservations %+v, want ext-1:1 held until %s", st.Reservations, to)
	})
	if n, held, err := s.webAvailable("SKU-EXT"); err != nil || n != 3 || held != 2 {
		t.Errorf("after the extension: available %d reserved %d (%v); want 3 and 2", n, held, err)
	}
	// Repeating it with a shorter TTL leaves the later expiry.
	if again, err := s.orders.ExtendOrder(ctx, &pb.ExtendOrderRequest{OrderId: "ext-1", ReservationTtl: durationpb.New(time.Minute)}); err != nil ||
		!again.GetLines()[0].GetExpiresAt().AsTime().Equal(to) {
		t.Errorf("shorter extension: %v %v", again, err)
	}

	// An order that expired is not extended.
	if _, err := s.orders.PlaceOrder(ctx, &pb.PlaceOrderRequest{OrderId: "ext-2", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: "SKU-EXT", Quantity: 1}}, ReservationTtl: durationpb.New(time.Second)}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		o, err := s.orders.GetOrder(ctx, &pb.GetOrderRequest{OrderId: "ext-2"})
		if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_EXPIRED {
			return fmt.Errorf("ext-2: %v %v", o.GetStatus(), err)
		}
		return nil
	})
	_, err = s.orders.ExtendOrder(ctx, &pb.ExtendOrderRequest{OrderId: "ext-2", ReservationTtl: durationpb.New(time.Hour)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "EXPIRED") {
		t.Errorf("extension of an expired order: %v, want FailedPrecondition", err)
	}
	// Over REST: the same rules.
	code, body := restPost(t, s, "/v1/orders/ext-2:extend", `{"reservationTtl":"3600s"}`)
	if code != 400 || !strings.Contains(body, "EXPIRED") {
		t.Errorf("REST extension of an expired order: %d %s", code, body)
	}
	code, body = restPost(t, s, "/v1/orders/ext-1:extend", `{"reservationTtl":"10800s"}`)
	if code != 200 || !strings.Contains(body, "ORDER_STATUS_RESERVED") {
		t.Errorf("REST extension: %d %s", code, body)
	}
}

// startLifecycleStack starts an order stack that holds reservations for an
// hour unless told otherwise and waits a minute for decisions, and a view of
// the stock table to check the SKU side with.
func startLifecycleStack(t *testing.T) (*orderStack, *views.Stock) {
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, 200*time.Millisecond)
	stock, err := views.NewStock(s.k.Brokers, append(s.k.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, stock.Run)
	return s, stock
}

// restPost posts body to the gateway's REST path and returns the status and
// body.
func restPost(t *testing.T, s *orderStack, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+s.http+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestShipToRegionOrder: an order's ship-to region reaches the SKU
// processor's decision on the embedded broker. The only stock of the SKU
// sits at WH-1, which does not ship to US-CA: an order for US-CA is
// rejected as insufficient and holds nothing, while the same order without
// a region (another id), or for US-NY over REST, is reserved.
func TestShipToRegionOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startOrderStack(t, gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}, time.Second)
	published := availabilityView(t, s.k)
	now := time.Now().Add(-time.Minute)
	const sku = "SKU-REGION"
	// The policy's safety stock of 1 shows on the published (region-less)
	// availability once the SKU processor has the policy, and so its
	// excluded regions: 5 on hand, 4 available.
	emitMessages(t, s.k, string(schema.Policies), &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, SafetyStock: 1, ExcludedRegions: []string{"US-CA"},
		AsOf: timestamppb.New(now.Add(-time.Hour))}}})
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 5, AsOf: now, Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		a, err := published.Get(sku)
		if err != nil || a == nil {
			return fmt.Errorf("nothing published for %s (%v)", sku, err)
		}
		for _, c := range a.GetChannels() {
			if c.GetChannel() == "web" && c.GetAvailable() == 4 {
				return nil
			}
		}
		return fmt.Errorf("published %v; want web available 4", a)
	})

	ca, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "region-ca", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: sku, Quantity: 2}}, ShipToRegion: "US-CA"})
	if err != nil {
		t.Fatal(err)
	}
	if ca.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED || ca.GetShipToRegion() != "US-CA" ||
		ca.GetLines()[0].GetRejectReason() != pb.RejectReason_REJECT_REASON_INSUFFICIENT || ca.GetLines()[0].GetMessage() == "" {
		t.Fatalf("order for US-CA: %v; want REJECTED, line INSUFFICIENT with a message, ship_to_region US-CA", ca)
	}
	plain, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "region-none", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: sku, Quantity: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED || plain.GetShipToRegion() != "" {
		t.Fatalf("order without a region: %v; want RESERVED", plain)
	}
	code, body := restPost(t, s, "/v1/orders",
		`{"orderId":"region-ny","channel":"web","lines":[{"sku":"`+sku+`","quantity":1}],"shipToRegion":"US-NY"}`)
	if code != http.StatusOK || !strings.Contains(body, "ORDER_STATUS_RESERVED") || !strings.Contains(body, `"shipToRegion":"US-NY"`) {
		t.Errorf("REST order for US-NY: %d %s; want 200, reserved, shipToRegion US-NY", code, body)
	}
	code, body = restPost(t, s, "/v1/orders",
		`{"orderId":"region-bad","channel":"web","lines":[{"sku":"`+sku+`","quantity":1}],"shipToRegion":"california"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "ship_to_region") {
		t.Errorf("REST order for a malformed region: %d %s; want 400 naming ship_to_region", code, body)
	}
	got, err := s.orders.GetOrder(context.Background(), &pb.GetOrderRequest{OrderId: "region-ca"})
	if err != nil || got.GetShipToRegion() != "US-CA" || got.GetStatus() != pb.OrderStatus_ORDER_STATUS_REJECTED {
		t.Errorf("GetOrder(region-ca) = %v, %v", got, err)
	}
	// Reusing an id with another region is a different order.
	if _, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "region-none", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: sku, Quantity: 2}}, ShipToRegion: "US-NY"}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("region-none again for US-NY: %v, want AlreadyExists", err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		got, held, err := s.webAvailable(sku)
		if err != nil || got != 1 || held != 3 {
			return fmt.Errorf("available %d reserved %d (%v); want 1 and 3", got, held, err)
		}
		return nil
	})
}
