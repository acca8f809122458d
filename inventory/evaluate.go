package inventory

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"slices"
	"strings"
	"time"
)

// Policies is what Evaluate needs besides the SKU's own state: the
// configured channels and the location-wide and merchant-wide policies of
// the SKU's locations. Callers fetch only the entries State.LocationIDs and
// the location policies' merchants name.
type Policies struct {
	// Channels to answer for, e.g. web, marketplace, store-pickup.
	Channels []string
	// Locations by location id; a missing one is an owned warehouse that
	// serves every channel.
	Locations map[string]LocationPolicy
	// Merchants by merchant id.
	Merchants map[string]MerchantPolicy
	// DefaultStaleAfter is the merchant TTL where a merchant sets none.
	DefaultStaleAfter time.Duration
	// ShipTo is the region (RegionRule) the answer is for: locations whose
	// policy excludes it (LocationPolicy.ExcludesRegion) count for no
	// channel. Empty means no region: every location may ship, and the
	// answer is the published, region-less one. Callers validate it
	// (ValidateRegion); a code no policy names changes no contribution.
	ShipTo string
}

// Reason codes say why units are missing from a channel.
type ReasonCode int

// Reason codes; the numbers match skuflow.v1.Reason.Code.
const (
	ReasonNotSellable        ReasonCode = 1
	ReasonCapExhausted       ReasonCode = 2
	ReasonLocationClosed     ReasonCode = 3
	ReasonLocationIneligible ReasonCode = 4
	ReasonLocationStale      ReasonCode = 5
	// ReasonLocationExcludedRegion: the location may not ship to the
	// answer's ship-to region (Policies.ShipTo).
	ReasonLocationExcludedRegion ReasonCode = 6
)

// Reason explains a missing contribution; Location is empty for SKU-level
// reasons.
type Reason struct {
	Code     ReasonCode
	Location string
	Message  string
}

// Snapshot is a SKU's answer at one moment: what the gateway returns and
// what the availability topic carries.
type Snapshot struct {
	SKU       string
	OnHand    int64
	Locations []LocationSnapshot // sorted by ID
	Channels  []ChannelSnapshot  // sorted by channel
	// UpdatedAt is the newest stock source time that contributed.
	UpdatedAt time.Time
	// NextChangeAt is when the answer changes on its own (zero: never).
	NextChangeAt time.Time
	// EvaluatedAt is the time the answer is for; not part of Version.
	EvaluatedAt time.Time
	// ShipTo is the region the answer is for (Policies.ShipTo); empty for
	// the region-less answer. Part of Version only when set, so region-less
	// answers keep the versions they had before regions existed.
	ShipTo string
	// Version digests every other field: equal answers have equal versions,
	// so it serves as an ETag and as the "did it change" test.
	Version string
}

// AreaStock is one area's units at a location.
type AreaStock struct {
	Area   string
	OnHand int64
}

// LocationSnapshot is one location's line in a Snapshot.
type LocationSnapshot struct {
	ID          string
	Kind        LocationKind
	MerchantID  string
	OnHand      int64
	Areas       []AreaStock
	HasLevel    bool
	LevelAsOf   time.Time
	SafetyStock int64
	Usable      int64
	Closed      bool
	Stale       bool
	StaleAt     time.Time
	Channels    []string
	// RegionExcluded: the location may not ship to the answer's ShipTo, so
	// it counts for no channel. Always false when ShipTo is empty.
	RegionExcluded bool
}

// ChannelSnapshot is the answer for one channel.
type ChannelSnapshot struct {
	Channel       string
	Available     int64
	Backorderable int64
	Sellable      bool
	Usable        int64
	Reserved      int64
	HasCap        bool
	CapRemaining  int64
	Reasons       []Reason
}

// LocationIDs lists the SKU's distinct location ids, sorted.
func (s State) LocationIDs() []string {
	var ids []string
	for _, l := range s.Locations {
		if len(ids) == 0 || ids[len(ids)-1] != l.ID {
			ids = append(ids, l.ID)
		}
	}
	return ids
}

// Evaluate derives the SKU's answer at now:
//
//	available(channel, now) = max(0, min(usable(channel) - reserved(channel), remaining cap(channel)))
//	usable(channel) = sum over eligible, open, non-stale locations of max(0, on_hand - safety stock)
//
// where, because locations are shared between channels, usable - reserved is
// taken over every set of channels containing the channel and the least is
// used (see settle): a unit held on one channel is not offered on another.
//
// A location is stale when it is a merchant's and its newest level is at
// least the merchant's TTL old at now (or it has no level at all).
//
// With p.ShipTo set, a location whose policy excludes that region is not
// eligible for any channel (ReasonLocationExcludedRegion): the answer is the
// region-less answer of the state without those locations' stock, except
// that they are still listed (RegionExcluded) and in OnHand. Holds are not
// tagged by region, so every hold counts against the region's supply.
//
// The remaining cap counts sales, not attempts: limit minus the units of
// the channel's reservations decided in the window that are held at now or
// fulfilled (see capUsed); rejections never count and a hold that ended
// gives its units back.
func Evaluate(s State, p Policies, now time.Time) Snapshot {
	now = now.UTC()
	snap := Snapshot{SKU: s.SKU, EvaluatedAt: now, ShipTo: p.ShipTo, Locations: make([]LocationSnapshot, 0, len(s.Locations))}
	next := func(t time.Time) {
		if t.After(now) && (snap.NextChangeAt.IsZero() || t.Before(snap.NextChangeAt)) {
			snap.NextChangeAt = t
		}
	}
	for i := 0; i < len(s.Locations); {
		j := i
		for j < len(s.Locations) && s.Locations[j].ID == s.Locations[i].ID {
			j++
		}
		ls := locationSnapshot(s, s.Locations[i:j], p, now)
		if ls.Kind == KindMerchant && !ls.Stale {
			next(ls.StaleAt)
		}
		for _, l := range s.Locations[i:j] {
			if l.HasLevel && l.LevelAsOf.After(snap.UpdatedAt) {
				snap.UpdatedAt = l.LevelAsOf
			}
			for _, a := range l.Adjustment {
				if a.OccurredAt.After(snap.UpdatedAt) {
					snap.UpdatedAt = a.OccurredAt
				}
			}
		}
		snap.OnHand += ls.OnHand
		snap.Locations = append(snap.Locations, ls)
		i = j
	}
	chans := sortedChannels(p.Channels)
	snap.Channels = make([]ChannelSnapshot, 0, len(chans))
	acc := make([]channelAcc, 0, len(chans))
	for _, c := range chans {
		a := channelTerms(s, snap.Locations, c, p.ShipTo, now, next)
		snap.Channels = append(snap.Channels, a.cs)
		acc = append(acc, a)
	}
	settle(s, snap.Locations, snap.Channels, acc, p.ShipTo, now)
	snap.Version = snap.digest()
	return snap
}

// sortedChannels returns cs sorted without duplicates; cs itself (never
// modified) when it already is.
func sortedChannels(cs []string) []string {
	ok := true
	for i := 1; i < len(cs) && ok; i++ {
		ok = cs[i-1] < cs[i]
	}
	if ok {
		return cs
	}
	return slices.Compact(slices.Sorted(slices.Values(cs)))
}

func locationSnapshot(s State, areas []Location, p Policies, now time.Time) LocationSnapshot {
	id := areas[0].ID
	pol, ok := p.Locations[id]
	if !ok {
		pol = LocationPolicy{Location: id, Kind: KindWarehouse}
	}
	ls := LocationSnapshot{ID: id, Kind: pol.Kind, MerchantID: pol.MerchantID, Closed: pol.Closed, Channels: slices.Clone(pol.Channels),
		RegionExcluded: pol.ExcludesRegion(p.ShipTo)}
	for _, a := range areas {
		n := a.OnHand()
		ls.OnHand = min(ls.OnHand+n, MaxUnits)
		ls.Areas = append(ls.Areas, AreaStock{Area: a.Area, OnHand: n})
		if a.HasLevel {
			ls.HasLevel = true
			if a.LevelAsOf.After(ls.LevelAsOf) {
				ls.LevelAsOf = a.LevelAsOf
			}
		}
	}
	ls.SafetyStock = pol.SafetyStock
	if i, found := slices.BinarySearchFunc(s.SafetyOverrides, id, func(r SafetyOverrideRule, id string) int {
		return strings.Compare(r.Location, id)
	}); found && !s.SafetyOverrides[i].Cleared {
		ls.SafetyStock = s.SafetyOverrides[i].Units
	}
	if pol.Kind == KindMerchant {
		ttl := p.DefaultStaleAfter
		if m, ok := p.Merchants[pol.MerchantID]; ok && m.StaleAfter > 0 {
			ttl = m.StaleAfter
		}
		if ls.HasLevel {
			ls.StaleAt = ls.LevelAsOf.Add(ttl)
			ls.Stale = !now.Before(ls.StaleAt)
		} else {
			ls.Stale = true // no absolute level yet: nothing to trust
		}
	}
	ls.Usable = max(0, ls.OnHand-ls.SafetyStock)
	return ls
}

// channelAcc is a channel's terms before the stock shared with other
// channels is settled.
type channelAcc struct {
	cs          ChannelSnapshot
	remaining   int64 // units the channel's cap still accepts
	backordered int64
}

// channelTerms computes a channel's eligibility, usable supply, reasons,
// reservations and cap; settle then derives Available and Backorderable.
func channelTerms(s State, locs []LocationSnapshot, channel, shipTo string, now time.Time, next func(time.Time)) channelAcc {
	cs := ChannelSnapshot{Channel: channel, Sellable: true}
	if i, found := slices.BinarySearchFunc(s.ChannelRules, channel, func(r ChannelRule, c string) int {
		return strings.Compare(r.Channel, c)
	}); found {
		cs.Sellable = s.ChannelRules[i].Sellable
	}
	for _, l := range locs {
		code, msg := excluded(l, channel, shipTo)
		if code == 0 {
			cs.Usable = min(cs.Usable+l.Usable, MaxUnits)
			continue
		}
		if l.Usable > 0 {
			cs.Reasons = append(cs.Reasons, Reason{Code: code, Location: l.ID, Message: msg})
		}
	}
	a := channelAcc{remaining: MaxUnits}
	if i, found := slices.BinarySearchFunc(s.SalesCaps, channel, func(r SalesCapRule, c string) int {
		return strings.Compare(r.Channel, c)
	}); found && !s.SalesCaps[i].Cleared {
		c := s.SalesCaps[i]
		switch {
		case now.Before(c.WindowStart):
			next(c.WindowStart)
		case now.Before(c.WindowEnd):
			next(c.WindowEnd)
			cs.HasCap = true
			cs.CapRemaining = max(0, c.Limit-capUsed(s, c, now))
			a.remaining = cs.CapRemaining
		}
	}
	for _, r := range s.Reservations {
		if !r.holds(now) {
			continue
		}
		next(r.ExpiresAt)
		if r.Backorder {
			a.backordered += r.heldUnits()
		} else if r.Channel == channel {
			cs.Reserved = min(cs.Reserved+r.heldUnits(), MaxUnits)
		}
	}
	if !cs.Sellable {
		cs.Reasons = append([]Reason{{Code: ReasonNotSellable, Message: "sku may not be sold on " + channel}}, cs.Reasons...)
	}
	a.cs = cs
	return a
}

// excluded says why a location does not count for a channel (0: it counts);
// shipTo names the region in the message.
func excluded(l LocationSnapshot, channel, shipTo string) (ReasonCode, string) {
	switch {
	case l.Closed:
		return ReasonLocationClosed, "location is closed"
	case channel != "" && len(l.Channels) > 0 && !slices.Contains(l.Channels, channel):
		return ReasonLocationIneligible, "location does not fulfil " + channel
	case l.RegionExcluded:
		return ReasonLocationExcludedRegion, "location does not ship to " + shipTo
	case l.Stale && l.HasLevel:
		return ReasonLocationStale, "merchant stock is stale: its newest level is older than the merchant's TTL"
	case l.Stale:
		return ReasonLocationStale, "merchant location has reported no stock level"
	}
	return 0, ""
}

// maxExactChannels bounds the subset enumeration in settle.
const maxExactChannels = 12

// settle derives each channel's Available and Backorderable. A location
// often serves several channels, so a unit reserved on one channel is not
// available on another: the units a channel can still sell are, by Hall's
// theorem on the locations-to-channels supply graph,
//
//	min over channel sets S containing it of usable(locations serving S) − reserved(S)
//
// which never sells a unit twice and never hides one that is free.
// Reservations on channels no longer configured count against every open,
// non-stale location.
func settle(s State, locs []LocationSnapshot, chans []ChannelSnapshot, acc []channelAcc, shipTo string, now time.Time) {
	n := len(chans)
	reserved := make([]int64, n, n+1)
	for j := range chans {
		reserved[j] = chans[j].Reserved
	}
	var orphan int64
	for _, r := range s.Reservations {
		if r.holds(now) && !r.Backorder && !slices.ContainsFunc(chans, func(c ChannelSnapshot) bool { return c.Channel == r.Channel }) {
			orphan = min(orphan+r.heldUnits(), MaxUnits)
		}
	}
	serves := make([]uint64, len(locs))
	for li, l := range locs {
		for j, c := range chans {
			if code, _ := excluded(l, c.Channel, shipTo); code == 0 {
				serves[li] |= 1 << j
			}
		}
	}
	if orphan > 0 {
		for li, l := range locs {
			if code, _ := excluded(l, "", shipTo); code == 0 {
				serves[li] |= 1 << n
			}
		}
		reserved = append(reserved, orphan)
	}
	m := len(reserved)
	bound := func(set uint64) int64 {
		var u, r int64
		for li, l := range locs {
			if serves[li]&set != 0 {
				u = min(u+l.Usable, MaxUnits)
			}
		}
		for j := range m {
			if set&(1<<j) != 0 {
				r = min(r+reserved[j], MaxUnits)
			}
		}
		return u - r
	}
	all := uint64(1)<<m - 1
	for j := range chans {
		cs := &chans[j]
		stock := int64(MaxUnits)
		if m <= maxExactChannels {
			for set := uint64(1); set <= all; set++ {
				if set&(1<<j) != 0 {
					stock = min(stock, bound(set))
				}
			}
		} else {
			stock = min(bound(1<<j), bound(all)) // both are valid upper bounds
		}
		if !cs.Sellable {
			continue
		}
		remaining := acc[j].remaining
		cs.Available = max(0, min(stock, remaining))
		if cs.HasCap && cs.CapRemaining == 0 {
			cs.Reasons = append([]Reason{{Code: ReasonCapExhausted, Message: "sales cap on " + cs.Channel + " is exhausted until its window ends"}}, cs.Reasons...)
		}
		if !s.Backorder.AsOf.IsZero() {
			cs.Backorderable = max(0, min(s.Backorder.Limit-acc[j].backordered, remaining-cs.Available))
		}
	}
}

// digest hashes every field but EvaluatedAt and Version, in order (ShipTo
// and the RegionExcluded flags last, and only when ShipTo is set); slices
// are sorted, so equal answers give equal digests. Strings are
// length-prefixed and times carry a presence byte, so no two different
// answers share an encoding.
func (s Snapshot) digest() string {
	var d digester
	d.h = fnv.New64a()
	d.str(s.SKU)
	d.num(s.OnHand)
	d.num(int64(len(s.Locations)))
	for _, l := range s.Locations {
		d.str(l.ID)
		d.num(int64(l.Kind))
		d.str(l.MerchantID)
		d.num(l.OnHand)
		d.num(int64(len(l.Areas)))
		for _, a := range l.Areas {
			d.str(a.Area)
			d.num(a.OnHand)
		}
		d.flag(l.HasLevel)
		d.time(l.LevelAsOf)
		d.num(l.SafetyStock)
		d.num(l.Usable)
		d.flag(l.Closed)
		d.flag(l.Stale)
		d.time(l.StaleAt)
		d.strs(l.Channels)
	}
	d.num(int64(len(s.Channels)))
	for _, c := range s.Channels {
		d.str(c.Channel)
		d.num(c.Available)
		d.num(c.Backorderable)
		d.flag(c.Sellable)
		d.num(c.Usable)
		d.num(c.Reserved)
		d.flag(c.HasCap)
		d.num(c.CapRemaining)
		d.num(int64(len(c.Reasons)))
		for _, r := range c.Reasons {
			d.num(int64(r.Code))
			d.str(r.Location)
			d.str(r.Message)
		}
	}
	d.time(s.UpdatedAt)
	d.time(s.NextChangeAt)
	// Appended only for a region, so region-less answers keep their
	// versions; every field before is self-delimiting, so no region-less
	// encoding is a prefix of another answer's.
	if s.ShipTo != "" {
		d.str(s.ShipTo)
		for _, l := range s.Locations {
			d.flag(l.RegionExcluded)
		}
	}
	return fmt.Sprintf("%016x", d.h.Sum64())
}

type digester struct {
	h   hash.Hash64
	buf [9]byte
}

func (d *digester) num(v int64) {
	binary.BigEndian.PutUint64(d.buf[:8], uint64(v))
	d.h.Write(d.buf[:8])
}

func (d *digester) flag(b bool) {
	d.buf[0] = 0
	if b {
		d.buf[0] = 1
	}
	d.h.Write(d.buf[:1])
}

func (d *digester) str(v string) {
	d.num(int64(len(v)))
	d.h.Write([]byte(v))
}

func (d *digester) strs(vs []string) {
	d.num(int64(len(vs)))
	for _, v := range vs {
		d.str(v)
	}
}

func (d *digester) time(t time.Time) {
	d.flag(!t.IsZero())
	if !t.IsZero() {
		d.num(t.UnixNano())
	}
}
