package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// startChannelStack is startStack with the processors and the three
// channels of the README (marketplace, store-pickup, web).
func startChannelStack(t *testing.T) *stack {
	t.Helper()
	return startChannelStackOn(t, testkit.StartBroker(t).Kafka, []string{"marketplace", "store-pickup", "web"}, true)
}

// startChannelStackOn runs a gateway with the feeds service configured for
// channels against the cluster, and the processors if asked.
func startChannelStackOn(t *testing.T, k kafkacfg.Options, channels []string, processors bool) *stack {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	data := t.TempDir()
	cfg := inventory.Base{Channels: channels, DefaultStaleAfter: 24 * time.Hour}
	f := app.Feeds(service.Options{Limits: testLimits(), AdminToken: adminToken, DefaultStaleAfter: cfg.DefaultStaleAfter, Publish: true})
	s, err := app.NewServe(app.ServeOptions{Kafka: k, Base: cfg, DataDir: data, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: log, Services: []app.ServiceFactory{f}})
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, kafka: k, serve: s, base: "http://" + s.HTTPAddr(), logs: logs}
	st.stop = testkit.Go(t, s.Run)
	if processors {
		stopP := testkit.Go(t, func(ctx context.Context) error {
			return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: cfg, DataDir: data, Logger: log})
		})
		prev := st.stop
		st.stop = func() { stopP(); prev() }
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(st.base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("gateway not ready: %d", resp.StatusCode)
		}
		return nil
	})
	return st
}

// available reads the SKU's availability per channel from the gateway.
func (s *stack) available(sku string) (map[string]int64, error) {
	a := s.do("GET", "/v1/availability/"+sku, "", "", nil)
	if a.status != 200 {
		return nil, fmt.Errorf("GET availability %s: %s", sku, a)
	}
	var av pb.Availability
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(a.body, &av); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, c := range av.GetChannels() {
		out[c.GetChannel()] = c.GetAvailable()
	}
	return out, nil
}

// waitAvailable waits until the SKU's availability is want on every
// channel.
func (s *stack) waitAvailable(sku string, want map[string]int64) {
	s.t.Helper()
	testkit.Eventually(s.t, 60*time.Second, func() error {
		got, err := s.available(sku)
		if err != nil {
			return err
		}
		for ch, n := range want {
			if got[ch] != n {
				return fmt.Errorf("%s: available %v, want %v", sku, got, want)
			}
		}
		return nil
	})
}

func channelsOf(m *pb.Merchant) map[string]string {
	out := map[string]string{}
	for _, lc := range m.GetLocationChannels() {
		out[lc.GetLocation()] = strings.Join(lc.GetChannels(), ",")
	}
	return out
}

// TestMerchantFeedCountsOnItsChannelsOnly: a merchant created through the
// admin API without channels serves the marketplace only, so its feed
// moves marketplace availability and leaves store-pickup and web as the
// owned warehouse makes them; channels given with AddLocations widen exactly
// the locations listed, over REST and gRPC alike.
func TestMerchantFeedCountsOnItsChannelsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startChannelStack(t)
	const sku = "SKU-CH-1"

	// An owned warehouse (no location policy: every channel) holds 40.
	em, err := goka.NewEmitter(s.kafka.Brokers, schema.Supply, schema.SupplyCodec, s.kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	lvl := &pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{Sku: sku, Location: "WH-1", OnHand: 40, AsOf: timestamppb.Now(), Sequence: 1}}}
	if err := em.EmitSync(sku, lvl); err != nil {
		t.Fatal(err)
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 40, "store-pickup": 40, "web": 40})

	// Bad channels are refused, naming the channel; nothing is created.
	a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Locations: []string{"MX-1"}, Channels: []string{"marketplace", "Store Pickup"}}, nil)
	if a.status != 400 || !strings.Contains(errorMessage(t, a), `channel "Store Pickup"`) {
		t.Fatalf("create with a bad channel: %s, want 400 naming the channel", a)
	}
	a = s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Channels: []string{"web"}}, nil)
	if a.status != 400 || !strings.Contains(errorMessage(t, a), "channels apply to the locations") {
		t.Fatalf("create with channels and no locations: %s, want 400", a)
	}
	if a := s.admin("GET", "/v1/admin/merchants/MX", nil, nil); a.status != 404 {
		t.Fatalf("a refused create left merchant MX: %s", a)
	}

	// Created without channels: marketplace only.
	var created pb.MerchantToken
	if a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Locations: []string{"MX-1"}}, &created); a.status != 200 {
		t.Fatalf("create merchant: %s", a)
	}
	if got := channelsOf(created.GetMerchant()); got["MX-1"] != "marketplace" || len(got) != 1 {
		t.Fatalf("created merchant's channels %v, want MX-1 on marketplace", got)
	}
	tok := created.GetToken()
	if a, st := s.upload("MX", tok, "text/csv", "sku,location,on_hand\n"+sku+",MX-1,12\n"); a.status != 200 || st.GetAccepted() != 1 {
		t.Fatalf("feed: %s", a)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 52, "store-pickup": 40, "web": 40})

	// gRPC: MX-2 on marketplace and web.
	ctx := withToken(context.Background(), adminToken)
	reg := pb.NewRegistryServiceClient(grpcConn(t, s))
	m, err := reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-2"}, Channels: []string{"web", "marketplace"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := channelsOf(m); got["MX-1"] != "marketplace" || got["MX-2"] != "marketplace,web" {
		t.Fatalf("after adding MX-2: %v", got)
	}
	if a, st := s.upload("MX", tok, "text/csv", "sku,location,on_hand\n"+sku+",MX-2,5\n"); a.status != 200 || st.GetAccepted() != 1 {
		t.Fatalf("feed: %s", a)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 57, "store-pickup": 40, "web": 45})

	// Widening MX-1 to store pickup moves its 12 units there without any
	// new stock data; repeating the call changes nothing.
	for range 2 {
		m, err = reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-1"}, Channels: []string{"marketplace", "store-pickup"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := channelsOf(m); got["MX-1"] != "marketplace,store-pickup" || got["MX-2"] != "marketplace,web" {
		t.Fatalf("after widening MX-1: %v", got)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 57, "store-pickup": 52, "web": 45})

	// Bad input over gRPC: InvalidArgument naming the channel, and channels
	// on a removal are refused rather than ignored.
	_, err = reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-3"}, Channels: []string{"web", ""}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "channel is empty") {
		t.Errorf("add with an empty channel: %v", err)
	}
	_, err = reg.RemoveLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-2"}, Channels: []string{"web"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("remove with channels: %v, want InvalidArgument", err)
	}
	got, err := reg.GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: "MX"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.GetLocations(), []string{"MX-1", "MX-2"}) || got.GetVersion() != m.GetVersion() {
		t.Errorf("refused calls changed the merchant: %v (was version %d)", got, m.GetVersion())
	}
}

// TestLegacyMerchantUpgradesToMarketplaceOnly: a registry entry written
// before the registry kept channels, with the channel-less location policy
// the registry published then (every channel), that appears after the
// gateway started (its one upgrade pass ran before /readyz; see
// TestLegacyMerchantRepublishedAtStart for entries there at the start), is
// read as marketplace-only, and the merchant's next write republishes its
// locations so: the feed's units leave store-pickup and web.
func TestLegacyMerchantUpgradesToMarketplaceOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startChannelStack(t)
	const sku = "SKU-CH-2"
	at := time.Now().Add(-time.Hour).UTC()
	token, hash, err := registry.NewToken("OLD")
	if err != nil {
		t.Fatal(err)
	}
	legacy := &pb.RegistryEntry{MerchantId: "OLD", Locations: []string{"OLD-1"}, Version: 1, UpdatedAt: timestamppb.New(at),
		Tokens: []*pb.TokenHash{{Sha256: hash, CreatedAt: timestamppb.New(at)}}}
	pol := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "OLD-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "OLD", AsOf: timestamppb.New(at)}}}
	polKey, err := schema.PolicyKey(pol)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := goka.NewEmitter(s.kafka.Brokers, schema.Policies, schema.PolicyEventCodec, s.kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pem.EmitSync(polKey, pol); err != nil {
		t.Fatal(err)
	}
	if err := pem.Finish(); err != nil {
		t.Fatal(err)
	}
	rem, err := goka.NewEmitter(s.kafka.Brokers, goka.Stream(schema.MerchantRegistry), schema.RegistryCodec, s.kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rem.EmitSync("OLD", legacy); err != nil {
		t.Fatal(err)
	}
	if err := rem.Finish(); err != nil {
		t.Fatal(err)
	}

	// Read as marketplace-only by the admin API.
	var m pb.Merchant
	testkit.Eventually(t, 30*time.Second, func() error {
		if a := s.admin("GET", "/v1/admin/merchants/OLD", nil, &m); a.status != 200 {
			return fmt.Errorf("get legacy merchant: %s", a)
		}
		return nil
	})
	if got := channelsOf(&m); got["OLD-1"] != "marketplace" || len(got) != 1 {
		t.Fatalf("legacy merchant's channels %v, want OLD-1 on marketplace", got)
	}
	// Its old policy still counts the feed everywhere...
	if a, st := s.upload("OLD", token, "text/csv", "sku,location,on_hand\n"+sku+",OLD-1,7\n"); a.status != 200 || st.GetAccepted() != 1 {
		t.Fatalf("feed: %s", a)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 7, "store-pickup": 7, "web": 7})
	// ...until the merchant's next write records and republishes the default.
	var after pb.Merchant
	if a := s.admin("POST", "/v1/admin/merchants/OLD/locations", &pb.LocationsRequest{MerchantId: "OLD", Locations: []string{"OLD-1"}}, &after); a.status != 200 {
		t.Fatalf("add-location: %s", a)
	}
	if got := channelsOf(&after); got["OLD-1"] != "marketplace" || after.GetVersion() != 2 {
		t.Fatalf("after the write: %v", &after)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 7, "store-pickup": 0, "web": 0})
}

// publishLegacy writes, as a gateway from before the registry kept channels
// did, merchant OLD's entry owning OLD-1 and OLD-1's channel-less policy
// (every channel), both as of at; it returns OLD's token.
func publishLegacy(t *testing.T, k kafkacfg.Options, at time.Time) string {
	t.Helper()
	token, hash, err := registry.NewToken("OLD")
	if err != nil {
		t.Fatal(err)
	}
	legacy := &pb.RegistryEntry{MerchantId: "OLD", Locations: []string{"OLD-1"}, Version: 1, UpdatedAt: timestamppb.New(at),
		Tokens: []*pb.TokenHash{{Sha256: hash, CreatedAt: timestamppb.New(at)}}}
	pol := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: "OLD-1", Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: "OLD", AsOf: timestamppb.New(at)}}}
	polKey, err := schema.PolicyKey(pol)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := goka.NewEmitter(k.Brokers, schema.Policies, schema.PolicyEventCodec, k.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pem.EmitSync(polKey, pol); err != nil {
		t.Fatal(err)
	}
	if err := pem.Finish(); err != nil {
		t.Fatal(err)
	}
	rem, err := goka.NewEmitter(k.Brokers, goka.Stream(schema.MerchantRegistry), schema.RegistryCodec, k.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rem.EmitSync("OLD", legacy); err != nil {
		t.Fatal(err)
	}
	if err := rem.Finish(); err != nil {
		t.Fatal(err)
	}
	return token
}

// TestLegacyMerchantRepublishedAtStart: a legacy entry and its
// channel-less policy (every channel) on the cluster before the gateway
// starts; once the registry has recovered it records the default and
// republishes the location as marketplace-only, without any admin change,
// so the merchant's feed counts on marketplace only. A second gateway
// instance starting later finds nothing left to do.
func TestLegacyMerchantRepublishedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	token := publishLegacy(t, b.Kafka, time.Now().Add(-time.Hour).UTC())
	s := startChannelStackOn(t, b.Kafka, []string{"marketplace", "store-pickup", "web"}, true)
	const sku = "SKU-CH-3"

	// Recorded by the registry itself (version 2), no admin call made.
	var m pb.Merchant
	testkit.Eventually(t, 30*time.Second, func() error {
		if a := s.admin("GET", "/v1/admin/merchants/OLD", nil, &m); a.status != 200 {
			return fmt.Errorf("get legacy merchant: %s", a)
		}
		if m.GetVersion() != 2 {
			return fmt.Errorf("legacy merchant at version %d, want 2 (upgraded)", m.GetVersion())
		}
		return nil
	})
	if got := channelsOf(&m); got["OLD-1"] != "marketplace" || len(got) != 1 {
		t.Fatalf("upgraded merchant's channels %v, want OLD-1 on marketplace", got)
	}
	// The seeder logs once it has the writer's answer, which may come after
	// the upgraded entry is visible.
	testkit.Eventually(t, 30*time.Second, func() error {
		if logs := s.logs.String(); !strings.Contains(logs, "the merchant registry writer took the registry") || !strings.Contains(logs, "merchants=1") || !strings.Contains(logs, "upgraded 1") {
			return fmt.Errorf("no log of the republish:\n%s", logs)
		}
		return nil
	})
	if a, st := s.upload("OLD", token, "text/csv", "sku,location,on_hand\n"+sku+",OLD-1,7\n"); a.status != 200 || st.GetAccepted() != 1 {
		t.Fatalf("feed: %s", a)
	}
	s.waitAvailable(sku, map[string]int64{"marketplace": 7, "store-pickup": 0, "web": 0})

	// Once: another instance starting on the same cluster upgrades nothing.
	s2 := startChannelStackOn(t, b.Kafka, []string{"marketplace", "store-pickup", "web"}, false)
	if strings.Contains(s2.logs.String(), "took the registry") {
		t.Errorf("second instance republished again:\n%s", s2.logs.String())
	}
	if a := s2.admin("GET", "/v1/admin/merchants/OLD", nil, &m); a.status != 200 || m.GetVersion() != 2 {
		t.Errorf("after a second instance started: %s (version %d, want 2)", a, m.GetVersion())
	}
}

// TestChannelsMustBeConfigured: on a deployment serving store-pickup and
// web only, channels it does not serve are refused naming the configured
// ones, and so is a location given no channels (its default, marketplace,
// would count toward nothing); an owned location re-added without channels
// keeps its own.
func TestChannelsMustBeConfigured(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	s := startChannelStackOn(t, testkit.StartBroker(t).Kafka, []string{"store-pickup", "web"}, false)
	a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Locations: []string{"MX-1"}, Channels: []string{"Web"}}, nil)
	if msg := errorMessage(t, a); a.status != 400 || !strings.Contains(msg, `channel "Web" is not configured`) || !strings.Contains(msg, "store-pickup, web") {
		t.Fatalf("create on an unconfigured channel: %s, want 400 naming it and the configured channels", a)
	}
	a = s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Locations: []string{"MX-1"}}, nil)
	if msg := errorMessage(t, a); a.status != 400 || !strings.Contains(msg, `default channel "marketplace" is not configured`) {
		t.Fatalf("create without channels and no marketplace: %s, want 400", a)
	}
	if a := s.admin("GET", "/v1/admin/merchants/MX", nil, nil); a.status != 404 {
		t.Fatalf("a refused create left merchant MX: %s", a)
	}
	if a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "MX", Locations: []string{"MX-1"}, Channels: []string{"web"}}, nil); a.status != 200 {
		t.Fatalf("create on web: %s", a)
	}

	ctx := withToken(context.Background(), adminToken)
	reg := pb.NewRegistryServiceClient(grpcConn(t, s))
	_, err := reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-2"}, Channels: []string{"mobile"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `channel "mobile" is not configured`) {
		t.Errorf("add on an unconfigured channel: %v", err)
	}
	_, err = reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-1", "MX-2"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "location(s) MX-2") {
		t.Errorf("add a new location without channels: %v", err)
	}
	m, err := reg.AddLocations(ctx, &pb.LocationsRequest{MerchantId: "MX", Locations: []string{"MX-1"}})
	if err != nil {
		t.Fatalf("re-add an owned location without channels: %v", err)
	}
	if got := channelsOf(m); got["MX-1"] != "web" || len(got) != 1 || m.GetVersion() != 2 {
		t.Errorf("after re-adding MX-1: %v", m)
	}
}
