package codecs

import (
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
	return marshal.Marshal(StateToProto(s))
}

// Decode implements goka.Codec.
func (State) Decode(data []byte) (any, error) {
	var m pb.SkuState
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("codecs: decode skuflow.v1.SkuState: %w", err)
	}
	return StateFromProto(&m), nil
}

// StateToProto converts a domain state to its table encoding.
func StateToProto(s inventory.State) *pb.SkuState {
	m := &pb.SkuState{Sku: s.SKU, Locations: make([]*pb.LocationState, 0, len(s.Locations))}
	for _, l := range s.Locations {
		ls := &pb.LocationState{
			Location: l.ID, HasLevel: l.HasLevel, LevelOnHand: l.Level,
			LevelAsOfUnixNano: unixNano(l.LevelAsOf), LevelSequence: l.LevelSeq,
		}
		for _, a := range l.Adjustment {
			ls.Adjustments = append(ls.Adjustments, &pb.AppliedAdjustment{
				EventId: a.EventID, Delta: a.Delta, OccurredAtUnixNano: unixNano(a.OccurredAt),
			})
		}
		m.Locations = append(m.Locations, ls)
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
			ID: ls.GetLocation(), HasLevel: ls.GetHasLevel(), Level: ls.GetLevelOnHand(), LevelSeq: ls.GetLevelSequence(),
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
	return s
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
