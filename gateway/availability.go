package gateway

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

type availabilityServer struct {
	pb.UnimplementedAvailabilityServiceServer
	stock    views.StockLookup
	policies views.PolicyLookup
	base     inventory.Base
	now      func() time.Time
	log      *slog.Logger
}

func (s *availabilityServer) GetAvailability(ctx context.Context, req *pb.GetAvailabilityRequest) (*pb.Availability, error) {
	sku := req.GetSku()
	if err := inventory.ValidateID("sku", sku); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	state, found, err := s.stock.Get(sku)
	switch {
	case errors.Is(err, views.ErrNotReady):
		return nil, status.Error(codes.Unavailable, "availability views are still recovering; retry shortly")
	case err != nil:
		s.log.Error("stock lookup failed", "sku", sku, "err", err)
		return nil, status.Error(codes.Unavailable, "stock lookup failed")
	case !found:
		return nil, status.Errorf(codes.NotFound, "sku %q is not known", sku)
	}
	pol, err := schema.Gather(state, s.policies.GetPolicy, s.base)
	switch {
	case errors.Is(err, views.ErrNotReady):
		return nil, status.Error(codes.Unavailable, "availability views are still recovering; retry shortly")
	case err != nil:
		s.log.Error("policy lookup failed", "sku", sku, "err", err)
		return nil, status.Error(codes.Unavailable, "policy lookup failed")
	}
	snap := codecs.SnapshotToProto(inventory.Evaluate(state, pol, s.now()))
	// The version is an ETag; errors only mean the transport cannot carry headers.
	_ = grpc.SetHeader(ctx, metadata.Pairs("etag", `"`+snap.GetVersion()+`"`))
	return snap, nil
}
