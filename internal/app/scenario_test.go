package app_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// TestEveryFactorEndToEnd exercises every supply factor at once through the
// embedded broker: an owned warehouse with a SKU safety-stock override, a
// store with floor and back room, two merchants of which one went stale, a
// warehouse barred from a channel, a closed location, a sales cap, a channel
// the SKU may not be sold on and a backorder limit. The gateway's answer and
// the availability topic must equal the pure rules' answer, both at once
// and after a policy change and a merchant going stale with no new events.
func TestEveryFactorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	cfg := inventory.Base{Channels: []string{"marketplace", "store-pickup", "web"}, DefaultStaleAfter: time.Hour}
	b := testkit.StartBroker(t)
	k := b.Kafka
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: cfg, DataDir: t.TempDir(), ReconcileEvery: 200 * time.Millisecond, Coalescing: app.DefaultCoalescing})
	})
	_, client := serve(t, k, cfg)
	published := availabilityView(t, k)

	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	const sku = "SKU-E2E"
	// Merchant A's stock turns stale 4s from now: its level is 1h-4s old and
	// the default TTL is 1h. Merchant B's TTL is 10 minutes: stale already.
	locs := []*pb.LocationPolicy{
		{Location: "WH-1", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, SafetyStock: 2, AsOf: ts(-time.Hour)},
		{Location: "WH-2", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, Channels: []string{"web"}, AsOf: ts(-time.Hour)},
		{Location: "WH-CLOSED", Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, Closed: true, AsOf: ts(-time.Hour)},
		{Location: "STORE-1", Kind: pb.LocationKind_LOCATION_KIND_STORE, Channels: []string{"store-pickup"}, SafetyStock: 1, AsOf: ts(-time.Hour)},
		{Location: "M-A-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "M-A", Channels: []string{"marketplace"}, AsOf: ts(-time.Hour)},
		{Location: "M-B-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "M-B", Channels: []string{"marketplace"}, AsOf: ts(-time.Hour)},
	}
	var policyMsgs []proto.Message
	for _, l := range locs {
		policyMsgs = append(policyMsgs, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: l}})
	}
	policyMsgs = append(policyMsgs, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{
		MerchantId: "M-B", StaleAfter: durationpb.New(10 * time.Minute), AsOf: ts(-time.Hour)}}})
	skuPolicies := []inventory.Event{
		inventory.SalesCap{SKU: sku, Channel: "web", Limit: 30, WindowStart: now.Add(-time.Hour), WindowEnd: now.Add(time.Hour), AsOf: now.Add(-time.Hour)},
		inventory.SafetyStockOverride{SKU: sku, Location: "WH-1", Units: 5, AsOf: now.Add(-time.Hour)},
		inventory.ChannelEligibility{SKU: sku, Channel: "store-pickup", Sellable: true, AsOf: now.Add(-time.Hour)},
		inventory.BackorderLimit{SKU: sku, Limit: 7, AsOf: now.Add(-time.Hour)},
	}
	supply := []inventory.Event{
		inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 40, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
		inventory.StockAdjustment{EventID: "e2e-1", SKU: sku, Location: "WH-1", Delta: -3, OccurredAt: now.Add(-20 * time.Minute)},
		inventory.StockLevel{SKU: sku, Location: "WH-2", OnHand: 12, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
		inventory.StockLevel{SKU: sku, Location: "WH-CLOSED", OnHand: 100, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
		inventory.StockLevel{SKU: sku, Location: "STORE-1", Area: inventory.AreaFloor, OnHand: 4, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
		inventory.StockLevel{SKU: sku, Location: "STORE-1", Area: inventory.AreaBackroom, OnHand: 6, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
		inventory.StockLevel{SKU: sku, Location: "M-A-1", OnHand: 20, AsOf: now.Add(-time.Hour + 4*time.Second), Sequence: 1},
		inventory.StockLevel{SKU: sku, Location: "M-B-1", OnHand: 50, AsOf: now.Add(-30 * time.Minute), Sequence: 1},
	}
	emitMessages(t, k, string(schema.Policies), policyMsgs...)
	emitEvents(t, k, string(schema.SkuPolicies), skuPolicies)
	emitEvents(t, k, string(schema.Supply), supply)

	// The pure rules' answer, from the same events.
	state := fold(t, append(append([]inventory.Event{}, skuPolicies...), supply...))
	pol := cfg.Policies()
	pol.Locations = map[string]inventory.LocationPolicy{}
	pol.Merchants = map[string]inventory.MerchantPolicy{"M-B": {MerchantID: "M-B", StaleAfter: 10 * time.Minute, AsOf: now.Add(-time.Hour)}}
	for _, l := range locs {
		p, err := codecs.LocationPolicyFromProto(l)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err = inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p)
		if err != nil {
			t.Fatal(err)
		}
		pol.Locations[l.GetLocation()] = p
	}
	wantAt := func(at time.Time) *pb.Availability { return codecs.SnapshotToProto(inventory.Evaluate(state, pol, at)) }

	// Hand-checked numbers, independent of Evaluate:
	//   WH-1: 40-3 = 37, safety override 5 -> 32 usable, every channel
	//   WH-2: 12, web only; WH-CLOSED: nothing; STORE-1: 4+6-1 = 9, store-pickup only
	//   M-A-1: 20 until it goes stale, marketplace only; M-B-1: stale
	//   web = min(32+12, cap 30) = 30; marketplace = 32+20 = 52; store-pickup = 32+9 = 41
	hand := map[string]int64{"web": 30, "marketplace": 52, "store-pickup": 41}
	var got *pb.Availability
	testkit.Eventually(t, 30*time.Second, func() error {
		var err error
		got, err = client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
		if err != nil {
			return err
		}
		if w := wantAt(got.GetEvaluatedAt().AsTime()); !proto.Equal(got, w) {
			return fmt.Errorf("answer\n got %v\nwant %v", got, w)
		}
		return nil
	})
	if got.GetOnHand() != 37+12+100+10+20+50 {
		t.Errorf("on hand %d, want %d", got.GetOnHand(), 37+12+100+10+20+50)
	}
	for _, c := range got.GetChannels() {
		if c.GetAvailable() != hand[c.GetChannel()] {
			t.Errorf("%s available %d, want %d (hand-checked)", c.GetChannel(), c.GetAvailable(), hand[c.GetChannel()])
		}
		if c.GetChannel() == "web" && (c.CapRemaining == nil || c.GetCapRemaining() != 30 || c.GetBackorderable() != 0) {
			t.Errorf("web: cap remaining %v, backorderable %d; want 30 and 0 (the cap binds)", c.CapRemaining, c.GetBackorderable())
		}
		if c.GetChannel() == "marketplace" && c.GetBackorderable() != 7 {
			t.Errorf("marketplace backorderable %d, want 7", c.GetBackorderable())
		}
	}
	// The topic carries the same answer.
	checkPublished(t, published, sku, wantAt)

	// Merchant A goes stale with no new events: the query reflects it at read
	// time, and the reconciler brings the topic up to date.
	staleAt := now.Add(4 * time.Second)
	testkit.Eventually(t, 30*time.Second, func() error {
		got, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
		if err != nil {
			return err
		}
		if !got.GetEvaluatedAt().AsTime().After(staleAt) {
			return fmt.Errorf("not yet stale at %s", got.GetEvaluatedAt().AsTime())
		}
		for _, c := range got.GetChannels() {
			if c.GetChannel() == "marketplace" && c.GetAvailable() != 32 {
				return fmt.Errorf("marketplace available %d after merchant A went stale, want 32", c.GetAvailable())
			}
		}
		return nil
	})
	checkPublished(t, published, sku, wantAt)

	// Closing WH-1 drops its stock from every channel, without a SKU event.
	closed := proto.Clone(locs[0]).(*pb.LocationPolicy)
	closed.Closed, closed.AsOf = true, ts(0)
	emitMessages(t, k, string(schema.Policies), &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: closed}})
	p, err := codecs.LocationPolicyFromProto(closed)
	if err != nil {
		t.Fatal(err)
	}
	pol.Locations["WH-1"], _, _ = inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p)
	start := time.Now()
	checkPublished(t, published, sku, wantAt)
	t.Logf("availability topic caught up %s after the location closed", time.Since(start).Round(time.Millisecond))
	got, err = client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got.GetChannels() {
		want := map[string]int64{"web": 12, "marketplace": 0, "store-pickup": 9}[c.GetChannel()]
		if c.GetAvailable() != want {
			t.Errorf("after closing WH-1: %s available %d, want %d", c.GetChannel(), c.GetAvailable(), want)
		}
	}
}

// checkPublished waits until the availability topic's latest answer for sku
// equals the pure answer at the time it was evaluated.
func checkPublished(t *testing.T, v *views.Availability, sku string, want func(time.Time) *pb.Availability) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, func() error {
		got, err := v.Get(sku)
		if err != nil {
			return err
		}
		if got == nil {
			return fmt.Errorf("nothing published for %s", sku)
		}
		if w := want(time.Now()); got.GetVersion() != w.GetVersion() {
			return fmt.Errorf("published version %s, current answer %s:\n got %v\nwant %v", got.GetVersion(), w.GetVersion(), got, w)
		}
		if w := want(got.GetEvaluatedAt().AsTime()); !proto.Equal(got, w) {
			return fmt.Errorf("published\n got %v\nwant %v", got, w)
		}
		return nil
	})
}

func availabilityView(t *testing.T, k kafkaOpts) *views.Availability {
	t.Helper()
	v, err := views.NewAvailability(k.Brokers, append(k.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, v.Run)
	return v
}

func fold(t *testing.T, evs []inventory.Event) inventory.State {
	t.Helper()
	var s inventory.State
	for _, e := range evs {
		var err error
		if s, _, err = inventory.Apply(s, e, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func emitEvents(t *testing.T, k kafkaOpts, topic string, evs []inventory.Event) {
	t.Helper()
	var msgs []proto.Message
	for _, e := range evs {
		var m proto.Message
		var err error
		if topic == string(schema.Supply) {
			m, err = codecs.SupplyEventToProto(e)
		} else {
			m, err = codecs.SkuPolicyEventToProto(e)
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	emitMessages(t, k, topic, msgs...)
}

func emitMessages(t *testing.T, k kafkaOpts, topic string, msgs ...proto.Message) {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range msgs {
		line, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	sum, err := emit.Emit(context.Background(), emit.Options{Kafka: k, Topic: topic, Input: &buf})
	if err != nil || sum.Emitted != len(msgs) {
		t.Fatalf("emit to %s: %d of %d: %v", topic, sum.Emitted, len(msgs), err)
	}
}
