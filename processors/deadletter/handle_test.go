package deadletter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
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

// gokaContext names the embedded interface apart from its Context method.
type gokaContext = goka.Context

// fakeCtx is the part of goka.Context that Process uses; Fail records the
// error instead of panicking.
type fakeCtx struct {
	gokaContext
	key     string
	emitted []*pb.DeadLetter
	failed  error
}

func (c *fakeCtx) Topic() goka.Stream    { return "handle-test-input" }
func (c *fakeCtx) Group() goka.Group     { return "handle-test" }
func (c *fakeCtx) Partition() int32      { return 3 }
func (c *fakeCtx) Offset() int64         { return 42 }
func (c *fakeCtx) Key() string           { return c.key }
func (c *fakeCtx) Timestamp() time.Time  { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }
func (c *fakeCtx) Fail(err error)        { c.failed = err }
func (c *fakeCtx) Headers() goka.Headers { return nil }
func (c *fakeCtx) Emit(topic goka.Stream, key string, value any, _ ...goka.ContextOption) {
	if topic != schema.DeadLetter || key != c.key {
		panic(fmt.Sprintf("emit to %s key %q", topic, key))
	}
	c.emitted = append(c.emitted, value.(*pb.DeadLetter))
}

func TestProcess(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	boom := errors.New("view storage is gone")
	for _, tc := range []struct {
		name   string
		msg    any
		ret    error
		reason string // "": no dead letter
		fail   bool
		called bool
	}{
		{name: "done", msg: []byte("x"), called: true},
		{name: "tombstone", msg: nil, reason: "empty message value (tombstone) on a stream topic"},
		{name: "not bytes", msg: 7, reason: "empty message value (tombstone) on a stream topic"},
		{name: "Reject", msg: []byte("x"), ret: deadletter.Reject(errors.New("sku is empty")), reason: "sku is empty", called: true},
		{name: "Rejectf", msg: []byte("x"), ret: deadletter.Rejectf("message key %q differs from the event's sku %q", "a", "b"),
			reason: `message key "a" differs from the event's sku "b"`, called: true},
		{name: "Reject wrapped for context", msg: []byte("x"), ret: fmt.Errorf("apply: %w", deadletter.Reject(errors.New("no"))), reason: "apply: no", called: true},
		{name: "malformed", msg: []byte("x"), ret: fmt.Errorf("%w: not a skuflow.v1.SupplyEvent", codecs.ErrMalformed),
			reason: "malformed message: not a skuflow.v1.SupplyEvent", called: true},
		{name: "invalid event", msg: []byte("x"), ret: fmt.Errorf("%w: delta is 0", inventory.ErrInvalidEvent), reason: "invalid event: delta is 0", called: true},
		{name: "conflicting duplicate", msg: []byte("x"), ret: fmt.Errorf("%w: e-1", inventory.ErrConflictingDuplicate),
			reason: "conflicting duplicate event id: e-1", called: true},
		{name: "infrastructure", msg: []byte("x"), ret: boom, fail: true, called: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &fakeCtx{key: "k"}
			called := false
			deadletter.Process(ctx, discard, tc.msg, func(_ goka.Context, raw []byte) error {
				called = true
				if raw == nil {
					t.Error("fn got nil bytes")
				}
				return tc.ret
			})
			if called != tc.called {
				t.Errorf("fn called %v, want %v", called, tc.called)
			}
			switch {
			case tc.reason == "" && len(ctx.emitted) != 0:
				t.Errorf("dead-lettered %q", ctx.emitted[0].GetReason())
			case tc.reason != "" && len(ctx.emitted) != 1:
				t.Errorf("%d dead letters, want 1", len(ctx.emitted))
			case tc.reason != "":
				dl := ctx.emitted[0]
				if dl.GetReason() != tc.reason {
					t.Errorf("reason %q, want %q", dl.GetReason(), tc.reason)
				}
				if raw, _ := tc.msg.([]byte); !bytes.Equal(dl.GetValue(), raw) {
					t.Errorf("value %x, want %x", dl.GetValue(), raw)
				}
			}
			if tc.fail != (ctx.failed != nil) {
				t.Fatalf("failed with %v, want failure %v", ctx.failed, tc.fail)
			}
			if tc.fail && (!errors.Is(ctx.failed, boom) || !strings.Contains(ctx.failed.Error(), "handle-test-input/3 at offset 42")) {
				t.Errorf("failure %q does not wrap the error with the message's origin", ctx.failed)
			}
		})
	}
}

func TestRejectAndIsBadInput(t *testing.T) {
	if deadletter.Reject(nil) != nil {
		t.Error("Reject(nil) is not nil")
	}
	base := errors.New("base")
	r := deadletter.Reject(base)
	var bad *deadletter.BadInput
	if !errors.As(r, &bad) || !errors.Is(r, base) || r.Error() != "base" {
		t.Errorf("Reject(base) = %v: want a *BadInput wrapping base with its text", r)
	}
	if !errors.Is(deadletter.Rejectf("x: %w", base), base) {
		t.Error("Rejectf does not wrap %w")
	}
	for _, err := range []error{context.Canceled, io.ErrUnexpectedEOF, base, fmt.Errorf("encode demand event: %w", base)} {
		if deadletter.IsBadInput(err) {
			t.Errorf("IsBadInput(%v) is true: a processor failure would be dead-lettered", err)
		}
	}
}

// Handle, on goka's tester: bad input reaches the dead-letter topic as
// Send writes it, and is counted; good input is processed.
func TestHandle(t *testing.T) {
	const (
		grp goka.Group  = "handle-test"
		in  goka.Stream = "handle-test-input"
		out goka.Stream = "handle-test-output"
	)
	gkt := tester.New(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	g := goka.DefineGroup(grp,
		goka.Input(in, new(codec.Bytes), deadletter.Handle(log, func(ctx goka.Context, raw []byte) error {
			if string(raw) == "bad" {
				return deadletter.Rejectf("%q is bad", raw)
			}
			ctx.Emit(out, ctx.Key(), raw)
			return nil
		})),
		goka.Output(out, new(codec.Bytes)),
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
	outs := gkt.NewQueueTracker(string(out))
	before := counter(t, string(grp), string(in))

	gkt.Consume(string(in), "k1", []byte("good"))
	gkt.Consume(string(in), "k2", []byte("bad"))
	gkt.Consume(string(in), "k3", nil)

	if key, v, ok := outs.Next(); !ok || key != "k1" || !bytes.Equal(v.([]byte), []byte("good")) {
		t.Errorf("output %q %v %v, want k1 good", key, v, ok)
	}
	for i, want := range []struct{ key, reason string }{
		{"k2", `"bad" is bad`},
		{"k3", "empty message value (tombstone) on a stream topic"},
	} {
		key, v, ok := dead.Next()
		if !ok {
			t.Fatalf("dead letter %d missing", i)
		}
		dl := v.(*pb.DeadLetter)
		if key != want.key || dl.GetReason() != want.reason || dl.GetTopic() != string(in) || dl.GetGroup() != string(grp) {
			t.Errorf("dead letter %d: key %q reason %q origin %s/%s", i, key, dl.GetReason(), dl.GetTopic(), dl.GetGroup())
		}
	}
	if _, _, ok := dead.Next(); ok {
		t.Error("good input was dead-lettered")
	}
	if got := counter(t, string(grp), string(in)) - before; got != 2 {
		t.Errorf("counter rose by %v, want 2", got)
	}
	if !strings.Contains(logs.String(), `\"bad\" is bad`) {
		t.Errorf("log %q does not give the reason", logs.String())
	}
}
