package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// The world the differential test draws from: a few SKUs, locations of
// every kind (two merchants, one with a short TTL), the configured
// channels, a region one location excludes.
var (
	diffSKUs      = []string{"SKU-A", "SKU-B/2", "SKU-C"}
	diffLocations = []string{"WH-1", "ST-1", "MX-1", "MX-2"}
	diffChannels  = []string{"marketplace", "store-pickup", "web"}
	diffBase      = inventory.Base{Channels: diffChannels, DefaultStaleAfter: 40 * time.Second}
	diffT0        = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
)

// diffWorld is the lookups' content and the clock, mutated by the test's
// steps, with a gateway's availability server and REST front over it.
type diffWorld struct {
	mem   *views.Memory
	now   time.Time
	seq   int
	avail *availabilityServer
	front *restFront
	json  runtime.Marshaler
}

func newDiffWorld(t *rapid.T) *diffWorld {
	w := &diffWorld{mem: views.NewMemory(), now: diffT0}
	w.avail = &availabilityServer{
		stock: w.mem, policies: w.mem, base: diffBase, now: func() time.Time { return w.now },
		answers: newAnswers(w.mem, w.mem, diffBase, rapid.SampledFrom([]int{0, 2}).Draw(t, "cache-size")),
		// A cache of 2 answers (one per shard at most) keeps evicting.
		batchLimit: DefaultBatchLimit, maxAge: DefaultCacheMaxAge,
	}
	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(apierr.HTTPErrorHandler(nil)),
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		// As New configures them (the gateway tests check New's over real
		// HTTP).
		runtime.WithWriteContentLength(),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			switch key {
			case "etag", "cache-control":
				return key, true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
	)
	if err := pb.RegisterAvailabilityServiceHandlerServer(context.Background(), gw, w.avail); err != nil {
		t.Fatal(err)
	}
	w.front = newRESTFront(gw, w.avail, nil)
	w.json = w.front.json
	return w
}

func (w *diffWorld) state(sku string) inventory.State {
	s, found, err := w.mem.Get(sku)
	if err != nil {
		panic(err)
	}
	if !found {
		return inventory.State{SKU: sku}
	}
	return s
}

func (w *diffWorld) apply(t *rapid.T, ev inventory.Event) {
	sku := ev.EventSKU()
	s, res, err := inventory.Apply(w.state(sku), ev, w.now)
	if err != nil || !res.Changed {
		return // rejected or a no-op, as the processor would leave it
	}
	w.mem.Put(s)
}

// step draws and performs one change: an event, a reservation, a policy, or
// a clock move (often to exactly a kept answer's next change, or a
// nanosecond either side).
func (w *diffWorld) step(t *rapid.T) {
	sku := rapid.SampledFrom(diffSKUs).Draw(t, "sku")
	loc := rapid.SampledFrom(diffLocations).Draw(t, "location")
	ago := func(label string) time.Time {
		return w.now.Add(-time.Duration(rapid.IntRange(-5, 60).Draw(t, label)) * time.Second)
	}
	w.seq++
	switch rapid.IntRange(0, 10).Draw(t, "step") {
	case 0, 1:
		w.apply(t, inventory.StockLevel{SKU: sku, Location: loc, OnHand: rapid.Int64Range(0, 20).Draw(t, "on-hand"),
			AsOf: ago("level-age"), Sequence: uint64(w.seq)})
	case 2:
		w.apply(t, inventory.StockAdjustment{EventID: fmt.Sprintf("adj-%d", w.seq), SKU: sku, Location: loc,
			Delta: rapid.Int64Range(-5, 5).Draw(t, "delta"), OccurredAt: ago("adjusted")})
	case 3:
		w.apply(t, inventory.ChannelEligibility{SKU: sku, Channel: rapid.SampledFrom(diffChannels).Draw(t, "channel"),
			Sellable: rapid.Bool().Draw(t, "sellable"), AsOf: w.now.Add(time.Duration(w.seq))})
	case 4:
		start := w.now.Add(time.Duration(rapid.IntRange(-20, 20).Draw(t, "window-start")) * time.Second)
		w.apply(t, inventory.SalesCap{SKU: sku, Channel: rapid.SampledFrom(diffChannels).Draw(t, "cap-channel"),
			Limit: rapid.Int64Range(0, 6).Draw(t, "cap"), WindowStart: start,
			WindowEnd: start.Add(time.Duration(rapid.IntRange(1, 30).Draw(t, "window-length")) * time.Second), AsOf: w.now.Add(time.Duration(w.seq))})
	case 5:
		w.apply(t, inventory.BackorderLimit{SKU: sku, Limit: rapid.Int64Range(0, 5).Draw(t, "backorders"), AsOf: w.now.Add(time.Duration(w.seq))})
	case 6: // a hold, as the SKU processor records one; or the end of one
		s := w.state(sku)
		if !s.Known() {
			return
		}
		if len(s.Reservations) > 0 && rapid.Bool().Draw(t, "end-hold") {
			i := rapid.IntRange(0, len(s.Reservations)-1).Draw(t, "hold")
			s.Reservations = slices.Clone(s.Reservations)
			s.Reservations[i].Status = rapid.SampledFrom([]inventory.ReservationStatus{inventory.StatusReleased, inventory.StatusFulfilled}).Draw(t, "ended")
			s.Reservations[i].ClosedAt = w.now
		} else {
			s.Reservations = append(slices.Clone(s.Reservations), inventory.Reservation{
				ID: fmt.Sprintf("R-%03d", w.seq), OrderID: fmt.Sprintf("O-%03d", w.seq),
				Channel:  rapid.SampledFrom(diffChannels).Draw(t, "hold-channel"),
				Quantity: rapid.Int64Range(1, 4).Draw(t, "hold-quantity"), Status: inventory.StatusHeld,
				Backorder: rapid.IntRange(0, 5).Draw(t, "backorder") == 0, DecidedAt: w.now,
				ExpiresAt: w.now.Add(time.Duration(rapid.IntRange(1, 20).Draw(t, "hold-ttl")) * time.Second),
			})
		}
		w.mem.Put(s)
	case 7: // a location's policy
		lp := inventory.LocationPolicy{Location: loc, Kind: inventory.KindWarehouse, AsOf: diffT0}
		switch loc {
		case "ST-1":
			lp.Kind = inventory.KindStore
		case "MX-1", "MX-2":
			lp.Kind, lp.MerchantID = inventory.KindMerchant, "m-"+loc
		}
		lp.Closed = rapid.IntRange(0, 3).Draw(t, "closed") == 0
		lp.Channels = rapid.SliceOfNDistinct(rapid.SampledFrom(diffChannels), 0, 2, rapid.ID).Draw(t, "location-channels")
		lp.SafetyStock = rapid.Int64Range(0, 3).Draw(t, "safety")
		if rapid.Bool().Draw(t, "excludes-us") {
			lp.ExcludedRegions = []string{"US"}
		}
		norm, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false, lp)
		if err != nil {
			t.Fatalf("location policy %+v: %v", lp, err)
		}
		if err := w.mem.PutPolicy(&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(norm)}}); err != nil {
			t.Fatal(err)
		}
	case 8: // a merchant's TTL
		mp := inventory.MerchantPolicy{MerchantID: rapid.SampledFrom([]string{"m-MX-1", "m-MX-2"}).Draw(t, "merchant"),
			StaleAfter: time.Duration(rapid.IntRange(0, 30).Draw(t, "ttl")) * time.Second, AsOf: diffT0}
		if err := w.mem.PutPolicy(&pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(mp)}}); err != nil {
			t.Fatal(err)
		}
	default: // the clock
		switch rapid.IntRange(0, 3).Draw(t, "clock") {
		case 0: // back, often from just past a change to just before it
			w.now = w.now.Add(-rapid.SampledFrom([]time.Duration{1, 2, time.Millisecond, time.Second}).Draw(t, "back"))
		case 1, 2:
			if next := w.want(t, sku, "").snap.NextChangeAt; !next.IsZero() {
				w.now = next.Add(time.Duration(rapid.IntRange(-1, 1).Draw(t, "nudge")))
				return
			}
			fallthrough
		default:
			w.now = w.now.Add(time.Duration(rapid.IntRange(0, 8000).Draw(t, "forward-ms")) * time.Millisecond)
		}
	}
}

// expected is the uncached answer: the pure rules over what the lookups
// hold now.
type expected struct {
	found bool
	snap  inventory.Snapshot
}

func (w *diffWorld) want(t *rapid.T, sku, shipTo string) expected {
	s, found, err := w.mem.Get(sku)
	if err != nil {
		t.Fatal(err)
	}
	if !found || !s.Known() {
		return expected{}
	}
	pol, err := schema.Gather(s, w.mem.GetPolicy, diffBase)
	if err != nil {
		t.Fatal(err)
	}
	pol.ShipTo = shipTo
	return expected{found: true, snap: inventory.Evaluate(s, pol, w.now)}
}

func (x expected) message(f inventory.Filter) *pb.Availability {
	if f.IsZero() {
		return codecs.SnapshotToProto(x.snap)
	}
	return codecs.RestrictedToProto(inventory.Restrict(x.snap, f))
}

// decoded is what a gRPC client reads from m: it is marshalled and parsed
// again, as the transport does.
func decoded[M proto.Message](t *rapid.T, m M, into M) M {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	if err := proto.Unmarshal(b, into); err != nil {
		t.Fatalf("unmarshal %T: %v", m, err)
	}
	return into
}

// hits counts the queries the differential test answered from kept
// answers, so that it can check it tested the cache at all.
var diffHits, diffRESTHits, diffQueries atomic.Int64

// TestDifferentialKeptAnswers: under random events, holds, policy changes
// and clock moves (forwards, backwards, to exactly an answer's
// next_change_at and a nanosecond either side), every answer the gateway
// serves (gRPC Get and BatchGet, REST through grpc-gateway, and REST from
// the kept JSON) is exactly the uncached answer: inventory.Evaluate over
// what the lookups hold at the query time, through the same encoders. REST
// bodies are compared byte for byte with grpc-gateway's marshaller.
func TestDifferentialKeptAnswers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newDiffWorld(t)
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			w.step(t)
			for range rapid.IntRange(0, 3).Draw(t, "queries") {
				w.query(t)
			}
		}
	})
	if diffHits.Load() == 0 || diffHits.Load() == diffQueries.Load() || diffRESTHits.Load() == 0 {
		t.Fatalf("%d of %d queries were served from kept answers (%d from kept JSON): the test does not exercise both paths",
			diffHits.Load(), diffQueries.Load(), diffRESTHits.Load())
	}
	t.Logf("%d of %d queries served from kept answers, %d of them from kept JSON", diffHits.Load(), diffQueries.Load(), diffRESTHits.Load())
}

func (w *diffWorld) query(t *rapid.T) {
	sku := rapid.SampledFrom(append(slices.Clone(diffSKUs), "SKU-NONE")).Draw(t, "query-sku")
	shipTo := ""
	if rapid.IntRange(0, 3).Draw(t, "region") == 0 {
		shipTo = "US"
	}
	var f inventory.Filter
	if rapid.IntRange(0, 3).Draw(t, "filtered") == 0 {
		var err error
		f, err = inventory.NewFilter(
			rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(diffLocations), "XX-1")), 0, 3).Draw(t, "filter-locations"),
			rapid.SliceOfN(rapid.SampledFrom(diffChannels), 0, 2).Draw(t, "filter-channels"), diffChannels)
		if err != nil {
			t.Fatal(err)
		}
	}
	x := w.want(t, sku, shipTo)
	diffQueries.Add(1)
	hit := w.avail.answers.keeping() && w.avail.answers.kept(sku, shipTo, w.now) != nil
	if hit {
		diffHits.Add(1)
	}
	req := &pb.GetAvailabilityRequest{Sku: sku, ShipToRegion: shipTo, Locations: f.Locations, Channels: f.Channels}
	switch rapid.IntRange(0, 3).Draw(t, "transport") {
	case 0: // gRPC
		got, err := w.avail.GetAvailability(context.Background(), req)
		w.check(t, "gRPC", x, f, err, func() *pb.Availability { return decoded(t, got, new(pb.Availability)) })
	case 1: // REST, through the front: kept JSON or grpc-gateway
		path := "/v1/availability/" + url.PathEscape(sku)
		q := url.Values{}
		if shipTo != "" {
			q.Set("ship_to_region", shipTo)
		}
		for _, l := range f.Locations {
			q.Add("locations", l)
		}
		for _, c := range f.Channels {
			q.Add("channels", c)
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		if hit && f.IsZero() {
			diffRESTHits.Add(1) // served from the kept JSON
		}
		rec := httptest.NewRecorder()
		w.front.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if !x.found {
			if rec.Code != http.StatusNotFound {
				t.Fatalf("REST %s: status %d, want 404: %s", path, rec.Code, rec.Body)
			}
			return
		}
		want := x.message(f)
		wantBody, err := w.json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), wantBody) {
			t.Fatalf("REST %s: status %d body\n%s\nwant the marshaller's\n%s", path, rec.Code, rec.Body, wantBody)
		}
		if got, want := rec.Header().Get("ETag"), `"`+want.GetVersion()+`"`; got != want {
			t.Fatalf("REST %s: ETag %s, want %s", path, got, want)
		}
		if got, want := rec.Header().Get("Cache-Control"), cacheControl(DefaultCacheMaxAge, w.now, x.snap.NextChangeAt); got != want {
			t.Fatalf("REST %s: Cache-Control %q, want %q", path, got, want)
		}
	case 2: // gRPC batch, with duplicates and an unknown SKU
		skus := rapid.SliceOfN(rapid.SampledFrom(append(slices.Clone(diffSKUs), "SKU-NONE")), 1, 6).Draw(t, "batch")
		resp, err := w.avail.BatchGetAvailability(context.Background(), &pb.BatchGetAvailabilityRequest{
			Sku: skus, ShipToRegion: shipTo, Locations: f.Locations, Channels: f.Channels})
		if err != nil {
			t.Fatalf("BatchGet %q: %v", skus, err)
		}
		got := decoded(t, resp, new(pb.BatchGetAvailabilityResponse))
		want := &pb.BatchGetAvailabilityResponse{EvaluatedAt: timestamppb.New(w.now)}
		seen := map[string]bool{}
		for _, s := range skus {
			if seen[s] {
				continue
			}
			seen[s] = true
			r := &pb.AvailabilityResult{Sku: s}
			if x := w.want(t, s, shipTo); x.found {
				r.Found, r.Availability = true, x.message(f)
			}
			want.Results = append(want.Results, r)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("BatchGet %q:\n got  %v\n want %v", skus, got, want)
		}
	default: // REST through grpc-gateway's handler (the in-process call)
		ctx, err := runtime.AnnotateIncomingContext(context.Background(), runtime.NewServeMux(),
			httptest.NewRequest(http.MethodGet, "/", nil), "/skuflow.v1.AvailabilityService/GetAvailability")
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.avail.GetAvailability(ctx, req)
		w.check(t, "REST handler", x, f, err, func() *pb.Availability { return got })
	}
}

func (w *diffWorld) check(t *rapid.T, what string, x expected, f inventory.Filter, err error, got func() *pb.Availability) {
	if !x.found {
		if apierr.Status(err).Code() != 5 { // NotFound
			t.Fatalf("%s: %v, want NotFound", what, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g, want := got(), x.message(f); !proto.Equal(g, want) {
		t.Fatalf("%s at %v:\n got  %v\n want %v", what, w.now, g, want)
	}
}

// The JSON timestamp writer is protojson's, to the byte, across the range
// and at the edges of the fraction's trimming.
func TestAppendJSONTimestampIsProtojsons(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		secs := rapid.Int64Range(minTimestampSeconds, maxTimestampSeconds).Draw(t, "seconds")
		nanos := rapid.SampledFrom([]int64{0, 1, 1_000, 1_000_000, 100_000_000, 999_999_999, 120_000_000, 123_456_000}).Draw(t, "nanos")
		if rapid.Bool().Draw(t, "any-nanos") {
			nanos = rapid.Int64Range(0, 999_999_999).Draw(t, "nanos-any")
		}
		tm := time.Unix(secs, nanos).In(time.FixedZone("X", 3600))
		want, err := protojson.Marshal(timestamppb.New(tm))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendJSONTimestamp([]byte("x"), tm)
		if !ok || string(got) != "x"+string(want) {
			t.Fatalf("%v: %q (ok %v), protojson %q", tm, got, ok, want)
		}
	})
	for _, tm := range []time.Time{time.Unix(minTimestampSeconds-1, 0), time.Unix(maxTimestampSeconds+1, 0)} {
		if _, ok := appendJSONTimestamp(nil, tm); ok {
			t.Errorf("%v is outside the Timestamp range but written", tm)
		}
	}
}

// A pre-encoded answer decodes as the message with evaluated_at, for any
// time a Timestamp holds.
func TestPreEncodedAnswerDecodes(t *testing.T) {
	s := inventory.State{SKU: "SKU-1"}
	s, _, err := inventory.Apply(s, inventory.StockLevel{SKU: "SKU-1", Location: "WH-1", OnHand: 3, AsOf: diffT0}, diffT0)
	if err != nil {
		t.Fatal(err)
	}
	snap := inventory.Evaluate(s, diffBase.Policies(), diffT0)
	e := newAnswer(snap)
	for _, now := range []time.Time{diffT0, {}, time.Unix(0, 0), time.Unix(-5, 7), time.Unix(maxTimestampSeconds, 999_999_999), time.Unix(minTimestampSeconds, 0)} {
		at := snap
		at.EvaluatedAt = now
		want := codecs.SnapshotToProto(at) // the uncached answer (no evaluated_at at the zero time)
		var got pb.Availability
		b, err := proto.Marshal(e.preEncodedAt(now))
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, &got); err != nil || !proto.Equal(&got, want) {
			t.Errorf("at %v: %v\n%v\nwant\n%v", now, err, &got, want)
		}
		if m := e.messageAt(now); !proto.Equal(m, want) {
			t.Errorf("messageAt(%v) = %v, want %v", now, m, want)
		}
	}
}

func TestCacheControl(t *testing.T) {
	now := diffT0
	for _, tt := range []struct {
		maxAge time.Duration
		until  time.Time
		want   string
	}{
		{5 * time.Second, time.Time{}, "max-age=5"},
		{5 * time.Second, now.Add(time.Hour), "max-age=5"},
		{5 * time.Second, now.Add(3 * time.Second), "max-age=3"},
		{5 * time.Second, now.Add(2999 * time.Millisecond), "max-age=2"}, // floored: never past the change
		{5 * time.Second, now.Add(time.Second), "max-age=1"},
		{5 * time.Second, now.Add(999 * time.Millisecond), "no-cache"},
		{5 * time.Second, now.Add(time.Nanosecond), "no-cache"},
		{5 * time.Second, now, "no-cache"},
		{5 * time.Second, now.Add(-time.Second), "no-cache"},
		{1500 * time.Millisecond, time.Time{}, "max-age=1"},
		{-1, time.Time{}, "no-cache"},
		{time.Hour, time.Time{}, "max-age=3600"},
	} {
		if got := cacheControl(tt.maxAge, now, tt.until); got != tt.want {
			t.Errorf("cacheControl(%s, until now%+v) = %q, want %q", tt.maxAge, tt.until.Sub(now), got, tt.want)
		}
	}
}

func TestETagMatches(t *testing.T) {
	for _, tt := range []struct {
		inm, etag string
		want      bool
	}{
		{`"abc"`, `"abc"`, true},
		{`W/"abc"`, `"abc"`, true},
		{`"x", "abc"`, `"abc"`, true},
		{`"x",W/"abc" `, `"abc"`, true},
		{`*`, `"abc"`, true},
		{`"abd"`, `"abc"`, false},
		{`abc`, `"abc"`, false},
		{`"abc"`, ``, false},
		{``, `"abc"`, false},
	} {
		if got := etagMatches(tt.inm, tt.etag); got != tt.want {
			t.Errorf("etagMatches(%q, %q) = %v", tt.inm, tt.etag, got)
		}
	}
}
