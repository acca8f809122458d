// Package bench measures skuflow's throughput against baselines measured in
// the same run, on the same embedded broker settings, message count, key
// count and partition count. Every scenario runs in its own child process so
// its peak RSS is its own. The machines are noisy: read the ratios.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/broker"
	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/backlog"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Options size a run.
type Options struct {
	Messages   int
	Keys       int
	Partitions int
	// Clients is the number of concurrent clients in request scenarios.
	Clients int
	// Scenarios to run (default: all, in order).
	Scenarios []string
	// Rounds runs every scenario this many times, interleaved, and
	// reports each one's median run (0: 1).
	Rounds int
	// CPUProfile, if set, writes a CPU profile of each scenario run to
	// CPUProfile.<scenario>.
	CPUProfile string
	// Debug, if set, receives progress notes of each run.
	Debug io.Writer
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Messages < 1 {
		errs = append(errs, fmt.Errorf("messages %d must be at least 1", o.Messages))
	}
	if o.Keys < 1 || o.Keys > o.Messages {
		errs = append(errs, fmt.Errorf("keys %d must be within 1..messages", o.Keys))
	}
	if o.Clients < 0 || o.Clients > 10_000 {
		errs = append(errs, fmt.Errorf("clients %d is outside 0..10000", o.Clients))
	}
	if o.Rounds < 0 || o.Rounds > 20 {
		errs = append(errs, fmt.Errorf("rounds %d is outside 0..20", o.Rounds))
	}
	if o.Partitions < 1 || o.Partitions > 64 {
		errs = append(errs, fmt.Errorf("partitions %d is outside 1..64", o.Partitions))
	}
	for _, s := range o.Scenarios {
		if _, ok := scenarios[s]; !ok {
			errs = append(errs, fmt.Errorf("unknown scenario %q", s))
		}
	}
	return errors.Join(errs...)
}

// Result is what one scenario measured.
type Result struct {
	Scenario   string  `json:"scenario"`
	Messages   int     `json:"messages"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	PeakRSSKiB int64   `json:"peak_rss_kib"`
	StateBytes int64   `json:"state_bytes,omitempty"`
	StateKeys  int     `json:"state_keys,omitempty"`
	// Published is how many answers the stock processor published.
	Published   int    `json:"published,omitempty"`
	Description string `json:"description"`
	// Request scenarios: concurrent clients and latency percentiles.
	Clients int     `json:"clients,omitempty"`
	P50Ms   float64 `json:"p50_ms,omitempty"`
	P99Ms   float64 `json:"p99_ms,omitempty"`
	// Read scenarios (reads.go): what PerSecond counts, the rate and
	// latency of the second run at a constant half of the peak, and a line
	// of the scenario's own figures.
	Unit      string  `json:"unit,omitempty"`
	HalfRate  float64 `json:"half_rate,omitempty"`
	HalfP50Ms float64 `json:"half_p50_ms,omitempty"`
	HalfP99Ms float64 `json:"half_p99_ms,omitempty"`
	Detail    string  `json:"detail,omitempty"`
}

type scenario struct {
	description string
	run         func(ctx context.Context, o Options, dir string) (Result, error)
}

var order = []string{"sarama", "goka-sum", "stock", "stock-per-event"}

var scenarios = map[string]scenario{
	"sarama":   {"raw sarama produce+consume (goka's producer settings)", runSarama},
	"goka-sum": {"trivial goka processor: sum per key into a table, emit per message", runGokaSum},
	"stock":    {"skuflow stock processor: supply events -> state table -> every final answer on availability", runStock},
	"stock-per-event": {"the same with coalescing off (--defer-publish-lag 0): an answer evaluated and published per event",
		func(ctx context.Context, o Options, dir string) (Result, error) {
			return runStockWith(ctx, o, dir, false)
		}},
}

// Run runs every scenario in a child process (self, with ChildArgs) and
// prints the table to w.
func Run(ctx context.Context, o Options, self string, w io.Writer, progress io.Writer) ([]Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	names := o.Scenarios
	if len(names) == 0 {
		names = order
	}
	rounds := max(o.Rounds, 1)
	runs := map[string][]Result{}
	for round := 1; round <= rounds; round++ {
		for _, name := range names {
			fmt.Fprintf(progress, "bench: %s (%d messages, %d keys, %d partitions; round %d of %d)...\n",
				name, o.Messages, o.Keys, o.Partitions, round, rounds)
			r, err := runChild(ctx, o, self, name, progress)
			if err != nil {
				return nil, err
			}
			runs[name] = append(runs[name], r)
		}
	}
	var results []Result
	for _, name := range names {
		results = append(results, median(runs[name]))
	}
	Print(w, results)
	if rounds > 1 {
		fmt.Fprintf(w, "median of %d interleaved rounds; each scenario's runs (per second: msgs, or the read table's unit):\n", rounds)
		for _, name := range names {
			fmt.Fprintf(w, "  %-17s", name)
			for _, r := range runs[name] {
				fmt.Fprintf(w, " %.0f", r.PerSecond)
			}
			fmt.Fprintln(w)
		}
		for _, name := range []string{"stock", "stock-per-event"} {
			if s, g := runs[name], runs["goka-sum"]; len(s) == rounds && len(g) == rounds {
				fmt.Fprintf(w, "  %s / goka-sum, round by round:", name)
				for i := range s {
					fmt.Fprintf(w, " %.2f", s[i].PerSecond/g[i].PerSecond)
				}
				fmt.Fprintln(w)
			}
		}
		printReadRounds(w, runs)
	}
	return results, nil
}

// runChild runs one scenario in a child process.
func runChild(ctx context.Context, o Options, self, name string, progress io.Writer) (Result, error) {
	cmd := exec.CommandContext(ctx, self, "bench", "--scenario", name, "--child",
		"--messages", strconv.Itoa(o.Messages), "--keys", strconv.Itoa(o.Keys), "--partitions", strconv.Itoa(o.Partitions),
		"--clients", strconv.Itoa(o.Clients))
	if o.CPUProfile != "" {
		cmd.Args = append(cmd.Args, "--cpuprofile", o.CPUProfile)
	}
	if o.Debug != nil {
		cmd.Args = append(cmd.Args, "--debug")
	}
	cmd.Stderr = progress
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return Result{}, fmt.Errorf("scenario %s: bad result %q: %w", name, out, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSSKiB = ru.Maxrss
	}
	return r, nil
}

// median is the run with the median rate (the lower middle one of an even
// count).
func median(runs []Result) Result {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
	return sorted[(len(sorted)-1)/2]
}

// Print writes the results with ratios to the baselines of the same run;
// the read scenarios get a table of their own (printReads).
func Print(w io.Writer, results []Result) {
	if results = printReads(w, results); len(results) == 0 {
		return
	}
	by := map[string]Result{}
	for _, r := range results {
		by[r.Scenario] = r
	}
	ratio := func(r Result, base string) string {
		b, ok := by[base]
		if !ok || b.PerSecond == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", r.PerSecond/b.PerSecond)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmsgs/s\tvs sarama\tvs goka-sum\tpeak RSS\twhat")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.0f MiB\t%s\n", r.Scenario, r.PerSecond, ratio(r, "sarama"), ratio(r, "goka-sum"),
			float64(r.PeakRSSKiB)/1024, r.Description)
	}
	tw.Flush()
	for _, r := range results {
		if r.Clients > 0 {
			fmt.Fprintf(w, "%s: %d concurrent clients, %.0f requests/s, latency p50 %.1f ms, p99 %.1f ms\n",
				r.Scenario, r.Clients, r.PerSecond, r.P50Ms, r.P99Ms)
		}
	}
	if b, o := by["orders-roundtrip"], by["orders"]; b.P50Ms > 0 && o.P50Ms > 0 {
		fmt.Fprintf(w, "PlaceOrder vs one broker round trip: throughput %.2fx, p50 %.1fx, p99 %.1fx\n",
			o.PerSecond/b.PerSecond, o.P50Ms/b.P50Ms, o.P99Ms/b.P99Ms)
	}
	for _, name := range []string{"stock", "stock-per-event"} {
		if s, ok := by[name]; ok && s.Published > 0 {
			fmt.Fprintf(w, "%s published %d answers for %d supply events over %d SKUs\n", name, s.Published, s.Messages, s.StateKeys)
		}
	}
	printReady(w, by)
	printFlood(w, by)
	if s, ok := by["stock"]; ok && s.StateKeys > 0 {
		per := float64(s.StateBytes) / float64(s.StateKeys)
		fmt.Fprintf(w, "stock state on disk (LevelDB): %d bytes for %d SKUs = %.0f bytes/SKU = %.0f MiB per million SKUs\n",
			s.StateBytes, s.StateKeys, per, per*1e6/(1<<20))
	}
}

// Child runs one scenario in this process and writes its Result as JSON.
func Child(ctx context.Context, o Options, name string, w io.Writer) error {
	sc, ok := scenarios[name]
	if !ok {
		return fmt.Errorf("unknown scenario %q", name)
	}
	if err := o.Validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "skuflow-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if path := o.CPUProfile; path != "" {
		f, err := os.Create(path + "." + name)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r, err := sc.run(ctx, o, dir)
	if err != nil {
		return err
	}
	r.Scenario, r.Description = name, sc.description
	if r.Messages == 0 {
		r.Messages = o.Messages
	}
	r.PerSecond = float64(r.Messages) / r.Seconds
	return json.NewEncoder(w).Encode(r)
}

// cluster starts an embedded broker for a scenario.
func cluster(o Options, dir string) (*broker.Broker, kafkacfg.Options, error) {
	b, err := broker.Start(broker.Options{DataDir: filepath.Join(dir, "broker")})
	if err != nil {
		return nil, kafkacfg.Options{}, err
	}
	k := kafkacfg.Options{Brokers: b.Addrs(), Partitions: o.Partitions, Replication: 1, ClientID: "skuflow-bench"}
	return b, k, nil
}

// messages are the same supply events for every scenario: stock levels and
// adjustments over Keys SKUs and four locations, keyed by SKU.
func messages(o Options) ([]string, [][]byte, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	keys := make([]string, o.Messages)
	vals := make([][]byte, o.Messages)
	for i := range o.Messages {
		sku := fmt.Sprintf("SKU-%07d", rng.IntN(o.Keys))
		loc := fmt.Sprintf("WH-%d", rng.IntN(4))
		at := base.Add(time.Duration(i) * time.Millisecond)
		var ev inventory.Event
		if i%3 == 0 {
			ev = inventory.StockLevel{SKU: sku, Location: loc, OnHand: int64(rng.IntN(1000)), AsOf: at, Sequence: uint64(i)}
		} else {
			ev = inventory.StockAdjustment{EventID: fmt.Sprintf("adj-%d", i), SKU: sku, Location: loc, Delta: int64(rng.IntN(21) - 10 | 1), OccurredAt: at}
		}
		b, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			return nil, nil, err
		}
		keys[i], vals[i] = sku, b
	}
	return keys, vals, nil
}

// produce publishes the messages with goka's emitter (its producer settings
// and FNV-1a partitioner) and returns once all are acknowledged.
func produce(k kafkacfg.Options, topic string, keys []string, vals [][]byte) error {
	em, err := goka.NewEmitter(k.Brokers, goka.Stream(topic), new(codec.Bytes), k.EmitterOptions()...)
	if err != nil {
		return err
	}
	var failed atomic.Int64
	for i := range keys {
		p, err := em.Emit(keys[i], vals[i])
		if err != nil {
			return err
		}
		p.Then(func(err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := em.Finish(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d messages failed to publish", n)
	}
	return nil
}

// waitCount waits until counter reaches n, ctx ends, or the processor
// stops (stopped closed; nil: none to watch).
func waitCount(ctx context.Context, counter *atomic.Int64, n int64, stopped *stopSignal) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var done <-chan struct{}
	if stopped != nil {
		done = stopped.done
	}
	for counter.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("processed %d of %d: %w", counter.Load(), n, ctx.Err())
		case <-done:
			return fmt.Errorf("stopped after %d of %d: %v", counter.Load(), n, stopped.err)
		case <-t.C:
		}
	}
	return nil
}

// stopSignal is closed when a processor's Run returns, with its error:
// any number of waits can watch it.
type stopSignal struct {
	done chan struct{}
	err  error
}

func runSarama(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "bench-in"}); err != nil {
		return Result{}, err
	}
	keys, vals, err := messages(o)
	if err != nil {
		return Result{}, err
	}
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	var got atomic.Int64
	for p := range int32(o.Partitions) {
		pc, err := c.ConsumePartition("bench-in", p, sarama.OffsetOldest)
		if err != nil {
			return Result{}, err
		}
		defer pc.Close()
		go func() {
			for range pc.Messages() {
				got.Add(1)
			}
		}()
	}
	start := time.Now()
	if err := produce(k, "bench-in", keys, vals); err != nil {
		return Result{}, err
	}
	if err := waitCount(ctx, &got, int64(o.Messages), nil); err != nil {
		return Result{}, err
	}
	return Result{Seconds: time.Since(start).Seconds()}, nil
}

func runGokaSum(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "bench-in"}, kafkacfg.Topic{Name: "bench-out"}); err != nil {
		return Result{}, err
	}
	keys, vals, err := messages(o)
	if err != nil {
		return Result{}, err
	}
	var got atomic.Int64
	g := goka.DefineGroup("bench-sum",
		goka.Input("bench-in", new(codec.Bytes), func(ctx goka.Context, msg any) {
			var sum int64
			if v, ok := ctx.Value().(int64); ok {
				sum = v
			}
			sum += int64(len(msg.([]byte)))
			ctx.SetValue(sum)
			ctx.Emit("bench-out", ctx.Key(), sum)
			got.Add(1)
		}),
		goka.Persist(new(codec.Int64)),
		goka.Output("bench-out", new(codec.Int64)),
	)
	p, err := goka.NewProcessor(k.Brokers, g, append(k.ProcessorOptions(), goka.WithLogger(quiet{}),
		goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(dir, "goka"))))...)
	if err != nil {
		return Result{}, err
	}
	return runProcessor(ctx, p, &got, func() error { return produce(k, "bench-in", keys, vals) }, o)
}

func runStock(ctx context.Context, o Options, dir string) (Result, error) {
	return runStockWith(ctx, o, dir, true)
}

// runStockWith runs the stock processor, with a Backlog coalescing its
// publishing while it is behind if coalesce is set.
func runStockWith(ctx context.Context, o Options, dir string, coalesce bool) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return Result{}, err
	}
	keys, vals, err := messages(o)
	if err != nil {
		return Result{}, err
	}
	cfg := inventory.DefaultBase()
	want, err := finalAnswers(cfg, keys, vals)
	if err != nil {
		return Result{}, err
	}
	// The run ends when every message was handed to a callback and every
	// SKU's final answer is on the availability topic.
	pub, err := watchAvailability(k, want)
	if err != nil {
		return Result{}, err
	}
	defer pub.close()
	var got atomic.Int64
	stateDir := filepath.Join(dir, "goka")
	popts := append(k.ProcessorOptions(), goka.WithLogger(quiet{}),
		goka.WithStorageBuilder(storage.DefaultBuilder(stateDir)),
		goka.WithContextWrapper(func(c goka.Context) goka.Context {
			if c.Topic() == schema.Supply {
				got.Add(1)
			}
			return c
		}))
	var coalescer stock.Coalescer
	if coalesce {
		bl, err := backlog.New(backlog.Options{Kafka: k})
		if err != nil {
			return Result{}, err
		}
		coalescer = bl
		popts = append(popts, goka.WithRebalanceCallback(bl.Rebalanced))
		bctx, stopBacklog := context.WithCancel(ctx)
		backlogDone := make(chan error, 1)
		go func() { backlogDone <- bl.Run(bctx) }()
		defer func() {
			stopBacklog()
			<-backlogDone
		}()
	}
	p, err := stock.New(k.Brokers, cfg, nil, coalescer, 0, popts...)
	if err != nil {
		return Result{}, err
	}
	r, err := runProcessor(ctx, p, &got, func() error { return produce(k, string(schema.Supply), keys, vals) }, o,
		func(ctx context.Context, stopped *stopSignal) error {
			if err := waitCount(ctx, &pub.matched, int64(len(want)), stopped); err != nil {
				return fmt.Errorf("final answers on availability: %w", err)
			}
			return nil
		})
	if err != nil {
		return r, err
	}
	r.Published = int(pub.messages.Load())
	// The processor has stopped: compact each partition's LevelDB so the
	// size is the live state, not overwritten versions awaiting compaction.
	tables, _ := filepath.Glob(filepath.Join(stateDir, string(schema.StockTable)+".*"))
	for _, t := range tables {
		db, err := leveldb.OpenFile(t, nil)
		if err != nil {
			return r, err
		}
		err = db.CompactRange(util.Range{})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return r, err
		}
		r.StateBytes += dirSize(t)
	}
	r.StateKeys = len(want)
	return r, nil
}

// finalAnswers folds the messages through the pure rules and returns each
// SKU's final answer version, as the processor must end up publishing it
// (no location policies: every location uses the defaults).
func finalAnswers(cfg inventory.Base, keys []string, vals [][]byte) (map[string]string, error) {
	states := map[string]inventory.State{}
	for i, v := range vals {
		ev, err := codecs.DecodeSupplyEvent(v)
		if err != nil {
			return nil, err
		}
		s, ok := states[keys[i]]
		if !ok {
			s = inventory.State{SKU: keys[i]}
		}
		if s, _, err = inventory.Apply(s, ev, time.Time{}); err != nil {
			return nil, err
		}
		states[keys[i]] = s
	}
	want := make(map[string]string, len(states))
	for sku, s := range states {
		pol, err := schema.Gather(s, func(string) (*pb.PolicyEvent, error) { return nil, nil }, cfg)
		if err != nil {
			return nil, err
		}
		want[sku] = inventory.Evaluate(s, pol, time.Time{}).Version
	}
	return want, nil
}

// availabilityWatch consumes the availability topic and counts the SKUs
// whose latest published answer is the wanted one.
type availabilityWatch struct {
	matched  atomic.Int64
	messages atomic.Int64
	close    func()
}

func watchAvailability(k kafkacfg.Options, want map[string]string) (*availabilityWatch, error) {
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		return nil, err
	}
	w := &availabilityWatch{close: func() { c.Close() }}
	var mu sync.Mutex
	at := map[string]bool{} // SKU -> latest published answer is the wanted one
	for p := range int32(k.Partitions) {
		pc, err := c.ConsumePartition(string(schema.Availability), p, sarama.OffsetOldest)
		if err != nil {
			c.Close()
			return nil, err
		}
		go func() {
			for m := range pc.Messages() {
				w.messages.Add(1)
				var a pb.Availability
				ok := proto.Unmarshal(m.Value, &a) == nil && a.GetVersion() == want[string(m.Key)]
				mu.Lock()
				if was := at[string(m.Key)]; was != ok {
					at[string(m.Key)] = ok
					if ok {
						w.matched.Add(1)
					} else {
						w.matched.Add(-1)
					}
				}
				mu.Unlock()
			}
		}()
	}
	return w, nil
}

// runProcessor starts p, waits until it is running, produces, and times
// from the first produce until every message was handed to a callback and
// every done function has returned.
func runProcessor(ctx context.Context, p *goka.Processor, got *atomic.Int64, produce func() error, o Options, done ...func(context.Context, *stopSignal) error) (Result, error) {
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
	start := time.Now()
	perr := make(chan error, 1)
	go func() { perr <- produce() }()
	if err := waitCount(ctx, got, int64(o.Messages), stopped); err != nil {
		return Result{}, err
	}
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "all messages handed to callbacks after %s\n", time.Since(start))
	}
	// Whatever else a scenario waits for, it fails rather than hangs when
	// the processor stops or nothing happens for minutes.
	dctx, cancelWait := context.WithTimeout(ctx, 5*time.Minute)
	defer cancelWait()
	for _, d := range done {
		if err := d(dctx, stopped); err != nil {
			return Result{}, err
		}
	}
	elapsed := time.Since(start)
	if err := <-perr; err != nil {
		return Result{}, err
	}
	return Result{Seconds: elapsed.Seconds()}, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func distinct(keys []string) int {
	m := map[string]struct{}{}
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return len(m)
}

// quiet discards goka's own log lines, which would mix into the table.
type quiet struct{}

func (quiet) Print(...any)          {}
func (quiet) Println(...any)        {}
func (quiet) Printf(string, ...any) {}
