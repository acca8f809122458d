package viewtest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// PolicySetup builds a PolicyLookup holding exactly pols, each under
// schema.PolicyKey. It returns the lookup while it is not ready yet, and start,
// which makes it ready and returns once every policy is visible. It registers
// its own cleanup with t.
type PolicySetup func(t *testing.T, pols []*pb.PolicyEvent) (lookup views.PolicyLookup, start func())

// RunPolicies checks the PolicyLookup contract against the lookup setup
// builds. setup is called once, with fresh copies of Policies.
func RunPolicies(t *testing.T, setup PolicySetup) {
	t.Helper()
	want := Policies(t)
	keys := make([]string, len(want))
	for i, p := range want {
		keys[i] = PolicyKey(t, p)
	}
	unknown := UnknownPolicyKeys(keys)
	lookup, start := setup(t, Policies(t)) // a fresh copy: setup must not share memory with what we compare against

	t.Run("not ready before start", func(t *testing.T) {
		if lookup.Ready() {
			t.Error("Ready() = true before start")
		}
		for _, key := range append(keys[:len(keys):len(keys)], unknown[0]) {
			got, err := lookup.GetPolicy(key)
			if !errors.Is(err, views.ErrNotReady) {
				t.Errorf("GetPolicy(%q) before start: error %v, want ErrNotReady", key, err)
			}
			if got != nil {
				t.Errorf("GetPolicy(%q) before start = %v, want nil", key, got)
			}
		}
	})

	start()

	t.Run("ready after start", func(t *testing.T) {
		if !lookup.Ready() {
			t.Fatal("Ready() = false after start")
		}
	})

	t.Run("stored policies are returned unchanged", func(t *testing.T) {
		for i, w := range want {
			got, err := lookup.GetPolicy(keys[i])
			if err != nil {
				t.Errorf("GetPolicy(%q): %v", keys[i], err)
				continue
			}
			if !proto.Equal(got, w) {
				t.Errorf("GetPolicy(%q) =\n%v\nwant\n%v", keys[i], got, w)
			}
		}
	})

	t.Run("unknown key is nil without error", func(t *testing.T) {
		for _, key := range unknown {
			got, err := lookup.GetPolicy(key)
			if err != nil {
				t.Errorf("GetPolicy(%q): error %v, want nil", key, err)
			}
			if got != nil {
				t.Errorf("GetPolicy(%q) = %v, want nil", key, got)
			}
		}
	})

	t.Run("a returned policy is the caller's own", func(t *testing.T) {
		got, err := lookup.GetPolicy(keys[0])
		if err != nil || got == nil {
			t.Fatalf("GetPolicy(%q) = %v, %v", keys[0], got, err)
		}
		got.GetLocation().Closed = !got.GetLocation().GetClosed()
		got.GetLocation().Channels = append(got.GetLocation().Channels, "mutated")
		again, err := lookup.GetPolicy(keys[0])
		if err != nil {
			t.Fatalf("GetPolicy(%q) again: %v", keys[0], err)
		}
		if !proto.Equal(again, want[0]) {
			t.Errorf("a change to a returned policy is visible to the next GetPolicy:\n%v\nwant\n%v", again, want[0])
		}
	})

	t.Run("concurrent gets", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8*len(want))
		for range 8 {
			wg.Go(func() {
				for i, w := range want {
					got, err := lookup.GetPolicy(keys[i])
					switch {
					case err != nil:
						errs <- err
					case !proto.Equal(got, w):
						errs <- fmt.Errorf("concurrent GetPolicy(%q) returned a different policy", keys[i])
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// PolicyKey is schema.PolicyKey, failing t on an envelope without a policy.
func PolicyKey(t testing.TB, p *pb.PolicyEvent) string {
	t.Helper()
	key, err := schema.PolicyKey(p)
	if err != nil {
		t.Fatalf("policy key of %v: %v", p, err)
	}
	return key
}

// Policies returns the suite's fixtures as the policies processor stores
// them (folded by inventory.ApplyLocationPolicy / ApplyMerchantPolicy, so
// channels are sorted): a warehouse limited to some channels with a safety
// stock, a closed store, a merchant location, its merchant with a TTL, a
// merchant relying on the default TTL, and a location whose id has the
// maximum length. The first is a location policy with channels. Each call
// returns fresh values that share no memory with earlier calls.
func Policies(t testing.TB) []*pb.PolicyEvent {
	t.Helper()
	loc := func(p inventory.LocationPolicy) *pb.PolicyEvent {
		out, res, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, p)
		if err != nil || !res.Changed {
			t.Fatalf("fixture %+v: changed=%v err=%v", p, res.Changed, err)
		}
		return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(out)}}
	}
	merchant := func(p inventory.MerchantPolicy) *pb.PolicyEvent {
		out, res, err := inventory.ApplyMerchantPolicy(inventory.MerchantPolicy{}, false, p)
		if err != nil || !res.Changed {
			t.Fatalf("fixture %+v: changed=%v err=%v", p, res.Changed, err)
		}
		return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(out)}}
	}
	long := strings.Repeat("L0._-", inventory.MaxIDLength/5) + strings.Repeat("y", inventory.MaxIDLength%5)
	return []*pb.PolicyEvent{
		loc(inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, Channels: []string{"web", "marketplace"},
			SafetyStock: 2, AsOf: t0}),
		loc(inventory.LocationPolicy{Location: "store.berlin", Kind: inventory.KindStore, Closed: true, AsOf: t0.Add(time.Minute)}),
		loc(inventory.LocationPolicy{Location: "mx-1.loc", Kind: inventory.KindMerchant, MerchantID: "m-1",
			Channels: []string{"web"}, AsOf: t0.Add(2 * time.Minute)}),
		merchant(inventory.MerchantPolicy{MerchantID: "m-1", StaleAfter: 30 * time.Minute, AsOf: t0.Add(3 * time.Minute)}),
		merchant(inventory.MerchantPolicy{MerchantID: "m-2", AsOf: t0.Add(4 * time.Minute)}),
		loc(inventory.LocationPolicy{Location: long, Kind: inventory.KindStore, AsOf: t0.Add(5 * time.Minute)}),
	}
}

// UnknownPolicyKeys are keys that keys does not hold: stored ids under the
// other prefix or none, near misses (case, prefix, suffix) and an unrelated
// location and merchant.
func UnknownPolicyKeys(keys []string) []string {
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	var out []string
	seen := map[string]bool{}
	add := func(key string) {
		if !known[key] && !seen[key] && key != "" {
			seen[key] = true
			out = append(out, key)
		}
	}
	add(schema.LocationKey("WH-unknown"))
	add(schema.MerchantKey("m-unknown"))
	for _, k := range keys {
		kind, id, _ := strings.Cut(k, "/")
		add(id) // no prefix
		if kind == "location" {
			add(schema.MerchantKey(id))
		} else {
			add(schema.LocationKey(id))
		}
		add(strings.ToUpper(k))
		add(k[:len(k)-1])
		add(k + "0")
	}
	return out
}
