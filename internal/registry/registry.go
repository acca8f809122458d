package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// MaxLocations a merchant may own.
const MaxLocations = 10_000

// MaxChannels a merchant location may serve.
const MaxChannels = 64

// DefaultChannel is the one channel a merchant location serves unless it is
// given channels: third-party stock is sold on the marketplace, not for
// store pickup or on the retailer's own web shop. Entries written before
// the registry kept channels are read with this default too.
const DefaultChannel = "marketplace"

// DefaultChannels returns a new []string{DefaultChannel}.
func DefaultChannels() []string { return []string{DefaultChannel} }

// Registry errors; LocationOwnedError is returned as a value.
var (
	ErrNotFound = errors.New("merchant not found")
	ErrExists   = errors.New("merchant already exists")
	ErrInvalid  = errors.New("invalid registry request")
	ErrNotReady = errors.New("merchant registry is still recovering")
)

// LocationOwnedError says a location belongs to another merchant.
type LocationOwnedError struct{ Location, Owner string }

func (e *LocationOwnedError) Error() string {
	return fmt.Sprintf("location %q is owned by merchant %q", e.Location, e.Owner)
}

// Options configure a Registry.
type Options struct {
	Kafka kafkacfg.Options
	// DataDir holds the view's local copy of the topic.
	DataDir string
	Logger  *slog.Logger
	// Now is the clock of updated_at and of the policies' as_of.
	Now func() time.Time
	// WaitVisible bounds how long a change waits until the local view shows
	// it (default 15s).
	WaitVisible time.Duration
	// Channels are the deployment's configured channels (inventory.Base's):
	// a merchant location may serve only these. Required.
	Channels []string
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.DataDir == "" {
		errs = append(errs, errors.New("registry: data directory is empty"))
	}
	if o.WaitVisible < 0 {
		errs = append(errs, fmt.Errorf("registry: wait-visible %s is negative", o.WaitVisible))
	}
	if len(o.Channels) == 0 {
		errs = append(errs, errors.New("registry: no configured channels"))
	} else if _, err := validChannels(o.Channels); err != nil {
		errs = append(errs, fmt.Errorf("registry: configured channels: %w", err))
	}
	return errors.Join(errs...)
}

// Registry reads the registry through a goka view and writes changes to
// the registry and policies topics.
type Registry struct {
	log      *slog.Logger
	now      func() time.Time
	wait     time.Duration
	channels []string // configured, sorted
	view     *goka.View
	entries  *goka.Emitter
	policies *goka.Emitter

	mu       sync.RWMutex // guards the view against its own shutdown
	stopping bool
	writeMu  sync.Mutex // serialises this instance's read-modify-writes
	// firstPass is set once the first upgrade of legacy entries ran.
	firstPass atomic.Bool
}

// New creates the view and the emitters; Run starts the view.
func New(o Options) (*Registry, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	chs, _ := validChannels(o.Channels) // validated above
	r := &Registry{log: log, now: o.Now, wait: o.WaitVisible, channels: chs}
	if r.now == nil {
		r.now = time.Now
	}
	if r.wait == 0 {
		r.wait = 15 * time.Second
	}
	var err error
	r.view, err = goka.NewView(o.Kafka.Brokers, schema.MerchantRegistry, schema.RegistryCodec, append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(o.DataDir)))...)
	if err != nil {
		return nil, fmt.Errorf("registry view: %w", err)
	}
	// acks=all: an admin change that was answered must survive a broker loss.
	if r.entries, err = goka.NewEmitter(o.Kafka.Brokers, goka.Stream(schema.MerchantRegistry), schema.RegistryCodec, o.Kafka.ReliableEmitterOptions()...); err != nil {
		return nil, fmt.Errorf("registry emitter: %w", err)
	}
	if r.policies, err = goka.NewEmitter(o.Kafka.Brokers, schema.Policies, schema.PolicyEventCodec, o.Kafka.ReliableEmitterOptions()...); err != nil {
		_ = r.entries.Finish()
		return nil, fmt.Errorf("policies emitter: %w", err)
	}
	return r, nil
}

// Run keeps the view current until ctx is cancelled, then closes the
// emitters.
func (r *Registry) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.view.Run(inner) }()
	upgraded := make(chan struct{})
	go func() { defer close(upgraded); r.upgradeLegacy(inner) }()
	var err error
	select {
	case err = <-done:
		r.stop()
		cancel()
	case <-ctx.Done():
		r.stop()
		cancel()
		err = <-done
	}
	<-upgraded // no emits after Finish
	return errors.Join(err, r.entries.Finish(), r.policies.Finish())
}

func (r *Registry) stop() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
}

// Ready reports whether the view has recovered and the legacy entries it
// showed then have been upgraded once (UpgradeLegacy; tried once: a
// failure is retried in the background without holding readiness back).
func (r *Registry) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.stopping && r.view.Recovered() && r.firstPass.Load()
}

// Get returns the merchant's entry, ErrNotFound if there is none.
func (r *Registry) Get(merchant string) (*pb.RegistryEntry, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stopping || !r.view.Recovered() {
		return nil, ErrNotReady
	}
	v, err := r.view.Get(merchant)
	if err != nil {
		return nil, fmt.Errorf("registry view get: %w", err)
	}
	e, _ := v.(*pb.RegistryEntry)
	if e == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

// List returns every entry, sorted by merchant id.
func (r *Registry) List() ([]*pb.RegistryEntry, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stopping || !r.view.Recovered() {
		return nil, ErrNotReady
	}
	it, err := r.view.Iterator()
	if err != nil {
		return nil, fmt.Errorf("registry view: %w", err)
	}
	defer it.Release()
	var out []*pb.RegistryEntry
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("registry view: merchant %q: %w", it.Key(), err)
		}
		if e, ok := v.(*pb.RegistryEntry); ok && e != nil {
			out = append(out, e)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *pb.RegistryEntry) int { return strings.Compare(a.GetMerchantId(), b.GetMerchantId()) })
	return out, nil
}

// Authenticate returns the merchant a token belongs to, or
// ErrUnauthenticated.
func (r *Registry) Authenticate(token string) (string, error) {
	merchant, secret, ok := ParseToken(token)
	if !ok || inventory.ValidateID("merchant", merchant) != nil {
		return "", ErrUnauthenticated
	}
	e, err := r.Get(merchant)
	if errors.Is(err, ErrNotFound) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", err
	}
	hashes := make([][]byte, 0, len(e.GetTokens()))
	for _, t := range e.GetTokens() {
		hashes = append(hashes, t.GetSha256())
	}
	if !matches(hashes, secret) {
		return "", ErrUnauthenticated
	}
	return merchant, nil
}

// Authorize checks that token is a valid token of merchant:
// ErrUnauthenticated if it is no valid token, ErrPermissionDenied if it is
// another merchant's. It returns the merchant's entry.
func (r *Registry) Authorize(token, merchant string) (*pb.RegistryEntry, error) {
	owner, err := r.Authenticate(token)
	if err != nil {
		return nil, err
	}
	if owner != merchant {
		return nil, ErrPermissionDenied
	}
	return r.Get(merchant)
}

func validLocations(locs []string) ([]string, error) {
	var errs []error
	for _, l := range locs {
		if err := inventory.ValidateID("location", l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return slices.Compact(slices.Sorted(slices.Values(locs))), nil
}

// validChannels checks channel ids and returns them sorted without
// duplicates; empty stays empty (the caller decides the default).
func validChannels(chs []string) ([]string, error) {
	var errs []error
	for _, c := range chs {
		if err := inventory.ValidateID("channel", c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out := slices.Compact(slices.Sorted(slices.Values(chs)))
	if len(out) > MaxChannels {
		return nil, fmt.Errorf("%w: %d channels, at most %d per location", ErrInvalid, len(out), MaxChannels)
	}
	return out, nil
}

// recordedChannels are the channels the entry records for location, nil if
// it records none (a location it does not own, or one recorded before the
// registry kept channels).
func recordedChannels(e *pb.RegistryEntry, location string) []string {
	lc := e.GetLocationChannels()
	i, found := slices.BinarySearchFunc(lc, location, func(c *pb.LocationChannels, l string) int { return strings.Compare(c.GetLocation(), l) })
	if !found {
		return nil
	}
	return lc[i].GetChannels()
}

// Channels are the channels a location of the entry serves: those recorded,
// or DefaultChannels when none are (entries from before the registry kept
// channels).
func Channels(e *pb.RegistryEntry, location string) []string {
	if chs := recordedChannels(e, location); len(chs) > 0 {
		return slices.Clone(chs)
	}
	return DefaultChannels()
}

// setChannels records chs for every location of locs (sorted) in e;
// chs == nil keeps what e records and gives the rest the default.
func setChannels(e *pb.RegistryEntry, locs, chs []string) {
	byLoc := map[string][]string{}
	for _, c := range e.GetLocationChannels() {
		byLoc[c.GetLocation()] = c.GetChannels()
	}
	for _, l := range locs {
		if len(chs) > 0 {
			byLoc[l] = chs
		}
	}
	normalizeChannels(e, byLoc)
}

// normalizeChannels rewrites e.LocationChannels from byLoc: one entry per
// location e owns, sorted by location, the default where byLoc has none.
func normalizeChannels(e *pb.RegistryEntry, byLoc map[string][]string) {
	out := make([]*pb.LocationChannels, 0, len(e.GetLocations()))
	for _, l := range e.GetLocations() {
		chs := slices.Compact(slices.Sorted(slices.Values(byLoc[l])))
		if len(chs) == 0 {
			chs = DefaultChannels()
		}
		out = append(out, &pb.LocationChannels{Location: l, Channels: chs})
	}
	e.LocationChannels = out
}

// normalized returns a copy of e that records the channels of every
// location it owns (the default where it records none) and of no other.
func normalized(e *pb.RegistryEntry) *pb.RegistryEntry {
	out := proto.Clone(e).(*pb.RegistryEntry)
	setChannels(out, nil, nil)
	return out
}

// checkChannels refuses channels that are not configured: a location
// serving only those would count toward nothing.
func (r *Registry) checkChannels(chs []string) error {
	var unknown []string
	for _, c := range chs {
		if _, found := slices.BinarySearch(r.channels, c); !found {
			unknown = append(unknown, fmt.Sprintf("%q", c))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	noun := "channel " + unknown[0] + " is"
	if len(unknown) > 1 {
		noun = "channels " + strings.Join(unknown, ", ") + " are"
	}
	return fmt.Errorf("%w: %s not configured: the configured channels are %s", ErrInvalid, noun, strings.Join(r.channels, ", "))
}

// checkDefault refuses to give locs DefaultChannels when the deployment
// does not serve DefaultChannel: they would count toward nothing.
func (r *Registry) checkDefault(locs []string) error {
	if len(locs) == 0 {
		return nil
	}
	if _, found := slices.BinarySearch(r.channels, DefaultChannel); found {
		return nil
	}
	return fmt.Errorf("%w: no channels given for location(s) %s, and the default channel %q is not configured (configured: %s): give the channels the locations serve",
		ErrInvalid, strings.Join(locs, ", "), DefaultChannel, strings.Join(r.channels, ", "))
}

func validStaleAfter(d time.Duration) error {
	if d < 0 || d > inventory.MaxStaleAfter {
		return fmt.Errorf("%w: stale_after %s is outside 0..%s (0 means the default)", ErrInvalid, d, inventory.MaxStaleAfter)
	}
	return nil
}

// Create registers merchant with locations serving channels (empty:
// DefaultChannels) and stale-after (0: the default), and returns its first
// token.
func (r *Registry) Create(ctx context.Context, merchant string, locations, channels []string, staleAfter time.Duration) (string, *pb.RegistryEntry, error) {
	if err := inventory.ValidateID("merchant", merchant); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	locs, err := validLocations(locations)
	if err != nil {
		return "", nil, err
	}
	chs, err := validChannels(channels)
	if err != nil {
		return "", nil, err
	}
	if len(chs) > 0 && len(locs) == 0 {
		return "", nil, fmt.Errorf("%w: channels apply to the locations created with the merchant, and none are given", ErrInvalid)
	}
	if err := r.checkChannels(chs); err != nil {
		return "", nil, err
	}
	if len(chs) == 0 && len(locs) > 0 {
		if err := r.checkDefault(locs); err != nil {
			return "", nil, err
		}
	}
	if err := validStaleAfter(staleAfter); err != nil {
		return "", nil, err
	}
	token, hash, err := NewToken(merchant)
	if err != nil {
		return "", nil, err
	}
	e, err := r.update(ctx, merchant, func(cur *pb.RegistryEntry, now time.Time) (*pb.RegistryEntry, error) {
		if cur != nil {
			return nil, ErrExists
		}
		next := &pb.RegistryEntry{MerchantId: merchant, Locations: locs, Tokens: []*pb.TokenHash{{Sha256: hash, CreatedAt: timestamppb.New(now)}}}
		if staleAfter > 0 {
			next.StaleAfter = durationpb.New(staleAfter)
		}
		setChannels(next, locs, chs)
		return next, nil
	})
	if err != nil {
		return "", nil, err
	}
	return token, e, nil
}

// AddLocations gives merchant the locations, serving channels. Empty
// channels: new locations serve DefaultChannels and locations the merchant
// already owns keep theirs; otherwise every listed location serves exactly
// channels. Repeating a call changes nothing.
func (r *Registry) AddLocations(ctx context.Context, merchant string, locations, channels []string) (*pb.RegistryEntry, error) {
	locs, err := validLocations(locations)
	if err != nil {
		return nil, err
	}
	chs, err := validChannels(channels)
	if err != nil {
		return nil, err
	}
	if err := r.checkChannels(chs); err != nil {
		return nil, err
	}
	return r.update(ctx, merchant, func(cur *pb.RegistryEntry, _ time.Time) (*pb.RegistryEntry, error) {
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
			if err := r.checkDefault(dflt); err != nil {
				return nil, err
			}
		}
		cur.Locations = slices.Compact(slices.Sorted(slices.Values(append(cur.Locations, locs...))))
		cur.RemovedLocations = slices.DeleteFunc(cur.RemovedLocations, func(l string) bool { _, found := slices.BinarySearch(locs, l); return found })
		setChannels(cur, locs, chs)
		return cur, nil
	})
}

// RemoveLocations takes the locations away from merchant.
func (r *Registry) RemoveLocations(ctx context.Context, merchant string, locations []string) (*pb.RegistryEntry, error) {
	locs, err := validLocations(locations)
	if err != nil {
		return nil, err
	}
	return r.update(ctx, merchant, func(cur *pb.RegistryEntry, _ time.Time) (*pb.RegistryEntry, error) {
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
	})
}

// SetStaleAfter sets the merchant's TTL (0: the default).
func (r *Registry) SetStaleAfter(ctx context.Context, merchant string, d time.Duration) (*pb.RegistryEntry, error) {
	if err := validStaleAfter(d); err != nil {
		return nil, err
	}
	return r.update(ctx, merchant, func(cur *pb.RegistryEntry, _ time.Time) (*pb.RegistryEntry, error) {
		if cur == nil {
			return nil, ErrNotFound
		}
		cur.StaleAfter = nil
		if d > 0 {
			cur.StaleAfter = durationpb.New(d)
		}
		return cur, nil
	})
}

// RotateToken replaces the merchant's tokens with a new one.
func (r *Registry) RotateToken(ctx context.Context, merchant string) (string, *pb.RegistryEntry, error) {
	token, hash, err := NewToken(merchant)
	if err != nil {
		return "", nil, err
	}
	e, err := r.update(ctx, merchant, func(cur *pb.RegistryEntry, now time.Time) (*pb.RegistryEntry, error) {
		if cur == nil {
			return nil, ErrNotFound
		}
		cur.Tokens = []*pb.TokenHash{{Sha256: hash, CreatedAt: timestamppb.New(now)}}
		return cur, nil
	})
	if err != nil {
		return "", nil, err
	}
	return token, e, nil
}

// update applies fn to a copy of the merchant's entry (nil if none),
// publishes the policies the change implies, then the entry, and waits until
// the local view shows it.
func (r *Registry) update(ctx context.Context, merchant string, fn func(cur *pb.RegistryEntry, now time.Time) (*pb.RegistryEntry, error)) (*pb.RegistryEntry, error) {
	if err := inventory.ValidateID("merchant", merchant); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	cur, err := r.Get(merchant)
	if errors.Is(err, ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := r.now().UTC()
	if cur != nil && !now.After(cur.GetUpdatedAt().AsTime()) {
		now = cur.GetUpdatedAt().AsTime().Add(time.Microsecond) // as_of must grow for the policies to win
	}
	var work *pb.RegistryEntry
	if cur != nil {
		work = proto.Clone(cur).(*pb.RegistryEntry)
	}
	next, err := fn(work, now)
	if err != nil {
		return nil, err
	}
	// Every location's channels recorded: an entry from before the registry
	// kept channels gets the default written down with its first change,
	// and policyEvents republishes those locations with it.
	setChannels(next, nil, nil)
	if len(next.Locations) > MaxLocations {
		return nil, fmt.Errorf("%w: %d locations, at most %d per merchant", ErrInvalid, len(next.Locations), MaxLocations)
	}
	if err := r.checkOwners(merchant, next.Locations, cur.GetLocations()); err != nil {
		return nil, err
	}
	next.Version = cur.GetVersion() + 1
	next.UpdatedAt = timestamppb.New(now)
	for _, ev := range policyEvents(cur, next, now) {
		key, err := schema.PolicyKey(ev)
		if err != nil {
			return nil, err
		}
		if err := r.policies.EmitSync(key, ev); err != nil {
			return nil, fmt.Errorf("publish policy %s: %w", key, err)
		}
	}
	if err := r.entries.EmitSync(merchant, next); err != nil {
		return nil, fmt.Errorf("publish registry entry: %w", err)
	}
	r.log.Info("merchant registry changed", "merchant", merchant, "version", next.Version, "locations", len(next.Locations))
	return next, r.waitVisible(ctx, merchant, next.Version)
}

// checkOwners fails if a newly added location belongs to another merchant.
func (r *Registry) checkOwners(merchant string, next, prev []string) error {
	var added []string
	for _, l := range next {
		if !slices.Contains(prev, l) {
			added = append(added, l)
		}
	}
	if len(added) == 0 {
		return nil
	}
	all, err := r.List()
	if err != nil {
		return err
	}
	for _, e := range all {
		if e.GetMerchantId() == merchant {
			continue
		}
		for _, l := range added {
			if _, found := slices.BinarySearch(e.GetLocations(), l); found {
				return &LocationOwnedError{Location: l, Owner: e.GetMerchantId()}
			}
		}
	}
	return nil
}

// policyEvents are the policies a change from cur (nil: none) to next
// implies: the merchant's TTL when it is new or changed, a merchant
// location policy with the location's channels for every added location
// and every location whose recorded channels changed (a location cur
// recorded none for, from before the registry kept channels, included),
// and a closed one for every removed location.
func policyEvents(cur, next *pb.RegistryEntry, now time.Time) []*pb.PolicyEvent {
	asOf := timestamppb.New(now)
	var out []*pb.PolicyEvent
	if cur == nil || !proto.Equal(cur.GetStaleAfter(), next.GetStaleAfter()) {
		out = append(out, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: &pb.MerchantPolicy{
			MerchantId: next.GetMerchantId(), StaleAfter: next.GetStaleAfter(), AsOf: asOf,
		}}})
	}
	for _, l := range next.GetLocations() {
		if !slices.Contains(cur.GetLocations(), l) || !slices.Equal(recordedChannels(cur, l), recordedChannels(next, l)) {
			out = append(out, locationPolicy(next.GetMerchantId(), l, Channels(next, l), asOf))
		}
	}
	for _, l := range cur.GetLocations() {
		if !slices.Contains(next.GetLocations(), l) {
			out = append(out, locationPolicy(next.GetMerchantId(), l, nil, asOf))
		}
	}
	return out
}

// locationPolicy is a merchant location's policy: open serving channels,
// or closed when channels is nil (a closed location serves nothing).
func locationPolicy(merchant, location string, channels []string, asOf *timestamppb.Timestamp) *pb.PolicyEvent {
	return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: &pb.LocationPolicy{
		Location: location, Kind: pb.LocationKind_LOCATION_KIND_MERCHANT, MerchantId: merchant,
		Closed: channels == nil, Channels: channels, AsOf: asOf,
	}}}
}

// waitVisible polls the local view every 10 ms until it shows merchant at
// version or later, for at most r.wait; a wait that runs out names what the
// view showed last.
func (r *Registry) waitVisible(ctx context.Context, merchant string, version uint64) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		e, err := r.Get(merchant)
		switch {
		case err != nil:
			return struct{}{}, err
		case e.GetVersion() < version:
			return struct{}{}, fmt.Errorf("the view has version %d", e.GetVersion())
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(10*time.Millisecond)), backoff.WithMaxElapsedTime(r.wait))
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: change to merchant %q was written but is not visible after %s (last look: %v)", ErrNotReady, merchant, r.wait, err)
}

// StaleAfter is the merchant's TTL, or def when it sets none.
func StaleAfter(e *pb.RegistryEntry, def time.Duration) time.Duration {
	if d := e.GetStaleAfter().AsDuration(); d > 0 {
		return d
	}
	return def
}

// Owns reports whether the entry lists location (locations are sorted).
func Owns(e *pb.RegistryEntry, location string) bool {
	_, found := slices.BinarySearch(e.GetLocations(), location)
	return found
}
