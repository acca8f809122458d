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
	"time"

	"golang.org/x/sync/errgroup"

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
}

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
	dir := o.OutboxDir
	if dir == "" {
		dir = filepath.Join(o.DataDir, "outbox")
	}
	var err error
	if s.ob, err = outbox.Open(outbox.Options{Dir: dir, Retention: o.Retention, RetentionBytes: o.RetentionBytes, Logger: log}); err != nil {
		return nil, err
	}
	if s.reg, err = registry.New(registry.Options{Kafka: o.Kafka, DataDir: filepath.Join(o.DataDir, "registry"), Logger: log, Channels: o.Channels}); err != nil {
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
type ingest struct {
	s          *Service
	st         *pb.FeedStatus
	entry      *pb.RegistryEntry
	receivedAt time.Time
	pending    []inventory.StockLevel
}

func (s *Service) begin(entry *pb.RegistryEntry) *ingest {
	now := s.now().UTC()
	in := &ingest{s: s, entry: entry, receivedAt: now, st: &pb.FeedStatus{FeedId: newFeedID(now), Merchant: entry.GetMerchantId(),
		State: pb.FeedState_FEED_STATE_RECEIVING}}
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

// add validates a parsed row and stores it (in batches).
func (in *ingest) add(row feeds.Row) error {
	l, err := feeds.Check(row, in.st.Merchant, func(loc string) bool { return registry.Owns(in.entry, loc) }, in.receivedAt, in.s.o.Limits)
	if err != nil {
		in.reject(row.Line, err.Error())
		return nil
	}
	in.pending = append(in.pending, l)
	if len(in.pending) >= flushRows {
		return in.flush()
	}
	return nil
}

func (in *ingest) flush() error {
	if len(in.pending) == 0 {
		return nil
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

// finish stores the remaining rows and the feed's end. stop is what ended
// the feed early (nil: it was read completely). It returns the status and
// an error only if storing failed.
func (in *ingest) finish(stop error) (*pb.FeedStatus, error) {
	storeErr := in.flush()
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
