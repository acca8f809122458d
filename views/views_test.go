package views_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

// Both implementations must satisfy each interface.
var (
	_ views.StockLookup  = (*views.Stock)(nil)
	_ views.StockLookup  = (*views.Memory)(nil)
	_ views.PolicyLookup = (*views.Policies)(nil)
	_ views.PolicyLookup = (*views.Memory)(nil)
)

func TestMemoryContract(t *testing.T) {
	viewtest.Run(t, func(t *testing.T, states []inventory.State) views.StockLookup {
		m := views.NewMemory()
		for _, s := range states {
			m.Put(s)
		}
		return m
	})
}

func TestStockContract(t *testing.T) {
	viewtest.Run(t, func(t *testing.T, states []inventory.State) views.StockLookup {
		b := testkit.StartBroker(t)
		if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
			t.Fatalf("ensure topics: %v", err)
		}
		emitTable(t, b, states...)
		v := startStock(t, b)
		waitVisible(t, v, states...)
		return v
	})
}

func TestMemoryNotReady(t *testing.T) {
	m := views.NewMemory()
	m.Put(viewtest.States(t)[0])
	m.SetReady(false)
	if m.Ready() {
		t.Fatal("Ready() = true after SetReady(false)")
	}
	for _, sku := range []string{"SKU-1", "SKU-unknown"} {
		s, found, err := m.Get(sku)
		if !errors.Is(err, views.ErrNotReady) {
			t.Errorf("Get(%q) error = %v, want ErrNotReady", sku, err)
		}
		if found || !reflect.DeepEqual(s, inventory.State{}) {
			t.Errorf("Get(%q) = %+v, found=%v while not ready", sku, s, found)
		}
	}
	m.SetReady(true)
	if _, found, err := m.Get("SKU-1"); err != nil || !found {
		t.Errorf("Get after SetReady(true): found=%v err=%v", found, err)
	}
}

func TestMemoryZeroValueIsNotReady(t *testing.T) {
	var m views.Memory
	if m.Ready() {
		t.Error("zero Memory is ready")
	}
	if _, _, err := m.Get("SKU-1"); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("zero Memory Get error = %v, want ErrNotReady", err)
	}
}

// TestMemoryDoesNotAlias: Memory is the fake that must behave like the real
// view, and the view decodes a fresh value on every Get, so neither the
// caller's state after Put nor a state returned by Get may share memory with
// what Memory stores.
func TestMemoryDoesNotAlias(t *testing.T) {
	m := views.NewMemory()
	in := viewtest.States(t)[0]
	want := viewtest.States(t)[0]
	m.Put(in)
	in.Locations[0].Level++ // the caller reuses its value after Put
	got, _, err := m.Get(want.SKU)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a change to the caller's state after Put is visible through Get:\n%+v\nwant\n%+v", got, want)
	}
	got.Locations[0].Level += 100 // the caller mutates a returned value
	again, _, err := m.Get(want.SKU)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("a change to a state returned by Get is visible to the next Get:\n%+v\nwant\n%+v", again, want)
	}
}

func TestStockNotReadyUntilRecoveredAndAfterStop(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	emitTable(t, b, states[0])

	v, err := views.NewStock(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewStock: %v", err)
	}
	if v.Ready() {
		t.Fatal("Ready() = true before Run")
	}
	if _, found, err := v.Get(states[0].SKU); !errors.Is(err, views.ErrNotReady) || found {
		t.Fatalf("Get before Run: found=%v err=%v, want ErrNotReady", found, err)
	}

	stop := testkit.Go(t, v.Run)
	waitVisible(t, v, states[0])

	stop() // waits for Run to return
	if v.Ready() {
		t.Error("Ready() = true after the view stopped")
	}
	if _, _, err := v.Get(states[0].SKU); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Get after stop: %v, want ErrNotReady", err)
	}
}

// TestStockGetDuringStop: the gateway keeps answering in-flight requests
// (and polling Ready) while Serve stops the view, so Get and Ready must be
// safe to call while Run returns. They are not: goka's View.Run closes its
// partitions and sets them to nil without synchronization, which
// View.Recovered and View.Get read (a data race under -race; without it, an
// index-out-of-range panic in View.find when the slice is emptied between
// View.hash's length check and the index).
func TestStockGetDuringStop(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	state := viewtest.States(t)[0]
	emitTable(t, b, state)
	v, err := views.NewStock(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewStock: %v", err)
	}
	stop := testkit.Go(t, v.Run)
	waitVisible(t, v, state)

	done := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
			}
			v.Ready()
			if _, _, err := v.Get(state.SKU); err != nil && !errors.Is(err, views.ErrNotReady) {
				t.Logf("Get while stopping: %v", err)
			}
		}
	}()
	stop()
	close(done)
	<-readerDone
}

// TestStockFollowsTable: a running view sees later updates and deletions
// (tombstones) of the table.
func TestStockFollowsTable(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	emitTable(t, b, states[0], states[1])
	v := startStock(t, b)
	waitVisible(t, v, states[0], states[1])

	updated, res, err := inventory.Apply(states[0], inventory.StockLevel{
		SKU: states[0].SKU, Location: "WH-9", OnHand: 42, AsOf: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC),
	}, time.Time{})
	if err != nil || !res.Changed {
		t.Fatalf("apply: changed=%v err=%v", res.Changed, err)
	}
	emitTable(t, b, updated)
	emitTombstone(t, b, states[1].SKU)

	testkit.Eventually(t, 15*time.Second, func() error {
		got, found, err := v.Get(updated.SKU)
		if err != nil || !found {
			return fmt.Errorf("Get(%q): found=%v err=%v", updated.SKU, found, err)
		}
		if !reflect.DeepEqual(got, updated) {
			return fmt.Errorf("Get(%q) = %+v, want the update %+v", updated.SKU, got, updated)
		}
		if _, found, err := v.Get(states[1].SKU); err != nil || found {
			return fmt.Errorf("deleted %q: found=%v err=%v", states[1].SKU, found, err)
		}
		return nil
	})
}

func viewOptions(t *testing.T, b *testkit.Broker) []goka.ViewOption {
	return append(b.Kafka.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))
}

func startStock(t *testing.T, b *testkit.Broker) *views.Stock {
	t.Helper()
	v, err := views.NewStock(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewStock: %v", err)
	}
	testkit.Go(t, v.Run)
	return v
}

// emitTable writes states to the stock table's changelog, as the stock
// processor would.
func emitTable(t *testing.T, b *testkit.Broker, states ...inventory.State) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.StockTable), codecs.State{}, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, s := range states {
		if err := em.EmitSync(s.SKU, s); err != nil {
			t.Fatalf("emit %s: %v", s.SKU, err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

func emitTombstone(t *testing.T, b *testkit.Broker, sku string) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.StockTable), codecs.State{}, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	if err := em.EmitSync(sku, nil); err != nil {
		t.Fatalf("emit tombstone %s: %v", sku, err)
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

// waitVisible waits until the view is ready and holds every state.
func waitVisible(t *testing.T, v *views.Stock, states ...inventory.State) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() error {
		if !v.Ready() {
			return errors.New("view has not recovered")
		}
		for _, s := range states {
			if _, found, err := v.Get(s.SKU); err != nil || !found {
				return fmt.Errorf("Get(%q): found=%v err=%v", s.SKU, found, err)
			}
		}
		return nil
	})
}
