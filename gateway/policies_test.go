package gateway_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// answer asks the gateway for sku over gRPC and REST, checks that both
// transports agree with want (including the ETag) and returns the gRPC one.
func (e *env) answer(t *testing.T, sku string, want *pb.Availability) *pb.Availability {
	t.Helper()
	etag := `"` + want.GetVersion() + `"`
	var hdr metadata.MD
	got, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("gRPC GetAvailability(%s): %v", sku, err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("gRPC answer for %s\n%v\nwant\n%v", sku, got, want)
	}
	if v := hdr.Get("etag"); len(v) != 1 || v[0] != etag {
		t.Errorf("gRPC etag for %s %q, want [%q]", sku, v, etag)
	}

	r := e.get(t, availabilityPath(sku))
	if r.status != http.StatusOK {
		t.Fatalf("HTTP %s: status %d, body %s", sku, r.status, r.body)
	}
	var body pb.Availability
	if err := protojson.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("HTTP %s body %s: %v", sku, r.body, err)
	}
	if !proto.Equal(&body, want) {
		t.Errorf("HTTP answer for %s\n%v\nwant\n%v", sku, &body, want)
	}
	if v := r.header.Values("ETag"); len(v) != 1 || v[0] != etag {
		t.Errorf("HTTP ETag for %s %q, want [%q]", sku, v, etag)
	}
	return got
}

func channel(t *testing.T, a *pb.Availability, name string) *pb.ChannelAvailability {
	t.Helper()
	for _, c := range a.GetChannels() {
		if c.GetChannel() == name {
			return c
		}
	}
	t.Fatalf("answer for %s has no channel %q: %v", a.GetSku(), name, a)
	return nil
}

func location(t *testing.T, a *pb.Availability, id string) *pb.LocationAvailability {
	t.Helper()
	for _, l := range a.GetLocations() {
		if l.GetLocation() == id {
			return l
		}
	}
	t.Fatalf("answer for %s has no location %q: %v", a.GetSku(), id, a)
	return nil
}

func hasReason(c *pb.ChannelAvailability, code pb.Reason_Code, loc string) bool {
	for _, r := range c.GetReasons() {
		if r.GetCode() == code && r.GetLocation() == loc {
			return true
		}
	}
	return false
}

// TestFixtureExercisesEveryPolicy: the expectations the other tests compare
// against really contain what the fixture sets out to cover, so "equal to
// Evaluate" is not vacuous. Only the shape is checked here; the numbers come
// from inventory.Evaluate.
func TestFixtureExercisesEveryPolicy(t *testing.T) {
	f := newFixture(t)
	pol := f.want(f.state(t, policySKU), now)
	web := channel(t, pol, "web")
	for _, r := range []struct {
		code pb.Reason_Code
		loc  string
	}{
		{pb.Reason_LOCATION_CLOSED, closedLocation},
		{pb.Reason_LOCATION_INELIGIBLE, pickupLocation},
		{pb.Reason_LOCATION_STALE, noLevelMxLoc},
	} {
		if !hasReason(web, r.code, r.loc) {
			t.Errorf("web lacks reason %s for %s: %v", r.code, r.loc, web)
		}
	}
	if hasReason(web, pb.Reason_LOCATION_STALE, fastLocation) || location(t, pol, fastLocation).GetStale() {
		t.Errorf("%s is stale at now already: %v", fastLocation, pol)
	}
	if got := location(t, pol, fastLocation).GetStaleAt().AsTime(); !got.Equal(fastStaleAt) {
		t.Errorf("%s stale_at %s, want %s", fastLocation, got, fastStaleAt)
	}
	if location(t, pol, slowLocation).GetStale() {
		t.Errorf("%s (default TTL) is stale: %v", slowLocation, pol)
	}
	if web.GetAvailable() <= 0 || web.GetBackorderable() != backorderUnits {
		t.Errorf("web available %d backorderable %d, want > 0 and %d", web.GetAvailable(), web.GetBackorderable(), backorderUnits)
	}
	if m := channel(t, pol, notSellable); m.GetSellable() || m.GetAvailable() != 0 || !hasReason(m, pb.Reason_NOT_SELLABLE, "") {
		t.Errorf("%s is not marked not sellable: %v", notSellable, m)
	}
	if c := channel(t, pol, cappedChannel); c.CapRemaining == nil || c.GetAvailable() != c.GetCapRemaining() || c.GetUsable() <= c.GetCapRemaining() {
		t.Errorf("%s is not limited by its active cap: %v", cappedChannel, c)
	}
	if !pol.GetNextChangeAt().AsTime().Equal(fastStaleAt) {
		t.Errorf("next_change_at %s, want %s's stale_at %s", pol.GetNextChangeAt().AsTime(), fastLocation, fastStaleAt)
	}

	capped := channel(t, f.want(f.state(t, cappedSKU), now), "web")
	if capped.CapRemaining == nil || capped.GetCapRemaining() != 0 || capped.GetAvailable() != 0 || !hasReason(capped, pb.Reason_CAP_EXHAUSTED, "") {
		t.Errorf("%s web is not an exhausted cap: %v", cappedSKU, capped)
	}
}

// TestAnswersApplyPolicies: with states and policies in the lookups, both
// transports answer exactly what inventory.Evaluate derives from the state,
// the gathered policies and the gateway's clock.
func TestAnswersApplyPolicies(t *testing.T) {
	e := start(t, true)
	for _, sku := range []string{policySKU, cappedSKU} {
		t.Run(sku, func(t *testing.T) {
			want := e.fix.want(e.fix.state(t, sku), now)
			got := e.answer(t, sku, want)
			if !got.GetEvaluatedAt().AsTime().Equal(now) {
				t.Errorf("evaluated_at %s, want the injected clock's %s", got.GetEvaluatedAt().AsTime(), now)
			}
		})
	}
}

// TestAnswerChangesWithTheClock: the answer is evaluated at read time, so
// moving the clock past a merchant location's stale_at changes it without
// any new data; moving it less changes nothing but evaluated_at.
func TestAnswerChangesWithTheClock(t *testing.T) {
	e := start(t, true)
	s := e.fix.state(t, policySKU)

	before := e.answer(t, policySKU, e.fix.want(s, now))

	// Later, but before stale_at: the same answer and ETag.
	early := now.Add(time.Minute)
	e.clock.Set(early)
	same := e.answer(t, policySKU, e.fix.want(s, early))
	if same.GetVersion() != before.GetVersion() {
		t.Errorf("version changed from %s to %s although only the clock moved, not past any change", before.GetVersion(), same.GetVersion())
	}
	if !same.GetEvaluatedAt().AsTime().Equal(early) {
		t.Errorf("evaluated_at %s, want %s", same.GetEvaluatedAt().AsTime(), early)
	}

	for _, at := range []time.Time{fastStaleAt, fastStaleAt.Add(5 * time.Minute)} {
		e.clock.Set(at)
		after := e.answer(t, policySKU, e.fix.want(s, at))
		if after.GetVersion() == before.GetVersion() {
			t.Errorf("at %s: version %s unchanged after %s went stale", at, after.GetVersion(), fastLocation)
		}
		if l := location(t, after, fastLocation); !l.GetStale() {
			t.Errorf("at %s: %s not stale: %v", at, fastLocation, l)
		}
		webBefore, webAfter := channel(t, before, "web"), channel(t, after, "web")
		if !hasReason(webAfter, pb.Reason_LOCATION_STALE, fastLocation) {
			t.Errorf("at %s: web lacks the stale reason for %s: %v", at, fastLocation, webAfter)
		}
		if webAfter.GetAvailable() >= webBefore.GetAvailable() {
			t.Errorf("at %s: web available %d, want less than %d before %s went stale", at, webAfter.GetAvailable(), webBefore.GetAvailable(), fastLocation)
		}
	}
}

// TestReadinessNeedsBothLookups: /readyz, the gRPC health service and the
// answers all need the stock and the policy lookup to be ready.
func TestReadinessNeedsBothLookups(t *testing.T) {
	f := newFixture(t)
	stock, pols := views.NewMemory(), views.NewMemory()
	f.putStates(stock)
	f.putPolicies(t, pols)
	e := &env{fix: f, states: f.states, clock: newClock(now)}
	opts := options(stock, pols)
	opts.Now = e.clock.Now
	e.serve(t, opts)

	serving := func(t *testing.T) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error { return wantHealth(t, e, healthpb.HealthCheckResponse_SERVING) })
		if r := e.get(t, "/readyz"); r.status != http.StatusOK {
			t.Errorf("/readyz with both lookups ready: %d, want 200", r.status)
		}
		e.answer(t, policySKU, f.want(f.state(t, policySKU), now))
	}
	notServing := func(t *testing.T, which string) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error { return wantHealth(t, e, healthpb.HealthCheckResponse_NOT_SERVING) })
		if r := e.get(t, "/readyz"); r.status != http.StatusServiceUnavailable {
			t.Errorf("/readyz with the %s lookup not ready: %d, want 503", which, r.status)
		}
		if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: policySKU}); status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC with the %s lookup not ready: %v, want Unavailable", which, err)
		}
		if r := e.get(t, availabilityPath(policySKU)); r.status != http.StatusServiceUnavailable {
			t.Errorf("HTTP with the %s lookup not ready: %d, want 503; body %s", which, r.status, r.body)
		}
	}

	serving(t)
	pols.SetReady(false)
	notServing(t, "policy")
	pols.SetReady(true)
	serving(t)
	stock.SetReady(false)
	notServing(t, "stock")
	pols.SetReady(false)
	notServing(t, "stock and policy")
	stock.SetReady(true)
	pols.SetReady(true)
	serving(t)
}

// brokenPolicies is ready but fails every read.
type brokenPolicies struct{}

func (brokenPolicies) GetPolicy(string) (*pb.PolicyEvent, error) {
	return nil, errors.New("leveldb: corrupted block")
}
func (brokenPolicies) Ready() bool { return true }

// TestPolicyLookupFailure: a failing policy lookup is Unavailable, like a
// failing stock lookup, without leaking the storage error.
func TestPolicyLookupFailure(t *testing.T) {
	f := newFixture(t)
	stock := views.NewMemory()
	f.putStates(stock)
	e := &env{}
	e.serve(t, options(stock, brokenPolicies{}))
	_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: policySKU})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC: %v, want Unavailable", err)
	}
	if strings.Contains(status.Convert(err).Message(), "leveldb") {
		t.Errorf("storage error leaks to the caller: %v", err)
	}
	if r := e.get(t, availabilityPath(policySKU)); r.status != http.StatusServiceUnavailable {
		t.Errorf("HTTP status %d, want 503; body %s", r.status, r.body)
	} else if strings.Contains(string(r.body), "leveldb") {
		t.Errorf("storage error leaks to the HTTP caller: %s", r.body)
	}
}
