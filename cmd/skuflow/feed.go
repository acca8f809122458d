package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/registry"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// feedServiceFlags configure the merchant feeds service of serve and dev.
type feedServiceFlags struct {
	adminTokenFile string
	outboxDir      string
	limits         feeds.Limits
	retention      time.Duration
	retentionBytes int64
	publish        bool
	// maxEventSkew is the processors' --max-event-skew where this process
	// runs them too (dev): the registry writer keeps the merchant policies
	// it publishes within it. 0: the registry's default.
	maxEventSkew time.Duration
}

func (f *feedServiceFlags) register(cmd *cobra.Command) {
	d := feeds.DefaultLimits()
	f.limits.MaxRejectedShown, f.limits.MaxClockSkew = d.MaxRejectedShown, d.MaxClockSkew
	cmd.Flags().StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token for the merchant registry API (empty: admin API disabled)")
	cmd.Flags().StringVar(&f.outboxDir, "feeds-outbox", "", "directory of the merchant feeds outbox (default <data>/feeds/outbox)")
	cmd.Flags().Int64Var(&f.limits.MaxBodyBytes, "feeds-max-body", d.MaxBodyBytes, "largest feed body in bytes")
	cmd.Flags().IntVar(&f.limits.MaxRowBytes, "feeds-max-row", d.MaxRowBytes, "longest feed row in bytes")
	cmd.Flags().IntVar(&f.limits.MaxRows, "feeds-max-rows", d.MaxRows, "most rows in one feed")
	cmd.Flags().DurationVar(&f.limits.IdleTimeout, "feeds-idle-timeout", d.IdleTimeout, "stop a feed upload that sends nothing for this long (REST 408, gRPC DEADLINE_EXCEEDED; 0: no bound)")
	cmd.Flags().DurationVar(&f.limits.BodyTimeout, "feeds-body-timeout", d.BodyTimeout, "stop a feed upload that takes longer than this (REST 408, gRPC DEADLINE_EXCEEDED; 0: no bound)")
	cmd.Flags().DurationVar(&f.retention, "feeds-retention", 7*24*time.Hour, "keep published outbox records this long, for re-publication (0: forever)")
	cmd.Flags().Int64Var(&f.retentionBytes, "feeds-retention-bytes", 0, "remove the oldest published outbox segments beyond this many bytes (0: no bound)")
	cmd.Flags().BoolVar(&f.publish, "feeds-publish", true, "publish the outbox to the supply topic (false holds accepted rows back)")
}

// factory builds the feeds service factory; staleAfter is the merchant TTL
// default of --merchant-stale-after.
func (f *feedServiceFlags) factory(staleAfter time.Duration) (app.ServiceFactory, error) {
	admin := ""
	if f.adminTokenFile != "" {
		b, err := os.ReadFile(f.adminTokenFile)
		if err != nil {
			return app.ServiceFactory{}, fmt.Errorf("--admin-token-file: %w", err)
		}
		if admin = strings.TrimSpace(string(b)); len(admin) < 16 {
			return app.ServiceFactory{}, fmt.Errorf("--admin-token-file %s: the admin token must be at least 16 characters", f.adminTokenFile)
		}
	}
	if f.retention < 0 || f.retentionBytes < 0 {
		return app.ServiceFactory{}, errors.New("--feeds-retention and --feeds-retention-bytes must not be negative")
	}
	return app.Feeds(service.Options{OutboxDir: f.outboxDir, Limits: f.limits, Retention: f.retention, RetentionBytes: f.retentionBytes,
		AdminToken: admin, DefaultStaleAfter: staleAfter, Publish: f.publish, MaxEventSkew: f.maxEventSkew}), nil
}

// devAdminToken makes sure a dev stack has an admin token: it creates
// <data>/admin-token (mode 0600) with a random one if there is none.
func devAdminToken(data string) (string, error) {
	path := filepath.Join(data, "admin-token")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600)
}

// defaultGRPCAddr is where `skuflow dev` and `skuflow serve` listen for gRPC
// by default (--grpc :9090).
const defaultGRPCAddr = "localhost:9090"

// apiFlags are the flags of commands that call a running gateway over gRPC.
type apiFlags struct {
	addr      string
	removed   string // --url, the REST base URL of earlier versions
	tokenFile string
	timeout   time.Duration
}

// register adds --grpc, the token flag and --timeout (timeout is its
// default; 0: no limit).
func (a *apiFlags) register(cmd *cobra.Command, tokenFlag, tokenHelp string, timeout time.Duration) {
	cmd.Flags().StringVar(&a.addr, "grpc", defaultGRPCAddr, "gateway gRPC address, host:port (plaintext; the gateway's --grpc)")
	cmd.Flags().StringVar(&a.removed, "url", "", "removed: the CLI calls the gateway over gRPC; use --grpc host:port")
	_ = cmd.Flags().MarkHidden("url")
	cmd.Flags().StringVar(&a.tokenFile, tokenFlag, "", tokenHelp)
	cmd.Flags().DurationVar(&a.timeout, "timeout", timeout, "give up on a call after this long (0: no limit)")
}

// token reads the token file. The token itself never appears in an error.
func (a *apiFlags) token(flag string) (string, error) {
	if a.tokenFile == "" {
		return "", fmt.Errorf("--%s is required", flag)
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--%s %s is empty", flag, a.tokenFile)
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return "", fmt.Errorf("--%s %s does not hold a token: tokens are one word of printable ASCII", flag, a.tokenFile)
		}
	}
	return t, nil
}

// target checks --grpc and --timeout and returns the address to dial.
func (a *apiFlags) target() (string, error) {
	if a.removed != "" {
		return "", fmt.Errorf("--url is no longer supported: the CLI calls the gateway over gRPC; give its gRPC address with --grpc host:port (default %s)", defaultGRPCAddr)
	}
	if a.timeout < 0 {
		return "", fmt.Errorf("--timeout %s is negative (0: no limit)", a.timeout)
	}
	addr := strings.TrimSpace(a.addr)
	if strings.Contains(addr, "://") {
		return "", fmt.Errorf("--grpc %q is a URL: give the gateway's gRPC address as host:port, e.g. --grpc %s", a.addr, defaultGRPCAddr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--grpc %q is not host:port, e.g. --grpc %s", a.addr, defaultGRPCAddr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("--grpc %q: port %q is not a number from 1 to 65535", a.addr, port)
	}
	if host == "" {
		host = "localhost" // ":9090", as the listen flags spell it
	}
	return net.JoinHostPort(host, port), nil
}

// dial connects to --grpc in plaintext (TLS comes later). gRPC connects
// lazily: an unreachable gateway shows as UNAVAILABLE on the first call.
func (a *apiFlags) dial() (*grpc.ClientConn, error) {
	target, err := a.target()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("dns:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("--grpc %q: %w", a.addr, err)
	}
	return conn, nil
}

// callContext bounds a call by --timeout and carries the token as the
// gateway reads it: `authorization: Bearer <token>` metadata.
func (a *apiFlags) callContext(ctx context.Context, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := withTimeout(ctx, a.timeout)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), cancel
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// rpcError is a failed gateway call: its gRPC code and message, and a hint
// about what to do. It never holds a token (the gateway's messages don't).
type rpcError struct {
	call string
	code codes.Code
	msg  string
	hint string
	// local: the status comes from the client (no connection, a deadline,
	// an interrupt), not from the gateway.
	local bool
}

// transportFailure tells a client-side UNAVAILABLE (no connection) from
// one the gateway sent.
func transportFailure(msg string) bool {
	for _, s := range []string{"connection error", "transport", "dial", "name resolver", "produced zero addresses", "connection closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (e *rpcError) Error() string {
	s := fmt.Sprintf("%s: the gateway answered %s: %s", e.call, codeName(e.code), e.msg)
	if e.local {
		s = fmt.Sprintf("%s: %s (%s)", e.call, e.msg, codeName(e.code))
	}
	if e.hint != "" {
		s += "; " + e.hint
	}
	return s
}

// codeName spells a code as the gRPC spec does: PERMISSION_DENIED.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// fail turns an error of call, made with ctx, into a CLI error with the
// gRPC code.
func (a *apiFlags) fail(ctx context.Context, call string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", call, err)
	}
	e := &rpcError{call: call, code: st.Code(), msg: st.Message()}
	switch st.Code() {
	case codes.Unavailable:
		if !transportFailure(st.Message()) {
			e.hint = "retry shortly" // the gateway answered: e.g. its registry is still recovering
			break
		}
		e.msg, e.local = "cannot reach the gateway at "+a.addr+": "+st.Message(), true
		e.hint = "is it running, and is --grpc its gRPC (not REST) address?"
		if strings.Contains(st.Message(), "HTTP/1") {
			e.hint = fmt.Sprintf("is %s the gateway's gRPC address? Something answered in HTTP/1; the REST address does not speak gRPC", a.addr)
		}
	case codes.DeadlineExceeded:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.msg, e.local = fmt.Sprintf("no answer within --timeout %s", a.timeout), true
			e.hint = "the gateway may be busy or still starting; retry or raise --timeout"
		}
	case codes.Canceled:
		if errors.Is(ctx.Err(), context.Canceled) {
			e.msg, e.local = "interrupted", true
		}
	case codes.Unauthenticated:
		e.hint = "check the token file"
	case codes.Unimplemented, codes.Unknown, codes.Internal:
		if strings.Contains(st.Message(), "HTTP status") || strings.Contains(st.Message(), "content-type") {
			e.hint = fmt.Sprintf("is %s the gateway's gRPC address? Its REST address does not speak gRPC", a.addr)
		}
	}
	return e
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func newFeedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Publish a merchant's inventory feed and inspect feeds",
		Long: `Publish a merchant's inventory feed and inspect feeds through a gateway's
gRPC API (--grpc host:port, default ` + defaultGRPCAddr + `). The merchant's API token
is read from --token-file and sent as 'authorization: Bearer' metadata.`,
	}
	cmd.AddCommand(newFeedPublishCmd(), newFeedStatusCmd(), newFeedLocationsCmd(), newFeedRepublishCmd())
	return cmd
}

// merchantFlag checks --merchant.
func merchantFlag(m string) error {
	if m == "" {
		return errors.New("--merchant is required")
	}
	if err := inventory.ValidateID("merchant", m); err != nil {
		return fmt.Errorf("--merchant: %w", err)
	}
	return nil
}

func newFeedPublishCmd() *cobra.Command {
	var a apiFlags
	var merchant, format string
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "publish [--grpc host:port] --merchant M --token-file F feed.csv|feed.ndjson",
		Short: "Upload a feed file (streamed) and print the summary with the rejected rows",
		Long: `Upload a merchant's stock feed to a skuflow gateway with the client-streaming
gRPC call FeedService/UploadFeed. The file is read and sent a batch of rows at
a time, so its size does not matter; a progress bar shows on a terminal.

CSV (text/csv) starts with a header naming the columns, in any order:
  sku,location,on_hand,as_of
  SKU-1,ACME-1,12,2026-11-21T10:00:00Z
  SKU-2,ACME-1,0
NDJSON (application/x-ndjson), one object per line:
  {"sku":"SKU-1","location":"ACME-1","on_hand":12,"as_of":"2026-11-21T10:00:00Z"}
The format comes from the extension (.csv; .ndjson or .jsonl) or --format.

as_of is optional (the receive time is used). Rows with problems are rejected
one by one and listed with their line number in the file; the others are
stored durably before the gateway answers. A row that is invalid on its own
(say, an on_hand that is not a number or negative) is rejected here and not
sent, so the gateway's record of the feed ('feed status') counts only the
rows it received. A broken CSV header stops before anything is sent. Exit
status 1 if any row was rejected or the upload failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if err := merchantFlag(merchant); err != nil {
				return err
			}
			ff, err := feedFormat(format, args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return fmt.Errorf("%s is a directory, not a feed file", args[0])
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			var body io.Reader = f
			stderr := cmd.ErrOrStderr()
			var bar *progressbar.ProgressBar
			if file, ok := stderr.(*os.File); ok && !noProgress && term.IsTerminal(int(file.Fd())) {
				bar = progressbar.NewOptions64(fi.Size(), progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
					progressbar.OptionSetDescription("uploading "+filepath.Base(args[0])), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetWidth(30), progressbar.OptionShowElapsedTimeOnFinish(),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
				body = io.TeeReader(f, bar)
			}
			ctx, cancel := a.callContext(cmd.Context(), token)
			defer cancel()
			res, err := uploadFeed(ctx, pb.NewFeedServiceClient(conn), merchant, feeds.NewReader(body, ff, uploadLimits))
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				var ne *nothingSentError
				if errors.As(err, &ne) {
					return fmt.Errorf("%s: %w; nothing was uploaded", args[0], ne.err)
				}
				return a.fail(ctx, "feed publish", err)
			}
			w := cmd.OutOrStdout()
			printSummary(w, res.summary())
			if res.localRejected > 0 {
				fmt.Fprintf(w, "  (%d of them rejected here, not sent: 'feed status' counts only the rows the gateway received)\n", res.localRejected)
			}
			switch rejected := int64(res.status.GetRejected()) + res.localRejected; {
			case res.stop != nil:
				return fmt.Errorf("%s: %w; reading stopped there, the %d rows before it were uploaded as feed %s", args[0], res.stop, res.sent, res.status.GetFeedId())
			case rejected > 0:
				return fmt.Errorf("%d rows rejected", rejected)
			}
			return nil
		},
	}
	a.register(cmd, "token-file", "file holding the merchant's API token (required)", 0)
	cmd.Flags().StringVar(&merchant, "merchant", "", "merchant id (required)")
	cmd.Flags().StringVar(&format, "format", "", "csv or ndjson (default: from the file extension)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar even on a terminal")
	return cmd
}

func feedFormat(format, path string) (feeds.Format, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".ndjson", ".jsonl":
			format = "ndjson"
		default:
			return 0, fmt.Errorf("cannot tell the format of %s from its extension: give --format csv or --format ndjson", path)
		}
	}
	switch format {
	case "csv":
		return feeds.CSV, nil
	case "ndjson":
		return feeds.NDJSON, nil
	}
	return 0, fmt.Errorf("--format %q: want csv or ndjson", format)
}

// uploadLimits bound what the CLI reads of a feed file. The gateway bounds
// what it takes over gRPC (rows, and each message's size); the CLI only
// keeps one line from taking unbounded memory: 1 MiB, far beyond any valid
// row (its fields are bounded ids, a count and a time).
var uploadLimits = func() feeds.Limits {
	l := feeds.DefaultLimits()
	l.MaxBodyBytes = 0
	l.MaxRows = math.MaxInt
	l.MaxRowBytes = 1 << 20
	return l
}()

const (
	// A message of the upload stream holds at most this many rows or
	// about this many bytes (the gateway takes messages up to 4 MiB).
	uploadBatchRows  = 1000
	uploadBatchBytes = 1 << 20
	// maxShownRejects is how many rejected rows the summary lists.
	maxShownRejects = 100
)

// uploadResult is what an upload did: the gateway's answer and the rows the
// CLI rejected itself.
type uploadResult struct {
	status        *pb.FeedStatus
	sent          int
	lines         lineMap
	localRejected int64
	localRows     []*pb.RejectedRow // the first maxShownRejects
	stop          error             // what ended reading the file early
}

// uploadFeed streams rd's rows to UploadFeed, a batch per message. Rows that
// are invalid on their own are kept back and counted. An error that stops
// the reader before a row was read (a broken CSV header) returns a
// *nothingSentError and opens no call; later, it ends the upload with the
// rows read before it (res.stop), which the gateway records as the feed's
// failure (UploadFeedRequest.abort). An error of the call is a gRPC status
// error.
func uploadFeed(ctx context.Context, client pb.FeedServiceClient, merchant string, rd *feeds.Reader) (*uploadResult, error) {
	res := &uploadResult{}
	// The stream opens with the first batch, so a bad header sends nothing.
	var stream grpc.ClientStreamingClient[pb.UploadFeedRequest, pb.FeedStatus]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &pb.UploadFeedRequest{Merchant: merchant}
	size := 0
	send := func() error {
		if stream == nil {
			var err error
			if stream, err = client.UploadFeed(ctx); err != nil {
				return err
			}
		}
		err := stream.Send(req)
		req, size = &pb.UploadFeedRequest{}, 0
		if err != nil {
			// io.EOF: the gateway ended the call; its status says why.
			if _, rerr := stream.CloseAndRecv(); rerr != nil {
				return rerr
			}
			return err
		}
		return nil
	}
	for {
		row, err := rd.Next()
		var re *feeds.RowError
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &re) {
			res.localRejected++
			if len(res.localRows) < maxShownRejects {
				res.localRows = append(res.localRows, &pb.RejectedRow{Line: clampLine(re.Line), Reason: re.Reason})
			}
			continue
		}
		if err != nil {
			if stream == nil && len(req.Rows) == 0 {
				return nil, &nothingSentError{err} // e.g. a broken CSV header
			}
			res.stop = err
			break
		}
		res.sent++
		res.lines.add(res.sent, row.Line)
		fr := &pb.FeedRow{Sku: row.SKU, Location: row.Location, OnHand: row.OnHand}
		if !row.AsOf.IsZero() {
			fr.AsOf = timestamppb.New(row.AsOf)
		}
		req.Rows = append(req.Rows, fr)
		size += proto.Size(fr) + 8
		if len(req.Rows) >= uploadBatchRows || size >= uploadBatchBytes {
			if err := send(); err != nil {
				return nil, err
			}
		}
	}
	if res.stop != nil {
		// The gateway records the feed failed with this reason, as it does
		// for a REST upload that stops early.
		req.Abort = res.stop.Error()
	}
	if stream == nil || len(req.Rows) > 0 || req.Abort != "" {
		if err := send(); err != nil {
			return nil, err
		}
	}
	st, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	res.status = st
	return res, nil
}

// nothingSentError: reading the file failed before a row was read.
type nothingSentError struct{ err error }

func (e *nothingSentError) Error() string { return e.err.Error() }
func (e *nothingSentError) Unwrap() error { return e.err }

func clampLine(n int) int32 { return int32(min(n, math.MaxInt32)) }

// lineMap maps the number of a sent row (from 1, as the gateway counts a
// gRPC upload's rows) to its line in the file. It holds one entry per run of
// rows without skipped lines between them, not one per row.
type lineMap struct {
	rows []int // first row of a run
	offs []int // line - row within the run
}

func (m *lineMap) add(row, line int) {
	off := line - row
	if n := len(m.offs); n > 0 && m.offs[n-1] == off {
		return
	}
	m.rows, m.offs = append(m.rows, row), append(m.offs, off)
}

func (m *lineMap) line(row int) int {
	i := sort.SearchInts(m.rows, row+1) - 1
	if i < 0 {
		return row
	}
	return row + m.offs[i]
}

// summary is the gateway's answer with rows numbered by file line and the
// CLI's own rejections merged in, in line order.
func (r *uploadResult) summary() *pb.FeedStatus {
	st := proto.Clone(r.status).(*pb.FeedStatus)
	remote := make([]*pb.RejectedRow, 0, len(st.GetRejectedRows()))
	for _, rr := range st.GetRejectedRows() {
		remote = append(remote, &pb.RejectedRow{Line: clampLine(r.lines.line(int(rr.GetLine()))), Reason: rr.GetReason()})
	}
	// Both lists are the first rows of theirs; past the last shown row of
	// a truncated list, the merge could miss rows of that list.
	limit := int32(math.MaxInt32)
	if int(st.GetRejected()) > len(remote) && len(remote) > 0 {
		limit = remote[len(remote)-1].GetLine()
	}
	if r.localRejected > int64(len(r.localRows)) && len(r.localRows) > 0 {
		limit = min(limit, r.localRows[len(r.localRows)-1].GetLine())
	}
	merged := append(remote, r.localRows...)
	sort.SliceStable(merged, func(i, j int) bool { return merged[i].GetLine() < merged[j].GetLine() })
	n := 0
	for n < len(merged) && n < maxShownRejects && merged[n].GetLine() <= limit {
		n++
	}
	st.RejectedRows = merged[:n]
	st.Rejected = clampLine(int(st.GetRejected()) + int(r.localRejected))
	return st
}

func printSummary(w io.Writer, st *pb.FeedStatus) {
	state := strings.ToLower(strings.TrimPrefix(st.GetState().String(), "FEED_STATE_"))
	fmt.Fprintf(w, "feed %s (merchant %s): %s\n", st.GetFeedId(), st.GetMerchant(), state)
	fmt.Fprintf(w, "  accepted %d rows, rejected %d", st.GetAccepted(), st.GetRejected())
	if st.GetAccepted() > 0 {
		fmt.Fprintf(w, " (outbox sequences %d..%d)", st.GetFirstSequence(), st.GetLastSequence())
	}
	fmt.Fprintln(w)
	if st.GetError() != "" {
		fmt.Fprintf(w, "  error: %s\n", st.GetError())
	}
	for _, r := range st.GetRejectedRows() {
		fmt.Fprintf(w, "  line %d: %s\n", r.GetLine(), r.GetReason())
	}
	if n := int(st.GetRejected()) - len(st.GetRejectedRows()); n > 0 {
		fmt.Fprintf(w, "  ... and %d more rejected rows\n", n)
	}
}

func newFeedStatusCmd() *cobra.Command {
	var a apiFlags
	var merchant string
	cmd := &cobra.Command{
		Use:   "status [--grpc host:port] --merchant M --token-file F FEED-ID",
		Short: "Show a feed's status: received, counts, published",
		Long: `Show a feed's status: received, counts, published. Ask the gateway instance
that received the feed: each one answers for its own outbox. Rejected rows of
a gRPC upload are numbered by the rows the gateway received.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if err := merchantFlag(merchant); err != nil {
				return err
			}
			if strings.TrimSpace(args[0]) == "" {
				return errors.New("the feed id is empty")
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := a.callContext(cmd.Context(), token)
			defer cancel()
			st, err := pb.NewFeedServiceClient(conn).GetFeed(ctx, &pb.GetFeedRequest{Merchant: merchant, FeedId: args[0]})
			if err != nil {
				return a.fail(ctx, "feed status", err)
			}
			printSummary(cmd.OutOrStdout(), st)
			fmt.Fprintf(cmd.OutOrStdout(), "  published: %v\n", st.GetPublished())
			return nil
		},
	}
	a.register(cmd, "token-file", "file holding the merchant's API token (required)", defaultCallTimeout)
	cmd.Flags().StringVar(&merchant, "merchant", "", "merchant id (required)")
	return cmd
}

// defaultCallTimeout bounds the calls that are not uploads.
const defaultCallTimeout = 30 * time.Second

func newFeedLocationsCmd() *cobra.Command {
	var a apiFlags
	var merchant string
	cmd := &cobra.Command{
		Use:   "locations [--grpc host:port] --merchant M --token-file F",
		Short: "List the merchant's locations with their last feed time and stale flag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if err := merchantFlag(merchant); err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := a.callContext(cmd.Context(), token)
			defer cancel()
			out, err := pb.NewFeedServiceClient(conn).ListLocations(ctx, &pb.ListLocationsRequest{Merchant: merchant})
			if err != nil {
				return a.fail(ctx, "feed locations", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "merchant %s, stale after %s\n", out.GetMerchant(), out.GetStaleAfter().AsDuration())
			for _, l := range out.GetLocations() {
				last := "never"
				if l.GetLastFeedAt() != nil {
					last = l.GetLastFeedAt().AsTime().Format(time.RFC3339)
				}
				stale := ""
				if l.GetStale() {
					stale = "  STALE"
				}
				fmt.Fprintf(w, "  %-20s last feed %s%s\n", l.GetLocation(), last, stale)
			}
			return nil
		},
	}
	a.register(cmd, "token-file", "file holding the merchant's API token (required)", defaultCallTimeout)
	cmd.Flags().StringVar(&merchant, "merchant", "", "merchant id (required)")
	return cmd
}

// parseSince reads a sequence number or an RFC 3339 time.
func parseSince(s string) (*pb.RepublishRequest, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return &pb.RepublishRequest{Since: &pb.RepublishRequest_Sequence{Sequence: n}}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("--since %q: want an outbox sequence (e.g. 1200) or an RFC 3339 time (e.g. 2026-11-21T10:00:00Z)", s)
	}
	return &pb.RepublishRequest{Since: &pb.RepublishRequest_Time{Time: timestamppb.New(t)}}, nil
}

func newFeedRepublishCmd() *cobra.Command {
	var a apiFlags
	var since, dir string
	cmd := &cobra.Command{
		Use:   "republish --since <RFC3339 time|sequence> ([--grpc host:port] --admin-token-file F | --outbox DIR)",
		Short: "Rewind a gateway's outbox checkpoint so its rows are published again",
		Long: `Rewind the outbox checkpoint so the publisher ships every retained row from
a sequence or a receive time on again, e.g. after a Kafka cluster lost data.
The stock processor is idempotent: rows it already has change nothing.

With --admin-token-file, the running gateway at --grpc rewinds its own outbox;
run it against every gateway instance, each has its own outbox. With
--outbox, a stopped gateway's outbox directory is rewound in place.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := parseSince(since)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if dir != "" {
				for _, f := range []string{"grpc", "url", "admin-token-file", "timeout"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--outbox rewinds a stopped gateway's outbox directly; --%s is for a running gateway: give one or the other", f)
					}
				}
				var cp uint64
				if s, ok := req.GetSince().(*pb.RepublishRequest_Sequence); ok {
					cp, err = outbox.RewindDir(dir, s.Sequence, time.Time{}, true)
				} else {
					cp, err = outbox.RewindDir(dir, 0, req.GetTime().AsTime(), false)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "outbox %s: checkpoint is now %d; the gateway publishes from %d when it starts\n", dir, cp, cp+1)
				return nil
			}
			token, err := a.token("admin-token-file")
			if err != nil {
				return fmt.Errorf("%w (or --outbox DIR for a stopped gateway)", err)
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := a.callContext(cmd.Context(), token)
			defer cancel()
			st, err := pb.NewRegistryServiceClient(conn).Republish(ctx, req)
			if err != nil {
				return a.fail(ctx, "feed republish", err)
			}
			fmt.Fprintf(w, "outbox: checkpoint is now %d (holds %d..%d); re-publishing\n", st.GetCheckpoint(), st.GetFirstSequence(), st.GetLastSequence())
			return nil
		},
	}
	a.register(cmd, "admin-token-file", "file holding the admin token (for a running gateway)", defaultCallTimeout)
	cmd.Flags().StringVar(&since, "since", "", "outbox sequence or RFC 3339 receive time to re-publish from (required)")
	cmd.Flags().StringVar(&dir, "outbox", "", "rewind this outbox directory of a stopped gateway instead of calling --grpc")
	_ = cmd.MarkFlagRequired("since")
	return cmd
}

func newMerchantCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merchant",
		Short: "Manage the merchant registry (admin token needed)",
		Long: `Manage the merchant registry through a gateway's gRPC admin API
(RegistryService at --grpc host:port, default ` + defaultGRPCAddr + `): which merchant owns
which locations, its staleness TTL and its API token. Every command needs
--admin-token-file; merchant tokens are refused.`,
	}
	type sub struct {
		use, short string
		args       cobra.PositionalArgs
		run        func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, flags *merchantFlags) error
	}
	subs := []sub{
		{"create MERCHANT [--location L]... [--channels C,...] [--stale-after D] [--token-out F]", "Register a merchant and print (or write) its API token", cobra.ExactArgs(1),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, f *merchantFlags) error {
				chs, err := channelsFlag(f.channels)
				if err != nil {
					return err
				}
				req := &pb.CreateMerchantRequest{MerchantId: args[0], Locations: f.locations, Channels: chs}
				if f.staleAfter < 0 {
					return fmt.Errorf("--stale-after %s is negative (0: the default)", f.staleAfter)
				}
				if f.staleAfter > 0 {
					req.StaleAfter = durationpb.New(f.staleAfter)
				}
				return withTokenOut(w, f.tokenOut, func() (*pb.MerchantToken, error) { return c.CreateMerchant(ctx, req) })
			}},
		{"get MERCHANT", "Show a merchant", cobra.ExactArgs(1),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, _ *merchantFlags) error {
				out, err := c.GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: args[0]})
				if err != nil {
					return err
				}
				return printJSON(w, out)
			}},
		{"list", "List merchants", cobra.NoArgs,
			func(ctx context.Context, c pb.RegistryServiceClient, _ []string, w io.Writer, _ *merchantFlags) error {
				out, err := c.ListMerchants(ctx, &pb.ListMerchantsRequest{})
				if err != nil {
					return err
				}
				return printJSON(w, out)
			}},
		{"add-location MERCHANT LOCATION... [--channels C,...]", "Give a merchant locations (or set the channels of locations it owns)", cobra.MinimumNArgs(2),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, f *merchantFlags) error {
				chs, err := channelsFlag(f.channels)
				if err != nil {
					return err
				}
				out, err := c.AddLocations(ctx, &pb.LocationsRequest{MerchantId: args[0], Locations: args[1:], Channels: chs})
				if err != nil {
					return err
				}
				return printJSON(w, out)
			}},
		{"remove-location MERCHANT LOCATION...", "Take locations away from a merchant (their stock stops counting)", cobra.MinimumNArgs(2),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, _ *merchantFlags) error {
				out, err := c.RemoveLocations(ctx, &pb.LocationsRequest{MerchantId: args[0], Locations: args[1:]})
				if err != nil {
					return err
				}
				return printJSON(w, out)
			}},
		{"set-stale-after MERCHANT DURATION", "Set how long a merchant's stock counts without a new feed (0: the default)", cobra.ExactArgs(2),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, _ *merchantFlags) error {
				d, err := time.ParseDuration(args[1])
				if err != nil {
					return fmt.Errorf("duration %q: want e.g. 6h or 90m (0: the default)", args[1])
				}
				if d < 0 {
					return fmt.Errorf("duration %s is negative (0: the default)", d)
				}
				out, err := c.SetStaleAfter(ctx, &pb.SetStaleAfterRequest{MerchantId: args[0], StaleAfter: durationpb.New(d)})
				if err != nil {
					return err
				}
				return printJSON(w, out)
			}},
		{"rotate-token MERCHANT [--token-out F]", "Replace a merchant's API token (the old one stops working)", cobra.ExactArgs(1),
			func(ctx context.Context, c pb.RegistryServiceClient, args []string, w io.Writer, f *merchantFlags) error {
				return withTokenOut(w, f.tokenOut, func() (*pb.MerchantToken, error) {
					return c.RotateToken(ctx, &pb.RotateTokenRequest{MerchantId: args[0]})
				})
			}},
	}
	cmd.AddCommand(newMerchantRestoreCmd())
	for _, s := range subs {
		var a apiFlags
		var f merchantFlags
		name, _, _ := strings.Cut(s.use, " ")
		c := &cobra.Command{Use: s.use, Short: s.short, Long: merchantLong[name], Args: s.args,
			RunE: func(cmd *cobra.Command, args []string) error {
				token, err := a.token("admin-token-file")
				if err != nil {
					return err
				}
				conn, err := a.dial()
				if err != nil {
					return err
				}
				defer conn.Close()
				ctx, cancel := a.callContext(cmd.Context(), token)
				defer cancel()
				if err := s.run(ctx, pb.NewRegistryServiceClient(conn), args, cmd.OutOrStdout(), &f); err != nil {
					return a.fail(ctx, "merchant "+name, err)
				}
				return nil
			}}
		a.register(c, "admin-token-file", "file holding the admin token (required)", defaultCallTimeout)
		if name == "create" {
			c.Flags().StringSliceVar(&f.locations, "location", nil, "location the merchant owns (repeat, or comma-separate)")
			c.Flags().DurationVar(&f.staleAfter, "stale-after", 0, "merchant stock stops counting after this long without a feed (0: the default)")
		}
		if name == "create" || name == "add-location" {
			c.Flags().StringSliceVar(&f.channels, "channels", nil, "channels the locations serve, comma-separated, each one of the gateway's configured channels (default: "+registry.DefaultChannel+" only; required when the gateway does not serve "+registry.DefaultChannel+")")
		}
		if name == "create" || name == "rotate-token" {
			c.Flags().StringVar(&f.tokenOut, "token-out", "", "write the new token to this file (mode 0600) instead of printing it")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

type merchantFlags struct {
	locations  []string
	channels   []string
	staleAfter time.Duration
	tokenOut   string
}

// merchantLong is the help text of the merchant subcommands that have one.
var merchantLong = map[string]string{
	"create": `Register a merchant with its locations and print (or write) its API token,
shown only this once.

Channels: a merchant location's stock counts toward the channels it serves,
and merchant locations serve only ` + registry.DefaultChannel + ` unless --channels says
otherwise (e.g. --channels marketplace,web). --channels applies to every
--location given; 'merchant add-location --channels' changes it later.`,
	"add-location": `Give a merchant locations. With --channels, every listed location serves
exactly those channels, locations the merchant already owns included (that
is how a location's channels change). Without it, new locations serve only
` + registry.DefaultChannel + ` and owned ones keep their channels.`,
}

// channelsFlag checks --channels: channel ids, no empty items. Empty means
// the gateway's default (marketplace only).
func channelsFlag(chs []string) ([]string, error) {
	var errs []error
	for _, c := range chs {
		if err := inventory.ValidateID("channel", c); err != nil {
			errs = append(errs, fmt.Errorf("--channels: %w", err))
		}
	}
	return chs, errors.Join(errs...)
}

// withTokenOut runs call, which returns a new merchant token, and prints
// the merchant. The token goes to tokenOut (mode 0600), or is printed when
// tokenOut is empty: it is shown only this once. tokenOut is checked before
// the call: a token that cannot be written is never issued.
func withTokenOut(w io.Writer, tokenOut string, call func() (*pb.MerchantToken, error)) error {
	if tokenOut == "" {
		out, err := call()
		if err != nil {
			return err
		}
		if err := printJSON(w, out.GetMerchant()); err != nil {
			return err
		}
		fmt.Fprintf(w, "token (shown only now; store it safely): %s\n", out.GetToken())
		return nil
	}
	if fi, err := os.Stat(tokenOut); err == nil && fi.IsDir() {
		return fmt.Errorf("--token-out %s is a directory (no token was issued)", tokenOut)
	}
	// A temporary file beside tokenOut (CreateTemp makes it 0600), renamed
	// over it once the token is in: an old token file stays intact if the
	// call fails.
	tmp, err := os.CreateTemp(filepath.Dir(tokenOut), "."+filepath.Base(tokenOut)+".*")
	if err != nil {
		return fmt.Errorf("--token-out: %w (no token was issued)", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	out, err := call()
	if err != nil {
		return err
	}
	if err := printJSON(w, out.GetMerchant()); err != nil {
		return err
	}
	_, werr := tmp.WriteString(out.GetToken() + "\n")
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), tokenOut)
	}
	if werr != nil {
		return &tokenLostError{fmt.Errorf("--token-out %s: %w", tokenOut, werr)}
	}
	fmt.Fprintf(w, "token written to %s\n", tokenOut)
	return nil
}

// tokenLostError: the gateway issued a token that could not be stored.
type tokenLostError struct{ err error }

func (e *tokenLostError) Error() string {
	return e.err.Error() + " (the new token is lost: get another with 'skuflow merchant rotate-token')"
}
func (e *tokenLostError) Unwrap() error { return e.err }

func newMerchantRestoreCmd() *cobra.Command {

	var cf clusterFlags
	var from string
	cmd := &cobra.Command{
		Use:   "restore --brokers host:port --from <data>/feeds/registry",
		Short: "Re-publish the registry from a stopped gateway's local copy after a broker loss",
		Long: `After a Kafka cluster lost its data, re-publish the merchant registry (and the
merchant and location policies it implies) from a stopped gateway's local
copy of it, before that copy is wiped. See "Recovering from a broker loss" in
the README.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := cf.options("skuflow-merchant-restore")
			if err != nil {
				return err
			}
			if from == "" {
				return errors.New("--from is required, e.g. --from ./data/feeds/registry")
			}
			n, err := registry.Restore(k, from)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d merchants from %s\n", n, from)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&from, "from", "", "the gateway's registry view directory, <data>/feeds/registry (required)")
	return cmd
}
