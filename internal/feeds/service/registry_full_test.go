package service_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestRegistryTooBigIsLoud: a merchant-registry topic holding more than the
// registry writer can take in one message (written before the writer
// existed) cannot be given to the writer. The gateway says so loudly: an
// error in its log naming the size, and admin changes answer at once with
// FAILED_PRECONDITION naming it, instead of UNAVAILABLE after a long wait.
// Reads and feed uploads still work.
func TestRegistryTooBigIsLoud(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.MerchantRegistry), schema.RegistryCodec, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(time.Now().Add(-time.Hour))
	token, hash, err := registry.NewToken("BIG-0000")
	if err != nil {
		t.Fatal(err)
	}
	const merchants = registry.MaxEntriesBytes/(500*59) + 2 // some 59 bytes a location
	for m := range merchants {
		e := &pb.RegistryEntry{MerchantId: fmt.Sprintf("BIG-%04d", m), Version: 1, UpdatedAt: at, Tokens: []*pb.TokenHash{{Sha256: hash, CreatedAt: at}}}
		for i := range 500 {
			l := fmt.Sprintf("BIG-%04d-%011d", m, i)
			e.Locations = append(e.Locations, l)
			e.LocationChannels = append(e.LocationChannels, &pb.LocationChannels{Location: l, Channels: []string{"marketplace"}})
		}
		if err := em.EmitSync(e.GetMerchantId(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatal(err)
	}

	s := startStack(t, stackOpts{kafka: b.Kafka})
	a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: "NEW", Locations: []string{"NEW-1"}}, nil)
	if a.status != 400 || !strings.Contains(string(a.body), "full") || !strings.Contains(string(a.body), "bytes") || !strings.Contains(string(a.body), `"code":9`) {
		t.Fatalf("create while the registry is too big: %s, want 400 FAILED_PRECONDITION (code 9) naming the size", a)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "too big") {
		t.Fatalf("no error logged:\n%s", logs)
	}
	// Reads still work, from the view.
	if a := s.admin("GET", "/v1/admin/merchants/BIG-0000", nil, nil); a.status != 200 {
		t.Fatalf("get: %s", a)
	}
	if a, st := s.upload("BIG-0000", token, "text/csv", "sku,location,on_hand\nSKU-1,BIG-0000-00000000001,3\n"); a.status != 200 || st.GetAccepted() != 1 {
		t.Fatalf("upload: %s", a)
	}
}
