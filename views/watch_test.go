package views_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

var (
	_ views.AvailabilityFeed = (*views.AvailabilityView)(nil)
	_ views.AvailabilityFeed = (*views.MemoryAvailability)(nil)
)

// feedBackend is an AvailabilityFeed under test and how to publish to it
// (a nil answer: a tombstone for sku).
type feedBackend struct {
	feed    views.AvailabilityFeed
	publish func(t *testing.T, sku string, a *pb.Availability)
}

// recorder collects a listener's updates.
type recorder struct {
	mu      sync.Mutex
	updates []views.AvailabilityUpdate
}

func (r *recorder) listen(u views.AvailabilityUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
}

func (r *recorder) all() []views.AvailabilityUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]views.AvailabilityUpdate(nil), r.updates...)
}

// runFeedContract is what every AvailabilityFeed must do. Publishing may be
// asynchronous, so it waits on state.
func runFeedContract(t *testing.T, b feedBackend) {
	f := b.feed
	rec := &recorder{}
	stop := f.Listen(rec.listen, nil)
	b.publish(t, "A", &pb.Availability{Sku: "A", Version: "a1"})
	b.publish(t, "B", &pb.Availability{Sku: "B", Version: "b1"})
	b.publish(t, "A", &pb.Availability{Sku: "A", Version: "a2"})

	// Updates are numbered upwards, come in order per SKU (SKUs on other
	// partitions interleave as they may), and decode.
	testkit.Eventually(t, 20*time.Second, func() error {
		us := rec.all()
		if len(us) < 3 {
			return fmt.Errorf("%d updates heard, want 3", len(us))
		}
		got := map[string][]string{}
		for i, u := range us {
			a, err := u.Answer()
			if err != nil {
				return err
			}
			if i > 0 && u.Seq <= us[i-1].Seq {
				return fmt.Errorf("update %d numbered %d after %d", i, u.Seq, us[i-1].Seq)
			}
			got[u.SKU] = append(got[u.SKU], a.GetVersion())
		}
		if fmt.Sprint(got) != "map[A:[a1 a2] B:[b1]]" {
			return fmt.Errorf("heard %v, want A: a1, a2 and B: b1", got)
		}
		return nil
	})
	last := rec.all()[2].Seq

	// A read contains every update numbered up to what it returns.
	a, seq, err := f.Latest("A")
	if err != nil || a.GetVersion() != "a2" || seq < last {
		t.Fatalf("Latest(A) = %v, %d, %v; want a2 with a number of at least %d", a, seq, err, last)
	}
	if a, _, err := f.Latest("NONE"); err != nil || a != nil {
		t.Errorf("Latest(NONE) = %v, %v; want nil, nil", a, err)
	}
	got := map[string]string{}
	seq, err = f.Scan(func(sku string, a *pb.Availability, err error) bool {
		if err != nil {
			t.Errorf("Scan: %s: %v", sku, err)
		}
		got[sku] = a.GetVersion()
		return true
	})
	if err != nil || seq < last || fmt.Sprint(got) != "map[A:a2 B:b1]" {
		t.Errorf("Scan = %v, %d, %v; want A:a2 B:b1 with a number of at least %d", got, seq, err, last)
	}
	n := 0
	if _, err := f.Scan(func(string, *pb.Availability, error) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("Scan stopped by fn: %d calls, %v; want 1, nil", n, err)
	}

	// A tombstone is an update without an answer, and ends the SKU.
	b.publish(t, "B", nil)
	testkit.Eventually(t, 20*time.Second, func() error {
		us := rec.all()
		if len(us) < 4 {
			return fmt.Errorf("%d updates heard, want 4", len(us))
		}
		if a, err := us[3].Answer(); us[3].SKU != "B" || a != nil || err != nil {
			return fmt.Errorf("tombstone heard as %s %v %v", us[3].SKU, a, err)
		}
		return nil
	})
	if a, _, err := f.Latest("B"); err != nil || a != nil {
		t.Errorf("Latest(B) after its tombstone = %v, %v; want nil", a, err)
	}

	// The same answer published again (a producer's retry: the same
	// version, another evaluated_at) is no change and is not announced.
	b.publish(t, "A", &pb.Availability{Sku: "A", Version: "a2", EvaluatedAt: timestamppb.New(time.Unix(7, 0))})
	b.publish(t, "A", &pb.Availability{Sku: "A", Version: "a3"})
	testkit.Eventually(t, 20*time.Second, func() error {
		us := rec.all()
		if len(us) < 5 {
			return fmt.Errorf("%d updates heard, want 5", len(us))
		}
		if a, err := us[4].Answer(); err != nil || us[4].SKU != "A" || a.GetVersion() != "a3" {
			return fmt.Errorf("after a republished a2, heard %s %v (%v); want A a3", us[4].SKU, a, err)
		}
		return nil
	})

	// Stopped listeners hear nothing more.
	stop()
	b.publish(t, "C", &pb.Availability{Sku: "C", Version: "c1"})
	testkit.Eventually(t, 20*time.Second, func() error {
		a, _, err := f.Latest("C")
		if err != nil || a == nil {
			return fmt.Errorf("C not visible: %v %v", a, err)
		}
		return nil
	})
	if n := len(rec.all()); n != 5 {
		t.Errorf("a stopped listener heard %d updates, want 5", n)
	}
}

// Stopping is closed when the feed stops, even while a scan waits in fn.
func TestAvailabilityViewStoppingEndsAWaitingScan(t *testing.T) {
	v, em := newAvailabilityView(t)
	stop := testkit.Go(t, v.Run)
	if err := em.EmitSync("A", &pb.Availability{Sku: "A", Version: "a1"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		if a, _, err := v.Latest("A"); err != nil || a == nil {
			return fmt.Errorf("A not visible: %v %v", a, err)
		}
		return nil
	})
	waiting := make(chan struct{})
	scanned := make(chan error, 1)
	go func() {
		_, err := v.Scan(func(string, *pb.Availability, error) bool {
			close(waiting)
			<-v.Stopping() // a watcher that does not read, until the feed stops
			return false
		})
		scanned <- err
	}()
	<-waiting
	stop() // returns once Run has: the scan let go
	if err := <-scanned; err != nil {
		t.Errorf("Scan: %v", err)
	}
	if _, _, err := v.Latest("A"); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Latest after stop: %v, want ErrNotReady", err)
	}
}

func TestMemoryAvailabilityContract(t *testing.T) {
	m := views.NewMemoryAvailability()
	runFeedContract(t, feedBackend{feed: m, publish: func(t *testing.T, sku string, a *pb.Availability) {
		if a == nil {
			m.Delete(sku)
			return
		}
		if err := m.Put(a); err != nil {
			t.Fatal(err)
		}
	}})
}

func TestAvailabilityViewContract(t *testing.T) {
	v, em := newAvailabilityView(t)
	if _, _, err := v.Latest("A"); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Latest before Run: %v, want ErrNotReady", err)
	}
	if _, err := v.Scan(func(string, *pb.Availability, error) bool { return true }); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Scan before Run: %v, want ErrNotReady", err)
	}
	testkit.Go(t, v.Run)
	testkit.Eventually(t, 20*time.Second, func() error {
		if !v.Ready() {
			return errors.New("not recovered")
		}
		return nil
	})
	runFeedContract(t, feedBackend{feed: v, publish: func(t *testing.T, sku string, a *pb.Availability) {
		var val any
		if a != nil {
			val = a
		}
		if err := em.EmitSync(sku, val); err != nil {
			t.Fatalf("emit %s: %v", sku, err)
		}
	}})
}

func TestMemoryAvailabilityNotReady(t *testing.T) {
	m := views.NewMemoryAvailability()
	m.SetReady(false)
	if _, _, err := m.Latest("A"); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Latest: %v, want ErrNotReady", err)
	}
	if _, err := m.Scan(func(string, *pb.Availability, error) bool { return true }); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Scan: %v, want ErrNotReady", err)
	}
	if err := m.Put(&pb.Availability{}); err == nil {
		t.Error("Put of an answer without a SKU: no error")
	}
	m.Stop()
	m.Stop()
	select {
	case <-m.Stopping():
	default:
		t.Error("Stopping not closed after Stop")
	}
	var zero views.MemoryAvailability
	zero.Stop()
	<-zero.Stopping()
}

// While its listener does not want updates, the view skips comparing an
// answer with the one it replaces (a republished version is heard again);
// once the listener wants them, a republished version is not announced.
func TestAvailabilityViewSkipsComparingWhileNobodyWants(t *testing.T) {
	v, em := newAvailabilityView(t)
	var wants atomic.Bool
	rec := &recorder{}
	t.Cleanup(v.Listen(rec.listen, wants.Load))
	testkit.Go(t, v.Run)
	testkit.Eventually(t, 20*time.Second, func() error {
		if !v.Ready() {
			return errors.New("not recovered")
		}
		return nil
	})
	emit := func(version string, at int64) {
		t.Helper()
		if err := em.EmitSync("A", &pb.Availability{Sku: "A", Version: version, EvaluatedAt: timestamppb.New(time.Unix(at, 0))}); err != nil {
			t.Fatal(err)
		}
	}
	versions := func() []string {
		var got []string
		for _, u := range rec.all() {
			a, err := u.Answer()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, a.GetVersion())
		}
		return got
	}
	// goka may apply a record twice (at least once), so the test counts
	// what must be there rather than expecting an exact list.
	emit("a1", 1)
	emit("a1", 2)
	testkit.Eventually(t, 20*time.Second, func() error {
		if got := versions(); len(got) < 2 {
			return fmt.Errorf("heard %v, want a1 twice", got)
		}
		return nil
	})
	before := len(versions())
	wants.Store(true)
	emit("a1", 3)
	emit("a2", 4)
	testkit.Eventually(t, 20*time.Second, func() error {
		if got := versions()[before:]; fmt.Sprint(got) != "[a2]" {
			return fmt.Errorf("heard %v once the listener wanted updates, want [a2] (the republished a1 not announced)", got)
		}
		return nil
	})
	if a, _, err := v.Latest("A"); err != nil || a.GetVersion() != "a2" {
		t.Errorf("Latest(A) = %v, %v; want a2", a, err)
	}
}

// newAvailabilityView starts a broker with skuflow's topics and returns an
// availability view on it (not yet running) and an emitter to its topic.
func newAvailabilityView(t *testing.T) (*views.AvailabilityView, *goka.Emitter) {
	t.Helper()
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	v, err := views.NewAvailabilityFeed(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatal(err)
	}
	em, err := goka.NewEmitter(b.Kafka.Brokers, schema.Availability, schema.AvailabilityCodec, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := em.Finish(); err != nil {
			t.Errorf("emitter finish: %v", err)
		}
	})
	return v, em
}
