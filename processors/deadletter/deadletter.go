// Package deadletter is where every processor sends the input messages it
// cannot use, with the reason, and counts them. Nothing is dropped silently.
//
// Callbacks do not send dead letters themselves: they are written as a Func
// that returns Reject(err) for bad input, and Handle (or Process) wraps them,
// as watermill's poison-queue middleware wraps a handler.
//
//	goka.Input(schema.Policies, schema.BytesCodec, deadletter.Handle(log, func(ctx goka.Context, raw []byte) error {
//		ev, err := codecs.DecodePolicyEvent(raw)
//		if err != nil {
//			return deadletter.Reject(err)
//		}
//		...
//	}))
package deadletter

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Output is the graph edge a group needs to dead-letter messages.
func Output() goka.Edge { return goka.Output(schema.DeadLetter, schema.DeadLetterCodec) }

// Send emits the current input message of ctx to the dead-letter topic with
// the reason, logs it and counts it. raw is the message value as received.
// Groups go through Handle rather than call it (internal/archtest checks).
// The reason's class (a header, and the metrics' reason label) is
// schema.ClassifyReason(reason).
func Send(ctx goka.Context, log *slog.Logger, raw []byte, reason string) {
	send(ctx, log, raw, reason, schema.ClassifyReason(reason))
}

func send(ctx goka.Context, log *slog.Logger, raw []byte, reason, class string) {
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
	headers := goka.Headers{schema.HeaderReasonClass: []byte(class)}
	if from, ok := ctx.Headers()[schema.HeaderRedrivenFrom]; ok {
		// A re-driven message rejected again: say which letter it came from,
		// so a redrive does not re-send it in a loop.
		headers[schema.HeaderRedrivenFrom] = from
	}
	ctx.Emit(schema.DeadLetter, ctx.Key(), dl, goka.WithCtxEmitHeaders(headers))
	deadLetters.WithLabelValues(string(ctx.Group()), string(ctx.Topic()), class).Inc()
	log.Warn("dead-lettered input message", "group", ctx.Group(), "topic", ctx.Topic(),
		"partition", ctx.Partition(), "offset", ctx.Offset(), "key", ctx.Key(), "reason", reason, "class", class)
}

// BadInput is the error of an input message that cannot be used (it does
// not decode, breaks a rule, is keyed wrongly): Handle dead-letters the
// message with the error's text as the reason. Make one with Reject or
// Rejectf.
type BadInput struct{ err error }

func (e *BadInput) Error() string { return e.err.Error() }

func (e *BadInput) Unwrap() error { return e.err }

// Reject marks err as the input message's fault; nil stays nil.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &BadInput{err: err}
}

// Rejectf is Reject(fmt.Errorf(format, args...)).
func Rejectf(format string, args ...any) error {
	return &BadInput{err: fmt.Errorf(format, args...)}
}

// IsBadInput reports whether Handle dead-letters err rather than failing
// the processor: a *BadInput anywhere in its chain, or an error that says
// the message itself is bad, codecs.ErrMalformed (it does not decode) or
// what inventory.IsInvalid reports (the domain rejects the event itself).
// Callbacks still Reject what they know is the input's fault: the
// sentinels are a backstop, not the convention.
func IsBadInput(err error) bool {
	var bad *BadInput
	return errors.As(err, &bad) || errors.Is(err, codecs.ErrMalformed) || inventory.IsInvalid(err)
}

// Func handles one input message; raw is its value as received, never nil.
// It returns nil when done, bad input (see IsBadInput) to dead-letter the
// message, or any other error to fail the processor.
type Func func(ctx goka.Context, raw []byte) error

// Handle wraps fn as a goka callback on a stream of bytes (the poison-queue
// middleware of the groups): a nil value (a tombstone has no place on a
// stream topic) is dead-lettered without calling fn; an error of fn that is
// bad input (IsBadInput) dead-letters the message with the error's text as
// the reason, logs and counts it; any other error is a bug or an
// infrastructure failure, not input, and fails the processor (ctx.Fail).
func Handle(log *slog.Logger, fn Func) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) { Process(ctx, log, msg, fn) }
}

// Process is Handle for one message, for a callback with work to do on
// every message (tombstones included) before it is looked at.
func Process(ctx goka.Context, log *slog.Logger, msg any, fn Func) {
	group, topic := string(ctx.Group()), string(ctx.Topic())
	raw, _ := msg.([]byte)
	if raw == nil {
		send(ctx, log, nil, tombstoneReason, schema.ReasonTombstone)
		handled.WithLabelValues(group, topic, OutcomeDeadLettered).Inc()
		return
	}
	err := fn(counting{ctx}, raw)
	switch {
	case err == nil:
		handled.WithLabelValues(group, topic, OutcomeOK).Inc()
	case IsBadInput(err):
		send(ctx, log, raw, err.Error(), ReasonClass(err))
		handled.WithLabelValues(group, topic, OutcomeDeadLettered).Inc()
	default:
		handled.WithLabelValues(group, topic, OutcomeFailed).Inc()
		ctx.Fail(fmt.Errorf("%s: %s/%d at offset %d: %w", ctx.Group(), ctx.Topic(), ctx.Partition(), ctx.Offset(), err))
	}
}

const tombstoneReason = "empty message value (tombstone) on a stream topic"
