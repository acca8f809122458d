package inventory

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// MaxFilterIDs bounds each list of a Filter (locations, channels) as a
// caller gives it, duplicates included.
const MaxFilterIDs = 256

// Filter restricts an answer to some locations and channels ("how many can
// be picked up at store X"). An empty list restricts nothing; the zero
// Filter is the unrestricted answer. Build one with NewFilter, which
// validates and normalises it.
type Filter struct {
	// Locations to answer for, sorted, without duplicates.
	Locations []string
	// Channels to answer for, sorted, without duplicates; each one of the
	// configured channels.
	Channels []string
}

// IsZero reports whether f restricts nothing.
func (f Filter) IsZero() bool { return len(f.Locations) == 0 && len(f.Channels) == 0 }

// NewFilter validates a caller's location and channel lists and returns
// them normalised (sorted, duplicates dropped). Every location and channel
// must be a valid id (ValidateID), each list at most MaxFilterIDs long, and
// every channel one of configured (else ErrUnknownChannel). All problems
// are reported, joined.
func NewFilter(locations, channels, configured []string) (Filter, error) {
	var errs []error
	check := func(kind string, ids []string, also func(string) error) {
		if len(ids) > MaxFilterIDs {
			errs = append(errs, fmt.Errorf("%d %ss asked for, more than %d", len(ids), kind, MaxFilterIDs))
			return
		}
		for _, id := range ids {
			err := ValidateID(kind, id)
			if err == nil && also != nil {
				err = also(id)
			}
			if err != nil && !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == err.Error() }) {
				errs = append(errs, err)
			}
		}
	}
	check("location", locations, nil)
	check("channel", channels, func(c string) error {
		if slices.Contains(configured, c) {
			return nil
		}
		return fmt.Errorf("%w: %q (configured: %s)", ErrUnknownChannel, c, strings.Join(sortedChannels(configured), ", "))
	})
	if err := errors.Join(errs...); err != nil {
		return Filter{}, err
	}
	return Filter{Locations: sortedSet(locations), Channels: sortedSet(channels)}, nil
}

// sortedSet returns ids sorted without duplicates, in a new slice (nil for
// none).
func sortedSet(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// normalised is ids sorted without duplicates, in a new slice.
func normalised(ids []string) []string {
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			return sortedSet(ids)
		}
	}
	return slices.Clone(ids)
}

// Restricted is an answer restricted by a Filter: a Snapshot whose Version
// also covers the filter, with the filter and the requested locations the
// SKU has no stock record at.
type Restricted struct {
	Snapshot
	Filter Filter
	// UnknownLocations are the filter's locations that are not among the
	// SKU's locations, sorted.
	UnknownLocations []string
}

// Restrict narrows an answer of Evaluate to the filter's locations and
// channels. With a zero filter it is s itself. Otherwise Channels lists
// only the filter's channels (all, if it names none), and with locations L
// named, Locations lists only the SKU's locations in L, OnHand sums theirs,
// and per channel
//
//	usable(channel, L)    = Σ over the locations of L that count for the channel in s
//	                        (open, eligible, not stale, not excluded by the ship-to
//	                        region) of their usable units
//	available(channel, L) = min(usable(channel, L), available(channel))
//
// so L never offers more than the SKU as a whole can sell on the channel:
// reservations, stock shared between channels (as settled by Evaluate) and
// sales caps still bound it. Holds are not tied to locations, so a
// location's units count as free as long as the SKU has that many free.
// Reasons keep the SKU-level ones and those naming a location of L.
// Reserved, the cap and Backorderable stay the SKU's: backorders are
// promised beyond stock, not from a location, so a location filter does not
// change them (and never raises them above the unrestricted answer).
//
// UpdatedAt and NextChangeAt stay the unrestricted answer's: the restricted
// answer is a function of it, so it cannot change before NextChangeAt (it
// may stay as it is past it). Version digests the restricted answer, the
// filter and UnknownLocations, so answers to different filters have
// different versions, and none equals an unrestricted answer's.
//
// A filter not built by NewFilter is normalised first (sorted, duplicates
// dropped); its channels and locations are not validated. The result
// shares unmodified parts (areas, location channels) with s; neither is
// modified.
func Restrict(s Snapshot, f Filter) Restricted {
	if f.IsZero() {
		return Restricted{Snapshot: s}
	}
	f = Filter{Locations: normalised(f.Locations), Channels: normalised(f.Channels)}
	out := Restricted{Snapshot: s, Filter: f}
	inL := func(id string) bool {
		_, found := slices.BinarySearch(f.Locations, id)
		return found
	}
	if len(f.Locations) > 0 {
		out.OnHand = 0
		out.Locations = make([]LocationSnapshot, 0, min(len(s.Locations), len(f.Locations)))
		for _, l := range s.Locations {
			if inL(l.ID) {
				out.Locations = append(out.Locations, l)
				out.OnHand += l.OnHand // as Evaluate sums them
			}
		}
		for _, id := range f.Locations {
			if !slices.ContainsFunc(out.Locations, func(l LocationSnapshot) bool { return l.ID == id }) {
				out.UnknownLocations = append(out.UnknownLocations, id)
			}
		}
	}
	out.Channels = make([]ChannelSnapshot, 0, len(s.Channels))
	for _, c := range s.Channels {
		if len(f.Channels) > 0 {
			if _, found := slices.BinarySearch(f.Channels, c.Channel); !found {
				continue
			}
		}
		if len(f.Locations) > 0 {
			var usable int64
			for _, l := range out.Locations {
				if code, _ := excluded(l, c.Channel, s.ShipTo); code == 0 {
					usable = min(usable+l.Usable, MaxUnits)
				}
			}
			c.Usable = usable
			c.Available = min(c.Available, usable)
			var reasons []Reason
			for _, r := range c.Reasons {
				if r.Location == "" || inL(r.Location) {
					reasons = append(reasons, r)
				}
			}
			c.Reasons = reasons
		}
		out.Channels = append(out.Channels, c)
	}
	out.Version = out.digest()
	return out
}

// digest is the restricted answer's Version: the digest of its snapshot
// (every field but EvaluatedAt and Version) followed by the filter and the
// unknown locations, each list length-prefixed.
func (r Restricted) digest() string {
	var d digester
	d.h = fnv.New64a()
	d.str("restricted")
	d.str(r.Snapshot.digest())
	d.strs(r.Filter.Locations)
	d.strs(r.Filter.Channels)
	d.strs(r.UnknownLocations)
	return fmt.Sprintf("%016x", d.h.Sum64())
}
