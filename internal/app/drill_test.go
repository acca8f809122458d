package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/ops"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// TestDrillReplayFloodOneThenTwoInstances is issue 12's replay-flood drill
// on the embedded broker: events processed by one instance; a backlog
// while it is stopped; the stock group replayed from a time before the
// last processed batch (ops.Replay); one instance started, then a second
// one (recovering ahead, as the README's procedure to add an instance
// during a flood says); status shows the lag falling and both instances
// sharing the partitions; the stock table and the availability topic end
// equal to the pure fold of every event. SKUFLOW_DRILL_EVENTS sets the
// backlog's size (default 8000).
func TestDrillReplayFloodOneThenTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	n := 8000
	if v := os.Getenv("SKUFLOW_DRILL_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			t.Fatalf("SKUFLOW_DRILL_EVENTS=%q: want a number of events >= 100", v)
		}
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	mon, err := ops.NewMonitor(ops.StatusOptions{Kafka: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mon.Close)
	stockStatus := func() (ops.GroupStatus, error) {
		r, err := mon.Report(context.Background())
		if err != nil {
			return ops.GroupStatus{}, err
		}
		g, _ := r.Group(string(schema.StockGroup))
		return g, nil
	}
	waitStock := func(what string, cond func(ops.GroupStatus) error) {
		t.Helper()
		testkit.Eventually(t, 90*time.Second, func() error {
			g, err := stockStatus()
			if err != nil {
				return err
			}
			if err := cond(g); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	process := func(dir string, standby app.Standby) context.CancelFunc {
		return testkit.Go(t, func(ctx context.Context) error {
			return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: dir,
				ReconcileEvery: time.Second, Coalescing: app.DefaultCoalescing, Standby: standby, Logger: drillLog})
		})
	}
	caughtUp := func(members int) func(ops.GroupStatus) error {
		return func(g ops.GroupStatus) error {
			if len(g.Members) != members || g.Lag != 0 || len(g.Inputs) == 0 {
				return fmt.Errorf("stock group %s, %d members (want %d), lag %d", g.State, len(g.Members), members, g.Lag)
			}
			return nil
		}
	}

	rng := rand.New(rand.NewPCG(12, 3))
	early := genEvents(rng, 200, 1000)
	buggy := genEvents(rng, 200, 1000) // processed by a faulty release
	backlog := withDuplicatesShuffled(rng, genEvents(rng, 200, n))

	stopA := process(dirA, app.Standby{})
	emitJSON(t, k, early)
	waitStock("early events processed", caughtUp(1))
	from := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	for time.Now().Before(from) { // at most a millisecond: every buggy event is stamped at or after from
	}
	emitJSON(t, k, buggy)
	waitStock("buggy release caught up", caughtUp(1))
	stopA()
	waitStock("stock group empty", caughtUp(0))

	// The flood: a backlog arrives while the fix is deployed, and the stock
	// group is rewound to the start of the faulty release.
	emitJSON(t, k, backlog)
	plan, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: string(schema.StockGroup), ToTime: from})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var again int64
	for _, m := range plan.Partitions {
		if m.Topic == string(schema.Supply) { // the stock ticks the coalescer sent are replayed too
			again += m.Reprocessed()
		}
	}
	if again != int64(len(buggy)) {
		t.Errorf("replay reads %d messages again, want the %d since %s", again, len(buggy), from.Format(time.RFC3339Nano))
	}
	want := int64(len(buggy) + len(backlog))
	g, err := stockStatus()
	if err != nil {
		t.Fatal(err)
	}
	if l := g.TopicLag(string(schema.Supply)); l != want {
		t.Fatalf("supply lag %d after the replay, want %d", l, want)
	}

	// One instance, then a second once the first is working.
	type seen struct {
		lag     int64
		members int
	}
	// Only the supply topic's lag must fall: while coalescing, the
	// processors send themselves stock ticks, which are new input.
	supply := string(schema.Supply)
	trace := []seen{{g.TopicLag(supply), 0}}
	watch := func(g ops.GroupStatus) {
		if last := trace[len(trace)-1]; last.lag != g.TopicLag(supply) || last.members != len(g.Members) {
			trace = append(trace, seen{g.TopicLag(supply), len(g.Members)})
		}
	}
	process(dirA, app.Standby{})
	waitStock("first instance working", func(g ops.GroupStatus) error {
		watch(g)
		if len(g.Members) != 1 || g.TopicLag(supply) == want {
			return fmt.Errorf("stock group %s, %d members, lag %d", g.State, len(g.Members), g.Lag)
		}
		return nil
	})
	process(dirB, app.Standby{RecoverAhead: true})
	waitStock("two instances sharing the partitions, caught up", func(g ops.GroupStatus) error {
		watch(g)
		if err := caughtUp(2)(g); err != nil {
			return err
		}
		owners := map[string]int{}
		for _, p := range g.Inputs {
			owners[p.Owner]++
		}
		if g.State != "Stable" || len(owners) != 2 || owners[""] > 0 {
			return fmt.Errorf("stock group %s, partitions per owner %v", g.State, owners)
		}
		return nil
	})
	t.Logf("stock group's supply lag and members as status saw them: %v", trace)
	for i := 1; i < len(trace); i++ {
		if trace[i].lag > trace[i-1].lag {
			t.Errorf("supply lag rose from %d to %d with no new supply: %v", trace[i-1].lag, trace[i].lag, trace)
		}
	}
	// One instance works through the backlog before the second joins (on
	// a fast machine it may drain it within one commit interval, so status
	// can go straight to 0); the two then share the partitions.
	if trace[len(trace)-1].lag != 0 || slices.IndexFunc(trace, func(s seen) bool { return s.members == 1 && s.lag < want }) < 0 {
		t.Errorf("status never showed one instance working through the backlog before the second joined: %v", trace)
	}

	// The availability topic and the stock table equal the pure fold.
	all := slices.Concat(early, buggy, backlog)
	waitPublished(t, availabilityView(t, k), model(all))
	sv, err := views.NewStock(k.Brokers, append(k.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, sv.Run)
	states := map[string]inventory.State{}
	for _, e := range all {
		s, _, err := inventory.Apply(states[e.EventSKU()], e, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		states[e.EventSKU()] = s
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		var wrong []string
		for sku, w := range states {
			got, found, err := sv.Get(sku)
			if err != nil {
				return err
			}
			gb, err := schema.StateCodec.Encode(got)
			if err != nil {
				return err
			}
			wb, err := schema.StateCodec.Encode(w)
			if err != nil {
				return err
			}
			if !found || string(gb) != string(wb) {
				wrong = append(wrong, sku)
			}
		}
		if len(wrong) > 0 {
			slices.Sort(wrong)
			return fmt.Errorf("%d of %d SKUs' table values differ from the pure fold, e.g. %s", len(wrong), len(states), wrong[0])
		}
		return nil
	})
}

var drillLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
