package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Convert returns the gRPC status error err maps to (nil for nil; a status
// error unchanged) and logs it to log if it is a fault. attrs say where
// (e.g. "method", ...).
func Convert(log *slog.Logger, err error, attrs ...any) error {
	if err == nil {
		return nil
	}
	r := resolve(err)
	r.logFault(log, attrs)
	if r.passed {
		return err
	}
	return r.st.Err()
}

func (r result) logFault(log *slog.Logger, attrs []any) {
	if r.cause == nil || log == nil {
		return
	}
	log.Error("request failed", append(attrs, "code", r.st.Code().String(), "message", r.st.Message(), "err", r.cause.Error())...)
}

// UnaryServerInterceptor maps the errors of unary handlers (see Convert).
func UnaryServerInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return resp, Convert(log, err, "method", info.FullMethod)
		}
		return resp, nil
	}
}

// StreamServerInterceptor maps the errors of stream handlers (see Convert).
func StreamServerInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := handler(srv, ss); err != nil {
			return Convert(log, err, "method", info.FullMethod)
		}
		return nil
	}
}

// HTTPErrorHandler is the grpc-gateway mux's error handler: it maps a
// handler's error as the interceptors do, then writes it as
// runtime.DefaultHTTPErrorHandler does, with the HTTP status HTTPStatus
// gives (413 rather than 429 for ErrTooLarge, and so on) and a Bearer
// challenge on 401. grpc-gateway's own errors (routing, decoding) are
// statuses and pass unchanged.
func HTTPErrorHandler(log *slog.Logger) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		var hs *runtime.HTTPStatusError
		if !errors.As(err, &hs) {
			res := resolve(err)
			res.logFault(log, []any{"method", r.Method, "path", r.URL.Path})
			if !res.passed {
				err = res.st.Err()
			}
			if res.http != runtime.HTTPStatusFromCode(res.st.Code()) {
				// 413, 415, 405, 408: the status's code alone would say 429,
				// 400, 501, 504.
				err = &runtime.HTTPStatusError{HTTPStatus: res.http, Err: err}
			}
		}
		if s, ok := status.FromError(err); ok && s.Code() == codes.Unauthenticated {
			// grpc-gateway puts the message in WWW-Authenticate; a client
			// reads a challenge there.
			w = challengeWriter{w}
		}
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
	}
}

// challengeWriter answers a 401 with a Bearer challenge in
// WWW-Authenticate (the reason is in the body).
type challengeWriter struct{ http.ResponseWriter }

func (c challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Bearer realm="skuflow"`)
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (c challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// WriteHTTP answers a hand-written REST handler's request r with err: the
// HTTP status it maps to and a JSON body {"code": <gRPC code>, "message":
// ...}, with a Bearer challenge on 401. A fault is logged.
func WriteHTTP(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if err == nil {
		err = errors.New("apierr: WriteHTTP called without an error")
	}
	res := resolve(err)
	res.logFault(log, []any{"method", r.Method, "path", r.URL.Path})
	if res.st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skuflow"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.http)
	body := map[string]any{"code": int(res.st.Code()), "message": res.st.Message()}
	if werr := json.NewEncoder(w).Encode(body); werr != nil && log != nil {
		// The client went away; the status line is written already.
		log.Debug("writing an error answer failed", "path", r.URL.Path, "err", werr)
	}
}
