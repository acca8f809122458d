// Package service is the merchant feeds API that the gateway serves beside
// availability (a gateway.Service with a Run): the FeedService (client-streaming gRPC
// upload, feed status, locations), the streamed REST upload
// POST /v1/merchants/{merchant}/feeds, and the RegistryService admin API.
// It authenticates merchants against the registry, parses and validates
// rows (feeds), stores accepted rows durably in the outbox before it
// answers, and runs the publisher that ships the outbox to `supply`.
//
// Errors become gRPC codes (and HTTP statuses) in gateway/apierr, the one
// mapping of every API; this package only labels its feeds errors with an
// apierr kind: a caller's mistake is InvalidArgument, a limit
// ResourceExhausted (413 for REST bodies), no or a wrong token
// Unauthenticated (401), another merchant's token PermissionDenied (403).
// Tokens never appear in logs or errors.
//
// An upload does not keep the permissions it started with: its token and
// locations are checked again during the upload (ingest), and uploads are
// bounded in size (feeds.Limits.MaxBodyBytes, REST) and time (IdleTimeout,
// BodyTimeout: 408 over REST, DEADLINE_EXCEEDED over gRPC).
//
// Example:
//
//	s, err := service.New(service.Options{Kafka: k, DataDir: dir, AdminToken: tok, Limits: feeds.DefaultLimits(), Channels: base.Channels, Publish: true})
//	// serve s with gateway.New(gateway.Options{..., Services: []gateway.Service{s}}) and run s.Run beside it;
//	// the composition root (internal/app) registers it with app.Feeds.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/feeds/publisher"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Options configure the service.
type Options struct {
	Kafka kafkacfg.Options
	// DataDir holds the registry view and, by default, the outbox.
	DataDir string
	// OutboxDir overrides DataDir/outbox.
	OutboxDir string
	Limits    feeds.Limits
	// Retention and RetentionBytes bound the outbox (see outbox.Options).
	Retention      time.Duration
	RetentionBytes int64
	// AdminToken enables the admin API; empty disables it.
	AdminToken string
	// DefaultStaleAfter is the merchant TTL where a merchant sets none.
	DefaultStaleAfter time.Duration
	// Channels are the deployment's configured channels (inventory.Base's;
	// app.Feeds fills them): the registry refuses merchant locations on
	// any other. Required.
	Channels []string
	// Publish runs the outbox publisher (false only to hold rows back, as
	// the durability test does).
	Publish bool
	Logger  *slog.Logger
	// Now is the receive-time clock (default time.Now).
	Now func() time.Time
	// ReauthorizeEvery is how often a long upload checks its token and its
	// locations against the registry again (0: DefaultReauthorizeEvery);
	// rows are also stored only after a check that followed them (ingest).
	ReauthorizeEvery time.Duration
	// MaxEventSkew is registry.Options.MaxEventSkew (0: its default).
	MaxEventSkew time.Duration
}

// DefaultReauthorizeEvery is how often a long upload re-checks its token
// and locations unless Options.ReauthorizeEvery says otherwise.
const DefaultReauthorizeEvery = time.Second

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate(), o.Limits.Validate())
	if o.DataDir == "" && o.OutboxDir == "" {
		errs = append(errs, errors.New("feeds: no data directory"))
	}
	if o.DataDir == "" {
		errs = append(errs, errors.New("feeds: no data directory for the registry view"))
	}
	if o.Retention < 0 {
		errs = append(errs, fmt.Errorf("feeds: outbox retention %s is negative", o.Retention))
	}
	if o.RetentionBytes < 0 {
		errs = append(errs, fmt.Errorf("feeds: outbox retention bytes %d is negative", o.RetentionBytes))
	}
	if err := inventory.ValidateDefaultStaleAfter(o.DefaultStaleAfter); err != nil {
		errs = append(errs, fmt.Errorf("feeds: %w", err))
	}
	if len(o.Channels) == 0 {
		errs = append(errs, errors.New("feeds: no configured channels"))
	}
	if o.MaxEventSkew < 0 {
		errs = append(errs, fmt.Errorf("feeds: max event skew %s is negative (0: the default %s)", o.MaxEventSkew, inventory.DefaultMaxEventSkew))
	}
	if o.ReauthorizeEvery < 0 {
		errs = append(errs, fmt.Errorf("feeds: re-authorization interval %s is negative (0: the default %s)", o.ReauthorizeEvery, DefaultReauthorizeEvery))
	}
	return errors.Join(errs...)
}

// Service is the feeds API with its registry view, outbox and publisher.
type Service struct {
	o         Options
	log       *slog.Logger
	now       func() time.Time
	reg       *registry.Registry
	admin     registry.Admin
	ob        *outbox.Outbox
	pub       *publisher.Publisher
	feeds     *feedServer
	registryS *registryServer
}

// New opens the outbox and creates the registry and the publisher.
func New(o Options) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, log: log, now: o.Now, admin: registry.NewAdmin(o.AdminToken)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.o.ReauthorizeEvery == 0 {
		s.o.ReauthorizeEvery = DefaultReauthorizeEvery
	}
	dir := o.OutboxDir
	if dir == "" {
		dir = filepath.Join(o.DataDir, "outbox")
	}
	var err error
	if s.ob, err = outbox.Open(outbox.Options{Dir: dir, Retention: o.Retention, RetentionBytes: o.RetentionBytes, Logger: log}); err != nil {
		return nil, err
	}
	if s.reg, err = registry.New(registry.Options{Kafka: o.Kafka, DataDir: filepath.Join(o.DataDir, "registry"), Logger: log, Channels: o.Channels, MaxEventSkew: o.MaxEventSkew}); err != nil {
		s.ob.Close()
		return nil, err
	}
	if o.Publish {
		if s.pub, err = publisher.New(publisher.Options{Kafka: o.Kafka, Outbox: s.ob, Logger: log}); err != nil {
			s.ob.Close()
			return nil, err
		}
	} else {
		log.Warn("outbox publisher is off: accepted feed rows are stored but not published until a gateway runs with it on")
	}
	if !s.admin.Enabled() {
		log.Warn("admin API disabled: no admin token configured")
	}
	s.feeds = &feedServer{s: s}
	s.registryS = &registryServer{s: s}
	return s, nil
}

// Outbox is the service's outbox (tests inspect it).
func (s *Service) Outbox() *outbox.Outbox { return s.ob }

// Registry is the service's registry.
func (s *Service) Registry() *registry.Registry { return s.reg }

// Ready reports whether the registry view has recovered.
func (s *Service) Ready() bool { return s.reg.Ready() }

// Run runs the registry view, the publisher and outbox retention until ctx
// is cancelled, then closes the outbox.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.reg.Run(gctx) })
	if s.pub != nil {
		g.Go(func() error { return s.pub.Run(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			if _, err := s.ob.Trim(); err != nil {
				s.log.Warn("outbox retention failed", "error", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, s.ob.Close())
}

func newFeedID(t time.Time) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// flushRows is how many accepted rows are stored (one fsync) at a time.
const flushRows = 4096

// ingest collects one feed's rows into the outbox.
//
// A long upload does not keep the permissions it started with: its token
// and its merchant's locations are checked against the registry again
// (recheck) at least every Options.ReauthorizeEvery and before every batch
// of rows is stored. Rows are stored only after a check that followed their
// reading succeeded, so a rotated or revoked token, or a location taken from
// the merchant, stops the upload with the rows read since the last
// successful check not stored (counted as rejected), and every row stored
// before it was read while the merchant was allowed to write it.
type ingest struct {
	s          *Service
	token      string
	st         *pb.FeedStatus
	entry      *pb.RegistryEntry
	receivedAt time.Time
	pending    []inventory.StockLevel
	checked    time.Time           // the last successful authorization check (wall clock)
	locations  map[string]struct{} // locations of the rows accepted so far
}

func (s *Service) begin(token string, entry *pb.RegistryEntry) *ingest {
	now := s.now().UTC()
	in := &ingest{s: s, token: token, entry: entry, receivedAt: now, checked: time.Now(), locations: map[string]struct{}{},
		st: &pb.FeedStatus{FeedId: newFeedID(now), Merchant: entry.GetMerchantId(), State: pb.FeedState_FEED_STATE_RECEIVING}}
	in.st.ReceivedAt = timestampOf(now)
	s.ob.Begin(in.st.FeedId, in.st.Merchant, now)
	return in
}

func (in *ingest) reject(line int, reason string) {
	in.st.Rejected++
	if len(in.st.RejectedRows) < in.s.o.Limits.MaxRejectedShown {
		in.st.RejectedRows = append(in.st.RejectedRows, &pb.RejectedRow{Line: int32(line), Reason: reason})
	}
}

// revokedError stops an upload whose authorization changed while it ran.
type revokedError struct {
	cause   error // the kind: unauthenticated, permission denied, failed precondition
	msg     string
	dropped int // rows read since the last successful check, not stored
}

func (e *revokedError) Error() string {
	return fmt.Sprintf("%s (re-checked during the upload; the %d rows read since the last successful check were not stored)", e.msg, e.dropped)
}

func (e *revokedError) Unwrap() error { return e.cause }

// recheck checks the upload's token and locations against the current
// registry. On failure the pending rows are dropped (counted as rejected)
// and a *revokedError says why.
func (in *ingest) recheck() error {
	entry, err := in.s.authorize(in.token, in.st.Merchant)
	var stop *revokedError
	switch {
	case errors.Is(err, registry.ErrUnauthenticated):
		stop = &revokedError{cause: err, msg: "the upload's token is no longer valid: it was rotated or the merchant removed"}
	case errors.Is(err, registry.ErrPermissionDenied):
		stop = &revokedError{cause: err, msg: "the upload's token no longer belongs to merchant " + in.st.Merchant}
	case err != nil:
		stop = &revokedError{cause: err, msg: "the upload's authorization could not be re-checked: " + err.Error()}
	default:
		var lost []string
		for l := range in.locations {
			if !registry.Owns(entry, l) {
				lost = append(lost, l)
			}
		}
		if len(lost) > 0 {
			slices.Sort(lost)
			stop = &revokedError{cause: apierr.ErrFailedPrecondition,
				msg: fmt.Sprintf("location(s) %s of this upload no longer belong to merchant %s: removed or moved to another merchant during the upload", strings.Join(lost, ", "), in.st.Merchant)}
		}
	}
	if stop == nil {
		in.entry, in.checked = entry, time.Now()
		return nil
	}
	stop.dropped = len(in.pending)
	in.st.Rejected += int32(len(in.pending))
	in.pending = in.pending[:0]
	in.s.log.Warn("feed upload stopped: its authorization changed", "merchant", in.st.Merchant, "feed", in.st.FeedId, "reason", stop.msg)
	return stop
}

// add validates a parsed row and stores it (in batches), re-checking the
// upload's authorization when it is due.
func (in *ingest) add(row feeds.Row) error {
	if time.Since(in.checked) >= in.s.o.ReauthorizeEvery {
		if err := in.recheck(); err != nil {
			// This row was read too, and is not stored either.
			in.st.Rejected++
			var re *revokedError
			if errors.As(err, &re) {
				re.dropped++
			}
			return err
		}
	}
	l, err := feeds.Check(row, in.st.Merchant, func(loc string) bool { return registry.Owns(in.entry, loc) }, in.receivedAt, in.s.o.Limits)
	if err != nil {
		in.reject(row.Line, err.Error())
		return nil
	}
	in.pending = append(in.pending, l)
	in.locations[l.Location] = struct{}{}
	if len(in.pending) >= flushRows {
		return in.flush()
	}
	return nil
}

// flush re-checks the upload's authorization, then stores the pending
// rows.
func (in *ingest) flush() error {
	if len(in.pending) == 0 {
		return nil
	}
	if err := in.recheck(); err != nil {
		return err
	}
	first, last, err := in.s.ob.AppendRows(in.st.FeedId, in.st.Merchant, in.receivedAt, in.pending)
	if err != nil {
		return err
	}
	if in.st.FirstSequence == 0 {
		in.st.FirstSequence = first
	}
	in.st.LastSequence = last
	in.st.Accepted += int32(len(in.pending))
	in.pending = in.pending[:0]
	return nil
}

// settle is what ends the feed: stop, or when the body was read completely,
// a final re-check of its authorization if rows are waiting to be stored
// (nil when it passes).
func (in *ingest) settle(stop error) error {
	if stop != nil || len(in.pending) == 0 {
		return stop
	}
	return in.recheck()
}

// finish stores the remaining rows and the feed's end. stop is what ended
// the feed early (nil: it was read completely). It returns the status and
// an error only if storing failed.
func (in *ingest) finish(stop error) (*pb.FeedStatus, error) {
	storeErr := in.flush()
	var revoked *revokedError
	if errors.As(storeErr, &revoked) {
		if stop == nil {
			stop = storeErr
		}
		storeErr = nil
	}
	switch {
	case storeErr != nil:
		in.st.State = pb.FeedState_FEED_STATE_FAILED
		in.st.Error = "storing rows failed; the rows counted as accepted are stored"
	case stop != nil:
		in.st.State = pb.FeedState_FEED_STATE_FAILED
		in.st.Error = fmt.Sprintf("%v; the %d rows accepted before it are stored and will be published", stop, in.st.Accepted)
	default:
		in.st.State = pb.FeedState_FEED_STATE_COMPLETE
	}
	if storeErr == nil {
		if _, err := in.s.ob.End(in.st); err != nil {
			storeErr = err
		}
	}
	if st, ok := in.s.ob.Feed(in.st.FeedId); ok {
		in.st.Published = st.Published
		in.st.Locations = st.Locations
	}
	in.s.log.Info("feed received", "merchant", in.st.Merchant, "feed", in.st.FeedId, "state", in.st.State.String(),
		"accepted", in.st.Accepted, "rejected", in.st.Rejected, "first_sequence", in.st.FirstSequence, "last_sequence", in.st.LastSequence)
	if storeErr != nil {
		in.s.log.Error("feed rows could not be stored", "merchant", in.st.Merchant, "feed", in.st.FeedId, "error", storeErr)
	}
	return in.st, storeErr
}
