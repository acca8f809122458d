package codecs

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Availability is the goka.Codec of the availability topic.
var Availability = Proto[*pb.Availability]{New: func() *pb.Availability { return new(pb.Availability) }}

// DeadLetter is the goka.Codec of the dead-letter topic.
var DeadLetter = Proto[*pb.DeadLetter]{New: func() *pb.DeadLetter { return new(pb.DeadLetter) }}

// SnapshotToProto converts a derived snapshot to the API and topic message.
func SnapshotToProto(s inventory.Snapshot) *pb.Availability {
	m := &pb.Availability{
		Sku: s.SKU, OnHand: s.OnHand, Available: s.Available, Version: s.Version,
		UpdatedAt: optionalTimestamp(s.UpdatedAt),
		Locations: make([]*pb.LocationAvailability, 0, len(s.Locations)),
	}
	for _, l := range s.Locations {
		m.Locations = append(m.Locations, &pb.LocationAvailability{
			Location: l.ID, OnHand: l.OnHand, LevelAsOf: optionalTimestamp(l.LevelAsOf),
		})
	}
	return m
}

func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
