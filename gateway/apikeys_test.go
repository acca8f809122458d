package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// keyEnv is a gateway with API keys from a file.
type keyEnv struct {
	*watchEnv
	file string
	keys map[string]string // id -> key
	line map[string]string // id -> its line in the file
	logs *syncBuffer
	rs   pb.ReservationServiceClient
}

func startWithKeys(t *testing.T) *keyEnv {
	t.Helper()
	k := &keyEnv{file: filepath.Join(t.TempDir(), "api-keys"), keys: map[string]string{}, line: map[string]string{}, logs: &syncBuffer{}}
	content := "# id scopes hash [rate]\n\n"
	for _, c := range []struct {
		id     string
		scopes []string
		rate   float64
	}{
		{"reader", []string{"read"}, 0},
		{"orderer", []string{"order"}, 0},
		{"both", []string{"read", "order"}, 0},
		{"slow", []string{"read", "order"}, 0.001}, // one call, then limited
		{"revoked", []string{"read", "order"}, 0},
	} {
		key, line, err := gateway.NewAPIKey(c.id, c.scopes, c.rate)
		if err != nil {
			t.Fatal(err)
		}
		k.keys[c.id], k.line[c.id] = key, line
		content += line + "\n"
	}
	if err := os.WriteFile(k.file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := gateway.LoadAPIKeys(k.file)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	k.watchEnv = startLimited(t, k.logs, func(o *gateway.Options) {
		o.APIKeys = keys
		o.APIKeysReload = 20 * time.Millisecond
		o.Registerer = reg
	})
	k.rs = pb.NewReservationServiceClient(k.conn)
	return k
}

// withKey is a gRPC context carrying authorization (none if empty).
func withKey(t *testing.T, authorization string) context.Context {
	c := ctx(t)
	if authorization != "" {
		c = metadata.AppendToOutgoingContext(c, "authorization", authorization)
	}
	return c
}

// rest sends a REST request with the Authorization header (none if empty).
func (k *keyEnv) rest(t *testing.T, method, path, authorization, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx(t), method, k.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// sse opens a watch over SSE and reports its status (200: the first event
// arrived).
func (k *keyEnv) sse(t *testing.T, authorization string) response {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(c, http.MethodGet, k.base+"/v1/availability:watch?sku=SKU-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := k.stream.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "id: SKU-1:") {
			t.Fatalf("SSE watch: first line %q, %v", line, err)
		}
		return response{status: resp.StatusCode, body: []byte(line)}
	}
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// grpcWatch opens a gRPC watch and reports its first answer's status.
func (k *keyEnv) grpcWatch(t *testing.T, authorization string) error {
	t.Helper()
	s, err := k.avail.WatchAvailability(withKey(t, authorization), &pb.WatchAvailabilityRequest{Sku: []string{"SKU-1"}})
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

type call struct {
	name string
	grpc func(t *testing.T, k *keyEnv, authorization string) error
	rest func(t *testing.T, k *keyEnv, authorization string) response
	// okREST is the REST status of an authorized call (an unknown order is
	// 404: the key passed).
	okREST int
	okGRPC codes.Code
}

var readCalls = []call{
	{"GetAvailability",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.avail.GetAvailability(withKey(t, a), &pb.GetAvailabilityRequest{Sku: "SKU-1"})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "GET", "/v1/availability/SKU-1", a, "")
		},
		http.StatusOK, codes.OK},
	{"GetAvailability (kept answer)", nil, // the second GET of an unchanged SKU is served from kept answers
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "GET", "/v1/availability/SKU-1", a, "")
		},
		http.StatusOK, codes.OK},
	{"GetAvailability (filtered)", nil,
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "GET", "/v1/availability/SKU-1?channels=web", a, "")
		},
		http.StatusOK, codes.OK},
	{"BatchGetAvailability",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.avail.BatchGetAvailability(withKey(t, a), &pb.BatchGetAvailabilityRequest{Sku: []string{"SKU-1"}})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "GET", "/v1/availability?sku=SKU-1", a, "")
		},
		http.StatusOK, codes.OK},
	{"BatchGetAvailability (POST)", nil,
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "POST", "/v1/availability:batchGet", a, `{"sku":["SKU-1"]}`)
		},
		http.StatusOK, codes.OK},
	{"WatchAvailability",
		func(t *testing.T, k *keyEnv, a string) error { return k.grpcWatch(t, a) },
		func(t *testing.T, k *keyEnv, a string) response { return k.sse(t, a) },
		http.StatusOK, codes.OK},
}

var orderCalls = []call{
	{"GetOrder",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.rs.GetOrder(withKey(t, a), &pb.GetOrderRequest{OrderId: "o-none"})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response { return k.rest(t, "GET", "/v1/orders/o-none", a, "") },
		http.StatusNotFound, codes.NotFound},
	{"PlaceOrder",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.rs.PlaceOrder(withKey(t, a), &pb.PlaceOrderRequest{})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response { return k.rest(t, "POST", "/v1/orders", a, `{}`) },
		http.StatusBadRequest, codes.InvalidArgument},
	{"CancelOrder",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.rs.CancelOrder(withKey(t, a), &pb.CancelOrderRequest{OrderId: "bad id"})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "POST", "/v1/orders/bad%20id:cancel", a, "")
		},
		http.StatusBadRequest, codes.InvalidArgument},
	{"ExtendOrder",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.rs.ExtendOrder(withKey(t, a), &pb.ExtendOrderRequest{OrderId: "o-none"})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "POST", "/v1/orders/o-none:extend", a, `{}`)
		},
		http.StatusBadRequest, codes.InvalidArgument},
	{"FulfilOrder",
		func(t *testing.T, k *keyEnv, a string) error {
			_, err := k.rs.FulfilOrder(withKey(t, a), &pb.FulfilOrderRequest{OrderId: "o-none"})
			return err
		},
		func(t *testing.T, k *keyEnv, a string) response {
			return k.rest(t, "POST", "/v1/orders/o-none:fulfil", a, `{}`)
		},
		http.StatusBadRequest, codes.InvalidArgument},
}

// wantDenied checks that a call was refused with code (and REST status
// httpStatus) and a message containing reason.
func wantDenied(t *testing.T, c call, k *keyEnv, authorization, who string, code codes.Code, httpStatus int, reason string) {
	t.Helper()
	if c.grpc != nil {
		st := status.Convert(c.grpc(t, k, authorization))
		if st.Code() != code || !strings.Contains(st.Message(), reason) {
			t.Errorf("gRPC %s with %s: %s %q, want %s with %q", c.name, who, st.Code(), st.Message(), code, reason)
		}
	}
	r := c.rest(t, k, authorization)
	if r.status != httpStatus {
		t.Errorf("REST %s with %s: %d %s, want %d", c.name, who, r.status, r.body, httpStatus)
		return
	}
	if b := errorBody(t, r); b.Code != code || !strings.Contains(b.Message, reason) {
		t.Errorf("REST %s with %s: %s %q, want %s with %q", c.name, who, b.Code, b.Message, code, reason)
	}
}

func wantAllowed(t *testing.T, c call, k *keyEnv, authorization, who string) {
	t.Helper()
	if c.grpc != nil {
		if st := status.Convert(c.grpc(t, k, authorization)); st.Code() != c.okGRPC {
			t.Errorf("gRPC %s with %s: %s %q, want %s", c.name, who, st.Code(), st.Message(), c.okGRPC)
		}
	}
	if r := c.rest(t, k, authorization); r.status != c.okREST {
		t.Errorf("REST %s with %s: %d %s, want %d", c.name, who, r.status, r.body, c.okREST)
	}
}

// With API keys configured, every availability and reservation call, over
// gRPC and REST (grpc-gateway's handlers, the kept answers, the SSE watch),
// needs a key of the right scope: 401 without one or with one the gateway
// does not know (or no longer: revoked), 403 with the wrong scope, 429 past
// the key's rate; health, readiness, metrics and the OpenAPI document stay
// open. No key ever reaches a log line or a metric.
func TestAPIKeys(t *testing.T) {
	k := startWithKeys(t)
	bearer := func(id string) string { return "Bearer " + k.keys[id] }
	e := k.watchEnv
	e.put(t, "SKU-1", "v1")
	wrong := "Bearer ska1.reader." + strings.Repeat("x", 43) // a real id, another secret
	all := append(append([]call{}, readCalls...), orderCalls...)

	for _, c := range all {
		wantDenied(t, c, k, "", "no key", codes.Unauthenticated, http.StatusUnauthorized, "missing API key")
		wantDenied(t, c, k, wrong, "a wrong key", codes.Unauthenticated, http.StatusUnauthorized, "no such key")
		wantDenied(t, c, k, "Bearer not-a-key", "a malformed key", codes.Unauthenticated, http.StatusUnauthorized, "not a skuflow API key")
		wantDenied(t, c, k, "Basic "+k.keys["both"], "another scheme", codes.Unauthenticated, http.StatusUnauthorized, "missing API key")
		wantAllowed(t, c, k, bearer("both"), "a read,order key")
		wantAllowed(t, c, k, bearer("revoked"), "a key about to be revoked")
	}
	for _, c := range readCalls {
		wantAllowed(t, c, k, bearer("reader"), "a read key")
		wantDenied(t, c, k, bearer("orderer"), "an order key", codes.PermissionDenied, http.StatusForbidden, `API key "orderer" has scope order; this call needs scope read`)
	}
	for _, c := range orderCalls {
		wantAllowed(t, c, k, bearer("orderer"), "an order key")
		wantDenied(t, c, k, bearer("reader"), "a read key", codes.PermissionDenied, http.StatusForbidden, `API key "reader" has scope read; this call needs scope order`)
	}

	// A 401 carries a Bearer challenge; the reason is in the body.
	if r := k.rest(t, "GET", "/v1/availability/SKU-1", "", ""); r.header.Get("WWW-Authenticate") != `Bearer realm="skuflow"` {
		t.Errorf("401 WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}

	// The rate limit: one call, then 429 / ResourceExhausted, on either path.
	if _, err := e.avail.GetAvailability(withKey(t, bearer("slow")), &pb.GetAvailabilityRequest{Sku: "SKU-1"}); err != nil {
		t.Fatalf("first call of the slow key: %v", err)
	}
	wantDenied(t, all[0], k, bearer("slow"), "a key over its rate", codes.ResourceExhausted, http.StatusTooManyRequests, `API key "slow" is over its rate limit of 0.001 requests/s`)
	wantDenied(t, orderCalls[0], k, bearer("slow"), "a key over its rate", codes.ResourceExhausted, http.StatusTooManyRequests, "over its rate limit")

	// Open endpoints.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if r := e.get(t, p); r.status != http.StatusOK {
			t.Errorf("GET %s without a key: %d", p, r.status)
		}
	}
	if _, err := e.health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("gRPC health without a key: %v", err)
	}

	// Each request is checked once: one REST GET (kept answer or not) and
	// one gRPC call count one ok each.
	before := e.metricValue(t, `skuflow_api_key_requests_total{key="reader",outcome="ok"}`)
	k.rest(t, "GET", "/v1/availability/SKU-1", bearer("reader"), "")
	k.rest(t, "GET", "/v1/availability/SKU-1?channels=web", bearer("reader"), "")
	if _, err := e.avail.GetAvailability(withKey(t, bearer("reader")), &pb.GetAvailabilityRequest{Sku: "SKU-1"}); err != nil {
		t.Fatal(err)
	}
	if after := e.metricValue(t, `skuflow_api_key_requests_total{key="reader",outcome="ok"}`); after != before+3 {
		t.Errorf("3 calls counted %v times", after-before)
	}

	// Revoke: the key's line leaves the file; the gateway reads it again.
	data, err := os.ReadFile(k.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.file, []byte(strings.Replace(string(data), k.line["revoked"]+"\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if r := k.rest(t, "GET", "/v1/availability/SKU-1", bearer("revoked"), ""); r.status != http.StatusUnauthorized {
			return fmt.Errorf("revoked key: %d", r.status)
		}
		return nil
	})
	for _, c := range all {
		wantDenied(t, c, k, bearer("revoked"), "a revoked key", codes.Unauthenticated, http.StatusUnauthorized, "no such key")
	}
	wantAllowed(t, all[0], k, bearer("reader"), "a read key after the reload")

	// No key, nor its secret, in any log line or metric.
	metrics := e.get(t, "/metrics")
	if !strings.Contains(string(metrics.body), `skuflow_api_key_requests_total{key="unknown",outcome="unauthenticated"}`) {
		t.Errorf("no unauthenticated count in the metrics")
	}
	secrets := []string{strings.TrimPrefix(wrong, "Bearer "), "not-a-key"}
	for _, key := range k.keys {
		secrets = append(secrets, key, key[strings.LastIndexByte(key, '.')+1:])
	}
	logs := k.logs.String()
	if !strings.Contains(logs, "api keys reloaded") || !strings.Contains(logs, "http request") {
		t.Errorf("the logs lack the lines this test expects (debug level?):\n%s", logs)
	}
	for _, s := range secrets {
		for name, text := range map[string]string{"logs": logs, "metrics": string(metrics.body)} {
			if strings.Contains(text, s) {
				t.Errorf("the %s hold a presented key %q", name, s)
			}
		}
	}
}

// metricValue scrapes /metrics for one series ("name{labels}"); 0 if absent.
func (e *env) metricValue(t *testing.T, series string) float64 {
	t.Helper()
	r := e.get(t, "/metrics")
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// Without keys, every API is open (dev's default).
func TestNoAPIKeysMeansOpen(t *testing.T) {
	e := startLimited(t, nil, nil)
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "SKU-1"}); err != nil {
		t.Errorf("gRPC without keys configured: %v", err)
	}
	if r := e.get(t, "/v1/availability/SKU-1"); r.status != http.StatusOK {
		t.Errorf("REST without keys configured: %d", r.status)
	}
}

func TestParseAPIKeys(t *testing.T) {
	_, line, err := gateway.NewAPIKey("k1", []string{"read"}, 2.5)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := gateway.ParseAPIKeys([]byte("# comment\n\n" + line + "\n"))
	if err != nil || len(keys) != 1 || keys[0].ID != "k1" || keys[0].Rate != 2.5 || len(keys[0].Hash) != 32 {
		t.Fatalf("ParseAPIKeys(%q) = %+v, %v", line, keys, err)
	}
	hash := strings.Fields(line)[2]
	keys, err = gateway.ParseAPIKeys([]byte(strings.Join([]string{
		"k1 read",
		"bad/id read " + hash,
		"k2 write " + hash,
		"k3 read sha256:abcd",
		"k4 read " + hash + " -1",
		"k5 read " + hash,
		"k5 order " + hash,
		"k6 read " + hash,
	}, "\n")))
	// Every line with a problem is refused, and only those: an id on two
	// lines on both.
	if len(keys) != 1 || keys[0].ID != "k6" {
		t.Errorf("keys of the lines without a problem: %+v, want k6 alone", keys)
	}
	for _, want := range []string{
		"line 1: want ID SCOPES sha256:HASH [RATE], got 2 fields",
		`line 2: key id "bad/id" is not 1 to 64`,
		`line 3: unknown scope "write"`,
		"line 4: the hash is not sha256:<64 hex digits>",
		"line 5: rate -1 is not",
		`line 7: key id "k5" is also on line 6: neither line is accepted`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
	if _, _, err := gateway.NewAPIKey("k", []string{"admin"}, 0); err == nil {
		t.Error("NewAPIKey with scope admin: no error")
	}
}

// Revoking a key ends the watches it opened, gRPC and SSE, telling why;
// the other keys' watches go on.
func TestRevokedKeyEndsItsWatches(t *testing.T) {
	k := startWithKeys(t)
	e := k.watchEnv
	e.put(t, "A", "a1")
	open := func(id string) (grpc.ServerStreamingClient[pb.WatchAvailabilityResponse], *sseStream) {
		c, cancel := context.WithCancel(withKey(t, "Bearer "+k.keys[id]))
		t.Cleanup(cancel)
		g, err := e.avail.WatchAvailability(c, &pb.WatchAvailabilityRequest{Sku: []string{"A"}})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, g, "A@a1", "synced")
		s := openSSE(t, e.stream, e.base+"/v1/availability:watch?sku=A", http.Header{"Authorization": {"Bearer " + k.keys[id]}})
		s.expect(t, "A@a1", "synced")
		return g, s
	}
	revokedG, revokedS := open("revoked")
	otherG, otherS := open("reader")

	data, err := os.ReadFile(k.file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.file, []byte(strings.Replace(string(data), k.line["revoked"]+"\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := revokedG.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "API key revoked") {
		t.Errorf("gRPC watch of a revoked key: %v, want Unauthenticated, API key revoked", err)
	}
	if ev := revokedS.next(t); ev.event != "end" || !strings.Contains(ev.data, "API key revoked") {
		t.Errorf("SSE watch of a revoked key: %+v, want an end event saying the key was revoked", ev)
	}
	e.put(t, "A", "a2")
	expect(t, otherG, "A@a2")
	otherS.expect(t, "A@a2")
}
