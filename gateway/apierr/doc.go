// Package apierr is the one place where an error becomes what an API
// caller is told: a gRPC status (code and message) and, for REST, the HTTP
// status derived from it. gateway.New installs it once for every service it
// serves: a unary and a stream interceptor on the gRPC server, and the error
// handler of the grpc-gateway mux (whose in-process handlers bypass the
// interceptors). A hand-written HTTP handler calls WriteHTTP.
//
// Handlers just return errors: the domain's sentinel and typed errors
// (inventory, views, internal/registry), wrapped for context with
// fmt.Errorf("...: %w") if need be. What only a handler can classify (a
// lookup that found nothing, a request field that does not parse) it
// returns as an *Error: a kind (one of the Err... kinds here, or a domain
// error), the message the caller reads, and the cause. A failed read of a
// view is a *LookupError.
//
// The mapping, first match wins (see rules in apierr.go):
//
//	*Error, *LookupError              its kind decides the code, its message is shown
//	a gRPC status error               handed on unchanged
//	registry.ErrUnauthenticated       Unauthenticated (401)
//	registry.ErrPermissionDenied      PermissionDenied (403)
//	registry.ErrNotFound              NotFound (404)
//	registry.ErrExists                AlreadyExists (409)
//	registry.ErrInvalid               InvalidArgument (400)
//	*registry.LocationOwnedError      FailedPrecondition (400)
//	registry.ErrNotReady              Unavailable (503)
//	views.ErrNotReady                 Unavailable (503), "... retry shortly"
//	inventory.ErrOrderConflict, inventory.ErrFulfilmentConflict,
//	inventory.ErrConflictingDuplicate AlreadyExists (409)
//	inventory.ErrInvalidEvent,
//	inventory.ErrUnknownChannel,
//	codecs.ErrMalformed               InvalidArgument (400)
//	ErrInvalidArgument                InvalidArgument (400)
//	ErrNotFound                       NotFound (404)
//	ErrFailedPrecondition             FailedPrecondition (400)
//	ErrTooLarge                       ResourceExhausted (HTTP 413, not 429)
//	ErrUnsupportedMediaType           InvalidArgument (HTTP 415)
//	ErrResourceExhausted              ResourceExhausted (429)
//	ErrMethodNotAllowed               Unimplemented (HTTP 405, not 501)
//	ErrRequestTimeout                 DeadlineExceeded (HTTP 408, not 504)
//	ErrUnauthenticated                Unauthenticated (401)
//	ErrPermissionDenied               PermissionDenied (403)
//	ErrUnimplemented                  Unimplemented (501)
//	ErrUnavailable                    Unavailable (503), logged
//	context.Canceled                  Canceled
//	context.DeadlineExceeded          DeadlineExceeded (504)
//	anything else                     Internal (500) "internal error", logged
//
// A caller's mistake is never Internal. Only skuflow's own faults and
// failures of what it depends on are logged, once, with the cause's text:
// errors never carry tokens (internal/registry's do not), and the request is
// not logged.
//
// It must not import internal/feeds/... (the feeds service imports it and
// classifies the feeds packages' errors with the kinds here) nor package
// gateway.
//
// Example:
//
//	state, found, err := s.stock.Get(sku)
//	if err != nil {
//		return nil, &apierr.LookupError{Views: "availability", Lookup: "stock", Err: err}
//	}
//	if !found {
//		return nil, apierr.Publicf(apierr.ErrNotFound, "sku %q is not known", sku)
//	}
package apierr
