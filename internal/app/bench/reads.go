package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/lovoo/goka"
	vegeta "github.com/tsenart/vegeta/v12/lib"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The read scenarios measure the query side — the gateway answering from
// its views — each beside a baseline measured in the same run:
//
//   - rest-hello / rest-get: a hello-world net/http handler, and
//     GetAvailability over REST through the real gateway (grpc-gateway),
//     driven by vegeta's attacker with --clients workers on as many
//     keep-alive connections;
//   - grpc-hello / grpc-get: a hello-world grpc-go unary call (the standard
//     health service's Check) and GetAvailability over gRPC, --clients
//     workers each on a connection of its own;
//   - batch-100 / single-100: BatchGetAvailability of 100 SKUs, and the
//     same 100 SKUs asked for by 100 single GetAvailability calls in a row,
//     in SKUs/s;
//   - watch-fanout: watchers (1,000 at the default size) on WatchAvailability
//     over gRPC, all watching the same ten SKUs. A burst of supply changes
//     of those SKUs, produced as fast as the emitter takes them, measures
//     the changes delivered per second (every change to every watcher);
//     then changes at a constant half of that rate measure the lag from
//     produce to receipt below saturation;
//   - freshness: a stock change produced, then the time until REST
//     GetAvailability shows it.
//
// The four request scenarios first run closed-loop (every worker calls
// again as soon as it is answered) for the peak rate, then again open-loop
// at a constant half of that peak (vegeta's constant pacer), where the
// latency is what a caller sees below saturation.
//
// Sizes follow --messages (200,000 by default): requests per peak run (and
// SKUs answered by batch-100 and single-100), a quarter of that at half the
// peak; watchers messages/100, at most 1,000, and changes in their burst
// messages/300, at most 300 (then about five seconds of changes at half
// the rate); freshness changes messages/500, at most 200. The gateway
// serves min(--keys, 1,000) SKUs with sample-like data (four locations;
// location, merchant and SKU policies) recovered on the embedded broker.
//
// Load: vegeta's lib for HTTP. For gRPC a fixed pool of workers on grpc-go
// client connections, paced by vegeta's constant pacer, recording into HDR
// histograms: ghz's runner (v0.120.0) blank-imports google.golang.org/grpc/xds,
// which links the xDS stack (envoy, cloud auth, OpenTelemetry: ~350 more
// packages, +32 MB) into the skuflow binary, and its dynamic messages add a
// client cost per call that the ratio would charge to the gateway. Neither
// decodes the answers it measures (see rawCodec); the warm-ups check them.
func init() {
	scenarios["rest-hello"] = scenario{"baseline: hello-world net/http handler, small JSON body (req/s)", runRESTHello}
	scenarios["rest-get"] = scenario{"GetAvailability over REST through the gateway (req/s)", runRESTGet}
	scenarios["grpc-hello"] = scenario{"baseline: hello-world grpc-go unary call, health Check (req/s)", runGRPCHello}
	scenarios["grpc-get"] = scenario{"GetAvailability over gRPC (req/s)", runGRPCGet}
	scenarios["batch-100"] = scenario{"BatchGetAvailability of 100 SKUs over gRPC (SKUs/s)", runBatch100}
	scenarios["single-100"] = scenario{"baseline: the same 100 SKUs as 100 GetAvailability calls in a row (SKUs/s)", runSingle100}
	scenarios["watch-fanout"] = scenario{"WatchAvailability over gRPC: a burst of changes delivered to every watcher (deliveries/s; latency: produce-to-receipt lag)", runWatchFanout}
	scenarios["freshness"] = scenario{"a supply change produced until REST GetAvailability shows it (p50/p99)", runFreshness}
}

// readPairs are the read scenarios measured against a baseline, in the
// order the table prints them.
var readPairs = []struct{ name, base string }{
	{"rest-get", "rest-hello"},
	{"grpc-get", "grpc-hello"},
	{"batch-100", "single-100"},
}

// readOrder is the order the read table lists its scenarios in.
var readOrder = []string{"rest-hello", "rest-get", "grpc-hello", "grpc-get", "single-100", "batch-100", "watch-fanout", "freshness"}

func isRead(name string) bool { return slices.Contains(readOrder, name) }

// readSizes are a run's sizes, all derived from Options.
type readSizes struct {
	skus, clients     int
	requests, warmup  int
	halfRequests      int
	watchers, changes int
	hot               int // SKUs every watcher watches
	freshness         int
}

func sizes(o Options) readSizes {
	requests := max(o.Messages, 100)
	return readSizes{
		skus:         max(1, min(o.Keys, 1000)),
		clients:      clients(o),
		requests:     requests,
		warmup:       min(requests/10, 5000),
		halfRequests: max(requests/4, 50),
		watchers:     min(1000, max(2, o.Messages/100)),
		changes:      min(300, max(10, o.Messages/300)),
		hot:          10,
		freshness:    min(200, max(10, o.Messages/500)),
	}
}

// peakAndHalf warms up (checking every answer), measures the peak (closed
// loop), then the latency at a constant half of it.
func peakAndHalf(ctx context.Context, o Options, run func(n int, rate float64, check bool) (loadStats, error)) (Result, error) {
	sz := sizes(o)
	if _, err := run(max(sz.warmup, 1), 0, true); err != nil {
		return Result{}, fmt.Errorf("warm-up: %w", err)
	}
	peak, err := run(sz.requests, 0, false)
	if err != nil {
		return Result{}, fmt.Errorf("peak: %w", err)
	}
	half := peak.rate() / 2
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "peak %.0f/s (p50 %.2f ms, p99 %.2f ms); now at %.0f/s\n", peak.rate(), peak.p50, peak.p99, half)
	}
	at, err := run(sz.halfRequests, half, false)
	if err != nil {
		return Result{}, fmt.Errorf("at half the peak rate: %w", err)
	}
	return Result{Seconds: peak.elapsed.Seconds(), Messages: peak.n, Clients: sz.clients, Unit: "req/s",
		P50Ms: peak.p50, P99Ms: peak.p99, HalfRate: at.rate(), HalfP50Ms: at.p50, HalfP99Ms: at.p99}, nil
}

// listen binds a loopback port.
func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// helloBody is the hello-world handler's answer.
var helloBody = []byte(`{"message":"hello, world"}`)

func runRESTHello(ctx context.Context, o Options, _ string) (Result, error) {
	ln, err := listen()
	if err != nil {
		return Result{}, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(helloBody) // a failed write is the client's to see
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		<-served
	}()
	targets := []vegeta.Target{{Method: http.MethodGet, URL: "http://" + ln.Addr().String() + "/hello"}}
	check := func(body []byte) error {
		if !bytes.Equal(body, helloBody) {
			return fmt.Errorf("answer %q", body)
		}
		return nil
	}
	return peakAndHalf(ctx, o, func(n int, rate float64, warm bool) (loadStats, error) {
		return httpLoad(ctx, clients(o), n, rate, targets, onlyIf(warm, check))
	})
}

// onlyIf is check if on is set, else nil.
func onlyIf[F any](on bool, check F) F {
	if !on {
		var none F
		return none
	}
	return check
}

func runRESTGet(ctx context.Context, o Options, dir string) (Result, error) {
	st, err := startStack(ctx, o, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.stop()
	targets := make([]vegeta.Target, len(st.skus))
	for i, sku := range st.skus {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: st.restURL(sku)}
	}
	check := func(body []byte) error {
		var a pb.Availability
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &a); err != nil {
			return err
		}
		if a.GetVersion() == "" || len(a.GetLocations()) == 0 {
			return fmt.Errorf("answer without version or locations: %s", body)
		}
		return nil
	}
	r, err := peakAndHalf(ctx, o, func(n int, rate float64, warm bool) (loadStats, error) {
		return httpLoad(ctx, clients(o), n, rate, targets, onlyIf(warm, check))
	})
	return r, errors.Join(err, st.err())
}

func runGRPCHello(ctx context.Context, o Options, _ string) (Result, error) {
	ln, err := listen()
	if err != nil {
		return Result{}, err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()
	c := clients(o)
	conns, closeConns, err := grpcConns(ln.Addr().String(), c)
	if err != nil {
		return Result{}, err
	}
	defer closeConns()
	req := &healthpb.HealthCheckRequest{}
	check := func(out *healthpb.HealthCheckResponse) error {
		if out.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", out.GetStatus())
		}
		return nil
	}
	return peakAndHalf(ctx, o, func(n int, rate float64, warm bool) (loadStats, error) {
		return callLoad(ctx, c, n, rate, func(w, _ int) error {
			return invoke(ctx, conns[w%c], healthpb.Health_Check_FullMethodName, req, new(healthpb.HealthCheckResponse), onlyIf(warm, check))
		})
	})
}

// checkAnswer is what the warm-ups check in every gRPC answer.
func checkAnswer(sku string) func(*pb.Availability) error {
	return func(a *pb.Availability) error {
		if a.GetSku() != sku || a.GetVersion() == "" || len(a.GetLocations()) == 0 {
			return fmt.Errorf("asked for %s, answered %v", sku, a)
		}
		return nil
	}
}

func runGRPCGet(ctx context.Context, o Options, dir string) (Result, error) {
	st, err := startStack(ctx, o, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.stop()
	c := clients(o)
	conns, closeConns, err := grpcConns(st.srv.GRPCAddr(), c)
	if err != nil {
		return Result{}, err
	}
	defer closeConns()
	reqs := make([]*pb.GetAvailabilityRequest, len(st.skus))
	for i, sku := range st.skus {
		reqs[i] = &pb.GetAvailabilityRequest{Sku: sku}
	}
	r, err := peakAndHalf(ctx, o, func(n int, rate float64, warm bool) (loadStats, error) {
		return callLoad(ctx, c, n, rate, func(w, i int) error {
			req := reqs[i%len(reqs)]
			return invoke(ctx, conns[w%c], pb.AvailabilityService_GetAvailability_FullMethodName, req, new(pb.Availability), onlyIf(warm, checkAnswer(req.Sku)))
		})
	})
	return r, errors.Join(err, st.err())
}

// runHundreds measures answering 100 SKUs at a time with do, in SKUs/s; the
// latencies are per 100 SKUs. Batch i asks for SKUs 100i to 100i+99
// (wrapping around); the warm-up checks every answer.
func runHundreds(ctx context.Context, o Options, dir string, do func(ctx context.Context, conn *grpc.ClientConn, skus []string, check bool) error) (Result, error) {
	sz := sizes(o)
	if sz.skus < 100 {
		return Result{}, fmt.Errorf("asking for 100 SKUs at a time needs at least 100 SKUs, not %d (--keys)", sz.skus)
	}
	st, err := startStack(ctx, o, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.stop()
	c := sz.clients
	conns, closeConns, err := grpcConns(st.srv.GRPCAddr(), c)
	if err != nil {
		return Result{}, err
	}
	defer closeConns()
	batches := make([][]string, len(st.skus))
	for i := range batches {
		for j := range 100 {
			batches[i] = append(batches[i], st.skus[(i*100+j)%len(st.skus)])
		}
	}
	run := func(n int, check bool) (loadStats, error) {
		return callLoad(ctx, c, n, 0, func(w, i int) error { return do(ctx, conns[w%c], batches[i%len(batches)], check) })
	}
	if _, err := run(max(1, sz.warmup/100, min(len(batches), 10)), true); err != nil {
		return Result{}, errors.Join(fmt.Errorf("warm-up: %w", err), st.err())
	}
	s, err := run(max(1, sz.requests/100), false)
	if err != nil {
		return Result{}, errors.Join(err, st.err())
	}
	return Result{Seconds: s.elapsed.Seconds(), Messages: s.n * 100, Clients: c, Unit: "SKUs/s", P50Ms: s.p50, P99Ms: s.p99,
		Detail: fmt.Sprintf("%d calls of 100 SKUs", s.n)}, st.err()
}

func runBatch100(ctx context.Context, o Options, dir string) (Result, error) {
	return runHundreds(ctx, o, dir, func(ctx context.Context, conn *grpc.ClientConn, skus []string, check bool) error {
		return invoke(ctx, conn, pb.AvailabilityService_BatchGetAvailability_FullMethodName, &pb.BatchGetAvailabilityRequest{Sku: skus},
			new(pb.BatchGetAvailabilityResponse), onlyIf(check, func(out *pb.BatchGetAvailabilityResponse) error {
				if len(out.GetResults()) != len(skus) {
					return fmt.Errorf("batch of %d SKUs answered %d", len(skus), len(out.GetResults()))
				}
				for i, r := range out.GetResults() {
					if !r.GetFound() {
						return fmt.Errorf("batch: SKU %s not found", r.GetSku())
					}
					if err := checkAnswer(skus[i])(r.GetAvailability()); err != nil {
						return err
					}
				}
				return nil
			}))
	})
}

func runSingle100(ctx context.Context, o Options, dir string) (Result, error) {
	return runHundreds(ctx, o, dir, func(ctx context.Context, conn *grpc.ClientConn, skus []string, check bool) error {
		for _, sku := range skus {
			if err := invoke(ctx, conn, pb.AvailabilityService_GetAvailability_FullMethodName, &pb.GetAvailabilityRequest{Sku: sku},
				new(pb.Availability), onlyIf(check, checkAnswer(sku))); err != nil {
				return err
			}
		}
		return nil
	})
}

// watchFields reads, from an encoded WatchAvailabilityResponse, its
// answer's SKU and updated_at and its synced flag, skipping everything else,
// so that 1,000 watchers decoding their copies of each answer do not take
// the cores the gateway needs to send them.
func watchFields(b []byte) (sku []byte, updated int64, synced bool, err error) {
	fields := func(b []byte, each func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			var v []byte
			var x uint64
			switch typ {
			case protowire.BytesType:
				v, n = protowire.ConsumeBytes(b)
			case protowire.VarintType:
				x, n = protowire.ConsumeVarint(b)
			default:
				n = protowire.ConsumeFieldValue(num, typ, b)
			}
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if err := each(num, typ, v, x); err != nil {
				return err
			}
		}
		return nil
	}
	var secs, nanos int64
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 2 && typ == protowire.VarintType: // synced
			synced = x != 0
		case num == 1 && typ == protowire.BytesType: // availability
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType: // sku
					sku = v
				case num == 6 && typ == protowire.BytesType: // updated_at
					return fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
						switch {
						case num == 1 && typ == protowire.VarintType:
							secs = int64(x)
						case num == 2 && typ == protowire.VarintType:
							nanos = int64(int32(x))
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	if secs != 0 || nanos != 0 {
		updated = time.Unix(secs, nanos).UnixNano()
	}
	return sku, updated, synced, err
}

// fanoutWatcher is one watch stream's receipts.
type fanoutWatcher struct {
	// latest is, per hot SKU, the newest updated_at received (unix ns).
	latest []atomic.Int64
	// lag holds each change's receipt minus its produce time, per phase
	// (burst, paced); only the watcher's goroutine records.
	lag [2]latencies
}

// watchPhase is one run of changes produced to the hot SKUs.
type watchPhase struct {
	delivered atomic.Int64
	start     time.Time
	end       time.Time // when the last watcher had every SKU's last change
}

func runWatchFanout(ctx context.Context, o Options, dir string) (_ Result, err error) {
	sz := sizes(o)
	st, err := startStack(ctx, o, dir, func(so *app.ServeOptions) { so.MaxWatchers = sz.watchers + 10 })
	if err != nil {
		return Result{}, err
	}
	defer st.stop()
	hot := st.skus[:min(sz.hot, len(st.skus))]
	hotIndex := map[string]int{}
	for i, sku := range hot {
		hotIndex[sku] = i
	}
	conns, closeConns, err := grpcConns(st.srv.GRPCAddr(), min(sz.watchers, 100))
	if err != nil {
		return Result{}, err
	}
	defer closeConns()
	// On every return the watches end (cancelWatch) before their
	// connections close, and their goroutines have returned.
	var done sync.WaitGroup
	defer done.Wait()
	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()

	// Every watcher receives the current answers, then synced, then the
	// changes. A change's lag is its receipt minus its produce time, which
	// the change carries as its level's as_of (the answer's updated_at).
	var (
		phases      [2]watchPhase
		phase       atomic.Int32 // 0: burst, 1: paced
		changesFrom = time.Now().UnixNano()
		synced      sync.WaitGroup
		errs        errCounter
	)
	watchers := make([]*fanoutWatcher, sz.watchers)
	req := &pb.WatchAvailabilityRequest{Sku: hot}
	for w := range watchers {
		fw := &fanoutWatcher{latest: make([]atomic.Int64, len(hot)), lag: [2]latencies{newLatencies(), newLatencies()}}
		watchers[w] = fw
		stream, err := conns[w%len(conns)].NewStream(wctx, &grpc.StreamDesc{ServerStreams: true}, pb.AvailabilityService_WatchAvailability_FullMethodName, rawCall)
		if err != nil {
			return Result{}, fmt.Errorf("watcher %d: %w", w, err)
		}
		if err := stream.SendMsg(req); err != nil {
			return Result{}, fmt.Errorf("watcher %d: %w", w, err)
		}
		if err := stream.CloseSend(); err != nil {
			return Result{}, fmt.Errorf("watcher %d: %w", w, err)
		}
		synced.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			isSynced := false
			defer func() {
				if !isSynced {
					synced.Done()
				}
			}()
			var scanErr error
			ans := rawAnswer{scan: func(b []byte) {
				sku, updated, isSync, err := watchFields(b)
				now := time.Now().UnixNano()
				if err != nil {
					scanErr = err
					return
				}
				if isSync && !isSynced {
					isSynced = true
					synced.Done()
				}
				i, ok := hotIndex[string(sku)]
				if !ok || updated < changesFrom {
					return
				}
				if updated > fw.latest[i].Load() {
					fw.latest[i].Store(updated)
				}
				p := phase.Load()
				fw.lag[p].record(time.Duration(now - updated))
				phases[p].delivered.Add(1)
			}}
			for {
				err := stream.RecvMsg(&ans)
				if err == nil {
					err = scanErr
				}
				if err != nil {
					if wctx.Err() == nil {
						errs.add(fmt.Errorf("watcher %d: %w", w, err))
					}
					return
				}
			}
		}()
	}
	if err := waitGroup(ctx, &synced, 2*time.Minute); err != nil {
		return Result{}, fmt.Errorf("watchers syncing: %w", errors.Join(err, errs.err("watch", sz.watchers)))
	}
	em, err := goka.NewEmitter(st.k.Brokers, schema.Supply, schema.BytesCodec, st.k.LowLatencyEmitterOptions()...)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, em.Finish()) }()
	var emitErrs errCounter
	seq := uint64(1_000_000)
	// run produces n changes at rate per second (0: as fast as the emitter
	// takes them), round-robin over the hot SKUs, and waits until every
	// watcher has received each SKU's last one.
	run := func(ph *watchPhase, n int, rate float64) error {
		last := make([]int64, len(hot))
		p := pacer(rate)
		ph.start = time.Now()
		for i := range n {
			wait, _ := p.Pace(time.Since(ph.start), uint64(i))
			time.Sleep(wait)
			sku := hot[i%len(hot)]
			asOf := time.Now()
			seq++
			v, err := codecs.EncodeSupplyEvent(inventory.StockLevel{SKU: sku, Location: "WH-EAST", OnHand: int64(100_000 + seq%100_000), AsOf: asOf, Sequence: seq})
			if err != nil {
				return err
			}
			pr, err := em.Emit(sku, v)
			if err != nil {
				return err
			}
			pr.Then(func(err error) {
				if err != nil {
					emitErrs.add(err)
				}
			})
			// At microseconds, in case a codec keeps no finer time.
			last[i%len(hot)] = asOf.Truncate(time.Microsecond).UnixNano()
		}
		deadline := time.Now().Add(time.Minute)
		for {
			behind := 0
			for _, fw := range watchers {
				for i := range last {
					if fw.latest[i].Load() < last[i] {
						behind++
						break
					}
				}
			}
			if behind == 0 {
				ph.end = time.Now()
				return nil
			}
			if err := errors.Join(errs.err("watch", sz.watchers), emitErrs.err("produce", n), st.err()); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d watchers lack a change a minute after the last was produced", behind, len(watchers))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	burst := &phases[0]
	if err := run(burst, sz.changes, 0); err != nil {
		return Result{}, fmt.Errorf("burst: %w", err)
	}
	peak := float64(burst.delivered.Load()) / burst.end.Sub(burst.start).Seconds()
	// At half the peak, for about five seconds.
	rate := max(1, peak/2/float64(len(watchers)))
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "burst: %d deliveries in %s (%.0f/s); now %.0f changes/s\n", burst.delivered.Load(), burst.end.Sub(burst.start), peak, rate)
	}
	phase.Store(1)
	paced := &phases[1]
	n := min(max(int(rate*5), 10), 1000)
	if err := run(paced, n, rate); err != nil {
		return Result{}, fmt.Errorf("at half the peak: %w", err)
	}
	cancelWatch()
	done.Wait()
	lag := [2]latencies{newLatencies(), newLatencies()}
	for _, fw := range watchers {
		for p := range lag {
			lag[p].h.Merge(fw.lag[p].h)
		}
	}
	pacedFor := paced.end.Sub(paced.start)
	return Result{Seconds: burst.end.Sub(burst.start).Seconds(), Messages: int(burst.delivered.Load()), Clients: sz.watchers, Unit: "deliveries/s",
		P50Ms: lag[0].ms(0.50), P99Ms: lag[0].ms(0.99),
		HalfRate: float64(paced.delivered.Load()) / pacedFor.Seconds(), HalfP50Ms: lag[1].ms(0.50), HalfP99Ms: lag[1].ms(0.99),
		Detail: fmt.Sprintf("%d watchers of the same %d SKUs over %d connections; burst: %d changes as fast as produced, %d deliveries (lag max %.1f ms); "+
			"then %d changes at %.0f/s, %d deliveries (lag max %.1f ms)",
			sz.watchers, len(hot), len(conns), sz.changes, burst.delivered.Load(), float64(lag[0].h.Max())/1000,
			n, rate, paced.delivered.Load(), float64(lag[1].h.Max())/1000)}, nil
}

// freshPoll is how often freshness asks REST for the changed SKU; the
// figures include up to one interval.
const freshPoll = 500 * time.Microsecond

func runFreshness(ctx context.Context, o Options, dir string) (_ Result, err error) {
	st, err := startStack(ctx, o, dir)
	if err != nil {
		return Result{}, err
	}
	defer st.stop()
	sz := sizes(o)
	em, err := goka.NewEmitter(st.k.Brokers, schema.Supply, schema.BytesCodec, st.k.LowLatencyEmitterOptions()...)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, em.Finish()) }()
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	lat := newLatencies()
	rng := rand.New(rand.NewPCG(5, 6))
	var total time.Duration
	for i := range sz.freshness {
		// A random pause between changes, so they do not fall into step
		// with the producers' 5 ms flush.
		time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
		sku := st.skus[(i*37)%len(st.skus)]
		want := int64(200_000 + i)
		start := time.Now()
		v, err := codecs.EncodeSupplyEvent(inventory.StockLevel{SKU: sku, Location: "WH-WEST", OnHand: want, AsOf: start, Sequence: uint64(2_000_000 + i)})
		if err != nil {
			return Result{}, err
		}
		pr, err := em.Emit(sku, v)
		if err != nil {
			return Result{}, err
		}
		emitted := make(chan error, 1)
		pr.Then(func(err error) { emitted <- err })
		for {
			a, err := restGet(ctx, client, st.restURL(sku))
			if err != nil {
				return Result{}, errors.Join(err, st.err())
			}
			if onHandAt(a, "WH-WEST") == want {
				break
			}
			if time.Since(start) > 30*time.Second {
				return Result{}, errors.Join(fmt.Errorf("change %d (%s on hand %d) not shown after 30 s", i, sku, want), st.err())
			}
			select {
			case err := <-emitted:
				if err != nil {
					return Result{}, fmt.Errorf("produce change %d: %w", i, err)
				}
			default:
			}
			time.Sleep(freshPoll)
		}
		d := time.Since(start)
		lat.record(d)
		total += d
	}
	return Result{Seconds: total.Seconds(), Messages: sz.freshness, Unit: "changes/s", P50Ms: lat.ms(0.50), P99Ms: lat.ms(0.99),
		Detail: fmt.Sprintf("%d changes one at a time, REST polled every %s; max %.1f ms", sz.freshness, freshPoll, float64(lat.h.Max())/1000)}, st.err()
}

// printReads prints the read scenarios among results as a table of their
// own, with each one's ratio to its baseline and issue 11's goals, and
// returns the other results.
func printReads(w io.Writer, results []Result) []Result {
	by := map[string]Result{}
	var rest []Result
	for _, r := range results {
		if isRead(r.Scenario) {
			by[r.Scenario] = r
		} else {
			rest = append(rest, r)
		}
	}
	if len(by) == 0 {
		return rest
	}
	baseOf := map[string]string{}
	for _, p := range readPairs {
		baseOf[p.name] = p.base
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\trate\tunit\tp50 ms\tp99 ms\tp50/p99 ms at half the peak\tvs baseline\tpeak RSS\twhat")
	for _, name := range readOrder {
		r, ok := by[name]
		if !ok {
			continue
		}
		half := "-"
		if r.HalfRate > 0 {
			half = fmt.Sprintf("%.2f / %.2f (at %.0f/s)", r.HalfP50Ms, r.HalfP99Ms, r.HalfRate)
		}
		vs := "-"
		if b, ok := by[baseOf[name]]; ok && b.PerSecond > 0 {
			vs = fmt.Sprintf("%.2f of %s", r.PerSecond/b.PerSecond, b.Scenario)
			if name == "batch-100" {
				vs = fmt.Sprintf("%.1fx %s", r.PerSecond/b.PerSecond, b.Scenario)
			}
		}
		rate, unit := fmt.Sprintf("%.0f", r.PerSecond), r.Unit
		if name == "freshness" { // one change at a time: its rate says nothing
			rate, unit = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t%.0f MiB\t%s\n", r.Scenario, rate, unit, r.P50Ms, r.P99Ms, half, vs,
			float64(r.PeakRSSKiB)/1024, r.Description)
	}
	tw.Flush()
	for _, name := range readOrder {
		if r, ok := by[name]; ok && (r.Clients > 0 || r.Detail != "") {
			fmt.Fprintf(w, "%s:", name)
			if r.Clients > 0 && name != "watch-fanout" {
				fmt.Fprintf(w, " %d concurrent clients;", r.Clients)
			}
			if r.Detail != "" {
				fmt.Fprintf(w, " %s", r.Detail)
			}
			fmt.Fprintln(w)
		}
	}
	goals(w, by)
	return rest
}

// goals prints issue 11's goals the run can judge.
func goals(w io.Writer, by map[string]Result) {
	verdict := func(ok bool) string {
		if ok {
			return "reached"
		}
		return "NOT reached"
	}
	var lines []string
	ratio := func(name, base string, goal float64, what string) {
		r, ok1 := by[name]
		b, ok2 := by[base]
		if ok1 && ok2 && b.PerSecond > 0 {
			x := r.PerSecond / b.PerSecond
			lines = append(lines, fmt.Sprintf("%s >= %.1f of %s: %.2f, %s", what, goal, base, x, verdict(x >= goal)))
		}
	}
	ratio("rest-get", "rest-hello", 0.7, "REST GetAvailability")
	ratio("grpc-get", "grpc-hello", 0.8, "gRPC GetAvailability")
	for _, name := range []string{"rest-get", "grpc-get"} {
		if r, ok := by[name]; ok && r.HalfRate > 0 {
			lines = append(lines, fmt.Sprintf("%s p99 < 1 ms at half the peak rate (%.0f/s): %.2f ms, %s", name, r.HalfRate, r.HalfP99Ms, verdict(r.HalfP99Ms < 1)))
		}
	}
	if r, ok := by["batch-100"]; ok {
		if b, ok := by["single-100"]; ok && b.PerSecond > 0 {
			x := r.PerSecond / b.PerSecond
			lines = append(lines, fmt.Sprintf("BatchGet(100) >= 20x the SKUs/s of single Gets: %.1fx, %s", x, verdict(x >= 20)))
		}
	}
	if r, ok := by["freshness"]; ok {
		lines = append(lines, fmt.Sprintf("freshness p99 < 20 ms: %.1f ms, %s", r.P99Ms, verdict(r.P99Ms < 20)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "goals (issue 11):")
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// printReadRounds prints each read pair's ratio round by round.
func printReadRounds(w io.Writer, runs map[string][]Result) {
	for _, p := range readPairs {
		r, b := runs[p.name], runs[p.base]
		if len(r) == 0 || len(r) != len(b) {
			continue
		}
		fmt.Fprintf(w, "  %s / %s, round by round:", p.name, p.base)
		for i := range r {
			fmt.Fprintf(w, " %.2f", r[i].PerSecond/b[i].PerSecond)
		}
		fmt.Fprintln(w)
	}
}
