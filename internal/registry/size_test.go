package registry

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

var sizeAt = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// full is a registry filled until a Create was refused as full: merchants
// of 500 locations with 20-character ids, each serving the default channel.
var full struct {
	once      sync.Once
	st        *pb.RegistryState
	locations int
	refused   Applied
}

func fullRegistry(t *testing.T) (*pb.RegistryState, int, Applied) {
	t.Helper()
	full.once.Do(func() {
		st := Apply(nil, &pb.RegistryCommand{Id: "seed", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{}}}, sizeAt, Tables{}).State
		for m := 0; ; m++ {
			locs := make([]string, 500)
			for i := range locs {
				locs[i] = fmt.Sprintf("LOC-%04d-%011d", m, i)
			}
			hash := sha256.Sum256([]byte(fmt.Sprint(m)))
			a := Apply(st, &pb.RegistryCommand{Id: fmt.Sprintf("fill-%d", m), MerchantId: fmt.Sprintf("MERCHANT-%04d", m), ConfiguredChannels: testConfigured,
				Change: &pb.RegistryCommand_Create{Create: &pb.RegistryCreate{Locations: locs, TokenSha256: hash[:]}}}, sizeAt, Tables{})
			if a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED {
				full.st, full.refused = a.State, a
				return
			}
			st = a.State
			full.locations += len(locs)
		}
	})
	if full.st == nil {
		t.Fatal("filling the registry failed")
	}
	return full.st, full.locations, full.refused
}

// checkBounded fails unless st fits its bounds: the whole value within
// MaxStateBytes, the outcomes within MaxOutcomeBytes, every message within
// MaxOutcomeMessage, and the outcomes the latest of ids (oldest first),
// the last one among them.
func checkBounded(t *testing.T, st *pb.RegistryState, ids []string) {
	t.Helper()
	if size := proto.Size(st); size > MaxStateBytes {
		t.Fatalf("the registry takes %d bytes, beyond MaxStateBytes %d", size, MaxStateBytes)
	}
	outcomes := 0
	for _, o := range st.GetOutcomes() {
		outcomes += outcomeSize(o)
		if len(o.GetMessage()) > MaxOutcomeMessage {
			t.Fatalf("outcome %s: a message of %d bytes", o.GetCommandId(), len(o.GetMessage()))
		}
	}
	if outcomes > MaxOutcomeBytes {
		t.Fatalf("the outcomes take %d bytes, beyond MaxOutcomeBytes %d", outcomes, MaxOutcomeBytes)
	}
	kept := st.GetOutcomes()
	if len(kept) == 0 || len(kept) > len(ids) {
		t.Fatalf("%d outcomes kept of %d commands", len(kept), len(ids))
	}
	for i, o := range kept {
		if want := ids[len(ids)-len(kept)+i]; o.GetCommandId() != want {
			t.Fatalf("outcome %d is %s, want %s: not the latest, oldest dropped first", i, o.GetCommandId(), want)
		}
	}
}

// TestRegistryCapacity measures how many merchant locations the registry
// holds (README and topology.md quote it), and checks that the change
// that would take it beyond its bound is refused as full, naming the size,
// with nothing changed and nothing published.
func TestRegistryCapacity(t *testing.T) {
	st, locations, refused := fullRegistry(t)
	t.Logf("%d merchant locations (20-character ids, 500 a merchant) fit in %d bytes", locations, proto.Size(st))
	if locations < 14_000 {
		t.Errorf("only %d locations fit", locations)
	}
	o := refused.Outcome
	if o.GetError() != pb.RegistryError_REGISTRY_ERROR_FULL || !strings.Contains(o.GetMessage(), "bytes") || len(refused.Entries)+len(refused.Policies) != 0 {
		t.Fatalf("the Create beyond the bound: %v, published %d entries and %d policies", o, len(refused.Entries), len(refused.Policies))
	}
	if len(st.GetEntries()) != locations/500 {
		t.Fatalf("%d entries after the refusal, want %d", len(st.GetEntries()), locations/500)
	}
	if err := outcomeError(o); !errors.Is(err, ErrFull) {
		t.Fatalf("the outcome reads as %v, want ErrFull", err)
	}
}

// TestRefusedCommandsKeepTheRegistryBounded: refused commands record
// outcomes too, and they must not grow the full registry beyond one
// message (the writer could then never write its table again).
func TestRefusedCommandsKeepTheRegistryBounded(t *testing.T) {
	full, _, _ := fullRegistry(t)
	ids := []string{}
	for _, o := range full.GetOutcomes() {
		ids = append(ids, o.GetCommandId())
	}
	locs := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%011d", prefix, i)
		}
		return out
	}
	// Without the default channel configured, locations given no channels
	// are refused, and the message names them.
	noDefault := []string{"web"}

	t.Run("many refused commands", func(t *testing.T) {
		st, ids := full, ids
		for n := range 300 {
			id := fmt.Sprintf("refused-%d", n)
			a := Apply(st, &pb.RegistryCommand{Id: id, MerchantId: "MERCHANT-0000", ConfiguredChannels: noDefault,
				Change: &pb.RegistryCommand_AddLocations{AddLocations: &pb.RegistryLocations{Locations: locs(fmt.Sprintf("NEW-%03d", n), 40)}}}, sizeAt, Tables{})
			if a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_INVALID {
				t.Fatalf("%s: %v", id, a.Outcome)
			}
			st, ids = a.State, append(ids, id)
			checkBounded(t, st, ids)
		}
	})
	t.Run("one refused command with a huge message", func(t *testing.T) {
		a := Apply(full, &pb.RegistryCommand{Id: "huge", MerchantId: "MERCHANT-0000", ConfiguredChannels: noDefault,
			Change: &pb.RegistryCommand_AddLocations{AddLocations: &pb.RegistryLocations{Locations: locs("HUGE", MaxLocations)}}}, sizeAt, Tables{})
		if a.Outcome.GetError() != pb.RegistryError_REGISTRY_ERROR_INVALID || !strings.Contains(a.Outcome.GetMessage(), fmt.Sprintf("and %d more", MaxLocations-5)) {
			t.Fatalf("outcome %v", a.Outcome)
		}
		checkBounded(t, a.State, append(ids, "huge"))
	})
	t.Run("messages are cut", func(t *testing.T) {
		long := strings.Repeat("é", 1000)
		got := capMessage(long)
		if len(got) > MaxOutcomeMessage || !strings.HasSuffix(got, "more bytes)") || !strings.HasPrefix(got, "é") {
			t.Fatalf("cut to %d bytes: %q", len(got), got)
		}
		if capMessage("short") != "short" {
			t.Fatal("a short message was changed")
		}
	})
}
