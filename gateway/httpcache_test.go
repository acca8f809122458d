package gateway_test

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

func (e *env) getWith(t *testing.T, path string, header http.Header) response {
	t.Helper()
	return e.request(t, http.MethodGet, path, header)
}

// request sends a request without a body.
func (e *env) request(t *testing.T, method, path string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body.Bytes()}
}

func ifNoneMatch(tags ...string) http.Header {
	return http.Header{"If-None-Match": {strings.Join(tags, ", ")}}
}

// wantNotModified checks a 304: no body, no Content-Type, the ETag and a
// Cache-Control.
func wantNotModified(t *testing.T, r response, etag string) {
	t.Helper()
	if r.status != http.StatusNotModified {
		t.Fatalf("status %d, want 304; body %s", r.status, r.body)
	}
	if len(r.body) != 0 || r.header.Get("Content-Type") != "" {
		t.Errorf("304 with a body %q or Content-Type %q", r.body, r.header.Get("Content-Type"))
	}
	if got := r.header.Values("ETag"); len(got) != 1 || got[0] != etag {
		t.Errorf("304 ETag %q, want [%s]", got, etag)
	}
	if r.header.Get("Cache-Control") == "" {
		t.Error("304 without Cache-Control")
	}
}

// HEAD is GET without the body: the same status and headers (ETag,
// Content-Length), from the kept answer and through grpc-gateway alike,
// and 304 with If-None-Match.
func TestHead(t *testing.T) {
	e := start(t, true)
	path := availabilityPath(policySKU)
	for range 2 { // through grpc-gateway, then from the kept answer
		get, head := e.getWith(t, path, nil), e.request(t, http.MethodHead, path, nil)
		if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("ETag") != get.header.Get("ETag") ||
			head.header.Get("Content-Length") != strconv.Itoa(len(get.body)) {
			t.Fatalf("HEAD %s: %d ETag %q Content-Length %q body %d bytes; GET: ETag %q, %d bytes",
				path, head.status, head.header.Get("ETag"), head.header.Get("Content-Length"), len(head.body), get.header.Get("ETag"), len(get.body))
		}
		if r := e.request(t, http.MethodHead, path, ifNoneMatch(get.header.Get("ETag"))); r.status != http.StatusNotModified {
			t.Errorf("HEAD with If-None-Match: %d, want 304", r.status)
		}
	}
	if r := e.request(t, http.MethodHead, availabilityPath("SKU-NOPE"), nil); r.status != http.StatusNotFound || len(r.body) != 0 {
		t.Errorf("HEAD of an unknown SKU: %d, %d bytes", r.status, len(r.body))
	}
}

// TestConditionalGet: If-None-Match with the current version gets 304 and
// no body (the first time, through grpc-gateway, and again, from the kept
// answer), with a weak tag, a list or "*"; any other tag gets the answer;
// a changed SKU gets its new answer and ETag. The same for a filtered
// answer and for a batch.
func TestConditionalGet(t *testing.T) {
	e := start(t, true)
	s := e.fix.state(t, policySKU)
	etag := `"` + e.fix.want(s, now).GetVersion() + `"`
	path := availabilityPath(policySKU)
	for range 2 {
		wantNotModified(t, e.getWith(t, path, ifNoneMatch(etag)), etag)
	}
	wantNotModified(t, e.getWith(t, path, ifNoneMatch(`"other"`, "W/"+etag)), etag)
	wantNotModified(t, e.getWith(t, path, ifNoneMatch("*")), etag)
	if r := e.getWith(t, path, ifNoneMatch(`"other"`)); r.status != http.StatusOK || r.header.Get("ETag") != etag || len(r.body) == 0 {
		t.Errorf("another tag: %d ETag %q body %q", r.status, r.header.Get("ETag"), r.body)
	}
	// Not found stays 404 whatever the tag.
	if r := e.getWith(t, availabilityPath("SKU-NOPE"), ifNoneMatch("*")); r.status != http.StatusNotFound {
		t.Errorf("unknown SKU with If-None-Match *: %d", r.status)
	}

	// The SKU changes: the old tag gets the new answer.
	more, _, err := inventory.Apply(s, inventory.StockLevel{SKU: policySKU, Location: "WH-1", OnHand: 50, AsOf: now.Add(-time.Minute), Sequence: 3}, now)
	if err != nil {
		t.Fatal(err)
	}
	e.stock.Put(more)
	r := e.getWith(t, path, ifNoneMatch(etag))
	newTag := `"` + e.fix.want(more, now).GetVersion() + `"`
	if r.status != http.StatusOK || r.header.Get("ETag") != newTag {
		t.Fatalf("after a change: %d ETag %q, want 200 and %s", r.status, r.header.Get("ETag"), newTag)
	}
	var body pb.Availability
	if err := protojson.Unmarshal(r.body, &body); err != nil || body.GetOnHand() != e.fix.want(more, now).GetOnHand() {
		t.Fatalf("after a change: %v %v", &body, err)
	}
	wantNotModified(t, e.getWith(t, path, ifNoneMatch(newTag)), newTag)

	// A filtered answer, and a region: their own tags.
	for _, q := range []string{"?locations=WH-1&channels=web", "?ship_to_region=US"} {
		first := e.get(t, path+q)
		tag := first.header.Get("ETag")
		if first.status != http.StatusOK || tag == "" || tag == newTag {
			t.Fatalf("%s: %d ETag %q", q, first.status, tag)
		}
		wantNotModified(t, e.getWith(t, path+q, ifNoneMatch(tag)), tag)
	}

	// A batch: its tag changes when any of its answers does.
	bq := batchQuery([]string{policySKU, cappedSKU, "SKU-NOPE"}, nil)
	first := e.get(t, bq)
	btag := first.header.Get("ETag")
	if first.status != http.StatusOK || btag == "" {
		t.Fatalf("batch: %d ETag %q", first.status, btag)
	}
	wantNotModified(t, e.getWith(t, bq, ifNoneMatch(btag)), btag)
	capped := e.fix.state(t, cappedSKU)
	capped, _, err = inventory.Apply(capped, inventory.StockLevel{SKU: cappedSKU, Location: "WH-1", OnHand: 1, AsOf: now.Add(-time.Second), Sequence: 9}, now)
	if err != nil {
		t.Fatal(err)
	}
	e.stock.Put(capped)
	if r := e.getWith(t, bq, ifNoneMatch(btag)); r.status != http.StatusOK || r.header.Get("ETag") == btag {
		t.Errorf("batch after a change: %d ETag %q (was %q)", r.status, r.header.Get("ETag"), btag)
	}
}

// TestMaxAgeNeverPastNextChange: Cache-Control's max-age is the configured
// maximum, or the whole seconds until the answer's next_change_at when
// that is sooner, and no-cache within the last second; for the first and
// the kept answer alike, and for a batch (its first change).
func TestMaxAgeNeverPastNextChange(t *testing.T) {
	for _, tt := range []struct {
		name   string
		maxAge time.Duration
		// clock offsets from fastStaleAt (policySKU's next change) and the
		// Cache-Control expected there.
		at   []time.Duration
		want []string
	}{
		{"default 5s", 0,
			[]time.Duration{-time.Hour, -5 * time.Second, -4500 * time.Millisecond, -time.Second, -999 * time.Millisecond, -1, 0},
			[]string{"max-age=5", "max-age=5", "max-age=4", "max-age=1", "no-cache", "no-cache", "max-age=5"}},
		{"an hour", time.Hour,
			[]time.Duration{-20 * time.Minute, -90 * time.Second, -1500 * time.Millisecond, -time.Millisecond},
			[]string{"max-age=1200", "max-age=90", "max-age=1", "no-cache"}},
		{"never", -1, []time.Duration{-time.Hour}, []string{"no-cache"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{stock: views.NewMemory(), fix: newFixture(t), clock: newClock(now)}
			e.states = e.fix.states
			e.fix.putStates(e.stock)
			e.fix.putPolicies(t, e.stock)
			opts := options(e.stock, e.stock)
			opts.Now, opts.CacheMaxAge = e.clock.Now, tt.maxAge
			e.serve(t, opts)
			for i, off := range tt.at {
				e.clock.Set(fastStaleAt.Add(off))
				want := e.fix.want(e.fix.state(t, policySKU), e.clock.Now())
				next := want.GetNextChangeAt().AsTime()
				for _, path := range []string{availabilityPath(policySKU), availabilityPath(policySKU), batchQuery([]string{policySKU, policySKU}, nil)} {
					r := e.get(t, path)
					if got := r.header.Get("Cache-Control"); got != tt.want[i] {
						t.Errorf("at fastStaleAt%+v (next change in %s), %s: Cache-Control %q, want %q", off, next.Sub(e.clock.Now()), path, got, tt.want[i])
					}
					if age, ok := strings.CutPrefix(r.header.Get("Cache-Control"), "max-age="); ok {
						if d, err := time.ParseDuration(age + "s"); err != nil || e.clock.Now().Add(d).After(next) {
							t.Errorf("max-age %s reaches past the next change %v", age, next)
						}
					}
				}
			}
		})
	}
}

// TestKeptAnswersServeWhatGRPCGatewayWrites: a gateway serving REST from
// kept answers and one that keeps none (every request through
// grpc-gateway) answer every request alike: status, headers (but Date) and
// body, byte for byte, for SKUs that need escaping in every spelling, with
// a region, with a filter, with an unknown or malformed SKU, conditional
// or not, with Accept headers.
func TestKeptAnswersServeWhatGRPCGatewayWrites(t *testing.T) {
	m := views.NewMemory()
	fix := newFixture(t)
	fix.putStates(m)
	fix.putPolicies(t, m)
	skus := []string{policySKU, cappedSKU}
	for i, sku := range catalogueSKUs {
		s, _, err := inventory.Apply(inventory.State{SKU: sku},
			inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: int64(i + 1), AsOf: now.Add(-time.Duration(i + 1))}, now)
		if err != nil {
			t.Fatal(err)
		}
		m.Put(s)
		skus = append(skus, sku)
	}
	clk := newClock(now.Add(1234567 * time.Microsecond)) // fractional seconds in evaluated_at
	serveWith := func(size int) *env {
		opts := options(m, m)
		opts.Now, opts.AnswerCacheSize = clk.Now, size
		e := &env{stock: m, fix: fix}
		e.serve(t, opts)
		return e
	}
	kept, plain := serveWith(0), serveWith(-1)

	var paths []string
	for _, sku := range skus {
		for seg := range map[string]bool{skuSegment(sku): true, hexEscape(sku, "%%%02X"): true, hexEscape(sku, "%%%02x"): true} {
			paths = append(paths, "/v1/availability/"+seg)
		}
	}
	paths = append(paths,
		availabilityPath(policySKU)+"?ship_to_region=US",
		availabilityPath(policySKU)+"?shipToRegion=US",
		availabilityPath(policySKU)+"?ship_to_region=usa",
		availabilityPath(policySKU)+"?locations=WH-1",
		availabilityPath("SKU-NOPE"),
		availabilityPath("bad\x01sku"),
	)
	headers := []http.Header{
		{},
		{"Accept": {"application/json"}},
		{"Accept": {"*/*"}, "Accept-Encoding": {"identity"}},
	}
	compare := func(path string, h http.Header) {
		t.Helper()
		a := kept.getWith(t, path, h.Clone())
		b := plain.getWith(t, path, h.Clone())
		a.header.Del("Date")
		b.header.Del("Date")
		if a.status != b.status || !bytes.Equal(a.body, b.body) || !sameHeaders(a.header, b.header) {
			t.Errorf("%s %v:\n kept  %d %v %s\n plain %d %v %s", path, h, a.status, a.header, a.body, b.status, b.header, b.body)
		}
	}
	for _, path := range paths {
		for _, h := range headers {
			compare(path, h)
			compare(path, h) // the second time from the kept answer
		}
		// Conditional, with the current tag.
		r := plain.get(t, path)
		if tag := r.header.Get("ETag"); tag != "" {
			compare(path, ifNoneMatch(tag))
		}
	}
	// The clock moves past policySKU's next change: both re-evaluate.
	clk.Set(fastStaleAt.Add(time.Millisecond))
	compare(availabilityPath(policySKU), http.Header{})
	compare(availabilityPath(policySKU), http.Header{})
}

func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// Options: the new limits' zero values are the defaults, negatives mean
// "none"; a negative batch limit is refused.
func TestReadOptionsDefaults(t *testing.T) {
	o := options(views.NewMemory(), views.NewMemory())
	o.BatchLimit = -1
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "batch limit -1 is negative") {
		t.Errorf("negative batch limit: %v", err)
	}
	o.BatchLimit, o.CacheMaxAge, o.AnswerCacheSize = 0, -1, -1
	if err := o.Validate(); err != nil {
		t.Errorf("no HTTP caching, no kept answers: %v", err)
	}
	if gateway.DefaultCacheMaxAge != 5*time.Second || gateway.DefaultAnswerCacheSize <= 0 {
		t.Errorf("defaults: %s, %d", gateway.DefaultCacheMaxAge, gateway.DefaultAnswerCacheSize)
	}
}
