package gateway

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
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
}

func (s *availabilityServer) GetAvailability(ctx context.Context, req *pb.GetAvailabilityRequest) (*pb.Availability, error) {
	sku := req.GetSku()
	if err := inventory.ValidateID("sku", sku); err != nil {
		return nil, apierr.Invalid(err)
	}
	shipTo := req.GetShipToRegion()
	if shipTo != "" {
		if err := inventory.ValidateRegion("ship_to_region", shipTo); err != nil {
			return nil, apierr.Invalid(err)
		}
	}
	state, found, err := s.stock.Get(sku)
	if err != nil {
		return nil, &apierr.LookupError{Views: "availability", Lookup: "stock", Err: fmt.Errorf("sku %q: %w", sku, err)}
	}
	// A state without stock or policy (one an order invented before orders
	// stopped inventing SKUs) is not a SKU skuflow knows.
	if !found || !state.Known() {
		return nil, apierr.Publicf(apierr.ErrNotFound, "sku %q is not known", sku)
	}
	pol, err := schema.Gather(state, s.policies.GetPolicy, s.base)
	if err != nil {
		return nil, &apierr.LookupError{Views: "availability", Lookup: "policy", Err: fmt.Errorf("sku %q: %w", sku, err)}
	}
	pol.ShipTo = shipTo // empty: the region-less answer, as published
	snap := codecs.SnapshotToProto(inventory.Evaluate(state, pol, s.now()))
	// The version is an ETag; errors only mean the transport cannot carry headers.
	_ = grpc.SetHeader(ctx, metadata.Pairs("etag", `"`+snap.GetVersion()+`"`))
	return snap, nil
}
