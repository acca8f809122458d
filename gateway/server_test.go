package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

// env is a gateway serving on loopback with real gRPC and HTTP clients.
type env struct {
	srv *gateway.Server
	// stock holds the fixture's states and policies: it is both lookups.
	stock  *views.Memory
	fix    fixture
	states []inventory.State
	clock  *clock
	conn   *grpc.ClientConn
	avail  pb.AvailabilityServiceClient
	health healthpb.HealthClient
	http   *http.Client
	base   string
}

// start serves a gateway over one Memory holding the fixture's states and
// policies, with its clock fixed at now; the gateway stops at the end of the
// test.
func start(t *testing.T, ready bool) *env {
	t.Helper()
	e := &env{stock: views.NewMemory(), fix: newFixture(t), clock: newClock(now)}
	e.states = e.fix.states
	e.fix.putStates(e.stock)
	e.fix.putPolicies(t, e.stock)
	e.stock.SetReady(ready)
	opts := options(e.stock, e.stock)
	opts.Now = e.clock.Now
	e.serve(t, opts)
	return e
}

// serve runs a gateway with opts and connects clients to it.
func (e *env) serve(t *testing.T, opts gateway.Options) {
	t.Helper()
	srv, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	e.srv = srv
	testkit.Go(t, srv.Run)

	e.conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { e.conn.Close() }) // runs before the gateway stops
	e.avail = pb.NewAvailabilityServiceClient(e.conn)
	e.health = healthpb.NewHealthClient(e.conn)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.http = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	e.base = "http://" + srv.HTTPAddr()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) get(t *testing.T, path string) response {
	t.Helper()
	resp, err := e.http.Get(e.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// rpcStatus is grpc-gateway's JSON error body.
type rpcStatus struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
}

func errorBody(t *testing.T, r response) rpcStatus {
	t.Helper()
	var s rpcStatus
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("error body %q is not a JSON status: %v", r.body, err)
	}
	return s
}

func availabilityPath(sku string) string { return "/v1/availability/" + url.PathEscape(sku) }

func TestGetAvailabilityFound(t *testing.T) {
	e := start(t, true)
	for _, s := range e.states {
		want := e.fix.want(s, e.clock.Now())
		t.Run(s.SKU, func(t *testing.T) {
			var hdr metadata.MD
			got, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: s.SKU}, grpc.Header(&hdr))
			if err != nil {
				t.Fatalf("gRPC GetAvailability: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("gRPC answer\n%v\nwant\n%v", got, want)
			}
			if etag := hdr.Get("etag"); len(etag) != 1 || etag[0] != `"`+want.GetVersion()+`"` {
				t.Errorf("gRPC etag header %q, want [%q]", etag, `"`+want.GetVersion()+`"`)
			}

			r := e.get(t, availabilityPath(s.SKU))
			if r.status != http.StatusOK {
				t.Fatalf("HTTP status %d, body %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var body pb.Availability
			if err := protojson.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("HTTP body %s: %v", r.body, err)
			}
			if !proto.Equal(&body, want) {
				t.Errorf("HTTP answer\n%v\nwant\n%v", &body, want)
			}
			if etag := r.header.Values("ETag"); len(etag) != 1 || etag[0] != `"`+want.GetVersion()+`"` {
				t.Errorf("ETag %q, want [%q]", etag, `"`+want.GetVersion()+`"`)
			}
			if v := r.header.Values("Grpc-Metadata-Etag"); len(v) != 0 {
				t.Errorf("etag also leaks as Grpc-Metadata-Etag: %q", v)
			}
		})
	}
}

func TestGetAvailabilityUnknownSKU(t *testing.T) {
	e := start(t, true)
	for _, sku := range viewtest.UnknownSKUs(e.states) {
		_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku})
		if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), sku) {
			t.Errorf("gRPC %q: %v, want NotFound naming the sku", sku, err)
		}
		r := e.get(t, availabilityPath(sku))
		if r.status != http.StatusNotFound {
			t.Errorf("HTTP %q: status %d, want 404; body %s", sku, r.status, r.body)
			continue
		}
		if s := errorBody(t, r); s.Code != codes.NotFound || !strings.Contains(s.Message, sku) {
			t.Errorf("HTTP %q: error body %+v", sku, s)
		}
	}
}

func TestGetAvailabilityMalformedSKU(t *testing.T) {
	e := start(t, true)
	long := strings.Repeat("A", inventory.MaxSKULength+1)
	tests := []struct {
		name, sku, want string
		grpcOnly        bool // no URL path carries it to the handler
		restOnly        bool // gRPC clients refuse to send invalid UTF-8
	}{
		{"control character", "SKU\x011", "control character", false, false},
		{"newline", "SKU-1\n", "control character", false, false},
		{"257 bytes", long, "257 bytes, longer than 256", false, false},
		{"leading space", " SKU-1", "starts or ends with a space", false, false},
		{"invisible lookalike of a stored sku", "SKU-\u200b1", "not printable", false, false}, // zero width space
		{"invalid UTF-8", "SKU-\xff", "not valid UTF-8", false, true},
		{"empty", "", "sku is empty", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.restOnly {
				_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: tt.sku})
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) ||
					!strings.Contains(status.Convert(err).Message(), inventory.SKURule) {
					t.Errorf("gRPC: %v, want InvalidArgument mentioning %q and the rule", err, tt.want)
				}
			}
			if tt.grpcOnly {
				return
			}
			r := e.get(t, availabilityPath(tt.sku))
			if r.status != http.StatusBadRequest {
				t.Fatalf("HTTP status %d, want 400; body %s", r.status, r.body)
			}
			if s := errorBody(t, r); s.Code != codes.InvalidArgument || !strings.Contains(s.Message, tt.want) {
				t.Errorf("HTTP error body %+v, want a message mentioning %q", s, tt.want)
			}
		})
	}
}

func TestNotReadyThenReady(t *testing.T) {
	e := start(t, false)
	sku := e.states[0].SKU

	// Not ready: every read path says so, and a malformed SKU is still the
	// caller's mistake.
	testkit.Eventually(t, 30*time.Second, func() error { return wantHealth(t, e, healthpb.HealthCheckResponse_NOT_SERVING) })
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku}); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC while not ready: %v, want Unavailable", err)
	}
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "bad\tsku"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("gRPC malformed sku while not ready: %v, want InvalidArgument", err)
	}
	if r := e.get(t, availabilityPath(sku)); r.status != http.StatusServiceUnavailable {
		t.Errorf("HTTP while not ready: %d, want 503; body %s", r.status, r.body)
	} else if s := errorBody(t, r); s.Code != codes.Unavailable {
		t.Errorf("HTTP while not ready: body %+v", s)
	}
	if r := e.get(t, "/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while not ready: %d, want 503", r.status)
	}
	if r := e.get(t, "/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz while not ready: %d, want 200 (liveness does not depend on views)", r.status)
	}

	e.stock.SetReady(true)
	testkit.Eventually(t, 30*time.Second, func() error { return wantHealth(t, e, healthpb.HealthCheckResponse_SERVING) })
	if r := e.get(t, "/readyz"); r.status != http.StatusOK {
		t.Errorf("/readyz when ready: %d, want 200", r.status)
	}
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku}); err != nil {
		t.Errorf("gRPC when ready: %v", err)
	}
	if r := e.get(t, availabilityPath(sku)); r.status != http.StatusOK {
		t.Errorf("HTTP when ready: %d; body %s", r.status, r.body)
	}

	// And back: a view that starts recovering again is reported again.
	e.stock.SetReady(false)
	testkit.Eventually(t, 30*time.Second, func() error { return wantHealth(t, e, healthpb.HealthCheckResponse_NOT_SERVING) })
	if r := e.get(t, "/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz after readiness was lost: %d, want 503", r.status)
	}
}

func wantHealth(t *testing.T, e *env, want healthpb.HealthCheckResponse_ServingStatus) error {
	resp, err := e.health.Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.GetStatus() != want {
		return fmt.Errorf("health %s, want %s", resp.GetStatus(), want)
	}
	return nil
}

func TestHealthz(t *testing.T) {
	e := start(t, true)
	r := e.get(t, "/healthz")
	if r.status != http.StatusOK {
		t.Fatalf("/healthz status %d", r.status)
	}
	if r := e.get(t, "/readyz"); r.status != http.StatusOK {
		t.Errorf("/readyz status %d with a ready lookup", r.status)
	}
}

func TestOpenAPI(t *testing.T) {
	e := start(t, true)
	r := e.get(t, "/openapi.json")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	if _, ok := doc.Paths["/v1/availability/{sku}"]["get"]; !ok {
		t.Errorf("no GET /v1/availability/{sku} among paths %v", doc.Paths)
	}
}

func TestMetrics(t *testing.T) {
	e := start(t, true)
	r := e.get(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text exposition format", ct)
	}
	if !strings.Contains(string(r.body), "# HELP go_goroutines") {
		t.Errorf("body does not look like Prometheus text: %.200s", r.body)
	}
}

func TestReflection(t *testing.T) {
	e := start(t, true)
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatalf("reflection stream: %v", err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatalf("send: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("reflection error: %v", e)
		}
		return resp
	}

	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"skuflow.v1.AvailabilityService", "grpc.health.v1.Health"} {
		if !containsString(names, want) {
			t.Errorf("services %v lack %s", names, want)
		}
	}

	// The descriptors are served too, so grpcurl can call the method.
	files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "skuflow.v1.AvailabilityService",
	}})
	found := false
	for _, raw := range files.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatalf("file descriptor: %v", err)
		}
		for _, svc := range fd.GetService() {
			for _, m := range svc.GetMethod() {
				if fd.GetPackage() == "skuflow.v1" && svc.GetName() == "AvailabilityService" && m.GetName() == "GetAvailability" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("reflection descriptors lack skuflow.v1.AvailabilityService.GetAvailability")
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// runInBackground runs srv and returns a channel with Run's result.
func runInBackground(srv *gateway.Server) (context.CancelFunc, <-chan error) {
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	return cancel, done
}

// TestRunReturnsPromptlyOnCancel: idle connections do not hold up graceful
// shutdown. Its bound is an hour, so Run returning at all shows that
// nothing waited for them.
func TestRunReturnsPromptlyOnCancel(t *testing.T) {
	m := views.NewMemory()
	states := viewtest.States(t)
	m.Put(states[0])
	opts := options(m, m)
	opts.ShutdownTimeout = time.Hour
	srv, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	cancel, done := runInBackground(srv)
	defer cancel()

	// Leave an idle gRPC connection and an idle keep-alive HTTP connection
	// open: graceful shutdown must not wait for them.
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewAvailabilityServiceClient(conn).GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: states[0].SKU}); err != nil {
		t.Fatalf("GetAvailability: %v", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + srv.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(time.Minute): // a hang guard, far short of the hour-long bound
		t.Fatal("Run still running a minute after cancellation: graceful shutdown waits for idle connections")
	}
	for _, addr := range []string{srv.GRPCAddr(), srv.HTTPAddr()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Run returned", addr)
		}
	}
}

// TestRunShutdownIsBounded: a client holding a stream open (a health Watch)
// cannot delay shutdown beyond ShutdownTimeout. The client never closes the
// stream, so without the bound Run would not return at all; with it, Run
// returns and the server has cut the stream off.
func TestRunShutdownIsBounded(t *testing.T) {
	opts := options(views.NewMemory(), views.NewMemory())
	opts.ShutdownTimeout = 300 * time.Millisecond
	srv, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	cancel, done := runInBackground(srv)
	defer cancel()

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watch, err := healthpb.NewHealthClient(conn).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the stream is established
		t.Fatalf("watch: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(time.Minute): // a hang guard: the property is that Run returns at all
		t.Fatal("an open stream kept Run from returning for a minute with a 300ms shutdown timeout")
	}
	// The server ended the stream (after the NOT_SERVING update shutdown
	// sends, if it got through).
	for {
		if _, err := watch.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("the open stream ended with %v, want Unavailable from the server's stop", err)
			}
			break
		}
	}
}

func TestNewFailsOnPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tt := range []struct {
		name string
		busy func(*gateway.Options)
		want string
	}{
		{"gRPC", func(o *gateway.Options) { o.GRPCAddr = ln.Addr().String() }, "gRPC listen"},
		{"HTTP", func(o *gateway.Options) { o.HTTPAddr = ln.Addr().String() }, "HTTP listen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := options(views.NewMemory(), views.NewMemory())
			tt.busy(&opts)
			srv, err := gateway.New(opts)
			if err == nil {
				t.Fatalf("New succeeded on a busy port (%s, %s)", srv.HTTPAddr(), srv.GRPCAddr())
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ln.Addr().String()) {
				t.Errorf("error %q does not name %q and the address", err, tt.want)
			}
		})
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	_, err := gateway.New(gateway.Options{})
	if err == nil {
		t.Fatal("New(zero Options) succeeded")
	}
	if want := (gateway.Options{}).Validate(); want == nil || err.Error() != want.Error() {
		t.Errorf("New error %q is not Validate's %q", err, want)
	}
}

// brokenLookup is ready but fails every read, like a view whose local
// storage broke.
type brokenLookup struct{}

func (brokenLookup) Get(string) (inventory.State, bool, error) {
	return inventory.State{}, false, errors.New("leveldb: closed")
}
func (brokenLookup) Ready() bool { return true }

// TestLookupFailure: a failing lookup is reported as Unavailable (retryable),
// not Internal and not NotFound, without leaking the storage error.
func TestLookupFailure(t *testing.T) {
	srv, err := gateway.New(options(brokenLookup{}, views.NewMemory()))
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	testkit.Go(t, srv.Run)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = pb.NewAvailabilityServiceClient(conn).GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "SKU-1"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC: %v, want Unavailable", err)
	}
	if strings.Contains(status.Convert(err).Message(), "leveldb") {
		t.Errorf("storage error leaks to the caller: %v", err)
	}
	e := &env{http: &http.Client{Timeout: 5 * time.Second}, base: "http://" + srv.HTTPAddr()}
	if r := e.get(t, availabilityPath("SKU-1")); r.status != http.StatusServiceUnavailable {
		t.Errorf("HTTP status %d, want 503; body %s", r.status, r.body)
	}
}

// A state an order invented before orders stopped inventing SKUs (only a
// rejected reservation, no stock, no policy) answers 404, like any SKU
// skuflow does not know.
func TestGetAvailabilityInventedSKU(t *testing.T) {
	e := start(t, true)
	const sku = "SKU-INVENTED"
	e.stock.Put(inventory.State{SKU: sku, Reservations: []inventory.Reservation{{ID: "o-1:1", Channel: "web", Quantity: 1, Status: inventory.StatusRejected}}})
	_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "is not known") {
		t.Errorf("gRPC: %v, want NotFound", err)
	}
	if r := e.get(t, availabilityPath(sku)); r.status != http.StatusNotFound {
		t.Errorf("HTTP: status %d, want 404; body %s", r.status, r.body)
	}
}
