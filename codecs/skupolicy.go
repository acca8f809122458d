package codecs

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// DecodeSkuPolicyEvent decodes a sku-policies topic message into a domain
// event. It does not validate fields: inventory.Apply does.
func DecodeSkuPolicyEvent(data []byte) (inventory.Event, error) {
	var env pb.SkuPolicyEvent
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: not a skuflow.v1.SkuPolicyEvent: %v", ErrMalformed, err)
	}
	return SkuPolicyEventFromProto(&env)
}

// SkuPolicyEventFromProto converts a decoded envelope into a domain event.
func SkuPolicyEventFromProto(env *pb.SkuPolicyEvent) (inventory.Event, error) {
	var ts timeReader
	var ev inventory.Event
	switch e := env.GetPolicy().(type) {
	case *pb.SkuPolicyEvent_ChannelEligibility:
		p := e.ChannelEligibility
		ev = inventory.ChannelEligibility{SKU: p.GetSku(), Channel: p.GetChannel(), Sellable: p.GetSellable(), AsOf: ts.read("as_of", p.GetAsOf())}
	case *pb.SkuPolicyEvent_SalesCap:
		p := e.SalesCap
		ev = inventory.SalesCap{SKU: p.GetSku(), Channel: p.GetChannel(), Limit: p.GetLimit(), Cleared: p.GetCleared(),
			WindowStart: ts.read("window_start", p.GetWindowStart()), WindowEnd: ts.read("window_end", p.GetWindowEnd()),
			AsOf: ts.read("as_of", p.GetAsOf())}
	case *pb.SkuPolicyEvent_BackorderLimit:
		p := e.BackorderLimit
		ev = inventory.BackorderLimit{SKU: p.GetSku(), Limit: p.GetLimit(), AsOf: ts.read("as_of", p.GetAsOf())}
	case *pb.SkuPolicyEvent_SafetyStock:
		p := e.SafetyStock
		ev = inventory.SafetyStockOverride{SKU: p.GetSku(), Location: p.GetLocation(), Units: p.GetUnits(), Cleared: p.GetCleared(),
			AsOf: ts.read("as_of", p.GetAsOf())}
	case nil:
		return nil, fmt.Errorf("%w: sku policy envelope has no policy set", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported sku policy %T", ErrMalformed, e)
	}
	if ts.err != nil {
		return nil, ts.err
	}
	return ev, nil
}

// SkuPolicyEventToProto wraps a domain SKU policy in its topic envelope.
func SkuPolicyEventToProto(ev inventory.Event) (*pb.SkuPolicyEvent, error) {
	switch e := ev.(type) {
	case inventory.ChannelEligibility:
		return &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_ChannelEligibility{ChannelEligibility: &pb.ChannelEligibility{
			Sku: e.SKU, Channel: e.Channel, Sellable: e.Sellable, AsOf: timestamppb.New(e.AsOf)}}}, nil
	case inventory.SalesCap:
		return &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{
			Sku: e.SKU, Channel: e.Channel, Limit: e.Limit, Cleared: e.Cleared, WindowStart: optionalTimestamp(e.WindowStart),
			WindowEnd: optionalTimestamp(e.WindowEnd), AsOf: timestamppb.New(e.AsOf)}}}, nil
	case inventory.BackorderLimit:
		return &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_BackorderLimit{BackorderLimit: &pb.BackorderLimit{
			Sku: e.SKU, Limit: e.Limit, AsOf: timestamppb.New(e.AsOf)}}}, nil
	case inventory.SafetyStockOverride:
		return &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SafetyStock{SafetyStock: &pb.SafetyStockOverride{
			Sku: e.SKU, Location: e.Location, Units: e.Units, Cleared: e.Cleared, AsOf: timestamppb.New(e.AsOf)}}}, nil
	default:
		return nil, fmt.Errorf("codecs: no sku policy envelope for %T", ev)
	}
}

// timeReader converts several timestamps and keeps the first error.
type timeReader struct{ err error }

func (r *timeReader) read(field string, ts *timestamppb.Timestamp) time.Time {
	v, err := timeFromProto(field, ts)
	if err != nil && r.err == nil {
		r.err = err
	}
	return v
}
