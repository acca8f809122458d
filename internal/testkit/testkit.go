// Package testkit is the one place tests start skuflow's embedded broker:
// on a random free loopback port, with its data in the test's temp
// directory, closed after everything registered later with t.Cleanup (so
// processors and views stop before the broker).
package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/skuflow/skuflow/broker"
	"github.com/skuflow/skuflow/internal/kafkacfg"
)

// Partitions used by test clusters: more than one, so keying matters.
const Partitions = 4

// Broker is a running embedded broker for one test.
type Broker struct {
	*broker.Broker
	DataDir string
	Kafka   kafkacfg.Options
}

// StartBroker starts an embedded broker for t with fast compaction.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	dir := t.TempDir()
	return StartBrokerIn(t, dir, 0)
}

// StartBrokerIn starts an embedded broker persisting into dir on port (0 for
// a free one); use it to restart a broker on the same data and port.
func StartBrokerIn(t testing.TB, dir string, port int) *Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{DataDir: dir, Port: port, CompactionInterval: time.Second})
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return &Broker{
		Broker:  b,
		DataDir: dir,
		Kafka:   kafkacfg.Options{Brokers: b.Addrs(), Partitions: Partitions, Replication: 1, ClientID: t.Name()},
	}
}

// Eventually polls cond every 50ms until it returns nil or timeout passes,
// then fails the test with cond's last error. Tests wait on state, never on
// sleeps.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Go runs fn in a goroutine until the test ends: at cleanup the context is
// cancelled and fn's return is awaited and checked.
func Go(t testing.TB, fn func(ctx context.Context) error) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				t.Errorf("background task failed: %v", err)
			} else if err != nil && err != context.Canceled {
				t.Errorf("background task stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("background task did not stop within 30s of cancellation")
		}
	}
	t.Cleanup(stop)
	return stop
}
