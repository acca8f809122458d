package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// SKUs as catalogues write them, stored beside prefixes and escaped
// spellings of one another, so that a path decoded too little, too much or
// split at %2F answers for the wrong SKU.
var catalogueSKUs = []string{
	"A", "B", "A/B", "A%2FB", "A%252FB", "A/B/C", "A//B", "/", "%", "%2F", "a+b", "a b",
	`Ä-Öl 5/8" +%`, "100% Wolle, Größe XL", "品番/001", "x:y", "x:cancel", "?q=1#f", "..", ".",
	strings.Repeat("é", inventory.MaxSKULength/2),
}

// hexEscape percent-encodes every byte, in the case given.
func hexEscape(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

// skuSegment is a SKU as one path segment: url.PathEscape, with the
// segments "." and ".." spelt %2E (HTTP clients and servers resolve those
// as dot-segments).
func skuSegment(sku string) string {
	if sku == "." || sku == ".." {
		return hexEscape(sku, "%%%02X")
	}
	return url.PathEscape(sku)
}

func TestCatalogueSKUsOverRESTAndGRPC(t *testing.T) {
	e := start(t, true)
	for i, sku := range catalogueSKUs {
		s, _, err := inventory.Apply(inventory.State{SKU: sku},
			inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: int64(i + 1), AsOf: now.Add(-time.Duration(i + 1))}, now)
		if err != nil {
			t.Fatalf("%q: %v", sku, err)
		}
		e.stock.Put(s)
	}
	for i, sku := range catalogueSKUs {
		s, found, err := e.stock.Get(sku)
		if err != nil || !found {
			t.Fatalf("%q: not stored: %v", sku, err)
		}
		want := e.fix.want(s, e.clock.Now())
		if want.GetSku() != sku || want.GetOnHand() != int64(i+1) {
			t.Fatalf("%q: fixture answer %v", sku, want)
		}
		got, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku})
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("gRPC %q: %v, %v; want %v", sku, got, err, want)
		}
		segments := map[string]bool{skuSegment(sku): true, hexEscape(sku, "%%%02X"): true, hexEscape(sku, "%%%02x"): true}
		if !strings.ContainsAny(sku, "/%?#") && sku != "." && sku != ".." {
			segments[sku] = true // sent as it is (the client encodes what it must)
		}
		for seg := range segments {
			path := "/v1/availability/" + seg
			r := e.get(t, path)
			if r.status != http.StatusOK {
				t.Errorf("GET %s (%q): %d %s", path, sku, r.status, r.body)
				continue
			}
			var body pb.Availability
			if err := protojson.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			if !proto.Equal(&body, want) {
				t.Errorf("GET %s (%q): %v\nwant %v", path, sku, &body, want)
			}
		}
	}
}

// A SKU's '/' unescaped is a path separator: the route has one segment, so
// that is not found, and never another SKU's answer.
func TestUnescapedSlashIsNotASKU(t *testing.T) {
	e := start(t, true)
	for _, sku := range []string{"A", "A/B"} {
		s, _, err := inventory.Apply(inventory.State{SKU: sku},
			inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: 1, AsOf: now.Add(-1)}, now)
		if err != nil {
			t.Fatal(err)
		}
		e.stock.Put(s)
	}
	if r := e.get(t, "/v1/availability/A/B"); r.status != http.StatusNotFound {
		t.Errorf("GET /v1/availability/A/B: %d %s, want 404", r.status, r.body)
	}
}

// A path that is not a valid percent-encoding is the caller's mistake.
func TestMalformedPercentEncoding(t *testing.T) {
	e := start(t, true)
	// Go's client refuses to send these; write the request line by hand.
	for _, path := range []string{"/v1/availability/A%2", "/v1/availability/A%zzB"} {
		r := e.rawGet(t, path)
		if r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", path, r.status, r.body)
		}
	}
	// A decoded SKU that breaks the rule is named with it.
	r := e.get(t, "/v1/availability/A%00B")
	if r.status != http.StatusBadRequest {
		t.Fatalf("GET A%%00B: %d %s, want 400", r.status, r.body)
	}
	if s := errorBody(t, r); s.Code != codes.InvalidArgument || !strings.Contains(s.Message, "control character") ||
		!strings.Contains(s.Message, inventory.SKURule) {
		t.Errorf("GET A%%00B: %+v, want the rule", s)
	}
}

// rawGet sends a GET with the request line as given, unchecked by a client.
func (e *env) rawGet(t *testing.T, path string) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.srv.HTTPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}
