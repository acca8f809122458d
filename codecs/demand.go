package codecs

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Outcome is the goka.Codec of the reservation-outcomes topic.
var Outcome = Proto[*pb.ReservationOutcome]{New: func() *pb.ReservationOutcome { return new(pb.ReservationOutcome) }}

// DecodeDemandEvent decodes a demand topic message into a domain event. It
// does not validate fields: inventory.Demand does.
func DecodeDemandEvent(data []byte) (inventory.Event, error) {
	var env pb.DemandEvent
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: not a skuflow.v1.DemandEvent: %v", ErrMalformed, err)
	}
	switch e := env.GetEvent().(type) {
	case *pb.DemandEvent_Requested:
		r := e.Requested
		ttl, err := duration("ttl", r.GetTtl())
		if err != nil {
			return nil, err
		}
		return inventory.ReservationRequested{ReservationID: r.GetReservationId(), OrderID: r.GetOrderId(), SKU: r.GetSku(),
			Channel: r.GetChannel(), Quantity: r.GetQuantity(), TTL: ttl, ShipTo: r.GetShipToRegion()}, nil
	case *pb.DemandEvent_Released:
		r := e.Released
		return inventory.ReservationReleased{ReservationID: r.GetReservationId(), SKU: r.GetSku(), Reason: inventory.ReleaseReason(r.GetReason())}, nil
	case *pb.DemandEvent_Fulfilled:
		f := e.Fulfilled
		at, err := timeFromProto("fulfilled_at", f.GetFulfilledAt())
		if err != nil {
			return nil, err
		}
		return inventory.ReservationFulfilled{ReservationID: f.GetReservationId(), SKU: f.GetSku(), Location: f.GetLocation(),
			Area: f.GetArea(), FulfilledAt: at, FulfilmentID: f.GetFulfilmentId(), Quantity: f.GetQuantity()}, nil
	case *pb.DemandEvent_Extended:
		x := e.Extended
		at, err := timeFromProto("expires_at", x.GetExpiresAt())
		if err != nil {
			return nil, err
		}
		return inventory.ReservationExtended{ReservationID: x.GetReservationId(), OrderID: x.GetOrderId(), SKU: x.GetSku(), ExpiresAt: at}, nil
	case nil:
		return nil, fmt.Errorf("%w: demand event envelope has no event set", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported demand event %T", ErrMalformed, e)
	}
}

// DemandEventToProto wraps a domain demand event in its topic envelope.
func DemandEventToProto(ev inventory.Event) (*pb.DemandEvent, error) {
	switch e := ev.(type) {
	case inventory.ReservationRequested:
		return &pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
			ReservationId: e.ReservationID, OrderId: e.OrderID, Sku: e.SKU, Quantity: e.Quantity, Channel: e.Channel,
			Ttl: durationpb.New(e.TTL), ShipToRegion: e.ShipTo}}}, nil
	case inventory.ReservationReleased:
		return &pb.DemandEvent{Event: &pb.DemandEvent_Released{Released: &pb.ReservationReleased{
			ReservationId: e.ReservationID, Sku: e.SKU, Reason: pb.ReleaseReason(e.Reason)}}}, nil
	case inventory.ReservationFulfilled:
		return &pb.DemandEvent{Event: &pb.DemandEvent_Fulfilled{Fulfilled: &pb.ReservationFulfilled{
			ReservationId: e.ReservationID, Sku: e.SKU, Location: e.Location, Area: e.Area,
			FulfilledAt: timestamppb.New(e.FulfilledAt), FulfilmentId: e.FulfilmentID, Quantity: e.Quantity}}}, nil
	case inventory.ReservationExtended:
		return &pb.DemandEvent{Event: &pb.DemandEvent_Extended{Extended: &pb.ReservationExtended{
			ReservationId: e.ReservationID, OrderId: e.OrderID, Sku: e.SKU, ExpiresAt: timestamppb.New(e.ExpiresAt)}}}, nil
	}
	return nil, fmt.Errorf("codecs: no demand envelope for %T", ev)
}

// OutcomeToProto converts a reservation decision.
func OutcomeToProto(o inventory.Outcome) *pb.ReservationOutcome {
	return &pb.ReservationOutcome{ReservationId: o.ReservationID, OrderId: o.OrderID, Sku: o.SKU, Quantity: o.Quantity,
		Accepted: o.Accepted, Backorder: o.Backorder, Reason: pb.RejectReason(o.Reason), Message: o.Message,
		DecidedAt: optionalTimestamp(o.DecidedAt), Extension: o.Extension, ExpiresAt: optionalTimestamp(o.ExpiresAt)}
}

// OutcomeFromProto converts a decoded reservation decision.
func OutcomeFromProto(m *pb.ReservationOutcome) (inventory.Outcome, error) {
	at, err := timeFromProto("decided_at", m.GetDecidedAt())
	if err != nil {
		return inventory.Outcome{}, err
	}
	exp, err := timeFromProto("expires_at", m.GetExpiresAt())
	if err != nil {
		return inventory.Outcome{}, err
	}
	o := inventory.Outcome{ReservationID: m.GetReservationId(), OrderID: m.GetOrderId(), SKU: m.GetSku(), Quantity: m.GetQuantity(),
		Accepted: m.GetAccepted(), Backorder: m.GetBackorder(), Reason: inventory.RejectReason(m.GetReason()), Message: m.GetMessage(), DecidedAt: at,
		Extension: m.GetExtension(), ExpiresAt: exp}
	if err := inventory.ValidateRef("reservation_id", o.ReservationID); err != nil {
		return o, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return o, nil
}

// DecodeOutcome decodes a reservation-outcomes message.
func DecodeOutcome(data []byte) (inventory.Outcome, error) {
	var m pb.ReservationOutcome
	if err := proto.Unmarshal(data, &m); err != nil {
		return inventory.Outcome{}, fmt.Errorf("%w: not a skuflow.v1.ReservationOutcome: %v", ErrMalformed, err)
	}
	return OutcomeFromProto(&m)
}

// DecodeOrderCommand decodes an orders topic message into a saga input:
// inventory.PlaceOrder, CancelOrder, ExtendOrder, FulfilOrder or OrderTick.
func DecodeOrderCommand(data []byte) (any, string, error) {
	var env pb.OrderCommand
	if err := proto.Unmarshal(data, &env); err != nil {
		return nil, "", fmt.Errorf("%w: not a skuflow.v1.OrderCommand: %v", ErrMalformed, err)
	}
	switch c := env.GetCommand().(type) {
	case *pb.OrderCommand_Place:
		p, err := PlaceOrderFromProto(c.Place)
		return p, c.Place.GetOrderId(), err
	case *pb.OrderCommand_Cancel:
		return inventory.CancelOrder{OrderID: c.Cancel.GetOrderId()}, c.Cancel.GetOrderId(), nil
	case *pb.OrderCommand_Tick:
		at, err := timeFromProto("at", c.Tick.GetAt())
		if err == nil {
			err = inventory.ValidateTime("order tick time", at)
			if err != nil {
				err = fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
		return inventory.OrderTick{OrderID: c.Tick.GetOrderId(), At: at}, c.Tick.GetOrderId(), err
	case *pb.OrderCommand_Extend:
		at, err := timeFromProto("expires_at", c.Extend.GetExpiresAt())
		return inventory.ExtendOrder{OrderID: c.Extend.GetOrderId(), ExpiresAt: at}, c.Extend.GetOrderId(), err
	case *pb.OrderCommand_Fulfil:
		return FulfilOrderFromProto(c.Fulfil), c.Fulfil.GetOrderId(), nil
	case nil:
		return nil, "", fmt.Errorf("%w: order command envelope has no command set", ErrMalformed)
	}
	return nil, "", fmt.Errorf("%w: unsupported order command %T", ErrMalformed, env.GetCommand())
}

// ExtendOrderToProto converts an extend command.
func ExtendOrderToProto(e inventory.ExtendOrder) *pb.ExtendOrderCommand {
	return &pb.ExtendOrderCommand{OrderId: e.OrderID, ExpiresAt: timestamppb.New(e.ExpiresAt)}
}

// FulfilOrderToProto converts a fulfil command.
func FulfilOrderToProto(f inventory.FulfilOrder) *pb.FulfilOrderCommand {
	return &pb.FulfilOrderCommand{OrderId: f.OrderID, FulfilmentId: f.FulfilmentID, Lines: fulfilmentLinesToProto(f.Lines)}
}

// FulfilOrderFromProto converts a fulfil command.
func FulfilOrderFromProto(m *pb.FulfilOrderCommand) inventory.FulfilOrder {
	return inventory.FulfilOrder{OrderID: m.GetOrderId(), FulfilmentID: m.GetFulfilmentId(), Lines: FulfilmentLinesFromProto(m.GetLines())}
}

func fulfilmentLinesToProto(ls []inventory.FulfilmentLine) []*pb.FulfilmentLine {
	out := make([]*pb.FulfilmentLine, 0, len(ls))
	for _, l := range ls {
		out = append(out, &pb.FulfilmentLine{Sku: l.SKU, Quantity: l.Quantity, Location: l.Location, Area: l.Area})
	}
	return out
}

// FulfilmentLinesFromProto converts the lines of a fulfilment.
func FulfilmentLinesFromProto(ls []*pb.FulfilmentLine) []inventory.FulfilmentLine {
	var out []inventory.FulfilmentLine
	for _, l := range ls {
		out = append(out, inventory.FulfilmentLine{SKU: l.GetSku(), Quantity: l.GetQuantity(), Location: l.GetLocation(), Area: l.GetArea()})
	}
	return out
}

// PlaceOrderFromProto converts a place command.
func PlaceOrderFromProto(m *pb.PlaceOrderCommand) (inventory.PlaceOrder, error) {
	ttl, err := duration("reservation_ttl", m.GetReservationTtl())
	if err != nil {
		return inventory.PlaceOrder{}, err
	}
	timeout, err := duration("decision_timeout", m.GetDecisionTimeout())
	if err != nil {
		return inventory.PlaceOrder{}, err
	}
	p := inventory.PlaceOrder{OrderID: m.GetOrderId(), Channel: m.GetChannel(), ReservationTTL: ttl, DecisionTimeout: timeout,
		ShipTo: m.GetShipToRegion()}
	for _, l := range m.GetLines() {
		p.Lines = append(p.Lines, inventory.OrderLine{SKU: l.GetSku(), Quantity: l.GetQuantity()})
	}
	return p, nil
}

// PlaceOrderToProto converts a place command.
func PlaceOrderToProto(p inventory.PlaceOrder) *pb.PlaceOrderCommand {
	m := &pb.PlaceOrderCommand{OrderId: p.OrderID, Channel: p.Channel,
		ReservationTtl: durationpb.New(p.ReservationTTL), DecisionTimeout: durationpb.New(p.DecisionTimeout), ShipToRegion: p.ShipTo}
	for _, l := range p.Lines {
		m.Lines = append(m.Lines, &pb.OrderLine{Sku: l.SKU, Quantity: l.Quantity})
	}
	return m
}

// Order is the goka.Codec of the orders group table: inventory.Order values
// stored as skuflow.v1.Order.
type Order struct{}

// Encode implements goka.Codec.
func (Order) Encode(value any) ([]byte, error) {
	o, ok := value.(inventory.Order)
	if !ok {
		return nil, fmt.Errorf("codecs: cannot encode %T, want inventory.Order", value)
	}
	return marshal.Marshal(OrderToProto(o))
}

// Decode implements goka.Codec.
func (Order) Decode(data []byte) (any, error) {
	var m pb.Order
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("codecs: decode skuflow.v1.Order: %w", err)
	}
	return OrderFromProto(&m), nil
}

// OrderToProto converts a saga state to its table and API message.
func OrderToProto(o inventory.Order) *pb.Order {
	m := &pb.Order{OrderId: o.ID, Channel: o.Channel, Status: pb.OrderStatus(o.Status), PlacedAt: optionalTimestamp(o.PlacedAt),
		DecideBy: optionalTimestamp(o.DecideBy), ReservationTtl: durationpb.New(o.ReservationTTL), Reason: o.Reason,
		ShipToRegion: o.ShipTo}
	for _, l := range o.Lines {
		m.Lines = append(m.Lines, &pb.OrderLineState{Sku: l.SKU, Quantity: l.Quantity, ReservationId: l.ReservationID,
			Status: pb.LineStatus(l.Status), Backorder: l.Backorder, RejectReason: pb.RejectReason(l.Reject), Message: l.Message,
			ExpiresAt: optionalTimestamp(l.ExpiresAt), ExtendTo: optionalTimestamp(l.ExtendTo), FulfilledQuantity: l.Fulfilled})
	}
	for _, f := range o.Fulfilments {
		m.Fulfilments = append(m.Fulfilments, &pb.Fulfilment{FulfilmentId: f.ID, Lines: fulfilmentLinesToProto(f.Lines),
			DecidedAt: optionalTimestamp(f.DecidedAt), Refused: f.Refused})
	}
	return m
}

// OrderFromProto converts a table value back to the saga state.
func OrderFromProto(m *pb.Order) inventory.Order {
	o := inventory.Order{ID: m.GetOrderId(), Channel: m.GetChannel(), Status: inventory.OrderStatus(m.GetStatus()),
		ReservationTTL: m.GetReservationTtl().AsDuration(), Reason: m.GetReason(), ShipTo: m.GetShipToRegion()}
	if m.GetPlacedAt() != nil {
		o.PlacedAt = m.GetPlacedAt().AsTime()
	}
	if m.GetDecideBy() != nil {
		o.DecideBy = m.GetDecideBy().AsTime()
	}
	for _, l := range m.GetLines() {
		line := inventory.OrderLine{SKU: l.GetSku(), Quantity: l.GetQuantity(), ReservationID: l.GetReservationId(),
			Status: inventory.LineStatus(l.GetStatus()), Backorder: l.GetBackorder(), Reject: inventory.RejectReason(l.GetRejectReason()), Message: l.GetMessage(),
			Fulfilled: l.GetFulfilledQuantity()}
		if l.GetExpiresAt() != nil {
			line.ExpiresAt = l.GetExpiresAt().AsTime()
		}
		if l.GetExtendTo() != nil {
			line.ExtendTo = l.GetExtendTo().AsTime()
		}
		o.Lines = append(o.Lines, line)
	}
	for _, f := range m.GetFulfilments() {
		fl := inventory.Fulfilment{ID: f.GetFulfilmentId(), Lines: FulfilmentLinesFromProto(f.GetLines()), Refused: f.GetRefused()}
		if f.GetDecidedAt() != nil {
			fl.DecidedAt = f.GetDecidedAt().AsTime()
		}
		o.Fulfilments = append(o.Fulfilments, fl)
	}
	return o
}

// duration maps an absent duration to 0, which validation rejects or
// defaults; an out-of-range one is malformed.
func duration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return d.AsDuration(), nil
}
