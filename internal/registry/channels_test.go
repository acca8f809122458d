package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// locationPolicies returns the location policies of evs by location.
func locationPolicies(t *testing.T, evs []*pb.PolicyEvent) map[string]*pb.LocationPolicy {
	t.Helper()
	out := map[string]*pb.LocationPolicy{}
	for _, ev := range evs {
		if l := ev.GetLocation(); l != nil {
			if _, dup := out[l.GetLocation()]; dup {
				t.Errorf("two policies for %s", l.GetLocation())
			}
			out[l.GetLocation()] = l
		}
	}
	return out
}

func TestValidChannels(t *testing.T) {
	got, err := validChannels([]string{"web", "marketplace", "web"})
	if err != nil || !slices.Equal(got, []string{"marketplace", "web"}) {
		t.Errorf("validChannels: %v, %v; want [marketplace web] sorted without duplicates", got, err)
	}
	if got, err := validChannels(nil); err != nil || len(got) != 0 {
		t.Errorf("no channels: %v, %v; want none (the caller's default)", got, err)
	}
	for _, bad := range []string{"", "Store Pickup", "web/eu", strings.Repeat("x", 200), "caf\u00e9"} {
		_, err := validChannels([]string{"marketplace", bad})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "channel") {
			t.Errorf("channel %q: %v, want ErrInvalid naming the channel", bad, err)
		}
	}
	many := make([]string, MaxChannels+1)
	for i := range many {
		many[i] = "ch-" + strings.Repeat("a", i+1)
	}
	if _, err := validChannels(many); !errors.Is(err, ErrInvalid) {
		t.Errorf("%d channels: %v, want ErrInvalid", len(many), err)
	}
}

// TestNewLocationsServeMarketplaceOnly: a merchant created without channels
// publishes its locations with channels [marketplace], never empty (which
// would mean every channel).
func TestNewLocationsServeMarketplaceOnly(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	next := &pb.RegistryEntry{MerchantId: "M-1", Locations: []string{"L-1", "L-2"}}
	setChannels(next, next.Locations, nil)
	pols := locationPolicies(t, policyEvents(nil, next, now))
	for _, l := range []string{"L-1", "L-2"} {
		p := pols[l]
		if p == nil || p.GetClosed() || !slices.Equal(p.GetChannels(), []string{"marketplace"}) ||
			p.GetKind() != pb.LocationKind_LOCATION_KIND_MERCHANT || p.GetMerchantId() != "M-1" || !p.GetAsOf().AsTime().Equal(now) {
			t.Errorf("%s: policy %v, want open merchant location serving [marketplace]", l, p)
		}
		if got := Channels(next, l); !slices.Equal(got, []string{"marketplace"}) {
			t.Errorf("Channels(%s) = %v", l, got)
		}
	}
}

// TestAddLocationChannels follows AddLocations' rules on an entry: given
// channels apply to every listed location, owned ones included; no channels
// keeps an owned location's and gives a new one the default; only what
// changed is published, so repeating a change publishes nothing.
func TestAddLocationChannels(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	cur := &pb.RegistryEntry{MerchantId: "M-1", Locations: []string{"L-1", "L-2"}}
	setChannels(cur, cur.Locations, []string{"marketplace"})

	add := func(cur *pb.RegistryEntry, locs, chs []string) *pb.RegistryEntry {
		next := proto.Clone(cur).(*pb.RegistryEntry)
		next.Locations = slices.Compact(slices.Sorted(slices.Values(append(next.Locations, locs...))))
		setChannels(next, locs, chs)
		return next
	}
	// L-2 widened to web, L-3 new on web only.
	next := add(cur, []string{"L-2", "L-3"}, []string{"marketplace", "web"})
	pols := locationPolicies(t, policyEvents(cur, next, now))
	if len(pols) != 2 || !slices.Equal(pols["L-2"].GetChannels(), []string{"marketplace", "web"}) ||
		!slices.Equal(pols["L-3"].GetChannels(), []string{"marketplace", "web"}) {
		t.Errorf("widening L-2 and adding L-3 published %v", pols)
	}
	if got := Channels(next, "L-1"); !slices.Equal(got, []string{"marketplace"}) {
		t.Errorf("L-1 (not listed) now serves %v", got)
	}
	// The same call again: nothing to publish.
	again := add(next, []string{"L-2", "L-3"}, []string{"web", "marketplace"})
	if evs := policyEvents(next, again, now); len(evs) != 0 {
		t.Errorf("repeated add published %v", evs)
	}
	if !proto.Equal(next, again) {
		t.Errorf("repeated add changed the entry:\n%v\n%v", next, again)
	}
	// No channels: owned L-2 keeps web, new L-4 gets the default.
	plain := add(next, []string{"L-2", "L-4"}, nil)
	pols = locationPolicies(t, policyEvents(next, plain, now))
	if len(pols) != 1 || !slices.Equal(pols["L-4"].GetChannels(), []string{"marketplace"}) {
		t.Errorf("adding L-4 without channels published %v", pols)
	}
	if got := Channels(plain, "L-2"); !slices.Equal(got, []string{"marketplace", "web"}) {
		t.Errorf("L-2 re-added without channels serves %v, want its own [marketplace web]", got)
	}
	// Removing L-2 closes it and forgets its channels.
	removed := proto.Clone(plain).(*pb.RegistryEntry)
	removed.Locations = slices.DeleteFunc(removed.Locations, func(l string) bool { return l == "L-2" })
	setChannels(removed, nil, nil)
	pols = locationPolicies(t, policyEvents(plain, removed, now))
	if len(pols) != 1 || !pols["L-2"].GetClosed() || len(pols["L-2"].GetChannels()) != 0 {
		t.Errorf("removing L-2 published %v, want it closed", pols)
	}
	if recordedChannels(removed, "L-2") != nil || len(removed.GetLocationChannels()) != len(removed.GetLocations()) {
		t.Errorf("removed entry still records L-2: %v", removed.GetLocationChannels())
	}
}

// TestLegacyEntryReadAsMarketplaceOnly: an entry written before the
// registry kept channels is read as marketplace-only, its first change
// records that and republishes every location with it, and a restore
// publishes the same.
func TestLegacyEntryReadAsMarketplaceOnly(t *testing.T) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	legacy := &pb.RegistryEntry{MerchantId: "M-OLD", Locations: []string{"O-1", "O-2"}, RemovedLocations: []string{"O-0"},
		Version: 3, UpdatedAt: timestamppb.New(at)}
	for _, l := range legacy.GetLocations() {
		if got := Channels(legacy, l); !slices.Equal(got, []string{"marketplace"}) {
			t.Errorf("legacy %s serves %v, want [marketplace]", l, got)
		}
	}
	if got := Channels(legacy, "NOT-OWNED"); !slices.Equal(got, DefaultChannels()) {
		t.Errorf("Channels of a location not owned: %v", got)
	}

	// The first change (here: none but the normalisation update applies).
	next := proto.Clone(legacy).(*pb.RegistryEntry)
	setChannels(next, nil, nil)
	pols := locationPolicies(t, policyEvents(legacy, next, at.Add(time.Hour)))
	for _, l := range []string{"O-1", "O-2"} {
		if p := pols[l]; p == nil || p.GetClosed() || !slices.Equal(p.GetChannels(), []string{"marketplace"}) {
			t.Errorf("first change after the upgrade: %s published %v, want open on [marketplace]", l, p)
		}
	}
	if !proto.Equal(next, normalized(legacy)) {
		t.Errorf("normalized %v, want %v", normalized(legacy), next)
	}
	if legacy.GetLocationChannels() != nil {
		t.Error("normalized changed its argument")
	}

	// Restore publishes the legacy entry and its normalised form alike.
	for name, e := range map[string]*pb.RegistryEntry{"legacy": legacy, "normalized": normalized(legacy)} {
		pols := locationPolicies(t, restoreEvents(e))
		for _, l := range []string{"O-1", "O-2"} {
			if p := pols[l]; p == nil || p.GetClosed() || !slices.Equal(p.GetChannels(), []string{"marketplace"}) || !p.GetAsOf().AsTime().Equal(at) {
				t.Errorf("restore %s: %s published %v, want open on [marketplace] as of %s", name, l, p, at)
			}
		}
		if p := pols["O-0"]; p == nil || !p.GetClosed() {
			t.Errorf("restore %s: removed O-0 published %v, want closed", name, p)
		}
	}
}

// TestRestoreKeepsRecordedChannels: a restore republishes each location
// with the channels the entry records.
func TestRestoreKeepsRecordedChannels(t *testing.T) {
	e := &pb.RegistryEntry{MerchantId: "M-1", Locations: []string{"L-1", "L-2"}, UpdatedAt: timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))}
	setChannels(e, []string{"L-2"}, []string{"marketplace", "web"})
	pols := locationPolicies(t, restoreEvents(e))
	if !slices.Equal(pols["L-1"].GetChannels(), []string{"marketplace"}) || !slices.Equal(pols["L-2"].GetChannels(), []string{"marketplace", "web"}) {
		t.Errorf("restore published %v", pols)
	}
}

// TestChannelsMustBeConfigured: a channel the deployment does not serve is
// refused naming the configured ones, and so is the default for a location
// given no channels when the deployment does not serve marketplace.
func TestChannelsMustBeConfigured(t *testing.T) {
	r := &Registry{channels: []string{"marketplace", "store-pickup", "web"}}
	if err := r.checkChannels([]string{"marketplace", "web"}); err != nil {
		t.Errorf("configured channels refused: %v", err)
	}
	err := r.checkChannels([]string{"Web", "marketplace"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `channel "Web" is not configured`) ||
		!strings.Contains(err.Error(), "marketplace, store-pickup, web") {
		t.Errorf("unconfigured channel: %v, want ErrInvalid naming it and the configured channels", err)
	}
	if err := r.checkChannels([]string{"mobile", "Web"}); err == nil || !strings.Contains(err.Error(), `channels "mobile", "Web" are not configured`) {
		t.Errorf("two unconfigured channels: %v", err)
	}
	if err := r.checkDefault([]string{"L-1"}); err != nil {
		t.Errorf("default with marketplace configured: %v", err)
	}

	noMarket := &Registry{channels: []string{"store-pickup", "web"}}
	err = noMarket.checkDefault([]string{"L-1", "L-2"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `default channel "marketplace" is not configured`) ||
		!strings.Contains(err.Error(), "L-1, L-2") || !strings.Contains(err.Error(), "store-pickup, web") {
		t.Errorf("default without marketplace: %v, want ErrInvalid naming the locations and channels", err)
	}
	if err := noMarket.checkDefault(nil); err != nil {
		t.Errorf("no location gets the default: %v", err)
	}
}

func TestOptionsNeedChannels(t *testing.T) {
	for _, chs := range [][]string{nil, {"web", "bad channel"}} {
		if err := (Options{Channels: chs}).Validate(); err == nil || !strings.Contains(err.Error(), "channels") {
			t.Errorf("channels %q: %v, want an error about them", chs, err)
		}
	}
}

// TestLegacyUpgradeIsDeterministic: the upgrade of a legacy entry depends
// on the entry alone (two instances publish the same), its policies beat
// the channel-less ones published at the entry's last change, and an
// upgraded entry is not upgraded again.
func TestLegacyUpgradeIsDeterministic(t *testing.T) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	legacy := &pb.RegistryEntry{MerchantId: "M-OLD", Locations: []string{"O-1", "O-2"}, RemovedLocations: []string{"O-0"},
		Version: 3, UpdatedAt: timestamppb.New(at)}
	if !isLegacy(legacy) {
		t.Fatal("legacy entry not seen as legacy")
	}
	a, b := legacyUpgrade(legacy), legacyUpgrade(proto.Clone(legacy).(*pb.RegistryEntry))
	if !proto.Equal(a, b) {
		t.Errorf("two upgrades differ:\n%v\n%v", a, b)
	}
	if a.GetVersion() != 4 || !a.GetUpdatedAt().AsTime().After(at) || isLegacy(a) || legacy.GetVersion() != 3 {
		t.Errorf("upgraded entry %v (legacy now %v)", a, legacy)
	}
	evA, evB := policyEvents(legacy, a, a.GetUpdatedAt().AsTime()), policyEvents(legacy, b, b.GetUpdatedAt().AsTime())
	if len(evA) != len(evB) {
		t.Fatalf("events differ: %v / %v", evA, evB)
	}
	for i := range evA {
		if !proto.Equal(evA[i], evB[i]) {
			t.Errorf("event %d differs: %v / %v", i, evA[i], evB[i])
		}
	}
	pols := locationPolicies(t, evA)
	if len(evA) != 2 || len(pols) != 2 {
		t.Errorf("upgrade published %v, want the two locations only", evA)
	}
	for _, l := range []string{"O-1", "O-2"} {
		if p := pols[l]; p == nil || p.GetClosed() || !slices.Equal(p.GetChannels(), []string{"marketplace"}) || !p.GetAsOf().AsTime().After(at) {
			t.Errorf("%s published %v, want open on [marketplace] after %s", l, p, at)
		}
	}
	if isLegacy(&pb.RegistryEntry{MerchantId: "M-EMPTY"}) {
		t.Error("an entry without locations is not legacy")
	}
}
