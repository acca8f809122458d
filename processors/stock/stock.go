// Package stock is the stock processor group: keyed by SKU, it folds supply
// events and SKU policies into each SKU's inventory.State (its group table,
// a compacted changelog in Kafka and LevelDB locally), reads location and
// merchant policies from the policies table with goka.Lookup, and publishes
// the SKU's answer to the compacted availability topic whenever it changes.
package stock

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors"
	"github.com/skuflow/skuflow/processors/deadletter"
	"github.com/skuflow/skuflow/processors/policies"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

const (
	// Group is the goka group; its table is Table.
	Group goka.Group = "skuflow-stock"
	// SupplyTopic carries skuflow.v1.SupplyEvent keyed by SKU.
	SupplyTopic goka.Stream = "supply"
	// SkuPoliciesTopic carries skuflow.v1.SkuPolicyEvent keyed by SKU.
	SkuPoliciesTopic goka.Stream = "sku-policies"
	// TicksTopic carries skuflow.v1.StockTick keyed by SKU: the
	// reconciler's requests to expire due reservations and re-publish.
	TicksTopic goka.Stream = "stock-ticks"
	// DemandTopic carries skuflow.v1.DemandEvent keyed by SKU: reservation
	// requests, releases and fulfilments.
	DemandTopic goka.Stream = "demand"
	// OutcomesTopic carries skuflow.v1.ReservationOutcome keyed by order id.
	OutcomesTopic goka.Stream = "reservation-outcomes"
	// AvailabilityTopic carries skuflow.v1.Availability keyed by SKU,
	// compacted: the latest answer per SKU, published only on change.
	AvailabilityTopic goka.Stream = "availability"
)

// Table is the group table: inventory.State per SKU.
var Table = goka.GroupTable(Group)

// Topics the group needs before it starts. The table's changelog is listed
// too, so views can start before the processor has run once.
var Topics = []kafkacfg.Topic{
	{Name: string(Table), Compacted: true},
	{Name: string(SupplyTopic)},
	{Name: string(SkuPoliciesTopic)},
	{Name: string(TicksTopic)},
	{Name: string(DemandTopic)},
	{Name: string(OutcomesTopic)},
	{Name: string(AvailabilityTopic), Compacted: true},
	{Name: string(deadletter.Topic)},
}

// Config is what the answers depend on besides events.
type Config struct {
	// Channels to answer for.
	Channels []string
	// DefaultStaleAfter is the merchant TTL where a merchant sets none.
	DefaultStaleAfter time.Duration
}

// Policies returns the base inventory.Policies of the configuration.
func (c Config) Policies() inventory.Policies {
	return inventory.Policies{Channels: c.Channels, DefaultStaleAfter: c.DefaultStaleAfter}
}

// Define returns the group graph. With a Backlog (nil: none) the processor
// holds back publishing while it is far behind its inputs; see Backlog.
func Define(cfg Config, log *slog.Logger, b *Backlog) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{log: log.With("group", string(Group)), cfg: cfg, backlog: b, states: newStates()}
	return goka.DefineGroup(Group,
		goka.Input(SupplyTopic, new(codec.Bytes), h.event(codecs.DecodeSupplyEvent)),
		goka.Input(SkuPoliciesTopic, new(codec.Bytes), h.event(codecs.DecodeSkuPolicyEvent)),
		goka.Input(TicksTopic, new(codec.Bytes), h.tick),
		goka.Input(DemandTopic, new(codec.Bytes), h.demand),
		goka.Lookup(policies.Table, codecs.PolicyTable),
		goka.Persist(codecs.State{}),
		goka.Output(AvailabilityTopic, codecs.Availability),
		goka.Output(OutcomesTopic, codecs.Outcome),
		deadletter.Output(),
	)
}

// New builds the processor. Pass kafka.ProcessorOptions() for a real cluster,
// or goka.WithTester in unit tests. b may be nil; otherwise run it beside
// the processor and pass b.Rebalanced to goka.WithRebalanceCallback.
func New(brokers []string, cfg Config, log *slog.Logger, b *Backlog, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	return processors.NewProcessor(brokers, Define(cfg, log, b), opts...)
}

type handler struct {
	log     *slog.Logger
	cfg     Config
	backlog *Backlog
	states  *states
}

// event is the callback for SKU-keyed event topics: decode, apply, store,
// publish the answer if it changed.
func (h handler) event(decode func([]byte) (inventory.Event, error)) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) {
		h.backlog.claim(ctx.Partition(), ctx.Context())
		behind := h.backlog.observe(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
		raw, ev, ok := h.decode(ctx, msg, decode)
		if !ok {
			return
		}
		prev := h.state(ctx)
		next, res, err := inventory.Apply(prev, ev, eventTime(ctx))
		if err != nil {
			deadletter.Send(ctx, h.log, raw, err.Error())
			return
		}
		h.states.store(ctx, next, res.Changed)
		if res.Changed {
			h.publish(ctx, prev, next, nil, eventTime(ctx), behind)
		}
	}
}

// demand decides reservation requests and applies releases and
// fulfilments. Every request gets its outcome on the outcomes topic, a
// duplicate the recorded one again (the first may have been lost in a crash
// between the table write and the emit).
func (h handler) demand(ctx goka.Context, msg any) {
	h.backlog.claim(ctx.Partition(), ctx.Context())
	behind := h.backlog.observe(string(ctx.Topic()), ctx.Partition(), ctx.Offset())
	raw, ev, ok := h.decode(ctx, msg, codecs.DecodeDemandEvent)
	if !ok {
		return
	}
	prev := h.state(ctx)
	pol := h.policies(ctx, prev)
	next, out, res, err := inventory.Demand(prev, ev, pol, eventTime(ctx))
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	h.states.store(ctx, next, res.Changed)
	if res.Changed {
		h.publish(ctx, prev, next, &pol, eventTime(ctx), behind)
	}
	if out != nil {
		ctx.Emit(OutcomesTopic, out.OrderID, codecs.OutcomeToProto(*out))
	}
}

// decode turns an input message into a domain event of the message's SKU,
// dead-lettering it (ok false) when it is a tombstone, undecodable, keyed
// by another SKU, or timestamped outside 1970–2200.
func (h handler) decode(ctx goka.Context, msg any, decode func([]byte) (inventory.Event, error)) ([]byte, inventory.Event, bool) {
	raw, ok := deadletter.Value(ctx, h.log, msg)
	if !ok {
		return nil, nil, false
	}
	ev, err := decode(raw)
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return nil, nil, false
	}
	// The message time is the processor's clock (a reservation's decision
	// and expiry, the time an answer is evaluated at); one outside the
	// times the domain stores exactly would make replays diverge.
	if inventory.ValidateTime("message timestamp", eventTime(ctx)) != nil {
		deadletter.Send(ctx, h.log, raw, fmt.Sprintf("message timestamp %s is outside (1970-01-01, 2200-01-01)", eventTime(ctx).Format(time.RFC3339Nano)))
		return nil, nil, false
	}
	if ev.EventSKU() != ctx.Key() {
		deadletter.Send(ctx, h.log, raw, fmt.Sprintf("message key %q differs from the event's sku %q", ctx.Key(), ev.EventSKU()))
		return nil, nil, false
	}
	return raw, ev, true
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
	if behind && h.backlog.extend(p, sku, at) {
		return
	}
	if pol == nil {
		pl := h.policies(ctx, next)
		pol = &pl
	}
	if d, ok := h.backlog.take(p, sku); ok {
		// No earlier than a reconciler tick the deferral absorbed.
		h.emitIfNew(ctx, inventory.Evaluate(next, *pol, latest(at, d.at)), d.before)
		return
	}
	before := inventory.Evaluate(prev, *pol, at).Version
	if behind {
		h.backlog.hold(p, sku, before, at)
		return
	}
	h.emitIfNew(ctx, inventory.Evaluate(next, *pol, at), before)
}

// emitIfNew publishes snap unless its version is published.
func (h handler) emitIfNew(ctx goka.Context, snap inventory.Snapshot, published string) {
	if snap.Version != published {
		ctx.Emit(AvailabilityTopic, ctx.Key(), codecs.SnapshotToProto(snap))
	}
}

// tick expires the SKU's due reservations at the tick's time, re-evaluates
// it then, and publishes the answer if it differs from the version the
// reconciler saw published. While the SKU's answer is deferred, the
// deferral publishes it instead, evaluated no earlier than the tick's time
// and compared with the version the reconciler saw.
func (h handler) tick(ctx goka.Context, msg any) {
	h.backlog.claim(ctx.Partition(), ctx.Context())
	raw, ok := deadletter.Value(ctx, h.log, msg)
	if !ok {
		return
	}
	t, err := codecs.DecodeStockTick(raw)
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	if t.GetSku() != ctx.Key() {
		deadletter.Send(ctx, h.log, raw, fmt.Sprintf("message key %q differs from the tick's sku %q", ctx.Key(), t.GetSku()))
		return
	}
	if t.GetDeferred() {
		h.flush(ctx)
		return
	}
	s, ok := h.states.get(ctx)
	if !ok {
		return // nothing known about this SKU: nothing to publish
	}
	at := t.GetAt().AsTime()
	s, res := inventory.Expire(s, at)
	h.states.store(ctx, s, res.Changed)
	if h.backlog.reconciled(ctx.Partition(), ctx.Key(), at, t.GetPublishedVersion()) {
		return
	}
	h.emitIfNew(ctx, inventory.Evaluate(s, h.policies(ctx, s), at), t.GetPublishedVersion())
}

// flush handles the Backlog's deferred tick: it publishes the SKU's
// deferred answer, evaluated at the latest deferred change's time, if it
// differs from the answer before the deferral. Without a deferral here
// (already published by a later change, or deferred by the instance that
// owned the partition before a rebalance, whose loss the reconciler heals)
// it does nothing. It writes nothing to the table.
func (h handler) flush(ctx goka.Context) {
	d, ok := h.backlog.take(ctx.Partition(), ctx.Key())
	if !ok {
		return
	}
	s, ok := h.states.get(ctx)
	if !ok {
		return
	}
	h.emitIfNew(ctx, inventory.Evaluate(s, h.policies(ctx, s), d.at), d.before)
}

// policies gathers the location and merchant policies of s's locations
// from the policies table.
func (h handler) policies(ctx goka.Context, s inventory.State) inventory.Policies {
	pol, err := policies.Gather(s, func(key string) (*pb.PolicyEvent, error) {
		v, _ := ctx.Lookup(policies.Table, key).(*pb.PolicyEvent)
		return v, nil
	}, h.cfg.Policies())
	if err != nil {
		// The policies table holds only values its own processor validated;
		// a value that does not decode is a bug or corruption, not input.
		ctx.Fail(fmt.Errorf("policies for sku %q: %w", ctx.Key(), err))
	}
	return pol
}

// state returns the SKU's state, or an empty state.
func (h handler) state(ctx goka.Context) inventory.State {
	if s, ok := h.states.get(ctx); ok {
		return s
	}
	return inventory.State{SKU: ctx.Key()}
}

// eventTime is the message's timestamp in UTC. sarama gives it in the local
// zone; the domain compares times zone-blind, but a state stored with UTC
// times is deep-equal to its own decoding, which the remembered states
// rely on (see states).
func eventTime(ctx goka.Context) time.Time { return ctx.Timestamp().UTC() }

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
