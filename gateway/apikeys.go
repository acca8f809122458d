package gateway

// API keys for the availability and reservation APIs: scopes, hashed
// storage, a per-key rate limit, and the one check every path takes.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/internal/registry"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Scopes of an API key.
const (
	// ScopeRead: availability queries and watches (AvailabilityService).
	ScopeRead = "read"
	// ScopeOrder: PlaceOrder, GetOrder, CancelOrder, ExtendOrder,
	// FulfilOrder (ReservationService).
	ScopeOrder = "order"
)

// scopeOf is the scope each guarded gRPC service needs; the methods of
// every other service (feeds and the admin API, with their own tokens;
// health; reflection) need no API key.
var scopeOf = map[string]string{
	"skuflow.v1.AvailabilityService": ScopeRead,
	"skuflow.v1.ReservationService":  ScopeOrder,
}

// Full gRPC method names the hand-written REST routes answer for.
const (
	getAvailabilityMethod   = pb.AvailabilityService_GetAvailability_FullMethodName
	watchAvailabilityMethod = pb.AvailabilityService_WatchAvailability_FullMethodName
)

// apiKeyPrefix marks skuflow API keys (version 1): ska1.<id>.<secret>.
const apiKeyPrefix = "ska1."

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// APIKey is one configured key: never the key itself, only its secret's
// hash (registry.HashSecret, as merchant tokens are stored).
type APIKey struct {
	ID     string
	Scopes []string
	Hash   []byte
	// Rate is the requests per second the key may make (its burst the
	// same, at least 1); 0: no limit.
	Rate float64
}

// NewAPIKey returns a fresh key with id and scopes, and its line for an
// API keys file (ParseAPIKeys). The key is shown once: only the hash is
// kept.
func NewAPIKey(id string, scopes []string, ratePerSecond float64) (key, line string, err error) {
	k := APIKey{ID: id, Scopes: scopes, Rate: ratePerSecond}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", errors.New("apikey: no randomness for a key")
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	k.Hash = registry.HashSecret(secret)
	if err := k.validate(); err != nil {
		return "", "", err
	}
	return apiKeyPrefix + id + "." + secret, k.line(), nil
}

func (k APIKey) line() string {
	l := k.ID + " " + strings.Join(k.Scopes, ",") + " sha256:" + hex.EncodeToString(k.Hash)
	if k.Rate > 0 {
		l += " " + strconv.FormatFloat(k.Rate, 'f', -1, 64)
	}
	return l
}

func (k APIKey) validate() error {
	var errs []error
	if !keyIDPattern.MatchString(k.ID) {
		errs = append(errs, fmt.Errorf("key id %q is not 1 to 64 of A-Z a-z 0-9 _ -", k.ID))
	}
	if len(k.Scopes) == 0 {
		errs = append(errs, errors.New("no scopes: give read, order or read,order"))
	}
	for _, s := range k.Scopes {
		if s != ScopeRead && s != ScopeOrder {
			errs = append(errs, fmt.Errorf("unknown scope %q: the scopes are read and order", s))
		}
	}
	if len(k.Hash) != 32 {
		errs = append(errs, errors.New("the hash is not sha256:<64 hex digits>"))
	}
	if k.Rate < 0 || math.IsNaN(k.Rate) || math.IsInf(k.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v is not a number of requests per second >= 0", k.Rate))
	}
	return errors.Join(errs...)
}

// ParseAPIKeys reads an API keys file: one key a line, "ID SCOPES HASH
// [RATE]", where SCOPES is read, order or read,order, HASH is sha256:<hex>
// of the key's secret and RATE the requests per second it may make
// (default: no limit). Blank lines and lines starting with # are skipped.
// Every problem is reported, by line; the keys returned are those of the
// lines without one (an id on two lines: neither).
func ParseAPIKeys(data []byte) ([]APIKey, error) {
	var keys []APIKey
	var errs []error
	seen := map[string]int{}
	dups := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || len(f) > 4 {
			errs = append(errs, fmt.Errorf("line %d: want ID SCOPES sha256:HASH [RATE], got %d fields", n, len(f)))
			continue
		}
		k := APIKey{ID: f[0], Scopes: strings.Split(f[1], ",")}
		if h, ok := strings.CutPrefix(f[2], "sha256:"); ok {
			k.Hash, _ = hex.DecodeString(h)
		}
		if len(f) == 4 {
			r, err := strconv.ParseFloat(f[3], 64)
			if err != nil {
				r = -1
			}
			k.Rate = r
		}
		if err := k.validate(); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if prev, dup := seen[k.ID]; dup {
			errs = append(errs, fmt.Errorf("line %d: key id %q is also on line %d: neither line is accepted", n, k.ID, prev))
			dups[k.ID] = true
			continue
		}
		seen[k.ID] = n
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	// An id on two lines is refused on both: which key is meant is unknown.
	keys = slices.DeleteFunc(keys, func(k APIKey) bool { return dups[k.ID] })
	return keys, errors.Join(errs...)
}

// APIKeys are the keys the gateway accepts, from a file it reads again
// when it changes (so a removed key is refused without a restart).
type APIKeys struct {
	path string
	keys atomic.Pointer[map[string]*liveKey]
	mu   sync.Mutex // serialises reloads
	raw  []byte
}

// liveKey is a key with its limiter, kept across reloads while the key's
// line is unchanged.
type liveKey struct {
	APIKey
	line    string
	limiter *rate.Limiter // nil: no limit
	// revoked is closed when a reload removes the key or changes its line:
	// the streams it opened end then.
	revoked chan struct{}
}

// LoadAPIKeys reads the API keys file at path.
func LoadAPIKeys(path string) (*APIKeys, error) {
	k := &APIKeys{path: path}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the file again and reports whether it changed. A line with
// a problem is refused (its key no longer works: the file fails closed, line
// by line) and reported in the error, while the other lines apply. The first
// load (LoadAPIKeys) refuses a file with any problem. A file that cannot be
// read keeps the keys as they were: replace the file atomically (write a new
// one, then rename it), never truncate it in place.
func (k *APIKeys) Reload() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	data, err := os.ReadFile(k.path)
	if err != nil {
		return false, fmt.Errorf("api keys: %w", err)
	}
	if k.keys.Load() != nil && bytes.Equal(data, k.raw) {
		return false, nil
	}
	keys, perr := ParseAPIKeys(data)
	if perr != nil {
		perr = fmt.Errorf("api keys %s: %w", k.path, perr)
		if k.keys.Load() == nil {
			return false, perr
		}
	}
	old := map[string]*liveKey{}
	if p := k.keys.Load(); p != nil {
		old = *p
	}
	next := make(map[string]*liveKey, len(keys))
	for _, key := range keys {
		line := key.line()
		if o, ok := old[key.ID]; ok && o.line == line {
			next[key.ID] = o
			continue
		}
		lk := &liveKey{APIKey: key, line: line, revoked: make(chan struct{})}
		if key.Rate > 0 {
			lk.limiter = rate.NewLimiter(rate.Limit(key.Rate), max(1, int(math.Ceil(key.Rate))))
		}
		next[key.ID] = lk
	}
	k.keys.Store(&next)
	k.raw = data
	// After the store: a stream authorized meanwhile holds the new key.
	for id, o := range old {
		if n, kept := next[id]; !kept || n != o {
			close(o.revoked)
		}
	}
	return true, perr
}

// IDs are the configured key ids, sorted.
func (k *APIKeys) IDs() []string {
	var ids []string
	if p := k.keys.Load(); p != nil {
		for id := range *p {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Outcomes of a key check, the outcome label of
// skuflow_api_key_requests_total.
const (
	outcomeOK              = "ok"
	outcomeUnauthenticated = "unauthenticated"
	outcomeDenied          = "permission_denied"
	outcomeLimited         = "rate_limited"
)

// unknownKeyLabel is the key label of requests with no key or one no
// configured key matches: one label for all of them, so no presented value
// ever becomes a label.
const unknownKeyLabel = "unknown"

// keyAuth checks API keys: the one check the gRPC interceptors, the
// in-process REST handlers and the hand-written REST routes all call.
type keyAuth struct {
	keys     *APIKeys // nil: no keys configured, every call passes
	requests *prometheus.CounterVec
}

func newKeyAuth(keys *APIKeys, reg prometheus.Registerer) (*keyAuth, error) {
	a := &keyAuth{keys: keys}
	if keys == nil {
		return a, nil
	}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skuflow_api_key_requests_total",
		Help: "Calls of the availability and reservation APIs by API key id (\"unknown\": no key or no such key) and outcome (ok, unauthenticated, permission_denied, rate_limited).",
	}, []string{"key", "outcome"})
	if err := reg.Register(a.requests); err != nil {
		return nil, fmt.Errorf("gateway: register API key metrics: %w", err)
	}
	return a, nil
}

func (a *keyAuth) unregister(reg prometheus.Registerer) {
	if a != nil && a.requests != nil {
		reg.Unregister(a.requests)
	}
}

// check authorizes a call of fullMethod ("/pkg.Service/Method") with the
// Authorization header (or metadata) values given. The errors it returns
// never hold the presented value.
func (a *keyAuth) check(fullMethod string, authorization []string) error {
	_, err := a.checkKey(fullMethod, authorization)
	return err
}

// checkKey is check, also returning the channel closed when the key that
// passed is revoked (nil: no key was needed).
func (a *keyAuth) checkKey(fullMethod string, authorization []string) (revoked <-chan struct{}, err error) {
	if a == nil || a.keys == nil {
		return nil, nil
	}
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	scope, guarded := scopeOf[svc]
	if !guarded {
		return nil, nil
	}
	k, err := a.authorize(scope, authorization)
	id := unknownKeyLabel
	if k != nil {
		id = k.ID
	}
	outcome := outcomeOK
	switch {
	case errors.Is(err, apierr.ErrUnauthenticated):
		outcome = outcomeUnauthenticated
	case errors.Is(err, apierr.ErrPermissionDenied):
		outcome = outcomeDenied
	case errors.Is(err, apierr.ErrResourceExhausted):
		outcome = outcomeLimited
	}
	a.requests.WithLabelValues(id, outcome).Inc()
	if err != nil {
		return nil, err
	}
	return k.revoked, nil
}

// authorize finds the key among authorization's Bearer values and checks
// its scope and rate; k is the key presented, nil if none matched.
func (a *keyAuth) authorize(scope string, authorization []string) (k *liveKey, err error) {
	presented := ""
	for _, v := range authorization {
		if t := registry.BearerToken(v); t != "" {
			presented = t
			break
		}
	}
	if presented == "" {
		return nil, apierr.Public(apierr.ErrUnauthenticated, "missing API key: send 'authorization: Bearer <key>'")
	}
	rest, ok := strings.CutPrefix(presented, apiKeyPrefix)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i <= 0 {
		return nil, apierr.Public(apierr.ErrUnauthenticated, "invalid API key: not a skuflow API key (ska1.<id>.<secret>)")
	}
	keyID, secret := rest[:i], rest[i+1:]
	keys := *a.keys.keys.Load()
	k, found := keys[keyID]
	hash := registry.HashSecret(secret)
	if !found || subtle.ConstantTimeCompare(k.Hash, hash) != 1 {
		// The id is the caller's claim, not a key's: never echoed.
		return nil, apierr.Public(apierr.ErrUnauthenticated, "invalid API key: no such key (revoked, or mistyped)")
	}
	if !slices.Contains(k.Scopes, scope) {
		return k, apierr.Publicf(apierr.ErrPermissionDenied, "API key %q has scope %s; this call needs scope %s", k.ID, strings.Join(k.Scopes, ","), scope)
	}
	if k.limiter != nil && !k.limiter.Allow() {
		return k, apierr.Publicf(apierr.ErrResourceExhausted, "API key %q is over its rate limit of %s requests/s; retry shortly", k.ID, strconv.FormatFloat(k.Rate, 'f', -1, 64))
	}
	return k, nil
}

// unary is the gRPC unary interceptor; the in-process REST handlers call
// it too (restAuth), so a REST call is checked exactly as a gRPC one.
func (a *keyAuth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(info.FullMethod, metadata.ValueFromIncomingContext(ctx, "authorization")); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// stream is the gRPC stream interceptor. A stream ends, Unauthenticated,
// when its key is revoked.
func (a *keyAuth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	revoked, err := a.checkKey(info.FullMethod, metadata.ValueFromIncomingContext(ss.Context(), "authorization"))
	if err != nil {
		return err
	}
	if revoked == nil {
		return handler(srv, ss)
	}
	ctx, stop := untilRevoked(ss.Context(), revoked)
	defer stop()
	if err := handler(srv, ctxStream{ss, ctx}); err != nil && errors.Is(context.Cause(ctx), errKeyRevoked) {
		return errKeyRevoked
	}
	return err
}

// errKeyRevoked ends the streams of a key a reload removed or changed.
var errKeyRevoked = apierr.Public(apierr.ErrUnauthenticated, "API key revoked: the stream ends; reconnect with a valid key")

// untilRevoked is ctx, cancelled with errKeyRevoked when revoked closes.
func untilRevoked(ctx context.Context, revoked <-chan struct{}) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-revoked:
			cancel(errKeyRevoked)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// ctxStream is a server stream with another context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// watchKeys reloads the keys file every interval until ctx ends.
func (a *keyAuth) watchKeys(ctx context.Context, every time.Duration, log interface {
	Info(string, ...any)
	Error(string, ...any)
}) {
	if a == nil || a.keys == nil || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := a.keys.Reload()
		switch {
		case changed && err != nil:
			log.Error("api keys reloaded; the lines with problems are refused", "keys", len(a.keys.IDs()), "err", err)
		case err != nil:
			log.Error("api keys file not read; the previous keys stay", "err", err)
		case changed:
			log.Info("api keys reloaded", "keys", len(a.keys.IDs()))
		}
	}
}

// http guards a hand-written REST route answering for fullMethod: the
// same check, the error written as grpc-gateway writes errors.
func (a *keyAuth) http(fullMethod string, gw *runtime.ServeMux, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoked, err := a.checkKey(fullMethod, r.Header.Values("Authorization"))
		if err != nil {
			writeHTTPError(gw, w, r, err)
			return
		}
		if revoked != nil { // a stream (SSE) ends when its key is revoked
			ctx, stop := untilRevoked(r.Context(), revoked)
			defer stop()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}
