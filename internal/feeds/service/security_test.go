package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func grpcConn(t *testing.T, s *stack) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(s.serve.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// TestSecurity covers authentication and authorization on REST and gRPC,
// and proves no token reaches the logs or an error.
func TestSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	s := startStack(t, stackOpts{kafka: b.Kafka, publish: true})
	tokA := s.createMerchant("MERCH-A", "A-1", "A-2")
	tokB := s.createMerchant("MERCH-B", "B-1")
	_, secretA, _ := registry.ParseToken(tokA)
	_, secretB, _ := registry.ParseToken(tokB)
	csv := "sku,location,on_hand\nSKU-1,A-1,5\n"

	t.Run("no token is 401", func(t *testing.T) {
		a := s.do("POST", "/v1/merchants/MERCH-A/feeds", "", "text/csv", strings.NewReader(csv))
		if a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("got %s, want 401 with WWW-Authenticate", a)
		}
		if a := s.do("GET", "/v1/merchants/MERCH-A/locations", "", "", nil); a.status != 401 {
			t.Fatalf("GET locations without token: %s", a)
		}
	})
	t.Run("wrong token is 401", func(t *testing.T) {
		for _, bad := range []string{"nonsense", "skf1.MERCH-A.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "skf1.NO-SUCH.x", adminToken} {
			if a := s.do("POST", "/v1/merchants/MERCH-A/feeds", bad, "text/csv", strings.NewReader(csv)); a.status != 401 {
				t.Errorf("token %q: got %s, want 401", bad, a)
			}
		}
	})
	t.Run("another merchant's token is 403", func(t *testing.T) {
		a := s.do("POST", "/v1/merchants/MERCH-B/feeds", tokA, "text/csv", strings.NewReader("sku,location,on_hand\nSKU-1,B-1,5\n"))
		if a.status != 403 {
			t.Fatalf("got %s, want 403", a)
		}
		if a := s.do("GET", "/v1/merchants/MERCH-B/locations", tokA, "", nil); a.status != 403 {
			t.Fatalf("GET B's locations with A's token: %s", a)
		}
		if a := s.do("GET", "/v1/merchants/NO-SUCH/locations", tokA, "", nil); a.status != 403 {
			t.Fatalf("GET an unknown merchant's locations with A's token: %s", a)
		}
	})
	t.Run("rows for locations the merchant does not own are rejected one by one", func(t *testing.T) {
		a, st := s.upload("MERCH-A", tokA, "text/csv", "sku,location,on_hand\nSKU-1,A-1,5\nSKU-1,B-1,7\nSKU-2,A-2,1\nSKU-2,WH-X,3\n")
		if a.status != 200 || st.GetAccepted() != 2 || st.GetRejected() != 2 {
			t.Fatalf("got %s, want 2 accepted and 2 rejected", a)
		}
		want := map[int32]string{3: `location "B-1" is not registered to merchant "MERCH-A"`, 5: `location "WH-X" is not registered to merchant "MERCH-A"`}
		for _, r := range st.GetRejectedRows() {
			if want[r.GetLine()] != r.GetReason() {
				t.Errorf("line %d: %q, want %q", r.GetLine(), r.GetReason(), want[r.GetLine()])
			}
		}
		// B cannot read A's feed, A can.
		if a := s.do("GET", "/v1/merchants/MERCH-B/feeds/"+st.GetFeedId(), tokB, "", nil); a.status != 404 {
			t.Errorf("B reading A's feed under B's URL: %s, want 404", a)
		}
		if got := s.feed("MERCH-A", tokA, st.GetFeedId()); got.GetAccepted() != 2 {
			t.Errorf("feed status: %v", got)
		}
	})
	t.Run("admin endpoints refuse merchant tokens", func(t *testing.T) {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v1/admin/merchants", ""},
			{"GET", "/v1/admin/merchants/MERCH-A", ""},
			{"POST", "/v1/admin/merchants", `{"merchantId":"EVIL"}`},
			{"POST", "/v1/admin/merchants/MERCH-A/locations", `{"locations":["B-1"]}`},
			{"POST", "/v1/admin/merchants/MERCH-A:rotateToken", `{}`},
			{"POST", "/v1/admin/outbox:republish", `{"sequence":"1"}`},
		} {
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			} else {
				body = strings.NewReader("")
			}
			if a := s.do(c.method, c.path, tokA, "application/json", body); a.status != 403 {
				t.Errorf("%s %s with a merchant token: %s, want 403", c.method, c.path, a)
			}
			if a := s.do(c.method, c.path, "", "application/json", strings.NewReader(c.body)); a.status != 401 {
				t.Errorf("%s %s without a token: %s, want 401", c.method, c.path, a)
			}
		}
	})
	t.Run("gRPC: metadata tokens", func(t *testing.T) {
		cc := grpcConn(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		feedsC := pb.NewFeedServiceClient(cc)
		upload := func(ctx context.Context, merchant string) (*pb.FeedStatus, error) {
			st, err := feedsC.UploadFeed(ctx)
			if err != nil {
				return nil, err
			}
			if err := st.Send(&pb.UploadFeedRequest{Merchant: merchant, Rows: []*pb.FeedRow{{Sku: "SKU-9", Location: "A-1", OnHand: 3}, {Sku: "SKU-9", Location: "B-1", OnHand: 3}}}); err != nil {
				return nil, err
			}
			return st.CloseAndRecv()
		}
		if _, err := upload(ctx, "MERCH-A"); status.Code(err) != codes.Unauthenticated {
			t.Errorf("no metadata: %v", err)
		}
		if _, err := upload(withToken(ctx, tokB), "MERCH-A"); status.Code(err) != codes.PermissionDenied {
			t.Errorf("B's token for A: %v", err)
		}
		got, err := upload(withToken(ctx, tokA), "MERCH-A")
		if err != nil || got.GetAccepted() != 1 || got.GetRejected() != 1 || got.GetRejectedRows()[0].GetLine() != 2 {
			t.Errorf("A's upload: %v, %v", got, err)
		}
		reg := pb.NewRegistryServiceClient(cc)
		if _, err := reg.ListMerchants(withToken(ctx, tokA), &pb.ListMerchantsRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("admin RPC with a merchant token: %v", err)
		}
		if _, err := reg.ListMerchants(ctx, &pb.ListMerchantsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("admin RPC without a token: %v", err)
		}
		if l, err := reg.ListMerchants(withToken(ctx, adminToken), &pb.ListMerchantsRequest{}); err != nil || len(l.GetMerchants()) != 2 {
			t.Errorf("admin RPC with the admin token: %v, %v", l, err)
		}
	})
	t.Run("rotated tokens stop working", func(t *testing.T) {
		var out pb.MerchantToken
		if a := s.admin("POST", "/v1/admin/merchants/MERCH-B:rotateToken", &pb.RotateTokenRequest{}, &out); a.status != 200 {
			t.Fatal(a)
		}
		if a := s.do("GET", "/v1/merchants/MERCH-B/locations", tokB, "", nil); a.status != 401 {
			t.Errorf("old token after rotation: %s", a)
		}
		if a := s.do("GET", "/v1/merchants/MERCH-B/locations", out.GetToken(), "", nil); a.status != 200 {
			t.Errorf("new token after rotation: %s", a)
		}
		tokB = out.GetToken()
	})
	t.Run("location owned by another merchant cannot be added", func(t *testing.T) {
		a := s.admin("POST", "/v1/admin/merchants/MERCH-B/locations", &pb.LocationsRequest{Locations: []string{"A-1"}}, nil)
		if a.status != 400 || !strings.Contains(string(a.body), `owned by merchant \"MERCH-A\"`) {
			t.Errorf("got %s", a)
		}
	})

	// Give every log line a chance to land, then look for secrets.
	s.stop()
	logs := s.logs.String()
	if !strings.Contains(logs, "feed received") || !strings.Contains(logs, "merchant registry changed") {
		t.Fatalf("the log capture saw nothing; it proves nothing:\n%s", logs)
	}
	_, secretB2, _ := registry.ParseToken(tokB)
	for name, secret := range map[string]string{"admin token": adminToken, "A's secret": secretA, "B's old secret": secretB, "B's secret": secretB2} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in the logs", name)
		}
	}
}
