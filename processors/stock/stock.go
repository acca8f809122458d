// Package stock is the stock processor group: keyed by SKU, it folds supply
// events and SKU policies into each SKU's inventory.State (its group table,
// a compacted changelog in Kafka and LevelDB locally), reads location and
// merchant policies from the policies table with goka.Lookup, and publishes
// the SKU's answer to the compacted availability topic whenever it changes.
package stock

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors"
	"github.com/skuflow/skuflow/processors/backlog"
	"github.com/skuflow/skuflow/processors/deadletter"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Coalescer holds back availability publishing while an input partition
// works through a backlog; *backlog.Backlog implements it (see package
// backlog for the rules). The handler calls Claim on every message, Observe
// on every event, and one of Extend, Hold, Take or Reconciled on a publish
// path.
type Coalescer interface {
	// Claim ties partition p's deferrals to the ownership session (the
	// callback's ctx.Context()).
	Claim(p int32, session context.Context)
	// Observe records the offset reached on topic's partition p and
	// reports whether p is far enough behind its head to defer.
	Observe(topic string, p int32, offset int64) bool
	// Extend moves an existing deferral's evaluation time to at, and
	// reports whether sku was deferred.
	Extend(p int32, sku string, at time.Time) bool
	// Hold starts deferring sku's answer; before is the published version.
	Hold(p int32, sku, before string, at time.Time)
	// Take ends sku's deferral and returns it.
	Take(p int32, sku string) (backlog.Deferral, bool)
	// Reconciled absorbs a reconciler tick into sku's deferral, if any,
	// and reports whether there was one.
	Reconciled(p int32, sku string, at time.Time, published string) bool
}

// Define returns the group graph. With a Coalescer (nil: none) the
// processor holds back publishing while it is far behind its inputs. An
// event or tick whose own time is more than skew (0 or less: no limit;
// callers pass inventory.EventSkew of what is configured) ahead of its
// message's time is dead-lettered.
func Define(cfg inventory.Base, log *slog.Logger, c Coalescer, skew time.Duration) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c == nil {
		c = never{}
	}
	h := handler{log: log.With("group", string(schema.StockGroup)), cfg: cfg, backlog: c, states: backlog.NewStates[inventory.State](), skew: skew}
	return goka.DefineGroup(schema.StockGroup,
		goka.Input(schema.Supply, schema.BytesCodec, h.event(codecs.DecodeSupplyEvent)),
		goka.Input(schema.SkuPolicies, schema.BytesCodec, h.event(codecs.DecodeSkuPolicyEvent)),
		goka.Input(schema.StockTicks, schema.BytesCodec, h.tick),
		goka.Input(schema.Demand, schema.BytesCodec, h.observed(h.demand)),
		goka.Lookup(schema.PoliciesTable, schema.PolicyCodec),
		goka.Persist(schema.StateCodec),
		goka.Output(schema.Availability, schema.AvailabilityCodec),
		goka.Output(schema.Outcomes, schema.OutcomeCodec),
		deadletter.Output(),
	)
}

// New builds the processor. Pass kafka.ProcessorOptions() for a real cluster,
// or goka.WithTester in unit tests. c may be nil; a *backlog.Backlog must
// run beside the processor, with its Rebalanced passed to
// goka.WithRebalanceCallback.
func New(brokers []string, cfg inventory.Base, log *slog.Logger, c Coalescer, skew time.Duration, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	return processors.NewProcessor(brokers, Define(cfg, log, c, skew), opts...)
}

// never is the Coalescer of a processor without a backlog: no partition is
// ever behind, so nothing is deferred.
type never struct{}

func (never) Claim(int32, context.Context)                     {}
func (never) Observe(string, int32, int64) bool                { return false }
func (never) Extend(int32, string, time.Time) bool             { return false }
func (never) Hold(int32, string, string, time.Time)            {}
func (never) Take(int32, string) (backlog.Deferral, bool)      { return backlog.Deferral{}, false }
func (never) Reconciled(int32, string, time.Time, string) bool { return false }

type handler struct {
	log     *slog.Logger
	cfg     inventory.Base
	backlog Coalescer
	states  *backlog.States[inventory.State]
	skew    time.Duration
}

// observed is the callback of an input whose messages the Coalescer
// observes: every message, a tombstone too, claims its partition and
// records its offset; then deadletter.Process hands the message to fn,
// which learns whether the partition is behind and returns
// deadletter.Reject for bad input.
func (h handler) observed(fn func(ctx goka.Context, raw []byte, behind bool) error) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) {
		h.backlog.Claim(ctx.Partition(), ctx.Context())
		behind := h.backlog.Observe(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
		deadletter.Process(ctx, h.log, msg, func(ctx goka.Context, raw []byte) error { return fn(ctx, raw, behind) })
	}
}

// event is the callback for SKU-keyed event topics: decode, apply, store,
// publish the answer if it changed. Here, in demand and for ticks, an event
// that would grow the SKU's state past its limit (codecs.CheckStateGrowth:
// MaxStateBytes for a reservation request, HardStateBytes for a fact) is
// dead-lettered (reason class state_limit) and the state is left as it
// was: a state the changelog cannot store would stop the whole group.
func (h handler) event(decode func([]byte) (inventory.Event, error)) goka.ProcessCallback {
	return h.observed(func(ctx goka.Context, raw []byte, behind bool) error {
		ev, err := h.decode(ctx, raw, decode)
		if err != nil {
			return err
		}
		prev := h.state(ctx)
		next, res, err := inventory.Apply(prev, ev, eventTime(ctx))
		if err == nil && res.Changed {
			err = codecs.CheckStateGrowth(prev, next, codecs.IsRequest(ev))
		}
		if err != nil {
			return deadletter.Reject(err)
		}
		h.states.Store(ctx, next, res.Changed)
		if res.Changed {
			h.publish(ctx, prev, next, nil, eventTime(ctx), behind)
		}
		return nil
	})
}

// demand decides reservation requests and applies releases and
// fulfilments. Every request gets its outcome on the outcomes topic, a
// duplicate the recorded one again (the first may have been lost in a crash
// between the table write and the emit).
func (h handler) demand(ctx goka.Context, raw []byte, behind bool) error {
	ev, err := h.decode(ctx, raw, codecs.DecodeDemandEvent)
	if err != nil {
		return err
	}
	prev := h.state(ctx)
	pol := h.policies(ctx, prev)
	next, out, res, err := inventory.Demand(prev, ev, pol, eventTime(ctx))
	if err == nil && res.Changed {
		// A request refused here gets no outcome: its order saga fails it
		// at its decision timeout and releases its other lines.
		err = codecs.CheckStateGrowth(prev, next, codecs.IsRequest(ev))
	}
	if err != nil {
		return deadletter.Reject(err)
	}
	h.states.Store(ctx, next, res.Changed)
	if res.Changed {
		h.publish(ctx, prev, next, &pol, eventTime(ctx), behind)
	}
	if out != nil {
		ctx.Emit(schema.Outcomes, out.OrderID, codecs.OutcomeToProto(*out))
	}
	return nil
}

// decode turns an input message into a domain event of the message's SKU,
// rejecting it (bad input, dead-lettered) when it is undecodable, keyed by
// another SKU, timestamped outside 1970–2200, or carrying a source time
// more than the allowed skew ahead of the message's.
func (h handler) decode(ctx goka.Context, raw []byte, decode func([]byte) (inventory.Event, error)) (inventory.Event, error) {
	ev, err := decode(raw)
	if err != nil {
		return nil, deadletter.Reject(err)
	}
	if ev.EventSKU() != ctx.Key() {
		return nil, deadletter.Rejectf("message key %q differs from the event's sku %q", ctx.Key(), ev.EventSKU())
	}
	// The message time is the processor's clock (a reservation's decision
	// and expiry, the time an answer is evaluated at); one outside the
	// times the domain stores exactly would make replays diverge. The
	// event's own times may not run ahead of it. The audit's fold applies
	// the same check.
	if err := inventory.CheckEventTimes(ev, eventTime(ctx), h.skew); err != nil {
		return nil, deadletter.Reject(err)
	}
	return ev, nil
}

// publish publishes the SKU's answer after a change from prev to next at
// event time at, if the answer changed. While the input partition is
// behind (and a Backlog is set) it defers instead: the first deferred
// change records the answer before it, later ones only their time, and
// the first change once caught up, or the Backlog's deferred tick, publishes
// the answer if it differs from the one before the deferral. pol are the
// policies of next's locations, or nil to look them up only if needed.
func (h handler) publish(ctx goka.Context, prev, next inventory.State, pol *inventory.Policies, at time.Time, behind bool) {
	p, sku := ctx.Partition(), ctx.Key()
	if behind && h.backlog.Extend(p, sku, at) {
		return
	}
	if pol == nil {
		pl := h.policies(ctx, next)
		pol = &pl
	}
	if d, ok := h.backlog.Take(p, sku); ok {
		// No earlier than a reconciler tick the deferral absorbed.
		h.emitIfNew(ctx, inventory.Evaluate(next, *pol, latest(at, d.At)), d.Before)
		return
	}
	before := inventory.Evaluate(prev, *pol, at).Version
	if behind {
		h.backlog.Hold(p, sku, before, at)
		return
	}
	h.emitIfNew(ctx, inventory.Evaluate(next, *pol, at), before)
}

// emitIfNew publishes snap unless its version is published.
func (h handler) emitIfNew(ctx goka.Context, snap inventory.Snapshot, published string) {
	if snap.Version != published {
		ctx.Emit(schema.Availability, ctx.Key(), codecs.SnapshotToProto(snap))
	}
}

// tick expires the SKU's due reservations at the tick's time, re-evaluates
// it then, and publishes the answer if it differs from the version the
// reconciler saw published. While the SKU's answer is deferred, the
// deferral publishes it instead, evaluated no earlier than the tick's time
// and compared with the version the reconciler saw.
func (h handler) tick(ctx goka.Context, msg any) {
	h.backlog.Claim(ctx.Partition(), ctx.Context())
	deadletter.Process(ctx, h.log, msg, h.applyTick)
}

// applyTick is tick's work on a message that is not a tombstone.
func (h handler) applyTick(ctx goka.Context, raw []byte) error {
	t, err := codecs.DecodeStockTick(raw)
	if err != nil {
		return deadletter.Reject(err)
	}
	if t.GetSku() != ctx.Key() {
		return deadletter.Rejectf("message key %q differs from the tick's sku %q", ctx.Key(), t.GetSku())
	}
	// A tick from the future would expire holds its orders still count on.
	// The audit's fold applies the same check.
	if err := inventory.CheckTickTimes(t.GetAt().AsTime(), eventTime(ctx), h.skew); err != nil {
		return deadletter.Reject(err)
	}
	if t.GetDeferred() {
		h.flush(ctx)
		return nil
	}
	s, ok := h.states.Get(ctx)
	if !ok {
		return nil // nothing known about this SKU: nothing to publish
	}
	at := t.GetAt().AsTime()
	next, res := inventory.Expire(s, at)
	if res.Changed {
		if err := codecs.CheckStateGrowth(s, next, false); err != nil {
			return deadletter.Reject(err)
		}
	}
	s = next
	h.states.Store(ctx, s, res.Changed)
	if h.backlog.Reconciled(ctx.Partition(), ctx.Key(), at, t.GetPublishedVersion()) {
		return nil
	}
	h.emitIfNew(ctx, inventory.Evaluate(s, h.policies(ctx, s), at), t.GetPublishedVersion())
	return nil
}

// flush handles the Backlog's deferred tick: it publishes the SKU's
// deferred answer, evaluated at the latest deferred change's time, if it
// differs from the answer before the deferral. Without a deferral here
// (already published by a later change, or deferred by the instance that
// owned the partition before a rebalance, whose loss the reconciler heals)
// it does nothing. It writes nothing to the table.
func (h handler) flush(ctx goka.Context) {
	d, ok := h.backlog.Take(ctx.Partition(), ctx.Key())
	if !ok {
		return
	}
	s, ok := h.states.Get(ctx)
	if !ok {
		return
	}
	h.emitIfNew(ctx, inventory.Evaluate(s, h.policies(ctx, s), d.At), d.Before)
}

// policies gathers the location and merchant policies of s's locations
// from the policies table.
func (h handler) policies(ctx goka.Context, s inventory.State) inventory.Policies {
	pol, err := schema.Gather(s, func(key string) (*pb.PolicyEvent, error) {
		v, _ := ctx.Lookup(schema.PoliciesTable, key).(*pb.PolicyEvent)
		return v, nil
	}, h.cfg)
	if err != nil {
		// The policies table holds only values its own processor validated;
		// a value that does not decode is a bug or corruption, not input.
		ctx.Fail(fmt.Errorf("policies for sku %q: %w", ctx.Key(), err))
	}
	return pol
}

// state returns the SKU's state, or an empty state.
func (h handler) state(ctx goka.Context) inventory.State {
	if s, ok := h.states.Get(ctx); ok {
		return s
	}
	return inventory.State{SKU: ctx.Key()}
}

// eventTime is the message's timestamp in UTC. sarama gives it in the local
// zone; the domain compares times zone-blind, but a state stored with UTC
// times is deep-equal to its own decoding, which the remembered states
// rely on (see backlog.States).
func eventTime(ctx goka.Context) time.Time { return ctx.Timestamp().UTC() }

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
