package inventory_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// The reference model: the list of every distinct event ever seen, and
// nothing else. It never prunes, never dedupes on arrival and never keeps a
// running total; it answers every question by brute force from the whole
// list, which makes it obviously order-independent and idempotent:
//
//	area on_hand = max level by (AsOf, Sequence, OnHand)
//	             + the adjustments that occurred strictly after that level's
//	               AsOf (all of them when there is no level),
//	             floored at 0 and capped at MaxUnits;
//	a SKU policy = for its subject, the rule with the newest AsOf, an exact
//	               tie going to the larger content string (policy.go);
//	and Evaluate is recomputed per location and per channel from those, as
//	the issue states it.
//
// Generated adjustment ids are derived from their content, so the model never
// has to decide a conflicting duplicate.
type model struct {
	sku  string
	seen map[string]bool
	evs  []inventory.Event
}

func newModel() *model { return &model{sku: sku, seen: map[string]bool{}} }

// eventKey identifies an event up to the zone its times are written in.
func eventKey(ev inventory.Event) string {
	return fmt.Sprintf("%T %+v", ev, inZone(ev, time.UTC))
}

func (m *model) add(ev inventory.Event) {
	if k := eventKey(ev); !m.seen[k] {
		m.seen[k] = true
		m.evs = append(m.evs, ev)
	}
}

type areaKey struct{ loc, area string }

func (m *model) areaKeys() []areaKey {
	set := map[areaKey]bool{}
	for _, ev := range m.evs {
		switch e := ev.(type) {
		case inventory.StockLevel:
			set[areaKey{e.Location, e.Area}] = true
		case inventory.StockAdjustment:
			set[areaKey{e.Location, e.Area}] = true
		}
	}
	var keys []areaKey
	for k := range set {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b areaKey) int {
		if c := strings.Compare(a.loc, b.loc); c != 0 {
			return c
		}
		return strings.Compare(a.area, b.area)
	})
	return keys
}

func (m *model) locIDs() []string {
	var ids []string
	for _, k := range m.areaKeys() {
		if !slices.Contains(ids, k.loc) {
			ids = append(ids, k.loc)
		}
	}
	return ids
}

// levelLess orders levels by (AsOf, Sequence, OnHand).
func levelLess(a, b inventory.StockLevel) bool {
	if !a.AsOf.Equal(b.AsOf) {
		return a.AsOf.Before(b.AsOf)
	}
	if a.Sequence != b.Sequence {
		return a.Sequence < b.Sequence
	}
	return a.OnHand < b.OnHand
}

func (m *model) best(k areaKey) (inventory.StockLevel, bool) {
	var b inventory.StockLevel
	found := false
	for _, ev := range m.evs {
		if l, ok := ev.(inventory.StockLevel); ok && l.Location == k.loc && l.Area == k.area {
			if !found || levelLess(b, l) {
				b, found = l, true
			}
		}
	}
	return b, found
}

// live returns the adjustments that count on top of the best level, by id.
func (m *model) live(k areaKey) []inventory.StockAdjustment {
	b, hasLevel := m.best(k)
	var out []inventory.StockAdjustment
	for _, ev := range m.evs {
		if a, ok := ev.(inventory.StockAdjustment); ok && a.Location == k.loc && a.Area == k.area {
			if (!hasLevel || a.OccurredAt.After(b.AsOf)) && !slices.ContainsFunc(out, func(x inventory.StockAdjustment) bool { return x.EventID == a.EventID }) {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(x, y inventory.StockAdjustment) int { return strings.Compare(x.EventID, y.EventID) })
	return out
}

func (m *model) areaOnHand(k areaKey) int64 {
	b, _ := m.best(k)
	n := b.OnHand
	for _, a := range m.live(k) {
		n += a.Delta
	}
	return min(max(0, n), inventory.MaxUnits)
}

func (m *model) locOnHand(id string) int64 {
	var n int64
	for _, k := range m.areaKeys() {
		if k.loc == id {
			n += m.areaOnHand(k)
		}
	}
	return min(n, inventory.MaxUnits)
}

func (m *model) total() int64 {
	var n int64
	for _, id := range m.locIDs() {
		n += m.locOnHand(id)
	}
	return n
}

// beats is the newest-wins rule: later AsOf, then the larger content.
func beats(candAsOf time.Time, cand any, curAsOf time.Time, cur any) bool {
	if !candAsOf.Equal(curAsOf) {
		return candAsOf.After(curAsOf)
	}
	return fmt.Sprintf("%+v", cand) > fmt.Sprintf("%+v", cur)
}

// winners picks, per subject, the rule that beats every other, sorted by
// subject; nil when there are none.
func winners[R any](rules []R, subject func(R) string, asOf func(R) time.Time) []R {
	best := map[string]R{}
	for _, r := range rules {
		if cur, ok := best[subject(r)]; !ok || beats(asOf(r), r, asOf(cur), cur) {
			best[subject(r)] = r
		}
	}
	var out []R
	for _, r := range best {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b R) int { return strings.Compare(subject(a), subject(b)) })
	return out
}

func (m *model) channelRules() []inventory.ChannelRule {
	var rs []inventory.ChannelRule
	for _, ev := range m.evs {
		if e, ok := ev.(inventory.ChannelEligibility); ok {
			rs = append(rs, inventory.ChannelRule{Channel: e.Channel, Sellable: e.Sellable, AsOf: e.AsOf.UTC()})
		}
	}
	return winners(rs, func(r inventory.ChannelRule) string { return r.Channel }, func(r inventory.ChannelRule) time.Time { return r.AsOf })
}

func (m *model) salesCaps() []inventory.SalesCapRule {
	var rs []inventory.SalesCapRule
	for _, ev := range m.evs {
		if e, ok := ev.(inventory.SalesCap); ok {
			r := inventory.SalesCapRule{Channel: e.Channel, Cleared: e.Cleared, AsOf: e.AsOf.UTC()}
			if !e.Cleared {
				r.Limit, r.WindowStart, r.WindowEnd = e.Limit, e.WindowStart.UTC(), e.WindowEnd.UTC()
			}
			rs = append(rs, r)
		}
	}
	return winners(rs, func(r inventory.SalesCapRule) string { return r.Channel }, func(r inventory.SalesCapRule) time.Time { return r.AsOf })
}

func (m *model) safetyOverrides() []inventory.SafetyOverrideRule {
	var rs []inventory.SafetyOverrideRule
	for _, ev := range m.evs {
		if e, ok := ev.(inventory.SafetyStockOverride); ok {
			r := inventory.SafetyOverrideRule{Location: e.Location, Cleared: e.Cleared, AsOf: e.AsOf.UTC()}
			if !e.Cleared {
				r.Units = e.Units
			}
			rs = append(rs, r)
		}
	}
	return winners(rs, func(r inventory.SafetyOverrideRule) string { return r.Location }, func(r inventory.SafetyOverrideRule) time.Time { return r.AsOf })
}

func (m *model) backorder() inventory.BackorderRule {
	var rs []inventory.BackorderRule
	for _, ev := range m.evs {
		if e, ok := ev.(inventory.BackorderLimit); ok {
			rs = append(rs, inventory.BackorderRule{Limit: e.Limit, AsOf: e.AsOf.UTC()})
		}
	}
	w := winners(rs, func(inventory.BackorderRule) string { return "" }, func(r inventory.BackorderRule) time.Time { return r.AsOf })
	if len(w) == 0 {
		return inventory.BackorderRule{}
	}
	return w[0]
}

// state is the State Apply must have produced from the model's events.
func (m *model) state() inventory.State {
	s := inventory.State{SKU: m.sku}
	for _, k := range m.areaKeys() {
		l := inventory.Location{ID: k.loc, Area: k.area}
		if b, ok := m.best(k); ok {
			l.HasLevel, l.Level, l.LevelAsOf, l.LevelSeq = true, b.OnHand, b.AsOf.UTC(), b.Sequence
		}
		for _, a := range m.live(k) {
			l.Adjustment = append(l.Adjustment, inventory.Adjustment{EventID: a.EventID, Delta: a.Delta, OccurredAt: a.OccurredAt.UTC()})
		}
		s.Locations = append(s.Locations, l)
	}
	s.ChannelRules, s.SalesCaps, s.SafetyOverrides = m.channelRules(), m.salesCaps(), m.safetyOverrides()
	s.Backorder = m.backorder()
	return s
}

// evaluate is the Snapshot (without Version, and with reason messages left
// empty) Evaluate must derive at now under p.
func (m *model) evaluate(p inventory.Policies, now time.Time) inventory.Snapshot {
	now = now.UTC()
	snap := inventory.Snapshot{SKU: m.sku, EvaluatedAt: now}
	var boundaries []time.Time
	for _, id := range m.locIDs() {
		pol, ok := p.Locations[id]
		if !ok {
			pol = inventory.LocationPolicy{Location: id, Kind: inventory.KindWarehouse}
		}
		ls := inventory.LocationSnapshot{ID: id, Kind: pol.Kind, MerchantID: pol.MerchantID, Closed: pol.Closed,
			Channels: pol.Channels, OnHand: m.locOnHand(id), SafetyStock: pol.SafetyStock}
		for _, k := range m.areaKeys() {
			if k.loc != id {
				continue
			}
			ls.Areas = append(ls.Areas, inventory.AreaStock{Area: k.area, OnHand: m.areaOnHand(k)})
			if b, ok := m.best(k); ok {
				ls.HasLevel = true
				if b.AsOf.UTC().After(ls.LevelAsOf) {
					ls.LevelAsOf = b.AsOf.UTC()
				}
				if b.AsOf.UTC().After(snap.UpdatedAt) {
					snap.UpdatedAt = b.AsOf.UTC()
				}
			}
			for _, a := range m.live(k) {
				if a.OccurredAt.UTC().After(snap.UpdatedAt) {
					snap.UpdatedAt = a.OccurredAt.UTC()
				}
			}
		}
		for _, r := range m.safetyOverrides() {
			if r.Location == id && !r.Cleared {
				ls.SafetyStock = r.Units
			}
		}
		if pol.Kind == inventory.KindMerchant {
			ttl := p.DefaultStaleAfter
			if mp, ok := p.Merchants[pol.MerchantID]; ok && mp.StaleAfter > 0 {
				ttl = mp.StaleAfter
			}
			if ls.HasLevel {
				ls.StaleAt = ls.LevelAsOf.Add(ttl)
				ls.Stale = now.Compare(ls.StaleAt) >= 0 // stale iff now >= LevelAsOf+ttl
				boundaries = append(boundaries, ls.StaleAt)
			} else {
				ls.Stale = true
			}
		}
		ls.Usable = max(0, ls.OnHand-ls.SafetyStock)
		snap.OnHand += ls.OnHand
		snap.Locations = append(snap.Locations, ls)
	}
	var channels []string
	for _, c := range p.Channels {
		if !slices.Contains(channels, c) {
			channels = append(channels, c)
		}
	}
	slices.Sort(channels)
	for _, c := range channels {
		cs := inventory.ChannelSnapshot{Channel: c, Sellable: true}
		for _, r := range m.channelRules() {
			if r.Channel == c {
				cs.Sellable = r.Sellable
			}
		}
		var reasons []inventory.Reason
		for _, l := range snap.Locations {
			var code inventory.ReasonCode
			switch {
			case l.Closed:
				code = inventory.ReasonLocationClosed
			case len(l.Channels) > 0 && !slices.Contains(l.Channels, c):
				code = inventory.ReasonLocationIneligible
			case l.Stale:
				code = inventory.ReasonLocationStale
			default:
				cs.Usable = min(cs.Usable+l.Usable, inventory.MaxUnits)
				continue
			}
			if l.Usable > 0 {
				reasons = append(reasons, inventory.Reason{Code: code, Location: l.ID})
			}
		}
		remaining := int64(inventory.MaxUnits)
		for _, r := range m.salesCaps() {
			if r.Channel != c || r.Cleared {
				continue
			}
			boundaries = append(boundaries, r.WindowStart, r.WindowEnd)
			if now.Compare(r.WindowStart) >= 0 && now.Before(r.WindowEnd) {
				cs.HasCap, cs.CapRemaining, remaining = true, r.Limit, r.Limit
			}
		}
		switch {
		case !cs.Sellable:
			reasons = append([]inventory.Reason{{Code: inventory.ReasonNotSellable}}, reasons...)
		default:
			cs.Available = max(0, min(cs.Usable-cs.Reserved, remaining))
			if cs.HasCap && remaining == 0 {
				reasons = append([]inventory.Reason{{Code: inventory.ReasonCapExhausted}}, reasons...)
			}
			if b := m.backorder(); !b.AsOf.IsZero() {
				cs.Backorderable = max(0, min(b.Limit, remaining-cs.Available))
			}
		}
		cs.Reasons = reasons
		snap.Channels = append(snap.Channels, cs)
	}
	for _, b := range boundaries {
		if b.After(now) && (snap.NextChangeAt.IsZero() || b.Before(snap.NextChangeAt)) {
			snap.NextChangeAt = b
		}
	}
	return snap
}

// withoutMessages blanks the reasons' human-readable messages (after
// checking they are there), which the model does not predict.
func withoutMessages(t tb, snap inventory.Snapshot) inventory.Snapshot {
	t.Helper()
	snap.Channels = slices.Clone(snap.Channels)
	for i, c := range snap.Channels {
		c.Reasons = slices.Clone(c.Reasons)
		for j := range c.Reasons {
			if c.Reasons[j].Message == "" {
				t.Fatalf("reason without a message: %+v", c.Reasons[j])
			}
			c.Reasons[j].Message = ""
		}
		snap.Channels[i] = c
	}
	return snap
}

// checkAgainstModel compares a state and its snapshot under p at now with
// the model.
func checkAgainstModel(t tb, s inventory.State, m *model, p inventory.Policies, now time.Time) {
	t.Helper()
	checkState(t, s)
	assertStateEqual(t, s, m.state(), "state vs model")
	for _, k := range m.areaKeys() {
		l, ok := locationArea(s, k.loc, k.area)
		if !ok {
			t.Fatalf("location %s/%s missing from state", k.loc, k.area)
		}
		if got, want := l.OnHand(), m.areaOnHand(k); got != want {
			t.Fatalf("location %s/%s on-hand %d, model says %d", k.loc, k.area, got, want)
		}
	}
	snap := evaluate(t, s, p, now)
	if snap.OnHand != m.total() {
		t.Fatalf("total on-hand %d, model says %d", snap.OnHand, m.total())
	}
	got, want := canonical(withoutMessages(t, snap)), canonical(m.evaluate(p, now))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot at %v vs model:\n got  %+v\n want %+v", now, got, want)
	}
}

// Generators: few locations, channels and seconds of time in several zones,
// and small counts, so that ties, duplicates, covered adjustments, window
// and staleness boundaries are common.

var (
	locationIDs = []string{"WH-1", "ST-2", "MC-3", "MC-4"}
	genLocation = rapid.SampledFrom(locationIDs)
	genArea     = rapid.SampledFrom([]string{inventory.AreaWhole, inventory.AreaWhole, inventory.AreaFloor, inventory.AreaBackroom})
	channelIDs  = []string{"web", "app", "pickup"}
	genChannel  = rapid.SampledFrom(channelIDs)
	genZone     = rapid.SampledFrom([]*time.Location{time.UTC, zonePlus2, zoneMinus5})
)

func drawTime(t *rapid.T, label string) time.Time {
	return at(rapid.IntRange(0, 8).Draw(t, label)).In(genZone.Draw(t, label+"-zone"))
}

// drawUnits draws a small count, or now and then one near the limits.
func drawUnits(t *rapid.T, label string, small int64) int64 {
	if rapid.IntRange(0, 9).Draw(t, label+"-wide") == 0 {
		return rapid.Int64Range(inventory.MaxUnits-small, inventory.MaxUnits).Draw(t, label)
	}
	return rapid.Int64Range(0, small).Draw(t, label)
}

var genLevel = rapid.Custom(func(t *rapid.T) inventory.StockLevel {
	return inventory.StockLevel{
		SKU:      sku,
		Location: genLocation.Draw(t, "location"),
		Area:     genArea.Draw(t, "area"),
		OnHand:   drawUnits(t, "on_hand", 20),
		AsOf:     drawTime(t, "as_of"),
		Sequence: rapid.Uint64Range(0, 2).Draw(t, "sequence"),
	}
})

// contentID derives an adjustment's id from its content (plus a nonce so two
// identical movements can still be two events), so equal ids at one area of
// one location mean equal events.
func contentID(loc, area string, nonce int, delta int64, when time.Time) string {
	return fmt.Sprintf("%s/%s/%d/%+d@%d", loc, area, nonce, delta, when.Unix())
}

var genAdjustment = rapid.Custom(func(t *rapid.T) inventory.StockAdjustment {
	loc := genLocation.Draw(t, "location")
	area := genArea.Draw(t, "area")
	delta := rapid.Int64Range(-10, 9).Draw(t, "delta")
	if delta >= 0 {
		delta++
	}
	when := drawTime(t, "occurred_at")
	nonce := rapid.IntRange(0, 1).Draw(t, "nonce")
	return inventory.StockAdjustment{
		EventID: contentID(loc, area, nonce, delta, when), SKU: sku, Location: loc, Area: area, Delta: delta, OccurredAt: when,
	}
})

var genEligibility = rapid.Custom(func(t *rapid.T) inventory.ChannelEligibility {
	return sellable(genChannel.Draw(t, "channel"), rapid.Bool().Draw(t, "sellable"), drawTime(t, "as_of"))
})

var genSalesCap = rapid.Custom(func(t *rapid.T) inventory.SalesCap {
	ch := genChannel.Draw(t, "channel")
	asOf := drawTime(t, "as_of")
	if rapid.IntRange(0, 4).Draw(t, "cleared") == 0 {
		// A clear carries no cap: whatever limit or window it holds is
		// neither checked nor kept.
		e := capCleared(ch, asOf)
		e.Limit = rapid.Int64Range(-2, 2).Draw(t, "cleared-limit")
		if rapid.Bool().Draw(t, "cleared-window") {
			e.WindowStart, e.WindowEnd = at(rapid.IntRange(0, 3).Draw(t, "cleared-start")), at(rapid.IntRange(0, 3).Draw(t, "cleared-end"))
		}
		return e
	}
	start := rapid.IntRange(0, 12).Draw(t, "window_start")
	end := start + rapid.IntRange(1, 6).Draw(t, "window_length")
	return salesCap(ch, drawUnits(t, "limit", 15), at(start).In(genZone.Draw(t, "start-zone")), at(end), asOf)
})

var genBackorder = rapid.Custom(func(t *rapid.T) inventory.BackorderLimit {
	return backorder(drawUnits(t, "limit", 6), drawTime(t, "as_of"))
})

var genSafety = rapid.Custom(func(t *rapid.T) inventory.SafetyStockOverride {
	loc := genLocation.Draw(t, "location")
	asOf := drawTime(t, "as_of")
	if rapid.IntRange(0, 3).Draw(t, "cleared") == 0 {
		e := safetyCleared(loc, asOf)
		e.Units = rapid.Int64Range(0, 2).Draw(t, "cleared-units") // not kept
		return e
	}
	return safety(loc, drawUnits(t, "units", 6), asOf)
})

func asEvent[E inventory.Event](g *rapid.Generator[E]) *rapid.Generator[inventory.Event] {
	return rapid.Map(g, func(e E) inventory.Event { return e })
}

// genStockEvent draws stock events only; genEvent draws every kind, stock
// twice as often as each policy.
var (
	genStockEvent = rapid.OneOf(asEvent(genLevel), asEvent(genAdjustment))
	genEvent      = rapid.OneOf(asEvent(genLevel), asEvent(genAdjustment), asEvent(genLevel), asEvent(genAdjustment),
		asEvent(genEligibility), asEvent(genSalesCap), asEvent(genBackorder), asEvent(genSafety))
)

// inZone returns the same event with its times expressed in another zone.
func inZone(ev inventory.Event, z *time.Location) inventory.Event {
	in := func(tm time.Time) time.Time {
		if tm.IsZero() {
			return tm
		}
		return tm.In(z)
	}
	switch e := ev.(type) {
	case inventory.StockLevel:
		e.AsOf = in(e.AsOf)
		return e
	case inventory.StockAdjustment:
		e.OccurredAt = in(e.OccurredAt)
		return e
	case inventory.ChannelEligibility:
		e.AsOf = in(e.AsOf)
		return e
	case inventory.SalesCap:
		e.AsOf, e.WindowStart, e.WindowEnd = in(e.AsOf), in(e.WindowStart), in(e.WindowEnd)
		return e
	case inventory.BackorderLimit:
		e.AsOf = in(e.AsOf)
		return e
	case inventory.SafetyStockOverride:
		e.AsOf = in(e.AsOf)
		return e
	}
	return ev
}

// drawEventsFrom draws an event list in which some events are delivered
// again, possibly with their times in another zone, in a random order.
func drawEventsFrom(t *rapid.T, gen *rapid.Generator[inventory.Event], maxLen int) []inventory.Event {
	// rapid favours short slices; draw the length first to get longer
	// histories more often.
	n := rapid.IntRange(0, maxLen).Draw(t, "length")
	evs := rapid.SliceOfN(gen, n, n).Draw(t, "events")
	if len(evs) == 0 {
		return evs
	}
	redeliver := rapid.SliceOfN(rapid.IntRange(0, len(evs)-1), 0, len(evs)).Draw(t, "redeliveries")
	for _, i := range redeliver {
		evs = append(evs, inZone(evs[i], genZone.Draw(t, "redelivery-zone")))
	}
	return rapid.Permutation(evs).Draw(t, "order")
}

func drawEvents(t *rapid.T, maxLen int) []inventory.Event {
	return drawEventsFrom(t, genEvent, maxLen)
}

// drawPolicies draws the channels to answer for and location and merchant
// policies for some of the generated locations, normalised the way the
// policy table stores them (through ApplyLocationPolicy).
func drawPolicies(t *rapid.T) inventory.Policies {
	p := inventory.Policies{
		Channels:          rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(channelIDs), "market")), 0, 5).Draw(t, "channels"),
		Locations:         map[string]inventory.LocationPolicy{},
		Merchants:         map[string]inventory.MerchantPolicy{},
		DefaultStaleAfter: time.Duration(rapid.IntRange(1, 6).Draw(t, "default_stale_after")) * time.Second,
	}
	if rapid.IntRange(0, 3).Draw(t, "all-channels") > 0 {
		// Usually every channel events name, in some order, duplicates
		// allowed, so that their rules are evaluated.
		p.Channels = append(rapid.Permutation(channelIDs).Draw(t, "channel-order"), p.Channels...)
	}
	for _, id := range locationIDs {
		if !rapid.Bool().Draw(t, "has-policy-"+id) {
			continue
		}
		lp := inventory.LocationPolicy{
			Location:    id,
			Kind:        rapid.SampledFrom([]inventory.LocationKind{inventory.KindWarehouse, inventory.KindStore, inventory.KindMerchant, inventory.KindMerchant}).Draw(t, "kind-"+id),
			Closed:      rapid.IntRange(0, 4).Draw(t, "closed-"+id) == 0,
			Channels:    rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(channelIDs), "market")), 0, 3).Draw(t, "channels-"+id),
			SafetyStock: drawUnits(t, "safety_stock-"+id, 4),
			AsOf:        at(0),
		}
		if lp.Kind == inventory.KindMerchant {
			lp.MerchantID = rapid.SampledFrom([]string{"M1", "M2"}).Draw(t, "merchant-"+id)
		}
		norm, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, lp)
		if err != nil {
			t.Fatalf("generated location policy %+v: %v", lp, err)
		}
		p.Locations[id] = norm
	}
	for _, id := range []string{"M1", "M2"} {
		if rapid.Bool().Draw(t, "has-merchant-"+id) {
			p.Merchants[id] = inventory.MerchantPolicy{MerchantID: id, AsOf: at(0),
				StaleAfter: time.Duration(rapid.IntRange(0, 5).Draw(t, "stale_after-"+id)) * time.Second}
		}
	}
	return p
}

// drawNow draws a query time: usually exactly at, or a nanosecond either
// side of, a boundary where the answer may change (a merchant's staleness,
// a cap window's start or end), otherwise anywhere around the events.
func drawNow(t *rapid.T, s inventory.State, p inventory.Policies) time.Time {
	var stale, windows []time.Time
	ttls := []time.Duration{p.DefaultStaleAfter}
	for _, mp := range p.Merchants {
		ttls = append(ttls, mp.StaleAfter)
	}
	for _, l := range s.Locations {
		if l.HasLevel {
			for _, ttl := range ttls {
				stale = append(stale, l.LevelAsOf.Add(ttl))
			}
		}
	}
	var inside []inventory.SalesCapRule
	for _, c := range s.SalesCaps {
		if !c.Cleared {
			windows = append(windows, c.WindowStart, c.WindowEnd)
			inside = append(inside, c)
		}
	}
	zone := genZone.Draw(t, "now-zone")
	nudge := func() time.Duration { return time.Duration(rapid.IntRange(-1, 1).Draw(t, "nudge")) }
	switch rapid.IntRange(0, 3).Draw(t, "now-kind") {
	case 3:
		if len(inside) > 0 {
			c := rapid.SampledFrom(inside).Draw(t, "window")
			return c.WindowStart.Add(time.Duration(rapid.Int64Range(0, int64(c.WindowEnd.Sub(c.WindowStart))-1).Draw(t, "into-window"))).In(zone)
		}
	case 1:
		if len(stale) > 0 {
			return rapid.SampledFrom(stale).Draw(t, "stale-boundary").Add(nudge()).In(zone)
		}
	case 2:
		if len(windows) > 0 {
			return rapid.SampledFrom(windows).Draw(t, "window-boundary").Add(nudge()).In(zone)
		}
	}
	return at(rapid.IntRange(-2, 20).Draw(t, "now")).In(zone)
}

func fold(t tb, evs []inventory.Event) inventory.State {
	t.Helper()
	return applyAll(t, inventory.State{SKU: sku}, evs...)
}

// The old model test, kept for stock events alone: after every event the
// state equals the model's, no count is ever negative, and with no policies
// web availability is the total on-hand.
func TestPropertyStockMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newModel()
		s := inventory.State{SKU: sku}
		for _, ev := range drawEventsFrom(t, genStockEvent, 30) {
			s = applyAll(t, s, ev)
			m.add(ev)
			checkAgainstModel(t, s, m, webOnly, t0)
			if got, want := webAvailable(t, evalWeb(t, s)), min(m.total(), inventory.MaxUnits); got != want {
				t.Fatalf("web available %d, total on-hand %d", got, want)
			}
		}
	})
}

// After every event of every kind, the state and the snapshot under random
// policies at a random time (often on a boundary) equal the model's.
func TestPropertyMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newModel()
		s := inventory.State{SKU: sku}
		p := drawPolicies(t)
		for _, ev := range drawEvents(t, 30) {
			s = applyAll(t, s, ev)
			m.add(ev)
			checkAgainstModel(t, s, m, p, drawNow(t, s, p))
		}
	})
}

// Availability is never negative, on any channel, at any location, for
// backorders too, including with counts near the limits.
func TestPropertyAvailabilityNeverNegative(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := fold(t, drawEvents(t, 40))
		p := drawPolicies(t)
		snap := evaluate(t, s, p, drawNow(t, s, p)) // checkSnapshot checks every count
		for _, l := range snap.Locations {
			if l.OnHand < 0 || l.Usable < 0 {
				t.Fatalf("location %+v", l)
			}
		}
		for _, c := range snap.Channels {
			if c.Available < 0 || c.Backorderable < 0 || c.Usable < 0 {
				t.Fatalf("channel %+v", c)
			}
		}
	})
}

// Applying any event, of any kind, twice is the same as applying it once.
func TestPropertyIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := drawEvents(t, 20)
		s := fold(t, evs)
		ev := genEvent.Draw(t, "event")
		if len(evs) > 0 && rapid.Bool().Draw(t, "seen-before") {
			ev = rapid.SampledFrom(evs).Draw(t, "seen")
		}
		once, _, err := inventory.Apply(s, ev, t0)
		if err != nil {
			t.Fatalf("first apply: %v", err)
		}
		twice, res, err := inventory.Apply(once, inZone(ev, genZone.Draw(t, "zone")), t0)
		if err != nil {
			t.Fatalf("second apply: %v", err)
		}
		if res.Changed {
			t.Fatalf("second apply of %+v reported a change", ev)
		}
		assertStateEqual(t, twice, once, "twice vs once")
		p := drawPolicies(t)
		now := drawNow(t, once, p)
		if a, b := inventory.Evaluate(once, p, now), inventory.Evaluate(twice, p, now); !reflect.DeepEqual(a, b) {
			t.Fatalf("snapshots differ:\n%+v\n%+v", a, b)
		}
	})
}

// Every order of the same events, policies included, gives the identical
// state and snapshot.
func TestPropertyOrderIndependent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := drawEvents(t, 25)
		other := rapid.Permutation(evs).Draw(t, "other-order")
		a, b := fold(t, evs), fold(t, other)
		assertStateEqual(t, b, a, "state in another order")
		p := drawPolicies(t)
		now := drawNow(t, a, p)
		if sa, sb := inventory.Evaluate(a, p, now), inventory.Evaluate(b, p, now); !reflect.DeepEqual(sa, sb) {
			t.Fatalf("snapshots differ:\n%+v\n%+v", sa, sb)
		}
	})
}

// Any permutation of one location's stock levels (the levels of one area,
// with distinct and tied times and sequences) gives the same state and
// snapshot.
func TestPropertyLevelPermutation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		loc, area := genLocation.Draw(t, "location"), genArea.Draw(t, "area")
		levels := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) inventory.Event {
			return lvlIn(loc, area, rapid.Int64Range(0, 5).Draw(t, "on_hand"), drawTime(t, "as_of"), rapid.Uint64Range(0, 1).Draw(t, "seq"))
		}), 1, 8).Draw(t, "levels")
		rest := drawEvents(t, 10)
		a := fold(t, append(slices.Clone(levels), rest...))
		b := fold(t, append(rest, rapid.Permutation(levels).Draw(t, "order")...))
		assertStateEqual(t, b, a, "state with the levels permuted")
		p := drawPolicies(t)
		now := drawNow(t, a, p)
		if sa, sb := inventory.Evaluate(a, p, now), inventory.Evaluate(b, p, now); !reflect.DeepEqual(sa, sb) {
			t.Fatalf("snapshots differ:\n%+v\n%+v", sa, sb)
		}
	})
}

// Replaying a whole log duplicated (each event one to three times, its
// times in any zone) and shuffled gives a state that is deep-equal and a
// snapshot that is equal, Version included.
func TestPropertyReplayDuplicatedShuffled(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		log := drawEvents(t, 25)
		var replay []inventory.Event
		for i, ev := range log {
			for range rapid.IntRange(1, 3).Draw(t, fmt.Sprintf("copies-%d", i)) {
				replay = append(replay, inZone(ev, genZone.Draw(t, "zone")))
			}
		}
		replay = rapid.Permutation(replay).Draw(t, "replay-order")
		a, b := fold(t, log), fold(t, replay)
		assertStateEqual(t, b, a, "replayed state")
		p := drawPolicies(t)
		now := drawNow(t, a, p)
		sa, sb := inventory.Evaluate(a, p, now), inventory.Evaluate(b, p, now)
		if !reflect.DeepEqual(sa, sb) || sa.Version != sb.Version {
			t.Fatalf("snapshots differ:\n%+v\n%+v", sa, sb)
		}
	})
}

// Snapshot.Version is equal exactly when the rest of the snapshot, but for
// EvaluatedAt, is. Half the pairs share their events (in another order) or
// policies so that equal answers are common.
func TestPropertyVersionIffEqual(t *testing.T) {
	equalPairs := 0
	rapid.Check(t, func(t *rapid.T) {
		evsA := drawEvents(t, 4)
		evsB := evsA
		if rapid.Bool().Draw(t, "other-events") {
			evsB = drawEvents(t, 4)
		}
		evsB = rapid.Permutation(evsB).Draw(t, "order-b")
		pa := drawPolicies(t)
		pb := pa
		if rapid.Bool().Draw(t, "other-policies") {
			pb = drawPolicies(t)
		}
		sa, sb := fold(t, evsA), fold(t, evsB)
		a := inventory.Evaluate(sa, pa, drawNow(t, sa, pa))
		b := inventory.Evaluate(sb, pb, drawNow(t, sb, pb))
		equal := reflect.DeepEqual(withoutVersion(a), withoutVersion(b))
		if equal {
			equalPairs++
		}
		if equal != (a.Version == b.Version) {
			t.Fatalf("content equal = %v but versions %s, %s:\n%+v\n%+v", equal, a.Version, b.Version, a, b)
		}
	})
	if equalPairs == 0 {
		t.Error("no pair of equal snapshots was generated: the property only saw one side")
	}
}

// stockMachine applies random events of every kind, re-deliveries,
// conflicting reuses of ids and invalid events, and checks the state and
// its snapshot against the model every step.
type stockMachine struct {
	s       inventory.State
	m       *model
	p       inventory.Policies
	history []inventory.Event
}

// apply applies ev and checks what every call must satisfy; it returns the
// result and error for the action to judge.
func (sm *stockMachine) apply(t *rapid.T, ev inventory.Event) (inventory.State, inventory.Result, error) {
	t.Helper()
	before := cloneState(sm.s)
	next, res, err := inventory.Apply(sm.s, ev, t0)
	assertStateEqual(t, sm.s, before, "input state after Apply")
	if err != nil || !res.Changed {
		assertStateEqual(t, next, sm.s, "state returned unchanged")
	} else if reflect.DeepEqual(next, sm.s) {
		t.Fatalf("Changed reported for %+v but the state is the same", ev)
	}
	return next, res, err
}

func (sm *stockMachine) accept(t *rapid.T, ev inventory.Event) {
	next, _, err := sm.apply(t, ev)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", ev, err)
	}
	sm.s = next
	sm.m.add(ev)
	sm.history = append(sm.history, ev)
}

// invalidEvents are rejected with ErrInvalidEvent by any state of SKU-1.
func invalidEvents() []inventory.Event {
	other := func(e inventory.Event) inventory.Event {
		switch e := e.(type) {
		case inventory.ChannelEligibility:
			e.SKU = "SKU-2"
			return e
		case inventory.SalesCap:
			e.SKU = "SKU-2"
			return e
		case inventory.BackorderLimit:
			e.SKU = "SKU-2"
			return e
		case inventory.SafetyStockOverride:
			e.SKU = "SKU-2"
			return e
		}
		return e
	}
	return []inventory.Event{
		inventory.StockLevel{SKU: "SKU-2", Location: "WH-1", OnHand: 1, AsOf: at(1)},
		inventory.StockAdjustment{EventID: "x", SKU: "SKU-2", Location: "WH-1", Delta: 1, OccurredAt: at(1)},
		lvl("WH-1", -1, at(1), 0),
		lvl("WH 1", 1, at(1), 0),
		lvlIn("WH-1", "attic", 1, at(1), 0),
		adj("x", "WH-1", 0, at(1)),
		adj("", "WH-1", 1, at(1)),
		adj("x", "WH-1", 1, time.Time{}),
		adjIn("x", "WH-1", "FLOOR", 1, at(1)),
		other(sellable("web", true, at(1))),
		sellable("", true, at(1)),
		other(salesCap("web", 1, at(1), at(2), at(1))),
		salesCap("web", 1, at(2), at(2), at(1)),
		salesCap("web", -1, at(1), at(2), at(1)),
		other(backorder(1, at(1))),
		backorder(-1, at(1)),
		other(safety("WH-1", 1, at(1))),
		safety("WH-1", 1, time.Time{}),
		nil,
		unknownEvent{lvl("WH-1", 1, at(1), 0)},
	}
}

func (sm *stockMachine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"level":       func(t *rapid.T) { sm.accept(t, genLevel.Draw(t, "level")) },
		"adjustment":  func(t *rapid.T) { sm.accept(t, genAdjustment.Draw(t, "adjustment")) },
		"eligibility": func(t *rapid.T) { sm.accept(t, genEligibility.Draw(t, "eligibility")) },
		"sales cap":   func(t *rapid.T) { sm.accept(t, genSalesCap.Draw(t, "cap")) },
		"backorder":   func(t *rapid.T) { sm.accept(t, genBackorder.Draw(t, "backorder")) },
		"safety":      func(t *rapid.T) { sm.accept(t, genSafety.Draw(t, "safety")) },
		"redeliver": func(t *rapid.T) {
			if len(sm.history) == 0 {
				t.Skip("nothing delivered yet")
			}
			ev := rapid.SampledFrom(sm.history).Draw(t, "event")
			ev = inZone(ev, genZone.Draw(t, "zone"))
			next, res, err := sm.apply(t, ev)
			if err != nil || res.Changed {
				t.Fatalf("re-delivery of %+v: changed=%v err=%v", ev, res.Changed, err)
			}
			sm.s = next
		},
		"conflicting id": func(t *rapid.T) {
			var seen []inventory.StockAdjustment
			for _, ev := range sm.history {
				if a, ok := ev.(inventory.StockAdjustment); ok {
					seen = append(seen, a)
				}
			}
			if len(seen) == 0 {
				t.Skip("no adjustment delivered yet")
			}
			orig := rapid.SampledFrom(seen).Draw(t, "original")
			ev := orig
			ev.Delta = orig.Delta + rapid.SampledFrom([]int64{-3, -1, 1, 2}).Draw(t, "change")
			if ev.Delta == 0 {
				ev.Delta = 5
			}
			b, hasLevel := sm.m.best(areaKey{orig.Location, orig.Area})
			stored := !hasLevel || orig.OccurredAt.After(b.AsOf)
			_, res, err := sm.apply(t, ev)
			switch {
			case stored && !errors.Is(err, inventory.ErrConflictingDuplicate):
				t.Fatalf("reused id %q with delta %+d: err = %v, want ErrConflictingDuplicate", ev.EventID, ev.Delta, err)
			case !stored && (err != nil || res.Changed):
				t.Fatalf("reused id %q covered by the level: changed=%v err=%v, want ignored", ev.EventID, res.Changed, err)
			}
		},
		"invalid": func(t *rapid.T) {
			ev := rapid.SampledFrom(invalidEvents()).Draw(t, "bad")
			_, _, err := sm.apply(t, ev)
			if !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("Apply(%+v) = %v, want ErrInvalidEvent", ev, err)
			}
		},
		"replay duplicated and shuffled": func(t *rapid.T) {
			log := slices.Clone(sm.history)
			for _, i := range rapid.SliceOfN(rapid.IntRange(0, max(0, len(log)-1)), 0, len(log)).Draw(t, "duplicates") {
				log = append(log, inZone(sm.history[i], genZone.Draw(t, "zone")))
			}
			replay := fold(t, rapid.Permutation(log).Draw(t, "order"))
			assertStateEqual(t, replay, sm.s, "replay of the history duplicated and in another order")
			now := drawNow(t, sm.s, sm.p)
			if a, b := inventory.Evaluate(replay, sm.p, now), inventory.Evaluate(sm.s, sm.p, now); !reflect.DeepEqual(a, b) {
				t.Fatalf("replayed snapshot differs:\n%+v\n%+v", a, b)
			}
		},
		"new policies": func(t *rapid.T) { sm.p = drawPolicies(t) },
		"": func(t *rapid.T) {
			checkAgainstModel(t, sm.s, sm.m, sm.p, drawNow(t, sm.s, sm.p))
		},
	}
}

// A state machine over random events of every kind, re-deliveries,
// conflicting ids, invalid events, replays and changing policies, checked
// against the model after every step.
func TestStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sm := &stockMachine{s: inventory.State{SKU: sku}, m: newModel(), p: drawPolicies(t)}
		t.Repeat(sm.actions())
	})
}
