package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/deadletter"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Errors map to a bounded set of classes, by sentinel first, by text for
// reasons that only exist as text (Send's callers, old letters).
func TestReasonClass(t *testing.T) {
	classes := map[string]bool{}
	for _, c := range schema.ReasonClasses() {
		classes[c] = true
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: not a skuflow.v1.SupplyEvent", codecs.ErrMalformed), schema.ReasonMalformed},
		{fmt.Errorf("%w: %w: %q", inventory.ErrInvalidEvent, inventory.ErrUnknownChannel, "kiosk"), schema.ReasonUnknownChannel},
		{fmt.Errorf("%w: e-1", inventory.ErrConflictingDuplicate), schema.ReasonConflictingDup},
		{fmt.Errorf("%w: delta is 0", inventory.ErrInvalidEvent), schema.ReasonInvalidEvent},
		{inventory.CheckSkew("as_of", time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Minute), schema.ReasonFutureTime},
		{fmt.Errorf("%w: the event would make sku %q's state 600000 bytes", codecs.ErrStateLimit, "a"), schema.ReasonStateLimit},
		{deadletter.Rejectf("message key %q differs from the event's sku %q", "a", "b"), schema.ReasonKeyMismatch},
		{deadletter.Rejectf("message timestamp %s is outside (1970-01-01, 2200-01-01)", "0001-01-01"), schema.ReasonBadTimestamp},
		{deadletter.Reject(errors.New("SKU-123 said something new")), schema.ReasonOther},
	} {
		got := deadletter.ReasonClass(tc.err)
		if got != tc.want {
			t.Errorf("ReasonClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if !classes[got] {
			t.Errorf("class %q is not listed in ReasonClasses", got)
		}
		// The text alone (an old letter, read back) gives the same class.
		if txt := schema.ClassifyReason(tc.err.Error()); txt != tc.want {
			t.Errorf("ClassifyReason(%q) = %q, want %q", tc.err.Error(), txt, tc.want)
		}
	}
	if got := schema.ClassifyReason("empty message value (tombstone) on a stream topic"); got != schema.ReasonTombstone {
		t.Errorf("tombstone reason classified %q", got)
	}
}

// Process counts every message by outcome, dead letters by reason class
// (also written as a header on the letter), and the reservation decisions
// the callback emits by result.
func TestProcessMetrics(t *testing.T) {
	const (
		grp goka.Group  = "metrics-test"
		in  goka.Stream = "metrics-test-input"
	)
	gkt := tester.New(t)
	g := goka.DefineGroup(grp,
		goka.Input(in, new(codec.Bytes), deadletter.Handle(slog.New(slog.DiscardHandler), func(ctx goka.Context, raw []byte) error {
			switch string(raw) {
			case "malformed":
				return fmt.Errorf("%w: nope", codecs.ErrMalformed)
			case "channel":
				return fmt.Errorf("%w: %w: %q", inventory.ErrInvalidEvent, inventory.ErrUnknownChannel, "kiosk")
			case "accept":
				ctx.Emit(schema.Outcomes, "o-1", &pb.ReservationOutcome{OrderId: "o-1", Accepted: true})
			case "backorder":
				ctx.Emit(schema.Outcomes, "o-2", &pb.ReservationOutcome{OrderId: "o-2", Accepted: true, Backorder: true})
			case "reject":
				ctx.Emit(schema.Outcomes, "o-3", &pb.ReservationOutcome{OrderId: "o-3", Reason: pb.RejectReason_REJECT_REASON_CAP_EXCEEDED})
			case "extend":
				ctx.Emit(schema.Outcomes, "o-4", &pb.ReservationOutcome{OrderId: "o-4", Extension: true, Reason: pb.RejectReason(99)})
			}
			return nil
		})),
		goka.Output(schema.Outcomes, schema.OutcomeCodec),
		deadletter.Output(),
	)
	p, err := goka.NewProcessor(nil, g, goka.WithTester(gkt), goka.WithNilHandling(goka.NilProcess))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()
	dead := gkt.NewQueueTracker(string(schema.DeadLetter))
	outs := gkt.NewQueueTracker(string(schema.Outcomes))

	type labels = map[string]string
	read := func() map[string]float64 {
		return map[string]float64{
			"ok":          metric(t, "skuflow_events_handled_total", labels{"group": string(grp), "topic": string(in), "outcome": "ok"}),
			"dead":        metric(t, "skuflow_events_handled_total", labels{"group": string(grp), "topic": string(in), "outcome": "dead_lettered"}),
			"malformed":   metric(t, "skuflow_dead_letters_total", labels{"group": string(grp), "reason": "malformed"}),
			"channel":     metric(t, "skuflow_dead_letters_total", labels{"group": string(grp), "reason": "unknown_channel"}),
			"tombstone":   metric(t, "skuflow_dead_letters_total", labels{"group": string(grp), "reason": "tombstone"}),
			"accepted":    metric(t, "skuflow_reservation_outcomes_total", labels{"result": "accepted", "kind": "request"}),
			"backorder":   metric(t, "skuflow_reservation_outcomes_total", labels{"result": "backorder"}),
			"cap":         metric(t, "skuflow_reservation_outcomes_total", labels{"result": "cap_exceeded"}),
			"unspecified": metric(t, "skuflow_reservation_outcomes_total", labels{"result": "unspecified", "kind": "extension"}),
		}
	}
	before := read()
	for _, v := range []string{"good", "malformed", "channel", "accept", "backorder", "reject", "extend"} {
		gkt.Consume(string(in), v, []byte(v))
	}
	gkt.Consume(string(in), "nil", nil)
	after := read()
	want := map[string]float64{"ok": 5, "dead": 3, "malformed": 1, "channel": 1, "tombstone": 1, "accepted": 1, "backorder": 1, "cap": 1, "unspecified": 1}
	for k, w := range want {
		if got := after[k] - before[k]; got != w {
			t.Errorf("%s rose by %v, want %v", k, got, w)
		}
	}
	for _, wantClass := range []string{"malformed", "unknown_channel", "tombstone"} {
		h, _, _, ok := dead.NextWithHeaders()
		if !ok {
			t.Fatalf("dead letter of class %s missing", wantClass)
		}
		if got := string(h[schema.HeaderReasonClass]); got != wantClass {
			t.Errorf("header %s = %q, want %q", schema.HeaderReasonClass, got, wantClass)
		}
	}
	n := 0
	for _, _, ok := outs.Next(); ok; _, _, ok = outs.Next() {
		n++
	}
	if n != 4 {
		t.Errorf("%d outcomes reached the topic, want 4: counting must not swallow emits", n)
	}
}
