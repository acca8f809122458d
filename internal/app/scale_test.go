package app_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// TestScaleOutAndInDuringFlood floods the supply topic while a second
// processor instance joins, takes partitions and leaves again, with
// coalesced publishing on (a low lag threshold, so deferrals happen and
// move with their partitions). Afterwards every SKU's latest published
// answer and the first instance's table equal the pure rules folded over
// the events: nothing lost or doubled across the rebalances, and the states
// the first instance remembered before it lost a partition are not reused
// after it gets the partition back (the second wrote it meanwhile).
func TestScaleOutAndInDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	process := func(dir string, metrics net.Listener) context.CancelFunc {
		return testkit.Go(t, func(ctx context.Context) error {
			return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: dir,
				ReconcileEvery: time.Second, Coalescing: app.Coalescing{Lag: 20, MaxDefer: time.Minute}, MetricsListener: metrics})
		})
	}
	rng := rand.New(rand.NewPCG(5, 8))
	evs := genEvents(rng, 300, 12000)
	chunks := [][]inventory.Event{evs[:4000], evs[4000:8000], evs[8000:]}
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	avail := availabilityView(t, k)

	dirA, dirB := t.TempDir(), t.TempDir()
	metricsLn := listen(t)
	metrics := metricsLn.Addr().String()
	stopA := process(dirA, metricsLn)
	emitJSON(t, k, withDuplicatesShuffled(rng, chunks[0]))
	// Scale out: B joins while A is still working through the first chunk,
	// and takes over some partitions.
	stopB := process(dirB, nil)
	testkit.Eventually(t, 60*time.Second, func() error {
		if parts, _ := filepath.Glob(filepath.Join(dirB, "processors", string(schema.StockGroup), string(schema.StockTable)+".*")); len(parts) == 0 {
			return fmt.Errorf("no partition assigned to the second instance yet")
		}
		return nil
	})
	emitJSON(t, k, withDuplicatesShuffled(rng, chunks[1]))
	waitPublished(t, avail, model(evs[:8000]))
	// Scale in: B leaves; A takes back the partitions B wrote meanwhile.
	stopB()
	emitJSON(t, k, withDuplicatesShuffled(rng, chunks[2]))

	want := model(evs)
	waitPublished(t, avail, want)

	// Publishing was coalesced (the metrics are the test process's, so
	// both instances').
	waitMetric(t, metrics, "skuflow_stock_deferred_flushes_total")
	if n := metricValue(t, metrics, "skuflow_stock_deferred_flushes_total"); n == 0 {
		t.Error("no deferred ticks were sent: the flood was not coalesced")
	} else {
		t.Logf("%v deferred ticks for %d SKUs", n, len(want))
	}

	// A's table holds exactly the pure fold of each SKU's events.
	stopA()
	states := map[string]inventory.State{}
	for _, e := range evs {
		s, _, err := inventory.Apply(states[e.EventSKU()], e, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		states[e.EventSKU()] = s
	}
	table := dumpTables(t, dirA)
	seen := 0
	for key, v := range table {
		if strings.HasSuffix(key, "/__offset") {
			continue
		}
		sku := filepath.Base(key)
		want, err := codecs.State{}.Encode(states[sku])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, want) {
			t.Errorf("table value of %s differs from the fold of its events", sku)
		}
		seen++
	}
	if seen != len(states) {
		t.Errorf("table has %d SKUs, the events %d", seen, len(states))
	}
}

// waitPublished waits until every SKU's latest answer on the availability
// topic has the wanted version.
func waitPublished(t *testing.T, avail *views.Availability, want map[string]*pb.Availability) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, func() error {
		var wrong []string
		for sku, w := range want {
			got, err := avail.Get(sku)
			if err != nil {
				return err
			}
			if got.GetVersion() != w.GetVersion() {
				wrong = append(wrong, sku)
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d of %d SKUs' latest published answers differ from the rules, e.g. %s", len(wrong), len(want), wrong[0])
		}
		return nil
	})
}
