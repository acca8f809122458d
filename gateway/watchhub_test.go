package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// hubEnv is a hub listening to an in-memory feed, with its metrics on a
// registry of its own.
type hubEnv struct {
	feed *views.MemoryAvailability
	hub  *watchHub
	m    *watchMetrics
}

func newHubEnv(t *testing.T, maxWatchers, buffer int) *hubEnv {
	t.Helper()
	m, err := newWatchMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e := &hubEnv{feed: views.NewMemoryAvailability(), m: m}
	e.hub = newWatchHub(maxWatchers, buffer, m, slog.New(slog.DiscardHandler))
	t.Cleanup(e.feed.Listen(e.hub.publish, e.hub.hasWatchers))
	return e
}

// put publishes an answer for sku with version v.
func (e *hubEnv) put(t *testing.T, sku, v string) {
	t.Helper()
	if err := e.feed.Put(&pb.Availability{Sku: sku, Version: v}); err != nil {
		t.Fatal(err)
	}
}

func (e *hubEnv) subscribe(t *testing.T, all bool, skus ...string) *watcher {
	t.Helper()
	w, err := e.hub.subscribe("grpc", all, skus)
	if err != nil {
		t.Fatalf("subscribe(%v, %q): %v", all, skus, err)
	}
	if all {
		e.hub.endSync(w) // as a session does once its scan is sent
	}
	return w
}

// received drains what w has buffered, as "SKU@version".
func received(w *watcher) []string {
	var got []string
	for {
		select {
		case u := <-w.ch:
			got = append(got, u.a.GetSku()+"@"+u.a.GetVersion())
		default:
			return got
		}
	}
}

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// An all-SKU watcher still sending its scan is never cut off by changes:
// it notes each changed SKU's latest sequence number, however many changes
// come, and buffers only from endSync on.
func TestWatchHubSyncingWatcherNotesChanges(t *testing.T) {
	e := newHubEnv(t, 10, 2)
	w, err := e.hub.subscribe("grpc", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.put(t, "A", fmt.Sprint(i))
		e.put(t, "B", fmt.Sprint(i))
	}
	select {
	case <-w.done:
		t.Fatalf("a syncing watcher was cut off: %v", w.err)
	default:
	}
	if got := received(w); len(got) != 0 {
		t.Fatalf("a syncing watcher was buffered %v", got)
	}
	pending := e.hub.endSync(w)
	if len(pending) != 2 || pending["A"] >= pending["B"] || pending["B"] == 0 {
		t.Fatalf("pending %v, want A and B with B's the later number", pending)
	}
	e.put(t, "C", "1")
	if got := strings.Join(received(w), " "); got != "C@1" {
		t.Fatalf("after endSync received %q, want C@1", got)
	}
}

func TestWatchHubFansOutBySKU(t *testing.T) {
	e := newHubEnv(t, 10, 16)
	a := e.subscribe(t, false, "A")
	ab := e.subscribe(t, false, "A", "B")
	all := e.subscribe(t, true)

	e.put(t, "A", "1")
	e.put(t, "B", "1")
	e.put(t, "C", "1")
	e.put(t, "A", "2")
	e.feed.Delete("A") // a tombstone tells nobody anything

	for _, tt := range []struct {
		name string
		w    *watcher
		want string
	}{
		{"A", a, "A@1 A@2"},
		{"A and B", ab, "A@1 B@1 A@2"},
		{"all", all, "A@1 B@1 C@1 A@2"},
	} {
		if got := strings.Join(received(tt.w), " "); got != tt.want {
			t.Errorf("watcher of %s received %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := counterValue(t, e.m.watchers.WithLabelValues("grpc")); got != 3 {
		t.Errorf("watchers gauge %v, want 3", got)
	}
}

// A watcher that does not keep up is cut off with ResourceExhausted; the
// others, and publishing, go on.
func TestWatchHubCutsOffAWatcherThatFallsBehind(t *testing.T) {
	e := newHubEnv(t, 10, 2)
	slow := e.subscribe(t, false, "A")
	fast := e.subscribe(t, false, "A")

	for i := range 5 {
		e.put(t, "A", fmt.Sprint(i))
		if got := received(fast); len(got) != 1 {
			t.Fatalf("fast watcher received %q after publish %d, want one answer", got, i)
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("slow watcher with a full buffer is not cut off")
	}
	if st := apierr.Status(slow.err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "fell behind") || !strings.Contains(st.Message(), "2 changes") {
		t.Errorf("cut-off error %v, want ResourceExhausted saying it fell behind its buffer of 2", slow.err)
	}
	if got := received(slow); len(got) != 2 {
		t.Errorf("slow watcher's buffer holds %q, want the 2 it had room for", got)
	}
	select {
	case <-fast.done:
		t.Fatal("fast watcher cut off too")
	default:
	}
	if got := counterValue(t, e.m.cut.WithLabelValues("grpc", "overflow")); got != 1 {
		t.Errorf("cut-off counter %v, want 1", got)
	}
	// The cut-off watcher still holds its slot until its stream ends.
	if got := e.hub.watching(); got != 2 {
		t.Errorf("watching() = %d before the cut-off stream ended, want 2", got)
	}
	e.hub.unsubscribe(slow)
	if got := e.hub.watching(); got != 1 {
		t.Errorf("watching() = %d after the cut-off stream ended, want 1", got)
	}
}

func TestWatchHubLimitsWatchers(t *testing.T) {
	e := newHubEnv(t, 2, 4)
	w1 := e.subscribe(t, false, "A")
	e.subscribe(t, true)
	_, err := e.hub.subscribe("sse", false, []string{"B"})
	if st := apierr.Status(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "at most 2") {
		t.Fatalf("third watcher: %v, want ResourceExhausted naming the limit of 2", err)
	}
	if got := counterValue(t, e.m.refused.WithLabelValues("sse")); got != 1 {
		t.Errorf("refused counter %v, want 1", got)
	}
	e.hub.unsubscribe(w1)
	e.hub.unsubscribe(w1) // twice frees one slot, not two
	e.subscribe(t, false, "B")
	if _, err := e.hub.subscribe("grpc", false, []string{"C"}); apierr.Status(err).Code() != codes.ResourceExhausted {
		t.Fatalf("watcher past the limit after a double unsubscribe: %v, want ResourceExhausted", err)
	}
}

func TestWatchHubUnsubscribeStopsDelivery(t *testing.T) {
	e := newHubEnv(t, 10, 4)
	w := e.subscribe(t, false, "A", "B")
	all := e.subscribe(t, true)
	e.hub.unsubscribe(w)
	e.hub.unsubscribe(all)
	e.put(t, "A", "1")
	if got := received(w); len(got) != 0 {
		t.Errorf("unsubscribed watcher received %q", got)
	}
	if got := received(all); len(got) != 0 {
		t.Errorf("unsubscribed all-watcher received %q", got)
	}
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	if len(e.hub.bySKU) != 0 || len(e.hub.all) != 0 || e.hub.count != 0 {
		t.Errorf("hub still holds %d SKUs, %d all-watchers, count %d after every unsubscribe", len(e.hub.bySKU), len(e.hub.all), e.hub.count)
	}
}

func TestWatchHubCloseEndsEveryWatch(t *testing.T) {
	e := newHubEnv(t, 10, 4)
	ws := []*watcher{e.subscribe(t, false, "A"), e.subscribe(t, true)}
	e.hub.close()
	for i, w := range ws {
		select {
		case <-w.done:
		default:
			t.Fatalf("watcher %d not ended by close", i)
		}
		if apierr.Status(w.err).Code() != codes.Unavailable {
			t.Errorf("watcher %d ended with %v, want Unavailable", i, w.err)
		}
	}
	if _, err := e.hub.subscribe("grpc", true, nil); apierr.Status(err).Code() != codes.Unavailable {
		t.Errorf("subscribe after close: %v, want Unavailable", err)
	}
}

// A hub shared by several gateways' metrics: registering twice on one
// registerer shares the collectors.
func TestWatchMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := newWatchMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := newWatchMetrics(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	m1.watchers.WithLabelValues("grpc").Inc()
	if got := counterValue(t, m2.watchers.WithLabelValues("grpc")); got != 1 {
		t.Errorf("second metrics see %v watchers, want the shared 1", got)
	}
}

// blockingWriter is a transport write that blocks until released, like a
// client that does not read.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	sent    []*pb.WatchAvailabilityResponse
}

func newBlockingWriter() *blockingWriter { return &blockingWriter{release: make(chan struct{})} }

func (b *blockingWriter) write(m *pb.WatchAvailabilityResponse) error {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, m)
	return nil
}

func newTestWatchService(t *testing.T, feed views.AvailabilityFeed, maxWatchers, buffer int) *watchService {
	t.Helper()
	s, err := newWatchService(WatchOptions{Source: feed, MaxWatchers: maxWatchers, Buffer: buffer}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// A session whose transport write is stuck ends as soon as its watcher is
// cut off, and its pump's goroutine ends once the write returns.
func TestWatchSessionEndsWhileAWriteIsStuck(t *testing.T) {
	feed := views.NewMemoryAvailability()
	s := newTestWatchService(t, feed, 10, 2)
	sess, err := s.open("grpc", watchQuery{skus: []string{"A"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.close()
	bw := newBlockingWriter()
	p := startWatchPump(bw.write, 0, nil)
	done := make(chan error, 1)
	go func() { done <- sess.run(context.Background(), p) }()

	// The synced marker is stuck in the transport; the buffer takes 2.
	for i := range 4 {
		if err := feed.Put(&pb.Availability{Sku: "A", Version: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	err = <-done
	if apierr.Status(err).Code() != codes.ResourceExhausted {
		t.Fatalf("session ended with %v, want ResourceExhausted", err)
	}
	p.stop()
	close(bw.release)
	<-p.done
}

// Sessions end on ctx cancellation and leave no goroutine behind.
func TestWatchSessionsLeaveNoGoroutine(t *testing.T) {
	feed := views.NewMemoryAvailability()
	if err := feed.Put(&pb.Availability{Sku: "A", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	s := newTestWatchService(t, feed, 100, 8)
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 50 {
		q := watchQuery{all: i%2 == 0}
		if !q.all {
			q.skus = []string{"A", "B"}
		}
		sess, err := s.open("grpc", q)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		synced := make(chan struct{})
		p := startWatchPump(func(m *pb.WatchAvailabilityResponse) error {
			if m.GetSynced() {
				close(synced)
			}
			return nil
		}, time.Hour, func() error { return nil })
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sess.close()
			defer p.stop()
			if err := sess.run(ctx, p); !errors.Is(err, context.Canceled) {
				t.Errorf("session ended with %v, want context.Canceled", err)
			}
		}()
		<-synced
		cancel()
	}
	wg.Wait()
	if got := s.hub.watching(); got != 0 {
		t.Errorf("%d watchers still hold a slot", got)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before the sessions", n, before)
		}
		return nil
	})
}
