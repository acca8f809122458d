package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func fmtLocations(ls []inventory.Location) string {
	if len(ls) == 0 {
		return "no locations"
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		id := l.ID
		if l.Area != "" {
			id += "/" + l.Area
		}
		s := fmt.Sprintf("%s on_hand %d", id, l.OnHand())
		if l.HasLevel {
			s += fmt.Sprintf(" (level %d as of %s seq %d", l.Level, ts(l.LevelAsOf), l.LevelSeq)
		} else {
			s += " (no level"
		}
		for _, a := range l.Adjustment {
			s += fmt.Sprintf(", %s %+d", a.EventID, a.Delta)
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, "; ")
}

func fmtPolicies(s inventory.State) string {
	return fmt.Sprintf("channels %+v caps %+v backorder %+v safety %+v", s.ChannelRules, s.SalesCaps, s.Backorder, s.SafetyOverrides)
}

func fmtReservation(r inventory.Reservation) string {
	return fmt.Sprintf("%s: %s, %s", r.ID, facts(r), decision(r))
}

func summary(s inventory.State) string {
	return fmt.Sprintf("%s; %d reservations", fmtLocations(s.Locations), len(s.Reservations))
}

func fmtSnapshot(s inventory.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version %s on_hand %d", s.Version, s.OnHand)
	for _, c := range s.Channels {
		fmt.Fprintf(&b, " %s=%d", c.Channel, c.Available)
	}
	fmt.Fprintf(&b, " (at %s)", ts(s.EvaluatedAt))
	return b.String()
}

func fmtRecord(r *pb.Availability) string {
	if r == nil {
		return "(undecodable)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version %s on_hand %d", r.GetVersion(), r.GetOnHand())
	for _, c := range r.GetChannels() {
		fmt.Fprintf(&b, " %s=%d", c.GetChannel(), c.GetAvailable())
	}
	fmt.Fprintf(&b, " (at %s)", ts(r.GetEvaluatedAt().AsTime()))
	return b.String()
}

func fmtOrder(o inventory.Order) string { return orderDecision(o) + "; " + orderFacts(o) }
