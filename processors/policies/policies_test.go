package policies_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/policies"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// t0 is the origin of every test clock; at(n) is n seconds after it.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func locationEvent(p *pb.LocationPolicy) *pb.PolicyEvent {
	return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: p}}
}

func merchantEvent(p *pb.MerchantPolicy) *pb.PolicyEvent {
	return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: p}}
}

func warehouse(id string, asOf time.Time) *pb.LocationPolicy {
	return &pb.LocationPolicy{Location: id, Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, AsOf: timestamppb.New(asOf)}
}

func merchant(id string, ttl time.Duration, asOf time.Time) *pb.MerchantPolicy {
	m := &pb.MerchantPolicy{MerchantId: id, AsOf: timestamppb.New(asOf)}
	if ttl != 0 {
		m.StaleAfter = durationpb.New(ttl)
	}
	return m
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return data
}

type harness struct {
	t               *testing.T
	gkt             *tester.Tester
	dead, changelog *tester.QueueTracker
	input           *tester.QueueTracker
}

func start(t *testing.T) *harness { return startSkew(t, 0) }

// startSkew is start with a maximum event skew (0: no limit).
func startSkew(t *testing.T, skew time.Duration) *harness {
	t.Helper()
	gkt := tester.New(t)
	p, err := policies.New(nil, nil, skew, goka.WithTester(gkt))
	if err != nil {
		t.Fatalf("policies.New: %v", err)
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
		dead:      gkt.NewQueueTracker(string(schema.DeadLetter)),
		changelog: gkt.NewQueueTracker(string(schema.PoliciesTable)),
		input:     gkt.NewQueueTracker(string(schema.Policies)),
	}
}

// consume feeds one raw message; value nil is a tombstone.
func (h *harness) consume(key string, value []byte, ts time.Time) {
	h.t.Helper()
	if value == nil {
		h.gkt.Consume(string(schema.Policies), key, nil, tester.WithTime(ts))
		return
	}
	h.gkt.Consume(string(schema.Policies), key, value, tester.WithTime(ts))
}

// send publishes ev under the key it belongs to.
func (h *harness) send(ev *pb.PolicyEvent) {
	h.t.Helper()
	key, err := schema.PolicyKey(ev)
	if err != nil {
		h.t.Fatalf("KeyOf(%v): %v", ev, err)
	}
	h.consume(key, marshal(h.t, ev), t0)
}

func (h *harness) value(key string) *pb.PolicyEvent {
	h.t.Helper()
	v := h.gkt.TableValue(schema.PoliciesTable, key)
	if v == nil {
		return nil
	}
	ev, ok := v.(*pb.PolicyEvent)
	if !ok {
		h.t.Fatalf("table value of %q is %T", key, v)
	}
	return ev
}

// raw is the table's stored bytes for key (nil without a value).
func (h *harness) raw(key string) []byte {
	h.t.Helper()
	st, err := h.gkt.StorageBuilder()(string(schema.PoliciesTable), 0)
	if err != nil {
		h.t.Fatalf("table storage: %v", err)
	}
	v, err := st.Get(key)
	if err != nil {
		h.t.Fatalf("table get %q: %v", key, err)
	}
	return bytes.Clone(v)
}

func drain(q *tester.QueueTracker) int {
	n := 0
	for {
		if _, _, ok := q.Next(); !ok {
			return n
		}
		n++
	}
}

func (h *harness) deadLetters() []*pb.DeadLetter {
	h.t.Helper()
	var out []*pb.DeadLetter
	for {
		k, v, ok := h.dead.Next()
		if !ok {
			return out
		}
		dl, isDL := v.(*pb.DeadLetter)
		if !isDL {
			h.t.Fatalf("dead letter is %T", v)
		}
		if k != string(dl.GetKey()) {
			h.t.Errorf("dead letter for key %q published under key %q", dl.GetKey(), k)
		}
		out = append(out, dl)
	}
}

// expectStored checks that key holds exactly want, written once.
func (h *harness) expectStored(what, key string, want *pb.PolicyEvent) {
	h.t.Helper()
	if got := h.value(key); !proto.Equal(got, want) {
		h.t.Errorf("%s: table[%q] = %v, want %v", what, key, got, want)
	}
	if n := drain(h.changelog); n != 1 {
		h.t.Errorf("%s: %d table writes, want 1", what, n)
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %v", what, d)
	}
}

// expectQuiet fails if the table changed. The processor may rewrite a
// key's unchanged value (processors.Store heals a changelog left behind by a
// crash), so every changelog write must equal the value the table holds.
func (h *harness) expectQuiet(what string) {
	h.t.Helper()
	for {
		k, v, ok := h.changelog.Next()
		if !ok {
			break
		}
		if cur := h.gkt.TableValue(schema.PoliciesTable, k); !proto.Equal(cur.(proto.Message), v.(proto.Message)) {
			h.t.Errorf("%s: wrote %v under %s, the table holds %v", what, v, k, cur)
		}
	}
	if d := h.deadLetters(); len(d) != 0 {
		h.t.Errorf("%s: dead-lettered %v", what, d)
	}
}

func TestValidPoliciesAreStoredUnderTheirKeys(t *testing.T) {
	h := start(t)

	loc := &pb.LocationPolicy{
		Location: "ST-1", Kind: pb.LocationKind_LOCATION_KIND_STORE,
		// Stored sorted and without duplicates.
		Channels: []string{"web", "store-pickup", "web"}, SafetyStock: 2,
		AsOf: timestamppb.New(at(1).In(time.FixedZone("UTC+2", 7200))),
	}
	h.send(locationEvent(loc))
	h.expectStored("store", "location/ST-1", locationEvent(&pb.LocationPolicy{
		Location: "ST-1", Kind: pb.LocationKind_LOCATION_KIND_STORE, Channels: []string{"store-pickup", "web"},
		SafetyStock: 2, AsOf: timestamppb.New(at(1)),
	}))

	m := &pb.LocationPolicy{Location: "M-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "acme", AsOf: timestamppb.New(at(1))}
	h.send(locationEvent(m))
	h.expectStored("merchant location", "location/M-1", locationEvent(m))

	h.send(merchantEvent(merchant("acme", 90*time.Minute, at(2))))
	h.expectStored("merchant", "merchant/acme", merchantEvent(merchant("acme", 90*time.Minute, at(2))))

	h.send(merchantEvent(merchant("plain", 0, at(2))))
	h.expectStored("merchant with default ttl", "merchant/plain", merchantEvent(merchant("plain", 0, at(2))))

	// A newer policy replaces the old one entirely (not a patch).
	closed := &pb.LocationPolicy{Location: "ST-1", Kind: pb.LocationKind_LOCATION_KIND_STORE, Closed: true, AsOf: timestamppb.New(at(5))}
	h.send(locationEvent(closed))
	h.expectStored("newer store policy", "location/ST-1", locationEvent(closed))

	keys := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.PoliciesTable)))
	if want := []string{"location/M-1", "location/ST-1", "merchant/acme", "merchant/plain"}; !slices.Equal(keys, want) {
		t.Errorf("table keys %q, want %q", keys, want)
	}
}

func TestOlderAndDuplicatePoliciesChangeNothing(t *testing.T) {
	h := start(t)
	loc := warehouse("WH-1", at(10))
	loc.SafetyStock = 3
	h.send(locationEvent(loc))
	h.send(merchantEvent(merchant("acme", time.Hour, at(10))))
	drain(h.changelog)
	beforeLoc, beforeMerchant := h.raw("location/WH-1"), h.raw("merchant/acme")

	older := warehouse("WH-1", at(9))
	older.Closed = true
	for name, ev := range map[string]*pb.PolicyEvent{
		"duplicate location":       locationEvent(loc),
		"duplicate merchant":       merchantEvent(merchant("acme", time.Hour, at(10))),
		"older location":           locationEvent(older),
		"older merchant":           merchantEvent(merchant("acme", time.Minute, at(9))),
		"same instant, other zone": locationEvent(&pb.LocationPolicy{Location: "WH-1", Kind: 1, SafetyStock: 3, AsOf: timestamppb.New(at(10).In(time.FixedZone("x", -3600)))}),
	} {
		h.consume(mustKey(t, ev), marshal(t, ev), at(100))
		h.expectQuiet(name)
		if !bytes.Equal(h.raw("location/WH-1"), beforeLoc) || !bytes.Equal(h.raw("merchant/acme"), beforeMerchant) {
			t.Fatalf("%s changed the table", name)
		}
	}
	// A tie on as_of is broken by content, whatever the arrival order: the
	// winner must not depend on which came first.
	tie := warehouse("WH-1", at(10))
	tie.SafetyStock = 3
	tie.Closed = true
	h.send(locationEvent(tie))
	after := h.value("location/WH-1")
	h2 := start(t)
	h2.send(locationEvent(tie))
	h2.send(locationEvent(loc))
	if other := h2.value("location/WH-1"); !proto.Equal(after, other) {
		t.Errorf("tie resolved to %v in one order and %v in the other", after, other)
	}
}

func mustKey(t testing.TB, ev *pb.PolicyEvent) string {
	t.Helper()
	key, err := schema.PolicyKey(ev)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestBadPoliciesAreDeadLettered(t *testing.T) {
	valid := locationEvent(warehouse("WH-1", at(1)))
	cases := []struct {
		name   string
		key    string
		value  []byte // nil: tombstone
		reason []string
	}{
		{"garbage", "location/WH-1", []byte{0xff, 0xff, 0xff}, []string{"malformed", "PolicyEvent"}},
		{"text", "location/WH-1", []byte("hello"), []string{"malformed"}},
		{"empty envelope", "location/WH-1", []byte{}, []string{"malformed", "no policy set"}},
		{"unknown fields only", "location/WH-1", []byte{0x18, 0x01}, []string{"malformed", "no policy set"}},
		{"tombstone", "location/WH-1", nil, []string{"tombstone"}},
		{"key of another location", "location/WH-2", marshal(t, valid), []string{"location/WH-2", "location/WH-1", "differs"}},
		{"bare id as key", "WH-1", marshal(t, valid), []string{"differs"}},
		{"merchant under a location key", "location/acme", marshal(t, merchantEvent(merchant("acme", 0, at(1)))), []string{"merchant/acme", "differs"}},
		{"location under a merchant key", "merchant/WH-1", marshal(t, valid), []string{"differs"}},
		{"merchant kind without merchant id", "location/M-1", marshal(t, locationEvent(&pb.LocationPolicy{
			Location: "M-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, AsOf: timestamppb.New(at(2)),
		})), []string{"merchant_id", "empty"}},
		{"merchant id on a warehouse", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{
			Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, MerchantId: "acme", AsOf: timestamppb.New(at(2)),
		})), []string{"merchant_id"}},
		{"bad channel", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{
			Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, Channels: []string{"web", "bad channel!"}, AsOf: timestamppb.New(at(2)),
		})), []string{"channel", "bad channel!"}},
		{"unspecified kind", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{Location: "WH-1", AsOf: timestamppb.New(at(2))})), []string{"kind"}},
		{"negative safety stock", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{
			Location: "WH-1", Kind: 1, SafetyStock: -1, AsOf: timestamppb.New(at(2)),
		})), []string{"safety_stock", "negative"}},
		{"missing as_of", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{Location: "WH-1", Kind: 1})), []string{"as_of", "missing"}},
		{"invalid as_of", "location/WH-1", marshal(t, locationEvent(&pb.LocationPolicy{
			Location: "WH-1", Kind: 1, AsOf: &timestamppb.Timestamp{Seconds: 1, Nanos: -1},
		})), []string{"malformed", "as_of"}},
		{"empty location id", "location/", marshal(t, locationEvent(&pb.LocationPolicy{Kind: 1, AsOf: timestamppb.New(at(2))})), []string{"location is empty"}},
		{"merchant ttl too long", "merchant/acme", marshal(t, merchantEvent(merchant("acme", inventory.MaxStaleAfter+time.Nanosecond, at(2)))), []string{"stale_after"}},
		{"negative merchant ttl", "merchant/acme", marshal(t, merchantEvent(merchant("acme", -time.Second, at(2)))), []string{"stale_after"}},
		{"invalid merchant ttl", "merchant/acme", marshal(t, merchantEvent(&pb.MerchantPolicy{
			MerchantId: "acme", StaleAfter: &durationpb.Duration{Seconds: 1, Nanos: -1}, AsOf: timestamppb.New(at(2)),
		})), []string{"malformed", "stale_after"}},
		{"merchant without id", "merchant/", marshal(t, merchantEvent(merchant("", 0, at(2)))), []string{"merchant_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.send(valid)
			h.send(merchantEvent(merchant("acme", time.Hour, at(1))))
			drain(h.changelog)
			keysBefore := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.PoliciesTable)))
			rawBefore := map[string][]byte{}
			for _, k := range keysBefore {
				rawBefore[k] = h.raw(k)
			}

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
			if !bytes.Equal(dl.GetValue(), tc.value) || string(dl.GetKey()) != tc.key {
				t.Errorf("dead letter key %q value %x, want the original %q %x", dl.GetKey(), dl.GetValue(), tc.key, tc.value)
			}
			if dl.GetTopic() != string(schema.Policies) || dl.GetGroup() != string(schema.PoliciesGroup) || dl.GetPartition() != 0 {
				t.Errorf("dead letter source %s/%d group %s", dl.GetTopic(), dl.GetPartition(), dl.GetGroup())
			}
			if want := h.input.Hwm() - 1; dl.GetOffset() != want {
				t.Errorf("dead letter offset %d, want %d", dl.GetOffset(), want)
			}
			if !dl.GetMessageTime().AsTime().Equal(msgTime) {
				t.Errorf("dead letter message_time %v, want %v", dl.GetMessageTime().AsTime(), msgTime)
			}

			h.expectQuiet("after the dead letter")
			keys := slices.Sorted(slices.Values(h.gkt.GetTableKeys(schema.PoliciesTable)))
			if !slices.Equal(keys, keysBefore) {
				t.Errorf("table keys %q, want %q", keys, keysBefore)
			}
			for _, k := range keysBefore {
				if !bytes.Equal(h.raw(k), rawBefore[k]) {
					t.Errorf("table[%q] changed", k)
				}
			}

			// The processor keeps working.
			next := warehouse("WH-1", at(3))
			next.Closed = true
			h.send(locationEvent(next))
			h.expectStored("valid policy after bad input", "location/WH-1", locationEvent(next))
		})
	}
}

// The table ends up the same whatever order the policies of one key arrive
// in, ties on as_of included (at-least-once delivery and replays reorder).
func TestFinalPolicyIndependentOfArrivalOrder(t *testing.T) {
	loc := func(asOf time.Time, mutate func(*pb.LocationPolicy)) *pb.PolicyEvent {
		p := warehouse("WH-1", asOf)
		mutate(p)
		return locationEvent(p)
	}
	evs := []*pb.PolicyEvent{
		loc(at(1), func(p *pb.LocationPolicy) { p.SafetyStock = 1 }),
		loc(at(2), func(p *pb.LocationPolicy) { p.Closed = true }),
		loc(at(2), func(p *pb.LocationPolicy) { p.SafetyStock = 5 }),
		loc(at(2), func(p *pb.LocationPolicy) { p.Channels = []string{"web", "marketplace"} }),
		loc(at(1), func(p *pb.LocationPolicy) { p.Channels = []string{"web"} }),
	}
	var first *pb.PolicyEvent
	for perm := range permutations(len(evs)) {
		h := start(t)
		for _, i := range perm {
			h.send(evs[i])
		}
		got := h.value("location/WH-1")
		if first == nil {
			first = got
			continue
		}
		if !proto.Equal(got, first) {
			t.Fatalf("order %v ends with %v, another order with %v", perm, got, first)
		}
	}
	if !first.GetLocation().GetAsOf().AsTime().Equal(at(2)) {
		t.Errorf("winner %v is not one of the newest", first)
	}
}

// permutations yields every permutation of 0..n-1 (Heap's algorithm).
func permutations(n int) func(func([]int) bool) {
	return func(yield func([]int) bool) {
		a := make([]int, n)
		for i := range a {
			a[i] = i
		}
		c := make([]int, n)
		if !yield(slices.Clone(a)) {
			return
		}
		for i := 0; i < n; {
			if c[i] < i {
				if i%2 == 0 {
					a[0], a[i] = a[i], a[0]
				} else {
					a[c[i]], a[i] = a[i], a[c[i]]
				}
				if !yield(slices.Clone(a)) {
					return
				}
				c[i]++
				i = 0
			} else {
				c[i] = 0
				i++
			}
		}
	}
}
