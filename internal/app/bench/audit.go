package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/skuflow/skuflow/internal/audit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

func init() {
	scenarios["audit"] = scenario{"skuflow audit: read the supply log from the start and fold it through inventory/ (events/s)", runAudit}
	order = append(order, "audit")
}

// runAudit publishes the supply messages and times one audit of them:
// reading every input topic from the start and folding it. No processor
// runs, so the comparison with the (empty) tables is skipped as behind;
// what is measured is the read and the fold.
func runAudit(ctx context.Context, o Options, dir string) (Result, error) {
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
	if err := produce(k, string(schema.Supply), keys, vals); err != nil {
		return Result{}, err
	}
	start := time.Now()
	rep, err := audit.Run(ctx, audit.Options{Kafka: k, Base: inventory.DefaultBase()})
	if err != nil {
		return Result{}, err
	}
	secs := time.Since(start).Seconds()
	if rep.Events != int64(o.Messages) {
		return Result{}, fmt.Errorf("audit folded %d events, want %d", rep.Events, o.Messages)
	}
	return Result{Messages: int(rep.Events), Seconds: secs, StateKeys: rep.SKUs,
		Detail: fmt.Sprintf("%d SKUs folded; %d messages read in all", rep.SKUs, rep.Read)}, nil
}
