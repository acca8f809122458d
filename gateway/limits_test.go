package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/gateway"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// startLimited serves the fixture with a watch feed, the reservation API
// and a hand-written streamed route (streamedService), with opts changed by
// set.
func startLimited(t *testing.T, logs io.Writer, set func(*gateway.Options)) *watchEnv {
	t.Helper()
	e := &watchEnv{env: &env{stock: views.NewMemory(), fix: newFixture(t), clock: newClock(now)}, feed: views.NewMemoryAvailability()}
	e.fix.putStates(e.stock)
	e.fix.putPolicies(t, e.stock)
	e.stock.SetReady(true)
	opts := options(e.stock, e.stock)
	opts.Now = e.clock.Now
	opts.Watch = gateway.WatchOptions{Source: e.feed}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	orders, err := gateway.NewOrders(gateway.OrdersOptions{Bus: newMemBus(busStates(t)...)})
	if err != nil {
		t.Fatal(err)
	}
	opts.Services = []gateway.Service{orders, streamedService{}}
	if set != nil {
		set(&opts)
	}
	e.serve(t, opts)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.stream = &http.Client{Transport: tr}
	return e
}

// streamedService is a service with a hand-written streamed route, as the
// feed upload is: POST /v1/test/upload answers how many bytes it read.
type streamedService struct{}

func (streamedService) RegisterGRPC(*grpc.Server) {}
func (streamedService) Ready() bool               { return true }
func (streamedService) RegisterHTTP(mux *http.ServeMux, _ *runtime.ServeMux) error {
	mux.HandleFunc("POST /v1/test/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("read %d bytes: %v", n, err), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
	return nil
}

// post sends body (of unknown length when chunked) to path.
func (e *env) send(t *testing.T, path string, body []byte, chunked bool) response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // no Len: sent chunked, without a Content-Length
	}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// batchBody is a BatchGetAvailability JSON body of about n bytes.
func batchBody(n int) []byte {
	return []byte(`{"sku":["` + strings.Repeat("A", n) + `"]}`)
}

// Every REST route the gateway serves takes a body of at most
// MaxRequestBytes (413, the usual JSON error), whether its length is
// announced or not; gRPC's receive limit is the same. A service's streamed
// route bounds its own body.
func TestRequestBodiesAreBounded(t *testing.T) {
	const limit = 64 << 10
	e := startLimited(t, nil, func(o *gateway.Options) { o.MaxRequestBytes = limit })
	for _, path := range []string{"/v1/availability:batchGet", "/v1/orders", "/v1/orders/o-1:extend"} {
		for _, chunked := range []bool{false, true} {
			r := e.send(t, path, batchBody(limit), chunked)
			b := errorBody(t, r)
			want := fmt.Sprintf("request body is larger than the limit of %d bytes", limit)
			if r.status != http.StatusRequestEntityTooLarge || b.Code != codes.ResourceExhausted || b.Message != want {
				t.Errorf("POST %s (chunked %v) of %d bytes: %d %s %q, want 413 %s %q", path, chunked, limit, r.status, b.Code, b.Message, codes.ResourceExhausted, want)
			}
		}
	}
	// Under the limit: answered as usual.
	if r := e.send(t, "/v1/availability:batchGet", []byte(`{"sku":["SKU-1"]}`), true); r.status != http.StatusOK {
		t.Errorf("a small batch: %d %s", r.status, r.body)
	}
	// gRPC: the same limit.
	_, err := e.avail.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: []string{strings.Repeat("A", limit)}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
		t.Errorf("gRPC request of %d bytes: %s %q, want ResourceExhausted", limit, st.Code(), st.Message())
	}
	// A service's hand-written streamed route is not cut at the limit.
	if r := e.send(t, "/v1/test/upload", make([]byte, 3*limit), true); r.status != http.StatusOK || string(r.body) != fmt.Sprint(3*limit) {
		t.Errorf("streamed upload of %d bytes: %d %s", 3*limit, r.status, r.body)
	}
}

// The default limit is gRPC's default receive size, 4 MiB.
func TestRequestBodyDefaultLimit(t *testing.T) {
	e := startLimited(t, nil, nil)
	// Sent chunked: the gateway reads up to the limit and answers (a body
	// announced larger is refused before it is sent, which a client still
	// writing it may see as a reset connection).
	r := e.send(t, "/v1/orders", batchBody(gateway.DefaultMaxRequestBytes), true)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /v1/orders of 4 MiB: %d %.200s, want 413", r.status, r.body)
	}
}

// rawConn is a TCP connection to the gateway's HTTP port.
func rawConn(t *testing.T, e *env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on the test, not on the server: a server that never answers
	// fails the read.
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// A client that sends part of a body and stops is answered 408 once the
// body timeout passes (a bounded route), and a stalled streamed upload is
// ended; neither holds its connection for good.
func TestStalledBodiesTimeOut(t *testing.T) {
	e := startLimited(t, nil, func(o *gateway.Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	for _, path := range []string{"/v1/orders", "/v1/test/upload"} {
		c, rd := rawConn(t, e.env)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"orderId\":", path)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("POST %s with a stalled body: no answer: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusRequestTimeout
		if path == "/v1/test/upload" {
			want = http.StatusBadRequest // the service's own answer to a failed read
		}
		if resp.StatusCode != want {
			t.Errorf("POST %s with a stalled body: %d %s, want %d", path, resp.StatusCode, b, want)
		}
		if path == "/v1/orders" && !strings.Contains(string(b), "did not arrive within 300ms") {
			t.Errorf("POST %s with a stalled body: %s", path, b)
		}
	}
	// A route that answers without reading the body: net/http drains the
	// body after the answer, under the same timeout, then closes the
	// connection instead of waiting for a body that never comes.
	c, rd := rawConn(t, e.env)
	fmt.Fprint(c, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	if resp, err := http.ReadResponse(rd, nil); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Errorf("POST /healthz with a body never sent: read %v, want EOF (the connection closed)", err)
	}
}

// A gRPC call whose request message never comes is cancelled after the
// body timeout; a watch, once it has its request, runs past it.
func TestStalledGRPCRequestsAreCancelled(t *testing.T) {
	e := startLimited(t, nil, func(o *gateway.Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	e.put(t, "A", "a1")
	w := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
	expect(t, w, "A@a1", "synced")
	// GetAvailability opened as a stream whose message is never sent.
	st, err := e.conn.NewStream(t.Context(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/skuflow.v1.AvailabilityService/GetAvailability")
	if err != nil {
		t.Fatal(err)
	}
	var resp pb.Availability
	if err := st.RecvMsg(&resp); status.Code(err) != codes.Canceled {
		t.Errorf("a call that never sends its request: %v, want Canceled by the server", err)
	}
	e.put(t, "A", "a2")
	expect(t, w, "A@a2")
}

// Idle connections are closed: an HTTP keep-alive connection after its
// request, a gRPC connection with no RPC; watch streams (gRPC and SSE) stay
// open past the idle timeout and keep delivering.
func TestIdleConnectionsAreClosedButStreamsStay(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := startLimited(t, nil, func(o *gateway.Options) { o.IdleTimeout = idle; o.BodyReadTimeout = idle })
	e.put(t, "A", "a1")
	grpcWatch := watch(t, e.avail, &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
	expect(t, grpcWatch, "A@a1", "synced")
	sse := openSSE(t, e.stream, e.base+"/v1/availability:watch?sku=A", nil)
	sse.expect(t, "A@a1", "synced")

	// HTTP: one request, then the server closes the connection.
	c, rd := rawConn(t, e.env)
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %v, want EOF (closed by the server)", err)
	}

	// gRPC: a connection whose RPCs are done is sent away.
	conn, err := grpc.NewClient(e.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(wctx, st) {
			t.Fatalf("idle gRPC connection still %s", st)
		}
	}

	// Both watches outlived the idle timeout and still deliver.
	e.put(t, "A", "a2")
	expect(t, grpcWatch, "A@a2")
	sse.expect(t, "A@a2")
}

// A wrong method on a known path is 405 with an Allow header and the usual
// JSON error, not 501, and is not logged as a server failure.
func TestWrongMethodIs405(t *testing.T) {
	logs := &syncBuffer{}
	e := startLimited(t, logs, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/availability/SKU-1", "GET, HEAD"},
		{http.MethodPost, "/v1/availability/SKU-1", "GET, HEAD"},
		{http.MethodPut, "/v1/orders", "POST"},
		{http.MethodGet, "/v1/availability:batchGet", "POST"},
		{http.MethodPost, "/v1/availability", "GET, HEAD"},
		{http.MethodPost, "/v1/availability:watch", "GET, HEAD"},
		{http.MethodDelete, "/v1/orders/o-1", "GET, HEAD"},
		{http.MethodGet, "/v1/test/upload", "POST"}, // a service's hand-written route
		{http.MethodOptions, "/v1/orders", "POST"},
	} {
		req, err := http.NewRequestWithContext(ctx(t), tc.method, e.base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, r.status, r.header.Get("Allow"), b, tc.allow)
			continue
		}
		if s := errorBody(t, r); s.Code != codes.Unimplemented || !strings.Contains(s.Message, tc.method+" is not allowed") {
			t.Errorf("%s %s: body %s", tc.method, tc.path, b)
		}
	}
	// An unknown path stays 404.
	if r := e.get(t, "/v1/nothing/here"); r.status != http.StatusNotFound {
		t.Errorf("GET /v1/nothing/here: %d, want 404", r.status)
	}
	// POST /healthz: Go's mux answers 405 itself.
	if r := e.send(t, "/healthz", nil, false); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", r.status)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("wrong methods were logged as failures:\n%s", logs)
	}
}

// rawCodec sends bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

// Bytes that do not decode as the request are InvalidArgument (REST 400),
// on unary and streaming gRPC and on REST.
func TestUndecodableRequestsAreInvalidArgument(t *testing.T) {
	e := startLimited(t, nil, nil)
	garbage := []byte{0xff, 0xff, 0xff, 0xff}
	for _, method := range []string{
		"/skuflow.v1.AvailabilityService/GetAvailability",
		"/skuflow.v1.AvailabilityService/BatchGetAvailability",
		"/skuflow.v1.ReservationService/PlaceOrder",
		"/grpc.health.v1.Health/Check",
	} {
		var out []byte
		err := e.conn.Invoke(ctx(t), method, garbage, &out, grpc.ForceCodecV2(rawCodec{}))
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "does not decode") {
			t.Errorf("%s with undecodable bytes: %s %q, want InvalidArgument", method, st.Code(), st.Message())
		}
	}
	s, err := e.conn.NewStream(ctx(t), &grpc.StreamDesc{ServerStreams: true}, "/skuflow.v1.AvailabilityService/WatchAvailability", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(garbage); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseSend()
	var out []byte
	if st := status.Convert(s.RecvMsg(&out)); st.Code() != codes.InvalidArgument {
		t.Errorf("WatchAvailability with undecodable bytes: %s %q, want InvalidArgument", st.Code(), st.Message())
	}
	// A request that decodes is served as before.
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "SKU-1"}); err != nil {
		t.Errorf("GetAvailability: %v", err)
	}

	for _, path := range []string{"/v1/orders", "/v1/availability:batchGet", "/v1/orders/o-1:extend"} {
		r := e.send(t, path, []byte(`{"lines": [`), false)
		if b := errorBody(t, r); r.status != http.StatusBadRequest || b.Code != codes.InvalidArgument {
			t.Errorf("POST %s with bad JSON: %d %s %q, want 400 InvalidArgument", path, r.status, b.Code, b.Message)
		}
	}
}
