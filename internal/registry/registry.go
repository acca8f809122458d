package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
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
	// ErrFull: the registry is one table value, one Kafka message, and a
	// change would grow it beyond MaxEntriesBytes (FullError says how big).
	ErrFull = errors.New("the merchant registry is full")
	// ErrClockSkew: a change's time is ahead of the registry writer's clock
	// by more than the allowed event skew.
	ErrClockSkew = errors.New("clock skew")
)

// LocationOwnedError says a location belongs to another merchant (Owner),
// or to an owned warehouse or store configured through the policies topic
// (Kind; Owner is empty).
type LocationOwnedError struct {
	Location, Owner string
	Kind            pb.LocationKind
}

func (e *LocationOwnedError) Error() string {
	if e.Owner == "" {
		kind := strings.ToLower(strings.TrimPrefix(e.Kind.String(), "LOCATION_KIND_"))
		return fmt.Sprintf("location %q is an owned %s (its location policy says so): it cannot be given to a merchant", e.Location, kind)
	}
	return fmt.Sprintf("location %q is owned by merchant %q", e.Location, e.Owner)
}

// Options configure a Registry.
type Options struct {
	Kafka kafkacfg.Options
	// DataDir holds the view's local copy of the topic, and under writer/
	// and writer-view/ the writer's table and its lookups.
	DataDir string
	Logger  *slog.Logger
	// WaitVisible bounds how long a change waits until the local view shows
	// it (default 15s); it waits twice as long for the writer's answer,
	// which a rebalance of the writer group can hold up.
	WaitVisible time.Duration
	// Channels are the deployment's configured channels (inventory.Base's):
	// a merchant location may serve only these. Required.
	Channels []string
	// MaxEventSkew is how far ahead of the writer's clock a command's time
	// may be (0: inventory.DefaultMaxEventSkew): the policies the writer
	// publishes carry that time, and the policies group dead-letters those
	// more than its --max-event-skew ahead of their message time.
	MaxEventSkew time.Duration
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
	if o.MaxEventSkew < 0 {
		errs = append(errs, fmt.Errorf("registry: max event skew %s is negative (0: the default %s)", o.MaxEventSkew, inventory.DefaultMaxEventSkew))
	}
	if len(o.Channels) == 0 {
		errs = append(errs, errors.New("registry: no configured channels"))
	} else if _, err := validChannels(o.Channels); err != nil {
		errs = append(errs, fmt.Errorf("registry: configured channels: %w", err))
	}
	return errors.Join(errs...)
}

// Registry reads the registry through a goka view of merchant-registry and
// changes it through the registry writer (DefineWriter): it sends a
// RegistryCommand and waits for its outcome in the writer's table, then
// until its own view shows the change. Run also runs a member of the
// writer group, so every gateway serving the feeds API can be the writer.
type Registry struct {
	log      *slog.Logger
	kafka    kafkacfg.Options
	dataDir  string
	wait     time.Duration
	channels []string // configured, sorted
	skew     time.Duration
	view     *goka.View
	state    *goka.View // the writer's table (raw bytes): outcomes, seeded
	commands *goka.Emitter

	// The writer's table decoded, and the bytes it was decoded from: a
	// poll decodes the value (some 5 ms at 900 KB) only when it changed.
	decodedMu  sync.Mutex
	decodedRaw []byte
	decoded    *pb.RegistryState

	// seedErr is why the registry could not be given to the writer (too
	// big for one message): changes fail with it at once instead of
	// waiting for a seed that cannot come.
	seedErr atomic.Pointer[error]

	mu       sync.RWMutex // guards the views against their own shutdown
	stopping bool
}

// New creates the views and the command emitter; Run starts them and the
// writer.
func New(o Options) (*Registry, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	chs, _ := validChannels(o.Channels) // validated above
	r := &Registry{log: log, kafka: o.Kafka, dataDir: o.DataDir, wait: o.WaitVisible, channels: chs, skew: o.MaxEventSkew}
	if r.wait == 0 {
		r.wait = 15 * time.Second
	}
	if r.skew == 0 {
		r.skew = inventory.DefaultMaxEventSkew
	}
	var err error
	r.view, err = goka.NewView(o.Kafka.Brokers, schema.MerchantRegistry, schema.RegistryCodec, append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(o.DataDir)))...)
	if err != nil {
		return nil, fmt.Errorf("registry view: %w", err)
	}
	r.state, err = goka.NewView(o.Kafka.Brokers, schema.RegistryTable, schema.BytesCodec, append(o.Kafka.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(o.DataDir, "writer-view"))))...)
	if err != nil {
		return nil, fmt.Errorf("registry writer view: %w", err)
	}
	// acks=all: an admin change that was answered must survive a broker loss.
	if r.commands, err = goka.NewEmitter(o.Kafka.Brokers, schema.RegistryCommands, schema.RegistryCmdCodec, o.Kafka.ReliableEmitterOptions()...); err != nil {
		return nil, fmt.Errorf("registry command emitter: %w", err)
	}
	return r, nil
}

// Run keeps the views current and runs a member of the writer group until
// ctx is cancelled, then closes the emitter. Once the views have recovered
// it seeds the writer from the view if the writer has not taken the
// registry yet (migration from the registry before the writer).
func (r *Registry) Run(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 3)
	go func() { done <- r.view.Run(inner) }()
	go func() { done <- r.state.Run(inner) }()
	go func() { done <- r.runWriter(inner) }()
	seeded := make(chan struct{})
	go func() { defer close(seeded); r.seed(inner) }()
	var err error
	running := 3
	select {
	case err = <-done:
		running--
		if err == nil && ctx.Err() == nil {
			err = errors.New("registry: a view or the writer stopped")
		}
	case <-ctx.Done():
	}
	r.stop()
	cancel()
	for range running {
		err = errors.Join(err, <-done)
	}
	<-seeded // no emits after Finish
	return errors.Join(err, r.commands.Finish())
}

// runWriter runs a member of the writer group, restarting it when it
// fails (a rebalance gone wrong, a broker away) until ctx ends.
func (r *Registry) runWriter(ctx context.Context) error {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = 30 * time.Second
	for {
		p, err := goka.NewProcessor(r.kafka.Brokers, defineWriter(r.log, r.skew), append(r.kafka.ProcessorOptions(),
			goka.WithNilHandling(goka.NilProcess),
			// acks=all: a change that was answered must survive a broker loss.
			goka.WithProducerBuilder(func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
				c := r.kafka.Sarama()
				c.Producer.RequiredAcks = sarama.WaitForAll
				return goka.ProducerBuilderWithConfig(c)(brokers, clientID, hasher)
			}),
			goka.WithStorageBuilder(storage.DefaultBuilder(filepath.Join(r.dataDir, "writer"))),
			goka.WithLogger(kafkacfg.GokaLogger(r.log)))...)
		if err == nil {
			err = p.Run(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := b.NextBackOff()
		r.log.Warn("merchant registry writer stopped; restarting it", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (r *Registry) stop() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
}

// Ready reports whether the view has recovered: lookups and
// authentication are served. Changes need the writer too, and wait for it.
func (r *Registry) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.stopping && r.view.Recovered()
}

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
func (r *Registry) checkChannels(chs []string) error { return checkChannels(r.channels, chs) }

// checkDefault refuses to give locs DefaultChannels when the deployment
// does not serve DefaultChannel: they would count toward nothing.
func (r *Registry) checkDefault(locs []string) error { return checkDefault(r.channels, locs) }

// checkChannels refuses channels that are not among configured (sorted).
func checkChannels(configured, chs []string) error {
	var unknown []string
	for _, c := range chs {
		if _, found := slices.BinarySearch(configured, c); !found {
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
	return fmt.Errorf("%w: %s not configured: the configured channels are %s", ErrInvalid, noun, strings.Join(configured, ", "))
}

// checkDefault refuses to give locs DefaultChannels when configured (sorted)
// lacks DefaultChannel.
func checkDefault(configured, locs []string) error {
	if len(locs) == 0 {
		return nil
	}
	if _, found := slices.BinarySearch(configured, DefaultChannel); found {
		return nil
	}
	return fmt.Errorf("%w: no channels given for location(s) %s, and the default channel %q is not configured (configured: %s): give the channels the locations serve",
		ErrInvalid, listSome(locs, 5), DefaultChannel, strings.Join(configured, ", "))
}

// listSome joins the first n of ids, and says how many more there are.
func listSome(ids []string, n int) string {
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:n], ", "), len(ids)-n)
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
	c := &pb.RegistryCreate{Locations: locs, Channels: chs, TokenSha256: hash}
	if staleAfter > 0 {
		c.StaleAfter = durationpb.New(staleAfter)
	}
	e, err := r.send(ctx, &pb.RegistryCommand{MerchantId: merchant, Change: &pb.RegistryCommand_Create{Create: c}})
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
	return r.send(ctx, &pb.RegistryCommand{MerchantId: merchant, Change: &pb.RegistryCommand_AddLocations{AddLocations: &pb.RegistryLocations{Locations: locs, Channels: chs}}})
}

// RemoveLocations takes the locations away from merchant.
func (r *Registry) RemoveLocations(ctx context.Context, merchant string, locations []string) (*pb.RegistryEntry, error) {
	locs, err := validLocations(locations)
	if err != nil {
		return nil, err
	}
	return r.send(ctx, &pb.RegistryCommand{MerchantId: merchant, Change: &pb.RegistryCommand_RemoveLocations{RemoveLocations: &pb.RegistryLocations{Locations: locs}}})
}

// SetStaleAfter sets the merchant's TTL (0: the default).
func (r *Registry) SetStaleAfter(ctx context.Context, merchant string, d time.Duration) (*pb.RegistryEntry, error) {
	if err := validStaleAfter(d); err != nil {
		return nil, err
	}
	c := &pb.RegistryStaleAfter{}
	if d > 0 {
		c.StaleAfter = durationpb.New(d)
	}
	return r.send(ctx, &pb.RegistryCommand{MerchantId: merchant, Change: &pb.RegistryCommand_SetStaleAfter{SetStaleAfter: c}})
}

// RotateToken replaces the merchant's tokens with a new one.
func (r *Registry) RotateToken(ctx context.Context, merchant string) (string, *pb.RegistryEntry, error) {
	if err := inventory.ValidateID("merchant", merchant); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	token, hash, err := NewToken(merchant)
	if err != nil {
		return "", nil, err
	}
	e, err := r.send(ctx, &pb.RegistryCommand{MerchantId: merchant, Change: &pb.RegistryCommand_RotateToken{RotateToken: &pb.RegistryRotateToken{TokenSha256: hash}}})
	if err != nil {
		return "", nil, err
	}
	return token, e, nil
}

// send hands cmd to the writer and waits for its outcome, then until the
// local view shows the merchant's entry at the version the command made,
// and returns that entry.
func (r *Registry) send(ctx context.Context, cmd *pb.RegistryCommand) (*pb.RegistryEntry, error) {
	if err := inventory.ValidateID("merchant", cmd.GetMerchantId()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	o, err := r.command(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := outcomeError(o); err != nil {
		return nil, err
	}
	r.log.Info("merchant registry changed", "merchant", cmd.GetMerchantId(), "version", o.GetVersion())
	if err := r.waitVisible(ctx, cmd.GetMerchantId(), o.GetVersion()); err != nil {
		return nil, err
	}
	return r.Get(cmd.GetMerchantId())
}

// command sends cmd (given an id and the configured channels) once the
// writer has taken the registry, and returns its outcome.
func (r *Registry) command(ctx context.Context, cmd *pb.RegistryCommand) (*pb.RegistryOutcome, error) {
	id, err := newCommandID()
	if err != nil {
		return nil, err
	}
	cmd.Id, cmd.ConfiguredChannels = id, r.channels
	if cmd.GetSeed() == nil {
		if _, err := r.poll(ctx, "the registry writer has not taken the registry yet", func(st *pb.RegistryState) (bool, error) {
			if st.GetSeeded() {
				return true, nil
			}
			if p := r.seedErr.Load(); p != nil {
				return false, *p
			}
			return false, nil
		}); err != nil {
			return nil, err
		}
	}
	if err := r.commands.EmitSync(schema.RegistryKey, cmd); err != nil {
		return nil, fmt.Errorf("send registry command: %w", err)
	}
	var out *pb.RegistryOutcome
	_, err = r.poll(ctx, "no outcome of the command yet", func(st *pb.RegistryState) (bool, error) {
		for _, o := range slices.Backward(st.GetOutcomes()) {
			if o.GetCommandId() == id {
				out = o
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil && errors.Is(err, ErrNotReady) && !errors.Is(err, errStopping) {
		// Sent, but not answered: the writer may still apply it.
		return nil, fmt.Errorf("%w (the change was sent and may still be applied: look before retrying it)", err)
	}
	return out, err
}

// poll reads the writer's table until done holds (or fails: that error is
// returned at once), for at most twice r.wait (a writer that moves to
// another gateway takes a rebalance, some 6-8 s); a wait that runs out is
// ErrNotReady naming what was awaited. It looks every 10 ms at first, then
// less often (at most every 100 ms), and decodes the table's value only
// when it changed.
func (r *Registry) poll(ctx context.Context, waiting string, done func(*pb.RegistryState) (bool, error)) (*pb.RegistryState, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor, b.Multiplier = 10*time.Millisecond, 100*time.Millisecond, 0, 1.5
	st, err := backoff.Retry(ctx, func() (*pb.RegistryState, error) {
		st, err := r.writerState()
		if err != nil {
			return nil, err
		}
		ok, err := done(st)
		switch {
		case err != nil:
			return nil, backoff.Permanent(err)
		case !ok:
			return nil, errors.New(waiting)
		}
		return st, nil
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(2*r.wait))
	switch {
	case err == nil:
		return st, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrFull):
		return nil, err
	}
	return nil, fmt.Errorf("%w: the merchant registry writer did not answer within %s (%v): it runs in the gateways serving the feeds API; retry shortly", ErrNotReady, 2*r.wait, err)
}

// errStopping: the registry is shutting down.
var errStopping = fmt.Errorf("%w: the gateway is shutting down", ErrNotReady)

// writerState reads the writer's table through the view, decoding its
// value only when it changed since the last read.
func (r *Registry) writerState() (*pb.RegistryState, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stopping {
		return nil, backoff.Permanent(errStopping)
	}
	if !r.state.Recovered() {
		return nil, errors.New("the writer's table is still recovering")
	}
	v, err := r.state.Get(schema.RegistryKey)
	if err != nil {
		return nil, fmt.Errorf("registry writer view: %w", err)
	}
	raw, _ := v.([]byte)
	r.decodedMu.Lock()
	defer r.decodedMu.Unlock()
	if r.decoded != nil && bytes.Equal(raw, r.decodedRaw) {
		return r.decoded, nil
	}
	st := new(pb.RegistryState)
	if err := proto.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("registry writer view: %w", err)
	}
	r.decodedRaw, r.decoded = raw, st
	return st, nil
}

// seed gives the writer the registry the view holds, once the views have
// recovered, unless the writer has it already: the migration from the
// registry before the writer, and the way back after a broker loss and
// `skuflow merchant restore`. It retries until it succeeds or ctx ends.
func (r *Registry) seed(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = time.Minute
	for {
		err := r.seedOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		wait := b.NextBackOff()
		if errors.Is(err, ErrFull) {
			// Nothing changes until the registry shrinks: every admin
			// change fails with this error meanwhile.
			r.seedErr.Store(&err)
			r.log.Error("the merchant registry is too big to give to its writer: admin changes fail until it is made smaller (skuflow merchant restore from a smaller backup); retrying",
				"error", err, "bound_bytes", MaxEntriesBytes, "retry_in", wait)
		} else {
			r.log.Warn("giving the merchant registry to its writer failed; retrying", "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (r *Registry) seedOnce(ctx context.Context) error {
	st, err := r.poll(ctx, "views recovering", func(*pb.RegistryState) (bool, error) { return r.view.Recovered(), nil })
	if err != nil {
		return err
	}
	if st.GetSeeded() {
		return nil
	}
	all, err := r.List()
	if err != nil {
		return err
	}
	// Checked here too: a seed over a message's size could not even be
	// sent, and the writer would never say why.
	if size := proto.Size(&pb.RegistryState{Entries: all, Seeded: true}); size > MaxEntriesBytes {
		return fmt.Errorf("%d merchants: %w", len(all), &FullError{Bytes: size})
	}
	o, err := r.command(ctx, &pb.RegistryCommand{MerchantId: "registry", Change: &pb.RegistryCommand_Seed{Seed: &pb.RegistrySeed{Entries: all}}})
	if err != nil {
		return err
	}
	if err := outcomeError(o); err != nil {
		return err
	}
	r.seedErr.Store(nil)
	r.log.Info("the merchant registry writer took the registry", "merchants", len(all), "outcome", o.GetMessage())
	if _, found := slices.BinarySearch(r.channels, DefaultChannel); !found && slices.ContainsFunc(all, isLegacy) {
		r.log.Warn("merchant locations recorded before the registry kept channels now serve only the default channel, which is not configured, so their stock counts toward nothing: give them channels with merchant add-location --channels",
			"channel", DefaultChannel, "configured", r.channels)
	}
	return nil
}

func newCommandID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("command id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

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
