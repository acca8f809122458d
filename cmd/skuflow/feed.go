package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/app"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/internal/registry"
)

// feedServiceFlags configure the merchant feeds service of serve and dev.
type feedServiceFlags struct {
	adminTokenFile string
	outboxDir      string
	limits         feeds.Limits
	retention      time.Duration
	retentionBytes int64
	publish        bool
}

func (f *feedServiceFlags) register(cmd *cobra.Command) {
	d := feeds.DefaultLimits()
	f.limits.MaxRejectedShown, f.limits.MaxClockSkew = d.MaxRejectedShown, d.MaxClockSkew
	cmd.Flags().StringVar(&f.adminTokenFile, "admin-token-file", "", "file holding the admin token for the merchant registry API (empty: admin API disabled)")
	cmd.Flags().StringVar(&f.outboxDir, "feeds-outbox", "", "directory of the merchant feeds outbox (default <data>/feeds/outbox)")
	cmd.Flags().Int64Var(&f.limits.MaxBodyBytes, "feeds-max-body", d.MaxBodyBytes, "largest feed body in bytes")
	cmd.Flags().IntVar(&f.limits.MaxRowBytes, "feeds-max-row", d.MaxRowBytes, "longest feed row in bytes")
	cmd.Flags().IntVar(&f.limits.MaxRows, "feeds-max-rows", d.MaxRows, "most rows in one feed")
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
		AdminToken: admin, DefaultStaleAfter: staleAfter, Publish: f.publish}), nil
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

// apiFlags are the flags of commands that call a running gateway.
type apiFlags struct {
	url       string
	tokenFile string
	timeout   time.Duration
}

func (a *apiFlags) register(cmd *cobra.Command, tokenFlag, tokenHelp string) {
	cmd.Flags().StringVar(&a.url, "url", "http://localhost:8080", "gateway REST base URL")
	cmd.Flags().StringVar(&a.tokenFile, tokenFlag, "", tokenHelp)
	cmd.Flags().DurationVar(&a.timeout, "timeout", 0, "give up after this long (0: no limit)")
}

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
	return t, nil
}

func (a *apiFlags) endpoint(path string) (string, error) {
	u, err := url.Parse(strings.TrimRight(a.url, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q is not an http(s) URL", a.url)
	}
	return strings.TrimRight(a.url, "/") + path, nil
}

// apiError is a gateway error answer.
type apiError struct {
	Status  int
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("gateway answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// call sends a JSON request (in may be nil) and decodes a proto answer.
func call(ctx context.Context, method, endpoint, token string, in, out proto.Message) error {
	var body io.Reader
	if in != nil {
		b, err := protojson.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redactURL(endpoint), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Message == "" {
			ae.Message = strings.TrimSpace(string(b))
		}
		return ae
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, out)
}

func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		p.User = nil
		return p.String()
	}
	return u
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func printJSON(w io.Writer, m proto.Message) {
	b, _ := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	fmt.Fprintln(w, string(b))
}

func newFeedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Publish a merchant's inventory feed and inspect feeds",
	}
	cmd.AddCommand(newFeedPublishCmd(), newFeedStatusCmd(), newFeedLocationsCmd(), newFeedRepublishCmd())
	return cmd
}

func newFeedPublishCmd() *cobra.Command {
	var a apiFlags
	var merchant, format string
	var noProgress bool
	cmd := &cobra.Command{
		Use:   "publish --url URL --merchant M --token-file F feed.csv|feed.ndjson",
		Short: "Upload a feed file (streamed) and print the summary with the rejected rows",
		Long: `Upload a merchant's stock feed to a skuflow gateway. The file is streamed, so
its size does not matter; a progress bar shows on a terminal.

CSV (text/csv) starts with a header naming the columns, in any order:
  sku,location,on_hand,as_of
  SKU-1,ACME-1,12,2026-11-21T10:00:00Z
  SKU-2,ACME-1,0
NDJSON (application/x-ndjson), one object per line:
  {"sku":"SKU-1","location":"ACME-1","on_hand":12,"as_of":"2026-11-21T10:00:00Z"}

as_of is optional (the receive time is used). Rows with problems are rejected
one by one and listed with their line number; the others are stored durably
before the gateway answers. Exit status 1 if any row was rejected or the
upload failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if merchant == "" {
				return errors.New("--merchant is required")
			}
			endpoint, err := a.endpoint("/v1/merchants/" + url.PathEscape(merchant) + "/feeds")
			if err != nil {
				return err
			}
			ctype, err := feedContentType(format, args[0])
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
			ctx, cancel := withTimeout(cmd.Context(), a.timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, body)
			if err != nil {
				return err
			}
			req.ContentLength = fi.Size()
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return fmt.Errorf("upload to %s: %w", redactURL(endpoint), errors.Unwrap(err))
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			if err != nil {
				return fmt.Errorf("reading the answer: %w", err)
			}
			var st pb.FeedStatus
			if perr := protojson.Unmarshal(b, &st); perr != nil || st.GetFeedId() == "" {
				ae := &apiError{Status: resp.StatusCode}
				if json.Unmarshal(b, ae) != nil || ae.Message == "" {
					ae.Message = strings.TrimSpace(string(b))
				}
				return ae
			}
			printSummary(cmd.OutOrStdout(), &st)
			switch {
			case resp.StatusCode/100 != 2:
				return fmt.Errorf("feed %s failed (HTTP %d): %s", st.GetFeedId(), resp.StatusCode, st.GetError())
			case st.GetRejected() > 0:
				return fmt.Errorf("%d rows rejected", st.GetRejected())
			}
			return nil
		},
	}
	a.register(cmd, "token-file", "file holding the merchant's API token (required)")
	cmd.Flags().StringVar(&merchant, "merchant", "", "merchant id (required)")
	cmd.Flags().StringVar(&format, "format", "", "csv or ndjson (default: from the file extension)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar even on a terminal")
	return cmd
}

func feedContentType(format, path string) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".ndjson", ".jsonl":
			format = "ndjson"
		default:
			return "", fmt.Errorf("cannot tell the format of %s from its extension: give --format csv or --format ndjson", path)
		}
	}
	switch format {
	case "csv":
		return "text/csv", nil
	case "ndjson":
		return "application/x-ndjson", nil
	}
	return "", fmt.Errorf("--format %q: want csv or ndjson", format)
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
		Use:   "status --merchant M --token-file F FEED-ID",
		Short: "Show a feed's status: received, counts, published",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if merchant == "" {
				return errors.New("--merchant is required")
			}
			endpoint, err := a.endpoint("/v1/merchants/" + url.PathEscape(merchant) + "/feeds/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd.Context(), a.timeout)
			defer cancel()
			var st pb.FeedStatus
			if err := call(ctx, http.MethodGet, endpoint, token, nil, &st); err != nil {
				return err
			}
			printSummary(cmd.OutOrStdout(), &st)
			fmt.Fprintf(cmd.OutOrStdout(), "  published: %v\n", st.GetPublished())
			return nil
		},
	}
	a.register(cmd, "token-file", "file holding the merchant's API token (required)")
	cmd.Flags().StringVar(&merchant, "merchant", "", "merchant id (required)")
	return cmd
}

func newFeedLocationsCmd() *cobra.Command {
	var a apiFlags
	var merchant string
	cmd := &cobra.Command{
		Use:   "locations --merchant M --token-file F",
		Short: "List the merchant's locations with their last feed time and stale flag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := a.token("token-file")
			if err != nil {
				return err
			}
			if merchant == "" {
				return errors.New("--merchant is required")
			}
			endpoint, err := a.endpoint("/v1/merchants/" + url.PathEscape(merchant) + "/locations")
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd.Context(), a.timeout)
			defer cancel()
			var out pb.ListLocationsResponse
			if err := call(ctx, http.MethodGet, endpoint, token, nil, &out); err != nil {
				return err
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
	a.register(cmd, "token-file", "file holding the merchant's API token (required)")
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
		Use:   "republish --since <RFC3339 time|sequence> (--url URL --admin-token-file F | --outbox DIR)",
		Short: "Rewind a gateway's outbox checkpoint so its rows are published again",
		Long: `Rewind the outbox checkpoint so the publisher ships every retained row from
a sequence or a receive time on again, e.g. after a Kafka cluster lost data.
The stock processor is idempotent: rows it already has change nothing.

With --url, the running gateway rewinds its own outbox (admin token needed);
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
				return err
			}
			endpoint, err := a.endpoint("/v1/admin/outbox:republish")
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd.Context(), a.timeout)
			defer cancel()
			var st pb.OutboxStatus
			if err := call(ctx, http.MethodPost, endpoint, token, req, &st); err != nil {
				return err
			}
			fmt.Fprintf(w, "outbox: checkpoint is now %d (holds %d..%d); re-publishing\n", st.GetCheckpoint(), st.GetFirstSequence(), st.GetLastSequence())
			return nil
		},
	}
	a.register(cmd, "admin-token-file", "file holding the admin token (with --url)")
	cmd.Flags().StringVar(&since, "since", "", "outbox sequence or RFC 3339 receive time to re-publish from (required)")
	cmd.Flags().StringVar(&dir, "outbox", "", "rewind this outbox directory of a stopped gateway instead of calling --url")
	_ = cmd.MarkFlagRequired("since")
	return cmd
}

func newMerchantCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merchant",
		Short: "Manage the merchant registry (admin token needed)",
		Long: `Manage the merchant registry through a gateway's admin API: which merchant owns
which locations, its staleness TTL and its API token. Every command needs
--admin-token-file; merchant tokens are refused.`,
	}
	type sub struct {
		use, short string
		args       cobra.PositionalArgs
		run        func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, flags *merchantFlags) error
	}
	subs := []sub{
		{"create MERCHANT [--location L]... [--stale-after D] [--token-out F]", "Register a merchant and print (or write) its API token", cobra.ExactArgs(1),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, f *merchantFlags) error {
				req := &pb.CreateMerchantRequest{MerchantId: args[0], Locations: f.locations}
				if f.staleAfter > 0 {
					req.StaleAfter = durationpb.New(f.staleAfter)
				}
				var out pb.MerchantToken
				if err := adminCall(ctx, a, token, http.MethodPost, "/v1/admin/merchants", req, &out); err != nil {
					return err
				}
				return emitToken(w, &out, f.tokenOut)
			}},
		{"get MERCHANT", "Show a merchant", cobra.ExactArgs(1),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, _ *merchantFlags) error {
				var out pb.Merchant
				if err := adminCall(ctx, a, token, http.MethodGet, "/v1/admin/merchants/"+url.PathEscape(args[0]), nil, &out); err != nil {
					return err
				}
				printJSON(w, &out)
				return nil
			}},
		{"list", "List merchants", cobra.NoArgs,
			func(ctx context.Context, a *apiFlags, token string, _ []string, w io.Writer, _ *merchantFlags) error {
				var out pb.ListMerchantsResponse
				if err := adminCall(ctx, a, token, http.MethodGet, "/v1/admin/merchants", nil, &out); err != nil {
					return err
				}
				printJSON(w, &out)
				return nil
			}},
		{"add-location MERCHANT LOCATION...", "Give a merchant locations", cobra.MinimumNArgs(2),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, _ *merchantFlags) error {
				var out pb.Merchant
				if err := adminCall(ctx, a, token, http.MethodPost, "/v1/admin/merchants/"+url.PathEscape(args[0])+"/locations",
					&pb.LocationsRequest{MerchantId: args[0], Locations: args[1:]}, &out); err != nil {
					return err
				}
				printJSON(w, &out)
				return nil
			}},
		{"remove-location MERCHANT LOCATION...", "Take locations away from a merchant (their stock stops counting)", cobra.MinimumNArgs(2),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, _ *merchantFlags) error {
				var out pb.Merchant
				if err := adminCall(ctx, a, token, http.MethodPost, "/v1/admin/merchants/"+url.PathEscape(args[0])+"/locations:remove",
					&pb.LocationsRequest{MerchantId: args[0], Locations: args[1:]}, &out); err != nil {
					return err
				}
				printJSON(w, &out)
				return nil
			}},
		{"set-stale-after MERCHANT DURATION", "Set how long a merchant's stock counts without a new feed (0: the default)", cobra.ExactArgs(2),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, _ *merchantFlags) error {
				d, err := time.ParseDuration(args[1])
				if err != nil {
					return fmt.Errorf("duration %q: %w", args[1], err)
				}
				var out pb.Merchant
				if err := adminCall(ctx, a, token, http.MethodPost, "/v1/admin/merchants/"+url.PathEscape(args[0])+":setStaleAfter",
					&pb.SetStaleAfterRequest{MerchantId: args[0], StaleAfter: durationpb.New(d)}, &out); err != nil {
					return err
				}
				printJSON(w, &out)
				return nil
			}},
		{"rotate-token MERCHANT [--token-out F]", "Replace a merchant's API token (the old one stops working)", cobra.ExactArgs(1),
			func(ctx context.Context, a *apiFlags, token string, args []string, w io.Writer, f *merchantFlags) error {
				var out pb.MerchantToken
				if err := adminCall(ctx, a, token, http.MethodPost, "/v1/admin/merchants/"+url.PathEscape(args[0])+":rotateToken",
					&pb.RotateTokenRequest{MerchantId: args[0]}, &out); err != nil {
					return err
				}
				return emitToken(w, &out, f.tokenOut)
			}},
	}
	cmd.AddCommand(newMerchantRestoreCmd())
	for _, s := range subs {
		var a apiFlags
		var f merchantFlags
		c := &cobra.Command{Use: s.use, Short: s.short, Args: s.args,
			RunE: func(cmd *cobra.Command, args []string) error {
				token, err := a.token("admin-token-file")
				if err != nil {
					return err
				}
				ctx, cancel := withTimeout(cmd.Context(), a.timeout)
				defer cancel()
				return s.run(ctx, &a, token, args, cmd.OutOrStdout(), &f)
			}}
		a.register(c, "admin-token-file", "file holding the admin token (required)")
		if strings.HasPrefix(s.use, "create") {
			c.Flags().StringSliceVar(&f.locations, "location", nil, "location the merchant owns (repeat, or comma-separate)")
			c.Flags().DurationVar(&f.staleAfter, "stale-after", 0, "merchant stock stops counting after this long without a feed (0: the default)")
		}
		if strings.HasPrefix(s.use, "create") || strings.HasPrefix(s.use, "rotate") {
			c.Flags().StringVar(&f.tokenOut, "token-out", "", "write the new token to this file (mode 0600) instead of printing it")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

type merchantFlags struct {
	locations  []string
	staleAfter time.Duration
	tokenOut   string
}

func adminCall(ctx context.Context, a *apiFlags, token, method, path string, in, out proto.Message) error {
	endpoint, err := a.endpoint(path)
	if err != nil {
		return err
	}
	return call(ctx, method, endpoint, token, in, out)
}

// emitToken prints the merchant and writes its new token to tokenOut, or
// prints it when tokenOut is empty (it is shown only this once).
func emitToken(w io.Writer, out *pb.MerchantToken, tokenOut string) error {
	printJSON(w, out.GetMerchant())
	if tokenOut == "" {
		fmt.Fprintf(w, "token (shown only now; store it safely): %s\n", out.GetToken())
		return nil
	}
	if err := os.WriteFile(tokenOut, []byte(out.GetToken()+"\n"), 0o600); err != nil {
		return fmt.Errorf("--token-out: %w (the token is lost; rotate it)", err)
	}
	fmt.Fprintf(w, "token written to %s\n", tokenOut)
	return nil
}

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
