package gateway

import (
	"context"

	"google.golang.org/grpc"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// grpc-gateway's in-process REST handlers call a service's methods
// directly, past the gRPC server's interceptors. The servers registered
// for REST are therefore these wrappers, which run each call through the
// same API key interceptor (keyAuth.unary) the gRPC server runs, under the
// call's full gRPC method name: one check, whichever way a call comes in.
// A method added to a service and not here answers REST Unimplemented,
// never unchecked.

// viaInterceptor runs h through the unary interceptor ic as the gRPC
// server would for method.
// A nil ic (no API keys configured) calls h directly.
func viaInterceptor[Req, Resp any](ctx context.Context, ic grpc.UnaryServerInterceptor, method string, req Req, h func(context.Context, Req) (Resp, error)) (Resp, error) {
	if ic == nil {
		return h(ctx, req)
	}
	out, err := ic(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, r any) (any, error) {
		return h(ctx, r.(Req))
	})
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// restAvailability is AvailabilityService for grpc-gateway's in-process
// handlers.
type restAvailability struct {
	pb.UnimplementedAvailabilityServiceServer
	srv *availabilityServer
	ic  grpc.UnaryServerInterceptor
}

func (a restAvailability) GetAvailability(ctx context.Context, req *pb.GetAvailabilityRequest) (*pb.Availability, error) {
	return viaInterceptor(ctx, a.ic, pb.AvailabilityService_GetAvailability_FullMethodName, req, a.srv.GetAvailability)
}

func (a restAvailability) BatchGetAvailability(ctx context.Context, req *pb.BatchGetAvailabilityRequest) (*pb.BatchGetAvailabilityResponse, error) {
	return viaInterceptor(ctx, a.ic, pb.AvailabilityService_BatchGetAvailability_FullMethodName, req, a.srv.BatchGetAvailability)
}

// restReservations is ReservationService for grpc-gateway's in-process
// handlers.
type restReservations struct {
	pb.UnimplementedReservationServiceServer
	srv *ordersServer
	ic  grpc.UnaryServerInterceptor
}

func (r restReservations) PlaceOrder(ctx context.Context, req *pb.PlaceOrderRequest) (*pb.Order, error) {
	return viaInterceptor(ctx, r.ic, pb.ReservationService_PlaceOrder_FullMethodName, req, r.srv.PlaceOrder)
}

func (r restReservations) GetOrder(ctx context.Context, req *pb.GetOrderRequest) (*pb.Order, error) {
	return viaInterceptor(ctx, r.ic, pb.ReservationService_GetOrder_FullMethodName, req, r.srv.GetOrder)
}

func (r restReservations) CancelOrder(ctx context.Context, req *pb.CancelOrderRequest) (*pb.Order, error) {
	return viaInterceptor(ctx, r.ic, pb.ReservationService_CancelOrder_FullMethodName, req, r.srv.CancelOrder)
}

func (r restReservations) ExtendOrder(ctx context.Context, req *pb.ExtendOrderRequest) (*pb.Order, error) {
	return viaInterceptor(ctx, r.ic, pb.ReservationService_ExtendOrder_FullMethodName, req, r.srv.ExtendOrder)
}

func (r restReservations) FulfilOrder(ctx context.Context, req *pb.FulfilOrderRequest) (*pb.Order, error) {
	return viaInterceptor(ctx, r.ic, pb.ReservationService_FulfilOrder_FullMethodName, req, r.srv.FulfilOrder)
}

// restAuthed is a service of this package whose REST handlers take the
// gateway's API key interceptor; New hands it over before RegisterHTTP.
type restAuthed interface {
	setRESTInterceptor(grpc.UnaryServerInterceptor)
}

func (s *ordersServer) setRESTInterceptor(ic grpc.UnaryServerInterceptor) { s.restIC = ic }

func (r *Reservations) setRESTInterceptor(ic grpc.UnaryServerInterceptor) {
	if s, ok := r.Service.(restAuthed); ok {
		s.setRESTInterceptor(ic)
	}
}

// interceptor is the unary interceptor REST calls run through: nil
// without API keys, so they cost nothing then.
func (a *keyAuth) interceptor() grpc.UnaryServerInterceptor {
	if a == nil || a.keys == nil {
		return nil
	}
	return a.unary
}
