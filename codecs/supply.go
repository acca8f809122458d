package codecs

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// ErrMalformed is wrapped by every decoding failure of an input message.
var ErrMalformed = errors.New("malformed message")

// DecodeSupplyEvent decodes a supply topic message into a domain event. It
// does not validate the event's fields: inventory.Apply does.
func DecodeSupplyEvent(data []byte) (inventory.Event, error) {
	if ev, ok := decodeSupplyFast(data); ok {
		return ev, nil
	}
	return decodeSupplyGeneric(data)
}

func decodeSupplyGeneric(data []byte) (inventory.Event, error) {
	var env pb.SupplyEvent
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: not a skuflow.v1.SupplyEvent: %v", ErrMalformed, err)
	}
	return SupplyEventFromProto(&env)
}

// SupplyEventFromProto converts a decoded envelope into a domain event.
func SupplyEventFromProto(env *pb.SupplyEvent) (inventory.Event, error) {
	switch e := env.GetEvent().(type) {
	case *pb.SupplyEvent_StockLevel:
		l := e.StockLevel
		asOf, err := timeFromProto("as_of", l.GetAsOf())
		if err != nil {
			return nil, err
		}
		return inventory.StockLevel{
			SKU: l.GetSku(), Location: l.GetLocation(), OnHand: l.GetOnHand(), AsOf: asOf, Sequence: l.GetSequence(), Area: l.GetArea(),
		}, nil
	case *pb.SupplyEvent_StockAdjustment:
		a := e.StockAdjustment
		at, err := timeFromProto("occurred_at", a.GetOccurredAt())
		if err != nil {
			return nil, err
		}
		return inventory.StockAdjustment{
			EventID: a.GetEventId(), SKU: a.GetSku(), Location: a.GetLocation(), Delta: a.GetDelta(), OccurredAt: at, Area: a.GetArea(),
		}, nil
	case nil:
		return nil, fmt.Errorf("%w: supply event envelope has no event set", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported supply event %T", ErrMalformed, e)
	}
}

// SupplyEventToProto wraps a domain event in its topic envelope.
func SupplyEventToProto(ev inventory.Event) (*pb.SupplyEvent, error) {
	switch e := ev.(type) {
	case inventory.StockLevel:
		return &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
			Sku: e.SKU, Location: e.Location, OnHand: e.OnHand, AsOf: timestamppb.New(e.AsOf), Sequence: e.Sequence, Area: e.Area,
		}}}, nil
	case inventory.StockAdjustment:
		return &pb.SupplyEvent{Event: &pb.SupplyEvent_StockAdjustment{StockAdjustment: &pb.StockAdjustment{
			EventId: e.EventID, Sku: e.SKU, Location: e.Location, Delta: e.Delta, OccurredAt: timestamppb.New(e.OccurredAt), Area: e.Area,
		}}}, nil
	default:
		return nil, fmt.Errorf("codecs: no supply envelope for %T", ev)
	}
}

// EncodeSupplyEvent is SupplyEventToProto followed by deterministic marshalling.
func EncodeSupplyEvent(ev inventory.Event) ([]byte, error) {
	env, err := SupplyEventToProto(ev)
	if err != nil {
		return nil, err
	}
	return marshal.Marshal(env)
}

// timeFromProto maps an absent timestamp to the zero time, which the
// domain's validation rejects as missing; an out-of-range one is malformed.
func timeFromProto(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return ts.AsTime(), nil
}
