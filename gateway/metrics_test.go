package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

// uploadService is a Service with one hand-written route on the mux, as
// the merchant feed upload is.
type uploadService struct{}

func (uploadService) RegisterGRPC(*grpc.Server) {}
func (uploadService) Ready() bool               { return true }
func (uploadService) RegisterHTTP(mux *http.ServeMux, _ *runtime.ServeMux) error {
	mux.HandleFunc("POST /v1/uploads/{owner}/files", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	return nil
}

// TestRequestMetrics: after real gRPC calls (unary and a server stream) and
// real REST calls (grpc-gateway routes, a hand-written mux route, unknown
// paths), /metrics read with a real HTTP client counts and times each RPC
// by service, method and code, and each REST route by its pattern, never by
// a path holding a SKU.
func TestRequestMetrics(t *testing.T) {
	e := startWith(t, func(o *gateway.Options) { o.Services = []gateway.Service{uploadService{}} })

	known := e.states[0].SKU
	unknown := viewtest.UnknownSKUs(e.states)[0]
	for range 2 {
		if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: known}); err != nil {
			t.Fatalf("gRPC GetAvailability(%q): %v", known, err)
		}
	}
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: unknown}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC GetAvailability(%q) = %v, want NotFound", unknown, err)
	}
	// A server stream: health Watch sends the current status, then the
	// client hangs up.
	w, err := e.health.Watch(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("health Watch: %v", err)
	}
	e.conn.Close() // ends the stream (Canceled)

	for i, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", availabilityPath(known), 200},
		{"GET", availabilityPath(known), 200},
		{"GET", availabilityPath(known), 200},
		{"GET", availabilityPath(unknown), 404},
		{"POST", "/v1/uploads/secret-owner/files", 202},
		{"GET", "/v1/no/such/route/" + known, 404},
		{"GET", "/nowhere", 404},
		{"GET", "/healthz", 200},
	} {
		req, err := http.NewRequest(c.method, e.base+c.path, bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatalf("request %d %s %s: %v", i, c.method, c.path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}

	svc := "skuflow.v1.AvailabilityService"
	rpc := func(typ, service, method string) map[string]string {
		return map[string]string{"grpc_type": typ, "grpc_service": service, "grpc_method": method}
	}
	with := func(l map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range l {
			out[a] = b
		}
		return out
	}
	get := rpc("unary", svc, "GetAvailability")
	watch := rpc("server_stream", "grpc.health.v1.Health", "Watch")
	want := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_started_total", get, 3},
		{"grpc_server_handled_total", with(get, "grpc_code", "OK"), 2},
		{"grpc_server_handled_total", with(get, "grpc_code", "NotFound"), 1},
		{"grpc_server_handling_seconds", get, 3},
		// Every RPC's series exist from the start.
		{"grpc_server_handled_total", with(rpc("unary", svc, "BatchGetAvailability"), "grpc_code", "OK"), 0},
		{"grpc_server_started_total", watch, 1},
		{"grpc_server_msg_sent_total", watch, 1},

		{"skuflow_http_requests_total", map[string]string{"code": "200", "method": "get", "route": "/v1/availability/{sku}"}, 3},
		{"skuflow_http_requests_total", map[string]string{"code": "404", "method": "get", "route": "/v1/availability/{sku}"}, 1},
		{"skuflow_http_request_duration_seconds", map[string]string{"method": "get", "route": "/v1/availability/{sku}"}, 4},
		{"skuflow_http_requests_total", map[string]string{"code": "202", "method": "post", "route": "/v1/uploads/{owner}/files"}, 1},
		{"skuflow_http_request_duration_seconds", map[string]string{"method": "post", "route": "/v1/uploads/{owner}/files"}, 1},
		{"skuflow_http_requests_total", map[string]string{"code": "404", "method": "get", "route": gateway.UnmatchedRoute}, 2},
		{"skuflow_http_requests_total", map[string]string{"code": "200", "method": "get", "route": "/healthz"}, 1},
	}
	// The server counts a stream's last message after the client has it:
	// wait for the counts rather than read them once.
	var fams map[string]*dto.MetricFamily
	testkit.Eventually(t, 10*time.Second, func() error {
		fams = scrapeMetrics(t, e)
		var errs []error
		for _, c := range want {
			got, ok := sample(fams, c.name, c.labels)
			if !ok {
				errs = append(errs, fmt.Errorf("no %s%v; scraped:\n%s", c.name, c.labels, describe(fams, c.name)))
			} else if got != c.want {
				errs = append(errs, fmt.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want))
			}
		}
		return errors.Join(errs...)
	})
	// No label value carries a path: no SKU, no owner id.
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, known) || strings.Contains(v, unknown) || strings.Contains(v, "secret-owner") {
					t.Errorf("%s has label %s=%q, taken from a request path", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}

// TestMetricsRegisterer: the request metrics go to the Registerer given,
// which /metrics serves beside the default registry; a second gateway on
// the same Registerer is refused rather than silently sharing series.
func TestMetricsRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	var opts gateway.Options
	e := startWith(t, func(o *gateway.Options) { o.Registerer = reg; opts = *o })
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: e.states[0].SKU}); err != nil {
		t.Fatal(err)
	}
	if r := e.get(t, availabilityPath(e.states[0].SKU)); r.status != http.StatusOK {
		t.Fatalf("REST: status %d: %s", r.status, r.body)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	for _, n := range []string{"grpc_server_handled_total", "grpc_server_handling_seconds", "skuflow_http_requests_total", "skuflow_http_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("the Registerer given has no %s", n)
		}
	}
	served := scrapeMetrics(t, e)
	for _, n := range []string{"grpc_server_handled_total", "go_goroutines"} {
		if _, ok := served[n]; !ok {
			t.Errorf("/metrics does not serve %s", n)
		}
	}

	if _, err := gateway.New(opts); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("a second gateway on the same Registerer: %v, want a register metrics error", err)
	}
}

// startWith is start with the options changed by edit.
func startWith(t *testing.T, edit func(*gateway.Options)) *env {
	t.Helper()
	e := &env{stock: views.NewMemory(), fix: newFixture(t), clock: newClock(now)}
	e.states = e.fix.states
	e.fix.putStates(e.stock)
	e.fix.putPolicies(t, e.stock)
	opts := options(e.stock, e.stock)
	opts.Now = e.clock.Now
	edit(&opts)
	e.serve(t, opts)
	return e
}

func scrapeMetrics(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	r := e.get(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics is not the text exposition format: %v", err)
	}
	return fams
}

// sample is the value of the family's sample whose labels include every
// label given: a counter's or gauge's value, a histogram's count.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func describe(fams map[string]*dto.MetricFamily, name string) string {
	var b strings.Builder
	for _, m := range fams[name].GetMetric() {
		fmt.Fprintln(&b, m.GetLabel())
	}
	return b.String()
}

// A gateway that fails to build gives its metrics back: a retry on the
// same Registerer works.
func TestNewFailureReleasesMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := gateway.Options{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Stock: views.NewMemory(), Policies: views.NewMemory(),
		Base: inventory.DefaultBase(), Registerer: reg, Gatherer: reg, Services: []gateway.Service{failingHTTPService{}}}
	if _, err := gateway.New(opts); err == nil || !strings.Contains(err.Error(), "register REST routes") {
		t.Fatalf("New with a failing service: %v", err)
	}
	opts.Services = nil
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("New again on the same registerer: %v", err)
	}
	_ = g
}

type failingHTTPService struct{}

func (failingHTTPService) RegisterGRPC(*grpc.Server) {}
func (failingHTTPService) RegisterHTTP(*http.ServeMux, *runtime.ServeMux) error {
	return errors.New("no routes today")
}
func (failingHTTPService) Ready() bool { return true }
