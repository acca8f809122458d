// Package testkit is the one place tests start skuflow's embedded broker:
// on a random free loopback port, with its data in the test's temp
// directory, closed after everything registered later with t.Cleanup (so
// processors and views stop before the broker).
package testkit

import (
	"context"
	"net"
	"sync"
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
	return StartBrokerIn(t, t.TempDir(), nil)
}

// StartBrokerIn starts an embedded broker persisting into dir, on a port
// lent from port, or on a free one when port is nil. Restart a broker on
// the same address by closing it and starting the next on the same held
// port.
func StartBrokerIn(t testing.TB, dir string, port *Port) *Broker {
	t.Helper()
	o := broker.Options{DataDir: dir, CompactionInterval: time.Second}
	if port != nil {
		o.Listener = port.Listener()
	}
	b, err := broker.Start(o)
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

// Port is a loopback port a test holds bound until it ends, lending it to
// one server at a time (Listener). Closing a port and binding it again
// leaves a gap in which another process can take it; a held port has no
// gap: connections made while no server holds a lease wait in the queue
// until the next one accepts them.
type Port struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// HoldPort binds a free loopback port until t ends.
func HoldPort(t testing.TB) *Port {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hold a loopback port: %v", err)
	}
	p := &Port{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the held address.
func (p *Port) Addr() net.Addr { return p.ln.Addr() }

// accept hands every connection to whichever lease accepts next.
func (p *Port) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.offer(c)
	}
}

// offer gives c to the next lease's Accept, or closes it once the port is
// released.
func (p *Port) offer(c net.Conn) {
	select {
	case p.conns <- c:
	case <-p.done:
		c.Close()
	}
}

func (p *Port) close() {
	p.once.Do(func() {
		close(p.done)
		p.ln.Close()
	})
}

// Listener lends the port: Accept returns its connections until Close,
// which ends the lease and leaves the port bound for the next one.
func (p *Port) Listener() net.Listener {
	return &lease{p: p, closed: make(chan struct{})}
}

type lease struct {
	p      *Port
	closed chan struct{}
	once   sync.Once
}

func (l *lease) Accept() (net.Conn, error) {
	select {
	case c := <-l.p.conns:
		select {
		case <-l.closed: // closed meanwhile: the connection is the next lease's
			go l.p.offer(c)
			return nil, net.ErrClosed
		default:
			return c, nil
		}
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.p.done:
		return nil, net.ErrClosed
	}
}

func (l *lease) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *lease) Addr() net.Addr { return l.p.Addr() }

// Eventually checks cond at once and then every 50ms until it returns nil,
// and fails the test with cond's last error if timeout passes first. Tests
// wait on state, never on sleeps: the timeout only bounds how long a test
// that is going to fail hangs, so give it ample room.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for tries := 1; ; tries++ {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("condition not met within %s (%d checks); last check: %v", timeout, tries, err)
		case <-tick.C:
		}
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
