package registry

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// TestRestoreClosesRemovedLocations: after a broker loss the outbox is
// re-published, rows for locations a merchant lost included. Restoring the
// registry must publish those locations closed, or their stock would count
// as an owned warehouse's on every channel (review finding).
func TestRestoreClosesRemovedLocations(t *testing.T) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	e := &pb.RegistryEntry{MerchantId: "M-1", Locations: []string{"L-1"}, RemovedLocations: []string{"L-0"},
		StaleAfter: durationpb.New(time.Hour), UpdatedAt: timestamppb.New(at)}
	got := map[string]bool{} // location -> closed
	merchant := false
	for _, ev := range restoreEvents(e) {
		if l := ev.GetLocation(); l != nil {
			if l.GetMerchantId() != "M-1" || l.GetKind() != pb.LocationKind_LOCATION_KIND_MERCHANT || !l.GetAsOf().AsTime().Equal(at) {
				t.Errorf("location policy %v", l)
			}
			got[l.GetLocation()] = l.GetClosed()
		}
		if m := ev.GetMerchant(); m != nil {
			merchant = m.GetStaleAfter().AsDuration() == time.Hour
		}
	}
	if closed, ok := got["L-1"]; !ok || closed {
		t.Errorf("L-1 (current) published %v, %v; want open", ok, closed)
	}
	if closed, ok := got["L-0"]; !ok || !closed {
		t.Errorf("L-0 (removed) published %v, %v; want closed", ok, closed)
	}
	if !merchant {
		t.Error("no merchant policy with the merchant's TTL")
	}
}
