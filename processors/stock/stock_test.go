package stock_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/skuflow/skuflow/processors/backlog"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

const sku = "SKU-1"

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func lvl(loc string, onHand int64, asOf time.Time, seq uint64) inventory.StockLevel {
	return inventory.StockLevel{SKU: sku, Location: loc, OnHand: onHand, AsOf: asOf, Sequence: seq}
}

func adj(id, loc string, delta int64, occurredAt time.Time) inventory.StockAdjustment {
	return inventory.StockAdjustment{EventID: id, SKU: sku, Location: loc, Delta: delta, OccurredAt: occurredAt}
}

func encode(t testing.TB, ev inventory.Event) []byte {
	t.Helper()
	data, err := codecs.EncodeSupplyEvent(ev)
	if err != nil {
		t.Fatalf("encode %#v: %v", ev, err)
	}
	return data
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return data
}

// expected folds events with the domain directly: what the table must hold.
func expected(t testing.TB, evs ...inventory.Event) inventory.State {
	t.Helper()
	s := inventory.State{SKU: sku}
	for i, ev := range evs {
		var err error
		if s, _, err = inventory.Apply(s, ev, t0); err != nil {
			t.Fatalf("event %d %#v: %v", i, ev, err)
		}
	}
	return s
}

// cfg is the processor configuration of every test: three channels and a
// one-hour default merchant TTL.
var cfg = inventory.Base{Channels: []string{"web", "marketplace", "store-pickup"}, DefaultStaleAfter: time.Hour}

// harness is one stock processor running on goka's tester, with trackers
// on every topic it writes: availability, dead letters and its changelog.
type harness struct {
	t                      *testing.T
	gkt                    *tester.Tester
	avail, dead, changelog *tester.QueueTracker
	supply                 *tester.QueueTracker
}

func start(t *testing.T) *harness { return startWith(t, nil) }

// startWith runs the processor on goka's tester, with backlog b (nil: none).
func startWith(t *testing.T, b *backlog.Backlog) *harness { return startSkew(t, b, 0) }

// startSkew is startWith with a maximum event skew (0: no limit).
func startSkew(t *testing.T, b *backlog.Backlog, skew time.Duration) *harness {
	t.Helper()
	gkt := tester.New(t)
	p, err := stock.New(nil, cfg, nil, b, skew, goka.WithTester(gkt))
	if err != nil {
		t.Fatalf("stock.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("processor Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("processor did not stop within 10s")
		}
	})
	return &harness{
		t:         t,
		gkt:       gkt,
		avail:     gkt.NewQueueTracker(string(schema.Availability)),
		dead:      gkt.NewQueueTracker(string(schema.DeadLetter)),
		changelog: gkt.NewQueueTracker(string(schema.StockTable)),
		supply:    gkt.NewQueueTracker(string(schema.Supply)),
	}
}

// consume feeds one supply message; value nil is a tombstone.
func (h *harness) consume(key string, value []byte, ts time.Time) {
	h.t.Helper()
	if value == nil {
		h.gkt.Consume(string(schema.Supply), key, nil, tester.WithTime(ts))
		return
	}
	h.gkt.Consume(string(schema.Supply), key, value, tester.WithTime(ts))
}

func (h *harness) apply(evs ...inventory.Event) {
	h.t.Helper()
	for _, ev := range evs {
		h.consume(ev.EventSKU(), encode(h.t, ev), t0)
	}
}

// state is the decoded table value of key, or false without one.
func (h *harness) state(key string) (inventory.State, bool) {
	h.t.Helper()
	v := h.gkt.TableValue(schema.StockTable, key)
	if v == nil {
		return inventory.State{}, false
	}
	s, ok := v.(inventory.State)
	if !ok {
		h.t.Fatalf("table value of %q is %T, want inventory.State", key, v)
	}
	return s, true
}

// raw is the table's stored bytes for key (nil without a value).
func (h *harness) raw(key string) []byte {
	h.t.Helper()
	st, err := h.gkt.StorageBuilder()(string(schema.StockTable), 0)
	if err != nil {
		h.t.Fatalf("table storage: %v", err)
	}
	v, err := st.Get(key)
	if err != nil {
		h.t.Fatalf("table get %q: %v", key, err)
	}
	return bytes.Clone(v)
}

type message struct {
	key   string
	value any
}

// drain returns every message the tracker has not returned yet.
func drain(q *tester.QueueTracker) []message {
	var out []message
	for {
		k, v, ok := q.Next()
		if !ok {
			return out
		}
		out = append(out, message{k, v})
	}
}

func (h *harness) availabilities() []*pb.Availability {
	h.t.Helper()
	var out []*pb.Availability
	for _, m := range drain(h.avail) {
		a, ok := m.value.(*pb.Availability)
		if !ok {
			h.t.Fatalf("availability message is %T", m.value)
		}
		if m.key != a.GetSku() {
			h.t.Errorf("availability for %q published under key %q", a.GetSku(), m.key)
		}
		out = append(out, a)
	}
	return out
}

func (h *harness) deadLetters() []*pb.DeadLetter {
	h.t.Helper()
	var out []*pb.DeadLetter
	for _, m := range drain(h.dead) {
		dl, ok := m.value.(*pb.DeadLetter)
		if !ok {
			h.t.Fatalf("dead letter is %T", m.value)
		}
		if m.key != string(dl.GetKey()) {
			h.t.Errorf("dead letter for key %q published under key %q", dl.GetKey(), m.key)
		}
		out = append(out, dl)
	}
	return out
}

// expectQuiet fails if anything was published or the table changed. The
// processor may rewrite a key's unchanged value (processors.Store heals a
// changelog left behind by a crash), so every changelog write must equal
// the value the table holds.
func (h *harness) expectQuiet(what string) {
	h.t.Helper()
	if a := h.availabilities(); len(a) != 0 {
		h.t.Errorf("%s: published %d availability messages: %v", what, len(a), a)
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %d messages: %v", what, len(d), d)
	}
	h.expectOnlyRewrites(what)
}

// expectOnlyRewrites fails if a changelog write differs from the value the
// table holds for its key.
func (h *harness) expectOnlyRewrites(what string) {
	h.t.Helper()
	for _, c := range drain(h.changelog) {
		cur, _ := h.state(c.key)
		if !reflect.DeepEqual(c.value, cur) {
			h.t.Errorf("%s: wrote %v to the table, which holds %v", what, c.value, cur)
		}
	}
}

// expectSnapshot checks that exactly one availability message was published
// and that it is the snapshot of want, which is also what the table holds.
func (h *harness) expectSnapshot(what string, want inventory.State, onHand, available int64) {
	h.t.Helper()
	got, ok := h.state(want.SKU)
	if !ok {
		h.t.Fatalf("%s: no table value for %q", what, want.SKU)
	}
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("%s: table holds\n%#v\nwant\n%#v", what, got, want)
	}
	if c := drain(h.changelog); len(c) != 1 {
		h.t.Errorf("%s: %d table writes, want 1", what, len(c))
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %v", what, d)
	}
	msgs := h.availabilities()
	if len(msgs) != 1 {
		h.t.Fatalf("%s: %d availability messages, want 1: %v", what, len(msgs), msgs)
	}
	// No location policies are stored: every location is a warehouse
	// serving every channel, and the events were consumed at t0.
	m, snap := msgs[0], inventory.Evaluate(want, cfg.Policies(), t0)
	if m.GetOnHand() != onHand {
		h.t.Errorf("%s: on_hand %d, want %d", what, m.GetOnHand(), onHand)
	}
	if len(m.GetChannels()) != len(cfg.Channels) {
		h.t.Errorf("%s: %d channels, want %d", what, len(m.GetChannels()), len(cfg.Channels))
	}
	for _, c := range m.GetChannels() {
		if c.GetAvailable() != available {
			h.t.Errorf("%s: %s available %d, want %d", what, c.GetChannel(), c.GetAvailable(), available)
		}
	}
	if m.GetSku() != want.SKU || m.GetVersion() != snap.Version {
		h.t.Errorf("%s: sku %q version %q, want %q and %q", what, m.GetSku(), m.GetVersion(), want.SKU, snap.Version)
	}
	if !proto.Equal(m, codecs.SnapshotToProto(snap)) {
		h.t.Errorf("%s: published\n%v\nwant\n%v", what, m, codecs.SnapshotToProto(snap))
	}
}

func TestValidLevelUpdatesTableAndPublishes(t *testing.T) {
	h := start(t)
	level := lvl("WH-1", 10, at(1), 1)
	h.apply(level)
	h.expectSnapshot("first level", expected(t, level), 10, 10)

	sale := adj("order-7", "WH-1", -3, at(2))
	h.apply(sale)
	h.expectSnapshot("sale", expected(t, level, sale), 7, 7)

	other := lvl("WH-2", 5, at(3), 1)
	h.apply(other)
	h.expectSnapshot("second location", expected(t, level, sale, other), 12, 12)

	newer := lvl("WH-1", 4, at(4), 2) // covers the sale
	h.apply(newer)
	h.expectSnapshot("newer level", expected(t, level, sale, other, newer), 9, 9)
}

func TestPublishedMessageFields(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 10, at(1), 1), lvl("WH-2", 0, at(2), 1))
	msgs := h.availabilities()
	if len(msgs) != 2 {
		t.Fatalf("%d availability messages, want 2", len(msgs))
	}
	m := msgs[1]
	if m.GetSku() != sku || m.GetOnHand() != 10 || !m.GetUpdatedAt().AsTime().Equal(at(2)) || !m.GetEvaluatedAt().AsTime().Equal(t0) {
		t.Errorf("published %v", m)
	}
	var chans []string
	for _, c := range m.GetChannels() {
		chans = append(chans, c.GetChannel())
		if c.GetAvailable() != 10 || c.GetUsable() != 10 || !c.GetSellable() || c.CapRemaining != nil || len(c.GetReasons()) != 0 {
			t.Errorf("channel %v, want 10 available, sellable, no cap, no reasons", c)
		}
	}
	if want := []string{"marketplace", "store-pickup", "web"}; !slices.Equal(chans, want) {
		t.Errorf("channels %q, want %q", chans, want)
	}
	if len(m.GetLocations()) != 2 {
		t.Fatalf("locations %v", m.GetLocations())
	}
	for i, want := range []struct {
		id     string
		onHand int64
		asOf   time.Time
	}{{"WH-1", 10, at(1)}, {"WH-2", 0, at(2)}} {
		l := m.GetLocations()[i]
		if l.GetLocation() != want.id || l.GetOnHand() != want.onHand || !l.GetLevelAsOf().AsTime().Equal(want.asOf) {
			t.Errorf("location %d = %v, want %+v", i, l, want)
		}
	}
	if msgs[0].GetVersion() == msgs[1].GetVersion() {
		t.Errorf("both snapshots have version %q", m.GetVersion())
	}
}

func TestDuplicatesChangeNothing(t *testing.T) {
	h := start(t)
	level, sale := lvl("WH-1", 10, at(1), 1), adj("order-7", "WH-1", -3, at(2))
	h.apply(level, sale)
	drain(h.avail)
	drain(h.changelog)
	before := h.raw(sku)
	if before == nil {
		t.Fatal("no table value after two events")
	}
	for _, ev := range []inventory.Event{level, sale, level, sale} {
		h.consume(sku, encode(t, ev), at(100)) // a redelivery, later
		h.expectQuiet("duplicate " + reflect.TypeOf(ev).Name())
		if after := h.raw(sku); !bytes.Equal(after, before) {
			t.Fatalf("duplicate %T changed the table bytes\nbefore %x\nafter  %x", ev, before, after)
		}
	}
}

func TestOlderDataChangesNothing(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 10, at(10), 5))
	drain(h.avail)
	drain(h.changelog)
	before := h.raw(sku)
	for name, ev := range map[string]inventory.Event{
		"older level":                          lvl("WH-1", 99, at(5), 9),
		"same as_of, lower sequence":           lvl("WH-1", 99, at(10), 4),
		"same as_of and sequence, fewer units": lvl("WH-1", 9, at(10), 5),
		"adjustment covered by the level":      adj("late", "WH-1", 7, at(10)),
	} {
		h.apply(ev)
		h.expectQuiet(name)
		if after := h.raw(sku); !bytes.Equal(after, before) {
			t.Fatalf("%s changed the table bytes\nbefore %x\nafter  %x", name, before, after)
		}
	}
}

// An event that changes the state but not the answer is stored and not
// published: output goes out only when the snapshot's version changes.
func TestStateChangeWithoutNewAnswerIsNotPublished(t *testing.T) {
	h := start(t)
	h.apply(lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1))
	drain(h.avail)
	drain(h.changelog)
	// WH-1 goes to -3 raw, read as 0; the newest time stays at(10).
	shrink := adj("shrink", "WH-1", -3, at(2))
	h.apply(shrink)
	if a := h.availabilities(); len(a) != 0 {
		t.Errorf("published %v for an unchanged answer", a)
	}
	if c := drain(h.changelog); len(c) != 1 {
		t.Errorf("%d table writes, want 1", len(c))
	}
	want := expected(t, lvl("WH-1", 0, at(1), 1), lvl("WH-2", 5, at(10), 1), shrink)
	if got, _ := h.state(sku); !reflect.DeepEqual(got, want) {
		t.Errorf("table holds %#v, want %#v", got, want)
	}
	// The stored adjustment still counts: a receipt at WH-1 lifts it to
	// 0-3+4 = 1, not 4.
	h.apply(adj("receipt", "WH-1", 4, at(11)))
	msgs := h.availabilities()
	if len(msgs) != 1 || msgs[0].GetOnHand() != 6 || msgs[0].GetChannels()[0].GetAvailable() != 6 {
		t.Errorf("after receipt published %v, want one message with on_hand and available 6 (0-3+4 at WH-1, 5 at WH-2)", msgs)
	}
}

func TestBadInputIsDeadLettered(t *testing.T) {
	seed := []inventory.Event{lvl("WH-1", 10, at(1), 1), adj("a", "WH-1", 2, at(3))}
	other := "SKU-2"
	cases := []struct {
		name   string
		key    string
		value  []byte // nil: tombstone
		reason []string
	}{
		{"garbage bytes", sku, []byte{0xff, 0xff, 0xff}, []string{"malformed", "SupplyEvent"}},
		{"text", sku, []byte("hello, world"), []string{"malformed"}},
		{"empty value", sku, []byte{}, []string{"malformed", "no event set"}},
		{"envelope with only unknown fields", sku, []byte{0x18, 0x01}, []string{"malformed", "no event set"}},
		{"tombstone", sku, nil, []string{"tombstone"}},
		{"key differs from sku", other, encode(t, lvl("WH-1", 3, at(5), 1)), []string{other, sku, "differs"}},
		{"empty key", "", encode(t, lvl("WH-1", 3, at(5), 1)), []string{"differs"}},
		{"negative on_hand", sku, encode(t, lvl("WH-1", -1, at(5), 1)), []string{"on_hand", "negative"}},
		{"conflicting duplicate adjustment", sku, encode(t, adj("a", "WH-1", 5, at(3))), []string{"conflicting duplicate", `"a"`}},
		{"duplicate adjustment id at another time", sku, encode(t, adj("a", "WH-1", 2, at(4))), []string{"conflicting duplicate"}},
		{"invalid as_of", sku, marshal(t, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
			Sku: sku, Location: "WH-1", OnHand: 1, AsOf: &timestamppb.Timestamp{Seconds: 1 << 40},
		}}}), []string{"malformed", "as_of"}},
		{"missing occurred_at", sku, marshal(t, &pb.SupplyEvent{Event: &pb.SupplyEvent_StockAdjustment{StockAdjustment: &pb.StockAdjustment{
			EventId: "b", Sku: sku, Location: "WH-1", Delta: 1,
		}}}), []string{"occurred_at", "missing"}},
		{"zero delta", sku, encode(t, adj("b", "WH-1", 0, at(5))), []string{"delta is 0"}},
		{"invalid location", sku, encode(t, lvl("WH 1/x", 1, at(5), 1)), []string{"location"}},
		{"invalid sku in key and event", "bad\x01sku", encode(t, inventory.StockLevel{
			SKU: "bad\x01sku", Location: "WH-1", OnHand: 1, AsOf: at(5),
		}), []string{"sku", `bad\x01sku`, "control character"}},
		{"as_of after 2200", sku, encode(t, lvl("WH-1", 1, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 1)), []string{"as_of", "2300"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.apply(seed...)
			drain(h.avail)
			drain(h.changelog)
			before := h.raw(sku)
			keysBefore := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.StockTable)))

			msgTime := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
			h.consume(tc.key, tc.value, msgTime)

			dls := h.deadLetters()
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1: %v", len(dls), dls)
			}
			dl := dls[0]
			if dl.GetReason() == "" {
				t.Error("dead letter has no reason")
			}
			for _, want := range tc.reason {
				if !strings.Contains(dl.GetReason(), want) {
					t.Errorf("reason %q does not mention %q", dl.GetReason(), want)
				}
			}
			if !bytes.Equal(dl.GetValue(), tc.value) {
				t.Errorf("dead letter value %x, want the original %x", dl.GetValue(), tc.value)
			}
			if string(dl.GetKey()) != tc.key {
				t.Errorf("dead letter key %q, want %q", dl.GetKey(), tc.key)
			}
			if dl.GetTopic() != string(schema.Supply) || dl.GetGroup() != string(schema.StockGroup) || dl.GetPartition() != 0 {
				t.Errorf("dead letter source %s/%d group %s", dl.GetTopic(), dl.GetPartition(), dl.GetGroup())
			}
			if want := h.supply.Hwm() - 1; dl.GetOffset() != want {
				t.Errorf("dead letter offset %d, want %d", dl.GetOffset(), want)
			}
			if !dl.GetMessageTime().AsTime().Equal(msgTime) {
				t.Errorf("dead letter message_time %v, want %v", dl.GetMessageTime().AsTime(), msgTime)
			}

			h.expectQuiet("after the dead letter")
			if after := h.raw(sku); !bytes.Equal(after, before) {
				t.Errorf("bad input changed the table bytes\nbefore %x\nafter  %x", before, after)
			}
			if keys := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.StockTable))); !slices.Equal(keys, keysBefore) {
				t.Errorf("table keys %q, want %q", keys, keysBefore)
			}

			// The processor keeps working: a valid event still applies.
			next := adj("after", "WH-1", 1, at(7))
			h.apply(next)
			h.expectSnapshot("valid event after bad input", expected(t, append(slices.Clone(seed), next)...), 13, 13)
		})
	}
}

// A run of bad messages in a row, for several keys, dead-letters each once
// and leaves the processor applying valid events in between and after.
func TestBadInputInterleavedWithValid(t *testing.T) {
	h := start(t)
	bad := [][]byte{{0xff}, nil, {}, encode(t, lvl("WH-1", -5, at(1), 1))}
	var applied []inventory.Event
	for i, b := range bad {
		h.consume(sku, b, t0)
		ev := lvl("WH-1", int64(i+1), at(i+1), 1)
		h.apply(ev)
		applied = append(applied, ev)
	}
	if d := h.deadLetters(); len(d) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(d), len(bad))
	}
	if a := h.availabilities(); len(a) != len(bad) || a[len(a)-1].GetOnHand() != int64(len(bad)) {
		t.Errorf("availability messages %v", a)
	}
	if got, _ := h.state(sku); !reflect.DeepEqual(got, expected(t, applied...)) {
		t.Errorf("table holds %#v", got)
	}
}
