package registry

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// testWarehouse is a location an owned warehouse's policy configures:
// no merchant may be given it.
const testWarehouse = "W-1"

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
			if o, ok := m.owner[l]; (ok && o != id) || l == testWarehouse {
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
	locs := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"L-1", "L-2", "L-3", "L-4", "L-5", testWarehouse}), 1, 3, rapid.ID).Draw(t, "locations")
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
// gateways' clocks disagree, within the allowed skew), redelivered or not
// (goka is at least once), read against the policies table (a warehouse's
// location) and the merchant-registry topic (Tables):
//   - the registry's ownership is the reference model's, and no location
//     has two owners;
//   - a redelivered command changes nothing and gets its first outcome;
//   - a command redelivered after a crash between its publishing and its
//     table write (so against the state from before it, with what it
//     published on the topic) does again exactly what it did, and answers
//     the same: a Create is not refused as its own merchant's duplicate;
//   - no policy's as_of is more than the skew ahead of the writer's clock;
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
		// The merchant-registry topic, as the writer's lookup of it reads it.
		topic := map[string]*pb.RegistryEntry{}
		writerTime := base.Add(100 * time.Second)
		tables := Tables{
			PolicyKind: func(l string) pb.LocationKind {
				if l == testWarehouse {
					return pb.LocationKind_LOCATION_KIND_WAREHOUSE
				}
				return pb.LocationKind_LOCATION_KIND_UNSPECIFIED
			},
			Published:  func(m string) *pb.RegistryEntry { return topic[m] },
			WriterTime: writerTime,
			MaxSkew:    5 * time.Minute,
		}
		publishEntries := func(a Applied) {
			for _, e := range a.Entries {
				topic[e.GetMerchantId()] = e
			}
			for _, ev := range a.Policies {
				if asOf := ev.GetLocation().GetAsOf().AsTime(); ev.GetLocation() != nil && asOf.After(writerTime.Add(tables.MaxSkew)) {
					t.Fatalf("policy %v: as_of more than %s after the writer's clock %s", ev, tables.MaxSkew, writerTime)
				}
				if asOf := ev.GetMerchant().GetAsOf().AsTime(); ev.GetMerchant() != nil && asOf.After(writerTime.Add(tables.MaxSkew)) {
					t.Fatalf("policy %v: as_of more than %s after the writer's clock %s", ev, tables.MaxSkew, writerTime)
				}
			}
		}
		a := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, base, tables)
		st := a.State
		var sent []*pb.RegistryCommand
		first := map[string]*pb.RegistryOutcome{}
		for n := range rapid.IntRange(1, 40).Draw(t, "commands") {
			cmd := genCommand(t, n)
			if len(sent) > 0 && rapid.Bool().Draw(t, "redeliver") {
				cmd = sent[rapid.IntRange(0, len(sent)-1).Draw(t, "which")]
			}
			before := st
			sentAt := at()
			a := Apply(st, cmd, sentAt, tables)
			publish(a)
			publishEntries(a)
			st = a.State
			if _, seen := first[cmd.GetId()]; !seen && rapid.Bool().Draw(t, "crash") {
				// The writer published, then crashed before its table
				// write: the command comes again, at the same message time,
				// to the state from before it.
				again := Apply(before, cmd, sentAt, tables)
				if !again.Changed || !proto.Equal(again.State, a.State) || !proto.Equal(again.Outcome, a.Outcome) {
					t.Fatalf("%v delivered again after a crash: outcome %v, first %v; state equal %v", cmd, again.Outcome, a.Outcome, proto.Equal(again.State, a.State))
				}
				if len(again.Entries) != len(a.Entries) || len(again.Policies) != len(a.Policies) {
					t.Fatalf("%v delivered again after a crash published %d entries and %d policies, first %d and %d", cmd, len(again.Entries), len(again.Policies), len(a.Entries), len(a.Policies))
				}
				publish(again)
				publishEntries(again)
			}
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
			if a := Apply(st, cmd, at(), tables); a.Changed || !proto.Equal(a.State, st) {
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

// TestApplyRefusesClockSkew: a command sent by a gateway whose clock is
// more than the allowed skew ahead of the writer's is refused, and so is a
// change whose time the registry's latest change pushes that far ahead:
// the policies it publishes would carry that as_of and be dead-lettered.
// Within the skew, changes are applied and their policies' as_of stays
// within it.
func TestApplyRefusesClockSkew(t *testing.T) {
	writer := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tables := Tables{WriterTime: writer, MaxSkew: 5 * time.Minute}
	st := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, writer, tables).State
	create := func(id, merchant string) *pb.RegistryCommand {
		hash := sha256.Sum256([]byte(id))
		return &pb.RegistryCommand{Id: id, MerchantId: merchant, ConfiguredChannels: testConfigured,
			Change: &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{Locations: []string{"L-" + merchant}, TokenSha256: hash[:]}}}
	}

	fast := Apply(st, create("c1", "M-1"), writer.Add(time.Hour), tables)
	if o := fast.Outcome; o.GetError() != pb.RegistryError_REGISTRY_ERROR_CLOCK_SKEW || !strings.Contains(o.GetMessage(), "ahead of the registry writer's clock") ||
		len(fast.State.GetEntries()) != 0 || len(fast.Policies) != 0 {
		t.Fatalf("a command an hour ahead: %v, %d entries, %d policies", o, len(fast.State.GetEntries()), len(fast.Policies))
	}
	if err := outcomeError(fast.Outcome); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("the outcome reads as %v, want ErrClockSkew", err)
	}

	ok := Apply(st, create("c2", "M-1"), writer.Add(4*time.Minute), tables)
	if ok.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED || len(ok.Policies) == 0 {
		t.Fatalf("a command 4 minutes ahead: %v", ok.Outcome)
	}
	for _, ev := range ok.Policies {
		asOf := ev.GetLocation().GetAsOf()
		if asOf == nil {
			asOf = ev.GetMerchant().GetAsOf()
		}
		if asOf.AsTime().After(writer.Add(tables.MaxSkew)) {
			t.Fatalf("policy %v is more than the skew ahead", ev)
		}
	}

	// A registry whose latest change is far ahead (written before the
	// writer checked clocks): a change would have to be later still.
	ahead := proto.Clone(ok.State).(*pb.RegistryState)
	ahead.Entries[0].UpdatedAt = timestamppb.New(writer.Add(time.Hour))
	pushed := Apply(ahead, create("c3", "M-2"), writer, tables)
	if o := pushed.Outcome; o.GetError() != pb.RegistryError_REGISTRY_ERROR_CLOCK_SKEW || !strings.Contains(o.GetMessage(), "latest change") || len(pushed.Policies) != 0 {
		t.Fatalf("a change after one an hour ahead: %v, %d policies", o, len(pushed.Policies))
	}
	// Once the writer's clock has caught up, changes go through again.
	tables.WriterTime = writer.Add(time.Hour)
	if again := Apply(ahead, create("c4", "M-2"), writer.Add(time.Hour), tables); again.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED {
		t.Fatalf("after the clock caught up: %v", again.Outcome)
	}
}

// TestCreateRedeliveredAfterCrash: the writer published a Create's entry
// and crashed before its table write; the Create comes again against the
// state from before it, with the entry on the merchant-registry topic. It
// answers success with the same entry, and publishes it again; a Create
// of the same merchant by another command is still refused as a duplicate.
func TestCreateRedeliveredAfterCrash(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	topic := map[string]*pb.RegistryEntry{}
	tables := Tables{Published: func(m string) *pb.RegistryEntry { return topic[m] }, WriterTime: at, MaxSkew: 5 * time.Minute}
	before := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, at, tables).State
	hash := sha256.Sum256([]byte("token"))
	cmd := &pb.RegistryCommand{Id: "create", MerchantId: "M-1", ConfiguredChannels: testConfigured,
		Change: &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{Locations: []string{"L-1"}, TokenSha256: hash[:]}}}
	first := Apply(before, cmd, at, tables)
	for _, e := range first.Entries {
		topic[e.GetMerchantId()] = e
	}
	again := Apply(before, cmd, at, tables)
	if again.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED || again.Outcome.GetVersion() != 1 ||
		!proto.Equal(again.State, first.State) || len(again.Entries) != 1 || !proto.Equal(again.Entries[0], topic["M-1"]) {
		t.Fatalf("the Create again after a crash: %v", again.Outcome)
	}
	other := sha256.Sum256([]byte("another token"))
	dup := proto.Clone(cmd).(*pb.RegistryCommand)
	dup.Id, dup.GetCreate().TokenSha256 = "create-2", other[:]
	if a := Apply(before, dup, at, tables); a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_EXISTS {
		t.Fatalf("another Create of the published merchant: %v", a.Outcome)
	}
}

// TestSeedCountsInvalidEntries: an entry with an invalid merchant id
// (nothing could read or change it) is left out of the seed, and the
// outcome says how many and which.
func TestSeedCountsInvalidEntries(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	good := &pb.RegistryEntry{MerchantId: "A", Version: 1, UpdatedAt: tsOf(at)}
	bad := &pb.RegistryEntry{MerchantId: "not a merchant id!", Version: 1, UpdatedAt: tsOf(at)}
	a := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{Entries: []*pb.RegistryEntry{good, bad}}}}, at, Tables{})
	if len(a.State.GetEntries()) != 1 || !strings.Contains(a.Outcome.GetMessage(), `left out 1 entries with invalid merchant ids: "not a merchant id!"`) {
		t.Fatalf("seed: %d entries, outcome %q", len(a.State.GetEntries()), a.Outcome.GetMessage())
	}
}

// TestAdoptRepublishesOwnersPolicy: an entry an old gateway published on
// merchant-registry lists a location another merchant owns; adopting it
// leaves the location out and publishes its real owner's policy again,
// newer than the one the old gateway published for the adopted merchant.
func TestAdoptRepublishesOwnersPolicy(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	st := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, at, Tables{}).State
	hash := sha256.Sum256([]byte("x"))
	st = Apply(st, &pb.RegistryCommand{Id: "c1", MerchantId: "X", ConfiguredChannels: testConfigured,
		Change: &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{Locations: []string{"L-1"}, Channels: []string{"web"}, TokenSha256: hash[:]}}}, at, Tables{}).State
	old := &pb.RegistryEntry{MerchantId: "Y", Locations: []string{"L-1", "L-2"}, Version: 3, UpdatedAt: tsOf(at.Add(time.Second)),
		Tokens: []*pb.TokenHash{{Sha256: hash[:]}}}
	tables := Tables{Published: func(m string) *pb.RegistryEntry {
		if m == "Y" {
			return old
		}
		return nil
	}}
	a := Apply(st, &pb.RegistryCommand{Id: "c2", MerchantId: "Y", ConfiguredChannels: testConfigured,
		Change: &pb.RegistryCommand_AddLocations{AddLocations: &pb.RegistryLocations{Locations: []string{"L-3"}}}}, at.Add(2*time.Second), tables)
	if a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED {
		t.Fatalf("outcome %v", a.Outcome)
	}
	if y := a.State.GetEntries()[1]; !slices.Equal(y.GetLocations(), []string{"L-2", "L-3"}) {
		t.Fatalf("Y adopted with %v", y.GetLocations())
	}
	p := locationPolicies(t, a.Policies)["L-1"]
	if p == nil || p.GetMerchantId() != "X" || p.GetClosed() || !slices.Equal(p.GetChannels(), []string{"web"}) || !p.GetAsOf().AsTime().After(old.GetUpdatedAt().AsTime()) {
		t.Fatalf("L-1's policy %v, want X's, open on web, newer than Y's entry", p)
	}
}
