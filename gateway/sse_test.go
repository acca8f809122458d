package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// stuckResponse is an SSE client that does not read: every write waits
// until release is closed.
type stuckResponse struct {
	header  http.Header
	release chan struct{}
	writing chan struct{} // closed at the first write
	once    sync.Once
	mu      sync.Mutex
	body    bytes.Buffer
}

func (r *stuckResponse) Header() http.Header { return r.header }
func (r *stuckResponse) WriteHeader(int)     {}
func (r *stuckResponse) Write(b []byte) (int, error) {
	r.once.Do(func() { close(r.writing) })
	<-r.release
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(b)
}

func (r *stuckResponse) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.String()
}

// An SSE client that falls behind is cut off: once its stuck write
// returns, it is told why with an "end" event, and the handler returns.
func TestSSECutOffEndsWithAnErrorEvent(t *testing.T) {
	feed := views.NewMemoryAvailability()
	if err := feed.Put(&pb.Availability{Sku: "A", Version: "0"}); err != nil {
		t.Fatal(err)
	}
	s := newTestWatchService(t, feed, 10, 2)
	w := &stuckResponse{header: http.Header{}, release: make(chan struct{}), writing: make(chan struct{})}
	r := httptest.NewRequest(http.MethodGet, "/v1/availability:watch?sku=A", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveSSE(runtime.NewServeMux())(w, r)
	}()
	<-w.writing // the current answer is stuck in the transport
	for i := 1; ; i++ {
		if err := feed.Put(&pb.Availability{Sku: "A", Version: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if cutCount(t, s) == 1 {
			break
		}
		if i > 100 {
			t.Fatal("the stuck SSE watcher was never cut off")
		}
	}
	close(w.release)
	<-done
	out := w.String()
	if !strings.HasPrefix(out, "id: A:0\ndata: ") {
		t.Errorf("stream does not start with the current answer:\n%s", out)
	}
	i := strings.Index(out, "event: end\ndata: ")
	if i < 0 || !strings.Contains(out[i:], `"code":8`) || !strings.Contains(out[i:], "fell behind") || !strings.HasSuffix(out, "\n\n") {
		t.Errorf("stream does not end with an error event saying the watcher fell behind:\n%s", out)
	}
	if w.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("Content-Type %q", w.header.Get("Content-Type"))
	}
	if n := s.hub.watching(); n != 0 {
		t.Errorf("%d watchers after the handler returned", n)
	}
}

func cutCount(t *testing.T, s *watchService) float64 {
	t.Helper()
	return counterValue(t, s.hub.metrics.cut.WithLabelValues("sse", "overflow"))
}

// A client that goes away ends the stream, and frees its slot.
func TestSSEEndsWhenTheClientLeaves(t *testing.T) {
	feed := views.NewMemoryAvailability()
	s := newTestWatchService(t, feed, 10, 8)
	ctx, cancel := context.WithCancel(context.Background())
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v1/availability:watch?all=true", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveSSE(runtime.NewServeMux())(rec, r)
	}()
	cancel()
	<-done
	if n := s.hub.watching(); n != 0 {
		t.Errorf("%d watchers after the client left", n)
	}
	if strings.Contains(rec.Body.String(), "event: end") {
		t.Errorf("an error event for a client that left:\n%s", rec.Body.String())
	}
}

func TestWatchRequestFromQuery(t *testing.T) {
	req, err := watchRequestFromQuery("sku=B&sku=A%3A1&versions%5BA%3A1%5D=v1&all=false", "B:v2")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(req.GetSku()) != "[B A:1]" || req.GetAll() || fmt.Sprint(req.GetVersions()) != "map[A:1:v1 B:v2]" {
		t.Errorf("parsed %v", req)
	}
	for _, tt := range []struct{ query, lastEventID, want string }{
		{"sku=A", "no-colon", "Last-Event-ID"},
		{"sku=A", "A:", "Last-Event-ID"},
		{"sku=A&versions%5BA%5D=1&versions%5BA%5D=2", "", "given 2 times"},
		{"sku=A&versions%5B%5D=1", "", "unknown query parameter"},
		{"sku=%zz", "", "does not parse"},
	} {
		if _, err := watchRequestFromQuery(tt.query, tt.lastEventID); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("?%s Last-Event-ID %q: %v, want an error mentioning %q", tt.query, tt.lastEventID, err, tt.want)
		}
	}
}

// deadlineResponse is a stuck client whose connection honours write
// deadlines, as net/http's does: setting one ends the stuck write.
type deadlineResponse struct {
	*stuckResponse
	mu        sync.Mutex
	deadlines []time.Time
	expired   chan struct{}
	expire    sync.Once
}

func (r *deadlineResponse) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	r.deadlines = append(r.deadlines, t)
	r.mu.Unlock()
	if !t.IsZero() {
		r.expire.Do(func() { close(r.expired) })
	}
	return nil
}

func (r *deadlineResponse) Write(b []byte) (int, error) {
	r.once.Do(func() { close(r.writing) })
	select {
	case <-r.release:
		return r.stuckResponse.Write(b)
	case <-r.expired:
		return 0, os.ErrDeadlineExceeded
	}
}

// A write stuck on a client that does not read does not hold the handler:
// ending the stream sets a write deadline, which ends the write; nobody is
// left to tell, and the deadline is cleared again.
func TestSSEStuckWriteIsCutShort(t *testing.T) {
	feed := views.NewMemoryAvailability()
	if err := feed.Put(&pb.Availability{Sku: "A", Version: "0"}); err != nil {
		t.Fatal(err)
	}
	s := newTestWatchService(t, feed, 10, 2)
	w := &deadlineResponse{stuckResponse: &stuckResponse{header: http.Header{}, release: make(chan struct{}), writing: make(chan struct{})}, expired: make(chan struct{})}
	r := httptest.NewRequest(http.MethodGet, "/v1/availability:watch?sku=A", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveSSE(runtime.NewServeMux())(w, r)
	}()
	<-w.writing
	for i := 1; cutCount(t, s) == 0; i++ {
		if err := feed.Put(&pb.Availability{Sku: "A", Version: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if i > 100 {
			t.Fatal("the stuck SSE watcher was never cut off")
		}
	}
	<-done // never released: the deadline ended the write
	if out := w.String(); out != "" {
		t.Errorf("wrote %q to a client whose writes failed", out)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.deadlines); n < 2 || !w.deadlines[n-1].IsZero() {
		t.Errorf("write deadlines %v: want one set, then cleared", w.deadlines)
	}
}

// The gateway's own wrappers of the response (request log, metrics) let
// http.ResponseController reach the connection, so the deadline above
// works behind them.
func TestResponseWrappersReachTheConnection(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /probe", func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		if err := errors.Join(rc.SetWriteDeadline(time.Now().Add(time.Minute)), rc.SetWriteDeadline(time.Time{})); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := rc.Flush(); err != nil {
			t.Errorf("flush through the wrappers: %v", err)
		}
	})
	srv := httptest.NewServer(logHTTP(slog.New(slog.DiscardHandler), m.instrument(mux)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/probe")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("deadline through the wrappers: %d %s", resp.StatusCode, b)
	}
}
