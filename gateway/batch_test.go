package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

func (e *env) post(t *testing.T, path, contentType, body string) response {
	t.Helper()
	resp, err := e.http.Post(e.base+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// batchQuery is a REST batch GET's query string for skus (plus extra).
func batchQuery(skus []string, extra url.Values) string {
	q := url.Values{"sku": skus}
	for k, v := range extra {
		q[k] = v
	}
	return "/v1/availability?" + q.Encode()
}

// wantBatch is the batch answer for skus at now: one result per distinct
// SKU in request order, each the pure rules' answer (known: found).
func (e *env) wantBatch(skus []string, now time.Time, answer func(s inventory.State) *pb.Availability) *pb.BatchGetAvailabilityResponse {
	want := &pb.BatchGetAvailabilityResponse{EvaluatedAt: timestamppb.New(now)}
	seen := map[string]bool{}
	for _, sku := range skus {
		if seen[sku] {
			continue
		}
		seen[sku] = true
		r := &pb.AvailabilityResult{Sku: sku}
		if s, found, _ := e.stock.Get(sku); found && s.Known() {
			r.Found, r.Availability = true, answer(s)
		}
		want.Results = append(want.Results, r)
	}
	return want
}

// batchAllWays asks for skus over gRPC, REST GET and REST POST and checks
// each answer against want.
func (e *env) batchAllWays(t *testing.T, req *pb.BatchGetAvailabilityRequest, want *pb.BatchGetAvailabilityResponse) {
	t.Helper()
	got, err := e.avail.BatchGetAvailability(ctx(t), req)
	if err != nil {
		t.Fatalf("gRPC BatchGetAvailability: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("gRPC batch\n%v\nwant\n%v", got, want)
	}
	extra := url.Values{}
	if req.GetShipToRegion() != "" {
		extra.Set("ship_to_region", req.GetShipToRegion())
	}
	if len(req.GetLocations()) > 0 {
		extra["locations"] = req.GetLocations()
	}
	if len(req.GetChannels()) > 0 {
		extra["channels"] = req.GetChannels()
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []response{
		e.get(t, batchQuery(req.GetSku(), extra)),
		e.post(t, "/v1/availability:batchGet", "application/json", string(body)),
	} {
		if r.status != http.StatusOK {
			t.Fatalf("REST batch: status %d, body %s", r.status, r.body)
		}
		var got pb.BatchGetAvailabilityResponse
		if err := protojson.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("REST batch body %s: %v", r.body, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("REST batch\n%v\nwant\n%v", &got, want)
		}
	}
}

// TestBatchGetMixed: known, unknown and duplicate SKUs in one call, over
// gRPC, REST GET and REST POST: one result per distinct SKU in request
// order (a duplicate at its first position), an unknown SKU found=false,
// every answer the pure rules' at the one instant.
func TestBatchGetMixed(t *testing.T) {
	e := start(t, true)
	a, b := e.states[0].SKU, policySKU
	skus := []string{a, "SKU-NOPE", b, a, "SKU-NOPE", cappedSKU, b}
	want := e.wantBatch(skus, now, func(s inventory.State) *pb.Availability { return e.fix.want(s, now) })
	if n := len(want.Results); n != 4 || want.Results[1].GetFound() || !want.Results[0].GetFound() {
		t.Fatalf("the test's expectation is off: %v", want)
	}
	e.batchAllWays(t, &pb.BatchGetAvailabilityRequest{Sku: skus}, want)
	// Asked again (now from kept answers), the same.
	e.batchAllWays(t, &pb.BatchGetAvailabilityRequest{Sku: skus}, want)

	// A region applies to every SKU.
	wantUS := e.wantBatch(skus, now, func(s inventory.State) *pb.Availability {
		p := e.fix.policies()
		p.ShipTo = "US"
		return codecs.SnapshotToProto(inventory.Evaluate(s, p, now))
	})
	e.batchAllWays(t, &pb.BatchGetAvailabilityRequest{Sku: skus, ShipToRegion: "US"}, wantUS)
}

// TestBatchGetCatalogueSKUs: SKUs with '/', spaces, '+', '%', quotes and
// non-ASCII letters travel in a REST query string and a JSON body.
func TestBatchGetCatalogueSKUs(t *testing.T) {
	e := start(t, true)
	for i, sku := range catalogueSKUs {
		s, _, err := inventory.Apply(inventory.State{SKU: sku},
			inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: int64(i + 1), AsOf: now.Add(-time.Duration(i + 1))}, now)
		if err != nil {
			t.Fatalf("%q: %v", sku, err)
		}
		e.stock.Put(s)
	}
	skus := append([]string{"unknown/ü +%"}, catalogueSKUs...)
	want := e.wantBatch(skus, now, func(s inventory.State) *pb.Availability { return e.fix.want(s, now) })
	e.batchAllWays(t, &pb.BatchGetAvailabilityRequest{Sku: skus}, want)
}

// TestBatchGetOneInstant: the clock moves on every reading; still every
// answer of a batch is evaluated at one instant, the response's.
func TestBatchGetOneInstant(t *testing.T) {
	m := views.NewMemory()
	fix := newFixture(t)
	fix.putStates(m)
	fix.putPolicies(t, m)
	var mu sync.Mutex
	tick := now
	opts := options(m, m)
	opts.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(7 * time.Minute) // past fastLocation's staleness within a few readings
		return tick
	}
	e := &env{stock: m, fix: fix, states: fix.states}
	e.serve(t, opts)
	var skus []string
	for _, s := range fix.states {
		skus = append(skus, s.SKU)
	}
	for range 3 {
		resp, err := e.avail.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: skus})
		if err != nil {
			t.Fatal(err)
		}
		at := resp.GetEvaluatedAt().AsTime()
		want := e.wantBatch(skus, at, func(s inventory.State) *pb.Availability { return fix.want(s, at) })
		if !proto.Equal(resp, want) {
			t.Fatalf("batch evaluated at %v is not every answer at that instant:\n%v\nwant\n%v", at, resp, want)
		}
	}
}

// TestBatchGetRefused: malformed SKUs (each named), too many SKUs (naming
// the limit), none at all, a malformed region, location or channel, an
// unconfigured channel: InvalidArgument / 400, over gRPC and REST.
func TestBatchGetRefused(t *testing.T) {
	m := views.NewMemory()
	fix := newFixture(t)
	fix.putStates(m)
	opts := options(m, m)
	opts.BatchLimit = 3
	e := &env{stock: m, fix: fix, states: fix.states}
	e.serve(t, opts)
	ok := e.states[0].SKU
	for _, tt := range []struct {
		name string
		req  *pb.BatchGetAvailabilityRequest
		want []string
	}{
		{"no sku", &pb.BatchGetAvailabilityRequest{}, []string{"no sku given: ask for 1 to 3 SKUs"}},
		{"over the limit", &pb.BatchGetAvailabilityRequest{Sku: []string{ok, ok, ok, "B"}}, []string{"4 SKUs asked for, more than the limit of 3 per call"}},
		{"a malformed sku", &pb.BatchGetAvailabilityRequest{Sku: []string{ok, "bad\tsku", " lead"}},
			[]string{`sku[1]: sku "bad\tsku" has a control character`, `sku[2]: sku " lead" starts or ends with a space`, inventory.SKURule}},
		{"an empty sku", &pb.BatchGetAvailabilityRequest{Sku: []string{ok, ""}}, []string{"sku[1]: sku is empty"}},
		{"a malformed region", &pb.BatchGetAvailabilityRequest{Sku: []string{ok}, ShipToRegion: "usa"}, []string{`ship_to_region "usa"`}},
		{"a malformed location", &pb.BatchGetAvailabilityRequest{Sku: []string{ok}, Locations: []string{"WH 1"}}, []string{`location "WH 1" has characters outside`}},
		{"an unconfigured channel", &pb.BatchGetAvailabilityRequest{Sku: []string{ok}, Channels: []string{"app"}}, []string{`channel is not configured: "app"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.avail.BatchGetAvailability(ctx(t), tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("gRPC: %v, want InvalidArgument", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("gRPC message %q does not say %q", status.Convert(err).Message(), w)
				}
			}
			body, err := protojson.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			r := e.post(t, "/v1/availability:batchGet", "application/json", string(body))
			if r.status != http.StatusBadRequest {
				t.Fatalf("REST: status %d, want 400: %s", r.status, r.body)
			}
			if s := errorBody(t, r); s.Code != codes.InvalidArgument || !strings.Contains(s.Message, tt.want[0]) {
				t.Errorf("REST error %+v, want it to say %q", s, tt.want[0])
			}
		})
	}
	// Exactly the limit is fine, duplicates included.
	if _, err := e.avail.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: []string{ok, ok, "B"}}); err != nil {
		t.Errorf("a batch at the limit: %v", err)
	}
	// The default limit is 1,000.
	if gateway.DefaultBatchLimit != 1000 {
		t.Errorf("DefaultBatchLimit = %d", gateway.DefaultBatchLimit)
	}
}

// TestBatchGetDefaultLimit: 1,000 SKUs are answered, 1,001 are refused
// naming the limit.
func TestBatchGetDefaultLimit(t *testing.T) {
	e := start(t, true)
	skus := make([]string, gateway.DefaultBatchLimit+1)
	for i := range skus {
		skus[i] = fmt.Sprintf("SKU-%d", i)
	}
	resp, err := e.avail.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: skus[:gateway.DefaultBatchLimit]})
	if err != nil || len(resp.GetResults()) != gateway.DefaultBatchLimit {
		t.Fatalf("1,000 SKUs: %d results, %v", len(resp.GetResults()), err)
	}
	_, err = e.avail.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: skus})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "more than the limit of 1000") {
		t.Errorf("1,001 SKUs: %v", err)
	}
}

// TestReadsAgainstEmbeddedBroker: the gateway over goka views of the stock
// and policies tables on the embedded broker, with real gRPC and HTTP
// clients and a fixed clock: a batch mixing known, unknown, duplicate and
// malformed SKUs; a per-location query; then the tables change, and the
// answers follow, though the clock never moves: kept answers are dropped
// when the views apply an update of the SKU or of a policy.
func TestReadsAgainstEmbeddedBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	fix := newFixture(t)
	emitStates(t, b, fix.states...)
	var pols []*pb.PolicyEvent
	for _, p := range fix.locations {
		pols = append(pols, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(p)}})
	}
	for _, p := range fix.merchants {
		pols = append(pols, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(p)}})
	}
	emitPolicyEvents(t, b, pols...)

	vopts := func(name string) []goka.ViewOption {
		return append(b.Kafka.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(t.TempDir(), name))))
	}
	sv, err := views.NewStock(b.Kafka.Brokers, vopts("stock")...)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := views.NewPolicies(b.Kafka.Brokers, vopts("policies")...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, sv.Run)
	testkit.Go(t, pv.Run)
	srv, err := gateway.New(gateway.Options{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Stock: sv, Policies: pv,
		Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := pb.NewAvailabilityServiceClient(conn)
	e := &env{http: &http.Client{Timeout: 5 * time.Second}, base: "http://" + srv.HTTPAddr()}

	// want is the pure rules' answer over the fixture, with a state
	// replaced and a policy added.
	wantOf := func(s inventory.State, extra ...inventory.LocationPolicy) *pb.Availability {
		p := fix.policies()
		for _, l := range extra {
			p.Locations[l.Location] = l
		}
		return codecs.SnapshotToProto(inventory.Evaluate(s, p, now))
	}
	pol := fix.state(t, policySKU)
	testkit.Eventually(t, 30*time.Second, func() error {
		got, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: policySKU})
		if err != nil {
			return err
		}
		if !proto.Equal(got, wantOf(pol)) {
			return fmt.Errorf("answer %v, want %v", got, wantOf(pol))
		}
		return nil
	})

	// A batch mixing known, unknown and duplicate SKUs...
	skus := []string{policySKU, "SKU-NOPE", cappedSKU, policySKU}
	resp, err := client.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: skus})
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.BatchGetAvailabilityResponse{EvaluatedAt: timestamppb.New(now), Results: []*pb.AvailabilityResult{
		{Sku: policySKU, Found: true, Availability: wantOf(pol)},
		{Sku: "SKU-NOPE"},
		{Sku: cappedSKU, Found: true, Availability: wantOf(fix.state(t, cappedSKU))},
	}}
	if !proto.Equal(resp, want) {
		t.Fatalf("batch\n%v\nwant\n%v", resp, want)
	}
	r := e.get(t, batchQuery(skus, nil))
	var rest pb.BatchGetAvailabilityResponse
	if r.status != http.StatusOK || protojson.Unmarshal(r.body, &rest) != nil || !proto.Equal(&rest, want) {
		t.Fatalf("REST batch: %d %s, want %v", r.status, r.body, want)
	}
	// ...and a malformed one.
	_, err = client.BatchGetAvailability(ctx(t), &pb.BatchGetAvailabilityRequest{Sku: append(skus, "bad\x00sku")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `sku[4]: sku "bad\x00sku"`) {
		t.Fatalf("batch with a malformed SKU: %v", err)
	}
	if r := e.get(t, batchQuery(append(skus, "bad\x00sku"), nil)); r.status != http.StatusBadRequest {
		t.Fatalf("REST batch with a malformed SKU: %d %s", r.status, r.body)
	}

	// A per-location query agrees with the full answer's breakdown.
	full := wantOf(pol)
	loc, err := client.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: policySKU, Locations: []string{"WH-1", pickupLocation}})
	if err != nil {
		t.Fatal(err)
	}
	checkLocationAnswer(t, loc, full, []string{"WH-1", pickupLocation})

	// The SKU's state changes (more stock at WH-1): the answer follows
	// over gRPC and REST, though the clock stands still.
	more, _, err := inventory.Apply(pol, inventory.StockLevel{SKU: policySKU, Location: "WH-1", OnHand: 99, AsOf: now.Add(-time.Minute), Sequence: 2}, now)
	if err != nil {
		t.Fatal(err)
	}
	emitStates(t, b, more)
	testkit.Eventually(t, 30*time.Second, func() error { return sameBothWays(e, client, policySKU, wantOf(more)) })

	// A policy changes (the pickup store closes): every answer reading it
	// follows.
	closed := inventory.LocationPolicy{Location: pickupLocation, Kind: inventory.KindStore, Closed: true, Channels: []string{"store-pickup"}, AsOf: now}
	emitPolicyEvents(t, b, &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(closed)}})
	testkit.Eventually(t, 30*time.Second, func() error { return sameBothWays(e, client, policySKU, wantOf(more, closed)) })
}

// sameBothWays checks that gRPC and REST answer want for sku.
func sameBothWays(e *env, client pb.AvailabilityServiceClient, sku string, want *pb.Availability) error {
	got, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
	if err != nil {
		return err
	}
	if !proto.Equal(got, want) {
		return fmt.Errorf("gRPC answer %v, want %v", got, want)
	}
	resp, err := e.http.Get(e.base + availabilityPath(sku))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var rest pb.Availability
	if err := protojson.Unmarshal(body, &rest); err != nil {
		return fmt.Errorf("REST %d %s: %w", resp.StatusCode, body, err)
	}
	if !proto.Equal(&rest, want) {
		return fmt.Errorf("REST answer %v, want %v", &rest, want)
	}
	return nil
}

// emitStates writes states to the stock table's changelog, as the stock
// processor would.
func emitStates(t *testing.T, b *testkit.Broker, states ...inventory.State) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.StockTable), codecs.State{}, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, s := range states {
		if err := em.EmitSync(s.SKU, s); err != nil {
			t.Fatalf("emit %s: %v", s.SKU, err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}

// emitPolicyEvents writes policies to the policies table's changelog under
// their keys, as the policies processor would.
func emitPolicyEvents(t *testing.T, b *testkit.Broker, pols ...*pb.PolicyEvent) {
	t.Helper()
	em, err := goka.NewEmitter(b.Kafka.Brokers, goka.Stream(schema.PoliciesTable), codecs.PolicyTable, b.Kafka.EmitterOptions()...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	for _, p := range pols {
		key, err := schema.PolicyKey(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := em.EmitSync(key, p); err != nil {
			t.Fatalf("emit %s: %v", key, err)
		}
	}
	if err := errors.Join(em.Finish()); err != nil {
		t.Fatalf("emitter finish: %v", err)
	}
}
