// Package gateway serves skuflow's query API: gRPC (with server reflection
// and the standard health service) and, through grpc-gateway, REST and
// OpenAPI, plus /healthz, /readyz and /metrics. It answers from views/ only
// and never calls another service on the hot path.
//
// It also holds the reservation API (NewOrders over an OrderBus, and
// NewReservations, which wires it to the order saga on the cluster).
//
// Errors are translated to gRPC codes in one place, package gateway/apierr,
// which New registers as gRPC interceptors and as grpc-gateway's error
// handler, so every API served here (and internal/feeds/service beside it)
// passes through it; handlers return plain errors. Never in the domain: a
// caller's mistake is InvalidArgument (HTTP 400), an unknown SKU NotFound
// (404), a view that has not recovered yet Unavailable (503). Internal is
// reserved for skuflow's own faults.
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
