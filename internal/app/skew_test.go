package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestFarFutureTimesAreDeadLettered: Kafka accepts any event time. A level
// as of 2199 pinned its location for good; a StockTick at 2199 expired every
// hold on the SKU while its order still said RESERVED, so the SKU could be
// oversold. With --max-event-skew (its default, 5 minutes, here), a level, a StockTick and
// an OrderTick more than that ahead of their message's timestamp are each
// dead-lettered with the reason, and change nothing: the order stays
// reserved with its units held, and a later level at the present wins.
func TestFarFutureTimesAreDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	s := &orderStack{t: t, k: b.Kafka, procDir: t.TempDir(), serveDir: t.TempDir(),
		cfg:  inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour},
		ocfg: gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}}
	testkit.Go(t, func(ctx context.Context) error {
		// MaxEventSkew unset: the default (inventory.DefaultMaxEventSkew,
		// 5 minutes) applies, not "no limit".
		return app.Process(ctx, app.ProcessOptions{Kafka: s.k, Base: s.cfg, DataDir: s.procDir, ReconcileEvery: 200 * time.Millisecond})
	})
	srv, err := app.NewServe(app.ServeOptions{Kafka: s.k, Base: s.cfg, DataDir: s.serveDir, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Services: []app.ServiceFactory{app.Reservations(s.ocfg)}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	conn := dialGRPC(t, srv.GRPCAddr())
	s.avail, s.orders = pb.NewAvailabilityServiceClient(conn), pb.NewReservationServiceClient(conn)
	sagaTable := ordersView(t, s.k)
	dead := collectDeadLetters(t, s.k)

	const sku = "SKU-FUTURE"
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 4, AsOf: time.Now().Add(-time.Minute), Sequence: 1},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		if !srv.Ready() {
			return fmt.Errorf("gateway not ready")
		}
		_, _, err := s.webAvailable(sku)
		return err
	})
	o, err := s.orders.PlaceOrder(context.Background(), &pb.PlaceOrderRequest{OrderId: "future-1", Channel: "web",
		Lines: []*pb.OrderLine{{Sku: sku, Quantity: 3}}, ReservationTtl: durationpb.New(time.Hour)})
	if err != nil || o.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
		t.Fatalf("place: %v %v", o.GetStatus(), err)
	}

	far := time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1000, AsOf: far, Sequence: 2},
	})
	produceTo(t, s.k, string(schema.StockTicks), sku, marshalProto(t, &pb.StockTick{Sku: sku, At: timestamppb.New(far)}))
	produceTo(t, s.k, string(schema.Orders), "future-1", marshalProto(t, &pb.OrderCommand{Command: &pb.OrderCommand_Tick{
		Tick: &pb.OrderTick{OrderId: "future-1", At: timestamppb.New(far)}}}))

	want := map[string]string{string(schema.Supply): sku, string(schema.StockTicks): sku, string(schema.Orders): "future-1"}
	testkit.Eventually(t, 60*time.Second, func() error {
		for topic, key := range want {
			dl, ok := dead.find(topic, key)
			if !ok {
				return fmt.Errorf("no dead letter from %s for %q yet", topic, key)
			}
			if !strings.Contains(dl.GetReason(), "after the message time") || !strings.Contains(dl.GetReason(), "2199-01-01") {
				return fmt.Errorf("dead letter from %s: reason %q does not say the time is ahead of the message", topic, dl.GetReason())
			}
		}
		return nil
	})
	// Each topic's later messages are handled after the dead-lettered one:
	// a level at the present wins over nothing from 2199.
	emitEvents(t, s.k, string(schema.Supply), []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 5, AsOf: time.Now(), Sequence: 3},
	})
	testkit.Eventually(t, 30*time.Second, func() error {
		n, held, err := s.webAvailable(sku)
		if err != nil || n != 2 || held != 3 {
			return fmt.Errorf("available %d reserved %d (%v); want 2 and 3: the hold kept, the 2199 level ignored", n, held, err)
		}
		return nil
	})
	got, found, err := sagaTable.Get("future-1")
	if err != nil || !found || got.Status != inventory.OrderReserved {
		t.Fatalf("saga holds %+v (found %v, %v); want the order still reserved", got, found, err)
	}
}

func marshalProto(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadLetters collects the dead-letter topic's messages as they arrive.
type deadLetters struct {
	mu  sync.Mutex
	all []*pb.DeadLetter
}

func (d *deadLetters) find(topic, key string) (*pb.DeadLetter, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dl := range d.all {
		if dl.GetTopic() == topic && string(dl.GetKey()) == key {
			return dl, true
		}
	}
	return nil, false
}

func collectDeadLetters(t *testing.T, k kafkaOpts) *deadLetters {
	t.Helper()
	d := &deadLetters{}
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var parts []int32
	testkit.Eventually(t, 30*time.Second, func() error {
		parts, err = c.Partitions(string(schema.DeadLetter))
		if err == nil && len(parts) == 0 {
			err = fmt.Errorf("no partitions yet")
		}
		return err
	})
	for _, p := range parts {
		pc, err := c.ConsumePartition(string(schema.DeadLetter), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			for m := range pc.Messages() {
				var dl pb.DeadLetter
				if proto.Unmarshal(m.Value, &dl) == nil {
					d.mu.Lock()
					d.all = append(d.all, &dl)
					d.mu.Unlock()
				}
			}
		}()
	}
	return d
}
