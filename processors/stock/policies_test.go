package stock_test

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// consumeOn feeds one raw message to topic; value nil is a tombstone.
func (h *harness) consumeOn(topic goka.Stream, key string, value []byte, ts time.Time) {
	h.t.Helper()
	if value == nil {
		h.gkt.Consume(string(topic), key, nil, tester.WithTime(ts))
		return
	}
	h.gkt.Consume(string(topic), key, value, tester.WithTime(ts))
}

// applyAt feeds supply events with message time ts.
func (h *harness) applyAt(ts time.Time, evs ...inventory.Event) {
	h.t.Helper()
	for _, ev := range evs {
		h.consume(ev.EventSKU(), encode(h.t, ev), ts)
	}
}

func encodeSkuPolicy(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	env, err := codecs.SkuPolicyEventToProto(ev)
	if err != nil {
		t.Fatalf("SkuPolicyEventToProto(%#v): %v", ev, err)
	}
	return marshal(t, env)
}

// policy feeds SKU policy events on the sku-policies topic at ts.
func (h *harness) policy(ts time.Time, evs ...inventory.Event) {
	h.t.Helper()
	for _, ev := range evs {
		h.consumeOn(schema.SkuPolicies, ev.EventSKU(), encodeSkuPolicy(h.t, ev), ts)
	}
}

func (h *harness) tick(key string, tk *pb.StockTick, ts time.Time) {
	h.t.Helper()
	h.consumeOn(schema.StockTicks, key, marshal(h.t, tk), ts)
}

// setLocation stores a location policy in the policies table, the way the
// policies processor would, and returns it as the domain sees it.
func (h *harness) setLocation(p inventory.LocationPolicy) inventory.LocationPolicy {
	h.t.Helper()
	h.gkt.SetTableValue(schema.PoliciesTable, schema.LocationKey(p.Location),
		&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(p)}})
	return p
}

func (h *harness) setMerchant(p inventory.MerchantPolicy) inventory.MerchantPolicy {
	h.t.Helper()
	h.gkt.SetTableValue(schema.PoliciesTable, schema.MerchantKey(p.MerchantID),
		&pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(p)}})
	return p
}

// withPolicies is cfg's base policies plus the given ones.
func withPolicies(locs []inventory.LocationPolicy, merchants ...inventory.MerchantPolicy) inventory.Policies {
	p := cfg.Policies()
	p.Locations = map[string]inventory.LocationPolicy{}
	p.Merchants = map[string]inventory.MerchantPolicy{}
	for _, l := range locs {
		p.Locations[l.Location] = l
	}
	for _, m := range merchants {
		p.Merchants[m.MerchantID] = m
	}
	return p
}

// expectAnswer checks that exactly one availability message was published,
// that it is the answer of state under pol at now, and that nothing was
// dead-lettered. It returns the message.
func (h *harness) expectAnswer(what string, state inventory.State, pol inventory.Policies, now time.Time) *pb.Availability {
	h.t.Helper()
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %v", what, d)
	}
	msgs := h.availabilities()
	if len(msgs) != 1 {
		h.t.Fatalf("%s: %d availability messages, want 1: %v", what, len(msgs), msgs)
	}
	want := codecs.SnapshotToProto(inventory.Evaluate(state, pol, now))
	if !proto.Equal(msgs[0], want) {
		h.t.Fatalf("%s: published\n%v\nwant\n%v", what, msgs[0], want)
	}
	return msgs[0]
}

func channel(t *testing.T, m *pb.Availability, name string) *pb.ChannelAvailability {
	t.Helper()
	for _, c := range m.GetChannels() {
		if c.GetChannel() == name {
			return c
		}
	}
	t.Fatalf("no channel %q in %v", name, m)
	return nil
}

func available(t *testing.T, m *pb.Availability) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, c := range m.GetChannels() {
		out[c.GetChannel()] = c.GetAvailable()
	}
	return out
}

func reasonCodes(c *pb.ChannelAvailability) []pb.Reason_Code {
	var out []pb.Reason_Code
	for _, r := range c.GetReasons() {
		out = append(out, r.GetCode())
	}
	return out
}

func equalAvailable(t *testing.T, what string, m *pb.Availability, want map[string]int64) {
	t.Helper()
	got := available(t, m)
	for ch, n := range want {
		if got[ch] != n {
			t.Errorf("%s: available %v, want %v", what, got, want)
			return
		}
	}
}

// A closed location's stock drops out of every channel; a location limited
// to some channels counts only there.
func TestLocationPolicyChangesAnswer(t *testing.T) {
	h := start(t)
	closed := h.setLocation(inventory.LocationPolicy{Location: "WH-2", Kind: inventory.KindWarehouse, Closed: true, AsOf: at(0)})
	store := h.setLocation(inventory.LocationPolicy{Location: "ST-1", Kind: inventory.KindStore,
		Channels: []string{"store-pickup"}, SafetyStock: 1, AsOf: at(0)})
	pol := withPolicies([]inventory.LocationPolicy{closed, store})

	wh1, wh2, st1 := lvl("WH-1", 10, at(1), 1), lvl("WH-2", 5, at(2), 1), lvl("ST-1", 4, at(3), 1)
	h.apply(wh1)
	h.expectAnswer("open warehouse", expected(t, wh1), pol, t0)

	h.apply(wh2)
	m := h.expectAnswer("closed warehouse", expected(t, wh1, wh2), pol, t0)
	if m.GetOnHand() != 15 {
		t.Errorf("on_hand %d, want 15: a closed location's units are still on hand", m.GetOnHand())
	}
	equalAvailable(t, "closed warehouse", m, map[string]int64{"web": 10, "marketplace": 10, "store-pickup": 10})
	for _, c := range m.GetChannels() {
		if !slices.Equal(reasonCodes(c), []pb.Reason_Code{pb.Reason_LOCATION_CLOSED}) || c.GetReasons()[0].GetLocation() != "WH-2" {
			t.Errorf("%s reasons %v, want LOCATION_CLOSED for WH-2", c.GetChannel(), c.GetReasons())
		}
	}
	for _, l := range m.GetLocations() {
		if l.GetLocation() == "WH-2" && !l.GetClosed() {
			t.Errorf("WH-2 not marked closed: %v", l)
		}
	}

	h.apply(st1)
	m = h.expectAnswer("store for one channel", expected(t, wh1, wh2, st1), pol, t0)
	// ST-1: 4 on hand - 1 safety stock = 3, on store-pickup only.
	equalAvailable(t, "store for one channel", m, map[string]int64{"web": 10, "marketplace": 10, "store-pickup": 13})
	if !slices.Contains(reasonCodes(channel(t, m, "web")), pb.Reason_LOCATION_INELIGIBLE) {
		t.Errorf("web reasons %v lack LOCATION_INELIGIBLE", channel(t, m, "web").GetReasons())
	}
	if slices.Contains(reasonCodes(channel(t, m, "store-pickup")), pb.Reason_LOCATION_INELIGIBLE) {
		t.Errorf("store-pickup reasons %v list ST-1 as ineligible", channel(t, m, "store-pickup").GetReasons())
	}
}

// A policy change alone publishes nothing (no event for the SKU): the next
// event, or a tick, publishes the answer under the new policy.
func TestPolicyChangeAppliesOnNextEventAndTick(t *testing.T) {
	h := start(t)
	wh1, wh2 := lvl("WH-1", 10, at(1), 1), lvl("WH-2", 5, at(2), 1)
	h.apply(wh1, wh2)
	msgs := h.availabilities()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	published := msgs[1].GetVersion()
	drain(h.changelog)

	closed := h.setLocation(inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, Closed: true, AsOf: at(5)})
	pol := withPolicies([]inventory.LocationPolicy{closed})
	h.expectQuiet("policy stored")

	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(10)), PublishedVersion: published}, at(11))
	m := h.expectAnswer("tick after closing WH-1", expected(t, wh1, wh2), pol, at(10))
	equalAvailable(t, "tick after closing WH-1", m, map[string]int64{"web": 5, "marketplace": 5, "store-pickup": 5})
	h.expectOnlyRewrites("a tick")

	// Reopening: the next supply event publishes with WH-1 back.
	open := h.setLocation(inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, AsOf: at(6)})
	sale := adj("sale", "WH-2", -1, at(12))
	h.applyAt(at(12), sale)
	m = h.expectAnswer("event after reopening", expected(t, wh1, wh2, sale), withPolicies([]inventory.LocationPolicy{open}), at(12))
	equalAvailable(t, "event after reopening", m, map[string]int64{"web": 14})
}

// A merchant location's stock counts until its newest level is older than
// the merchant's TTL at the message's time, then drops out.
func TestMerchantStalenessAtMessageTime(t *testing.T) {
	h := start(t)
	m1 := h.setLocation(inventory.LocationPolicy{Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)})
	m2 := h.setLocation(inventory.LocationPolicy{Location: "M-2", Kind: inventory.KindMerchant, MerchantID: "nopolicy", AsOf: at(0)})
	acme := h.setMerchant(inventory.MerchantPolicy{MerchantID: "acme", StaleAfter: 30 * time.Minute, AsOf: at(0)})
	pol := withPolicies([]inventory.LocationPolicy{m1, m2}, acme)

	l1 := lvl("M-1", 5, at(0), 1)
	h.applyAt(at(60), l1)
	m := h.expectAnswer("fresh merchant stock", expected(t, l1), pol, at(60))
	equalAvailable(t, "fresh", m, map[string]int64{"web": 5, "marketplace": 5, "store-pickup": 5})
	if !m.GetNextChangeAt().AsTime().Equal(at(0).Add(30 * time.Minute)) {
		t.Errorf("next_change_at %v, want M-1's level + 30m", m.GetNextChangeAt().AsTime())
	}

	// M-2's merchant has no policy: the configured default (1h) applies.
	l2 := lvl("M-2", 2, at(0), 1)
	h.applyAt(at(0).Add(31*time.Minute), l2)
	m = h.expectAnswer("M-1 stale, M-2 fresh", expected(t, l1, l2), pol, at(0).Add(31*time.Minute))
	equalAvailable(t, "M-1 stale", m, map[string]int64{"web": 2, "marketplace": 2, "store-pickup": 2})
	for _, c := range m.GetChannels() {
		if rs := c.GetReasons(); len(rs) != 1 || rs[0].GetCode() != pb.Reason_LOCATION_STALE || rs[0].GetLocation() != "M-1" {
			t.Errorf("%s reasons %v, want LOCATION_STALE for M-1", c.GetChannel(), rs)
		}
	}

	// A new level refreshes M-1.
	l1b := lvl("M-1", 4, at(0).Add(40*time.Minute), 2)
	h.applyAt(at(0).Add(41*time.Minute), l1b)
	m = h.expectAnswer("M-1 refreshed", expected(t, l1, l2, l1b), pol, at(0).Add(41*time.Minute))
	equalAvailable(t, "M-1 refreshed", m, map[string]int64{"web": 6})

	// An adjustment without a level at a merchant location counts for
	// nothing: the location has reported no level.
	a := adj("m3", "M-3", 7, at(0).Add(42*time.Minute))
	m3 := h.setLocation(inventory.LocationPolicy{Location: "M-3", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)})
	h.applyAt(at(0).Add(42*time.Minute), a)
	m = h.expectAnswer("merchant location without level", expected(t, l1, l2, l1b, a), withPolicies([]inventory.LocationPolicy{m1, m2, m3}, acme), at(0).Add(42*time.Minute))
	equalAvailable(t, "M-3 without level", m, map[string]int64{"web": 6})
	if m.GetOnHand() != 13 {
		t.Errorf("on_hand %d, want 13", m.GetOnHand())
	}
}

// SKU policies update the state and publish only when the answer changes.
func TestSkuPolicyEvents(t *testing.T) {
	h := start(t)
	wh1, wh2 := lvl("WH-1", 10, at(1), 1), lvl("WH-2", 5, at(2), 1)
	h.apply(wh1, wh2)
	drain(h.avail)
	drain(h.changelog)
	applied := []inventory.Event{wh1, wh2}
	pol := cfg.Policies()

	type step struct {
		name    string
		ev      inventory.Event
		publish bool
		avail   map[string]int64
	}
	for _, st := range []step{
		{"not sellable on web", inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: false, AsOf: at(3)}, true,
			map[string]int64{"web": 0, "marketplace": 15}},
		{"rule for an unconfigured channel", inventory.ChannelEligibility{SKU: sku, Channel: "kiosk", Sellable: false, AsOf: at(3)}, false, nil},
		{"sales cap on marketplace", inventory.SalesCap{SKU: sku, Channel: "marketplace", Limit: 4,
			WindowStart: t0.Add(-time.Hour), WindowEnd: t0.Add(time.Hour), AsOf: at(4)}, true,
			map[string]int64{"web": 0, "marketplace": 4, "store-pickup": 15}},
		{"cap window in the future", inventory.SalesCap{SKU: sku, Channel: "store-pickup", Limit: 1,
			// Not active yet, and it opens after the marketplace cap closes,
			// so next_change_at stays: the answer is unchanged.
			WindowStart: t0.Add(2 * time.Hour), WindowEnd: t0.Add(3 * time.Hour), AsOf: at(4)}, false, nil},
		{"cap window opening sooner", inventory.SalesCap{SKU: sku, Channel: "store-pickup", Limit: 1,
			// Same numbers now, but next_change_at moves to the opening:
			// the answer's version changes and it is published.
			WindowStart: t0.Add(30 * time.Minute), WindowEnd: t0.Add(3 * time.Hour), AsOf: at(5)}, true,
			map[string]int64{"store-pickup": 15}},
		{"safety stock at WH-1", inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Units: 3, AsOf: at(5)}, true,
			map[string]int64{"marketplace": 4, "store-pickup": 12}},
		{"safety stock where the sku has none", inventory.SafetyStockOverride{SKU: sku, Location: "NOWHERE", Units: 3, AsOf: at(5)}, false, nil},
		{"backorder limit", inventory.BackorderLimit{SKU: sku, Limit: 6, AsOf: at(6)}, true, map[string]int64{"store-pickup": 12}},
		{"cap cleared", inventory.SalesCap{SKU: sku, Channel: "marketplace", Cleared: true, AsOf: at(7)}, true,
			map[string]int64{"marketplace": 12}},
		{"sellable on web again", inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: true, AsOf: at(8)}, true,
			map[string]int64{"web": 12}},
	} {
		h.policy(t0, st.ev)
		applied = append(applied, st.ev)
		want := expected(t, applied...)
		if got, _ := h.state(sku); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: table holds %#v, want %#v", st.name, got, want)
		}
		if c := drain(h.changelog); len(c) != 1 {
			t.Errorf("%s: %d table writes, want 1", st.name, len(c))
		}
		if !st.publish {
			if a := h.availabilities(); len(a) != 0 {
				t.Errorf("%s: published %v for an unchanged answer", st.name, a)
			}
			if d := h.deadLetters(); len(d) != 0 {
				t.Errorf("%s: dead-lettered %v", st.name, d)
			}
			continue
		}
		m := h.expectAnswer(st.name, want, pol, t0)
		equalAvailable(t, st.name, m, st.avail)
	}
	final := h.raw(sku)

	// Backorders: 6 promised beyond stock on every sellable channel.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(t0)}, t0)
	m := h.expectAnswer("tick", expected(t, applied...), pol, t0)
	if c := channel(t, m, "web"); c.GetBackorderable() != 6 {
		t.Errorf("web backorderable %d, want 6", c.GetBackorderable())
	}

	// Duplicates and older policies change nothing.
	for name, ev := range map[string]inventory.Event{
		"duplicate eligibility": inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: true, AsOf: at(8)},
		"older eligibility":     inventory.ChannelEligibility{SKU: sku, Channel: "web", Sellable: false, AsOf: at(7)},
		"older backorder":       inventory.BackorderLimit{SKU: sku, Limit: 100, AsOf: at(5)},
		"duplicate safety":      inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Units: 3, AsOf: at(5)},
		"older cap":             inventory.SalesCap{SKU: sku, Channel: "marketplace", Limit: 1, WindowStart: t0, WindowEnd: at(60), AsOf: at(6)},
	} {
		h.policy(at(100), ev)
		h.expectQuiet(name)
		if !bytes.Equal(h.raw(sku), final) {
			t.Fatalf("%s changed the table", name)
		}
	}
}

func TestBadSkuPoliciesAreDeadLettered(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 10, at(1), 1))
	h.policy(t0, inventory.BackorderLimit{SKU: sku, Limit: 1, AsOf: at(1)})
	drain(h.avail)
	drain(h.changelog)
	before := h.raw(sku)
	topic := h.gkt.NewQueueTracker(string(schema.SkuPolicies))
	topic.Seek(topic.Hwm())

	for _, tc := range []struct {
		name   string
		key    string
		value  []byte
		reason []string
	}{
		{"garbage", sku, []byte{0xff, 0xff}, []string{"malformed", "SkuPolicyEvent"}},
		{"empty envelope", sku, []byte{}, []string{"malformed", "no policy set"}},
		{"tombstone", sku, nil, []string{"tombstone"}},
		{"key differs from sku", "SKU-2", encodeSkuPolicy(t, inventory.BackorderLimit{SKU: sku, Limit: 2, AsOf: at(2)}), []string{"SKU-2", "differs"}},
		{"bad channel", sku, encodeSkuPolicy(t, inventory.ChannelEligibility{SKU: sku, Channel: "bad channel!", AsOf: at(2)}), []string{"channel"}},
		{"inverted cap window", sku, encodeSkuPolicy(t, inventory.SalesCap{SKU: sku, Channel: "web", Limit: 1,
			WindowStart: at(10), WindowEnd: at(5), AsOf: at(2)}), []string{"window_end"}},
		{"negative backorder", sku, encodeSkuPolicy(t, inventory.BackorderLimit{SKU: sku, Limit: -1, AsOf: at(2)}), []string{"limit", "negative"}},
		{"missing as_of", sku, encodeSkuPolicy(t, inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Units: 1}), []string{"as_of"}},
		{"invalid window time", sku, marshal(t, &pb.SkuPolicyEvent{Policy: &pb.SkuPolicyEvent_SalesCap{SalesCap: &pb.SalesCap{
			Sku: sku, Channel: "web", WindowStart: &timestamppb.Timestamp{Nanos: -1}, AsOf: timestamppb.New(at(2))}}}), []string{"malformed", "window_start"}},
		{"a supply event on the wrong topic", sku, []byte{0x28, 0x01}, []string{"no policy set"}},
	} {
		h.consumeOn(schema.SkuPolicies, tc.key, tc.value, at(50))
		dls := h.deadLetters()
		if len(dls) != 1 {
			t.Fatalf("%s: %d dead letters, want 1: %v", tc.name, len(dls), dls)
		}
		dl := dls[0]
		for _, want := range tc.reason {
			if !strings.Contains(dl.GetReason(), want) {
				t.Errorf("%s: reason %q does not mention %q", tc.name, dl.GetReason(), want)
			}
		}
		if dl.GetTopic() != string(schema.SkuPolicies) || string(dl.GetKey()) != tc.key || !bytes.Equal(dl.GetValue(), tc.value) {
			t.Errorf("%s: dead letter %v does not carry the original message", tc.name, dl)
		}
		if want := topic.Hwm() - 1; dl.GetOffset() != want {
			t.Errorf("%s: dead letter offset %d, want %d", tc.name, dl.GetOffset(), want)
		}
		h.expectQuiet(tc.name)
		if !bytes.Equal(h.raw(sku), before) {
			t.Fatalf("%s changed the table", tc.name)
		}
	}
	if keys := h.gkt.GetTableKeys(schema.StockTable); !slices.Equal(keys, []string{sku}) {
		t.Errorf("table keys %q, want only %q", keys, sku)
	}
}

func TestTicks(t *testing.T) {
	h := start(t)
	m1 := h.setLocation(inventory.LocationPolicy{Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)})
	pol := withPolicies([]inventory.LocationPolicy{m1}) // acme has no policy: cfg's 1h default
	l1, w1 := lvl("M-1", 5, at(0), 1), lvl("WH-1", 2, at(0), 1)
	h.apply(l1, w1)
	msgs := h.availabilities()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	current := msgs[1].GetVersion()
	drain(h.changelog)
	state := expected(t, l1, w1)

	// A tick for the published answer emits nothing.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(5)), PublishedVersion: current}, at(5))
	h.expectQuiet("tick for the current answer")

	// A tick for an older version emits the answer at the tick's time (not
	// the message's).
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(7)), PublishedVersion: "0000000000000000"}, at(9999))
	m := h.expectAnswer("tick for an older version", state, pol, at(7))
	if !m.GetEvaluatedAt().AsTime().Equal(at(7)) {
		t.Errorf("evaluated_at %v, want the tick's time %v", m.GetEvaluatedAt().AsTime(), at(7))
	}
	if m.GetVersion() != current {
		t.Errorf("version %s, want %s: the answer has not changed", m.GetVersion(), current)
	}

	// At the merchant's TTL the answer changes on its own: the tick the
	// reconciler sends then publishes M-1 as stale.
	staleAt := at(0).Add(time.Hour)
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(staleAt), PublishedVersion: current}, t0)
	m = h.expectAnswer("tick at the merchant's ttl", state, pol, staleAt)
	equalAvailable(t, "stale merchant", m, map[string]int64{"web": 2, "marketplace": 2, "store-pickup": 2})
	if !slices.Contains(reasonCodes(channel(t, m, "web")), pb.Reason_LOCATION_STALE) {
		t.Errorf("web reasons %v lack LOCATION_STALE", channel(t, m, "web").GetReasons())
	}
	stale := m.GetVersion()
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(staleAt.Add(time.Minute)), PublishedVersion: stale}, t0)
	h.expectQuiet("tick after the stale answer was published")
	// A tick one nanosecond before the TTL sees fresh stock.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(staleAt.Add(-time.Nanosecond)), PublishedVersion: stale}, t0)
	m = h.expectAnswer("tick before the ttl", state, pol, staleAt.Add(-time.Nanosecond))
	equalAvailable(t, "fresh merchant", m, map[string]int64{"web": 7})

	// Ticks never change the table (they may rewrite it unchanged).
	h.expectOnlyRewrites("ticks")

	// A tick for an unknown SKU emits nothing and creates no state.
	h.tick("SKU-404", &pb.StockTick{Sku: "SKU-404", At: timestamppb.New(at(5))}, at(5))
	h.expectQuiet("tick for an unknown sku")
	if v := h.gkt.TableValue(schema.StockTable, "SKU-404"); v != nil {
		t.Errorf("tick for an unknown SKU stored %v", v)
	}
}

func TestBadTicksAreDeadLettered(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 10, at(1), 1))
	drain(h.avail)
	drain(h.changelog)
	before := h.raw(sku)
	ticks := h.gkt.NewQueueTracker(string(schema.StockTicks))
	for _, tc := range []struct {
		name   string
		key    string
		value  []byte
		reason []string
	}{
		{"garbage", sku, []byte{0xff, 0xff, 0xff}, []string{"malformed", "StockTick"}},
		{"tombstone", sku, nil, []string{"tombstone"}},
		{"empty", sku, []byte{}, []string{"malformed", "no time"}},
		{"missing time", sku, marshal(t, &pb.StockTick{Sku: sku, PublishedVersion: "x"}), []string{"malformed", "no time"}},
		{"invalid time", sku, marshal(t, &pb.StockTick{Sku: sku, At: &timestamppb.Timestamp{Seconds: 1, Nanos: 1e9}}), []string{"malformed", "time"}},
		{"time beyond 9999", sku, marshal(t, &pb.StockTick{Sku: sku, At: &timestamppb.Timestamp{Seconds: 253402300800}}), []string{"malformed"}},
		{"key differs from sku", "SKU-2", marshal(t, &pb.StockTick{Sku: sku, At: timestamppb.New(at(5))}), []string{"SKU-2", sku, "differs"}},
		{"tick without sku", sku, marshal(t, &pb.StockTick{At: timestamppb.New(at(5))}), []string{"differs"}},
	} {
		h.consumeOn(schema.StockTicks, tc.key, tc.value, at(50))
		dls := h.deadLetters()
		if len(dls) != 1 {
			t.Fatalf("%s: %d dead letters, want 1: %v", tc.name, len(dls), dls)
		}
		dl := dls[0]
		for _, want := range tc.reason {
			if !strings.Contains(dl.GetReason(), want) {
				t.Errorf("%s: reason %q does not mention %q", tc.name, dl.GetReason(), want)
			}
		}
		if dl.GetTopic() != string(schema.StockTicks) || dl.GetGroup() != string(schema.StockGroup) ||
			string(dl.GetKey()) != tc.key || !bytes.Equal(dl.GetValue(), tc.value) {
			t.Errorf("%s: dead letter %v does not carry the original message", tc.name, dl)
		}
		if want := ticks.Hwm() - 1; dl.GetOffset() != want {
			t.Errorf("%s: dead letter offset %d, want %d", tc.name, dl.GetOffset(), want)
		}
		if !dl.GetMessageTime().AsTime().Equal(at(50)) {
			t.Errorf("%s: message_time %v, want %v", tc.name, dl.GetMessageTime().AsTime(), at(50))
		}
		h.expectQuiet(tc.name)
		if !bytes.Equal(h.raw(sku), before) {
			t.Fatalf("%s changed the table", tc.name)
		}
	}
}

// State stored but never published (a crash between the changelog write and
// the publish) is healed by a tick: the reconciler sees nothing (or an
// older version) on the availability topic and ticks the SKU.
func TestTickHealsUnpublishedState(t *testing.T) {
	h := start(t)
	state := expected(t, lvl("WH-1", 10, at(1), 1), adj("sale", "WH-1", -2, at(2)), lvl("WH-2", 1, at(3), 1))
	h.gkt.SetTableValue(schema.StockTable, sku, state)
	h.expectQuiet("state written behind the processor's back")

	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(60))}, at(61))
	m := h.expectAnswer("healing tick", state, cfg.Policies(), at(60))
	equalAvailable(t, "healed", m, map[string]int64{"web": 9, "marketplace": 9, "store-pickup": 9})
	h.expectOnlyRewrites("healing tick")
	if got, _ := h.state(sku); !reflect.DeepEqual(got, state) {
		t.Errorf("table holds %#v, want the state as written %#v", got, state)
	}

	// The reconciler's next tick sees the healed version and changes nothing.
	h.tick(sku, &pb.StockTick{Sku: sku, At: timestamppb.New(at(70)), PublishedVersion: m.GetVersion()}, at(71))
	h.expectQuiet("tick after healing")

	// Events continue from the stored state.
	next := adj("receipt", "WH-2", 4, at(80))
	h.applyAt(at(80), next)
	h.expectAnswer("event after healing", expected(t, lvl("WH-1", 10, at(1), 1), adj("sale", "WH-1", -2, at(2)), lvl("WH-2", 1, at(3), 1), next), cfg.Policies(), at(80))
}

// Known bug: DecodeStockTick accepts any valid google.protobuf.Timestamp,
// so a tick at the Unix epoch (an all-zero Timestamp, what inventory treats
// as "unset" for every event time) or in year 9999 is evaluated as given.
// At 1970 no sales-cap window has opened and no merchant level is stale
// yet, so the processor publishes an inflated answer (the cap is ignored)
// until the reconciler's next tick. Ticks outside the domain's time range
// (1970-01-01, 2200-01-01) should be dead-lettered like such events are.
func TestTickOutsideDomainTimeRangeIsDeadLettered(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 10, at(1), 1))
	h.policy(t0, inventory.SalesCap{SKU: sku, Channel: "web", Limit: 2, WindowStart: at(0), WindowEnd: at(3600), AsOf: at(1)})
	msgs := h.availabilities()
	if len(msgs) == 0 || channel(t, msgs[len(msgs)-1], "web").GetAvailable() != 2 {
		t.Fatalf("setup: published %v, want web capped at 2", msgs)
	}
	published := msgs[len(msgs)-1].GetVersion()
	drain(h.changelog)
	for name, ts := range map[string]*timestamppb.Timestamp{
		"epoch":     {},
		"year 1":    {Seconds: -62135596800},
		"year 9999": {Seconds: 253402300799},
	} {
		h.tick(sku, &pb.StockTick{Sku: sku, At: ts, PublishedVersion: published}, t0)
		if a := h.availabilities(); len(a) != 0 {
			t.Errorf("%s tick published %v (web available %d)", name, a, channel(t, a[0], "web").GetAvailable())
		}
		if d := h.deadLetters(); len(d) != 1 {
			t.Errorf("%s tick: %d dead letters, want 1", name, len(d))
		}
	}
}
