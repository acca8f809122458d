package registry

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// DefineWriter returns the registry writer's group graph: the one writer
// of the merchant registry. Every RegistryCommand is keyed
// schema.RegistryKey, so one partition, hence one group member at a time,
// applies them in order to the whole registry, kept in the group table
// under that key (Apply). From the same callback it publishes each changed
// entry to merchant-registry (which Get, List and Authenticate read through
// a view) and the merchant policies the change implies, so both are derived
// from the table; a command redelivered after a crash publishes them again
// (replay).
//
// Throughput: one partition, one command at a time, each rewriting the
// whole registry (at most MaxStateBytes) to the changelog: a few hundred
// commands a second at best, which admin changes never approach.
//
// Time: a command's time is its message's (the sending gateway's clock);
// the writer refuses one more than inventory.DefaultMaxEventSkew ahead of
// its own clock, the time of the policies it publishes (Tables.WriterTime).
func DefineWriter(log *slog.Logger) *goka.GroupGraph {
	return defineWriter(log, inventory.DefaultMaxEventSkew)
}

// defineWriter is DefineWriter allowing maxSkew.
func defineWriter(log *slog.Logger, maxSkew time.Duration) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := writer{log: log.With("group", string(schema.RegistryGroup)), maxSkew: maxSkew, now: time.Now}
	return goka.DefineGroup(schema.RegistryGroup,
		goka.Input(schema.RegistryCommands, schema.BytesCodec, w.command),
		goka.Lookup(schema.PoliciesTable, schema.PolicyCodec),
		goka.Lookup(schema.MerchantRegistry, schema.RegistryCodec),
		goka.Persist(schema.RegistryStateCodec),
		goka.Output(goka.Stream(schema.MerchantRegistry), schema.RegistryCodec),
		goka.Output(schema.Policies, schema.PolicyEventCodec),
		goka.Output(schema.DeadLetter, schema.DeadLetterCodec),
	)
}

type writer struct {
	log     *slog.Logger
	maxSkew time.Duration
	now     func() time.Time
}

func (w writer) command(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	cmd := new(pb.RegistryCommand)
	switch err := proto.Unmarshal(raw, cmd); {
	case raw == nil:
		w.deadLetter(ctx, raw, "empty message value (tombstone) on a stream topic")
		return
	case err != nil:
		w.deadLetter(ctx, raw, "malformed registry command: "+err.Error())
		return
	case cmd.GetId() == "":
		w.deadLetter(ctx, raw, "registry command without an id")
		return
	case ctx.Key() != schema.RegistryKey:
		// Another key would be another writer: it could give a location
		// to two merchants.
		w.deadLetter(ctx, raw, fmt.Sprintf("registry command keyed %q, not %q", ctx.Key(), schema.RegistryKey))
		return
	}
	st, _ := ctx.Value().(*pb.RegistryState)
	a := Apply(st, cmd, ctx.Timestamp(), Tables{
		PolicyKind: func(location string) pb.LocationKind {
			ev, _ := ctx.Lookup(schema.PoliciesTable, schema.LocationKey(location)).(*pb.PolicyEvent)
			return ev.GetLocation().GetKind()
		},
		Published: func(merchant string) *pb.RegistryEntry {
			e, _ := ctx.Lookup(schema.MerchantRegistry, merchant).(*pb.RegistryEntry)
			return e
		},
		WriterTime: w.now(),
		MaxSkew:    w.maxSkew,
	})
	for _, e := range a.Entries {
		ctx.Emit(goka.Stream(schema.MerchantRegistry), e.GetMerchantId(), e)
	}
	for _, ev := range a.Policies {
		key, err := schema.PolicyKey(ev)
		if err != nil {
			ctx.Fail(err) // the rules built it: a bug
		}
		ctx.Emit(schema.Policies, key, ev)
	}
	// Unchanged (a redelivered command): rewrite the value, so a changelog
	// write that a crash cut short is made whole (processors.Store).
	switch {
	case a.Changed:
		ctx.SetValue(a.State)
	case st != nil:
		ctx.SetValue(st)
	}
	o := a.Outcome
	switch o.GetError() {
	case pb.RegistryError_REGISTRY_ERROR_FULL, pb.RegistryError_REGISTRY_ERROR_CLOCK_SKEW:
		w.log.Error("merchant registry command refused", "command", o.GetCommandId(), "merchant", o.GetMerchantId(),
			"outcome", o.GetError().String(), "reason", o.GetMessage())
		return
	}
	w.log.Info("merchant registry command", "command", o.GetCommandId(), "merchant", o.GetMerchantId(),
		"outcome", o.GetError().String(), "version", o.GetVersion(), "replayed", !a.Changed, "entries", len(a.Entries), "policies", len(a.Policies))
}

// deadLetter sends the command to the dead-letter topic with the reason
// (the groups' processors/deadletter does the same; an edge may not import
// it).
func (w writer) deadLetter(ctx goka.Context, raw []byte, reason string) {
	ctx.Emit(schema.DeadLetter, ctx.Key(), &pb.DeadLetter{
		Topic: string(ctx.Topic()), Partition: ctx.Partition(), Offset: ctx.Offset(), Key: []byte(ctx.Key()), Value: raw,
		Reason: reason, Group: string(ctx.Group()), MessageTime: timestamppb.New(ctx.Timestamp()),
	}, goka.WithCtxEmitHeaders(goka.Headers{schema.HeaderReasonClass: []byte(schema.ClassifyReason(reason))}))
	w.log.Warn("dead-lettered input message", "group", ctx.Group(), "topic", ctx.Topic(),
		"partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
}
