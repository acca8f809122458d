package gateway

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// The API's description: Swagger 2.0 as protoc-gen-openapiv2 writes it
// (with the hand-written routes merged in), and its OpenAPI 3 conversion
// (make proto; internal/tools/openapimerge).
var (
	//go:embed openapi/skuflow.swagger.json
	openAPI []byte
	//go:embed openapi/skuflow.openapi.yaml
	openAPI3 []byte
)

// Options configure the gateway.
type Options struct {
	// HTTPAddr serves REST, /healthz, /readyz, /metrics, /openapi.json
	// (Swagger 2.0) and /openapi.yaml (OpenAPI 3).
	HTTPAddr string
	// GRPCAddr serves gRPC.
	GRPCAddr string
	// Stock and Policies answer availability queries.
	Stock    views.StockLookup
	Policies views.PolicyLookup
	// Base holds the channels to answer for and the merchant TTL where a
	// merchant sets none.
	Base inventory.Base
	// Now is the clock answers are evaluated at (default time.Now).
	Now func() time.Time
	// Logger for requests and lifecycle; nil discards.
	Logger *slog.Logger
	// ShutdownTimeout bounds graceful shutdown (default 5s).
	ShutdownTimeout time.Duration
	// Services are further APIs served beside availability (for example
	// merchant feeds, reservations), each registering its own gRPC service
	// and REST routes.
	Services []Service
	// Registerer takes the request metrics, per RPC and per REST route
	// (see metrics.go). Nil: a registry of the gateway's own, so several
	// gateways can share a process.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves beside prometheus.DefaultGatherer
	// (process, Go runtime and package metrics). Nil: the Registerer, when
	// it is a Gatherer too (a *prometheus.Registry is).
	Gatherer prometheus.Gatherer
	// Watch configures WatchAvailability and its SSE twin (watch.go); its
	// zero value offers no watch.
	Watch WatchOptions
	// BatchLimit is the most SKUs one BatchGetAvailability may ask for
	// (0: DefaultBatchLimit).
	BatchLimit int
	// CacheMaxAge bounds the max-age of REST answers' Cache-Control, which
	// never reaches past an answer's next_change_at (0: DefaultCacheMaxAge;
	// negative: no-cache, every time).
	CacheMaxAge time.Duration
	// AnswerCacheSize is about how many evaluated answers are kept to serve
	// again while they hold (answers.go; 0: DefaultAnswerCacheSize;
	// negative: none, every answer is evaluated). It is split over 64
	// shards, so it is rounded down to a multiple of 64, and at least 64.
	AnswerCacheSize int
	// MaxRequestBytes bounds a REST request body on every route the gateway
	// serves itself (413 past it) and a gRPC request message
	// (ResourceExhausted); 0: DefaultMaxRequestBytes. A service's
	// hand-written routes (the streamed feed upload) bound their own.
	MaxRequestBytes int64
	// ReadHeaderTimeout is the time a client has to send a request's
	// headers (0: DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout is the time a client has to send a bounded request
	// body (408 past it); a streamed upload must make progress within it
	// (0: DefaultBodyReadTimeout). Answers have no write timeout: watch
	// streams last as long as their clients.
	BodyReadTimeout time.Duration
	// APIKeys, if set, guard the availability API (scope read) and the
	// reservation API (scope order) on gRPC and REST alike: a call needs
	// 'authorization: Bearer <key>' (apikeys.go). Nil: both are open.
	// Health, readiness, metrics, the OpenAPI documents and other services
	// (feeds, admin: their own tokens) never need a key.
	APIKeys *APIKeys
	// APIKeysReload is how often the API keys file is read again, so a
	// removed key is refused without a restart (0: every 5s; negative:
	// never).
	APIKeysReload time.Duration
	// IdleTimeout closes an HTTP keep-alive connection with no request, and
	// a gRPC connection with no RPC, after this long (0:
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
}

// Service is an API the gateway serves beside availability.
type Service interface {
	// RegisterGRPC registers the gRPC service.
	RegisterGRPC(s *grpc.Server)
	// RegisterHTTP registers REST routes: on gw for grpc-gateway handlers,
	// on mux for hand-written ones (e.g. streamed uploads). Routes under
	// /v1/ that mux does not claim fall through to gw.
	RegisterHTTP(mux *http.ServeMux, gw *runtime.ServeMux) error
	// Ready reports whether the service can answer (its views recovered).
	Ready() bool
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.HTTPAddr == "" {
		errs = append(errs, errors.New("gateway: HTTP address is empty"))
	}
	if o.GRPCAddr == "" {
		errs = append(errs, errors.New("gateway: gRPC address is empty"))
	}
	if o.Stock == nil {
		errs = append(errs, errors.New("gateway: no stock lookup"))
	}
	if o.Policies == nil {
		errs = append(errs, errors.New("gateway: no policy lookup"))
	}
	if err := o.Base.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("gateway: %w", err))
	}
	if o.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("gateway: shutdown timeout %s is negative", o.ShutdownTimeout))
	}
	errs = append(errs, o.Watch.validate()...)
	if o.BatchLimit < 0 {
		errs = append(errs, fmt.Errorf("gateway: batch limit %d is negative", o.BatchLimit))
	}
	errs = append(errs, o.validateLimits()...)
	return errors.Join(errs...)
}

// Server is a gateway with its listeners bound.
type Server struct {
	opts     Options
	log      *slog.Logger
	httpLn   net.Listener
	grpcLn   net.Listener
	grpc     *grpc.Server
	http     *http.Server
	health   *health.Server
	shutdown time.Duration
	watch    *watchService // nil: no watch offered
	auth     *keyAuth
}

// New binds the listeners (so a port in use fails here, and ":0" gets a
// free port) and builds the servers. Run serves them.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, shutdown: opts.ShutdownTimeout}
	if s.shutdown == 0 {
		s.shutdown = 5 * time.Second
	}
	var err error
	if s.grpcLn, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gateway: gRPC listen: %w", err)
	}
	if s.httpLn, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
		s.grpcLn.Close()
		return nil, fmt.Errorf("gateway: HTTP listen: %w", err)
	}

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		s.grpcLn.Close()
		s.httpLn.Close()
		return nil, err
	}
	// fail undoes what New set up, so a caller may retry on the same
	// Registerer and no watch stays attached to the feed.
	fail := func(err error) (*Server, error) {
		s.grpcLn.Close()
		s.httpLn.Close()
		if s.watch != nil {
			s.watch.close()
		}
		m.unregister(reg)
		s.auth.unregister(reg)
		return nil, err
	}
	avail := &availabilityServer{
		stock: opts.Stock, policies: opts.Policies, now: now,
		base:       opts.Base,
		answers:    newAnswers(opts.Stock, opts.Policies, opts.Base, opts.AnswerCacheSize),
		batchLimit: cmp.Or(opts.BatchLimit, DefaultBatchLimit),
		maxAge:     cmp.Or(opts.CacheMaxAge, DefaultCacheMaxAge),
	}
	// Every service's errors become statuses in one place (apierr), inside
	// the request log and the metrics so that they see the mapped code.
	if s.auth, err = newKeyAuth(opts.APIKeys, reg); err != nil {
		return fail(err)
	}
	// API keys are checked inside the error mapping, and a request that
	// does not decode is answered InvalidArgument by the innermost
	// interceptors (limits.go). REST calls run through s.auth.unary too
	// (restauth.go).
	lim := opts.limits()
	s.grpc = grpc.NewServer(append(lim.grpcOptions(),
		grpc.ChainUnaryInterceptor(m.unary(), logUnary(log), apierr.UnaryServerInterceptor(log), s.auth.unary, decodeUnary),
		grpc.ChainStreamInterceptor(m.stream(), apierr.StreamServerInterceptor(log), s.auth.stream, decodeStream),
	)...)
	wo := opts.Watch
	wo.MaxSKUs = cmp.Or(wo.MaxSKUs, opts.BatchLimit) // a watch takes as many SKUs as a batch
	if s.watch, err = newWatchService(wo, reg, log); err != nil {
		return fail(err)
	}
	pb.RegisterAvailabilityServiceServer(s.grpc, availabilityService{availabilityServer: avail, watch: s.watch})
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	for _, svc := range opts.Services {
		svc.RegisterGRPC(s.grpc)
	}
	reflection.Register(s.grpc)
	m.grpc.InitializeMetrics(s.grpc) // every RPC's series from the start, at 0

	mux := http.NewServeMux()
	gw := runtime.NewServeMux(
		// probeMiddleware first: a route probe (for a 405's Allow) stops
		// there; gatewayRoute: the route label of REST metrics.
		runtime.WithMiddlewares(probeMiddleware, gatewayRoute),
		// A wrong method on a known path is 405 with Allow, not 501, and a
		// form POST is not served as a GET.
		runtime.WithRoutingErrorHandler(routingErrors(mux)),
		runtime.WithDisablePathLengthFallback(),
		// Answers carry a Content-Length rather than chunked encoding (the
		// kept answers REST serves do the same; httpcache.go).
		runtime.WithWriteContentLength(),
		// JSON as the OpenAPI document describes it: unset message fields
		// (timestamps, durations, optional numbers) are left out, not null;
		// zero scalars and empty lists are still written.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}),
		// In-process REST handlers bypass the interceptors: the same mapping.
		runtime.WithErrorHandler(errorHandler(apierr.HTTPErrorHandler(log))),
		// Path parameters arrive percent-encoded (a SKU "A/B" as A%2FB):
		// route on the raw path split at real '/' only, then decode a
		// single-segment parameter whole. The default (legacy) mode routes
		// on the decoded path, where "A/B" is two segments and a 404;
		// UnescapingModeAllCharacters splits at %2F as well.
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			switch strings.ToLower(key) {
			case "etag":
				return "ETag", true
			case "cache-control":
				return "Cache-Control", true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
	)
	if err := pb.RegisterAvailabilityServiceHandlerServer(context.Background(), gw, restAvailability{srv: avail, ic: s.auth.interceptor()}); err != nil {
		return fail(fmt.Errorf("gateway: register REST handlers: %w", err))
	}
	// grpc-gateway, with the hot GET served from kept answers
	// (httpcache.go). The gateway's own routes take bounded bodies.
	mux.Handle("/v1/", bounded(newRESTFront(gw, avail, s.auth), gw, lim.maxBytes))
	if s.watch != nil { // grpc-gateway's in-process handler cannot stream
		mux.Handle(watchRoute, bounded(s.auth.http(watchAvailabilityMethod, gw, s.watch.serveSSE(gw)), gw, lim.maxBytes))
	}
	for _, svc := range opts.Services {
		if ra, ok := svc.(restAuthed); ok { // the reservation API
			ra.setRESTInterceptor(s.auth.interceptor())
		}
		if err := svc.RegisterHTTP(mux, gw); err != nil {
			return fail(fmt.Errorf("gateway: register REST routes: %w", err))
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer(opts, reg), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPI3)
	})
	s.http = lim.httpServer(logHTTP(log, m.instrument(mux)))
	return s, nil
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: views are recovering")
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) ready() bool {
	if !s.opts.Stock.Ready() || !s.opts.Policies.Ready() {
		return false
	}
	if s.opts.Watch.Source != nil && !s.opts.Watch.Source.Ready() {
		return false
	}
	for _, svc := range s.opts.Services {
		if !svc.Ready() {
			return false
		}
	}
	return true
}

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.grpc.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gateway: gRPC serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: HTTP serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		every := s.opts.APIKeysReload
		if every == 0 {
			every = 5 * time.Second
		}
		s.auth.watchKeys(ctx, every, s.log)
		return nil
	})
	g.Go(func() error { // mirror view readiness into the gRPC health service
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			st := healthpb.HealthCheckResponse_NOT_SERVING
			if s.ready() {
				st = healthpb.HealthCheckResponse_SERVING
			}
			s.health.SetServingStatus("", st)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		<-ctx.Done()
		s.health.Shutdown()
		// Watches never end by themselves: end them (Unavailable) so the
		// graceful stops below do not wait for them.
		s.watch.close()
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdown)
		defer cancel()
		herr := s.http.Shutdown(sctx)
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			s.grpc.Stop()
		}
		if errors.Is(herr, context.DeadlineExceeded) {
			// Requests still running (long uploads) are cut off rather than
			// left running after Run returns.
			herr = s.http.Close()
		}
		if herr != nil {
			return fmt.Errorf("gateway: HTTP shutdown: %w", herr)
		}
		return nil
	})
	s.log.Info("gateway serving", "http", s.HTTPAddr(), "grpc", s.GRPCAddr())
	return g.Wait()
}
