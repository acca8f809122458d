package views_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

func TestMemoryPolicyContract(t *testing.T) {
	viewtest.RunPolicies(t, func(t *testing.T, pols []*pb.PolicyEvent) (views.PolicyLookup, func()) {
		m := views.NewMemory()
		m.SetReady(false)
		for _, p := range pols {
			if err := m.PutPolicy(p); err != nil {
				t.Fatalf("PutPolicy(%v): %v", p, err)
			}
		}
		return m, func() { m.SetReady(true) }
	})
}

func TestPoliciesContract(t *testing.T) {
	viewtest.RunPolicies(t, func(t *testing.T, pols []*pb.PolicyEvent) (views.PolicyLookup, func()) {
		b := testkit.StartBroker(t)
		if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
			t.Fatalf("ensure topics: %v", err)
		}
		emitPolicies(t, b, pols...)
		v, err := views.NewPolicies(b.Kafka.Brokers, viewOptions(t, b)...)
		if err != nil {
			t.Fatalf("NewPolicies: %v", err)
		}
		return v, func() {
			testkit.Go(t, v.Run)
			waitPolicies(t, v, pols...)
		}
	})
}

// TestPoliciesFollowsTable: a running policies view sees later updates and
// deletions of the table, and answers ErrNotReady once stopped.
func TestPoliciesFollowsTable(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	pols := viewtest.Policies(t)
	emitPolicies(t, b, pols...)
	v, err := views.NewPolicies(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewPolicies: %v", err)
	}
	stop := testkit.Go(t, v.Run)
	waitPolicies(t, v, pols...)

	updated := proto.Clone(pols[0]).(*pb.PolicyEvent)
	updated.GetLocation().Closed = true
	updated.GetLocation().AsOf = timestamppb.New(updated.GetLocation().GetAsOf().AsTime().Add(time.Hour))
	emitPolicies(t, b, updated)
	deleted := viewtest.PolicyKey(t, pols[1])
	emitTombstones(t, b, goka.Stream(schema.PoliciesTable), codecs.PolicyTable, deleted)

	key := viewtest.PolicyKey(t, updated)
	testkit.Eventually(t, 15*time.Second, func() error {
		got, err := v.GetPolicy(key)
		if err != nil || !proto.Equal(got, updated) {
			return fmt.Errorf("GetPolicy(%q) = %v, %v; want the update %v", key, got, err, updated)
		}
		if got, err := v.GetPolicy(deleted); err != nil || got != nil {
			return fmt.Errorf("deleted %q: %v, %v", deleted, got, err)
		}
		return nil
	})

	stop()
	if v.Ready() {
		t.Error("Ready() = true after the view stopped")
	}
	if got, err := v.GetPolicy(key); !errors.Is(err, views.ErrNotReady) || got != nil {
		t.Errorf("GetPolicy after stop = %v, %v; want nil, ErrNotReady", got, err)
	}
}

func TestMemoryZeroValuePolicies(t *testing.T) {
	var m views.Memory
	if got, err := m.GetPolicy(schema.LocationKey("WH-1")); !errors.Is(err, views.ErrNotReady) || got != nil {
		t.Errorf("zero Memory GetPolicy = %v, %v; want nil, ErrNotReady", got, err)
	}
	p := viewtest.Policies(t)[0]
	if err := m.PutPolicy(p); err != nil {
		t.Fatalf("PutPolicy on a zero Memory: %v", err)
	}
	m.SetReady(true)
	if got, err := m.GetPolicy(viewtest.PolicyKey(t, p)); err != nil || !proto.Equal(got, p) {
		t.Errorf("GetPolicy after PutPolicy on a zero Memory = %v, %v; want %v", got, err, p)
	}
}

// TestMemoryZeroValuePut: the zero Memory is documented as "not ready", not
// as unusable, and PutPolicy works on it; Put should too.
func TestMemoryZeroValuePut(t *testing.T) {
	var m views.Memory
	s := viewtest.States(t)[0]
	m.Put(s)
	m.SetReady(true)
	if got, found, err := m.Get(s.SKU); err != nil || !found || !reflect.DeepEqual(got, s) {
		t.Errorf("Get after Put on a zero Memory = %+v, %v, %v", got, found, err)
	}
}

func TestMemoryPutPolicy(t *testing.T) {
	t.Run("envelope without a policy is rejected", func(t *testing.T) {
		m := views.NewMemory()
		err := m.PutPolicy(&pb.PolicyEvent{})
		if !errors.Is(err, codecs.ErrMalformed) {
			t.Errorf("PutPolicy(empty envelope) = %v, want codecs.ErrMalformed", err)
		}
	})

	t.Run("the caller's value is copied", func(t *testing.T) {
		m := views.NewMemory()
		in := viewtest.Policies(t)[0]
		want := viewtest.Policies(t)[0]
		if err := m.PutPolicy(in); err != nil {
			t.Fatal(err)
		}
		in.GetLocation().Closed = true // the caller reuses its value after PutPolicy
		in.GetLocation().Channels[0] = "mutated"
		got, err := m.GetPolicy(viewtest.PolicyKey(t, want))
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("a change to the caller's policy after PutPolicy is visible through GetPolicy: %v, %v; want %v", got, err, want)
		}
	})

	t.Run("a later policy under the same key replaces the earlier", func(t *testing.T) {
		m := views.NewMemory()
		first := viewtest.Policies(t)[3] // merchant m-1
		second := proto.Clone(first).(*pb.PolicyEvent)
		second.GetMerchant().StaleAfter = nil
		for _, p := range []*pb.PolicyEvent{first, second} {
			if err := m.PutPolicy(p); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := m.GetPolicy(viewtest.PolicyKey(t, first)); err != nil || !proto.Equal(got, second) {
			t.Errorf("GetPolicy = %v, %v; want the later %v", got, err, second)
		}
	})
}

func TestStockEach(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	emitTable(t, b, states...)
	v, err := views.NewStock(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewStock: %v", err)
	}
	if err := v.Each(func(inventory.State) bool { t.Error("Each visited a state before Run"); return true }); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Each before Run = %v, want ErrNotReady", err)
	}
	stop := testkit.Go(t, v.Run)
	waitVisible(t, v, states...)

	seen := map[string]inventory.State{}
	if err := v.Each(func(s inventory.State) bool {
		if _, dup := seen[s.SKU]; dup {
			t.Errorf("Each visited %q twice", s.SKU)
		}
		seen[s.SKU] = s
		return true
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	if len(seen) != len(states) {
		t.Errorf("Each visited %d states, want %d", len(seen), len(states))
	}
	for _, want := range states {
		if got, ok := seen[want.SKU]; !ok {
			t.Errorf("Each did not visit %q", want.SKU)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("Each visited %q as\n%#v\nwant\n%#v", want.SKU, got, want)
		}
	}

	visits := 0
	if err := v.Each(func(inventory.State) bool { visits++; return false }); err != nil {
		t.Fatalf("Each stopped early: %v", err)
	}
	if visits != 1 {
		t.Errorf("Each called fn %d times after it returned false, want 1", visits)
	}

	stop()
	if err := v.Each(func(inventory.State) bool { t.Error("Each visited a state after stop"); return true }); !errors.Is(err, views.ErrNotReady) {
		t.Errorf("Each after stop = %v, want ErrNotReady", err)
	}
}

// TestAvailabilityView: the view of the compacted availability topic
// returns the latest published answer per SKU.
func TestAvailabilityView(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	now := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	answers := make([]*pb.Availability, len(states))
	for i, s := range states {
		answers[i] = answer(t, s, now)
	}
	emitAnswers(t, b, answers...)

	v, err := views.NewAvailability(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatalf("NewAvailability: %v", err)
	}
	if got, err := v.Get(states[0].SKU); !errors.Is(err, views.ErrNotReady) || got != nil {
		t.Fatalf("Get before Run = %v, %v; want nil, ErrNotReady", got, err)
	}
	stop := testkit.Go(t, v.Run)
	testkit.Eventually(t, 20*time.Second, func() error {
		if !v.Ready() {
			return errors.New("view has not recovered")
		}
		for _, want := range answers {
			got, err := v.Get(want.GetSku())
			if err != nil || !proto.Equal(got, want) {
				return fmt.Errorf("Get(%q) = %v, %v; want %v", want.GetSku(), got, err, want)
			}
		}
		return nil
	})
	for _, sku := range viewtest.UnknownSKUs(states) {
		if got, err := v.Get(sku); err != nil || got != nil {
			t.Errorf("Get(%q) = %v, %v; want nil, nil", sku, got, err)
		}
	}

	// A newer answer for the same SKU replaces the old one.
	later := answer(t, states[0], now.Add(48*time.Hour)) // differs at least in evaluated_at
	emitAnswers(t, b, later)
	testkit.Eventually(t, 15*time.Second, func() error {
		got, err := v.Get(later.GetSku())
		if err != nil || !proto.Equal(got, later) {
			return fmt.Errorf("Get(%q) = %v, %v; want the later answer %v", later.GetSku(), got, err, later)
		}
		return nil
	})

	stop()
	if got, err := v.Get(later.GetSku()); !errors.Is(err, views.ErrNotReady) || got != nil {
		t.Errorf("Get after stop = %v, %v; want nil, ErrNotReady", got, err)
	}
}

// answer is the availability the stock processor would publish for s at
// now under viewtest's policies.
func answer(t *testing.T, s inventory.State, now time.Time) *pb.Availability {
	t.Helper()
	m := views.NewMemory()
	for _, p := range viewtest.Policies(t) {
		if err := m.PutPolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := schema.Gather(s, m.GetPolicy, inventory.Base{
		Channels: []string{"web", "marketplace", "store-pickup"}, DefaultStaleAfter: time.Hour,
	})
	if err != nil {
		t.Fatalf("gather policies for %s: %v", s.SKU, err)
	}
	return codecs.SnapshotToProto(inventory.Evaluate(s, pol, now))
}

func emitPolicies(t *testing.T, b *testkit.Broker, pols ...*pb.PolicyEvent) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.PoliciesTable), codecs.PolicyTable, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, p := range pols {
		key := viewtest.PolicyKey(t, p)
		if err := em.EmitSync(key, p); err != nil {
			t.Fatalf("emit %s: %v", key, err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

func emitAnswers(t *testing.T, b *testkit.Broker, answers ...*pb.Availability) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, schema.Availability, codecs.Availability, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, a := range answers {
		if err := em.EmitSync(a.GetSku(), a); err != nil {
			t.Fatalf("emit %s: %v", a.GetSku(), err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

func emitTombstones(t *testing.T, b *testkit.Broker, topic goka.Stream, c goka.Codec, keys ...string) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, topic, c, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, k := range keys {
		if err := em.EmitSync(k, nil); err != nil {
			t.Fatalf("emit tombstone %s: %v", k, err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

// waitPolicies waits until the view is ready and holds every policy.
func waitPolicies(t *testing.T, v *views.Policies, pols ...*pb.PolicyEvent) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() error {
		if !v.Ready() {
			return errors.New("view has not recovered")
		}
		for _, p := range pols {
			key := viewtest.PolicyKey(t, p)
			if got, err := v.GetPolicy(key); err != nil || got == nil {
				return fmt.Errorf("GetPolicy(%q) = %v, %v", key, got, err)
			}
		}
		return nil
	})
}
