package ops_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/ops"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
)

// The drill of topology.md's "re-processing after a bug fix": a backlog
// builds while the process is stopped (the fix being deployed), the stock
// group is replayed from a time before the bug onto its existing table,
// and the restarted process works through everything: status shows the
// lag falling to 0 and the table answers what the pure fold of every event
// answers.
func TestDrillReprocessAfterBugFix(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	stop := startProcess(t, k, dir)

	early := genEvents(rng, "early", 20, 200)
	emitEvents(t, k, early)
	bugFrom := nextMilli()
	buggy := genEvents(rng, "buggy", 20, 200) // processed by the faulty release
	emitEvents(t, k, buggy)
	caughtUp := func(r ops.Report) error {
		if g := stockStatus(r); len(g.Members) != 1 || g.Lag != 0 || g.TopicLag(supply) != 0 {
			return fmt.Errorf("stock group %s, %d members, lag %d", g.State, len(g.Members), g.Lag)
		}
		if h := stockStatus(r).Inputs; len(h) == 0 {
			return fmt.Errorf("no inputs yet")
		}
		return nil
	}
	waitStatus(t, k, "first release caught up", caughtUp)
	stop()
	waitStatus(t, k, "stock group empty", func(r ops.Report) error {
		if g := stockStatus(r); len(g.Members) != 0 {
			return fmt.Errorf("%d members", len(g.Members))
		}
		return nil
	})

	backlog := genEvents(rng, "backlog", 20, 2000) // arrives while the fix is deployed
	emitEvents(t, k, backlog)
	plan, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: stockGrp, ToTime: bugFrom})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var again int64
	for _, m := range plan.Partitions {
		again += m.Reprocessed()
	}
	if again != int64(len(buggy)) {
		t.Errorf("replay reads %d messages again, want the %d since the bug", again, len(buggy))
	}
	want := int64(len(buggy) + len(backlog))
	if lag := stockStatus(status(t, k)).Lag; lag != want {
		t.Fatalf("lag %d after the replay, want %d", lag, want)
	}

	startProcess(t, k, dir)
	lags := []int64{want}
	testkit.Eventually(t, 90*time.Second, func() error {
		r, err := ops.Status(context.Background(), ops.StatusOptions{Kafka: k})
		if err != nil {
			return err
		}
		if l := stockStatus(r).Lag; l != lags[len(lags)-1] {
			lags = append(lags, l)
		}
		return caughtUp(r)
	})
	t.Logf("stock lag as status saw it: %v", lags)
	for i := 1; i < len(lags); i++ {
		if lags[i] > lags[i-1] {
			t.Errorf("lag rose from %d to %d with no new input: %v", lags[i-1], lags[i], lags)
		}
	}
	all := append(append(append([]inventory.Event{}, early...), buggy...), backlog...)
	waitTable(t, stockView(t, k), foldAnswers(t, all))
}
