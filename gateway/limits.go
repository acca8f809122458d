package gateway

// Limits on what a client may send and for how long, on every input path:
// request sizes (REST bodies and gRPC messages alike), the time to send a
// request's headers and body, connections left idle, methods a path does not
// serve (405) and bytes that do not decode (InvalidArgument).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/gateway/apierr"
)

// Defaults of the limits in Options; a field left zero takes its default.
const (
	// DefaultMaxRequestBytes bounds a REST request body and a gRPC request
	// message: gRPC's own default receive size.
	DefaultMaxRequestBytes = 4 << 20
	// DefaultReadHeaderTimeout is the time a client has to send a request's
	// headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyReadTimeout is the time a client has to send a bounded
	// request body (every route the gateway serves itself); a streamed
	// upload (a service's own route) must make progress within it.
	DefaultBodyReadTimeout = 30 * time.Second
	// DefaultIdleTimeout is how long a connection with no request in flight
	// (HTTP keep-alive, or gRPC with no RPC) stays open.
	DefaultIdleTimeout = 2 * time.Minute
)

// grpcKeepalive are the gRPC server's keepalive rules: the server pings a
// quiet connection every minute and drops one that does not answer within
// 20 s (a watch whose client vanished); a client may ping at most every 30 s,
// and only while it has an RPC open, or it is told to go away.
var (
	grpcKeepaliveTime    = time.Minute
	grpcKeepaliveTimeout = 20 * time.Second
	grpcMinClientPing    = 30 * time.Second
)

// limits are the options' limits with their defaults filled in.
type limits struct {
	maxBytes   int64
	readHeader time.Duration
	bodyRead   time.Duration
	idle       time.Duration
}

func (o Options) limits() limits {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	l := limits{maxBytes: o.MaxRequestBytes, readHeader: or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		bodyRead: or(o.BodyReadTimeout, DefaultBodyReadTimeout), idle: or(o.IdleTimeout, DefaultIdleTimeout)}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxRequestBytes
	}
	return l
}

// validateLimits reports every problem with the limits.
func (o Options) validateLimits() []error {
	var errs []error
	if o.MaxRequestBytes < 0 || o.MaxRequestBytes > maxRequestBytes {
		errs = append(errs, fmt.Errorf("gateway: max request bytes %d is outside [0, %d] (0: the default %d)", o.MaxRequestBytes, maxRequestBytes, DefaultMaxRequestBytes))
	}
	for name, d := range map[string]time.Duration{"read header timeout": o.ReadHeaderTimeout, "body read timeout": o.BodyReadTimeout, "idle timeout": o.IdleTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("gateway: %s %s is negative (0: the default)", name, d))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// maxRequestBytes bounds Options.MaxRequestBytes: gRPC takes an int32 size.
const maxRequestBytes = 1<<31 - 1

// grpcOptions are the gRPC server's limits: the largest request message,
// and idle connections closed (MaxConnectionIdle counts the time without
// an RPC, so an open watch stream keeps its connection).
func (l limits) grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(l.maxBytes)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.idle, Time: grpcKeepaliveTime, Timeout: grpcKeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinClientPing, PermitWithoutStream: false}),
		grpc.ForceServerCodecV2(strictCodec{encoding.GetCodecV2("proto")}),
		grpc.InTapHandle(messageTimer{timeout: l.bodyRead}.tap),
		grpc.StatsHandler(messageTimer{timeout: l.bodyRead}),
		grpc.MaxConcurrentStreams(grpcMaxStreams),
	}
}

// grpcMaxStreams bounds the RPCs open at once on one gRPC connection.
const grpcMaxStreams = 1000

// messageTimer puts gRPC requests under the body timeout, as bodies does
// for REST: a unary or server-streaming RPC whose request message does not
// arrive within timeout of its start is cancelled. Once it has its request
// the timer stops: a watch runs as long as it likes. Client streams (a feed
// upload) time their messages themselves, as their REST routes do. Without
// it, a client could open RPCs and never send them, holding server
// resources, and keep its connection from idling.
type messageTimer struct{ timeout time.Duration }

type messageTimerKey struct{}

// rpcTimer is one RPC's timer.
type rpcTimer struct {
	cancel context.CancelCauseFunc
	t      *time.Timer
}

// errRequestTimeout is the cause of an RPC cancelled by messageTimer.
var errRequestTimeout = errors.New("the request message did not arrive within the body read timeout")

// tap starts an RPC's timer. It is a tap (grpc.InTapHandle), not TagRPC:
// only the tap's context is the one the transport reads the request under,
// so only cancelling it stops a read that waits for a message.
func (m messageTimer) tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	rt := &rpcTimer{cancel: cancel}
	rt.t = time.AfterFunc(m.timeout, func() { cancel(errRequestTimeout) })
	// A stream gRPC ends without stats (an unknown method) stops the timer
	// when its context ends.
	context.AfterFunc(ctx, func() { rt.t.Stop() })
	return context.WithValue(ctx, messageTimerKey{}, rt), nil
}

func (messageTimer) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (messageTimer) HandleRPC(ctx context.Context, s stats.RPCStats) {
	rt, ok := ctx.Value(messageTimerKey{}).(*rpcTimer)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.Begin:
		if s.IsClientStream {
			rt.t.Stop()
		}
	case *stats.InPayload:
		rt.t.Stop()
	case *stats.End:
		rt.t.Stop()
		rt.cancel(nil)
	}
}

func (messageTimer) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (messageTimer) HandleConn(context.Context, stats.ConnStats) {}

// httpServer is an HTTP server with the header and idle timeouts. It has
// no ReadTimeout or WriteTimeout: those would cut watch streams (SSE) and
// streamed uploads; bodies are timed per request (bodies).
func (l limits) httpServer(h http.Handler) *http.Server {
	return &http.Server{Handler: bodies(h, l.bodyRead), ReadHeaderTimeout: l.readHeader, IdleTimeout: l.idle}
}

// body is a request body read under the gateway's limits. By default each
// read must return within timeout (a streamed upload must keep making
// progress); on a route the gateway serves itself (bounded) the whole body
// must arrive within timeout of the request's start and is at most limit
// bytes.
type body struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	// bounded: one deadline for the whole body, set by bounded.
	bounded bool
	limit   int64
	// What stopped the reading, for the error answer.
	tooLarge, timedOut, done bool
}

func (b *body) Read(p []byte) (int, error) {
	if !b.bounded && !b.done {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout)) // ErrNotSupported: no deadline to keep
	}
	n, err := b.ReadCloser.Read(p)
	if err == nil {
		return n, nil
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		if !b.done {
			// The whole body is in: no deadline on reads while the answer is
			// written (the server's background read would cancel the
			// request when it passed).
			b.done = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.As(err, &mbe):
		b.tooLarge = true
	case errors.As(err, &ne) && ne.Timeout():
		b.timedOut = true
	}
	return n, err
}

// bodies puts every request body under the per-read timeout, from the
// request's start.
func bodies(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			b := &body{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
			// From now, not from the first read: a handler that answers
			// without reading (a refused token, /healthz) leaves the body to
			// net/http, which drains it before the answer; a client that
			// never sends it must not hold the connection.
			_ = b.rc.SetReadDeadline(time.Now().Add(timeout))
			r.Body = b
		}
		h.ServeHTTP(w, r)
	})
}

// bounded serves h with the request's body bounded: at most maxBytes (a
// larger Content-Length is refused before reading: 413) and all of it
// within the body timeout. The gateway's own routes take bounded bodies; a
// service's hand-written routes (a streamed feed upload) bound their own.
func bounded(h http.Handler, gw *runtime.ServeMux, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := r.Body.(*body)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		b.limit = maxBytes
		if r.ContentLength > maxBytes {
			b.tooLarge = true
			writeHTTPError(gw, w, r, tooLarge(maxBytes))
			return
		}
		b.bounded = true
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
		b.ReadCloser = http.MaxBytesReader(w, b.ReadCloser, maxBytes)
		h.ServeHTTP(w, r)
	})
}

func tooLarge(maxBytes int64) error {
	return apierr.Publicf(apierr.ErrTooLarge, "request body is larger than the limit of %d bytes", maxBytes)
}

// bodyError is what stopped the reading of r's body, if a limit did:
// grpc-gateway reports any failed read as InvalidArgument, with the
// reader's text.
func bodyError(r *http.Request) error {
	b, ok := r.Body.(*body)
	switch {
	case !ok:
		return nil
	case b.tooLarge:
		return tooLarge(b.limit)
	case b.timedOut:
		return apierr.Publicf(apierr.ErrRequestTimeout, "request body did not arrive within %s", b.timeout)
	}
	return nil
}

// writeHTTPError answers r with err as grpc-gateway answers errors (the
// mux's error handler and marshaler). A limit's answer closes the
// connection: what is left of the body is not read.
func writeHTTPError(gw *runtime.ServeMux, w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, apierr.ErrTooLarge) || errors.Is(err, apierr.ErrRequestTimeout) {
		w.Header().Set("Connection", "close")
	}
	_, out := runtime.MarshalerForRequest(gw, r)
	runtime.HTTPError(r.Context(), gw, out, w, r, err)
}

// errorHandler is the grpc-gateway mux's error handler: apierr's, with a
// body cut short by a limit answered as such (413, 408) rather than as the
// InvalidArgument grpc-gateway makes of the failed read.
func errorHandler(h runtime.ErrorHandlerFunc) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if berr := bodyError(r); berr != nil {
			err = berr
			w.Header().Set("Connection", "close")
		}
		h(ctx, mux, m, w, r, err)
	}
}

// A route probe asks the grpc-gateway mux whether it has a route for a
// method and path without serving it: the first middleware notes the match
// and stops, and the routing error handler stays silent.
type probeKey struct{}

type probe struct{ matched bool }

func probeMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := r.Context().Value(probeKey{}).(*probe); ok {
			p.matched = true
			return
		}
		next(w, r, params)
	}
}

// probeMethods are the methods a REST route may take.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// routingErrors answers requests grpc-gateway finds no route for: a path
// it (or the gateway's http mux, whose unclaimed /v1/ paths it gets) serves
// with other methods gets 405 Method Not Allowed with an Allow header;
// anything else grpc-gateway's default (404, 400).
func routingErrors(mux *http.ServeMux) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, gw *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		if _, ok := ctx.Value(probeKey{}).(*probe); ok {
			return
		}
		if httpStatus == http.StatusMethodNotAllowed || httpStatus == http.StatusNotFound {
			if allow := allowedMethods(gw, mux, r); len(allow) > 0 {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				runtime.HTTPError(ctx, gw, m, w, r, apierr.Publicf(apierr.ErrMethodNotAllowed,
					"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
				return
			}
		}
		runtime.DefaultRoutingErrorHandler(ctx, gw, m, w, r, httpStatus)
	}
}

// allowedMethods are the methods other than r's with a route for r's path:
// on grpc-gateway (probed) or on the http mux (its hand-written routes).
func allowedMethods(gw *runtime.ServeMux, mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		p := &probe{}
		pr := r.Clone(context.WithValue(r.Context(), probeKey{}, p))
		pr.Method, pr.Body, pr.ContentLength = m, http.NoBody, 0
		gw.ServeHTTP(discard{}, pr)
		if !p.matched && mux != nil {
			if _, pattern := mux.Handler(pr); pattern != "" && pattern != gatewayFallthrough {
				p.matched = true
			}
		}
		if p.matched {
			out = append(out, m)
			if m == http.MethodGet && r.Method != http.MethodHead {
				out = append(out, http.MethodHead) // served as GET (restFront)
			}
		}
	}
	return out
}

// discard is a ResponseWriter for probes.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// strictCodec is the gRPC server's codec: proto's, but a request that does
// not decode is handed to the handler marked (undecodable) instead of
// failing in the codec, which grpc-go reports as Internal before any
// interceptor runs. The interceptors (decodeUnary, decodeStream) answer a
// marked request InvalidArgument.
type strictCodec struct{ encoding.CodecV2 }

// undecodableMark starts the unknown fields of a request that did not
// decode, followed by the decoder's error. Field number 0 is not valid
// wire format, so no request that decodes has unknown fields like it.
const undecodableMark = "\x00skuflow:undecodable:"

func (c strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown([]byte(undecodableMark + err.Error()))
	return nil
}

// undecodable is the decoding error of a request strictCodec marked.
func undecodable(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) < len(undecodableMark) || string(u[:len(undecodableMark)]) != undecodableMark {
		return nil
	}
	return apierr.Publicf(apierr.ErrInvalidArgument, "request does not decode as %s: %s",
		m.ProtoReflect().Descriptor().FullName(), strings.TrimPrefix(string(u[len(undecodableMark):]), "proto: "))
}

// decodeUnary answers an undecodable unary request InvalidArgument.
func decodeUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := undecodable(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// decodeStream answers an undecodable message on a stream InvalidArgument.
func decodeStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, decodingStream{ss})
}

type decodingStream struct{ grpc.ServerStream }

func (s decodingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return undecodable(m)
}
