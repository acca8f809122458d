package inventory

import "slices"

// Clone returns a deep copy of s: no slice is shared with it.
func (s State) Clone() State {
	out := s
	out.Locations = slices.Clone(s.Locations)
	for i := range out.Locations {
		out.Locations[i].Adjustment = slices.Clone(out.Locations[i].Adjustment)
	}
	return out
}
