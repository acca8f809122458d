package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/feeds"
	feedservice "github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

const openAPIAdminToken = "openapi-test-admin-token"

// apiEnv is a gateway serving every API: availability over the fixture,
// reservations over an in-memory saga (memBus), and the merchant feeds and
// registry on the embedded broker.
type apiEnv struct {
	*env
	bus *memBus
}

func startAllAPIs(t *testing.T) *apiEnv {
	t.Helper()
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	feedSvc, err := feedservice.New(feedservice.Options{Kafka: b.Kafka, DataDir: t.TempDir(), Limits: feeds.DefaultLimits(),
		AdminToken: openAPIAdminToken, DefaultStaleAfter: defaultStaleAfter, Channels: channels, Publish: true})
	if err != nil {
		t.Fatalf("feeds service: %v", err)
	}
	testkit.Go(t, feedSvc.Run)
	bus := newMemBus(busStates(t)...)
	orders, err := gateway.NewOrders(gateway.OrdersOptions{
		Bus: bus, Base: inventory.Base{Channels: channels, DefaultStaleAfter: defaultStaleAfter}, DefaultTTL: ordDefaultTTL,
		DecisionTimeout: 30 * time.Second, Wait: 5 * time.Second, Poll: 20 * time.Millisecond, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("gateway.NewOrders: %v", err)
	}
	e := startWith(t, func(o *gateway.Options) { o.Services = []gateway.Service{orders, feedSvc} })
	testkit.Eventually(t, 30*time.Second, func() error {
		if r := e.get(t, "/readyz"); r.status != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", r.status, r.body)
		}
		return nil
	})
	return &apiEnv{env: e, bus: bus}
}

// do sends a request with an optional bearer token and content type.
func (e *env) call(t *testing.T, method, path, token, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil // a stream: the headers are the answer
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

// servedDocs loads /openapi.json (Swagger 2.0) and /openapi.yaml (OpenAPI
// 3) as the gateway serves them.
func servedDocs(t *testing.T, e *env) (*openapi2.T, *openapi3.T) {
	t.Helper()
	r := e.get(t, "/openapi.json")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var v2 openapi2.T
	if err := json.Unmarshal(r.body, &v2); err != nil {
		t.Fatalf("/openapi.json is not a Swagger document: %v", err)
	}
	if v2.Swagger != "2.0" {
		t.Fatalf("/openapi.json: swagger %q", v2.Swagger)
	}
	r = e.get(t, "/openapi.yaml")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("/openapi.yaml: %d %q", r.status, r.header.Get("Content-Type"))
	}
	v3, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("/openapi.yaml does not load as OpenAPI 3: %v", err)
	}
	if err := v3.Validate(t.Context()); err != nil {
		t.Fatalf("/openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	return &v2, v3
}

type operation struct{ method, path string }

func (o operation) String() string { return o.method + " " + o.path }

func v3Operations(d *openapi3.T) []operation {
	var ops []operation
	for p, item := range d.Paths.Map() {
		for m := range item.Operations() {
			ops = append(ops, operation{m, p})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

// TestOpenAPIDocuments: the two served documents describe the same
// operations; the feed and registry routes require their bearer tokens,
// the others none; the watch route streams text/event-stream.
func TestOpenAPIDocuments(t *testing.T) {
	e := start(t, true)
	v2, v3 := servedDocs(t, e)

	conv, err := openapi2conv.ToV3(v2)
	if err != nil {
		t.Fatalf("/openapi.json does not convert to OpenAPI 3: %v", err)
	}
	if got, want := v3Operations(v3), v3Operations(conv); !slices.Equal(got, want) {
		t.Errorf("/openapi.yaml operations\n%v\ndiffer from /openapi.json's\n%v", got, want)
	}

	for name, s := range v3.Components.SecuritySchemes {
		if s.Value.Type != "http" || s.Value.Scheme != "bearer" {
			t.Errorf("security scheme %s is %s %s, want http bearer", name, s.Value.Type, s.Value.Scheme)
		}
	}
	for _, op := range v3Operations(v3) {
		o := v3.Paths.Find(op.path).GetOperation(op.method)
		var want string
		switch {
		case strings.HasPrefix(op.path, "/v1/admin/"):
			want = "adminToken"
		case strings.HasPrefix(op.path, "/v1/merchants/"):
			want = "merchantToken"
		}
		var got []string
		if o.Security != nil {
			for _, req := range *o.Security {
				for k := range req {
					got = append(got, k)
				}
			}
		}
		if want == "" && len(got) != 0 || want != "" && !slices.Equal(got, []string{want}) {
			t.Errorf("%s: security %v, want %q", op, got, want)
		}
	}

	watch := v3.Paths.Find("/v1/availability:watch").Get
	if watch == nil {
		t.Fatal("no GET /v1/availability:watch")
	}
	ok := watch.Responses.Status(200).Value
	if mt := ok.Content.Get("text/event-stream"); mt == nil || mt.Schema.Ref != "#/components/schemas/v1WatchAvailabilityResponse" || len(ok.Content) != 1 {
		t.Errorf("watch 200 content %v, want text/event-stream of v1WatchAvailabilityResponse", ok.Content)
	}
	if def := watch.Responses.Default().Value; def.Content.Get("application/json") == nil {
		t.Errorf("watch errors are not JSON: %v", def.Content)
	}
	upload := v3.Paths.Find("/v1/merchants/{merchant}/feeds").Post
	if upload == nil {
		t.Fatal("no POST /v1/merchants/{merchant}/feeds")
	}
	for _, ct := range []string{"text/csv", "application/x-ndjson"} {
		if upload.RequestBody.Value.Content.Get(ct) == nil {
			t.Errorf("feed upload takes no %s body", ct)
		}
	}
}

// TestOpenAPICoversEveryRoute: every REST route the gateway answers is in
// both documents, and every operation of the documents is answered by a
// route of the gateway. The routes are the google.api.http bindings the
// generated grpc-gateway handlers register (read from the compiled
// descriptors, additional bindings included) and the routes registered by
// hand on the gateway's mux anywhere in the module (found in the source);
// that the gateway answers an operation is read from the route label of
// its request metrics, which says which route took the request.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := startAllAPIs(t)
	v2, v3 := servedDocs(t, e.env)
	inV2 := map[operation]bool{}
	for p, item := range v2.Paths {
		for m := range item.Operations() {
			inV2[operation{m, p}] = true
		}
	}
	inV3 := map[operation]bool{}
	for _, op := range v3Operations(v3) {
		inV3[op] = true
	}

	routes := append(grpcGatewayRoutes(t), handWrittenRoutes(t)...)
	if len(routes) < 20 {
		t.Fatalf("found only %d REST routes: %v", len(routes), routes)
	}
	for _, r := range routes {
		if !inV2[r] {
			t.Errorf("%s is served but not in /openapi.json", r)
		}
		if !inV3[r] {
			t.Errorf("%s is served but not in /openapi.yaml", r)
		}
	}

	// Every documented operation reaches a route: send each one (with
	// placeholder parameters, no credentials) and read which route took it.
	param := regexp.MustCompile(`\{[^}]*\}`)
	for _, op := range v3Operations(v3) {
		path := param.ReplaceAllString(op.path, "x")
		var body []byte
		ctype := ""
		if o := v3.Paths.Find(op.path).GetOperation(op.method); o.RequestBody != nil {
			for ct := range o.RequestBody.Value.Content {
				ctype = ct
			}
			if ctype == "application/json" {
				body = []byte("{}")
			}
		}
		resp, _ := e.call(t, op.method, path, "", ctype, body)
		t.Logf("%s -> %s", op, resp.Status)
	}
	fams := scrapeMetrics(t, e.env)
	took := map[operation]bool{}
	for _, m := range fams["skuflow_http_requests_total"].GetMetric() {
		var method, route string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "method":
				method = strings.ToUpper(l.GetValue())
			case "route":
				route = param.ReplaceAllString(l.GetValue(), "{}")
			}
		}
		took[operation{method, route}] = true
	}
	for _, op := range v3Operations(v3) {
		if !took[operation{op.method, param.ReplaceAllString(op.path, "{}")}] {
			t.Errorf("%s is documented but no route of the gateway took it", op)
		}
	}
}

// grpcGatewayRoutes are the REST bindings of every skuflow.v1 RPC, with
// path parameters named as the documents name them (JSON names).
func grpcGatewayRoutes(t *testing.T) []operation {
	t.Helper()
	var ops []operation
	protoregistry.GlobalFiles.RangeFilesByPackage("skuflow.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				if !ok || rule == nil {
					continue
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					method, path := httpBinding(r)
					if path == "" {
						t.Errorf("%s: binding %v has no path", m.FullName(), r)
						continue
					}
					ops = append(ops, operation{method, jsonNames(t, m.Input(), path)})
				}
			}
		}
		return true
	})
	return ops
}

func httpBinding(r *annotations.HttpRule) (string, string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// jsonNames renames a template's {field} variables to the fields' JSON
// names ({merchant_id} becomes {merchantId}), as protoc-gen-openapiv2 does.
func jsonNames(t *testing.T, in protoreflect.MessageDescriptor, path string) string {
	return regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`).ReplaceAllStringFunc(path, func(v string) string {
		name := strings.Trim(v, "{}")
		name, _, _ = strings.Cut(name, "=")
		fd := in.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			t.Errorf("%s: path variable %s is no field of %s", path, name, in.FullName())
			return v
		}
		return "{" + fd.JSONName() + "}"
	})
}

// handWrittenRoutes are the /v1/ routes registered on an http.ServeMux in
// the module's code: Handle and HandleFunc calls whose pattern is a string
// literal or a package constant. A pattern held in a variable fails the
// test, so that no route escapes it.
func handWrittenRoutes(t *testing.T) []operation {
	t.Helper()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	byDir := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "proto" || d.Name() == "bin" || d.Name() == "data" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ops []operation
	for _, files := range byDir {
		consts := map[string]string{}
		for _, f := range files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(call.Args) != 2 {
					return true
				}
				var pattern string
				switch a := call.Args[0].(type) {
				case *ast.BasicLit:
					pattern, _ = strconv.Unquote(a.Value)
				case *ast.Ident:
					if pattern = consts[a.Name]; pattern == "" {
						t.Errorf("%s: %s(%s, ...): the pattern is not a string constant of the package, so the OpenAPI test cannot see the route", fset.Position(call.Pos()), sel.Sel.Name, a.Name)
					}
				default: // not a route (deadletter.Handle(log, fn) and the like)
				}
				if pattern == "" {
					return true
				}
				method, path, ok := strings.Cut(pattern, " ")
				if !ok {
					method, path = "", pattern
				}
				if !strings.HasPrefix(path, "/v1/") || path == "/v1/" { // "/v1/" hands the rest to grpc-gateway
					return true
				}
				if method == "" {
					t.Errorf("%s: route %q takes every method: give it one, as the document names one per operation", fset.Position(call.Pos()), pattern)
					return true
				}
				ops = append(ops, operation{method, path})
				return true
			})
		}
	}
	if !slices.Contains(ops, operation{http.MethodPost, "/v1/merchants/{merchant}/feeds"}) {
		t.Errorf("the source scan did not find the feed upload route among %v", ops)
	}
	return ops
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// TestOpenAPIResponsesMatchSchema: answers of real REST calls validate
// against /openapi.yaml's schema for their route and status, with every
// object closed to properties the document does not declare: availability
// answers (with unset timestamps among them, which are left out rather
// than null), an unknown SKU's error, orders placed and read back (with
// unset timestamps on rejected lines), a feed upload and its status.
func TestOpenAPIResponsesMatchSchema(t *testing.T) {
	e := startAllAPIs(t)
	_, doc := servedDocs(t, e.env)
	closeObjects(doc)

	unsetTimestamps := 0
	check := func(method, template, path, token, ctype string, body []byte, wantStatus int) []byte {
		t.Helper()
		resp, b := e.call(t, method, path, token, ctype, body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
		}
		if err := validateResponse(t, doc, method, template, resp, b); err != nil {
			t.Errorf("%s %s (%d) does not match the document: %v\nbody: %s", method, path, resp.StatusCode, err, b)
		}
		if bytes.Contains(b, []byte("null")) {
			t.Errorf("%s %s: body has a null: %s", method, path, b)
		}
		return b
	}
	countUnset := func(b []byte, fields ...string) {
		for _, f := range fields {
			if !bytes.Contains(b, []byte(`"`+f+`"`)) {
				unsetTimestamps++
			}
		}
	}

	for _, s := range e.states {
		b := check("GET", "/v1/availability/{sku}", availabilityPath(s.SKU), "", "", nil, http.StatusOK)
		countUnset(b, "nextChangeAt", "updatedAt")
	}
	check("GET", "/v1/availability/{sku}", availabilityPath("SKU-NOT-THERE"), "", "", nil, http.StatusNotFound)

	for _, req := range []*pb.PlaceOrderRequest{
		orderReq("o-openapi-ok", "web", ol(skuTen, 1)),
		orderReq("o-openapi-short", "web", ol(skuTen, 1), ol(skuOne, 5)),
	} {
		body, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		b := check("POST", "/v1/orders", "/v1/orders", "", "application/json", body, http.StatusOK)
		countUnset(b, "expiresAt")
		check("GET", "/v1/orders/{orderId}", orderPath(req.GetOrderId()), "", "", nil, http.StatusOK)
	}

	// A merchant, a feed with a rejected row, its status.
	b := check("POST", "/v1/admin/merchants", "/v1/admin/merchants", openAPIAdminToken, "application/json",
		[]byte(`{"merchantId":"ACME","locations":["ACME-1"]}`), http.StatusOK)
	var tok struct{ Token string }
	if err := json.Unmarshal(b, &tok); err != nil || tok.Token == "" {
		t.Fatalf("no token in %s: %v", b, err)
	}
	var st struct{ FeedID string }
	testkit.Eventually(t, 20*time.Second, func() error { // the registry view sees the new merchant
		resp, b := e.call(t, "POST", "/v1/merchants/ACME/feeds", tok.Token, "text/csv", []byte("sku,location,on_hand\nSKU-1,ACME-1,3\nSKU-2,ACME-1,-1\n"))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("upload: %d %s", resp.StatusCode, b)
		}
		if err := validateResponse(t, doc, "POST", "/v1/merchants/{merchant}/feeds", resp, b); err != nil {
			t.Errorf("feed upload answer does not match the document: %v\nbody: %s", err, b)
		}
		return json.Unmarshal(b, &st)
	})
	check("GET", "/v1/merchants/{merchant}/feeds/{feedId}", "/v1/merchants/ACME/feeds/"+st.FeedID, tok.Token, "", nil, http.StatusOK)
	check("GET", "/v1/merchants/{merchant}/locations", "/v1/merchants/ACME/locations", tok.Token, "", nil, http.StatusOK)
	check("POST", "/v1/merchants/{merchant}/feeds", "/v1/merchants/ACME/feeds", "", "text/csv", []byte("sku,location,on_hand\n"), http.StatusUnauthorized)

	if unsetTimestamps == 0 {
		t.Error("no answer had an unset timestamp: the test no longer covers them")
	}

	// The check has teeth: a null timestamp and an undeclared property are
	// refused.
	resp, good := e.call(t, "GET", availabilityPath(e.states[0].SKU), "", "", nil)
	for name, bad := range map[string][]byte{
		"null timestamp":      bytes.Replace(good, []byte(`{`), []byte(`{"nextChangeAt":null,`), 1),
		"undeclared property": bytes.Replace(good, []byte(`{`), []byte(`{"surprise":1,`), 1),
	} {
		if err := validateResponse(t, doc, "GET", "/v1/availability/{sku}", resp, bad); err == nil {
			t.Errorf("a body with a %s passes validation", name)
		}
	}
}

// closeObjects forbids properties the document does not declare on every
// object schema that declares some, so validation catches fields the
// document lacks as well as fields of the wrong type.
func closeObjects(doc *openapi3.T) {
	no := false
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Schema == nil && s.AdditionalProperties.Has == nil {
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, l := range [][]*openapi3.SchemaRef{s.AllOf, s.AnyOf, s.OneOf} {
			for _, x := range l {
				walk(x)
			}
		}
	}
	for _, s := range doc.Components.Schemas {
		walk(s)
	}
}

// validateResponse checks an answer against the document's response for
// the operation and status.
func validateResponse(t *testing.T, doc *openapi3.T, method, template string, resp *http.Response, body []byte) error {
	t.Helper()
	item := doc.Paths.Find(template)
	if item == nil {
		return fmt.Errorf("no path %s in the document", template)
	}
	op := item.GetOperation(method)
	if op == nil {
		return fmt.Errorf("no %s %s in the document", method, template)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: resp.Request,
			Route:   &routers.Route{Spec: doc, Path: template, PathItem: item, Method: method, Operation: op},
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}
