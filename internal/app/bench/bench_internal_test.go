package bench

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/internal/kafkacfg"
)

// A scenario whose processor stops (here it fails on a message) reports the
// failure instead of hanging, whichever wait sees the stop, and shuts down.
func TestRunProcessorReturnsWhenTheProcessorStops(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	dir := t.TempDir()
	o := Options{Messages: 3, Keys: 1, Partitions: 1}
	b, k, err := cluster(o, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "stop-in"}); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	g := goka.DefineGroup("stop-group", goka.Input("stop-in", new(codec.Bytes), func(ctx goka.Context, msg any) {
		if got.Load() >= 3 {
			ctx.Fail(errors.New("boom"))
		}
	}), goka.Persist(new(codec.Bytes)))
	p, err := goka.NewProcessor(k.Brokers, g, append(k.ProcessorOptions(), goka.WithLogger(quiet{}),
		goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(dir, "goka"))),
		goka.WithContextWrapper(func(c goka.Context) goka.Context { got.Add(1); return c }))...)
	if err != nil {
		t.Fatal(err)
	}
	var never atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := runProcessor(context.Background(), p, &got, func() error {
			return produce(k, "stop-in", []string{"a", "a", "a"}, [][]byte{{1}, {2}, {3}})
		}, o, func(ctx context.Context, stopped *stopSignal) error { return waitCount(ctx, &never, 1, stopped) })
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("runProcessor succeeded though its processor failed")
		}
		t.Logf("runProcessor: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("runProcessor still waiting 60 s after its processor failed")
	}
}
