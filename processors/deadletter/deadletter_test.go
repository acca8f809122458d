package deadletter_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skuflow/skuflow/processors/deadletter"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

const (
	group goka.Group  = "deadletter-test"
	input goka.Stream = "deadletter-test-input"
)

// registry has the package's metrics registered, as the root does.
var registry = func() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	if err := deadletter.Register(reg); err != nil {
		panic(err)
	}
	return reg
}()

// counter reads skuflow_dead_letters_total{group, topic}, summed over
// reasons (0 if the series does not exist yet).
func counter(t *testing.T, group, topic string) float64 {
	return metric(t, "skuflow_dead_letters_total", map[string]string{"group": group, "topic": topic})
}

// metric sums the counters named name whose labels include want.
func metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// Send emits the input message, unchanged, with its origin and the reason,
// keyed like the input; logs it; and counts it.
func TestSend(t *testing.T) {
	gkt := tester.New(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	g := goka.DefineGroup(group,
		goka.Input(input, new(codec.Bytes), func(ctx goka.Context, msg any) {
			raw, _ := msg.([]byte)
			deadletter.Send(ctx, log, raw, "because: "+ctx.Key())
		}),
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
	before := counter(t, string(group), string(input))

	msgTime := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	gkt.Consume(string(input), "k1", []byte{0xff, 0x00}, tester.WithTime(msgTime))
	gkt.Consume(string(input), "k2", nil, tester.WithTime(msgTime))

	for i, want := range []struct {
		key   string
		value []byte
	}{{"k1", []byte{0xff, 0x00}}, {"k2", nil}} {
		key, v, ok := dead.Next()
		if !ok {
			t.Fatalf("dead letter %d missing", i)
		}
		dl, isDL := v.(*pb.DeadLetter)
		if !isDL {
			t.Fatalf("dead letter is %T", v)
		}
		if key != want.key || string(dl.GetKey()) != want.key || !bytes.Equal(dl.GetValue(), want.value) {
			t.Errorf("dead letter %d: key %q/%q value %x, want %q %x", i, key, dl.GetKey(), dl.GetValue(), want.key, want.value)
		}
		if dl.GetTopic() != string(input) || dl.GetGroup() != string(group) || dl.GetPartition() != 0 || dl.GetOffset() != int64(i) {
			t.Errorf("dead letter %d origin %s/%d@%d group %s", i, dl.GetTopic(), dl.GetPartition(), dl.GetOffset(), dl.GetGroup())
		}
		if dl.GetReason() != "because: "+want.key {
			t.Errorf("dead letter %d reason %q", i, dl.GetReason())
		}
		if !dl.GetMessageTime().AsTime().Equal(msgTime) {
			t.Errorf("dead letter %d message_time %v, want %v (the message's, not the wall clock)", i, dl.GetMessageTime().AsTime(), msgTime)
		}
	}
	if _, _, ok := dead.Next(); ok {
		t.Error("more dead letters than input messages")
	}
	if got := counter(t, string(group), string(input)) - before; got != 2 {
		t.Errorf("counter rose by %v, want 2", got)
	}
	for _, want := range []string{"dead-lettered", "because: k1", "k2", string(input)} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not mention %q", logs.String(), want)
		}
	}
}
