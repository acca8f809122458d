package schema_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
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

func TestPolicyKey(t *testing.T) {
	for _, tc := range []struct {
		ev   *pb.PolicyEvent
		want string
	}{
		{locationEvent(warehouse("WH-1", at(0))), "location/WH-1"},
		{locationEvent(&pb.LocationPolicy{Location: "M-1", Kind: 3, MerchantId: "acme"}), "location/M-1"},
		{merchantEvent(merchant("acme", 0, at(0))), "merchant/acme"},
		{locationEvent(nil), "location/"},
		{merchantEvent(&pb.MerchantPolicy{}), "merchant/"},
	} {
		got, err := schema.PolicyKey(tc.ev)
		if err != nil || got != tc.want {
			t.Errorf("PolicyKey(%v) = %q, %v; want %q", tc.ev, got, err, tc.want)
		}
	}
	if got, want := schema.LocationKey("X"), "location/X"; got != want {
		t.Errorf("LocationKey = %q, want %q", got, want)
	}
	if got, want := schema.MerchantKey("X"), "merchant/X"; got != want {
		t.Errorf("MerchantKey = %q, want %q", got, want)
	}
	for _, ev := range []*pb.PolicyEvent{nil, {}} {
		got, err := schema.PolicyKey(ev)
		if err == nil || !errors.Is(err, codecs.ErrMalformed) || got != "" {
			t.Errorf("PolicyKey(%v) = %q, %v; want an ErrMalformed error", ev, got, err)
		}
	}
}

// getter serves a map as a policies table, counting lookups.
type getter struct {
	values map[string]*pb.PolicyEvent
	errs   map[string]error
	calls  []string
}

func (g *getter) get(key string) (*pb.PolicyEvent, error) {
	g.calls = append(g.calls, key)
	if err := g.errs[key]; err != nil {
		return nil, err
	}
	return g.values[key], nil
}

func state(locs ...string) inventory.State {
	s := inventory.State{SKU: "SKU-1"}
	for _, l := range locs {
		// Locations must be sorted by (ID, Area); callers pass them so.
		s.Locations = append(s.Locations, inventory.Location{ID: l})
	}
	return s
}

func TestGather(t *testing.T) {
	base := inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour}
	g := &getter{values: map[string]*pb.PolicyEvent{
		"location/M-1":   locationEvent(&pb.LocationPolicy{Location: "M-1", Kind: 3, MerchantId: "acme", AsOf: timestamppb.New(at(1))}),
		"location/M-2":   locationEvent(&pb.LocationPolicy{Location: "M-2", Kind: 3, MerchantId: "acme", AsOf: timestamppb.New(at(1))}),
		"location/M-3":   locationEvent(&pb.LocationPolicy{Location: "M-3", Kind: 3, MerchantId: "quiet", AsOf: timestamppb.New(at(1))}),
		"location/ST-1":  locationEvent(&pb.LocationPolicy{Location: "ST-1", Kind: 2, Channels: []string{"web"}, SafetyStock: 2, AsOf: timestamppb.New(at(1))}),
		"merchant/acme":  merchantEvent(merchant("acme", 30*time.Minute, at(1))),
		"merchant/else":  merchantEvent(merchant("else", time.Minute, at(1))), // no location of the SKU names it
		"location/OTHER": locationEvent(warehouse("OTHER", at(1))),
	}}
	s := state("M-1", "M-2", "M-3", "ST-1", "WH-1")
	// Two areas of one location are looked up once.
	s.Locations = slices.Insert(s.Locations, 4, inventory.Location{ID: "ST-1", Area: inventory.AreaFloor})
	got, err := schema.Gather(s, g.get, base)
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	want := inventory.Policies{
		Channels: base.Channels, DefaultStaleAfter: base.DefaultStaleAfter,
		Locations: map[string]inventory.LocationPolicy{
			"M-1":  {Location: "M-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(1)},
			"M-2":  {Location: "M-2", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(1)},
			"M-3":  {Location: "M-3", Kind: inventory.KindMerchant, MerchantID: "quiet", AsOf: at(1)},
			"ST-1": {Location: "ST-1", Kind: inventory.KindStore, Channels: []string{"web"}, SafetyStock: 2, AsOf: at(1)},
		},
		Merchants: map[string]inventory.MerchantPolicy{
			"acme": {MerchantID: "acme", StaleAfter: 30 * time.Minute, AsOf: at(1)},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Gather =\n%#v\nwant\n%#v", got, want)
	}
	wantCalls := []string{"location/M-1", "merchant/acme", "location/M-2", "location/M-3", "merchant/quiet", "location/ST-1", "location/WH-1"}
	if !slices.Equal(g.calls, wantCalls) {
		t.Errorf("lookups %q, want %q (each key once, only the SKU's locations and their merchants)", g.calls, wantCalls)
	}

	// Gather's result is what Evaluate needs: the policies change the answer.
	withLevels := inventory.State{SKU: "SKU-1", Locations: []inventory.Location{
		{ID: "M-1", HasLevel: true, Level: 5, LevelAsOf: at(0)},
		{ID: "WH-1", HasLevel: true, Level: 7, LevelAsOf: at(0)},
	}}
	pol, err := schema.Gather(withLevels, g.get, base)
	if err != nil {
		t.Fatal(err)
	}
	if snap := inventory.Evaluate(withLevels, pol, at(0).Add(31*time.Minute)); snap.Channels[0].Available != 7 {
		t.Errorf("web available %d 31 minutes after M-1's level, want 7 (acme's 30 minute ttl makes M-1 stale)", snap.Channels[0].Available)
	}
	if snap := inventory.Evaluate(withLevels, pol, at(0).Add(29*time.Minute)); snap.Channels[0].Available != 12 {
		t.Errorf("web available %d 29 minutes after M-1's level, want 12", snap.Channels[0].Available)
	}
}

func TestGatherEmptyState(t *testing.T) {
	g := &getter{}
	got, err := schema.Gather(inventory.State{SKU: "SKU-1"}, g.get, inventory.Base{Channels: []string{"web"}})
	if err != nil || len(g.calls) != 0 {
		t.Fatalf("Gather of an empty state: %v, lookups %q", err, g.calls)
	}
	if got.Locations == nil || got.Merchants == nil || len(got.Locations)+len(got.Merchants) != 0 {
		t.Errorf("Gather = %#v, want empty non-nil maps", got)
	}
}

// Lookup failures and values of the wrong kind are reported, joined, and
// the rest is still gathered.
func TestGatherErrors(t *testing.T) {
	boom := errors.New("boom")
	g := &getter{
		values: map[string]*pb.PolicyEvent{
			"location/A":    merchantEvent(merchant("acme", 0, at(1))), // wrong kind under a location key
			"location/C":    locationEvent(&pb.LocationPolicy{Location: "C", Kind: 3, MerchantId: "acme", AsOf: timestamppb.New(at(1))}),
			"merchant/acme": locationEvent(warehouse("acme", at(1))), // wrong kind under a merchant key
			"location/D":    locationEvent(&pb.LocationPolicy{Location: "D", Kind: 3, MerchantId: "down", AsOf: timestamppb.New(at(1))}),
			"location/E":    locationEvent(&pb.LocationPolicy{Location: "E", Kind: 1, AsOf: &timestamppb.Timestamp{Nanos: -1}}),
			"location/F":    locationEvent(warehouse("F", at(1))),
		},
		errs: map[string]error{"location/B": boom, "merchant/down": boom},
	}
	got, err := schema.Gather(state("A", "B", "C", "D", "E", "F"), g.get, inventory.Base{})
	if err == nil {
		t.Fatal("Gather succeeded, want an error")
	}
	if !errors.Is(err, boom) {
		t.Errorf("error %q does not wrap the lookup error", err)
	}
	if !errors.Is(err, codecs.ErrMalformed) {
		t.Errorf("error %q does not wrap ErrMalformed for location E's timestamp", err)
	}
	for _, want := range []string{"location A", "merchant acme", "location E"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	for _, id := range []string{"C", "D", "F"} {
		if _, ok := got.Locations[id]; !ok {
			t.Errorf("location %s missing from %#v after other lookups failed", id, got.Locations)
		}
	}
	if len(got.Merchants) != 0 {
		t.Errorf("merchants %#v, want none", got.Merchants)
	}
}

func TestLocationAndMerchantFrom(t *testing.T) {
	if p, found, err := schema.LocationFrom(nil); found || err != nil || !reflect.DeepEqual(p, inventory.LocationPolicy{}) {
		t.Errorf("LocationFrom(nil) = %#v, %v, %v", p, found, err)
	}
	if p, found, err := schema.MerchantFrom(nil); found || err != nil || !reflect.DeepEqual(p, inventory.MerchantPolicy{}) {
		t.Errorf("MerchantFrom(nil) = %#v, %v, %v", p, found, err)
	}
	if _, found, err := schema.LocationFrom(merchantEvent(merchant("a", 0, at(0)))); found || err == nil {
		t.Errorf("LocationFrom(merchant policy) = found %v, %v; want an error", found, err)
	}
	if _, found, err := schema.MerchantFrom(locationEvent(warehouse("a", at(0)))); found || err == nil {
		t.Errorf("MerchantFrom(location policy) = found %v, %v; want an error", found, err)
	}
	p, found, err := schema.MerchantFrom(merchantEvent(merchant("a", time.Minute, at(0))))
	if !found || err != nil || p != (inventory.MerchantPolicy{MerchantID: "a", StaleAfter: time.Minute, AsOf: at(0)}) {
		t.Errorf("MerchantFrom = %#v, %v, %v", p, found, err)
	}
}
