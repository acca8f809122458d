package inventory

import "slices"

// Clone returns a deep copy of s: no slice is shared with it.
func (s State) Clone() State {
	out := s
	out.Locations = slices.Clone(s.Locations)
	for i := range out.Locations {
		out.Locations[i].Adjustment = slices.Clone(out.Locations[i].Adjustment)
	}
	out.ChannelRules = slices.Clone(s.ChannelRules)
	out.SalesCaps = slices.Clone(s.SalesCaps)
	out.SafetyOverrides = slices.Clone(s.SafetyOverrides)
	out.Reservations = slices.Clone(s.Reservations)
	for i := range out.Reservations {
		out.Reservations[i].Fulfilments = slices.Clone(out.Reservations[i].Fulfilments)
	}
	out.CapUsage = slices.Clone(s.CapUsage)
	return out
}
