// Package orders is the order saga group, keyed by order id: it turns a
// placed order into one reservation request per line on the demand topic,
// collects the outcomes, and ends with every line reserved or none held,
// releasing (compensating) accepted lines when a line fails, the order is
// cancelled or its decision deadline passes. A reserved order is extended
// (ReservationExtended per line), ships in parts (ReservationFulfilled per
// fulfilment line) or ends expired when its hold runs out. Its state lives
// in its own table; the rules are inventory.ApplyOrder.
package orders

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors"
	"github.com/skuflow/skuflow/processors/deadletter"
	"github.com/skuflow/skuflow/schema"
)

// Define returns the group graph. An order tick whose time is more than
// skew (0 or less: no limit; callers pass inventory.EventSkew of what is
// configured) ahead of its message's time is dead-lettered, as is any
// message without a usable timestamp.
func Define(log *slog.Logger, skew time.Duration) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{log: log.With("group", string(schema.OrdersGroup)), skew: skew}
	return goka.DefineGroup(schema.OrdersGroup,
		goka.Input(schema.Orders, schema.BytesCodec, deadletter.Handle(h.log, h.command)),
		goka.Input(schema.Outcomes, schema.BytesCodec, deadletter.Handle(h.log, h.outcome)),
		goka.Persist(schema.OrderCodec),
		goka.Output(schema.Demand, schema.BytesCodec),
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

func (h handler) command(ctx goka.Context, raw []byte) error {
	in, id, err := codecs.DecodeOrderCommand(raw)
	if err != nil {
		return deadletter.Reject(err)
	}
	if id != ctx.Key() {
		return deadletter.Rejectf("message key %q differs from the command's order id %q", ctx.Key(), id)
	}
	// The message time is the saga's clock: an absent one is a bad
	// timestamp. A tick from the future would time out or expire the order
	// early. The audit's fold applies the same check.
	if err := inventory.CheckOrderTimes(in, ctx.Timestamp(), h.skew); err != nil {
		return deadletter.Reject(err)
	}
	at := ctx.Timestamp()
	if t, ok := in.(inventory.OrderTick); ok {
		at = t.At
	}
	return h.apply(ctx, in, at)
}

func (h handler) outcome(ctx goka.Context, raw []byte) error {
	o, err := codecs.DecodeOutcome(raw)
	if err != nil {
		return deadletter.Reject(err)
	}
	if o.OrderID != ctx.Key() {
		return deadletter.Rejectf("message key %q differs from the outcome's order id %q", ctx.Key(), o.OrderID)
	}
	if err := inventory.CheckOrderTimes(o, ctx.Timestamp(), h.skew); err != nil {
		return deadletter.Reject(err)
	}
	return h.apply(ctx, o, ctx.Timestamp())
}

// apply runs the saga rule and performs its effects; the rule's errors
// reject the input.
func (h handler) apply(ctx goka.Context, in any, at time.Time) error {
	cur, found := ctx.Value().(inventory.Order)
	next, eff, res, err := inventory.ApplyOrder(cur, found, in, at)
	if err != nil {
		return deadletter.Reject(err)
	}
	processors.Store(ctx, next, res.Changed)
	for _, r := range eff.Requests {
		h.emitDemand(ctx, r)
	}
	for _, r := range eff.Releases {
		h.emitDemand(ctx, r)
	}
	for _, x := range eff.Extensions {
		h.emitDemand(ctx, x)
	}
	for _, f := range eff.Fulfilments {
		h.emitDemand(ctx, f)
	}
	return nil
}

func (h handler) emitDemand(ctx goka.Context, ev inventory.Event) {
	env, err := codecs.DemandEventToProto(ev)
	if err == nil {
		var b []byte
		b, err = codecs.MarshalDeterministic(env)
		if err == nil {
			ctx.Emit(schema.Demand, ev.EventSKU(), b)
			return
		}
	}
	ctx.Fail(fmt.Errorf("encode demand event: %w", err))
}
