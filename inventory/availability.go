package inventory

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"time"
)

// Snapshot is a SKU's derived availability: what the gateway answers and what
// is published to the availability topic.
type Snapshot struct {
	SKU       string
	OnHand    int64
	Available int64
	Locations []LocationSnapshot // sorted by ID
	// UpdatedAt is the newest source time that contributed.
	UpdatedAt time.Time
	// Version is a digest of every other field: equal snapshots have equal
	// versions, so it serves as an ETag and as the "did it change" test.
	Version string
}

// LocationSnapshot is one location's line in a Snapshot.
type LocationSnapshot struct {
	ID        string
	OnHand    int64
	HasLevel  bool
	LevelAsOf time.Time
}

// Availability derives a SKU's snapshot from its state.
func Availability(s State) Snapshot {
	snap := Snapshot{SKU: s.SKU, Locations: make([]LocationSnapshot, 0, len(s.Locations))}
	for _, l := range s.Locations {
		n := l.OnHand()
		snap.OnHand += n
		snap.Locations = append(snap.Locations, LocationSnapshot{ID: l.ID, OnHand: n, HasLevel: l.HasLevel, LevelAsOf: l.LevelAsOf})
		if l.HasLevel && l.LevelAsOf.After(snap.UpdatedAt) {
			snap.UpdatedAt = l.LevelAsOf
		}
		for _, a := range l.Adjustment {
			if a.OccurredAt.After(snap.UpdatedAt) {
				snap.UpdatedAt = a.OccurredAt
			}
		}
	}
	snap.Available = max(0, snap.OnHand)
	snap.Version = snap.digest()
	return snap
}

func (s Snapshot) digest() string {
	h := fnv.New64a()
	var buf [8]byte
	str := func(v string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(v)))
		h.Write(buf[:])
		h.Write([]byte(v))
	}
	num := func(v int64) {
		binary.BigEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	ts := func(t time.Time) {
		if t.IsZero() {
			h.Write([]byte{0})
			return
		}
		h.Write([]byte{1})
		num(t.UnixNano())
	}
	str(s.SKU)
	num(s.OnHand)
	num(s.Available)
	ts(s.UpdatedAt)
	num(int64(len(s.Locations)))
	for _, l := range s.Locations {
		str(l.ID)
		num(l.OnHand)
		if l.HasLevel {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
		ts(l.LevelAsOf)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}
