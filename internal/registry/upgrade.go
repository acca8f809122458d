package registry

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// isLegacy reports whether e owns a location it records no channels for:
// an entry written before the registry kept channels, whose locations'
// policies still say every channel.
func isLegacy(e *pb.RegistryEntry) bool {
	for _, l := range e.GetLocations() {
		if len(recordedChannels(e, l)) == 0 {
			return true
		}
	}
	return false
}

// legacyUpgrade is the entry that records the default for a legacy entry.
// It depends on the entry alone: its as_of is the entry's own last change
// plus 1µs (so its policies beat the channel-less ones published then), so
// the writer taking the same registry twice (seedRegistry) writes the same
// entry and publishes the same policies.
func legacyUpgrade(cur *pb.RegistryEntry) *pb.RegistryEntry {
	next := normalized(cur)
	next.Version = cur.GetVersion() + 1
	next.UpdatedAt = timestamppb.New(cur.GetUpdatedAt().AsTime().Add(time.Microsecond))
	return next
}
