package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The order scenarios measure PlaceOrder end to end — gateway, orders
// topic, saga, demand topic, SKU decision, outcome, saga, table, answer —
// with --clients concurrent gRPC clients placing --messages/100 orders of
// one to three lines, beside the same clients doing one raw broker round
// trip each (produce a message, wait until a consumer sees it).
func init() {
	scenarios["orders-roundtrip"] = scenario{"baseline: one produce -> consume round trip per request (sarama)", runRoundTrip}
	scenarios["orders"] = scenario{"PlaceOrder over gRPC through the saga and the SKU processors (orders/s)", runOrders}
	order = append(order, "orders-roundtrip", "orders")
}

func requests(o Options) int { return max(50, o.Messages/100) }

func clients(o Options) int {
	if o.Clients > 0 {
		return o.Clients
	}
	return 32
}

// drive runs n requests over c clients and returns the elapsed time and
// latency percentiles.
func drive(c, n int, do func(i int) error) (time.Duration, float64, float64, error) {
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(n-1))]) / float64(time.Millisecond) }
	return elapsed, ms(0.50), ms(0.99), first
}

func runRoundTrip(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "bench-rt"}); err != nil {
		return Result{}, err
	}
	cfg := k.Sarama()
	// Send at once, as the gateway's order emitter does.
	cfg.Producer.Flush.Frequency, cfg.Producer.Flush.Bytes, cfg.Producer.Flush.Messages = 0, 0, 0
	prod, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		return Result{}, err
	}
	defer prod.Close()
	cons, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		return Result{}, err
	}
	defer cons.Close()
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	for p := range int32(o.Partitions) {
		pc, err := cons.ConsumePartition("bench-rt", p, sarama.OffsetNewest)
		if err != nil {
			return Result{}, err
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				mu.Lock()
				if ch, ok := waiting[string(m.Key)]; ok {
					close(ch)
					delete(waiting, string(m.Key))
				}
				mu.Unlock()
			}
		}()
	}
	n, c := requests(o), clients(o)
	elapsed, p50, p99, err := drive(c, n, func(i int) error {
		key := fmt.Sprintf("rt-%d", i)
		ch := make(chan struct{})
		mu.Lock()
		waiting[key] = ch
		mu.Unlock()
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "bench-rt", Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("x")}); err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return Result{Seconds: elapsed.Seconds(), Messages: n, Clients: c, P50Ms: p50, P99Ms: p99}, err
}

func runOrders(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	st, err := startOrderStack(ctx, o, k, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.close()
	keys, orders, roleErr := st.keys, st.orders, st.roleErr
	n, c := requests(o), clients(o)
	elapsed, p50, p99, err := drive(c, n, func(i int) error {
		req := benchOrder(i, keys)
		out, err := orders.PlaceOrder(ctx, req)
		if err == nil && out.GetStatus() != pb.OrderStatus_ORDER_STATUS_RESERVED {
			err = fmt.Errorf("order %s ended %v", req.OrderId, out.GetStatus())
		}
		return err
	})
	select {
	case rerr := <-roleErr:
		err = errors.Join(err, rerr)
	default:
	}
	return Result{Seconds: elapsed.Seconds(), Messages: n, Clients: c, P50Ms: p50, P99Ms: p99}, err
}

// orderStack is the orders scenarios' stack on k: processors and a gateway
// with the reservation API, min(--keys, 1000) SKUs of 1,000,000 units each
// at WH-1, ready to answer. close stops it.
type orderStack struct {
	keys    []string
	orders  pb.ReservationServiceClient
	roleErr chan error
	close   func()
}

func startOrderStack(ctx context.Context, o Options, k kafkacfg.Options, dir string) (*orderStack, error) {
	cfg := inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: 24 * time.Hour}
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var conn *grpc.ClientConn
	closeAll := func() {
		if conn != nil {
			conn.Close()
		}
		stop()
		wg.Wait()
	}
	fail := func(err error) error { closeAll(); return err }
	// A role that stops before the run ends fails the scenario.
	roleErr := make(chan error, 2)
	role := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(pctx); err != nil && pctx.Err() == nil {
				roleErr <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	role("process", func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: cfg, DataDir: filepath.Join(dir, "proc")})
	})
	srv, err := app.NewServe(app.ServeOptions{Kafka: k, Base: cfg, DataDir: filepath.Join(dir, "serve"),
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Services: []app.ServiceFactory{app.Reservations(gateway.OrdersOptions{})}})
	if err != nil {
		return nil, fail(err)
	}
	role("serve", srv.Run)
	skus := min(o.Keys, 1000)
	var supply [][]byte
	var keys []string
	for i := range skus {
		ev := inventory.StockLevel{SKU: fmt.Sprintf("SKU-%05d", i), Location: "WH-1", OnHand: 1_000_000, AsOf: time.Now().Add(-time.Hour), Sequence: 1}
		v, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			return nil, fail(err)
		}
		keys, supply = append(keys, ev.SKU), append(supply, v)
	}
	if err := produce(k, string(schema.Supply), keys, supply); err != nil {
		return nil, fail(err)
	}
	conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fail(err)
	}
	avail := pb.NewAvailabilityServiceClient(conn)
	// Ready when the last SKU's answer is served and the views have
	// recovered: polled every 50ms for up to 2 minutes.
	if _, err := backoff.Retry(ctx, func() (struct{}, error) {
		select {
		case err := <-roleErr:
			return struct{}{}, backoff.Permanent(err)
		default:
		}
		if _, err := avail.GetAvailability(ctx, &pb.GetAvailabilityRequest{Sku: keys[len(keys)-1]}); err != nil {
			return struct{}{}, err
		}
		if !srv.Ready() {
			return struct{}{}, errors.New("views recovering")
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(50*time.Millisecond)), backoff.WithMaxElapsedTime(2*time.Minute)); err != nil {
		return nil, fail(fmt.Errorf("stack not ready: %w", err))
	}
	return &orderStack{keys: keys, orders: pb.NewReservationServiceClient(conn), roleErr: roleErr, close: closeAll}, nil
}

// benchOrder is the i-th order of the order scenarios: 1 to 3 lines of one
// unit each, on SKUs spread over keys.
func benchOrder(i int, keys []string) *pb.PlaceOrderRequest {
	req := &pb.PlaceOrderRequest{OrderId: fmt.Sprintf("bench-%d", i), Channel: "web"}
	for j := range 1 + i%3 {
		req.Lines = append(req.Lines, &pb.OrderLine{Sku: keys[(i*7+j*13)%len(keys)], Quantity: 1})
	}
	return req
}
