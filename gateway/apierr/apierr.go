package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/views"
)

// Kinds of error that no domain error names, for a handler to classify
// what only it can see. Use one as the Kind of an *Error (Public, Publicf,
// Classify), or wrap it with %w.
var (
	// ErrInvalidArgument: the request is wrong (InvalidArgument, HTTP 400).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: what the request names does not exist (NotFound, 404).
	ErrNotFound = errors.New("not found")
	// ErrFailedPrecondition: the request is well formed, but what it asks
	// for is not possible in the current state (FailedPrecondition, 400).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrTooLarge: the request is larger than a limit (ResourceExhausted;
	// over REST 413 Content Too Large rather than the 429 of a rate limit).
	ErrTooLarge = errors.New("request too large")
	// ErrUnsupportedMediaType: a REST body in a format the API does not
	// take (InvalidArgument; over REST 415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrResourceExhausted: a limit of the server's (concurrent watches, a
	// watcher's buffer) is reached; the caller may retry later
	// (ResourceExhausted, HTTP 429). Not a fault.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrUnimplemented: this server does not offer the call
	// (Unimplemented, HTTP 501).
	ErrUnimplemented = errors.New("unimplemented")
	// ErrMethodNotAllowed: the path is known but not with this method
	// (Unimplemented; over REST 405 Method Not Allowed).
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrRequestTimeout: the caller did not send its request within the
	// server's time for it (DeadlineExceeded; over REST 408 Request Timeout
	// rather than the 504 of a deadline the server missed).
	ErrRequestTimeout = errors.New("request timeout")
	// ErrUnauthenticated: no API key, or one the server does not know
	// (Unauthenticated, HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: a known API key that does not give the right
	// to the call (PermissionDenied, HTTP 403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: something the API depends on failed (a view, the
	// cluster) and the caller may retry (Unavailable, 503). The cause is
	// logged.
	ErrUnavailable = errors.New("unavailable")
)

// Error is an error with the message its caller reads. Kind (a kind of
// this package, a domain error, or an error wrapping one) decides the
// status code; Cause, if any, is why, logged when the status is a fault and
// never shown. Error() is Msg.
type Error struct {
	Kind  error
	Msg   string
	Cause error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes Kind and Cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	for _, err := range []error{e.Kind, e.Cause} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

func (e *Error) public() (kind error, msg string, cause error) { return e.Kind, e.Msg, e.Cause }

// Public returns an error of kind whose caller reads msg.
func Public(kind error, msg string) error { return &Error{Kind: kind, Msg: msg} }

// Publicf is Public with a formatted message.
func Publicf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Classify returns err as an error of kind; its caller reads err's text.
func Classify(kind, err error) error { return &Error{Kind: kind, Msg: err.Error(), Cause: err} }

// Invalid marks err as the caller's mistake (InvalidArgument); the caller
// reads err's text.
func Invalid(err error) error { return Classify(ErrInvalidArgument, err) }

// Unavailable is a failure of something the API depends on: the caller
// reads msg (Unavailable, may retry) and cause is logged.
func Unavailable(msg string, cause error) error {
	return &Error{Kind: ErrUnavailable, Msg: msg, Cause: cause}
}

// LookupError is a failed read of a view an API answers from. While the
// view recovers its table (views.ErrNotReady) the caller reads "<Views>
// views are still recovering; retry shortly"; any other failure is logged
// and the caller reads "<Lookup> lookup failed". Both are Unavailable.
type LookupError struct {
	Views  string // e.g. "availability"
	Lookup string // e.g. "stock"
	Err    error
}

func (e *LookupError) Error() string { return e.Lookup + " lookup: " + e.Err.Error() }

func (e *LookupError) Unwrap() error { return e.Err }

func (e *LookupError) public() (kind error, msg string, cause error) {
	if errors.Is(e.Err, views.ErrNotReady) {
		return e.Err, e.Views + " views are still recovering; retry shortly", nil
	}
	return ErrUnavailable, e.Lookup + " lookup failed", e.Err
}

// public is an error that carries its caller's message: *Error,
// *LookupError.
type public interface {
	error
	public() (kind error, msg string, cause error)
}

type rule struct {
	match func(error) bool
	code  codes.Code
	http  int    // 0: runtime.HTTPStatusFromCode(code)
	msg   string // "": the error's own text
	fault bool   // skuflow's or a dependency's failure, logged; not the caller's
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func as[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

// rules is the mapping, first match wins; the package doc has it as a
// table.
var rules = []rule{
	// Credentials. The registry's errors never hold a token.
	{match: is(registry.ErrUnauthenticated), code: codes.Unauthenticated, msg: "missing or invalid API token: send 'authorization: Bearer <token>'"},
	{match: is(registry.ErrPermissionDenied), code: codes.PermissionDenied},
	// The merchant registry.
	{match: is(registry.ErrNotFound), code: codes.NotFound},
	{match: is(registry.ErrExists), code: codes.AlreadyExists},
	{match: is(registry.ErrInvalid), code: codes.InvalidArgument},
	{match: as[*registry.LocationOwnedError], code: codes.FailedPrecondition},
	{match: is(registry.ErrNotReady), code: codes.Unavailable},
	// Views recovering their tables.
	{match: is(views.ErrNotReady), code: codes.Unavailable, msg: "views are still recovering; retry shortly"},
	// The domain's rules and the codecs: the request's fault.
	{match: is(inventory.ErrOrderConflict), code: codes.AlreadyExists},
	{match: is(inventory.ErrFulfilmentConflict), code: codes.AlreadyExists},
	{match: is(inventory.ErrConflictingDuplicate), code: codes.AlreadyExists},
	{match: is(inventory.ErrInvalidEvent), code: codes.InvalidArgument},
	{match: is(inventory.ErrUnknownChannel), code: codes.InvalidArgument},
	{match: is(codecs.ErrMalformed), code: codes.InvalidArgument},
	// The edges' kinds.
	{match: is(ErrInvalidArgument), code: codes.InvalidArgument},
	{match: is(ErrNotFound), code: codes.NotFound},
	{match: is(ErrFailedPrecondition), code: codes.FailedPrecondition},
	{match: is(ErrTooLarge), code: codes.ResourceExhausted, http: http.StatusRequestEntityTooLarge},
	{match: is(ErrUnsupportedMediaType), code: codes.InvalidArgument, http: http.StatusUnsupportedMediaType},
	{match: is(ErrResourceExhausted), code: codes.ResourceExhausted},
	{match: is(ErrMethodNotAllowed), code: codes.Unimplemented, http: http.StatusMethodNotAllowed},
	{match: is(ErrRequestTimeout), code: codes.DeadlineExceeded, http: http.StatusRequestTimeout},
	{match: is(ErrUnauthenticated), code: codes.Unauthenticated},
	{match: is(ErrPermissionDenied), code: codes.PermissionDenied},
	{match: is(ErrUnimplemented), code: codes.Unimplemented},
	{match: is(ErrUnavailable), code: codes.Unavailable, fault: true},
	// The request's own context.
	{match: is(context.Canceled), code: codes.Canceled},
	{match: is(context.DeadlineExceeded), code: codes.DeadlineExceeded},
}

// internal is what no rule matches: skuflow's own fault.
var internal = rule{code: codes.Internal, msg: "internal error", fault: true}

// result is an error mapped.
type result struct {
	st    *status.Status
	http  int
	cause error // not nil: a fault, to log
	// passed is set when err was already a gRPC status: it is handed on
	// unchanged (wrappers and all).
	passed bool
}

// maxDepth bounds how deep kinds of kinds are followed.
const maxDepth = 8

// resolve maps a non-nil err. It is pure: logging is the caller's.
func resolve(err error) result {
	var p public
	if errors.As(err, &p) {
		kind, msg, cause := p.public()
		r := classify(kind, 0)
		res := result{st: status.New(r.code, msg), http: httpOf(r)}
		if r.fault {
			res.cause = firstError(cause, kind, err)
		}
		return res
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return result{st: st, http: runtime.HTTPStatusFromCode(st.Code()), passed: true}
	}
	r := classify(err, 0)
	msg := r.msg
	if msg == "" {
		msg = err.Error()
	}
	res := result{st: status.New(r.code, msg), http: httpOf(r)}
	if r.fault {
		res.cause = err
	}
	return res
}

// classify finds the rule of kind: the kind of a public error in its
// chain, a gRPC status's code, or the first rule that matches.
func classify(kind error, depth int) rule {
	if kind == nil || depth > maxDepth {
		return internal
	}
	var p public
	if errors.As(kind, &p) {
		k, _, _ := p.public()
		return classify(k, depth+1)
	}
	if st, ok := status.FromError(kind); ok && st.Code() != codes.Unknown {
		return rule{code: st.Code()}
	}
	for _, r := range rules {
		if r.match(kind) {
			return r
		}
	}
	return internal
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func httpOf(r rule) int {
	if r.http != 0 {
		return r.http
	}
	return runtime.HTTPStatusFromCode(r.code)
}

// Status is the gRPC status err maps to (nil for nil). It logs nothing:
// the interceptors and WriteHTTP log faults.
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	return resolve(err).st
}

// HTTPStatus is the HTTP status err maps to (200 for nil): the gRPC
// code's, as grpc-gateway maps it, but 413 for ErrTooLarge, 415 for
// ErrUnsupportedMediaType, 405 for ErrMethodNotAllowed and 408 for
// ErrRequestTimeout.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return resolve(err).http
}
