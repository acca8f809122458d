// Package stock is the stock processor group: keyed by SKU, it folds supply
// events into each SKU's inventory.State (its group table, a compacted
// changelog in Kafka and LevelDB locally) and publishes the SKU's
// availability snapshot to the compacted availability topic whenever the
// answer changes.
package stock

import (
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/deadletter"
)

const (
	// Group is the goka group; its table is Table.
	Group goka.Group = "skuflow-stock"
	// SupplyTopic carries skuflow.v1.SupplyEvent keyed by SKU.
	SupplyTopic goka.Stream = "supply"
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
	{Name: string(AvailabilityTopic), Compacted: true},
	{Name: string(deadletter.Topic)},
}

// Define returns the group graph.
func Define(log *slog.Logger) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{log: log.With("group", string(Group))}
	return goka.DefineGroup(Group,
		goka.Input(SupplyTopic, new(codec.Bytes), h.supply),
		goka.Persist(codecs.State{}),
		goka.Output(AvailabilityTopic, codecs.Availability),
		deadletter.Output(),
	)
}

// New builds the processor. Pass kafka.ProcessorOptions() for a real cluster,
// or goka.WithTester in unit tests.
func New(brokers []string, log *slog.Logger, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	opts = append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)
	p, err := goka.NewProcessor(brokers, Define(log), opts...)
	if err != nil {
		return nil, fmt.Errorf("stock processor: %w", err)
	}
	return p, nil
}

type handler struct{ log *slog.Logger }

// supply is the callback for the supply topic: decode, apply, store, publish.
func (h handler) supply(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil {
		deadletter.Send(ctx, h.log, nil, "empty message value (tombstone) on a stream topic")
		return
	}
	ev, err := codecs.DecodeSupplyEvent(raw)
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	if ev.EventSKU() != ctx.Key() {
		deadletter.Send(ctx, h.log, raw, fmt.Sprintf("message key %q differs from the event's sku %q", ctx.Key(), ev.EventSKU()))
		return
	}
	prev := State(ctx)
	next, res, err := inventory.Apply(prev, ev, ctx.Timestamp())
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	if !res.Changed {
		return
	}
	ctx.SetValue(next)
	publishIfChanged(ctx, prev, next)
}

// State returns the SKU's state from the group table, or an empty state.
func State(ctx goka.Context) inventory.State {
	if s, ok := ctx.Value().(inventory.State); ok {
		return s
	}
	return inventory.State{SKU: ctx.Key()}
}

func publishIfChanged(ctx goka.Context, prev, next inventory.State) {
	before, after := inventory.Availability(prev), inventory.Availability(next)
	if before.Version == after.Version {
		return
	}
	ctx.Emit(AvailabilityTopic, ctx.Key(), codecs.SnapshotToProto(after))
}
