package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/skuflow/skuflow/views"
)

// latencyBuckets suit answers from a local table: most take well under a
// millisecond, so the buckets start at 100µs (prometheus.DefBuckets start at
// 5ms, where every answer would fall into the first bucket).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// UnmatchedRoute is the route label of requests no route answered (404s,
// 405s): one label for all of them, whatever their path.
const UnmatchedRoute = "unmatched"

// metrics are the gateway's request metrics.
//
// gRPC, per RPC, from go-grpc-middleware's Prometheus provider (unary and
// streams): grpc_server_started_total, grpc_server_handled_total (with
// grpc_code), grpc_server_msg_received_total, grpc_server_msg_sent_total and
// the histogram grpc_server_handling_seconds, labelled grpc_type,
// grpc_service, grpc_method.
//
// REST, per route, through promhttp: skuflow_http_requests_total (code,
// method, route) and the histogram skuflow_http_request_duration_seconds
// (method, route). route is the route's pattern ("/v1/availability/{sku}"),
// never the request's path, so neither a SKU nor a token ends up in a label.
// In-process REST handlers bypass the gRPC interceptors, so a REST call is
// counted once, as REST.
type metrics struct {
	grpc     *grpcprom.ServerMetrics
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(latencyBuckets))),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skuflow_http_requests_total",
			Help: "REST and other HTTP requests answered, by route pattern, method and status code.",
		}, []string{"code", "method", "route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "skuflow_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method (a watch stream counts its whole life).",
			Buckets: latencyBuckets,
		}, []string{"method", "route"}),
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.grpc, m.requests, m.duration}
}

// unregister takes back what newMetrics registered, for a gateway that is
// not going to run.
func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// gatherer is what /metrics serves: the default registry (process, Go
// runtime and the roles' package metrics) and the gateway's own.
func gatherer(opts Options, reg prometheus.Registerer) prometheus.Gatherer {
	g := opts.Gatherer
	if g == nil {
		g, _ = reg.(prometheus.Gatherer)
	}
	if g == nil || g == prometheus.DefaultGatherer {
		return prometheus.DefaultGatherer
	}
	return prometheus.Gatherers{prometheus.DefaultGatherer, g}
}

func (m *metrics) unary() grpc.UnaryServerInterceptor   { return m.grpc.UnaryServerInterceptor() }
func (m *metrics) stream() grpc.StreamServerInterceptor { return m.grpc.StreamServerInterceptor() }

// route carries a request's route pattern from where routing finds it
// (grpc-gateway's middleware, or http.ServeMux) out to the instrumentation.
type route struct{ pattern string }

type routeKey struct{}

// gatewayRoute is a grpc-gateway middleware noting the matched pattern.
func gatewayRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if rt, ok := r.Context().Value(routeKey{}).(*route); ok {
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				// Pattern.String spells a single-segment variable {sku=*};
				// the proto and the OpenAPI document spell it {sku}.
				rt.pattern = strings.ReplaceAll(p.String(), "=*}", "}")
			}
		}
		next(w, r, params)
	}
}

// gatewayFallthrough is the mux pattern handing /v1/ to grpc-gateway.
const gatewayFallthrough = "/v1/"

// instrument counts and times every request mux answers, by route.
func (m *metrics) instrument(mux *http.ServeMux) http.Handler {
	routed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		// ServeMux sets the Pattern of the request it serves; for /v1/
		// grpc-gateway has noted its own (or nothing: unmatched).
		if rt, ok := r.Context().Value(routeKey{}).(*route); ok && rt.pattern == "" && r.Pattern != gatewayFallthrough {
			rt.pattern = patternPath(r.Pattern)
		}
	})
	byRoute := promhttp.WithLabelFromCtx("route", func(ctx context.Context) string {
		if rt, ok := ctx.Value(routeKey{}).(*route); ok && rt.pattern != "" {
			return rt.pattern
		}
		return UnmatchedRoute
	})
	h := promhttp.InstrumentHandlerCounter(m.requests, promhttp.InstrumentHandlerDuration(m.duration, routed, byRoute), byRoute)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, &route{})))
	})
}

// patternPath is a ServeMux pattern without its method and host:
// "POST /v1/merchants/{merchant}/feeds" gives "/v1/merchants/{merchant}/feeds".
func patternPath(p string) string {
	if _, rest, ok := strings.Cut(p, " "); ok {
		p = strings.TrimLeft(rest, " \t")
	}
	if i := strings.IndexByte(p, '/'); i > 0 {
		p = p[i:] // drop a host
	}
	return p
}

// ObservedViews are the goka views the reservation API runs, for view
// metrics (views.Metrics).
func (r *Reservations) ObservedViews() map[string]views.Observed {
	return map[string]views.Observed{"orders": r.bus.view}
}
