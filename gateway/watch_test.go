package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// watchEnv is a gateway whose watches follow an in-memory availability
// feed.
type watchEnv struct {
	*env
	feed *views.MemoryAvailability
	// stream is an HTTP client without a timeout, for SSE.
	stream *http.Client
}

func startWatch(t *testing.T, o gateway.WatchOptions) *watchEnv {
	t.Helper()
	e := &watchEnv{env: &env{stock: views.NewMemory(), fix: newFixture(t), clock: newClock(now)}, feed: views.NewMemoryAvailability()}
	e.fix.putStates(e.stock)
	e.fix.putPolicies(t, e.stock)
	opts := options(e.stock, e.stock)
	opts.Now = e.clock.Now
	o.Source = e.feed
	opts.Watch = o
	e.serve(t, opts)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.stream = &http.Client{Transport: tr}
	return e
}

// put publishes an answer for sku with version v to the feed.
func (e *watchEnv) put(t *testing.T, sku, v string) {
	t.Helper()
	if err := e.feed.Put(&pb.Availability{Sku: sku, Version: v, OnHand: int64(len(v))}); err != nil {
		t.Fatal(err)
	}
}

// watch opens a gRPC watch that ends with the test.
func watch(t *testing.T, c pb.AvailabilityServiceClient, req *pb.WatchAvailabilityRequest) grpc.ServerStreamingClient[pb.WatchAvailabilityResponse] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := c.WatchAvailability(ctx, req)
	if err != nil {
		t.Fatalf("WatchAvailability: %v", err)
	}
	return s
}

// label is a response as "SKU@version", or "synced".
func label(m *pb.WatchAvailabilityResponse) string {
	if m.GetSynced() {
		return "synced"
	}
	return m.GetAvailability().GetSku() + "@" + m.GetAvailability().GetVersion()
}

// expect receives len(want) messages and checks them in order.
func expect(t *testing.T, s grpc.ServerStreamingClient[pb.WatchAvailabilityResponse], want ...string) {
	t.Helper()
	for i, w := range want {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("message %d: %v, want %s", i, err, w)
		}
		if got := label(m); got != w {
			t.Fatalf("message %d is %s, want %s", i, got, w)
		}
	}
}

func TestWatchSendsCurrentAnswersThenChanges(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.put(t, "A", "a1")
	e.put(t, "B", "b1")
	s := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"B", "A", "NEW", "B"}})
	expect(t, s, "B@b1", "A@a1", "synced")
	e.put(t, "NEW", "n1") // not known at the start: its first answer is a change
	e.put(t, "A", "a2")
	e.put(t, "B", "b1") // the same answer again is not re-sent
	e.put(t, "OTHER", "o1")
	e.put(t, "B", "b2")
	expect(t, s, "NEW@n1", "A@a2", "B@b2")
}

// Resuming with the versions held: unchanged SKUs are not sent, changed
// ones are, then the changes follow.
func TestWatchResumesFromVersions(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.put(t, "A", "a1")
	e.put(t, "B", "b2")
	s := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A", "B"}, Versions: map[string]string{"A": "a1", "B": "b1"}})
	expect(t, s, "B@b2", "synced")
	s = watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A", "B"}, Versions: map[string]string{"A": "a1", "B": "b2"}})
	expect(t, s, "synced")
	e.put(t, "A", "a2")
	expect(t, s, "A@a2")
	s = watch(t, e.avail, &pb.WatchAvailabilityRequest{All: true, Versions: map[string]string{"A": "a2"}})
	expect(t, s, "B@b2", "synced")
}

func TestWatchAllSeesNewSKUs(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.put(t, "B", "b1")
	e.put(t, "A", "a1")
	s := watch(t, e.avail, &pb.WatchAvailabilityRequest{All: true})
	expect(t, s, "A@a1", "B@b1", "synced")
	e.put(t, "BRAND-NEW", "x1")
	e.put(t, "A", "a2")
	expect(t, s, "BRAND-NEW@x1", "A@a2")
}

func TestWatchRejectsBadRequests(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{MaxSKUs: 3})
	for _, tt := range []struct {
		name  string
		req   *pb.WatchAvailabilityRequest
		query string
		want  string
	}{
		{"nothing", &pb.WatchAvailabilityRequest{}, "", "nothing to watch"},
		{"sku and all", &pb.WatchAvailabilityRequest{Sku: []string{"A"}, All: true}, "sku=A&all=true", "not both"},
		{"malformed SKU", &pb.WatchAvailabilityRequest{Sku: []string{"A", "B\x01"}}, "sku=A&sku=B%01", `sku[1] "B\x01" has a control character`},
		{"empty SKU", &pb.WatchAvailabilityRequest{Sku: []string{""}}, "sku=", "sku[0] is empty"},
		{"too many SKUs", &pb.WatchAvailabilityRequest{Sku: []string{"A", "B", "C", "D"}}, "sku=A&sku=B&sku=C&sku=D", "4 SKUs given; one watch takes at most 3"},
		{"malformed versions key", &pb.WatchAvailabilityRequest{Sku: []string{"A"}, Versions: map[string]string{" A": "1"}}, "sku=A&versions%5B+A%5D=1", `versions key " A" starts or ends with a space`},
		{"version too long", &pb.WatchAvailabilityRequest{All: true, Versions: map[string]string{"A": strings.Repeat("v", 300)}}, "all=true&versions%5BA%5D=" + strings.Repeat("v", 300), "longer than 256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := watch(t, e.avail, tt.req).Recv()
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.want) {
				t.Errorf("gRPC: %v, want InvalidArgument mentioning %q", err, tt.want)
			}
			r := e.get(t, "/v1/availability:watch?"+tt.query)
			if b := errorBody(t, r); r.status != http.StatusBadRequest || b.Code != codes.InvalidArgument || !strings.Contains(b.Message, tt.want) {
				t.Errorf("REST: %d %+v, want 400 mentioning %q", r.status, b, tt.want)
			}
		})
	}
	for query, want := range map[string]string{
		"skus=A":            `unknown query parameter "skus"`,
		"all=maybe":         `all="maybe" is not a boolean`,
		"all=true&all=true": "all is given 2 times",
	} {
		r := e.get(t, "/v1/availability:watch?"+query)
		if b := errorBody(t, r); r.status != http.StatusBadRequest || !strings.Contains(b.Message, want) {
			t.Errorf("REST ?%s: %d %+v, want 400 mentioning %q", query, r.status, b, want)
		}
	}
}

func TestWatchNotReady(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.feed.SetReady(false)
	_, err := watch(t, e.avail, &pb.WatchAvailabilityRequest{All: true}).Recv()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC watch before the feed recovered: %v, want Unavailable", err)
	}
	if r := e.get(t, "/v1/availability:watch?all=true"); r.status != http.StatusServiceUnavailable {
		t.Errorf("SSE watch before the feed recovered: %d, want 503", r.status)
	}
	if r := e.get(t, "/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the watch feed recovers: %d, want 503", r.status)
	}
}

func TestWatchNotOfferedWithoutAFeed(t *testing.T) {
	e := start(t, true)
	_, err := watch(t, e.avail, &pb.WatchAvailabilityRequest{All: true}).Recv()
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("gRPC watch without a feed: %v, want Unimplemented", err)
	}
	if r := e.get(t, "/v1/availability:watch?all=true"); r.status != http.StatusNotImplemented {
		t.Errorf("SSE watch without a feed: %d, want 501", r.status)
	}
}

func TestWatchLimitsWatchers(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{MaxWatchers: 2})
	ctx1, cancel1 := context.WithCancel(t.Context())
	s1, err := e.avail.WatchAvailability(ctx1, &pb.WatchAvailabilityRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, s1, "synced")
	sse := openSSE(t, e.stream, e.base+"/v1/availability:watch?sku=A", nil)
	sse.expect(t, "synced")

	_, err = watch(t, e.avail, &pb.WatchAvailabilityRequest{All: true}).Recv()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "at most 2") {
		t.Errorf("gRPC watch past the limit: %v, want ResourceExhausted naming the limit", err)
	}
	r := e.get(t, "/v1/availability:watch?all=true")
	if b := errorBody(t, r); r.status != http.StatusTooManyRequests || b.Code != codes.ResourceExhausted || !strings.Contains(b.Message, "at most 2") {
		t.Errorf("SSE watch past the limit: %d %+v, want 429 naming the limit", r.status, b)
	}

	// A watch that ends frees its slot.
	cancel1()
	testkit.Eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := e.avail.WatchAvailability(ctx, &pb.WatchAvailabilityRequest{All: true})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	})
}

// A client that never reads is cut off with ResourceExhausted, and learns
// it once it reads; a watcher beside it keeps receiving.
func TestWatchCutsOffASlowWatcher(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{Buffer: 4})
	// The smallest windows gRPC allows, so the server's sends block after
	// about 128 KiB (the client's window plus the server's write quota).
	slowConn, err := grpc.NewClient(e.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slowConn.Close() })
	slow := watch(t, pb.NewAvailabilityServiceClient(slowConn), &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
	fast := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
	expect(t, fast, "synced")

	pad := strings.Repeat("x", 4<<10) // 4 KiB answers
	n := 0
	for {
		n++
		if err := e.feed.Put(&pb.Availability{Sku: "A", Version: fmt.Sprint(n), ShipToRegion: pad}); err != nil {
			t.Fatal(err)
		}
		expect(t, fast, fmt.Sprintf("A@%d", n))
		if e.metric(t, `skuflow_watchers{transport="grpc"}`) == 1 {
			break
		}
		if n > 1000 {
			t.Fatal("the slow watcher was never cut off")
		}
	}
	t.Logf("slow watcher cut off after %d changes", n)
	e.put(t, "A", "after")
	expect(t, fast, "A@after")

	// Reading now, the slow client gets what was in flight, then the end.
	var got int
	for {
		m, err := slow.Recv()
		if err != nil {
			if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "fell behind") {
				t.Fatalf("slow watcher ended with %v, want ResourceExhausted saying it fell behind", err)
			}
			break
		}
		got++
		if m.GetAvailability().GetVersion() == "after" {
			t.Fatal("the slow watcher got a change published after it was cut off")
		}
	}
	if got == 0 || got >= n+1 {
		t.Errorf("slow watcher read %d messages before the end, want some but fewer than the %d sent", got, n+1)
	}
}

func TestWatchSSE(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.put(t, "A", "a1")
	e.put(t, "B/1", "b1")
	sse := openSSE(t, e.stream, e.base+"/v1/availability:watch?sku=A&sku="+url.QueryEscape("B/1"), nil)
	if ct := sse.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	first := sse.expect(t, "A@a1", "B/1@b1", "synced")
	if first[0].id != "A:a1" || first[1].id != "B/1:b1" || first[2].id != "" {
		t.Errorf("event ids %q %q %q, want SKU:VERSION on answers and none on synced", first[0].id, first[1].id, first[2].id)
	}
	e.put(t, "A", "a2")
	sse.expect(t, "A@a2")

	// Resume: the versions held as query parameters, or the last event id
	// (which EventSource sends when it reconnects).
	sse = openSSE(t, e.stream, e.base+"/v1/availability:watch?sku=A&sku=B%2F1&versions%5BB%2F1%5D=b1", http.Header{"Last-Event-ID": {"A:a2"}})
	sse.expect(t, "synced")
	e.put(t, "B/1", "b2")
	sse.expect(t, "B/1@b2")

	sse = openSSE(t, e.stream, e.base+"/v1/availability:watch?all=true", nil)
	sse.expect(t, "A@a2", "B/1@b2", "synced")
	e.put(t, "C", "c1")
	sse.expect(t, "C@c1")
}

func TestWatchEndsOnShutdown(t *testing.T) {
	e := &watchEnv{env: &env{stock: views.NewMemory()}, feed: views.NewMemoryAvailability()}
	opts := options(e.stock, e.stock)
	opts.Watch.Source = e.feed
	opts.ShutdownTimeout = time.Minute // a watch must not hold shutdown up
	srv, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop, done := runInBackground(srv)
	defer stop()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := watch(t, pb.NewAvailabilityServiceClient(conn), &pb.WatchAvailabilityRequest{All: true})
	expect(t, s, "synced")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	sse := openSSE(t, &http.Client{Transport: tr}, "http://"+srv.HTTPAddr()+"/v1/availability:watch?all=true", nil)
	sse.expect(t, "synced")

	start := time.Now()
	stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC watch at shutdown: %v, want Unavailable", err)
	}
	ev := sse.next(t)
	if ev.event != "end" || !strings.Contains(ev.data, "shutting down") {
		t.Errorf("SSE watch at shutdown: event %+v, want an error event saying so", ev)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s with watches open")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown with watches open took %s", d)
	}
}

func TestWatchOptionsValidate(t *testing.T) {
	o := options(views.NewMemory(), views.NewMemory())
	o.Watch = gateway.WatchOptions{MaxWatchers: -1, Buffer: gateway.MaxWatchBuffer + 1, MaxSKUs: -1}
	err := o.Validate()
	for _, want := range []string{"max watchers -1 is negative", "watch buffer 1048577 is outside", "max SKUs per watch -1 is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	o.Watch = gateway.WatchOptions{Source: views.NewMemoryAvailability(), MaxWatchers: 1, Buffer: 1, MaxSKUs: 1}
	if err := o.Validate(); err != nil {
		t.Errorf("valid watch options: %v", err)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// sseStream reads events from a text/event-stream response.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	errc   chan error
}

// openSSE starts an SSE request that ends with the test and checks it
// was accepted.
func openSSE(t *testing.T, c *http.Client, u string, h http.Header) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent), errc: make(chan error, 1)}
	go s.read(ctx)
	return s
}

func (s *sseStream) read(ctx context.Context) {
	r := bufio.NewReader(s.resp.Body)
	var ev sseEvent
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.errc <- err
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data == nil {
				continue // a comment-only block
			}
			ev.data = strings.Join(data, "\n")
			select {
			case s.events <- ev:
			case <-ctx.Done():
				return
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			s.errc <- fmt.Errorf("unexpected line %q", line)
			return
		}
	}
}

// next waits for the next event.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.errc:
		t.Fatalf("SSE stream ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no SSE event within 30s")
	}
	return sseEvent{}
}

// expect reads len(want) events, each a WatchAvailabilityResponse in JSON,
// and checks them in order.
func (s *sseStream) expect(t *testing.T, want ...string) []sseEvent {
	t.Helper()
	var evs []sseEvent
	for i, w := range want {
		ev := s.next(t)
		if ev.event != "" {
			t.Fatalf("event %d is of type %q (%s), want a message", i, ev.event, ev.data)
		}
		var m pb.WatchAvailabilityResponse
		if err := protojson.Unmarshal([]byte(ev.data), &m); err != nil {
			t.Fatalf("event %d data %q is not a WatchAvailabilityResponse: %v", i, ev.data, err)
		}
		if got := label(&m); got != w {
			t.Fatalf("event %d is %s, want %s", i, got, w)
		}
		evs = append(evs, ev)
	}
	return evs
}

// metric reads one sample of the gateway's /metrics, 0 if absent.
func (e *watchEnv) metric(t *testing.T, series string) float64 {
	t.Helper()
	r := e.get(t, "/metrics")
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

// An SSE client over a real connection that does not keep up (it never
// reads) is cut off, and its handler returns, freeing its slot. (Whether a
// write stuck on a full TCP window is cut short is TestSSEStuckWriteIsCutShort.)
func TestWatchSSECutsOffAClientThatStopsReading(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{Buffer: 4})
	conn, err := net.Dial("tcp", e.srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /v1/availability:watch?sku=A HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := e.metric(t, `skuflow_watchers{transport="sse"}`); n != 1 {
			return fmt.Errorf("%v SSE watchers, want 1", n)
		}
		return nil
	})
	pad := strings.Repeat("x", 16<<10)
	for i := 1; e.metric(t, `skuflow_watchers_cut_off_total{reason="overflow",transport="sse"}`) == 0; i++ {
		if i > 100000 {
			t.Fatal("an SSE client that does not read was never cut off")
		}
		for j := range 50 {
			if err := e.feed.Put(&pb.Availability{Sku: "A", Version: fmt.Sprint(i, ".", j), ShipToRegion: pad}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testkit.Eventually(t, 20*time.Second, func() error {
		if n := e.metric(t, `skuflow_watchers{transport="sse"}`); n != 0 {
			return fmt.Errorf("%v SSE watchers, want 0 once the stuck write is cut short", n)
		}
		return nil
	})
}

// A feed that stops (its view failed or is shutting down) ends every watch
// with Unavailable, including one still being sent its current answers.
func TestWatchEndsWhenTheFeedStops(t *testing.T) {
	e := startWatch(t, gateway.WatchOptions{})
	e.put(t, "A", "a1")
	s := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
	expect(t, s, "A@a1", "synced")
	sse := openSSE(t, e.stream, e.base+"/v1/availability:watch?all=true", nil)
	sse.expect(t, "A@a1", "synced")
	e.feed.Stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC watch after the feed stopped: %v, want Unavailable", err)
	}
	if ev := sse.next(t); ev.event != "end" || !strings.Contains(ev.data, "feed stopped") {
		t.Errorf("SSE watch after the feed stopped: %+v, want an error event saying so", ev)
	}
}
