package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/feeds"
	feedservice "github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestServeViewMetrics: the serving role with the reservation and feeds
// APIs reports every view it runs (stock, policies, the availability view
// watchers follow, orders, the merchant registry) on the gateway's
// /metrics, each recovered with lag 0 once it has read a changelog written
// before it started; the gateway's request metrics are served there too.
func TestServeViewMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	em, err := goka.NewEmitter(k.Brokers, goka.Stream(schema.StockTable), schema.StateCodec, k.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		sku := fmt.Sprintf("SKU-VM-%02d", i)
		st, _, err := inventory.Apply(inventory.State{SKU: sku}, inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 5,
			AsOf: time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := em.EmitSync(sku, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}

	srv, err := app.NewServe(app.ServeOptions{Kafka: k, Base: testConfig, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Services: []app.ServiceFactory{
			app.Reservations(gateway.OrdersOptions{DefaultTTL: time.Hour, DecisionTimeout: time.Minute, Wait: time.Minute}),
			app.Feeds(feedservice.Options{Limits: feeds.DefaultLimits(), AdminToken: "admin-token-for-view-metrics-test", DefaultStaleAfter: time.Hour}),
		}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	for _, view := range []string{"stock", "policies", "availability", "orders", "registry"} {
		waitMetric(t, srv.HTTPAddr(), fmt.Sprintf(`skuflow_view_recovered{view=%q} 1`, view))
		waitMetric(t, srv.HTTPAddr(), fmt.Sprintf(`skuflow_view_lag_messages{view=%q} 0`, view))
	}

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewAvailabilityServiceClient(conn).GetAvailability(t.Context(), &pb.GetAvailabilityRequest{Sku: "SKU-VM-00"}); err != nil {
		t.Fatalf("gRPC GetAvailability: %v", err)
	}
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/v1/availability/SKU-VM-01")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST GetAvailability: %s", resp.Status)
	}
	waitMetric(t, srv.HTTPAddr(), `grpc_server_handled_total{grpc_code="OK",grpc_method="GetAvailability",grpc_service="skuflow.v1.AvailabilityService",grpc_type="unary"} 1`)
	waitMetric(t, srv.HTTPAddr(), `skuflow_http_requests_total{code="200",method="get",route="/v1/availability/{sku}"} 1`)
}
