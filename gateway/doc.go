// Package gateway serves skuflow's query API: gRPC (with server reflection
// and the standard health service) and, through grpc-gateway, REST and
// OpenAPI, plus /healthz, /readyz and /metrics. It answers from views/ only
// and never calls another service on the hot path.
//
// It also holds the reservation API (NewOrders over an OrderBus, and
// NewReservations, which wires it to the order saga on the cluster).
//
// WatchAvailability (gRPC) and its Server-Sent Events twin (GET
// /v1/availability:watch, hand-written on the http mux, since grpc-gateway's
// in-process handlers cannot stream) follow the compacted availability
// topic through a views.AvailabilityFeed, not the stock table: every change,
// including those no event announces (a merchant going stale, a reservation
// expiring, a location closing), is published there within seconds by the
// stock processor and the reconciler. A watch subscribes first and reads the
// current answers second; the feed numbers its updates and each read says
// which it contains, so nothing falls between the two and nothing older
// than what was sent follows it. One hub fans the feed out without ever
// blocking: a watcher that falls behind its bounded buffer is cut off
// (ResourceExhausted), and at most Options.Watch.MaxWatchers are served.
// See watch.go, watchhub.go and sse.go.
//
// Errors are translated to gRPC codes in one place, package gateway/apierr,
// which New registers as gRPC interceptors and as grpc-gateway's error
// handler, so every API served here (and internal/feeds/service beside it)
// passes through it; handlers return plain errors. Never in the domain: a
// caller's mistake is InvalidArgument (HTTP 400), an unknown SKU NotFound
// (404), a view that has not recovered yet Unavailable (503). Internal is
// reserved for skuflow's own faults.
//
// Limits (limits.go) bound every input path: request bodies on the
// gateway's own REST routes and gRPC messages (Options.MaxRequestBytes),
// the time to send headers and a body, idle connections (HTTP keep-alive
// and gRPC MaxConnectionIdle, never a write timeout, so watch streams
// last); a wrong method on a known path is 405 with Allow, and bytes that
// do not decode are InvalidArgument on gRPC too (a codec that marks the
// request instead of failing, answered by the innermost interceptors).
//
// API keys (apikeys.go, Options.APIKeys) guard AvailabilityService (scope
// read) and ReservationService (scope order). One check, keyAuth.check,
// serves every path: the gRPC interceptors, grpc-gateway's in-process REST
// handlers (registered as wrappers that run the same interceptor,
// restauth.go), the kept-answer REST front and the SSE watch.
//
// Example:
//
//	srv, err := gateway.New(gateway.Options{
//		HTTPAddr: ":8080", GRPCAddr: ":9090", Stock: stockView, Policies: policyView,
//		Base: inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: 24 * time.Hour},
//	})
//	if err != nil { ... }
//	err = srv.Run(ctx)
package gateway
