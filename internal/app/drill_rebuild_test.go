package app_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/ops"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// TestDrillRebuildFromScratch is issue 12's rebuild drill, following
// topology.md's "Rebuild from scratch" procedure on the embedded broker:
// events processed by one instance; then the stock table goes bad (wrong
// records written straight to its changelog, for SKUs whose later events
// cannot overwrite them: a location level stamped far in the future wins
// last-writer-wins); stop the process; delete the table's changelog topic
// and the instance's local caches of it; replay the stock group to the
// earliest offsets; start the process. Status shows the lag back to 0, and
// the rebuilt table (read with a fresh view) and the availability topic
// equal the pure fold of every input event, the SKUs that were wrong
// included.
func TestDrillRebuildFromScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	stockStatus := func() (ops.GroupStatus, error) {
		r, err := ops.Status(context.Background(), ops.StatusOptions{Kafka: k})
		if err != nil {
			return ops.GroupStatus{}, err
		}
		g, _ := r.Group(string(schema.StockGroup))
		return g, nil
	}
	waitStock := func(what string, members int) {
		t.Helper()
		testkit.Eventually(t, 60*time.Second, func() error {
			g, err := stockStatus()
			if err != nil {
				return err
			}
			if len(g.Members) != members || g.Lag != 0 || len(g.Inputs) == 0 {
				return fmt.Errorf("%s: stock group %s, %d members (want %d), lag %d", what, g.State, len(g.Members), members, g.Lag)
			}
			return nil
		})
	}
	dir := t.TempDir()
	process := func() context.CancelFunc {
		return testkit.Go(t, func(ctx context.Context) error {
			return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: dir,
				ReconcileEvery: time.Second, Coalescing: app.DefaultCoalescing, Logger: drillLog})
		})
	}

	rng := rand.New(rand.NewPCG(12, 4))
	first := withDuplicatesShuffled(rng, genEvents(rng, 100, 2000))
	stop := process()
	emitJSON(t, k, first)
	waitStock("events processed", 1)
	stop()
	waitStock("stock group empty", 0)

	// The bad table: for a few SKUs, a record that is not the fold of
	// their events, with a level stamped far in the future that no later
	// event overwrites (last writer wins by source time). The restarted
	// instance recovers it into its cache and builds on it.
	fixed := foldStates(t, first)
	var skus []string
	for sku := range fixed {
		skus = append(skus, sku)
	}
	slices.Sort(skus)
	bad := map[string]inventory.State{}
	for _, sku := range skus[:10] {
		s, _, err := inventory.Apply(fixed[sku], inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 9999,
			AsOf: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), Sequence: 1}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		bad[sku] = s
	}
	produceTable(t, k, bad)
	stop = process()
	later := genEvents(rng, 100, 500)
	emitJSON(t, k, later)
	waitStock("later events processed onto the bad table", 1)
	all := slices.Concat(first, later)
	want := foldStates(t, all)
	wrong := maps.Clone(want)
	for sku, s := range bad {
		for _, e := range later {
			if e.EventSKU() == sku {
				var err error
				if s, _, err = inventory.Apply(s, e, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		wrong[sku] = s
		wb, err := schema.StateCodec.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := schema.StateCodec.Encode(want[sku])
		if err != nil {
			t.Fatal(err)
		}
		if string(wb) == string(rb) {
			t.Fatalf("the bad record of %s equals the fold of its events: the drill would show nothing", sku)
		}
	}
	// A gateway reading the table (here a view of it) is stopped too: the
	// procedure stops every serve before the changelog goes, since a view
	// still running would skip the new changelog's records and keep
	// serving the old values.
	badView, stopView := stockView(t, k)
	waitTable(t, badView, wrong, skus, "the bad table after later events")
	stopView()
	stop()
	waitStock("stock group empty", 0)

	// The procedure: delete the table's changelog topic, then the local
	// caches of it (the group's processor directory and the reconciler's
	// views), replay the group to the earliest offsets, start the process.
	adm := kadm.NewClient(mustKgo(t, k))
	table := string(schema.StockTable)
	resp, err := adm.DeleteTopics(context.Background(), table)
	if err != nil {
		t.Fatalf("delete %s: %v", table, err)
	}
	if r, err := resp.On(table, nil); err != nil || r.Err != nil {
		t.Fatalf("delete %s: %v %v", table, err, r.Err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		td, err := adm.ListTopics(context.Background())
		if err != nil {
			return err
		}
		if td.Has(table) {
			return fmt.Errorf("topic %s still listed", table)
		}
		return nil
	})
	for _, cache := range []string{filepath.Join(dir, "processors", string(schema.StockGroup)), filepath.Join(dir, "reconciler")} {
		if _, err := os.Stat(cache); err != nil {
			t.Fatalf("local cache %s: %v", cache, err)
		}
		if err := os.RemoveAll(cache); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: string(schema.StockGroup), ToEarliest: true})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var again int64
	for _, m := range plan.Partitions {
		if m.Topic == string(schema.Supply) {
			again += m.Reprocessed()
		}
	}
	if again != int64(len(all)) {
		t.Errorf("replay reads %d supply messages again, want all %d", again, len(all))
	}
	process()
	waitStock("rebuilt", 1)

	// The rebuilt table and the availability topic equal the pure fold,
	// the SKUs that were wrong included.
	after, _ := stockView(t, k)
	waitTable(t, after, want, slices.Sorted(maps.Keys(want)), "the rebuilt table")
	waitPublished(t, availabilityView(t, k), model(all))
}

// foldStates is the pure fold of evs per SKU.
func foldStates(t *testing.T, evs []inventory.Event) map[string]inventory.State {
	t.Helper()
	states := map[string]inventory.State{}
	for _, e := range evs {
		s, _, err := inventory.Apply(states[e.EventSKU()], e, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		states[e.EventSKU()] = s
	}
	return states
}

// produceTable writes states to the stock table's changelog, keyed and
// partitioned as goka writes it.
func produceTable(t *testing.T, k kafkaOpts, states map[string]inventory.State) {
	t.Helper()
	c := k.Sarama()
	c.Producer.Partitioner = schema.Partitioner()
	c.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(k.Brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for sku, s := range states {
		v, err := schema.StateCodec.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(schema.StockTable),
			Key: sarama.StringEncoder(sku), Value: sarama.ByteEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}
}

func mustKgo(t *testing.T, k kafkaOpts) *kgo.Client {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// stockView is a fresh view of the stock table on its own data directory.
func stockView(t *testing.T, k kafkaOpts) (*views.Stock, func()) {
	t.Helper()
	sv, err := views.NewStock(k.Brokers, append(k.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	return sv, testkit.Go(t, sv.Run)
}

// waitTable waits until the view holds want's state for every SKU, byte
// for byte as the codec encodes it.
func waitTable(t *testing.T, v *views.Stock, want map[string]inventory.State, skus []string, what string) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() error {
		var wrong []string
		for _, sku := range skus {
			w := want[sku]
			got, found, err := v.Get(sku)
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
			return fmt.Errorf("%s: %d of %d SKUs differ from what they must hold, e.g. %s", what, len(wrong), len(skus), wrong[0])
		}
		return nil
	})
}
