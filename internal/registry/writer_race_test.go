package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/policies"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// startRegistry runs one registry instance (as one gateway does) on the
// cluster and waits until it serves lookups.
func startRegistry(t *testing.T, k kafkacfg.Options) *registry.Registry {
	t.Helper()
	r, err := registry.New(registry.Options{Kafka: k, DataDir: t.TempDir(), Channels: []string{"marketplace", "web"}, WaitVisible: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, r.Run)
	testkit.Eventually(t, 30*time.Second, func() error {
		if !r.Ready() {
			return errors.New("registry not ready")
		}
		return nil
	})
	return r
}

// TestConcurrentAdminWritesThroughTwoInstances races admin writes through
// two registry instances (two gateways) on one cluster: many goroutines
// add distinct locations to one merchant, and two merchants claim the same
// locations at once. Nothing is lost, every contested location ends with
// exactly one owner, the one whose write succeeded, and both instances
// agree. The registry before the single writer (a read-modify-write over
// each instance's view) lost additions and gave locations to both.
func TestConcurrentAdminWritesThroughTwoInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	regs := []*registry.Registry{startRegistry(t, b.Kafka), startRegistry(t, b.Kafka)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, m := range []string{"RACE-A", "RACE-B"} {
		if _, _, err := regs[i].Create(ctx, m, nil, nil, 0); err != nil {
			t.Fatalf("create %s: %v", m, err)
		}
	}

	const distinct, contested = 24, 8
	var wg sync.WaitGroup
	errs := make(chan error, distinct)
	for i := range distinct {
		wg.Go(func() {
			loc := fmt.Sprintf("RACE-A-%02d", i)
			if _, err := regs[i%2].AddLocations(ctx, "RACE-A", []string{loc}, nil); err != nil {
				errs <- fmt.Errorf("add %s: %w", loc, err)
			}
		})
	}
	type claim struct {
		loc, merchant string
		err           error
	}
	claims := make(chan claim, 2*contested)
	for i := range contested {
		loc := fmt.Sprintf("RACE-X-%02d", i)
		for j, m := range []string{"RACE-A", "RACE-B"} {
			wg.Go(func() {
				_, err := regs[(i+j)%2].AddLocations(ctx, m, []string{loc}, nil)
				claims <- claim{loc, m, err}
			})
		}
	}
	wg.Wait()
	close(errs)
	close(claims)
	for err := range errs {
		t.Error(err)
	}
	winners := map[string]string{}
	for c := range claims {
		var owned *registry.LocationOwnedError
		switch {
		case c.err == nil:
			if w, dup := winners[c.loc]; dup {
				t.Errorf("%s given to both %s and %s", c.loc, w, c.merchant)
			}
			winners[c.loc] = c.merchant
		case errors.As(c.err, &owned):
			if owned.Location != c.loc || owned.Owner == c.merchant || owned.Owner == "" {
				t.Errorf("%s claimed by %s: %v", c.loc, c.merchant, c.err)
			}
		default:
			t.Errorf("%s claimed by %s: unexpected error %v", c.loc, c.merchant, c.err)
		}
	}
	if len(winners) != contested {
		t.Errorf("%d of %d contested locations were given to a merchant: %v", len(winners), contested, winners)
	}

	// Both instances end with the same registry: every distinct location
	// with RACE-A, every contested one with its winner and only it.
	for n, r := range regs {
		testkit.Eventually(t, 30*time.Second, func() error {
			a, err := r.Get("RACE-A")
			if err != nil {
				return err
			}
			bb, err := r.Get("RACE-B")
			if err != nil {
				return err
			}
			var problems []string
			for i := range distinct {
				if loc := fmt.Sprintf("RACE-A-%02d", i); !registry.Owns(a, loc) {
					problems = append(problems, loc+" lost")
				}
			}
			for i := range contested {
				loc := fmt.Sprintf("RACE-X-%02d", i)
				var owners []string
				if registry.Owns(a, loc) {
					owners = append(owners, "RACE-A")
				}
				if registry.Owns(bb, loc) {
					owners = append(owners, "RACE-B")
				}
				if len(owners) != 1 || owners[0] != winners[loc] {
					problems = append(problems, fmt.Sprintf("%s owned by %v, the write that succeeded was %s's", loc, owners, winners[loc]))
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("instance %d: %s", n, strings.Join(problems, "; "))
			}
			return nil
		})
	}
}

// TestRegistryRefusesOwnedLocations: a location that a warehouse or store
// policy owns (configured through the policies topic) cannot be given to a
// merchant, at creation or later; the error names the owner's kind. A
// merchant location policy does not stand in the way.
func TestRegistryRefusesOwnedLocations(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	p, err := policies.New(b.Kafka.Brokers, nil, inventory.DefaultMaxEventSkew, append(b.Kafka.ProcessorOptions(), goka.WithStorageBuilder(testStorage(t)))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, p.Run)
	em, err := goka.NewEmitter(b.Kafka.Brokers, schema.Policies, schema.PolicyEventCodec, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Finish()
	asOf := timestamppb.New(time.Now().Add(-time.Hour))
	for loc, kind := range map[string]pb.LocationKind{"WH-1": pb.LocationKind_LOCATION_KIND_WAREHOUSE, "STORE-1": pb.LocationKind_LOCATION_KIND_STORE} {
		ev := &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{Location: loc, Kind: kind, AsOf: asOf}}}
		if err := em.EmitSync(schema.LocationKey(loc), ev); err != nil {
			t.Fatal(err)
		}
	}
	// Once the policies group has folded both into its table, a writer
	// starting then recovers them before it applies any command.
	pv, err := goka.NewView(b.Kafka.Brokers, schema.PoliciesTable, schema.PolicyCodec, append(b.Kafka.ViewOptions(), goka.WithViewStorageBuilder(testStorage(t)))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, pv.Run)
	testkit.Eventually(t, 30*time.Second, func() error {
		for _, loc := range []string{"WH-1", "STORE-1"} {
			if v, err := pv.Get(schema.LocationKey(loc)); err != nil || v == nil {
				return fmt.Errorf("policy of %s not in the table yet (%v)", loc, err)
			}
		}
		return nil
	})
	r := startRegistry(t, b.Kafka)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := r.Create(ctx, "OWN-A", []string{"OWN-A-1"}, nil, 0); err != nil {
		t.Fatal(err)
	}
	_, err = r.AddLocations(ctx, "OWN-A", []string{"WH-1"}, nil)
	var owned *registry.LocationOwnedError
	if !errors.As(err, &owned) || owned.Kind != pb.LocationKind_LOCATION_KIND_WAREHOUSE || owned.Location != "WH-1" ||
		!strings.Contains(err.Error(), `location "WH-1" is an owned warehouse`) {
		t.Fatalf("add WH-1: %v, want LocationOwnedError naming the warehouse", err)
	}
	_, _, err = r.Create(ctx, "OWN-B", []string{"OWN-B-1", "STORE-1"}, nil, 0)
	if !errors.As(err, &owned) || owned.Kind != pb.LocationKind_LOCATION_KIND_STORE || !strings.Contains(err.Error(), "owned store") {
		t.Fatalf("create with STORE-1: %v, want LocationOwnedError naming the store", err)
	}
	if _, err := r.Get("OWN-B"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the refused merchant exists: %v", err)
	}
	e, err := r.Get("OWN-A")
	if err != nil || slices.Contains(e.GetLocations(), "WH-1") {
		t.Errorf("OWN-A after the refusal: %v, %v", e, err)
	}
	// A merchant's own location policy (a location removed from one
	// merchant) does not stand in the way of another.
	if _, err := r.RemoveLocations(ctx, "OWN-A", []string{"OWN-A-1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Create(ctx, "OWN-C", []string{"OWN-A-1"}, nil, 0); err != nil {
		t.Errorf("a former merchant location: %v", err)
	}
}

func testStorage(t *testing.T) storage.Builder { return storage.DefaultBuilder(t.TempDir()) }
