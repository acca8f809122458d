package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
)

var errBroker = errors.New("broker unavailable")

// fakeProducer fails the next `fail` batches, then accepts batches.
type fakeProducer struct {
	sarama.SyncProducer // not called: Run uses SendMessages and Close only

	mu    sync.Mutex
	fail  int
	calls int
	sent  int
}

func (f *fakeProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail > 0 {
		f.fail--
		return errBroker
	}
	f.sent += len(msgs)
	return nil
}

func (f *fakeProducer) failNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = n
}

func (f *fakeProducer) Close() error { return nil }

// recorder is a slog.Handler that keeps the retry waits logged.
type recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "publishing failed; retrying from the checkpoint" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" {
			h.waits = append(h.waits, a.Value.Duration())
		}
		return true
	})
	return nil
}

func (h *recorder) retries() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.waits)
}

// start runs a publisher of a one-record outbox whose producer fails its
// first `fail` batches.
func start(t *testing.T, maxBackoff time.Duration, fail int) (*outbox.Outbox, *fakeProducer, *recorder, context.CancelFunc, <-chan error) {
	t.Helper()
	ob, err := outbox.Open(outbox.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ob.Close(); err != nil {
			t.Error(err)
		}
	})
	lv := inventory.StockLevel{SKU: "SKU-1", Location: "L-1", OnHand: 1, AsOf: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}
	if _, _, err := ob.AppendRows("f1", "M", lv.AsOf, []inventory.StockLevel{lv}); err != nil {
		t.Fatal(err)
	}
	prod, rec := &fakeProducer{fail: fail}, &recorder{}
	p := &Publisher{o: Options{Outbox: ob, Topic: "supply", BatchSize: 10, MaxBackoff: maxBackoff}, log: slog.New(rec), producer: prod}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return ob, prod, rec, cancel, done
}

func waitCheckpoint(t *testing.T, ob *outbox.Outbox, want uint64) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() error {
		if cp, _ := ob.Checkpoint(); cp != want {
			return fmt.Errorf("checkpoint %d, want %d", cp, want)
		}
		return nil
	})
}

func waitRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

// A failed batch is sent again from the checkpoint after a backoff that
// starts at 100ms and doubles up to MaxBackoff, each retry logged with its
// wait; a rewind starts again at once with the backoff reset; closing the
// outbox ends Run without an error.
func TestRunRetriesFromTheCheckpoint(t *testing.T) {
	ob, prod, rec, _, done := start(t, 250*time.Millisecond, 3)
	waitCheckpoint(t, ob, 1)
	if got, want := rec.retries(), []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("retries waited %v, want %v", got, want)
	}

	prod.failNext(1)
	if _, err := ob.Rewind(1); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, ob, 1)
	if got, want := rec.retries(), []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 100 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("after a rewind, retries waited %v, want %v (the backoff starts afresh)", got, want)
	}
	prod.mu.Lock()
	calls, sent := prod.calls, prod.sent
	prod.mu.Unlock()
	if calls != 6 || sent != 2 {
		t.Errorf("%d sends, %d records acknowledged; want 6 and 2", calls, sent)
	}

	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	waitRun(t, done)
}

// Cancelling ctx while Run waits to retry ends it without an error.
func TestRunStopsWhileWaitingToRetry(t *testing.T) {
	_, _, rec, cancel, done := start(t, time.Hour, 1_000_000)
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := len(rec.retries()); n == 0 {
			return errors.New("no retry logged yet")
		}
		return nil
	})
	cancel()
	waitRun(t, done)
}
