package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestAdminRefusesOwnedLocations: the admin API cannot give a merchant an
// owned warehouse (configured through the policies topic) or another
// merchant's location: FAILED_PRECONDITION naming the owner, and nothing
// changes.
func TestAdminRefusesOwnedLocations(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	em, err := goka.NewEmitter(b.Kafka.Brokers, schema.Policies, schema.PolicyEventCodec, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	wh := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{Location: "WH-9",
		Kind: pb.LocationKind_LOCATION_KIND_WAREHOUSE, AsOf: timestamppb.New(time.Now().Add(-time.Hour))}}}
	if err := em.EmitSync(schema.LocationKey("WH-9"), wh); err != nil {
		t.Fatal(err)
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}
	cfg := inventory.Base{Channels: []string{"marketplace", "web"}, DefaultStaleAfter: 24 * time.Hour}
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: b.Kafka, Base: cfg, DataDir: t.TempDir()})
	})
	// The gateway's registry writer recovers the policies table before it
	// applies a command: start it once the warehouse is in the table.
	pv, err := goka.NewView(b.Kafka.Brokers, schema.PoliciesTable, schema.PolicyCodec, append(b.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, pv.Run)
	testkit.Eventually(t, 30*time.Second, func() error {
		if v, err := pv.Get(schema.LocationKey("WH-9")); err != nil || v == nil {
			return fmt.Errorf("WH-9 not in the policies table yet (%v)", err)
		}
		return nil
	})
	s := startStack(t, stackOpts{kafka: b.Kafka})

	refused := func(a answer, want string) {
		t.Helper()
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(a.body, &e); err != nil || a.status != 400 || codes.Code(e.Code) != codes.FailedPrecondition || !strings.Contains(e.Message, want) {
			t.Fatalf("got %s, want 400 FAILED_PRECONDITION saying %q", a, want)
		}
	}
	refused(s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "WHM-A", Locations: []string{"WHM-A-1", "WH-9"}}, nil),
		`location "WH-9" is an owned warehouse`)
	if a := s.admin("GET", "/v1/admin/merchants/WHM-A", nil, nil); a.status != 404 {
		t.Fatalf("the refused merchant: %s", a)
	}
	s.createMerchant("WHM-B", "WHM-B-1")
	refused(s.admin("POST", "/v1/admin/merchants/WHM-B/locations", &pb.LocationsRequest{MerchantId: "WHM-B", Locations: []string{"WH-9"}}, nil),
		`location "WH-9" is an owned warehouse`)
	s.createMerchant("WHM-C", "WHM-C-1")
	refused(s.admin("POST", "/v1/admin/merchants/WHM-C/locations", &pb.LocationsRequest{MerchantId: "WHM-C", Locations: []string{"WHM-B-1"}}, nil),
		`location "WHM-B-1" is owned by merchant "WHM-B"`)
	var m pb.Merchant
	if a := s.admin("GET", "/v1/admin/merchants/WHM-B", nil, &m); a.status != 200 || len(m.GetLocations()) != 1 {
		t.Fatalf("WHM-B after the refusals: %s", a)
	}
}
