package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/stock"
	"github.com/skuflow/skuflow/schema"
)

// The sku-flooded scenario measures what a hostile client can do to one
// SKU (issue 13): events per second on a SKU after 10,000 rejected orders
// and 20,000 adjustments with no newer level, beside a fresh SKU in the
// same run, on the stock processor. Both SKUs then get the same events, in
// alternating halves: first redeliveries that change neither (the cost of
// the state alone), then new adjustments on supply and new rejected
// requests on demand. Its msgs/s is the flooded SKU's rate on the new
// events; the line it prints gives the fresh SKU's, the ratios (goal: at
// least 0.8) and each SKU's state as last written to the changelog.
func init() {
	// Not in the default set: `make bench` runs it on a line of its own.
	scenarios["sku-flooded"] = scenario{"events/s on a SKU after 10,000 rejected orders and 20,000 adjustments (fresh SKU beside it: see its line)", runFlooded}
}

const (
	floodRejected    = 10_000
	floodAdjustments = 20_000
)

// floodedEvents is the events each SKU gets in the measured phase.
func floodedEvents(o Options) int { return max(2_000, min(o.Messages/10, 20_000)) }

// floodMix returns n events for sku: adjustments at base+first+i ms and
// requests too large for its one unit, alternating.
func floodMix(sku string, first, n int, base time.Time) (supplyKeys []string, supply [][]byte, demandKeys []string, demand [][]byte, err error) {
	for i := range n {
		j := first + i
		if i%2 == 0 {
			ev := inventory.StockAdjustment{EventID: fmt.Sprintf("adj-%d", j), SKU: sku, Location: "WH-1", Delta: int64(1 - 2*(j/2%2)),
				OccurredAt: base.Add(time.Duration(j) * time.Millisecond)}
			v, err := codecs.EncodeSupplyEvent(ev)
			if err != nil {
				return nil, nil, nil, nil, err
			}
			supplyKeys, supply = append(supplyKeys, sku), append(supply, v)
			continue
		}
		order := fmt.Sprintf("%s-order-%d", sku, j)
		ev := inventory.ReservationRequested{ReservationID: inventory.ReservationIDFor(order, 0), OrderID: order, SKU: sku,
			Channel: "web", Quantity: 1_000, TTL: time.Hour}
		env, err := codecs.DemandEventToProto(ev)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		v, err := codecs.MarshalDeterministic(env)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		demandKeys, demand = append(demandKeys, sku), append(demand, v)
	}
	return supplyKeys, supply, demandKeys, demand, nil
}

func runFlooded(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return Result{}, err
	}
	const fresh, flooded = "SKU-FRESH", "SKU-FLOODED"
	var mu sync.Mutex
	handled := map[string]*atomic.Int64{fresh: {}, flooded: {}}
	popts := append(k.ProcessorOptions(), goka.WithLogger(quiet{}),
		goka.WithStorageBuilder(storage.DefaultBuilder(dir+"/goka")),
		goka.WithContextWrapper(func(c goka.Context) goka.Context {
			mu.Lock()
			n := handled[c.Key()]
			mu.Unlock()
			if n != nil {
				n.Add(1)
			}
			return c
		}))
	cfg := inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: 24 * time.Hour}
	p, err := stock.New(k.Brokers, cfg, nil, nil, inventory.DefaultMaxEventSkew, popts...)
	if err != nil {
		return Result{}, err
	}
	sizes, err := watchStateSizes(k)
	if err != nil {
		return Result{}, err
	}
	defer sizes.close()
	pctx, cancel := context.WithCancel(ctx)
	stopped := &stopSignal{done: make(chan struct{})}
	go func() {
		stopped.err = p.Run(pctx)
		close(stopped.done)
	}()
	defer func() {
		cancel()
		<-stopped.done
	}()
	if err := p.WaitForReadyContext(ctx); err != nil {
		return Result{}, err
	}
	dctx, cancelWait := context.WithTimeout(ctx, 10*time.Minute)
	defer cancelWait()
	// send produces events for sku and waits until the processor was handed
	// all of them (and so, one partition being sequential, handled all but
	// the last).
	send := func(sku string, sk []string, sv [][]byte, dk []string, dv [][]byte) (time.Duration, error) {
		want := handled[sku].Load() + int64(len(sk)+len(dk))
		start := time.Now()
		errs := make(chan error, 2)
		go func() { errs <- produce(k, string(schema.Supply), sk, sv) }()
		go func() { errs <- produce(k, string(schema.Demand), dk, dv) }()
		for range 2 {
			if err := <-errs; err != nil {
				return 0, err
			}
		}
		if err := waitCount(dctx, handled[sku], want, stopped); err != nil {
			return 0, fmt.Errorf("%s: %w", sku, err)
		}
		return time.Since(start), nil
	}
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, sku := range []string{fresh, flooded} {
		v, err := codecs.EncodeSupplyEvent(inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1, AsOf: base, Sequence: 1})
		if err != nil {
			return Result{}, err
		}
		if _, err := send(sku, []string{sku}, [][]byte{v}, nil, nil); err != nil {
			return Result{}, err
		}
	}
	// The flood: rejected orders, then adjustments with no newer level.
	_, _, dk, dv, err := floodMix(flooded, 1, 2*floodRejected, base)
	if err != nil {
		return Result{}, err
	}
	flood := time.Now()
	if _, err := send(flooded, nil, nil, dk, dv); err != nil {
		return Result{}, err
	}
	var sk []string
	var sv [][]byte
	for i := 0; i < floodAdjustments; i += 1_000 {
		k, v, _, _, err := floodMix(flooded, 2*floodRejected+2*i, 2_000, base)
		if err != nil {
			return Result{}, err
		}
		sk, sv = append(sk, k...), append(sv, v...)
	}
	if _, err := send(flooded, sk, sv, nil, nil); err != nil {
		return Result{}, err
	}
	floodTook := time.Since(flood)
	afterFlood := sizes.get(flooded)
	next := 2*floodRejected + 2*floodAdjustments
	// The measured phases, each in alternating halves per SKU. First
	// events that change neither SKU (redeliveries of its level and of a
	// request it rejected; each still rewrites the state to the changelog
	// and answers the request again): the fresh SKU stays at its few
	// hundred bytes, so this is the flooded state's whole cost. Then new
	// adjustments and new rejected requests: both SKUs at their bound.
	n := floodedEvents(o)
	dup := func(sku string) ([]string, [][]byte, []string, [][]byte, error) {
		sk, sv, dk, dv, err := floodMix(sku, next, 2, base)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		lv, err := codecs.EncodeSupplyEvent(inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1, AsOf: base, Sequence: 1})
		if err != nil {
			return nil, nil, nil, nil, err
		}
		sk, sv = sk[:0], sv[:0]
		for range n / 4 {
			sk, sv, dk, dv = append(sk, sku), append(sv, lv), append(dk, dk[0]), append(dv, dv[0])
		}
		return sk, sv, dk[1:], dv[1:], nil
	}
	// The request both SKUs rejected last (remembered: within the bound).
	for _, sku := range []string{fresh, flooded} {
		_, _, dk, dv, err := floodMix(sku, next, 2, base)
		if err != nil {
			return Result{}, err
		}
		if _, err := send(sku, nil, nil, dk, dv); err != nil {
			return Result{}, err
		}
	}
	freshBytes, floodedBytes := sizes.get(fresh), sizes.get(flooded)
	phase := func(mk func(sku string, half int) ([]string, [][]byte, []string, [][]byte, error)) (float64, float64, error) {
		took := map[string]time.Duration{}
		for half := range 2 {
			for _, sku := range []string{fresh, flooded} {
				sk, sv, dk, dv, err := mk(sku, half)
				if err != nil {
					return 0, 0, err
				}
				d, err := send(sku, sk, sv, dk, dv)
				if err != nil {
					return 0, 0, err
				}
				took[sku] += d
			}
		}
		return float64(n) / took[fresh].Seconds(), float64(n) / took[flooded].Seconds(), nil
	}
	freshNoop, floodedNoop, err := phase(func(sku string, _ int) ([]string, [][]byte, []string, [][]byte, error) { return dup(sku) })
	if err != nil {
		return Result{}, err
	}
	freshNew, floodedNew, err := phase(func(sku string, half int) ([]string, [][]byte, []string, [][]byte, error) {
		return floodMix(sku, next+2+half*n, n/2, base)
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Messages: n, Seconds: float64(n) / floodedNew,
		Detail: fmt.Sprintf("new adjustments and rejected requests: %.0f events/s on the flooded SKU vs %.0f on a fresh one, ratio %.2f (goal >= 0.80), "+
			"states then %d and %d bytes; redeliveries that change nothing: %.0f vs %.0f events/s, ratio %.2f, with states of %d and %d bytes; "+
			"the flood (%d rejected orders, %d adjustments) took %s and left %d bytes",
			floodedNew, freshNew, floodedNew/freshNew, sizes.get(flooded), sizes.get(fresh),
			floodedNoop, freshNoop, floodedNoop/freshNoop, floodedBytes, freshBytes,
			floodRejected, floodAdjustments, floodTook.Round(time.Millisecond), afterFlood)}, nil
}

// stateSizes follows the stock table's changelog: the size of each key's
// latest value.
type stateSizes struct {
	mu    sync.Mutex
	last  map[string]int
	close func()
}

func (s *stateSizes) get(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[key]
}

func watchStateSizes(k kafkacfg.Options) (*stateSizes, error) {
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		return nil, err
	}
	s := &stateSizes{last: map[string]int{}, close: func() { c.Close() }}
	topic := string(goka.GroupTable(schema.StockGroup))
	for p := range int32(k.Partitions) {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			c.Close()
			return nil, err
		}
		go func() {
			for m := range pc.Messages() {
				s.mu.Lock()
				s.last[string(m.Key)] = len(m.Value)
				s.mu.Unlock()
			}
		}()
	}
	return s, nil
}

// printFlooded prints the sku-flooded scenario's line.
func printFlooded(w io.Writer, by map[string]Result) {
	if f, ok := by["sku-flooded"]; ok {
		fmt.Fprintf(w, "sku-flooded: %s\n", f.Detail)
	}
}
