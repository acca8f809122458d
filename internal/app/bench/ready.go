package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/broker"
	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The ready scenarios measure how long a new gateway (app.NewServe on an
// empty data directory) takes to become ready with --keys SKUs: every SKU
// has a state in the stock table's changelog and an answer on the
// compacted availability topic, written there directly (a fast producer,
// not the processor). Beside it, a raw consume of the same topics with the
// client settings the views use. Run them with
// `skuflow bench --scenarios changelog-consume,serve-ready --keys 1000000 --messages 1000000`.
func init() {
	scenarios["changelog-consume"] = scenario{"baseline: raw sarama consume of the stock and availability changelogs, views' consumer settings (records/s)", runChangelogConsume}
	scenarios["serve-ready"] = scenario{"a new serve on an empty data directory until Ready: every view recovered (records/s)", runServeReady}
}

// readyTopics are the changelogs a serve's views recover that the ready
// scenarios fill, one record per SKU each. The policies table stays empty
// (no location policies).
var readyTopics = []string{string(schema.StockTable), string(schema.Availability)}

// readyRecord returns SKU i's stock state and availability answer, encoded:
// stock levels at two of four locations, evaluated with the default base.
func readyRecord(i int, base inventory.Base) (key string, state, answer []byte, err error) {
	sku := fmt.Sprintf("SKU-%07d", i)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	s := inventory.State{SKU: sku}
	for j := range 2 {
		ev := inventory.StockLevel{SKU: sku, Location: fmt.Sprintf("WH-%d", (i+j)%4), OnHand: int64((i*7+j)%1000 + 1), AsOf: at, Sequence: uint64(i + 1)}
		if s, _, err = inventory.Apply(s, ev, at); err != nil {
			return "", nil, nil, err
		}
	}
	if state, err = schema.StateCodec.Encode(s); err != nil {
		return "", nil, nil, err
	}
	pol, err := schema.Gather(s, func(string) (*pb.PolicyEvent, error) { return nil, nil }, base)
	if err != nil {
		return "", nil, nil, err
	}
	answer, err = schema.AvailabilityCodec.Encode(codecs.SnapshotToProto(inventory.Evaluate(s, pol, at)))
	return sku, state, answer, err
}

// fillChangelogs creates skuflow's topics and writes n SKUs' records to
// readyTopics, placed by FNV-1a as goka places them, and returns the number
// of records written.
func fillChangelogs(k kafkacfg.Options, n int) (int, error) {
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return 0, err
	}
	c := k.Sarama()
	c.Producer.Partitioner = sarama.NewCustomHashPartitioner(fnv.New32a)
	c.Producer.Return.Successes = false
	c.Producer.Return.Errors = true
	c.Producer.Flush.Frequency = 10 * time.Millisecond
	c.Producer.Flush.Bytes = 512 << 10
	c.ChannelBufferSize = 8192
	p, err := sarama.NewAsyncProducer(k.Brokers, c)
	if err != nil {
		return 0, err
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for e := range p.Errors() {
			if failed.Add(1) == 1 {
				firstErr.Store(e.Err)
			}
		}
	}()
	base := inventory.DefaultBase()
	var genErr error
	for i := range n {
		key, state, answer, err := readyRecord(i, base)
		if err != nil {
			genErr = err
			break
		}
		p.Input() <- &sarama.ProducerMessage{Topic: readyTopics[0], Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(state)}
		p.Input() <- &sarama.ProducerMessage{Topic: readyTopics[1], Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(answer)}
	}
	closeErr := p.Close() // flushes what is buffered
	<-errsDone
	if genErr != nil {
		return 0, genErr
	}
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d changelog records failed to publish, first: %v", f, firstErr.Load())
	}
	if closeErr != nil && !errors.As(closeErr, new(sarama.ProducerErrors)) {
		return 0, closeErr
	}
	return n * len(readyTopics), nil
}

// readyLoad starts a broker and fills the changelogs with o.Keys SKUs. The
// broker's log cleaner runs hourly instead of every 10 s: the records have
// distinct keys, so it would find nothing to remove, and the embedded
// broker's pass over two million records costs seconds of the CPU the
// measured client shares with it here (a real broker runs elsewhere).
func readyLoad(o Options, dir string) (close func(), k kafkacfg.Options, records int, err error) {
	b, err := broker.Start(broker.Options{DataDir: filepath.Join(dir, "broker"), CompactionInterval: time.Hour})
	if err != nil {
		return nil, k, 0, err
	}
	k = kafkacfg.Options{Brokers: b.Addrs(), Partitions: o.Partitions, Replication: 1, ClientID: "skuflow-bench"}
	start := time.Now()
	if records, err = fillChangelogs(k, o.Keys); err != nil {
		b.Close()
		return nil, k, 0, err
	}
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "%d changelog records written in %s\n", records, time.Since(start).Round(time.Millisecond))
	}
	return b.Close, k, records, nil
}

// profileMeasured, with --cpuprofile FILE, ends the scenario's profile
// (FILE.<scenario>: filling the changelogs) and profiles what follows into
// FILE.<scenario>.measured until the returned stop.
func profileMeasured(o Options, name string) (stop func(), err error) {
	if o.CPUProfile == "" {
		return func() {}, nil
	}
	pprof.StopCPUProfile()
	f, err := os.Create(o.CPUProfile + "." + name + ".measured")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// runServeReady times a new serve, from NewServe on an empty data directory
// until Ready.
func runServeReady(ctx context.Context, o Options, dir string) (Result, error) {
	closeBroker, k, records, err := readyLoad(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer closeBroker()
	stopProfile, err := profileMeasured(o, "serve-ready")
	if err != nil {
		return Result{}, err
	}
	defer stopProfile()
	start := time.Now()
	s, err := app.NewServe(app.ServeOptions{Kafka: k, Base: inventory.DefaultBase(), DataDir: filepath.Join(dir, "serve"),
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"})
	if err != nil {
		return Result{}, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()
	defer func() {
		cancel()
		<-done
	}()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	wctx, cancelWait := context.WithTimeout(ctx, 10*time.Minute)
	defer cancelWait()
	for !s.Ready() {
		select {
		case err := <-done:
			done <- err // for the deferred wait
			return Result{}, fmt.Errorf("serve stopped before it was ready: %v", err)
		case <-wctx.Done():
			return Result{}, fmt.Errorf("serve not ready: %w", wctx.Err())
		case <-t.C:
		}
	}
	secs := time.Since(start).Seconds()
	return Result{Messages: records, Seconds: secs, StateKeys: o.Keys,
		Detail: fmt.Sprintf("ready in %.2f s with %d SKUs (%d changelog records)", secs, o.Keys, records)}, nil
}

// runChangelogConsume times a raw consume of readyTopics from the oldest
// offset to the high-water mark, with the consumer settings the views use.
func runChangelogConsume(ctx context.Context, o Options, dir string) (Result, error) {
	closeBroker, k, records, err := readyLoad(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer closeBroker()
	stopProfile, err := profileMeasured(o, "changelog-consume")
	if err != nil {
		return Result{}, err
	}
	defer stopProfile()
	n, elapsed, err := consumeToHighWater(ctx, k, readyTopics)
	if err != nil {
		return Result{}, err
	}
	secs := elapsed.Seconds()
	if n != int64(records) {
		return Result{}, fmt.Errorf("consumed %d records, want %d", n, records)
	}
	return Result{Messages: records, Seconds: secs, StateKeys: o.Keys,
		Detail: fmt.Sprintf("read in %.2f s: %d SKUs (%d changelog records)", secs, o.Keys, records)}, nil
}

// consumeToHighWater reads every partition of topics from the oldest offset
// up to its high-water mark at the start, as a view's recovery does (one
// consumer per topic, as each view has its own), and returns the count and
// the time from the consumers' creation until the last record arrived (not
// counting their closing: sarama's Close waits out a fetch per partition).
func consumeToHighWater(ctx context.Context, k kafkacfg.Options, topics []string) (int64, time.Duration, error) {
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	start := time.Now()
	var total atomic.Int64
	errc := make(chan error, 64)
	pending := 0
	for _, topic := range topics {
		c, err := sarama.NewConsumer(k.Brokers, k.ViewSarama())
		if err != nil {
			return 0, 0, err
		}
		defer c.Close()
		parts, err := c.Partitions(topic)
		if err != nil {
			return 0, 0, err
		}
		for _, p := range parts {
			hi, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return 0, 0, err
			}
			if hi == 0 {
				continue
			}
			pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return 0, 0, err
			}
			defer pc.Close()
			pending++
			go func() {
				for {
					select {
					case m := <-pc.Messages():
						total.Add(1)
						if m.Offset >= hi-1 {
							errc <- nil
							return
						}
					case err := <-pc.Errors():
						errc <- err
						return
					case <-ctx.Done():
						errc <- ctx.Err()
						return
					}
				}
			}()
		}
	}
	for range pending {
		if err := <-errc; err != nil {
			return total.Load(), 0, err
		}
	}
	return total.Load(), time.Since(start), nil
}

// printReady writes serve-ready's time and its rate against
// changelog-consume's of the same run.
func printReady(w io.Writer, by map[string]Result) {
	r, ok := by["serve-ready"]
	if !ok {
		return
	}
	fmt.Fprintf(w, "serve-ready: a new serve ready in %.2f s with %d SKUs (%d changelog records, %.0f records/s)", r.Seconds, r.StateKeys, r.Messages, r.PerSecond)
	if b, ok := by["changelog-consume"]; ok && b.PerSecond > 0 {
		fmt.Fprintf(w, "; raw consume of the same changelogs %.2f s (%.0f records/s): %.2f of the raw rate", b.Seconds, b.PerSecond, r.PerSecond/b.PerSecond)
	}
	fmt.Fprintln(w)
}
