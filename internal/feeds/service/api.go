package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// RegisterGRPC registers FeedService and RegistryService.
func (s *Service) RegisterGRPC(g *grpc.Server) {
	pb.RegisterFeedServiceServer(g, s.feeds)
	pb.RegisterRegistryServiceServer(g, s.registryS)
}

// RegisterHTTP registers the streamed upload on mux and the unary APIs on
// the grpc-gateway mux.
func (s *Service) RegisterHTTP(mux *http.ServeMux, gw *runtime.ServeMux) error {
	mux.HandleFunc("POST /v1/merchants/{merchant}/feeds", s.handleUpload)
	if err := pb.RegisterFeedServiceHandlerServer(context.Background(), gw, s.feeds); err != nil {
		return err
	}
	return pb.RegisterRegistryServiceHandlerServer(context.Background(), gw, s.registryS)
}

// grpcToken is the bearer token of a gRPC call ("" if none).
func grpcToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t := registry.BearerToken(v); t != "" {
			return t
		}
	}
	return ""
}

// The gateway maps errors to statuses (gateway/apierr, installed once by
// gateway.New); the handlers here return errors. apierr cannot import the
// feeds packages, so their errors are given one of its kinds here.

// outboxError classifies an outbox error: asking to re-publish what
// retention removed is FailedPrecondition; anything else is a fault.
func outboxError(err error) error {
	if errors.Is(err, outbox.ErrRetention) {
		return apierr.Classify(apierr.ErrFailedPrecondition, err)
	}
	return err
}

// bodyError classifies what stopped the reading of a feed body: a limit is
// ErrTooLarge (413 over REST), anything else (a bad header, a body that
// ended early) the caller's mistake.
func bodyError(err error) error {
	var le *feeds.LimitError
	if errors.As(err, &le) {
		return apierr.Classify(apierr.ErrTooLarge, err)
	}
	var te *feeds.TimeoutError
	if errors.As(err, &te) {
		return apierr.Classify(context.DeadlineExceeded, te) // 408 over REST (handleUpload)
	}
	return apierr.Invalid(err)
}

// streamStopKind classifies what ended a gRPC upload early: a limit is
// ResourceExhausted, a stream that broke off Canceled; anything else keeps
// its own kind (a message for another merchant InvalidArgument, a storage
// failure Internal).
func streamStopKind(stop error) error {
	var le *feeds.LimitError
	var te *feeds.TruncatedError
	var to *feeds.TimeoutError
	switch {
	case errors.As(stop, &le):
		return apierr.ErrTooLarge
	case errors.As(stop, &to):
		return context.DeadlineExceeded
	case errors.As(stop, &te) && (errors.Is(te.Err, apierr.ErrInvalidArgument) || status.Code(te.Err) == codes.InvalidArgument):
		return apierr.ErrInvalidArgument // a message that did not decode
	case errors.As(stop, &te):
		return context.Canceled
	}
	return stop
}

// timedRecv returns a Recv for stream bounded by the idle and body
// timeouts (feeds.Limits): one that waits too long returns a
// *feeds.TimeoutError, and the stream is not read again.
func (s *Service) timedRecv(stream grpc.ClientStreamingServer[pb.UploadFeedRequest, pb.FeedStatus]) func() (*pb.UploadFeedRequest, error) {
	lim := s.o.Limits
	if lim.IdleTimeout == 0 && lim.BodyTimeout == 0 {
		return stream.Recv
	}
	type received struct {
		m   *pb.UploadFeedRequest
		err error
	}
	start := time.Now()
	next := make(chan received, 1)
	return func() (*pb.UploadFeedRequest, error) {
		go func() {
			m, err := stream.Recv() // ends when the handler returns, if not before
			next <- received{m, err}
		}()
		wait, te := timeoutOf(lim, start, time.Now())
		if wait <= 0 {
			return nil, te
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case r := <-next:
			return r.m, r.err
		case <-t.C:
			return nil, te
		}
	}
}

// timeoutOf is how long an upload that started at start may wait, at now,
// for its next bytes, and the error it stops with when that runs out.
func timeoutOf(lim feeds.Limits, start, now time.Time) (time.Duration, *feeds.TimeoutError) {
	wait, te := time.Duration(0), (*feeds.TimeoutError)(nil)
	if lim.IdleTimeout > 0 {
		wait, te = lim.IdleTimeout, &feeds.TimeoutError{Idle: true, Limit: lim.IdleTimeout}
	}
	if lim.BodyTimeout > 0 {
		if left := start.Add(lim.BodyTimeout).Sub(now); te == nil || left < wait {
			wait, te = max(left, 0), &feeds.TimeoutError{Limit: lim.BodyTimeout}
		}
	}
	return wait, te
}

// deadlineBody reads a REST body under the idle and body timeouts: before
// every read it sets the connection's read deadline to the nearer of the
// two, and a read that hits it returns a *feeds.TimeoutError. When the body
// ends it clears the deadline (the connection may serve another request).
// A connection that takes no deadlines (http.ErrNotSupported) is read
// without them, with a warning: the upload is not the caller's fault.
type deadlineBody struct {
	r     io.Reader
	rc    *http.ResponseController
	lim   feeds.Limits
	start time.Time
	log   *slog.Logger
	set   bool // a deadline is set
	off   bool // the connection takes no deadlines
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	wait, te := timeoutOf(b.lim, b.start, time.Now())
	if te == nil || b.off {
		return b.r.Read(p)
	}
	if wait <= 0 {
		return 0, te
	}
	if err := b.rc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		b.off = true
		b.log.Warn("feed upload read without its idle and body timeouts: the connection takes no read deadline", "error", err)
		return b.r.Read(p)
	}
	b.set = true
	n, err := b.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, te
	}
	if err != nil {
		b.clear()
	}
	return n, err
}

// clear removes the read deadline, if one was set.
func (b *deadlineBody) clear() {
	if !b.set {
		return
	}
	b.set = false
	if err := b.rc.SetReadDeadline(time.Time{}); err != nil {
		b.log.Warn("clearing a feed upload's read deadline", "error", err)
	}
}

// authorize checks a merchant token for merchant.
func (s *Service) authorize(token, merchant string) (*pb.RegistryEntry, error) {
	if token == "" {
		return nil, registry.ErrUnauthenticated
	}
	e, err := s.reg.Authorize(token, merchant)
	if errors.Is(err, registry.ErrPermissionDenied) {
		return nil, apierr.Public(err, "this token belongs to another merchant")
	}
	return e, err
}

// authorizeAdmin checks the admin token; merchant tokens are refused.
func (s *Service) authorizeAdmin(ctx context.Context) error {
	tok := grpcToken(ctx)
	if !s.admin.Enabled() {
		return apierr.Public(registry.ErrPermissionDenied, "the admin API is disabled: start the gateway with --admin-token-file")
	}
	if s.admin.Check(tok) {
		return nil
	}
	if tok != "" {
		if _, err := s.reg.Authenticate(tok); err == nil {
			return apierr.Public(registry.ErrPermissionDenied, "merchant tokens may not use the admin API")
		}
	}
	return apierr.Public(registry.ErrUnauthenticated, "missing or invalid admin token: send 'authorization: Bearer <admin token>'")
}

// --- FeedService ---

type feedServer struct {
	pb.UnimplementedFeedServiceServer
	s *Service
}

func (f *feedServer) UploadFeed(stream grpc.ClientStreamingServer[pb.UploadFeedRequest, pb.FeedStatus]) error {
	s := f.s
	// The idle and body timeouts hold from the start: a stream that sends
	// nothing is not held for the client's whole deadline.
	recv := s.timedRecv(stream)
	first, err := recv()
	var te *feeds.TimeoutError
	switch {
	case errors.Is(err, io.EOF):
		return apierr.Public(apierr.ErrInvalidArgument, "empty upload: the first message must name the merchant")
	case errors.As(err, &te):
		return &apierr.Error{Kind: context.DeadlineExceeded, Msg: te.Error() + ", before its first message", Cause: te}
	case err != nil:
		return err
	}
	merchant := first.GetMerchant()
	token := grpcToken(stream.Context())
	entry, err := s.authorize(token, merchant)
	if err != nil {
		return err
	}
	in := s.begin(token, entry)
	line := 0
	var stop error
	msg := first
	for stop == nil {
		if m := msg.GetMerchant(); m != "" && m != merchant {
			stop = apierr.Publicf(apierr.ErrInvalidArgument, "message names merchant %q, the upload is for %q", m, merchant)
			break
		}
		for _, r := range msg.GetRows() {
			line++
			if line > s.o.Limits.MaxRows {
				stop = &feeds.LimitError{Line: line, Message: "the feed has more than the limit of " + itoa(s.o.Limits.MaxRows) + " rows (stopped at row " + itoa(line) + ")"}
				break
			}
			row := feeds.Row{Line: line, SKU: r.GetSku(), Location: r.GetLocation(), OnHand: r.GetOnHand()}
			if r.GetAsOf() != nil {
				if err := r.GetAsOf().CheckValid(); err != nil {
					in.reject(line, "as_of is not a valid time")
					continue
				}
				row.AsOf = r.GetAsOf().AsTime()
			}
			if err := in.add(row); err != nil {
				stop = err
				break
			}
		}
		if stop != nil {
			break
		}
		if reason := msg.GetAbort(); reason != "" {
			stop = &clientAbort{reason: truncateReason(reason)}
			break
		}
		msg, err = recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &te) {
			stop = err
		} else if err != nil {
			stop = &feeds.TruncatedError{Line: line, Err: err}
		}
	}
	stop = in.settle(stop)
	st, storeErr := in.finish(stop)
	if storeErr != nil {
		return storeErr
	}
	var abort *clientAbort
	if stop != nil && !errors.As(stop, &abort) {
		return &apierr.Error{Kind: streamStopKind(stop), Msg: fmt.Sprintf("feed %s: %s", st.FeedId, st.Error), Cause: stop}
	}
	return stream.SendAndClose(st)
}

func itoa(n int) string { return strconv.Itoa(n) }

// clientAbort is an upload its client ended early (UploadFeedRequest.abort):
// the feed is recorded failed with the client's reason, and the client gets
// the feed's status, not an error.
type clientAbort struct{ reason string }

func (e *clientAbort) Error() string { return "the client stopped the upload: " + e.reason }

// truncateReason bounds a client's abort reason to 500 bytes of valid UTF-8.
func truncateReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= 500 {
		return s
	}
	cut := 500
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func (f *feedServer) GetFeed(ctx context.Context, req *pb.GetFeedRequest) (*pb.FeedStatus, error) {
	s := f.s
	if _, err := s.authorize(grpcToken(ctx), req.GetMerchant()); err != nil {
		return nil, err
	}
	st, ok := s.ob.Feed(req.GetFeedId())
	if !ok || st.GetMerchant() != req.GetMerchant() {
		return nil, apierr.Publicf(apierr.ErrNotFound, "feed %q not found on this gateway (feeds are answered by the gateway instance that received them, while the outbox retains them)", req.GetFeedId())
	}
	return st, nil
}

func (f *feedServer) ListLocations(ctx context.Context, req *pb.ListLocationsRequest) (*pb.ListLocationsResponse, error) {
	s := f.s
	entry, err := s.authorize(grpcToken(ctx), req.GetMerchant())
	if err != nil {
		return nil, err
	}
	ttl := registry.StaleAfter(entry, s.o.DefaultStaleAfter)
	now := s.now()
	seen := s.ob.Locations(req.GetMerchant())
	out := &pb.ListLocationsResponse{Merchant: req.GetMerchant(), StaleAfter: durationpb.New(ttl)}
	for _, l := range entry.GetLocations() {
		ls := &pb.LocationStatus{Location: l, Stale: true}
		if last, ok := seen[l]; ok {
			ls.LastFeedAt, ls.LastFeedId = timestamppb.New(last.At), last.FeedID
			ls.StaleAt = timestamppb.New(last.At.Add(ttl))
			ls.Stale = !now.Before(last.At.Add(ttl))
		}
		out.Locations = append(out.Locations, ls)
	}
	return out, nil
}

// --- REST upload ---

// jsonOut writes JSON as the OpenAPI document describes it and as the
// gateway's REST answers do: unset timestamps are left out, not null.
var jsonOut = protojson.MarshalOptions{EmitDefaultValues: true}

// handleUpload is POST /v1/merchants/{merchant}/feeds: the body is read a
// row at a time and accepted rows are stored in the outbox before the
// answer, a skuflow.v1.FeedStatus in JSON.
func (s *Service) handleUpload(w http.ResponseWriter, r *http.Request) {
	merchant := r.PathValue("merchant")
	entry, err := s.authorize(registry.BearerToken(r.Header.Get("Authorization")), merchant)
	if err != nil {
		apierr.WriteHTTP(w, r, s.log, err)
		return
	}
	format, err := feeds.FormatOf(r.Header.Get("Content-Type"))
	if err != nil {
		w.Header().Set("Accept-Post", "text/csv, application/x-ndjson")
		apierr.WriteHTTP(w, r, s.log, apierr.Classify(apierr.ErrUnsupportedMediaType, err))
		return
	}
	lim := s.o.Limits
	if lim.MaxBodyBytes > 0 && r.ContentLength > lim.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		apierr.WriteHTTP(w, r, s.log, apierr.Publicf(apierr.ErrTooLarge,
			"body of %d bytes is larger than the limit of %d bytes; nothing was stored", r.ContentLength, lim.MaxBodyBytes))
		return
	}
	in := s.begin(registry.BearerToken(r.Header.Get("Authorization")), entry)
	var body io.Reader = r.Body
	if lim.IdleTimeout > 0 || lim.BodyTimeout > 0 {
		db := &deadlineBody{r: r.Body, rc: http.NewResponseController(w), lim: lim, start: time.Now(), log: s.log}
		defer db.clear()
		body = db
	}
	rd := feeds.NewReader(body, format, lim)
	var stop error
	for {
		row, err := rd.Next()
		var re *feeds.RowError
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &re) {
			in.reject(re.Line, re.Reason)
			continue
		}
		if err != nil {
			stop = bodyError(err)
			break
		}
		if err := in.add(row); err != nil {
			stop = err // storing failed: a fault
			break
		}
	}
	stop = in.settle(stop)
	st, storeErr := in.finish(stop)
	code := http.StatusOK
	var timeout *feeds.TimeoutError
	switch {
	case storeErr != nil:
		code = apierr.HTTPStatus(storeErr)
	case errors.As(stop, &timeout):
		code = http.StatusRequestTimeout
	case stop != nil:
		code = apierr.HTTPStatus(stop)
	}
	if stop != nil {
		// Whatever is left of the body is not read: close the connection
		// rather than drain it.
		w.Header().Set("Connection", "close")
	}
	b, err := jsonOut.Marshal(st)
	if err != nil {
		apierr.WriteHTTP(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/v1/merchants/"+merchant+"/feeds/"+st.FeedId)
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// --- RegistryService ---

type registryServer struct {
	pb.UnimplementedRegistryServiceServer
	s *Service
}

func merchantOut(e *pb.RegistryEntry) *pb.Merchant {
	m := &pb.Merchant{MerchantId: e.GetMerchantId(), Locations: slices.Clone(e.GetLocations()), StaleAfter: e.GetStaleAfter(),
		Tokens: int32(len(e.GetTokens())), Version: e.GetVersion(), UpdatedAt: e.GetUpdatedAt()}
	for _, l := range e.GetLocations() {
		m.LocationChannels = append(m.LocationChannels, &pb.LocationChannels{Location: l, Channels: registry.Channels(e, l)})
	}
	return m
}

func staleAfterOf(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, apierr.Invalid(fmt.Errorf("stale_after: %w", err))
	}
	return d.AsDuration(), nil
}

func (a *registryServer) CreateMerchant(ctx context.Context, req *pb.CreateMerchantRequest) (*pb.MerchantToken, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	d, err := staleAfterOf(req.GetStaleAfter())
	if err != nil {
		return nil, err
	}
	tok, e, err := s.reg.Create(ctx, req.GetMerchantId(), req.GetLocations(), req.GetChannels(), d)
	if err != nil {
		return nil, changeError(err)
	}
	return &pb.MerchantToken{Merchant: merchantOut(e), Token: tok}, nil
}

func (a *registryServer) GetMerchant(ctx context.Context, req *pb.GetMerchantRequest) (*pb.Merchant, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	if err := inventory.ValidateID("merchant", req.GetMerchantId()); err != nil {
		return nil, apierr.Invalid(err)
	}
	return merchantOrErr(s.reg.Get(req.GetMerchantId()))
}

// merchantOrErr answers a registry call that returns an entry.
func merchantOrErr(e *pb.RegistryEntry, err error) (*pb.Merchant, error) {
	if err != nil {
		return nil, changeError(err)
	}
	return merchantOut(e), nil
}

// changeError classifies a registry change's error: a registry too big for
// one message, or a clock too far ahead, is FailedPrecondition (no retry
// helps until an operator acts); the others keep their kinds.
func changeError(err error) error {
	if errors.Is(err, registry.ErrFull) || errors.Is(err, registry.ErrClockSkew) {
		return apierr.Classify(apierr.ErrFailedPrecondition, err)
	}
	return err
}

func (a *registryServer) ListMerchants(ctx context.Context, _ *pb.ListMerchantsRequest) (*pb.ListMerchantsResponse, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	all, err := s.reg.List()
	if err != nil {
		return nil, err
	}
	out := &pb.ListMerchantsResponse{}
	for _, e := range all {
		out.Merchants = append(out.Merchants, merchantOut(e))
	}
	return out, nil
}

func (a *registryServer) AddLocations(ctx context.Context, req *pb.LocationsRequest) (*pb.Merchant, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	return merchantOrErr(s.reg.AddLocations(ctx, req.GetMerchantId(), req.GetLocations(), req.GetChannels()))
}

func (a *registryServer) RemoveLocations(ctx context.Context, req *pb.LocationsRequest) (*pb.Merchant, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	if len(req.GetChannels()) > 0 {
		return nil, apierr.Public(apierr.ErrInvalidArgument, "channels apply to added locations only; remove locations without them")
	}
	return merchantOrErr(s.reg.RemoveLocations(ctx, req.GetMerchantId(), req.GetLocations()))
}

func (a *registryServer) SetStaleAfter(ctx context.Context, req *pb.SetStaleAfterRequest) (*pb.Merchant, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	d, err := staleAfterOf(req.GetStaleAfter())
	if err != nil {
		return nil, err
	}
	return merchantOrErr(s.reg.SetStaleAfter(ctx, req.GetMerchantId(), d))
}

func (a *registryServer) RotateToken(ctx context.Context, req *pb.RotateTokenRequest) (*pb.MerchantToken, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	tok, e, err := s.reg.RotateToken(ctx, req.GetMerchantId())
	if err != nil {
		return nil, changeError(err)
	}
	return &pb.MerchantToken{Merchant: merchantOut(e), Token: tok}, nil
}

func outboxStatus(st outbox.Status) *pb.OutboxStatus {
	return &pb.OutboxStatus{FirstSequence: st.First, LastSequence: st.Last, Checkpoint: st.Checkpoint, Bytes: st.Bytes, Segments: int32(st.Segments)}
}

func (a *registryServer) Republish(ctx context.Context, req *pb.RepublishRequest) (*pb.OutboxStatus, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	var seq uint64
	switch since := req.GetSince().(type) {
	case *pb.RepublishRequest_Sequence:
		seq = since.Sequence
	case *pb.RepublishRequest_Time:
		if err := since.Time.CheckValid(); err != nil {
			return nil, apierr.Invalid(fmt.Errorf("time: %w", err))
		}
		var err error
		if seq, err = s.ob.SequenceAt(since.Time.AsTime()); err != nil {
			return nil, outboxError(err)
		}
	default:
		return nil, apierr.Public(apierr.ErrInvalidArgument, "give a sequence or a time to re-publish from")
	}
	if _, err := s.ob.Rewind(seq); err != nil {
		return nil, outboxError(err)
	}
	s.log.Info("outbox re-publication requested", "from_sequence", seq)
	return outboxStatus(s.ob.Status()), nil
}

func (a *registryServer) GetOutbox(ctx context.Context, _ *pb.GetOutboxRequest) (*pb.OutboxStatus, error) {
	s := a.s
	if err := s.authorizeAdmin(ctx); err != nil {
		return nil, err
	}
	return outboxStatus(s.ob.Status()), nil
}
