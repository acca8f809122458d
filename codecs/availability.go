package codecs

import (
	"slices"
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
		Sku: s.SKU, OnHand: s.OnHand, Version: s.Version,
		UpdatedAt: optionalTimestamp(s.UpdatedAt), NextChangeAt: optionalTimestamp(s.NextChangeAt),
		EvaluatedAt: optionalTimestamp(s.EvaluatedAt), ShipToRegion: s.ShipTo,
		Locations: make([]*pb.LocationAvailability, 0, len(s.Locations)),
		Channels:  make([]*pb.ChannelAvailability, 0, len(s.Channels)),
	}
	for _, l := range s.Locations {
		la := &pb.LocationAvailability{
			Location: l.ID, OnHand: l.OnHand, LevelAsOf: optionalTimestamp(l.LevelAsOf),
			Kind: pb.LocationKind(l.Kind), MerchantId: l.MerchantID, SafetyStock: l.SafetyStock, Usable: l.Usable,
			Closed: l.Closed, Stale: l.Stale, StaleAt: optionalTimestamp(l.StaleAt), Channels: slices.Clone(l.Channels),
			RegionExcluded: l.RegionExcluded,
		}
		for _, a := range l.Areas {
			la.Areas = append(la.Areas, &pb.AreaStock{Area: a.Area, OnHand: a.OnHand})
		}
		m.Locations = append(m.Locations, la)
	}
	for _, c := range s.Channels {
		ca := &pb.ChannelAvailability{
			Channel: c.Channel, Available: c.Available, Backorderable: c.Backorderable, Sellable: c.Sellable,
			Usable: c.Usable, Reserved: c.Reserved,
		}
		if c.HasCap {
			ca.CapRemaining = &c.CapRemaining
		}
		for _, r := range c.Reasons {
			ca.Reasons = append(ca.Reasons, &pb.Reason{Code: pb.Reason_Code(r.Code), Location: r.Location, Message: r.Message})
		}
		m.Channels = append(m.Channels, ca)
	}
	return m
}

func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// RestrictedToProto converts an answer restricted to some locations and
// channels (inventory.Restrict) to the API message: the snapshot's fields,
// the filter and the unknown locations.
func RestrictedToProto(r inventory.Restricted) *pb.Availability {
	m := SnapshotToProto(r.Snapshot)
	m.FilterLocations = slices.Clone(r.Filter.Locations)
	m.FilterChannels = slices.Clone(r.Filter.Channels)
	m.UnknownLocations = slices.Clone(r.UnknownLocations)
	return m
}
