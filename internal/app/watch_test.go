package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// watchCluster is the embedded broker, every processor (reconciling every
// 200ms) and a serving role, warmed up: an event has gone all the way
// through, so later ones take milliseconds.
type watchCluster struct {
	k      kafkaOpts
	srv    *app.Serve
	client pb.AvailabilityServiceClient
	supply *goka.Emitter
}

func startWatchCluster(t *testing.T, so app.ServeOptions) *watchCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	c := &watchCluster{k: b.Kafka}
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: c.k, Base: testConfig, DataDir: t.TempDir(), ReconcileEvery: 200 * time.Millisecond})
	})
	so.Kafka, so.Base, so.DataDir, so.HTTPAddr, so.GRPCAddr = c.k, testConfig, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	srv, err := app.NewServe(so)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	conn := dialGRPC(t, srv.GRPCAddr())
	c.srv, c.client = srv, pb.NewAvailabilityServiceClient(conn)
	c.supply, err = goka.NewEmitter(c.k.Brokers, schema.Supply, schema.SupplyCodec, c.k.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.supply.Finish(); err != nil {
			t.Errorf("supply emitter: %v", err)
		}
	})
	c.level(t, "SKU-WARMUP", "WH-1", 1, time.Now(), 1)
	testkit.Eventually(t, 60*time.Second, func() error {
		_, err := c.client.GetAvailability(t.Context(), &pb.GetAvailabilityRequest{Sku: "SKU-WARMUP"})
		return err
	})
	return c
}

// level publishes a stock level.
func (c *watchCluster) level(t *testing.T, sku, loc string, onHand int64, asOf time.Time, seq uint64) {
	t.Helper()
	ev := &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
		Sku: sku, Location: loc, OnHand: onHand, AsOf: timestamppb.New(asOf), Sequence: seq}}}
	if err := c.supply.EmitSync(sku, ev); err != nil {
		t.Fatalf("emit level %s at %s: %v", sku, loc, err)
	}
}

// watch opens a gRPC watch that ends with the test.
func (c *watchCluster) watch(t *testing.T, client pb.AvailabilityServiceClient, req *pb.WatchAvailabilityRequest) grpc.ServerStreamingClient[pb.WatchAvailabilityResponse] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := client.WatchAvailability(ctx, req)
	if err != nil {
		t.Fatalf("WatchAvailability: %v", err)
	}
	return s
}

// recvUntil receives until a message satisfies ok, and returns it.
func recvUntil(t *testing.T, s grpc.ServerStreamingClient[pb.WatchAvailabilityResponse], what string, ok func(*pb.WatchAvailabilityResponse) bool) *pb.WatchAvailabilityResponse {
	t.Helper()
	for {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(m) {
			return m
		}
	}
}

func location(a *pb.Availability, id string) *pb.LocationAvailability {
	for _, l := range a.GetLocations() {
		if l.GetLocation() == id {
			return l
		}
	}
	return nil
}

func available(a *pb.Availability, channel string) int64 {
	for _, c := range a.GetChannels() {
		if c.GetChannel() == channel {
			return c.GetAvailable()
		}
	}
	return -1
}

// A merchant's stock going stale changes the answer with no event at all:
// the reconciler publishes it, and a watcher receives it. A watcher
// resuming with the version it holds then gets nothing but synced, and the
// next change.
func TestWatchSeesAMerchantGoStaleWithNoEvent(t *testing.T) {
	c := startWatchCluster(t, app.ServeOptions{})
	const sku = "SKU-STALE"
	s := c.watch(t, c.client, &pb.WatchAvailabilityRequest{Sku: []string{sku}})
	recvUntil(t, s, "synced", (*pb.WatchAvailabilityResponse).GetSynced) // nothing published yet

	now := time.Now().UTC()
	emitMessages(t, c.k, string(schema.Policies), &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "MX-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "M-1", AsOf: timestamppb.New(now.Add(-2 * time.Hour))}}})
	// The default TTL is an hour: MX-1's stock stops counting 8s from now.
	staleAt := now.Add(8 * time.Second)
	c.level(t, sku, "WH-1", 10, now.Add(-time.Minute), 1)
	c.level(t, sku, "MX-1", 20, staleAt.Add(-time.Hour), 1)

	fresh := recvUntil(t, s, "the merchant's stock counting", func(m *pb.WatchAvailabilityResponse) bool {
		l := location(m.GetAvailability(), "MX-1")
		return l.GetKind() == pb.LocationKind_LOCATION_KIND_MERCHANT && l.GetOnHand() == 20 && location(m.GetAvailability(), "WH-1") != nil
	}).GetAvailability()
	if location(fresh, "MX-1").GetStale() || available(fresh, "web") != 30 {
		t.Fatalf("before %s: MX-1 stale=%v, web available %d; want fresh and 30 (took too long?):\n%v",
			staleAt, location(fresh, "MX-1").GetStale(), available(fresh, "web"), fresh)
	}

	// Nothing more is published to any input: the change comes anyway.
	m, err := s.Recv()
	if err != nil {
		t.Fatalf("waiting for the stale answer: %v", err)
	}
	stale := m.GetAvailability()
	if l := location(stale, "MX-1"); !l.GetStale() || available(stale, "web") != 10 || stale.GetVersion() == fresh.GetVersion() {
		t.Fatalf("next change: MX-1 stale=%v, web available %d; want stale and 10:\n%v", l.GetStale(), available(stale, "web"), stale)
	}
	if at := stale.GetEvaluatedAt().AsTime(); at.Before(staleAt) {
		t.Errorf("stale answer evaluated at %s, before the stock went stale at %s", at, staleAt)
	}
	var reason bool
	for _, ch := range stale.GetChannels() {
		for _, r := range ch.GetReasons() {
			reason = reason || (r.GetCode() == pb.Reason_LOCATION_STALE && r.GetLocation() == "MX-1")
		}
	}
	if !reason {
		t.Errorf("stale answer gives no LOCATION_STALE reason for MX-1:\n%v", stale)
	}
	t.Logf("stale answer arrived %s after the stock went stale", time.Since(staleAt).Round(time.Millisecond))

	// Resume with the version held: synced alone, then the next change.
	r := c.watch(t, c.client, &pb.WatchAvailabilityRequest{Sku: []string{sku}, Versions: map[string]string{sku: stale.GetVersion()}})
	if m, err := r.Recv(); err != nil || !m.GetSynced() {
		t.Fatalf("resumed watch's first message: %v, %v; want synced", m, err)
	}
	c.level(t, sku, "WH-1", 7, now, 2)
	if m, err := r.Recv(); err != nil || available(m.GetAvailability(), "web") != 7 {
		t.Fatalf("resumed watch's next message: %v, %v; want the change to 7", m, err)
	}
}

// watching reads the gateway's gauge of gRPC watchers.
func watching(t *testing.T, httpAddr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `skuflow_watchers{transport="grpc"} `); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// A watcher that never reads is cut off with RESOURCE_EXHAUSTED while a
// watcher beside it keeps receiving every change.
func TestWatchCutsOffASlowWatcherEndToEnd(t *testing.T) {
	c := startWatchCluster(t, app.ServeOptions{WatchBuffer: 8})
	const sku = "SKU-BUSY"
	// Forty locations make every answer a few KiB.
	base := time.Now().UTC().Add(-time.Minute)
	for i := range 40 {
		c.level(t, sku, fmt.Sprintf("WH-%02d", i), 1, base, 1)
	}
	fast := c.watch(t, c.client, &pb.WatchAvailabilityRequest{Sku: []string{sku}})
	recvUntil(t, fast, "all forty locations", func(m *pb.WatchAvailabilityResponse) bool { return len(m.GetAvailability().GetLocations()) == 40 })

	// The smallest windows gRPC allows: the server's sends block after
	// about 128 KiB (the client's window plus the server's write quota).
	slowConn, err := grpc.NewClient(c.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slowConn.Close() })
	slow := c.watch(t, pb.NewAvailabilityServiceClient(slowConn), &pb.WatchAvailabilityRequest{Sku: []string{sku}})
	testkit.Eventually(t, 30*time.Second, func() error {
		if n := watching(t, c.srv.HTTPAddr()); n != 2 {
			return fmt.Errorf("%v gRPC watchers, want 2", n)
		}
		return nil
	})

	n := 1
	for watching(t, c.srv.HTTPAddr()) == 2 {
		if n > 2000 {
			t.Fatal("the slow watcher was never cut off")
		}
		n++
		c.level(t, sku, "WH-00", int64(n), base.Add(time.Duration(n)*time.Millisecond), uint64(n))
		recvUntil(t, fast, fmt.Sprintf("WH-00 at %d", n), func(m *pb.WatchAvailabilityResponse) bool {
			return location(m.GetAvailability(), "WH-00").GetOnHand() == int64(n)
		})
	}
	t.Logf("slow watcher cut off after %d changes", n-1)
	n++
	c.level(t, sku, "WH-00", int64(n), base.Add(time.Duration(n)*time.Millisecond), uint64(n))
	recvUntil(t, fast, "the change after the cut-off", func(m *pb.WatchAvailabilityResponse) bool {
		return location(m.GetAvailability(), "WH-00").GetOnHand() == int64(n)
	})

	// Reading at last, the slow client gets what was in flight, then why
	// its stream ended.
	for {
		m, err := slow.Recv()
		if err != nil {
			if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "fell behind") {
				t.Fatalf("slow watcher ended with %v, want RESOURCE_EXHAUSTED saying it fell behind", err)
			}
			break
		}
		if location(m.GetAvailability(), "WH-00").GetOnHand() == int64(n) {
			t.Fatal("the slow watcher received a change published after it was cut off")
		}
	}
}

// An indexer's all = true watch sees a SKU that did not exist when it
// started; so does an SSE watch of that SKU, whose events are JSON; past
// --max-watchers a watch is refused.
func TestWatchAllAndSSEEndToEnd(t *testing.T) {
	c := startWatchCluster(t, app.ServeOptions{MaxWatchers: 2})
	all := c.watch(t, c.client, &pb.WatchAvailabilityRequest{All: true})
	recvUntil(t, all, "synced", (*pb.WatchAvailabilityResponse).GetSynced)

	const sku = "SKU-BRAND-NEW"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.srv.HTTPAddr()+"/v1/availability:watch?sku="+sku, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE watch: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := sseEvents(resp.Body)
	if m := nextEvent(t, events); !m.GetSynced() {
		t.Fatalf("first SSE event %v, want synced (%s is not published yet)", m, sku)
	}

	// A third watch is refused, over either transport.
	over, err := http.Get("http://" + c.srv.HTTPAddr() + "/v1/availability:watch?all=true")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(over.Body)
	over.Body.Close()
	if over.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "too many watchers") {
		t.Errorf("watch past --max-watchers: %d %s, want 429 saying so", over.StatusCode, body)
	}
	if _, err := c.watch(t, c.client, &pb.WatchAvailabilityRequest{Sku: []string{sku}}).Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC watch past --max-watchers: %v, want RESOURCE_EXHAUSTED", err)
	}

	c.level(t, sku, "WH-1", 5, time.Now(), 1)
	got := recvUntil(t, all, sku, func(m *pb.WatchAvailabilityResponse) bool { return m.GetAvailability().GetSku() == sku })
	if available(got.GetAvailability(), "web") != 5 {
		t.Errorf("all-watcher got %v, want 5 available on web", got)
	}
	m := nextEvent(t, events)
	if !proto.Equal(m.GetAvailability(), got.GetAvailability()) {
		t.Errorf("SSE event %v, want the answer the gRPC watcher got, %v", m, got)
	}
}

type sseResult struct {
	m   *pb.WatchAvailabilityResponse
	err error
}

// sseEvents parses a text/event-stream body: each event's data is a
// WatchAvailabilityResponse in JSON.
func sseEvents(body io.Reader) <-chan sseResult {
	out := make(chan sseResult, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && data != nil:
				var m pb.WatchAvailabilityResponse
				err := protojson.Unmarshal([]byte(strings.Join(data, "\n")), &m)
				out <- sseResult{&m, err}
				data = nil
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			case strings.HasPrefix(line, "event: "):
				out <- sseResult{err: fmt.Errorf("unexpected %s", line)}
			}
		}
		out <- sseResult{err: fmt.Errorf("stream ended: %v", sc.Err())}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan sseResult) *pb.WatchAvailabilityResponse {
	t.Helper()
	select {
	case r := <-events:
		if r.err != nil {
			t.Fatalf("SSE: %v", r.err)
		}
		return r.m
	case <-time.After(60 * time.Second):
		t.Fatal("no SSE event within 60s")
	}
	return nil
}
