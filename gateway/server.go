package gateway

import (
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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

//go:embed openapi/skuflow.swagger.json
var openAPI []byte

// Options configure the gateway.
type Options struct {
	// HTTPAddr serves REST, /healthz, /readyz, /metrics and /openapi.json.
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
	avail := &availabilityServer{
		stock: opts.Stock, policies: opts.Policies, now: now,
		base: opts.Base,
	}
	// Every service's errors become statuses in one place (apierr), inside
	// the request log so that it logs the mapped code.
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(logUnary(log), apierr.UnaryServerInterceptor(log)),
		grpc.ChainStreamInterceptor(apierr.StreamServerInterceptor(log)),
	)
	pb.RegisterAvailabilityServiceServer(s.grpc, avail)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	for _, svc := range opts.Services {
		svc.RegisterGRPC(s.grpc)
	}
	reflection.Register(s.grpc)

	gw := runtime.NewServeMux(
		// In-process REST handlers bypass the interceptors: the same mapping.
		runtime.WithErrorHandler(apierr.HTTPErrorHandler(log)),
		// Path parameters arrive percent-encoded (a SKU "A/B" as A%2FB):
		// route on the raw path split at real '/' only, then decode a
		// single-segment parameter whole. The default (legacy) mode routes
		// on the decoded path, where "A/B" is two segments and a 404;
		// UnescapingModeAllCharacters splits at %2F as well.
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, "etag") {
				return "ETag", true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
	)
	if err := pb.RegisterAvailabilityServiceHandlerServer(context.Background(), gw, avail); err != nil {
		s.grpcLn.Close()
		s.httpLn.Close()
		return nil, fmt.Errorf("gateway: register REST handlers: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	for _, svc := range opts.Services {
		if err := svc.RegisterHTTP(mux, gw); err != nil {
			s.grpcLn.Close()
			s.httpLn.Close()
			return nil, fmt.Errorf("gateway: register REST routes: %w", err)
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	s.http = &http.Server{Handler: logHTTP(log, mux), ReadHeaderTimeout: 10 * time.Second}
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
