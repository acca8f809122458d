package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// DefaultBatchLimit is how many SKUs one BatchGetAvailability may ask for
// when Options.BatchLimit is 0.
const DefaultBatchLimit = 1000

// DefaultCacheMaxAge is the longest an HTTP cache may keep an answer when
// Options.CacheMaxAge is 0.
const DefaultCacheMaxAge = 5 * time.Second

// availabilityServer answers GetAvailability and BatchGetAvailability, for
// gRPC and (through grpc-gateway's in-process handlers) REST. Answers come
// from answers, which keeps each SKU's evaluated answer while it holds.
//
// Over gRPC an unfiltered answer is returned pre-encoded (see
// answer.preEncodedAt): the message a handler returns then holds its
// encoding as unknown fields, which grpc-go's codec copies out. A call
// through grpc-gateway (runtime.RPCMethod set on its context) gets plain
// messages, which its JSON marshaller needs, and HTTP caching headers.
type availabilityServer struct {
	pb.UnimplementedAvailabilityServiceServer
	stock    views.StockLookup
	policies views.PolicyLookup
	base     inventory.Base
	now      func() time.Time
	// answers keeps evaluated answers; batchLimit bounds a batch; maxAge
	// bounds Cache-Control's max-age (negative: no-cache always).
	answers    *answers
	batchLimit int
	maxAge     time.Duration
}

// viaGateway reports whether a call came through grpc-gateway's in-process
// REST handlers.
func viaGateway(ctx context.Context) bool {
	_, ok := runtime.RPCMethod(ctx)
	return ok
}

// query is a request's SKU-independent part, checked.
type query struct {
	shipTo string
	filter inventory.Filter
}

func (s *availabilityServer) parseQuery(shipTo string, locations, channels []string) (query, error) {
	var errs []error
	if shipTo != "" {
		if err := inventory.ValidateRegion("ship_to_region", shipTo); err != nil {
			errs = append(errs, err)
		}
	}
	f, err := inventory.NewFilter(locations, channels, s.base.Channels)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return query{}, apierr.Invalid(err)
	}
	return query{shipTo: shipTo, filter: f}, nil
}

func (s *availabilityServer) GetAvailability(ctx context.Context, req *pb.GetAvailabilityRequest) (*pb.Availability, error) {
	now := s.now()
	sku := req.GetSku()
	if err := inventory.ValidateID("sku", sku); err != nil {
		return nil, apierr.Invalid(err)
	}
	q, err := s.parseQuery(req.GetShipToRegion(), req.GetLocations(), req.GetChannels())
	if err != nil {
		return nil, err
	}
	e, err := s.answers.get(sku, q.shipTo, now, s.answers.ready())
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, apierr.Publicf(apierr.ErrNotFound, "sku %q is not known", sku)
	}
	rest := viaGateway(ctx)
	if q.filter.IsZero() {
		if !rest {
			// The version is an ETag; errors only mean the transport cannot
			// carry headers.
			_ = grpc.SetHeader(ctx, e.etagMD)
			if m := e.preEncodedAt(now); m != nil {
				return m, nil
			}
			return e.messageAt(now), nil
		}
		s.setHTTPHeaders(ctx, e.etag, now, e.until)
		return e.messageAt(now), nil
	}
	r := inventory.Restrict(e.snapshotAt(now), q.filter)
	etag := `"` + r.Version + `"`
	if rest {
		s.setHTTPHeaders(ctx, etag, now, e.until)
	} else {
		_ = grpc.SetHeader(ctx, metadata.Pairs("etag", etag))
	}
	return codecs.RestrictedToProto(r), nil
}

// maxBatchProblems bounds how many malformed SKUs an error lists.
const maxBatchProblems = 10

func (s *availabilityServer) BatchGetAvailability(ctx context.Context, req *pb.BatchGetAvailabilityRequest) (*pb.BatchGetAvailabilityResponse, error) {
	now := s.now() // one instant for the whole batch
	skus := req.GetSku()
	switch {
	case len(skus) == 0:
		return nil, apierr.Publicf(apierr.ErrInvalidArgument, "no sku given: ask for 1 to %d SKUs", s.batchLimit)
	case len(skus) > s.batchLimit:
		return nil, apierr.Publicf(apierr.ErrInvalidArgument, "%d SKUs asked for, more than the limit of %d per call", len(skus), s.batchLimit)
	}
	var bad []error
	malformed := 0
	distinct := make([]string, 0, len(skus))
	seen := make(map[string]struct{}, len(skus))
	for i, sku := range skus {
		if err := inventory.ValidateID("sku", sku); err != nil {
			if malformed++; malformed <= maxBatchProblems {
				bad = append(bad, fmt.Errorf("sku[%d]: %w", i, err))
			}
			continue
		}
		if _, dup := seen[sku]; !dup {
			seen[sku] = struct{}{}
			distinct = append(distinct, sku)
		}
	}
	if malformed > maxBatchProblems {
		bad = append(bad, fmt.Errorf("and %d more malformed SKUs", malformed-maxBatchProblems))
	}
	q, err := s.parseQuery(req.GetShipToRegion(), req.GetLocations(), req.GetChannels())
	if err != nil {
		bad = append(bad, err)
	}
	if err := errors.Join(bad...); err != nil {
		return nil, apierr.Invalid(err)
	}

	ready := s.answers.ready()
	found := make([]*answer, len(distinct))
	for i, sku := range distinct {
		if found[i], err = s.answers.get(sku, q.shipTo, now, ready); err != nil {
			return nil, err
		}
	}
	rest := viaGateway(ctx)
	if !rest && q.filter.IsZero() {
		if m := preEncodedBatch(distinct, found, now); m != nil {
			return m, nil
		}
	}
	resp := &pb.BatchGetAvailabilityResponse{Results: make([]*pb.AvailabilityResult, len(distinct)), EvaluatedAt: timestamppb.New(now)}
	h := fnv.New64a()
	var until time.Time
	for i, sku := range distinct {
		res := &pb.AvailabilityResult{Sku: sku}
		var version string
		if e := found[i]; e != nil {
			res.Found = true
			if q.filter.IsZero() {
				res.Availability = e.messageAt(now)
				version = e.snap.Version
			} else {
				r := inventory.Restrict(e.snapshotAt(now), q.filter)
				res.Availability = codecs.RestrictedToProto(r)
				version = r.Version
			}
			if !e.until.IsZero() && (until.IsZero() || e.until.Before(until)) {
				until = e.until
			}
		}
		resp.Results[i] = res
		fmt.Fprintf(h, "%d:%s%d:%s", len(sku), sku, len(version), version)
	}
	if rest {
		// The batch's ETag digests every result's SKU and version (which
		// cover the region and the filter), so it changes when any answer
		// does; its max-age ends at the first answer's next change.
		s.setHTTPHeaders(ctx, `"b`+strconv.FormatUint(h.Sum64(), 16)+`"`, now, until)
	}
	return resp, nil
}

// setHTTPHeaders sets the REST answer's ETag and Cache-Control (see
// cacheControl), as gRPC header metadata grpc-gateway turns into HTTP
// headers.
func (s *availabilityServer) setHTTPHeaders(ctx context.Context, etag string, now, until time.Time) {
	_ = grpc.SetHeader(ctx, metadata.MD{"etag": {etag}, "cache-control": {cacheControl(s.maxAge, now, until)}})
}
