// Package policies is the policies processor group: it folds location-wide
// and merchant-wide policies (eligibility, closure, safety-stock default,
// merchant staleness TTL) into a table keyed "location/<id>" or
// "merchant/<id>", newest as_of wins. The stock processor reads it with
// goka.Lookup and the gateway with a view, so a policy change applies to
// every SKU at once without touching any SKU's data.
package policies

import (
	"log/slog"
	"time"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/processors"
	"github.com/skuflow/skuflow/processors/deadletter"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Define returns the group graph. A policy whose as_of is more than skew
// (0 or less: no limit; callers pass inventory.EventSkew of what is
// configured) ahead of its message's time is dead-lettered, as is one
// whose message has no usable timestamp.
func Define(log *slog.Logger, skew time.Duration) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{log: log.With("group", string(schema.PoliciesGroup)), skew: skew}
	return goka.DefineGroup(schema.PoliciesGroup,
		goka.Input(schema.Policies, schema.BytesCodec, deadletter.Handle(h.log, h.policy)),
		goka.Persist(schema.PolicyCodec),
		deadletter.Output(),
	)
}

// New builds the processor.
func New(brokers []string, log *slog.Logger, skew time.Duration, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	return processors.NewProcessor(brokers, Define(log, skew), opts...)
}

type handler struct {
	log  *slog.Logger
	skew time.Duration
}

// policy folds one policy event into the table; every error is the
// input's (fold is pure), so dead-lettered.
func (h handler) policy(ctx goka.Context, raw []byte) error {
	ev, err := codecs.DecodePolicyEvent(raw)
	if err != nil {
		return deadletter.Reject(err)
	}
	// A policy from the future would win over every real one for good. The
	// message time it is checked against must be there: an absent one
	// (sarama's zero time) is a bad timestamp, not a future as_of. The
	// audit's fold applies the same check.
	if err := codecs.CheckPolicyTimes(ev, ctx.Timestamp(), h.skew); err != nil {
		return deadletter.Reject(err)
	}
	next, changed, err := schema.FoldPolicy(ctx.Key(), ev, current(ctx))
	if err != nil {
		return deadletter.Reject(err)
	}
	processors.Store(ctx, next, changed)
	return nil
}

func current(ctx goka.Context) *pb.PolicyEvent {
	cur, _ := ctx.Value().(*pb.PolicyEvent)
	return cur
}
