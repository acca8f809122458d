package registry

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// The registry writer's pure rules: Apply folds one RegistryCommand into the
// registry's state and returns what to publish. No goka, no I/O, no clock:
// the time is the command's message time, and the owners of locations
// configured through the policies topic come in as a function.

// MaxOutcomes is how many command outcomes the registry state keeps: a
// command redelivered after a crash (within seconds) is answered from its
// outcome rather than applied twice, and a gateway finds the answer to the
// command it sent there.
const MaxOutcomes = 1024

// MaxStateBytes bounds the encoded registry state: it is one table value,
// so one Kafka message (sarama's producer refuses messages over 1,000,000
// bytes, key and framing included; brokers take 1 MiB by default). The
// writer never writes a larger value: the entries get MaxEntriesBytes of
// it, the outcomes the rest.
const MaxStateBytes = 960_000

// MaxOutcomeBytes is the outcomes' share of MaxStateBytes: when they need
// more, the oldest are dropped first (a few hundred outcomes still fit,
// plenty for the seconds in which a command is redelivered or awaited).
const MaxOutcomeBytes = 64 << 10

// MaxEntriesBytes bounds the merchants' entries: a change (or a seed) that
// would grow them beyond it is refused with ErrFull. Measured
// (TestRegistryCapacity): some 15,000 merchant locations with 20-character
// ids, 500 per merchant, each serving one channel.
const MaxEntriesBytes = MaxStateBytes - MaxOutcomeBytes

// MaxOutcomeMessage bounds the text an outcome records (bytes): a longer
// message is cut, saying how much was left out.
const MaxOutcomeMessage = 512

// Tables are what the writer reads besides its own table.
type Tables struct {
	// PolicyKind returns the kind of the location policy configured for
	// location (LOCATION_KIND_UNSPECIFIED when none is): the writer refuses
	// to give a merchant a location that a warehouse or store policy owns.
	PolicyKind func(location string) pb.LocationKind
	// Published returns the merchant's entry on the merchant-registry topic
	// (nil: none). A merchant the writer does not know but the topic has
	// was written there by a gateway from before the writer (during a
	// rolling upgrade) or by `skuflow merchant restore`: the writer adopts
	// it with its first change, unless this very command published it (a
	// Create whose table write a crash cut short: see producedBy).
	Published func(merchant string) *pb.RegistryEntry
	// WriterTime is the writer's clock as it applies the command: the time
	// of the messages it publishes. A command sent (at) more than MaxSkew
	// after it is refused (ErrClockSkew), and so is a change whose policies
	// would carry an as_of more than MaxSkew after it: the policies group
	// dead-letters such policies. Zero: not checked (tests of other rules).
	WriterTime time.Time
	MaxSkew    time.Duration
}

// Applied is what one command did.
type Applied struct {
	// State is the registry after the command (st itself when Changed is
	// false). Values it shares with the state before are not changed.
	State   *pb.RegistryState
	Changed bool
	Outcome *pb.RegistryOutcome
	// Entries to publish to the merchant-registry topic, and the policies
	// they imply; a command seen before (redelivered) publishes its
	// merchant's entry and every policy it implies again.
	Entries  []*pb.RegistryEntry
	Policies []*pb.PolicyEvent
}

var errNotSeeded = errors.New("the registry writer has not taken the existing registry yet (it does once a gateway's registry view has recovered): retry shortly")

// Apply folds cmd, sent at at, into st (nil: empty, not seeded).
func Apply(st *pb.RegistryState, cmd *pb.RegistryCommand, at time.Time, tables Tables) Applied {
	if st == nil {
		st = &pb.RegistryState{}
	}
	if tables.PolicyKind == nil {
		tables.PolicyKind = func(string) pb.LocationKind { return pb.LocationKind_LOCATION_KIND_UNSPECIFIED }
	}
	if tables.Published == nil {
		tables.Published = func(string) *pb.RegistryEntry { return nil }
	}
	for _, o := range st.GetOutcomes() {
		if o.GetCommandId() == cmd.GetId() {
			return replay(st, o, cmd.GetSeed() != nil)
		}
	}
	out := &pb.RegistryOutcome{CommandId: cmd.GetId(), MerchantId: cmd.GetMerchantId()}
	c, err := change(st, cmd, at.UTC(), tables)
	next := &pb.RegistryState{Entries: st.GetEntries(), Seeded: st.GetSeeded()}
	if err == nil {
		next.Entries = merge(st.GetEntries(), c.entries)
		next.Seeded = next.Seeded || c.seeded
		// A change that does not grow the entries is taken even over the
		// bound (a registry from before it): it is how one shrinks it.
		if size := proto.Size(next); size > MaxEntriesBytes && size > proto.Size(&pb.RegistryState{Entries: st.GetEntries(), Seeded: st.GetSeeded()}) {
			err = &FullError{Bytes: size}
			next.Entries, next.Seeded = st.GetEntries(), st.GetSeeded()
		} else {
			out.Version = c.version
			out.Message = c.note
		}
	}
	if err != nil {
		setError(out, err)
	}
	next.Outcomes = keepOutcomes(st.GetOutcomes(), out, MaxStateBytes-proto.Size(next))
	if err != nil {
		return Applied{State: next, Changed: true, Outcome: out}
	}
	return Applied{State: next, Changed: true, Outcome: out, Entries: c.publish, Policies: c.policies}
}

// keepOutcomes returns outcomes with out appended, the oldest dropped
// until at most MaxOutcomes are kept, their encoding takes at most
// MaxOutcomeBytes, and at most room bytes (what the entries leave of
// MaxStateBytes: a registry from before these bounds may leave less). out
// itself is always kept: the gateway that sent the command waits for it.
func keepOutcomes(outcomes []*pb.RegistryOutcome, out *pb.RegistryOutcome, room int) []*pb.RegistryOutcome {
	budget := min(MaxOutcomeBytes, room)
	kept := []*pb.RegistryOutcome{out}
	used := outcomeSize(out)
	for _, o := range slices.Backward(outcomes) {
		if len(kept) == MaxOutcomes {
			break
		}
		n := outcomeSize(o)
		if used+n > budget {
			break
		}
		kept, used = append(kept, o), used+n
	}
	slices.Reverse(kept)
	return kept
}

// outcomeSize is what o adds to the encoded state (RegistryState.outcomes
// is field 2: a one-byte tag, the length, the message).
func outcomeSize(o *pb.RegistryOutcome) int {
	n := proto.Size(o)
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// FullError refuses a change that would grow the registry's entries to
// Bytes, beyond MaxEntriesBytes. It wraps ErrFull.
type FullError struct{ Bytes int }

func (e *FullError) Error() string {
	return fmt.Sprintf("%s: its entries would take %d bytes, beyond the bound of %d (the whole registry is one table value, one Kafka message): remove merchants or locations, or give fewer channels, first",
		ErrFull, e.Bytes, MaxEntriesBytes)
}

func (e *FullError) Unwrap() error { return ErrFull }

// replay answers a command seen before: nothing changes, and the entry it
// concerns (every entry, for a seed) is published again with every policy
// it implies, derived from the state, so what a crash cut short is made
// whole.
func replay(st *pb.RegistryState, o *pb.RegistryOutcome, seed bool) Applied {
	a := Applied{State: st, Outcome: o}
	for _, e := range st.GetEntries() {
		if !seed && e.GetMerchantId() != o.GetMerchantId() {
			continue
		}
		a.Entries = append(a.Entries, e)
		// A location the merchant lost is closed again only while nobody
		// owns it: its new owner's policy may be older than this entry's
		// last change.
		a.Policies = append(a.Policies, slices.DeleteFunc(restoreEvents(e), func(ev *pb.PolicyEvent) bool {
			l := ev.GetLocation()
			return l.GetClosed() && slices.ContainsFunc(st.GetEntries(), func(o *pb.RegistryEntry) bool { return Owns(o, l.GetLocation()) })
		})...)
	}
	return a
}

// merge returns entries (sorted by merchant) with changed put in place.
func merge(entries, changed []*pb.RegistryEntry) []*pb.RegistryEntry {
	out := slices.Clone(entries)
	for _, e := range changed {
		i, found := slices.BinarySearchFunc(out, e.GetMerchantId(), byMerchant)
		if found {
			out[i] = e
		} else {
			out = slices.Insert(out, i, e)
		}
	}
	return out
}

func byMerchant(e *pb.RegistryEntry, merchant string) int {
	return strings.Compare(e.GetMerchantId(), merchant)
}

func find(st *pb.RegistryState, merchant string) *pb.RegistryEntry {
	if i, found := slices.BinarySearchFunc(st.GetEntries(), merchant, byMerchant); found {
		return st.GetEntries()[i]
	}
	return nil
}

// setError records err in the outcome.
func setError(out *pb.RegistryOutcome, err error) {
	out.Message = capMessage(err.Error())
	var owned *LocationOwnedError
	switch {
	case errors.Is(err, ErrFull):
		out.Error = pb.RegistryError_REGISTRY_ERROR_FULL
	case errors.Is(err, ErrClockSkew):
		out.Error = pb.RegistryError_REGISTRY_ERROR_CLOCK_SKEW
	case errors.As(err, &owned):
		out.Error, out.Location, out.OwnerMerchant, out.OwnerKind = pb.RegistryError_REGISTRY_ERROR_LOCATION_OWNED, owned.Location, owned.Owner, owned.Kind
	case errors.Is(err, ErrNotFound):
		out.Error = pb.RegistryError_REGISTRY_ERROR_NOT_FOUND
	case errors.Is(err, ErrExists):
		out.Error = pb.RegistryError_REGISTRY_ERROR_EXISTS
	case errors.Is(err, errNotSeeded):
		out.Error = pb.RegistryError_REGISTRY_ERROR_NOT_SEEDED
	default:
		out.Error = pb.RegistryError_REGISTRY_ERROR_INVALID
	}
}

// outcomeError is the error an outcome records, nil if the command was
// applied: the registry's error values, with the writer's message.
func outcomeError(o *pb.RegistryOutcome) error {
	switch o.GetError() {
	case pb.RegistryError_REGISTRY_ERROR_UNSPECIFIED:
		return nil
	case pb.RegistryError_REGISTRY_ERROR_LOCATION_OWNED:
		return &LocationOwnedError{Location: o.GetLocation(), Owner: o.GetOwnerMerchant(), Kind: o.GetOwnerKind()}
	case pb.RegistryError_REGISTRY_ERROR_NOT_FOUND:
		return &writerError{kind: ErrNotFound, msg: o.GetMessage()}
	case pb.RegistryError_REGISTRY_ERROR_EXISTS:
		return &writerError{kind: ErrExists, msg: o.GetMessage()}
	case pb.RegistryError_REGISTRY_ERROR_NOT_SEEDED:
		return &writerError{kind: ErrNotReady, msg: o.GetMessage()}
	case pb.RegistryError_REGISTRY_ERROR_FULL:
		return &writerError{kind: ErrFull, msg: o.GetMessage()}
	case pb.RegistryError_REGISTRY_ERROR_CLOCK_SKEW:
		return &writerError{kind: ErrClockSkew, msg: o.GetMessage()}
	}
	return &writerError{kind: ErrInvalid, msg: o.GetMessage()}
}

// capMessage cuts s to at most MaxOutcomeMessage bytes, at a rune
// boundary, saying how much it left out.
func capMessage(s string) string {
	if len(s) <= MaxOutcomeMessage {
		return s
	}
	cut := MaxOutcomeMessage - 40 // room for the note
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("... (%d more bytes)", len(s)-cut)
}

// writerError is an error the writer recorded: its text, one of the
// registry's error values as its kind.
type writerError struct {
	kind error
	msg  string
}

func (e *writerError) Error() string { return e.msg }
func (e *writerError) Unwrap() error { return e.kind }

// changed is what a command changes.
type changed struct {
	entries  []*pb.RegistryEntry // sorted by merchant: into the state
	publish  []*pb.RegistryEntry // to the merchant-registry topic
	policies []*pb.PolicyEvent
	version  uint64 // the merchant's entry version after it
	seeded   bool
	note     string
}

func change(st *pb.RegistryState, cmd *pb.RegistryCommand, at time.Time, tables Tables) (changed, error) {
	if seed := cmd.GetSeed(); seed != nil {
		return seedRegistry(st, seed)
	}
	if !st.GetSeeded() {
		return changed{}, errNotSeeded
	}
	merchant := cmd.GetMerchantId()
	if err := inventory.ValidateID("merchant", merchant); err != nil {
		return changed{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	configured, err := validChannels(cmd.GetConfiguredChannels())
	if err != nil || len(configured) == 0 {
		return changed{}, fmt.Errorf("%w: the command names no valid configured channels", ErrInvalid)
	}
	if err := checkSkew("the command's time (the sending gateway's clock)", at, tables); err != nil {
		return changed{}, err
	}
	cur := find(st, merchant)
	var taken []string // locations an adopted entry listed that other merchants own
	if cur == nil {
		if pub := tables.Published(merchant); !producedBy(pub, cmd) {
			cur, taken = adopt(st, pub)
		}
	}
	// The policies a change publishes must be newer than every policy the
	// registry published before, whichever merchant's (a location moves
	// between merchants), whatever the clocks of the gateways that sent the
	// commands: the change's time is after every entry's.
	now := at
	for _, e := range st.GetEntries() {
		if last := e.GetUpdatedAt().AsTime(); !now.After(last) {
			now = last.Add(time.Microsecond)
		}
	}
	if last := cur.GetUpdatedAt().AsTime(); cur != nil && !now.After(last) {
		now = last.Add(time.Microsecond) // an adopted entry
	}
	if err := checkSkew("the registry's latest change", now, tables); err != nil {
		return changed{}, err
	}
	var work *pb.RegistryEntry
	if cur != nil {
		work = proto.Clone(cur).(*pb.RegistryEntry)
	}
	var next *pb.RegistryEntry
	switch c := cmd.GetChange().(type) {
	case *pb.RegistryCommand_Create:
		next, err = create(work, merchant, c.Create, configured, now)
	case *pb.RegistryCommand_AddLocations:
		next, err = addLocations(work, c.AddLocations, configured)
	case *pb.RegistryCommand_RemoveLocations:
		next, err = removeLocations(work, c.RemoveLocations)
	case *pb.RegistryCommand_SetStaleAfter:
		next, err = setStaleAfter(work, c.SetStaleAfter)
	case *pb.RegistryCommand_RotateToken:
		next, err = rotateToken(work, c.RotateToken, now)
	default:
		err = fmt.Errorf("%w: the command names no change", ErrInvalid)
	}
	if err != nil {
		return changed{}, err
	}
	// Every location's channels recorded: an entry from before the registry
	// kept channels gets the default written down with its first change,
	// and policyEvents republishes those locations with it.
	setChannels(next, nil, nil)
	if len(next.Locations) > MaxLocations {
		return changed{}, fmt.Errorf("%w: %d locations, at most %d per merchant", ErrInvalid, len(next.Locations), MaxLocations)
	}
	if err := checkOwners(st, tables.PolicyKind, merchant, next.Locations, cur.GetLocations()); err != nil {
		return changed{}, err
	}
	next.Version = cur.GetVersion() + 1
	next.UpdatedAt = timestamppb.New(now)
	policies := policyEvents(cur, next, now)
	// The adopted entry's writer published its own policies for locations
	// other merchants own: their owners' policies are published again,
	// newer than those.
	for _, l := range taken {
		for _, o := range st.GetEntries() {
			if Owns(o, l) {
				policies = append(policies, locationPolicy(o.GetMerchantId(), l, Channels(o, l), timestamppb.New(now)))
			}
		}
	}
	return changed{entries: []*pb.RegistryEntry{next}, publish: []*pb.RegistryEntry{next}, policies: policies, version: next.Version}, nil
}

func create(cur *pb.RegistryEntry, merchant string, c *pb.RegistryCreate, configured []string, now time.Time) (*pb.RegistryEntry, error) {
	if cur != nil {
		return nil, ErrExists
	}
	locs, err := validLocations(c.GetLocations())
	if err != nil {
		return nil, err
	}
	chs, err := validChannels(c.GetChannels())
	if err != nil {
		return nil, err
	}
	if len(chs) > 0 && len(locs) == 0 {
		return nil, fmt.Errorf("%w: channels apply to the locations created with the merchant, and none are given", ErrInvalid)
	}
	if err := checkChannels(configured, chs); err != nil {
		return nil, err
	}
	if len(chs) == 0 {
		if err := checkDefault(configured, locs); err != nil {
			return nil, err
		}
	}
	staleAfter := c.GetStaleAfter().AsDuration()
	if err := validStaleAfter(staleAfter); err != nil {
		return nil, err
	}
	if len(c.GetTokenSha256()) != 32 {
		return nil, fmt.Errorf("%w: the token hash must be 32 bytes (SHA-256)", ErrInvalid)
	}
	next := &pb.RegistryEntry{MerchantId: merchant, Locations: locs, Tokens: []*pb.TokenHash{{Sha256: c.GetTokenSha256(), CreatedAt: timestamppb.New(now)}}}
	if staleAfter > 0 {
		next.StaleAfter = durationpb.New(staleAfter)
	}
	setChannels(next, locs, chs)
	return next, nil
}

func addLocations(cur *pb.RegistryEntry, c *pb.RegistryLocations, configured []string) (*pb.RegistryEntry, error) {
	locs, err := validLocations(c.GetLocations())
	if err != nil {
		return nil, err
	}
	chs, err := validChannels(c.GetChannels())
	if err != nil {
		return nil, err
	}
	if err := checkChannels(configured, chs); err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, ErrNotFound
	}
	if len(chs) == 0 {
		// Locations that would get the default: new ones, and owned ones
		// recorded before the registry kept channels.
		var dflt []string
		for _, l := range locs {
			if len(recordedChannels(cur, l)) == 0 {
				dflt = append(dflt, l)
			}
		}
		if err := checkDefault(configured, dflt); err != nil {
			return nil, err
		}
	}
	cur.Locations = slices.Compact(slices.Sorted(slices.Values(append(cur.Locations, locs...))))
	cur.RemovedLocations = slices.DeleteFunc(cur.RemovedLocations, func(l string) bool { _, found := slices.BinarySearch(locs, l); return found })
	setChannels(cur, locs, chs)
	return cur, nil
}

func removeLocations(cur *pb.RegistryEntry, c *pb.RegistryLocations) (*pb.RegistryEntry, error) {
	locs, err := validLocations(c.GetLocations())
	if err != nil {
		return nil, err
	}
	if len(c.GetChannels()) > 0 {
		return nil, fmt.Errorf("%w: channels apply to added locations only", ErrInvalid)
	}
	if cur == nil {
		return nil, ErrNotFound
	}
	for _, l := range cur.Locations {
		if _, found := slices.BinarySearch(locs, l); found {
			cur.RemovedLocations = append(cur.RemovedLocations, l)
		}
	}
	cur.RemovedLocations = slices.Compact(slices.Sorted(slices.Values(cur.RemovedLocations)))
	cur.Locations = slices.DeleteFunc(cur.Locations, func(l string) bool { _, found := slices.BinarySearch(locs, l); return found })
	setChannels(cur, nil, nil)
	return cur, nil
}

func setStaleAfter(cur *pb.RegistryEntry, c *pb.RegistryStaleAfter) (*pb.RegistryEntry, error) {
	d := c.GetStaleAfter().AsDuration()
	if err := validStaleAfter(d); err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, ErrNotFound
	}
	cur.StaleAfter = nil
	if d > 0 {
		cur.StaleAfter = durationpb.New(d)
	}
	return cur, nil
}

func rotateToken(cur *pb.RegistryEntry, c *pb.RegistryRotateToken, now time.Time) (*pb.RegistryEntry, error) {
	if len(c.GetTokenSha256()) != 32 {
		return nil, fmt.Errorf("%w: the token hash must be 32 bytes (SHA-256)", ErrInvalid)
	}
	if cur == nil {
		return nil, ErrNotFound
	}
	cur.Tokens = []*pb.TokenHash{{Sha256: c.GetTokenSha256(), CreatedAt: timestamppb.New(now)}}
	return cur, nil
}

// checkSkew refuses t, the time of a change and of the policies it
// publishes, if it is more than tables.MaxSkew after the writer's clock.
func checkSkew(what string, t time.Time, tables Tables) error {
	if tables.WriterTime.IsZero() || tables.MaxSkew <= 0 || !t.After(tables.WriterTime.Add(tables.MaxSkew)) {
		return nil
	}
	return fmt.Errorf("%w: %s, %s, is %s ahead of the registry writer's clock (%s), more than the allowed %s: its policies would be dead-lettered; check the gateways' clocks",
		ErrClockSkew, what, t.UTC().Format(time.RFC3339Nano), t.Sub(tables.WriterTime).Round(time.Millisecond),
		tables.WriterTime.UTC().Format(time.RFC3339Nano), tables.MaxSkew)
}

// producedBy reports whether cmd itself published e: a Create whose token
// hash e holds (32 bytes drawn for that command alone). The writer
// publishes an entry before it writes its table; after a crash between the
// two, the Create is delivered again against the state from before it,
// and must do again what it did (and answer success), not adopt its own
// entry and refuse itself as ErrExists. Other commands find their merchant
// in the state from before them, and do again what they did.
func producedBy(e *pb.RegistryEntry, cmd *pb.RegistryCommand) bool {
	c := cmd.GetCreate()
	if e == nil || c == nil || len(c.GetTokenSha256()) == 0 {
		return false
	}
	return slices.ContainsFunc(e.GetTokens(), func(t *pb.TokenHash) bool { return bytes.Equal(t.GetSha256(), c.GetTokenSha256()) })
}

// adopt returns the entry e published outside the writer, without the
// locations that merchants the writer knows own (nil: e is nil), and those
// locations.
func adopt(st *pb.RegistryState, e *pb.RegistryEntry) (*pb.RegistryEntry, []string) {
	if e == nil || e.GetMerchantId() == "" {
		return nil, nil
	}
	out := proto.Clone(e).(*pb.RegistryEntry)
	var taken []string
	out.Locations = slices.DeleteFunc(out.Locations, func(l string) bool {
		if slices.ContainsFunc(st.GetEntries(), func(o *pb.RegistryEntry) bool { return Owns(o, l) }) {
			taken = append(taken, l)
			return true
		}
		return false
	})
	return out, taken
}

// checkOwners fails if a location newly given to merchant belongs to
// another merchant, or to a warehouse or store configured through the
// policies topic.
func checkOwners(st *pb.RegistryState, owner func(string) pb.LocationKind, merchant string, next, prev []string) error {
	var added []string
	for _, l := range next {
		if _, found := slices.BinarySearch(prev, l); !found {
			added = append(added, l)
		}
	}
	if len(added) == 0 {
		return nil
	}
	for _, e := range st.GetEntries() {
		if e.GetMerchantId() == merchant {
			continue
		}
		for _, l := range added {
			if Owns(e, l) {
				return &LocationOwnedError{Location: l, Owner: e.GetMerchantId()}
			}
		}
	}
	for _, l := range added {
		if k := owner(l); k != pb.LocationKind_LOCATION_KIND_UNSPECIFIED && k != pb.LocationKind_LOCATION_KIND_MERCHANT {
			return &LocationOwnedError{Location: l, Kind: k}
		}
	}
	return nil
}

// seedRegistry takes the entries of the old merchant-registry topic, once:
// an entry from before the registry kept channels is upgraded
// (legacyUpgrade) and published with its location policies, and a location
// two entries claim (the old read-modify-write could do that) stays with
// the first merchant by id: the others lose it, and its policy is published
// again for the first, newer than theirs.
func seedRegistry(st *pb.RegistryState, seed *pb.RegistrySeed) (changed, error) {
	if st.GetSeeded() {
		return changed{note: "the registry was taken before; nothing changed"}, nil
	}
	byID := map[string]*pb.RegistryEntry{}
	var invalid []string
	for _, e := range seed.GetEntries() {
		if inventory.ValidateID("merchant", e.GetMerchantId()) != nil {
			// Nothing could ever read or change it: left out, and said so.
			invalid = append(invalid, fmt.Sprintf("%q", e.GetMerchantId()))
			continue
		}
		if prev := byID[e.GetMerchantId()]; prev == nil || e.GetVersion() > prev.GetVersion() {
			byID[e.GetMerchantId()] = e
		}
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range byID {
			if !yield(id) {
				return
			}
		}
	})
	c := changed{seeded: true}
	owned := map[string]*pb.RegistryEntry{}
	var upgraded, conflicts int
	for _, id := range ids {
		cur := byID[id]
		next := legacyUpgrade(cur)
		var lost []string
		next.Locations = slices.DeleteFunc(next.Locations, func(l string) bool {
			if owned[l] != nil {
				lost = append(lost, l)
				return true
			}
			return false
		})
		if !isLegacy(cur) && len(lost) == 0 {
			c.entries = append(c.entries, cur)
			for _, l := range cur.GetLocations() {
				owned[l] = cur
			}
			continue
		}
		setChannels(next, nil, nil)
		at := next.GetUpdatedAt().AsTime()
		pols := policyEvents(cur, next, at)
		// A location lost to an earlier merchant is not closed: its policy
		// is the earlier merchant's, published again as of now.
		pols = slices.DeleteFunc(pols, func(ev *pb.PolicyEvent) bool { return slices.Contains(lost, ev.GetLocation().GetLocation()) })
		for _, l := range lost {
			w := owned[l]
			asOf := at
			if wAt := w.GetUpdatedAt().AsTime(); wAt.After(asOf) {
				asOf = wAt
			}
			pols = append(pols, locationPolicy(w.GetMerchantId(), l, Channels(w, l), timestamppb.New(asOf)))
		}
		c.entries = append(c.entries, next)
		c.policies = append(c.policies, pols...)
		for _, l := range next.GetLocations() {
			owned[l] = next
		}
		upgraded++
		conflicts += len(lost)
	}
	// Entries published are the ones that changed; the others are on the
	// topic already.
	for _, e := range c.entries {
		if byID[e.GetMerchantId()] != e {
			c.publish = append(c.publish, e)
		}
	}
	c.note = fmt.Sprintf("took %d merchant entries; upgraded %d; %d location(s) claimed twice kept by the first merchant", len(c.entries), upgraded, conflicts)
	if len(invalid) > 0 {
		c.note += fmt.Sprintf("; left out %d entries with invalid merchant ids: %s", len(invalid), listSome(invalid, 5))
	}
	return c, nil
}
