package gateway

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// cacheControl is an answer's Cache-Control: max-age is the smaller of
// maxAge and the whole seconds from now until the answer next changes by
// itself (until; zero: never), so no cache keeps it past that instant. An
// answer due to change within the second, or a negative maxAge, gives
// no-cache: a cache must ask again every time.
func cacheControl(maxAge time.Duration, now, until time.Time) string {
	secs := int64(maxAge / time.Second)
	if !until.IsZero() {
		secs = min(secs, int64(until.Sub(now)/time.Second))
	}
	if secs <= 0 {
		return "no-cache"
	}
	if secs < int64(len(maxAgeValues)) {
		return maxAgeValues[secs]
	}
	return "max-age=" + strconv.FormatInt(secs, 10)
}

// maxAgeValues are the common Cache-Control values, built once.
var maxAgeValues = func() []string {
	v := make([]string, 301)
	for i := range v {
		v[i] = "max-age=" + strconv.Itoa(i)
	}
	return v
}()

// etagMatches reports whether an If-None-Match header value matches etag
// (RFC 9110 13.1.2: "*", or a list of entity tags compared weakly: a W/
// prefix on either side is ignored).
func etagMatches(ifNoneMatch, etag string) bool {
	if etag == "" {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for tag := range strings.SplitSeq(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// Canonical header keys, to set without canonicalising on every request.
var (
	hdrETag         = textproto.CanonicalMIMEHeaderKey("ETag")
	hdrCacheControl = textproto.CanonicalMIMEHeaderKey("Cache-Control")
	hdrContentType  = textproto.CanonicalMIMEHeaderKey("Content-Type")
	hdrLength       = textproto.CanonicalMIMEHeaderKey("Content-Length")
)

// Routes the front handles.
const (
	availabilityPrefix = "/v1/availability/" // GetAvailability: /v1/availability/{sku}
	batchGetPath       = "/v1/availability"  // BatchGetAvailability's GET
	getRoutePattern    = "/v1/availability/{sku}"
)

// restFront sits in front of grpc-gateway for the REST routes (/v1/). It
// answers GET /v1/availability/{sku} itself when it can serve a kept answer
// (answers) and the request is one grpc-gateway would route there and
// answer with its default JSON marshaller; the answer's JSON is the kept
// one with evaluated_at spliced in, byte for byte what grpc-gateway writes
// (gateway tests compare the two). Everything else (a miss, an error, a
// query beyond ship_to_region, another marshaller) is grpc-gateway's, and
// a conditional GET of an availability route is answered 304 when its
// ETag matches If-None-Match.
type restFront struct {
	gw    *runtime.ServeMux
	avail *availabilityServer
	// json is grpc-gateway's marshaller for requests that name no format;
	// contentType its Content-Type for an answer.
	json        runtime.Marshaler
	contentType []string
	bufs        sync.Pool
	// auth checks the API key of a kept answer's request, once; requests
	// grpc-gateway answers are checked on its path (restauth.go).
	auth *keyAuth
}

func newRESTFront(gw *runtime.ServeMux, avail *availabilityServer, auth *keyAuth) *restFront {
	_, out := runtime.MarshalerForRequest(gw, &http.Request{Header: http.Header{}})
	return &restFront{
		gw: gw, avail: avail, json: out, auth: auth,
		contentType: []string{out.ContentType(&pb.Availability{})},
		bufs:        sync.Pool{New: func() any { return new([]byte) }},
	}
}

func (f *restFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// HEAD is GET without the body (RFC 9110, 9.3.2): served as a GET,
		// whose body net/http drops for a HEAD request.
		r = r.Clone(r.Context())
		r.Method = http.MethodGet
	}
	if r.Method != http.MethodGet {
		f.gw.ServeHTTP(w, r)
		return
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	if seg, ok := strings.CutPrefix(path, availabilityPrefix); ok && seg != "" && !strings.ContainsAny(seg, "/:") {
		if f.serveKept(w, r, seg) {
			return
		}
	} else if path != batchGetPath {
		f.gw.ServeHTTP(w, r)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		cw := &conditionalWriter{ResponseWriter: w, ifNoneMatch: inm}
		f.gw.ServeHTTP(cw, r)
		return
	}
	f.gw.ServeHTTP(w, r)
}

// serveKept answers a GetAvailability request from a kept answer and
// reports whether it did. seg is the path's SKU segment as sent (escaped
// when the path has a RawPath).
func (f *restFront) serveKept(w http.ResponseWriter, r *http.Request, seg string) bool {
	a := f.avail.answers
	if !a.keeping() || requestAcceptsTrailers(r) {
		return false
	}
	sku := seg
	if r.URL.RawPath != "" {
		// As grpc-gateway decodes a single-segment path parameter: every
		// %XX, nothing else (a '+' stays a '+').
		var err error
		if sku, err = url.PathUnescape(seg); err != nil {
			return false
		}
	}
	shipTo := ""
	if q := r.URL.RawQuery; q != "" {
		v, ok := strings.CutPrefix(q, "ship_to_region=")
		if !ok || strings.ContainsAny(v, "&;") {
			return false
		}
		var err error
		if shipTo, err = url.QueryUnescape(v); err != nil || inventory.ValidateRegion("ship_to_region", shipTo) != nil {
			return false
		}
	}
	if inventory.ValidateSKU("sku", sku) != nil {
		return false
	}
	if _, out := runtime.MarshalerForRequest(f.gw, r); out != f.json {
		return false
	}
	now := f.avail.now()
	// A zero time is left out of the answer (codecs.SnapshotToProto), so it
	// is not spliced in: grpc-gateway's.
	if now.IsZero() || !a.ready() {
		return false
	}
	e := a.kept(sku, shipTo, now)
	if e == nil {
		return false
	}
	js := e.jsonFor(f.json)
	if !js.ok {
		return false
	}
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	body, ok := js.appendBody((*bp)[:0], now)
	*bp = body[:0]
	if !ok {
		return false
	}
	noteRoute(r, getRoutePattern)
	if err := f.auth.check(getAvailabilityMethod, r.Header.Values("Authorization")); err != nil {
		writeHTTPError(f.gw, w, r, err)
		return true
	}
	// One allocation for the header values; each a slice of its own (cap
	// 1), so a later Add does not write into its neighbour.
	vals := []string{e.etag, cacheControl(f.avail.maxAge, now, e.until), strconv.Itoa(len(body))}
	h := w.Header()
	h[hdrETag] = vals[0:1:1]
	h[hdrCacheControl] = vals[1:2:2]
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, e.etag) {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	h[hdrContentType] = f.contentType
	h[hdrLength] = vals[2:3:3]
	_, _ = w.Write(body) // the client went away: nothing to do
	return true
}

// noteRoute records the route pattern for the request metrics, as
// grpc-gateway's middleware does for the requests it routes.
func noteRoute(r *http.Request, pattern string) {
	if rt, ok := r.Context().Value(routeKey{}).(*route); ok {
		rt.pattern = pattern
	}
}

// requestAcceptsTrailers is grpc-gateway's test for "TE: trailers", with
// which it streams the answer with trailers instead.
func requestAcceptsTrailers(r *http.Request) bool {
	te := r.Header.Get("TE")
	return strings.Contains(strings.ToLower(te), "trailers")
}

// conditionalWriter turns a 200 whose ETag matches If-None-Match into a
// 304 Not Modified without a body (keeping ETag and Cache-Control, as RFC
// 9110 asks).
type conditionalWriter struct {
	http.ResponseWriter
	ifNoneMatch string
	wrote       bool
	notModified bool
}

func (c *conditionalWriter) WriteHeader(code int) {
	if c.wrote {
		c.ResponseWriter.WriteHeader(code)
		return
	}
	c.wrote = true
	h := c.Header()
	if code == http.StatusOK && etagMatches(c.ifNoneMatch, h.Get(hdrETag)) {
		c.notModified = true
		delete(h, hdrContentType)
		delete(h, hdrLength)
		c.ResponseWriter.WriteHeader(http.StatusNotModified)
		return
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *conditionalWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *conditionalWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if c.notModified {
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}
