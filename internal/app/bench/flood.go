package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// orders-flood is the orders scenario during a replay flood (issue 12,
// "checkout keeps working during a flood"): the same stack, SKUs, clients
// and orders, but the orders start once --messages supply events for
// --keys other SKUs (the supply messages of the throughput scenarios) have
// been published behind the order SKUs' stock, in the same partitions, so
// every demand message arrives behind a supply backlog. Every order SKU
// holds 1,000,000 units throughout: an order that is not RESERVED is
// rejected while its stock is there. Orders rejected TIMEOUT are counted,
// not failed; any other outcome fails the run.
func init() {
	scenarios["orders-flood"] = scenario{"PlaceOrder as in orders, while the stock group works through a supply backlog of --messages events (orders/s)", runOrdersFlood}
}

func runOrdersFlood(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return Result{}, err
	}
	st, err := startOrderStack(ctx, o, k, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.close()
	keys, orders, roleErr := st.keys, st.orders, st.roleErr
	// The flood: published in full before the first order, so the stock
	// group is as far behind as it gets when the demand starts.
	fkeys, fvals, err := messages(o)
	if err != nil {
		return Result{}, err
	}
	pstart := time.Now()
	if err := produce(k, string(schema.Supply), fkeys, fvals); err != nil {
		return Result{}, err
	}
	published := time.Since(pstart)
	lag, err := newLagProbe(k)
	if err != nil {
		return Result{}, err
	}
	defer lag.close()
	lagStart, err := lag.supply()
	if err != nil {
		return Result{}, err
	}
	debugf(o.Debug, "flood of %d published in %s; stock group supply lag %d\n", len(fkeys), published, lagStart)
	var timeouts, ok atomic.Int64
	var mu sync.Mutex
	var undecided []string
	n, c := requests(o), clients(o)
	elapsed, p50, p99, err := drive(c, n, func(i int) error {
		req := benchOrder(i, keys)
		out, err := orders.PlaceOrder(ctx, req)
		if status.Code(err) == codes.DeadlineExceeded {
			// The gateway gave up waiting: decided later (below).
			mu.Lock()
			undecided = append(undecided, req.OrderId)
			mu.Unlock()
			return nil
		}
		switch {
		case err != nil:
			return err
		case out.GetStatus() == pb.OrderStatus_ORDER_STATUS_RESERVED:
			ok.Add(1)
			return nil
		case timedOut(out):
			timeouts.Add(1)
			return nil
		}
		return fmt.Errorf("order %s ended %v: %s", req.OrderId, out.GetStatus(), out.GetReason())
	})
	lagEnd, lerr := lag.supply()
	err = errors.Join(err, lerr)
	// The orders PlaceOrder gave up on: their final outcome, read once the
	// saga has decided them (at its decision timeout at the latest).
	late := 0
	for _, id := range undecided {
		out, gerr := backoff.Retry(ctx, func() (*pb.Order, error) {
			out, err := orders.GetOrder(ctx, &pb.GetOrderRequest{OrderId: id})
			if err == nil && out.GetStatus() == pb.OrderStatus_ORDER_STATUS_PENDING {
				err = errors.New("pending")
			}
			return out, err
		}, backoff.WithBackOff(backoff.NewConstantBackOff(100*time.Millisecond)), backoff.WithMaxElapsedTime(2*time.Minute))
		switch {
		case gerr != nil:
			err = errors.Join(err, fmt.Errorf("order %s: %w", id, gerr))
		case out.GetStatus() == pb.OrderStatus_ORDER_STATUS_RESERVED:
			ok.Add(1)
			late++
		case timedOut(out):
			timeouts.Add(1)
		default:
			err = errors.Join(err, fmt.Errorf("order %s ended %v: %s", id, out.GetStatus(), out.GetReason()))
		}
	}
	select {
	case rerr := <-roleErr:
		err = errors.Join(err, rerr)
	default:
	}
	return Result{Seconds: elapsed.Seconds(), Messages: n, Clients: c, P50Ms: p50, P99Ms: p99,
		Detail: fmt.Sprintf("%d of %d orders RESERVED (%d of them after PlaceOrder gave up waiting), %d rejected TIMEOUT with the stock there, %d unanswered by PlaceOrder; flood of %d supply events published in %.1f s; stock group supply lag %d when the orders started, %d when the last was answered",
			ok.Load(), n, late, timeouts.Load(), len(undecided), len(fkeys), published.Seconds(), lagStart, lagEnd)}, err
}

// timedOut reports whether an order was rejected because a line was not
// decided in time.
func timedOut(o *pb.Order) bool {
	for _, l := range o.GetLines() {
		if l.GetRejectReason() == pb.RejectReason_REJECT_REASON_TIMEOUT {
			return true
		}
	}
	return false
}

// lagProbe reads the stock group's lag on the supply topic: heads minus
// committed offsets (committed every second, so it trails by up to that).
type lagProbe struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	parts  []int32
}

func newLagProbe(k kafkacfg.Options) (*lagProbe, error) {
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	parts, err := client.Partitions(string(schema.Supply))
	if err != nil {
		admin.Close()
		return nil, err
	}
	return &lagProbe{client: client, admin: admin, parts: parts}, nil
}

func (l *lagProbe) close() { l.admin.Close() }

func (l *lagProbe) supply() (int64, error) {
	topic := string(schema.Supply)
	res, err := l.admin.ListConsumerGroupOffsets(string(schema.StockGroup), map[string][]int32{topic: l.parts})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range l.parts {
		head, err := l.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		at := int64(0)
		if b := res.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			at = b.Offset
		}
		lag += head - at
	}
	return lag, nil
}

func debugf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// printFlood sets the flood's PlaceOrder latency beside the idle one of
// the same run.
func printFlood(w io.Writer, by map[string]Result) {
	f, ok := by["orders-flood"]
	if !ok {
		return
	}
	fmt.Fprintf(w, "orders-flood: %s\n", f.Detail)
	if i, ok := by["orders"]; ok && i.P50Ms > 0 {
		fmt.Fprintf(w, "PlaceOrder during the flood vs idle: p50 %.1f ms vs %.1f ms (%.1fx), p99 %.1f ms vs %.1f ms (%.1fx), throughput %.2fx\n",
			f.P50Ms, i.P50Ms, f.P50Ms/i.P50Ms, f.P99Ms, i.P99Ms, f.P99Ms/i.P99Ms, f.PerSecond/i.PerSecond)
	}
}
