package apierr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/views"
)

// leak is text that must never reach a caller: the cause of a fault.
const leak = "open /var/lib/skuflow/views/000042.ldb: input/output error"

var errLeak = errors.New(leak)

type mapping struct {
	name  string
	err   error
	code  codes.Code
	msg   string
	http  int
	fault bool // logged
}

func mappings() []mapping {
	wrap := func(err error) error { return fmt.Errorf("merchant %q: %w", "M-1", err) }
	return []mapping{
		// Credentials and the registry, as the feeds service mapped them.
		{name: "unauthenticated", err: wrap(registry.ErrUnauthenticated), code: codes.Unauthenticated,
			msg: "missing or invalid API token: send 'authorization: Bearer <token>'", http: 401},
		{name: "unauthenticated, own message", err: apierr.Public(registry.ErrUnauthenticated, "missing or invalid admin token"),
			code: codes.Unauthenticated, msg: "missing or invalid admin token", http: 401},
		{name: "permission denied", err: registry.ErrPermissionDenied, code: codes.PermissionDenied, msg: "this token may not do that", http: 403},
		{name: "merchant not found", err: wrap(registry.ErrNotFound), code: codes.NotFound, msg: `merchant "M-1": merchant not found`, http: 404},
		{name: "merchant exists", err: wrap(registry.ErrExists), code: codes.AlreadyExists, msg: `merchant "M-1": merchant already exists`, http: 409},
		{name: "registry invalid", err: fmt.Errorf("%w: no locations", registry.ErrInvalid), code: codes.InvalidArgument,
			msg: "invalid registry request: no locations", http: 400},
		{name: "location owned", err: &registry.LocationOwnedError{Location: "A-1", Owner: "MERCH-A"}, code: codes.FailedPrecondition,
			msg: `location "A-1" is owned by merchant "MERCH-A"`, http: 400},
		{name: "registry not ready", err: registry.ErrNotReady, code: codes.Unavailable, msg: "merchant registry is still recovering", http: 503},
		// Views.
		{name: "view not ready", err: fmt.Errorf("stock: %w", views.ErrNotReady), code: codes.Unavailable,
			msg: "views are still recovering; retry shortly", http: 503},
		{name: "lookup, view not ready", err: &apierr.LookupError{Views: "availability", Lookup: "stock", Err: views.ErrNotReady},
			code: codes.Unavailable, msg: "availability views are still recovering; retry shortly", http: 503},
		{name: "lookup failed", err: &apierr.LookupError{Views: "order", Lookup: "order", Err: errLeak},
			code: codes.Unavailable, msg: "order lookup failed", http: 503, fault: true},
		{name: "lookup of a value that does not decode", err: &apierr.LookupError{Views: "availability", Lookup: "policy", Err: fmt.Errorf("%w: x", codecs.ErrMalformed)},
			code: codes.Unavailable, msg: "policy lookup failed", http: 503, fault: true},
		// The domain.
		{name: "invalid event", err: errors.Join(fmt.Errorf("%w: order_id is empty", inventory.ErrInvalidEvent), fmt.Errorf("%w: line 1: quantity 0", inventory.ErrInvalidEvent)),
			code: codes.InvalidArgument, msg: "invalid event: order_id is empty\ninvalid event: line 1: quantity 0", http: 400},
		{name: "unknown channel", err: fmt.Errorf("%w: %q", inventory.ErrUnknownChannel, "tv"), code: codes.InvalidArgument, msg: `channel is not configured: "tv"`, http: 400},
		{name: "order conflict", err: apierr.Publicf(inventory.ErrOrderConflict, "order id %q was already used for a different order", "o-1"),
			code: codes.AlreadyExists, msg: `order id "o-1" was already used for a different order`, http: 409},
		{name: "conflicting duplicate", err: fmt.Errorf("%w: e-1", inventory.ErrConflictingDuplicate), code: codes.AlreadyExists,
			msg: "conflicting duplicate event id: e-1", http: 409},
		{name: "malformed", err: fmt.Errorf("%w: not a skuflow.v1.PolicyEvent", codecs.ErrMalformed), code: codes.InvalidArgument,
			msg: "malformed message: not a skuflow.v1.PolicyEvent", http: 400},
		// The edges' kinds.
		{name: "invalid", err: apierr.Invalid(errors.New(`sku "a b" has characters outside A-Z a-z 0-9 . _ -`)), code: codes.InvalidArgument,
			msg: `sku "a b" has characters outside A-Z a-z 0-9 . _ -`, http: 400},
		{name: "not found", err: apierr.Publicf(apierr.ErrNotFound, "sku %q is not known", "SKU-9"), code: codes.NotFound, msg: `sku "SKU-9" is not known`, http: 404},
		{name: "failed precondition", err: apierr.Classify(apierr.ErrFailedPrecondition, errors.New("records were removed by retention")),
			code: codes.FailedPrecondition, msg: "records were removed by retention", http: 400},
		{name: "too large", err: apierr.Publicf(apierr.ErrTooLarge, "body of %d bytes is larger than the limit", 9), code: codes.ResourceExhausted,
			msg: "body of 9 bytes is larger than the limit", http: 413},
		{name: "unsupported media type", err: apierr.Classify(apierr.ErrUnsupportedMediaType, errors.New("unsupported content type: no Content-Type given")),
			code: codes.InvalidArgument, msg: "unsupported content type: no Content-Type given", http: 415},
		{name: "resource exhausted", err: apierr.Publicf(apierr.ErrResourceExhausted, "too many watchers: at most %d", 2), code: codes.ResourceExhausted,
			msg: "too many watchers: at most 2", http: 429},
		{name: "unimplemented", err: apierr.Public(apierr.ErrUnimplemented, "no feed to watch"), code: codes.Unimplemented, msg: "no feed to watch", http: 501},
		{name: "unavailable", err: apierr.Unavailable("could not publish the order; retry with the same id", errLeak), code: codes.Unavailable,
			msg: "could not publish the order; retry with the same id", http: 503, fault: true},
		{name: "kind of a kind", err: apierr.Publicf(apierr.Public(apierr.ErrInvalidArgument, "inner"), "feed %s: inner", "F-1"),
			code: codes.InvalidArgument, msg: "feed F-1: inner", http: 400},
		// The request's context.
		{name: "canceled", err: fmt.Errorf("waiting: %w", context.Canceled), code: codes.Canceled, msg: "waiting: context canceled", http: 499},
		{name: "deadline", err: apierr.Publicf(context.DeadlineExceeded, "order %q is still being decided", "o-1"), code: codes.DeadlineExceeded,
			msg: `order "o-1" is still being decided`, http: 504},
		// Statuses pass.
		{name: "status", err: status.Error(codes.Aborted, "try again"), code: codes.Aborted, msg: "try again", http: 409},
		{name: "wrapped status", err: fmt.Errorf("recv: %w", status.Error(codes.Canceled, "gone")), code: codes.Canceled, msg: "recv: rpc error: code = Canceled desc = gone", http: 499},
		// Everything else is skuflow's fault.
		{name: "unclassified", err: fmt.Errorf("storing rows: %w", errLeak), code: codes.Internal, msg: "internal error", http: 500, fault: true},
		{name: "error without a kind", err: &apierr.Error{Msg: "feed F-1: disk full", Cause: errLeak}, code: codes.Internal, msg: "feed F-1: disk full", http: 500, fault: true},
		{name: "unknown status", err: status.Error(codes.Unknown, leak), code: codes.Internal, msg: "internal error", http: 500, fault: true},
	}
}

func TestStatus(t *testing.T) {
	for _, m := range mappings() {
		t.Run(m.name, func(t *testing.T) {
			st := apierr.Status(m.err)
			if st.Code() != m.code || st.Message() != m.msg {
				t.Errorf("Status = %s %q, want %s %q", st.Code(), st.Message(), m.code, m.msg)
			}
			if got := apierr.HTTPStatus(m.err); got != m.http {
				t.Errorf("HTTPStatus = %d, want %d", got, m.http)
			}
			if m.code != codes.Internal && m.code != codes.Unavailable && m.fault {
				t.Errorf("test table: a caller's mistake marked as a fault")
			}
		})
	}
	if apierr.Status(nil) != nil || apierr.HTTPStatus(nil) != http.StatusOK {
		t.Error("nil does not map to OK")
	}
}

// A caller's mistake is never Internal.
func TestCallersMistakesAreNotInternal(t *testing.T) {
	for _, err := range []error{
		inventory.ErrInvalidEvent, inventory.ErrUnknownChannel, inventory.ErrOrderConflict, inventory.ErrConflictingDuplicate, codecs.ErrMalformed,
		registry.ErrInvalid, registry.ErrNotFound, registry.ErrExists, registry.ErrUnauthenticated, registry.ErrPermissionDenied,
		&registry.LocationOwnedError{}, apierr.ErrInvalidArgument, apierr.ErrNotFound, apierr.ErrFailedPrecondition, apierr.ErrTooLarge,
		apierr.ErrUnsupportedMediaType, apierr.ErrResourceExhausted, apierr.ErrUnimplemented,
	} {
		if c := apierr.Status(fmt.Errorf("ctx: %w", err)).Code(); c == codes.Internal || c == codes.Unknown || c == codes.Unavailable {
			t.Errorf("%v maps to %s", err, c)
		}
	}
}

// Convert logs faults once, with the cause, and nothing else; the caller
// never reads the cause.
func TestConvertLogsFaultsOnly(t *testing.T) {
	for _, m := range mappings() {
		t.Run(m.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			err := apierr.Convert(log, m.err, "method", "/test/M")
			st, ok := status.FromError(err)
			if !ok || st.Code() != m.code || st.Message() != m.msg {
				t.Errorf("Convert = %v, want %s %q", err, m.code, m.msg)
			}
			if strings.Contains(st.Message(), leak) && m.code != codes.Unknown {
				t.Errorf("the cause reached the caller: %q", st.Message())
			}
			lines := strings.Count(buf.String(), "\n")
			switch {
			case m.fault && (lines != 1 || !strings.Contains(buf.String(), "/test/M") || !strings.Contains(buf.String(), "err=")):
				t.Errorf("fault logged as %q, want one line with the method and the cause", buf.String())
			case !m.fault && lines != 0:
				t.Errorf("a non-fault was logged: %q", buf.String())
			}
		})
	}
	if apierr.Convert(slog.New(slog.DiscardHandler), nil) != nil {
		t.Error("Convert(nil) is not nil")
	}
	st := status.Error(codes.Aborted, "x")
	if got := apierr.Convert(nil, st); got != st {
		t.Errorf("a status error was not handed on unchanged: %v", got)
	}
}

func TestInterceptors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	unary := apierr.UnaryServerInterceptor(log)
	_, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		return nil, apierr.Publicf(apierr.ErrNotFound, "sku %q is not known", "S")
	})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != `sku "S" is not known` {
		t.Errorf("unary: %v", err)
	}
	resp, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) { return "ok", nil })
	if resp != "ok" || err != nil {
		t.Errorf("unary success: %v %v", resp, err)
	}
	stream := apierr.StreamServerInterceptor(log)
	err = stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Z"}, func(any, grpc.ServerStream) error { return registry.ErrUnauthenticated })
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream: %v", err)
	}
	if err := stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Z"}, func(any, grpc.ServerStream) error { return nil }); err != nil {
		t.Errorf("stream success: %v", err)
	}
}

func TestHTTPErrorHandler(t *testing.T) {
	mux := runtime.NewServeMux(runtime.WithErrorHandler(apierr.HTTPErrorHandler(slog.New(slog.DiscardHandler))))
	for _, tc := range []struct {
		name string
		err  error
		http int
		code codes.Code
	}{
		{"domain error", fmt.Errorf("%w: delta is 0", inventory.ErrInvalidEvent), 400, codes.InvalidArgument},
		{"fault", errLeak, 500, codes.Internal},
		{"grpc-gateway's own status", &runtime.HTTPStatusError{HTTPStatus: http.StatusMethodNotAllowed, Err: status.Error(codes.Unimplemented, "Method Not Allowed")}, 405, codes.Unimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
			runtime.HTTPError(context.Background(), mux, &runtime.JSONPb{}, w, r, tc.err)
			var body struct {
				Code    codes.Code `json:"code"`
				Message string     `json:"message"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != tc.http || body.Code != tc.code || strings.Contains(body.Message, leak) {
				t.Errorf("got %d %s %q, want %d %s", w.Code, body.Code, body.Message, tc.http, tc.code)
			}
		})
	}
}

func TestWriteHTTP(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/v1/merchants/M/feeds", nil)
	for _, tc := range []struct {
		name      string
		err       error
		http      int
		body      string
		challenge bool
	}{
		{"unauthenticated", registry.ErrUnauthenticated, 401, `{"code":16,"message":"missing or invalid API token: send 'authorization: Bearer \u003ctoken\u003e'"}`, true},
		{"too large", apierr.Publicf(apierr.ErrTooLarge, "body of %d bytes is too large", 10), 413, `{"code":8,"message":"body of 10 bytes is too large"}`, false},
		{"unsupported media type", apierr.Classify(apierr.ErrUnsupportedMediaType, errors.New("charset")), 415, `{"code":3,"message":"charset"}`, false},
		{"fault", errLeak, 500, `{"code":13,"message":"internal error"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			apierr.WriteHTTP(w, r, slog.New(slog.DiscardHandler), tc.err)
			if w.Code != tc.http || strings.TrimSpace(w.Body.String()) != tc.body || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("got %d %q %q, want %d %q", w.Code, w.Header().Get("Content-Type"), w.Body, tc.http, tc.body)
			}
			if got := w.Header().Get("WWW-Authenticate"); (got == `Bearer realm="skuflow"`) != tc.challenge {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
}
