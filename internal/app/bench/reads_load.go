package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	vegeta "github.com/tsenart/vegeta/v12/lib"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Load generation for the read scenarios (reads.go): vegeta for HTTP, a
// worker pool on grpc-go paced by vegeta's pacer for gRPC, HDR histograms
// for the latencies.

// latencies is an HDR histogram of microseconds (1 µs to 1 min, three
// significant digits). It is not safe for concurrent use: each worker has
// its own, merged at the end.
type latencies struct{ h *hdrhistogram.Histogram }

func newLatencies() latencies {
	return latencies{hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)}
}

func (l latencies) record(d time.Duration) {
	// A value past the range is clamped to it (RecordValue refuses it).
	_ = l.h.RecordValue(min(max(d.Microseconds(), 1), l.h.HighestTrackableValue()))
}

// ms is the q-quantile (0..1) in milliseconds.
func (l latencies) ms(q float64) float64 {
	return float64(l.h.ValueAtQuantile(q*100)) / 1000
}

// loadStats is what one load run measured.
type loadStats struct {
	n        int
	elapsed  time.Duration
	p50, p99 float64 // ms
}

func (s loadStats) rate() float64 { return float64(s.n) / s.elapsed.Seconds() }

// errCounter keeps the first of a run's errors and counts them all.
type errCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	if e.first == nil {
		e.first = err
	}
	e.mu.Unlock()
	e.n.Add(1) // after first is set: err reads first once n > 0
}

func (e *errCounter) err(what string, total int) error {
	n := e.n.Load()
	if n == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Errorf("%s: %d of %d failed, the first with: %w", what, n, total, e.first)
}

// pacer is vegeta's: a closed loop (no pacing) for rate 0, else a
// constant rate per second.
func pacer(rate float64) vegeta.Pacer {
	if rate <= 0 {
		return vegeta.ConstantPacer{} // the zero value: no pacing
	}
	return vegeta.ConstantPacer{Freq: max(1, int(rate)), Per: time.Second}
}

// callLoad makes n calls of do. With rate 0 it is a closed loop: c workers
// each call again as soon as they are answered. Otherwise calls start at
// rate per second, timed by vegeta's constant pacer, each on a free worker;
// when all are busy one more is started (as vegeta's attacker does), so a
// slow answer does not delay the calls after it. do gets the worker's index
// (for its connection) and the call's.
func callLoad(ctx context.Context, c, n int, rate float64, do func(worker, i int) error) (loadStats, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		hists []latencies
		errs  errCounter
	)
	ticks := make(chan int)
	spawn := func(worker int) {
		l := newLatencies()
		mu.Lock()
		hists = append(hists, l)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ticks {
				t := time.Now()
				err := do(worker, i)
				l.record(time.Since(t))
				if err != nil {
					errs.add(err)
				}
			}
		}()
	}
	workers := c
	for w := range workers {
		spawn(w)
	}
	maxWorkers := workers
	if rate > 0 {
		maxWorkers = 20 * c
	}
	p := pacer(rate)
	start := time.Now()
	sent := 0
send:
	for ; sent < n; sent++ {
		wait, stop := p.Pace(time.Since(start), uint64(sent))
		if stop {
			break
		}
		if wait > 0 {
			time.Sleep(wait)
		}
		if workers < maxWorkers {
			select {
			case ticks <- sent:
				continue
			default:
				spawn(workers)
				workers++
			}
		}
		select {
		case ticks <- sent:
		case <-ctx.Done():
			break send
		}
	}
	close(ticks)
	wg.Wait()
	elapsed := time.Since(start)
	all := newLatencies()
	for _, l := range hists {
		all.h.Merge(l.h)
	}
	if err := ctx.Err(); err != nil {
		return loadStats{}, err
	}
	if err := errs.err("load", sent); err != nil {
		return loadStats{}, err
	}
	return loadStats{n: sent, elapsed: elapsed, p50: all.ms(0.50), p99: all.ms(0.99)}, nil
}

// countedPacer stops its attack after n hits. (vegeta.PacerFunc has no
// Rate method, so it is not a vegeta.Pacer.)
type countedPacer struct {
	vegeta.Pacer
	n uint64
}

func (p countedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.n {
		return 0, true
	}
	return p.Pacer.Pace(elapsed, hits)
}

// httpLoad sends n requests to the targets (in turn) with vegeta's
// attacker on c keep-alive connections: c workers in a closed loop for
// rate 0, else at rate per second. Any answer but 200 fails the run, and
// so does one that check (if not nil) refuses.
func httpLoad(ctx context.Context, c, n int, rate float64, targets []vegeta.Target, check func(body []byte) error) (loadStats, error) {
	opts := []func(*vegeta.Attacker){
		vegeta.Workers(uint64(c)), vegeta.Connections(c), vegeta.MaxConnections(c),
		vegeta.KeepAlive(true), vegeta.Timeout(30 * time.Second), vegeta.Redirects(vegeta.NoFollow),
	}
	if rate <= 0 {
		opts = append(opts, vegeta.MaxWorkers(uint64(c)))
	} else {
		opts = append(opts, vegeta.MaxWorkers(uint64(20*c)))
	}
	atk := vegeta.NewAttacker(opts...)
	counted := countedPacer{pacer(rate), uint64(n)}
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	lat := newLatencies()
	var errs errCounter
	got := 0
	start := time.Now()
	for res := range atk.Attack(vegeta.NewStaticTargeter(targets...), counted, 0, "bench") {
		got++
		lat.record(res.Latency)
		switch {
		case res.Error != "":
			errs.add(errors.New(res.Error))
		case res.Code != http.StatusOK:
			errs.add(fmt.Errorf("HTTP %d: %s", res.Code, res.Body))
		case check != nil:
			if err := check(res.Body); err != nil {
				errs.add(fmt.Errorf("%s: %w", res.URL, err))
			}
		}
	}
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return loadStats{}, err
	}
	if err := errs.err("load", got); err != nil {
		return loadStats{}, err
	}
	return loadStats{n: got, elapsed: elapsed, p50: lat.ms(0.50), p99: lat.ms(0.99)}, nil
}

// grpcConns dials n client connections to addr.
func grpcConns(addr string, n int) ([]*grpc.ClientConn, func(), error) {
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// rawCodec marshals requests as protobuf but keeps answers as bytes, so
// the load generator does not charge its own decoding of an answer to the
// server (wrk and vegeta do not decode HTTP bodies either); the warm-up
// decodes and checks every answer. Its name keeps the content-subtype
// "proto" that the servers expect.
type rawCodec struct{}

// rawAnswer receives an answer: scan, if set, reads its bytes (valid only
// during the call); else keep keeps a copy in b.
type rawAnswer struct {
	scan func([]byte)
	keep bool
	b    []byte
}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawAnswer)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	switch {
	case r.scan != nil && len(data) == 1:
		r.scan(data[0].ReadOnlyData())
	case r.scan != nil:
		r.scan(data.Materialize())
	case r.keep:
		r.b = data.Materialize()
	}
	return nil
}

// rawCall is the call option that uses rawCodec. (grpc.ForceCodecV2 is
// marked experimental; grpc is pinned in go.mod.)
var rawCall = grpc.ForceCodecV2(rawCodec{})

// invoke calls method on conn with rawCodec; with check set, it decodes the
// answer into out and hands it to check.
func invoke[M proto.Message](ctx context.Context, conn *grpc.ClientConn, method string, req proto.Message, out M, check func(M) error) error {
	ans := rawAnswer{keep: check != nil}
	if err := conn.Invoke(ctx, method, req, &ans, rawCall); err != nil {
		return err
	}
	if check == nil {
		return nil
	}
	if err := proto.Unmarshal(ans.b, out); err != nil {
		return err
	}
	return check(out)
}

// waitGroup waits for wg, at most d.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, d time.Duration) error {
	ch := make(chan struct{})
	go func() {
		wg.Wait()
		close(ch)
	}()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return fmt.Errorf("not done after %s", d)
	}
}
