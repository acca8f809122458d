package codecs

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// State is the goka.Codec of the stock group table: inventory.State values,
// stored as skuflow.v1.SkuState.
type State struct{}

// Encode implements goka.Codec.
func (State) Encode(value any) ([]byte, error) {
	s, ok := value.(inventory.State)
	if !ok {
		return nil, fmt.Errorf("codecs: cannot encode %T, want inventory.State", value)
	}
	return appendState(make([]byte, 0, 512), s), nil
}

// Decode implements goka.Codec.
func (State) Decode(data []byte) (any, error) {
	var m pb.SkuState
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("codecs: decode skuflow.v1.SkuState: %w", err)
	}
	if f := m.GetFormat(); f > inventory.StateFormat {
		// A newer binary wrote it: reading it as this one's format could
		// drop what only the newer one knows, and writing it back would
		// lose it for good.
		return nil, fmt.Errorf("%w: sku %q is stored in format %d, newer than this binary's %d: run a release that knows format %d",
			ErrNewerStateFormat, m.GetSku(), f, inventory.StateFormat, f)
	}
	return StateFromProto(&m), nil
}

// ErrNewerStateFormat refuses a stored state written by a newer binary
// (skuflow.v1.SkuState.format above inventory.StateFormat).
var ErrNewerStateFormat = errors.New("codecs: state format newer than this binary knows")

// StateToProto converts a domain state to its table encoding.
func StateToProto(s inventory.State) *pb.SkuState {
	m := &pb.SkuState{Sku: s.SKU, Locations: make([]*pb.LocationState, 0, len(s.Locations)), Format: inventory.StateFormat}
	for _, l := range s.Locations {
		ls := &pb.LocationState{
			Location: l.ID, Area: l.Area, HasLevel: l.HasLevel, LevelOnHand: l.Level,
			LevelAsOfUnixNano: unixNano(l.LevelAsOf), LevelSequence: l.LevelSeq,
		}
		for _, a := range l.Adjustment {
			ls.Adjustments = append(ls.Adjustments, &pb.AppliedAdjustment{
				EventId: a.EventID, Delta: a.Delta, OccurredAtUnixNano: unixNano(a.OccurredAt),
			})
		}
		m.Locations = append(m.Locations, ls)
	}
	for _, r := range s.ChannelRules {
		m.ChannelRules = append(m.ChannelRules, &pb.ChannelRuleState{Channel: r.Channel, Sellable: r.Sellable, AsOfUnixNano: unixNano(r.AsOf)})
	}
	for _, r := range s.SalesCaps {
		m.SalesCaps = append(m.SalesCaps, &pb.SalesCapState{
			Channel: r.Channel, Limit: r.Limit, Cleared: r.Cleared, AsOfUnixNano: unixNano(r.AsOf),
			WindowStartUnixNano: unixNano(r.WindowStart), WindowEndUnixNano: unixNano(r.WindowEnd),
		})
	}
	if !s.Backorder.AsOf.IsZero() {
		m.Backorder = &pb.BackorderState{Limit: s.Backorder.Limit, AsOfUnixNano: unixNano(s.Backorder.AsOf)}
	}
	for _, r := range s.SafetyOverrides {
		m.SafetyOverrides = append(m.SafetyOverrides, &pb.SafetyOverrideState{
			Location: r.Location, Units: r.Units, Cleared: r.Cleared, AsOfUnixNano: unixNano(r.AsOf),
		})
	}
	for _, r := range s.Reservations {
		m.Reservations = append(m.Reservations, &pb.ReservationState{
			ReservationId: r.ID, OrderId: r.OrderID, Channel: r.Channel, Quantity: r.Quantity, Status: int32(r.Status),
			Backorder: r.Backorder, RejectReason: int32(r.Reject), ReleaseReason: int32(r.Release),
			DecidedAtUnixNano: unixNano(r.DecidedAt), ExpiresAtUnixNano: unixNano(r.ExpiresAt), ClosedAtUnixNano: unixNano(r.ClosedAt),
			Fulfilled: r.Fulfilled, Fulfilments: r.Fulfilments,
		})
	}
	for _, u := range s.CapUsage {
		m.CapUsage = append(m.CapUsage, &pb.CapUsageState{Channel: u.Channel, WindowStartUnixNano: unixNano(u.WindowStart), Used: u.Used})
	}
	return m
}

// StateFromProto converts a table value back to the domain state.
func StateFromProto(m *pb.SkuState) inventory.State {
	s := inventory.State{SKU: m.GetSku()}
	if len(m.GetLocations()) > 0 {
		s.Locations = make([]inventory.Location, 0, len(m.GetLocations()))
	}
	for _, ls := range m.GetLocations() {
		l := inventory.Location{
			ID: ls.GetLocation(), Area: ls.GetArea(), HasLevel: ls.GetHasLevel(), Level: ls.GetLevelOnHand(), LevelSeq: ls.GetLevelSequence(),
		}
		if l.HasLevel {
			l.LevelAsOf = fromUnixNano(ls.GetLevelAsOfUnixNano())
		}
		for _, a := range ls.GetAdjustments() {
			l.Adjustment = append(l.Adjustment, inventory.Adjustment{
				EventID: a.GetEventId(), Delta: a.GetDelta(), OccurredAt: fromUnixNano(a.GetOccurredAtUnixNano()),
			})
		}
		s.Locations = append(s.Locations, l)
	}
	for _, r := range m.GetChannelRules() {
		s.ChannelRules = append(s.ChannelRules, inventory.ChannelRule{Channel: r.GetChannel(), Sellable: r.GetSellable(), AsOf: fromUnixNano(r.GetAsOfUnixNano())})
	}
	for _, r := range m.GetSalesCaps() {
		c := inventory.SalesCapRule{Channel: r.GetChannel(), Limit: r.GetLimit(), Cleared: r.GetCleared(), AsOf: fromUnixNano(r.GetAsOfUnixNano())}
		if !c.Cleared {
			c.WindowStart, c.WindowEnd = fromUnixNano(r.GetWindowStartUnixNano()), fromUnixNano(r.GetWindowEndUnixNano())
		}
		s.SalesCaps = append(s.SalesCaps, c)
	}
	if b := m.GetBackorder(); b != nil {
		s.Backorder = inventory.BackorderRule{Limit: b.GetLimit(), AsOf: fromUnixNano(b.GetAsOfUnixNano())}
	}
	for _, r := range m.GetSafetyOverrides() {
		s.SafetyOverrides = append(s.SafetyOverrides, inventory.SafetyOverrideRule{
			Location: r.GetLocation(), Units: r.GetUnits(), Cleared: r.GetCleared(), AsOf: fromUnixNano(r.GetAsOfUnixNano()),
		})
	}
	for _, r := range m.GetReservations() {
		s.Reservations = append(s.Reservations, inventory.Reservation{
			ID: r.GetReservationId(), OrderID: r.GetOrderId(), Channel: r.GetChannel(), Quantity: r.GetQuantity(),
			Status: inventory.ReservationStatus(r.GetStatus()), Backorder: r.GetBackorder(),
			Reject: inventory.RejectReason(r.GetRejectReason()), Release: inventory.ReleaseReason(r.GetReleaseReason()),
			DecidedAt: optionalTime(r.GetDecidedAtUnixNano()), ExpiresAt: optionalTime(r.GetExpiresAtUnixNano()),
			ClosedAt: optionalTime(r.GetClosedAtUnixNano()), Fulfilled: r.GetFulfilled(), Fulfilments: r.GetFulfilments(),
		})
	}
	for _, u := range m.GetCapUsage() {
		s.CapUsage = append(s.CapUsage, inventory.CapUsage{Channel: u.GetChannel(), WindowStart: fromUnixNano(u.GetWindowStartUnixNano()), Used: u.GetUsed()})
	}
	return inventory.UpgradeState(s, int(m.GetFormat()))
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }

// optionalTime maps 0 (an unset time) back to the zero time.
func optionalTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromUnixNano(n)
}
