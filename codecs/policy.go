package codecs

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// PolicyTable is the goka.Codec of the policies group table: the winning
// skuflow.v1.PolicyEvent per key.
var PolicyTable = Proto[*pb.PolicyEvent]{New: func() *pb.PolicyEvent { return new(pb.PolicyEvent) }}

// DecodePolicyEvent decodes a policies topic message; the envelope it
// returns has its policy set.
func DecodePolicyEvent(data []byte) (*pb.PolicyEvent, error) {
	var env pb.PolicyEvent
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: not a skuflow.v1.PolicyEvent: %v", ErrMalformed, err)
	}
	if env.GetPolicy() == nil {
		return nil, fmt.Errorf("%w: policy envelope has no policy set", ErrMalformed)
	}
	return &env, nil
}

// LocationPolicyFromProto converts a wire location policy.
func LocationPolicyFromProto(m *pb.LocationPolicy) (inventory.LocationPolicy, error) {
	asOf, err := timeFromProto("as_of", m.GetAsOf())
	if err != nil {
		return inventory.LocationPolicy{}, err
	}
	return inventory.LocationPolicy{
		Location: m.GetLocation(), Kind: inventory.LocationKind(m.GetKind()), MerchantID: m.GetMerchantId(),
		Closed: m.GetClosed(), Channels: slices.Clone(m.GetChannels()), SafetyStock: m.GetSafetyStock(),
		ExcludedRegions: slices.Clone(m.GetExcludedRegions()), AsOf: asOf,
	}, nil
}

// LocationPolicyToProto converts a domain location policy.
func LocationPolicyToProto(p inventory.LocationPolicy) *pb.LocationPolicy {
	return &pb.LocationPolicy{
		Location: p.Location, Kind: pb.LocationKind(p.Kind), MerchantId: p.MerchantID, Closed: p.Closed,
		Channels: slices.Clone(p.Channels), SafetyStock: p.SafetyStock, ExcludedRegions: slices.Clone(p.ExcludedRegions),
		AsOf: optionalTimestamp(p.AsOf),
	}
}

// MerchantPolicyFromProto converts a wire merchant policy.
func MerchantPolicyFromProto(m *pb.MerchantPolicy) (inventory.MerchantPolicy, error) {
	asOf, err := timeFromProto("as_of", m.GetAsOf())
	if err != nil {
		return inventory.MerchantPolicy{}, err
	}
	p := inventory.MerchantPolicy{MerchantID: m.GetMerchantId(), AsOf: asOf}
	if d := m.GetStaleAfter(); d != nil {
		if err := d.CheckValid(); err != nil {
			return inventory.MerchantPolicy{}, fmt.Errorf("%w: stale_after: %v", ErrMalformed, err)
		}
		p.StaleAfter = d.AsDuration()
	}
	return p, nil
}

// MerchantPolicyToProto converts a domain merchant policy.
func MerchantPolicyToProto(p inventory.MerchantPolicy) *pb.MerchantPolicy {
	m := &pb.MerchantPolicy{MerchantId: p.MerchantID, AsOf: optionalTimestamp(p.AsOf)}
	if p.StaleAfter != 0 {
		m.StaleAfter = durationpb.New(p.StaleAfter)
	}
	return m
}

// DecodeStockTick decodes a stock-ticks topic message.
func DecodeStockTick(data []byte) (*pb.StockTick, error) {
	var m pb.StockTick
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: not a skuflow.v1.StockTick: %v", ErrMalformed, err)
	}
	if m.GetAt() == nil {
		return nil, fmt.Errorf("%w: stock tick has no time", ErrMalformed)
	}
	if err := m.GetAt().CheckValid(); err != nil {
		return nil, fmt.Errorf("%w: stock tick time: %v", ErrMalformed, err)
	}
	if err := inventory.ValidateTime("stock tick time", m.GetAt().AsTime()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &m, nil
}

// CheckPolicyTimes is inventory.CheckEventTimes for a policy event (the
// policies group's input): the message time, then the policy's as_of
// against it. A policy without an as_of passes here; FoldPolicy refuses it.
func CheckPolicyTimes(ev *pb.PolicyEvent, msg time.Time, skew time.Duration) error {
	if err := inventory.CheckMessageTime(msg); err != nil {
		return err
	}
	var at *timestamppb.Timestamp
	switch {
	case ev.GetLocation() != nil:
		at = ev.GetLocation().GetAsOf()
	case ev.GetMerchant() != nil:
		at = ev.GetMerchant().GetAsOf()
	}
	if at == nil {
		return nil
	}
	return inventory.CheckSkew("as_of", at.AsTime(), msg, skew)
}
