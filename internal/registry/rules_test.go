package registry

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

var testConfigured = []string{"marketplace", "web"}

// model is the reference registry: who owns what, nothing else.
type model struct {
	merchants map[string]bool
	owner     map[string]string // location -> merchant
}

// apply gives the error a command must get (REGISTRY_ERROR_UNSPECIFIED:
// applied) and applies it.
func (m *model) apply(cmd *pb.RegistryCommand) pb.RegistryError {
	id := cmd.GetMerchantId()
	claims := func(locs []string) bool {
		for _, l := range locs {
			if o, ok := m.owner[l]; ok && o != id {
				return true
			}
		}
		return false
	}
	switch c := cmd.GetChange().(type) {
	case *pb.RegistryCommand_Create:
		if m.merchants[id] {
			return pb.RegistryError_REGISTRY_ERROR_EXISTS
		}
		if claims(c.Create.GetLocations()) {
			return pb.RegistryError_REGISTRY_ERROR_LOCATION_OWNED
		}
		m.merchants[id] = true
		for _, l := range c.Create.GetLocations() {
			m.owner[l] = id
		}
	case *pb.RegistryCommand_AddLocations:
		if !m.merchants[id] {
			return pb.RegistryError_REGISTRY_ERROR_NOT_FOUND
		}
		if claims(c.AddLocations.GetLocations()) {
			return pb.RegistryError_REGISTRY_ERROR_LOCATION_OWNED
		}
		for _, l := range c.AddLocations.GetLocations() {
			m.owner[l] = id
		}
	case *pb.RegistryCommand_RemoveLocations:
		if !m.merchants[id] {
			return pb.RegistryError_REGISTRY_ERROR_NOT_FOUND
		}
		for _, l := range c.RemoveLocations.GetLocations() {
			if m.owner[l] == id {
				delete(m.owner, l)
			}
		}
	default:
		if !m.merchants[id] {
			return pb.RegistryError_REGISTRY_ERROR_NOT_FOUND
		}
	}
	return pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED
}

func genCommand(t *rapid.T, n int) *pb.RegistryCommand {
	merchant := rapid.SampledFrom([]string{"M-1", "M-2", "M-3"}).Draw(t, "merchant")
	locs := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"L-1", "L-2", "L-3", "L-4", "L-5"}), 1, 3, rapid.ID).Draw(t, "locations")
	slices.Sort(locs)
	hash := sha256.Sum256([]byte(fmt.Sprint(n)))
	cmd := &pb.RegistryCommand{Id: fmt.Sprintf("cmd-%d", n), MerchantId: merchant, ConfiguredChannels: testConfigured}
	switch rapid.IntRange(0, 4).Draw(t, "op") {
	case 0:
		cmd.Change = &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{Locations: locs, TokenSha256: hash[:]}}
	case 1:
		chs := rapid.SampledFrom([][]string{nil, {"web"}, {"marketplace", "web"}}).Draw(t, "channels")
		cmd.Change = &pb.RegistryCommand_AddLocations{AddLocations: &pb.RegistryLocations{Locations: locs, Channels: chs}}
	case 2:
		cmd.Change = &pb.RegistryCommand_RemoveLocations{RemoveLocations: &pb.RegistryLocations{Locations: locs}}
	case 3:
		cmd.Change = &pb.RegistryCommand_RotateToken{RotateToken: &pb.RegistryRotateToken{TokenSha256: hash[:]}}
	default:
		cmd.Change = &pb.RegistryCommand_SetStaleAfter{SetStaleAfter: &pb.RegistryStaleAfter{StaleAfter: durationpb.New(time.Duration(rapid.IntRange(0, 3).Draw(t, "hours")) * time.Hour)}}
	}
	return cmd
}

// TestApplyMatchesModel: whatever commands arrive, at whatever times (the
// gateways' clocks disagree), redelivered or not (goka is at least once):
//   - the registry's ownership is the reference model's, and no location
//     has two owners;
//   - a redelivered command changes nothing and gets its first outcome;
//   - the policies published, folded as the policies group folds them
//     (newest as_of wins), agree with the registry: every owned location is
//     its merchant's and open with its channels, every other one closed.
func TestApplyMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
		m := &model{merchants: map[string]bool{}, owner: map[string]string{}}
		folded := map[string]*pb.PolicyEvent{}
		publish := func(a Applied) {
			for _, ev := range a.Policies {
				key, err := schema.PolicyKey(ev)
				if err != nil {
					t.Fatal(err)
				}
				next, changed, err := schema.FoldPolicy(key, ev, folded[key])
				if err != nil {
					t.Fatalf("policy %v: %v", ev, err)
				}
				if changed {
					folded[key] = next
				}
			}
		}
		at := func() time.Time {
			return base.Add(time.Duration(rapid.IntRange(0, 100).Draw(t, "seconds")) * time.Second)
		}
		a := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, base, Tables{})
		st := a.State
		var sent []*pb.RegistryCommand
		first := map[string]*pb.RegistryOutcome{}
		for n := range rapid.IntRange(1, 40).Draw(t, "commands") {
			cmd := genCommand(t, n)
			if len(sent) > 0 && rapid.Bool().Draw(t, "redeliver") {
				cmd = sent[rapid.IntRange(0, len(sent)-1).Draw(t, "which")]
			}
			before := st
			a := Apply(st, cmd, at(), Tables{})
			publish(a)
			st = a.State
			if o, seen := first[cmd.GetId()]; seen {
				if a.Changed || !proto.Equal(st, before) || !proto.Equal(a.Outcome, o) {
					t.Fatalf("redelivered %s: changed %v, outcome %v, first %v", cmd.GetId(), a.Changed, a.Outcome, o)
				}
				continue
			}
			sent = append(sent, cmd)
			first[cmd.GetId()] = a.Outcome
			if want := m.apply(cmd); a.Outcome.GetError() != want {
				t.Fatalf("%v: outcome %v, want %v", cmd, a.Outcome, want)
			}
		}
		owners := map[string]string{}
		for _, e := range st.GetEntries() {
			if !m.merchants[e.GetMerchantId()] {
				t.Fatalf("merchant %s is not in the model", e.GetMerchantId())
			}
			for _, l := range e.GetLocations() {
				if o, dup := owners[l]; dup {
					t.Fatalf("%s owned by %s and %s", l, o, e.GetMerchantId())
				}
				owners[l] = e.GetMerchantId()
			}
			if got := folded[schema.MerchantKey(e.GetMerchantId())].GetMerchant(); !proto.Equal(got.GetStaleAfter(), e.GetStaleAfter()) {
				t.Fatalf("merchant %s: policy stale_after %v, entry %v", e.GetMerchantId(), got.GetStaleAfter(), e.GetStaleAfter())
			}
		}
		if len(owners) != len(m.owner) {
			t.Fatalf("owners %v, model %v", owners, m.owner)
		}
		for l, o := range m.owner {
			if owners[l] != o {
				t.Fatalf("%s: owner %q, model %q", l, owners[l], o)
			}
		}
		for key, ev := range folded {
			p := ev.GetLocation()
			if p == nil {
				continue
			}
			o, owned := owners[p.GetLocation()]
			switch {
			case owned && (p.GetClosed() || p.GetMerchantId() != o):
				t.Fatalf("%s: owned by %s, policy %v", key, o, p)
			case owned:
				i, _ := slices.BinarySearchFunc(st.GetEntries(), o, byMerchant)
				if want := Channels(st.GetEntries()[i], p.GetLocation()); !slices.Equal(p.GetChannels(), want) {
					t.Fatalf("%s: channels %v, entry %v", key, p.GetChannels(), want)
				}
			case !p.GetClosed():
				t.Fatalf("%s: owned by nobody, policy open %v", key, p)
			}
		}
		// Everything delivered again changes nothing.
		for _, cmd := range sent {
			if a := Apply(st, cmd, at(), Tables{}); a.Changed || !proto.Equal(a.State, st) {
				t.Fatalf("redelivering %s changed the registry", cmd.GetId())
			}
		}
	})
}

// TestApplyRefusesBeforeSeed: until the writer took the old registry, a
// change is refused (it could not check ownership against it).
func TestApplyRefusesBeforeSeed(t *testing.T) {
	hash := sha256.Sum256([]byte("x"))
	a := Apply(nil, &pb.RegistryCommand{Id: "c1", MerchantId: "M-1", ConfiguredChannels: testConfigured,
		Change: &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{TokenSha256: hash[:]}}}, time.Now(), Tables{})
	if a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_NOT_SEEDED || len(a.State.GetEntries()) != 0 || len(a.Entries) != 0 {
		t.Fatalf("before the seed: %v", a.Outcome)
	}
}

// TestSeedResolvesDoubleOwners: the old registry could give a location to
// two merchants; the seed keeps it with the first by id, and the policy it
// publishes for it is the first's, newer than the second's.
func TestSeedResolvesDoubleOwners(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	a1 := &pb.RegistryEntry{MerchantId: "A", Locations: []string{"L-1"}, Version: 1, UpdatedAt: tsOf(at),
		LocationChannels: []*pb.LocationChannels{{Location: "L-1", Channels: []string{"marketplace"}}}}
	b1 := &pb.RegistryEntry{MerchantId: "B", Locations: []string{"L-1", "L-2"}, Version: 3, UpdatedAt: tsOf(at.Add(time.Second)),
		LocationChannels: []*pb.LocationChannels{{Location: "L-1", Channels: []string{"marketplace"}}, {Location: "L-2", Channels: []string{"marketplace"}}}}
	a := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{Entries: []*pb.RegistryEntry{b1, a1}}}}, at, Tables{})
	if !a.State.GetSeeded() || len(a.State.GetEntries()) != 2 {
		t.Fatalf("seed: %v", a.State)
	}
	b := a.State.GetEntries()[1]
	if !slices.Equal(b.GetLocations(), []string{"L-2"}) || b.GetVersion() != 4 || len(a.Entries) != 1 || a.Entries[0] != b {
		t.Fatalf("B after the seed: %v (published %v)", b, a.Entries)
	}
	pols := locationPolicies(t, a.Policies)
	if p := pols["L-1"]; p == nil || p.GetMerchantId() != "A" || p.GetClosed() || !p.GetAsOf().AsTime().After(at.Add(time.Second)) {
		t.Fatalf("L-1's policy %v, want A's, open, newer than B's", p)
	}
	// Taken once: a second seed changes nothing.
	if again := Apply(a.State, &pb.RegistryCommand{Id: "seed-2", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{Entries: []*pb.RegistryEntry{b1}}}}, at, Tables{}); len(again.Entries) != 0 || !proto.Equal(again.State.GetEntries()[1], b) {
		t.Fatalf("second seed: %v", again.State)
	}
}

func tsOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// TestWriterGraphUsesTheSchema: every edge of the writer's group graph is
// a topic of the schema, with the schema's codec for it or raw bytes that
// the callback decodes (internal/archtest checks the processors/ groups
// the same way).
func TestWriterGraphUsesTheSchema(t *testing.T) {
	g := DefineWriter(nil)
	if g.Group() != schema.RegistryGroup {
		t.Fatalf("group %s", g.Group())
	}
	bytes := fmt.Sprintf("%T", schema.BytesCodec)
	for _, e := range g.AllEdges() {
		tp, ok := schema.Lookup(e.Topic())
		if !ok {
			t.Errorf("topic %s is not in schema.Topics", e.Topic())
			continue
		}
		if got, want := fmt.Sprintf("%T", e.Codec()), fmt.Sprintf("%T", tp.Codec); got != want && got != bytes {
			t.Errorf("topic %s with codec %s, the schema says %s", e.Topic(), got, want)
		}
	}
}
