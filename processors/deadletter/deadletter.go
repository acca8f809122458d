// Package deadletter is where every processor sends the input messages it
// cannot use, with the reason, and counts them. Nothing is dropped silently.
package deadletter

import (
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Output is the graph edge a group needs to dead-letter messages.
func Output() goka.Edge { return goka.Output(schema.DeadLetter, schema.DeadLetterCodec) }

var total = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "skuflow_dead_letters_total",
	Help: "Input messages sent to the dead-letter topic, by group and input topic.",
}, []string{"group", "topic"})

// Send emits the current input message of ctx to the dead-letter topic with
// the reason, logs it and counts it. raw is the message value as received.
func Send(ctx goka.Context, log *slog.Logger, raw []byte, reason string) {
	dl := &pb.DeadLetter{
		Topic:       string(ctx.Topic()),
		Partition:   ctx.Partition(),
		Offset:      ctx.Offset(),
		Key:         []byte(ctx.Key()),
		Value:       raw,
		Reason:      reason,
		Group:       string(ctx.Group()),
		MessageTime: timestamppb.New(ctx.Timestamp()),
	}
	ctx.Emit(schema.DeadLetter, ctx.Key(), dl)
	total.WithLabelValues(string(ctx.Group()), string(ctx.Topic())).Inc()
	log.Warn("dead-lettered input message", "group", ctx.Group(), "topic", ctx.Topic(),
		"partition", ctx.Partition(), "offset", ctx.Offset(), "key", ctx.Key(), "reason", reason)
}

// Value returns an input message's raw bytes. A nil value (a tombstone) has
// no place on a stream topic: it is dead-lettered and ok is false.
func Value(ctx goka.Context, log *slog.Logger, msg any) (raw []byte, ok bool) {
	raw, _ = msg.([]byte)
	if raw == nil {
		Send(ctx, log, nil, "empty message value (tombstone) on a stream topic")
		return nil, false
	}
	return raw, true
}
