package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

const (
	regionSKU = "SKU-REGION"
	euOnly    = "wh.eu" // may not ship to the US
	notBY     = "wh.us" // may not ship to Bavaria
)

// startWithRegions is start plus regionSKU, stocked at two warehouses whose
// policies exclude regions; it returns the policies the gateway gathers.
func startWithRegions(t *testing.T) (*env, inventory.State, inventory.Policies) {
	t.Helper()
	e := start(t, true)
	s := inventory.State{SKU: regionSKU}
	for _, lv := range []inventory.StockLevel{
		{SKU: regionSKU, Location: euOnly, OnHand: 7, AsOf: now.Add(-time.Hour)},
		{SKU: regionSKU, Location: notBY, OnHand: 3, AsOf: now.Add(-time.Hour)},
	} {
		next, _, err := inventory.Apply(s, lv, now)
		if err != nil {
			t.Fatal(err)
		}
		s = next
	}
	e.stock.Put(s)
	pol := e.fix.policies()
	for id, regions := range map[string][]string{euOnly: {"US"}, notBY: {"DE-BY", "DE-BE"}} {
		lp, _, err := inventory.ApplyLocationPolicy(inventory.LocationPolicy{}, false,
			inventory.LocationPolicy{Location: id, Kind: inventory.KindWarehouse, ExcludedRegions: regions, AsOf: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.stock.PutPolicy(&pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(lp)}}); err != nil {
			t.Fatal(err)
		}
		pol.Locations[id] = lp
	}
	return e, s, pol
}

// answerFor asks for sku shipped to region over gRPC and over REST (with
// the query parameter spelt as query), checks both equal want, ETag
// included, and returns the gRPC answer.
func (e *env) answerFor(t *testing.T, sku, region, query string, want *pb.Availability) *pb.Availability {
	t.Helper()
	etag := `"` + want.GetVersion() + `"`
	var hdr metadata.MD
	got, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku, ShipToRegion: region}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("gRPC GetAvailability(%s, %s): %v", sku, region, err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("gRPC answer for %s to %s\n%v\nwant\n%v", sku, region, got, want)
	}
	if v := hdr.Get("etag"); len(v) != 1 || v[0] != etag {
		t.Errorf("gRPC etag %q, want [%q]", v, etag)
	}
	path := availabilityPath(sku)
	if region != "" {
		path += "?" + query + "=" + url.QueryEscape(region)
	}
	r := e.get(t, path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", path, r.status, r.body)
	}
	var body pb.Availability
	if err := protojson.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("GET %s body %s: %v", path, r.body, err)
	}
	if !proto.Equal(&body, want) {
		t.Errorf("GET %s\n%v\nwant\n%v", path, &body, want)
	}
	if v := r.header.Values("ETag"); len(v) != 1 || v[0] != etag {
		t.Errorf("GET %s ETag %q, want [%q]", path, v, etag)
	}
	return got
}

func TestGetAvailabilityShipToRegion(t *testing.T) {
	e, s, pol := startWithRegions(t)
	regionless := codecs.SnapshotToProto(inventory.Evaluate(s, pol, now))
	e.answerFor(t, regionSKU, "", "", regionless)
	if c := channel(t, regionless, "web"); c.GetAvailable() != 10 || len(c.GetReasons()) != 0 || regionless.GetShipToRegion() != "" {
		t.Fatalf("region-less web %v", c)
	}

	for _, tc := range []struct {
		region, query string
		web           int64
		excluded      []string
	}{
		{"US-CA", "ship_to_region", 3, []string{euOnly}}, // a country excludes its subdivisions
		{"US", "shipToRegion", 3, []string{euOnly}},      // the JSON name works too
		{"DE-BY", "ship_to_region", 7, []string{notBY}},
		{"DE", "ship_to_region", 10, nil}, // a subdivision does not exclude its country
		{"JP", "ship_to_region", 10, nil},
	} {
		t.Run(tc.region, func(t *testing.T) {
			p := pol
			p.ShipTo = tc.region
			want := codecs.SnapshotToProto(inventory.Evaluate(s, p, now))
			got := e.answerFor(t, regionSKU, tc.region, tc.query, want)
			if got.GetShipToRegion() != tc.region || got.GetVersion() == regionless.GetVersion() {
				t.Errorf("ship_to_region %q, version %s (region-less %s)", got.GetShipToRegion(), got.GetVersion(), regionless.GetVersion())
			}
			web := channel(t, got, "web")
			if web.GetAvailable() != tc.web {
				t.Errorf("web available %d, want %d", web.GetAvailable(), tc.web)
			}
			for _, id := range []string{euOnly, notBY} {
				wantExcluded := len(tc.excluded) > 0 && tc.excluded[0] == id
				if location(t, got, id).GetRegionExcluded() != wantExcluded || hasReason(web, pb.Reason_LOCATION_EXCLUDED_REGION, id) != wantExcluded {
					t.Errorf("%s: region_excluded %v, reasons %v; want excluded %v", id, location(t, got, id).GetRegionExcluded(), web.GetReasons(), wantExcluded)
				}
			}
		})
	}

	// The fixture's SKUs, whose locations exclude nothing, give the
	// region-less numbers for any region.
	p := e.fix.policies()
	p.ShipTo = "FR"
	for _, st := range e.states {
		want := codecs.SnapshotToProto(inventory.Evaluate(st, p, now))
		got := e.answerFor(t, st.SKU, "FR", "ship_to_region", want)
		plain := e.fix.want(st, now)
		got.ShipToRegion, got.Version, got.EvaluatedAt = "", "", nil
		plain.Version, plain.EvaluatedAt = "", nil
		if !proto.Equal(got, plain) {
			t.Errorf("%s shipped to FR\n%v\nregion-less\n%v", st.SKU, got, plain)
		}
	}
}

func TestGetAvailabilityMalformedShipToRegion(t *testing.T) {
	e, _, _ := startWithRegions(t)
	for _, region := range []string{"us", "USA", "US-", "US-CALI", "US_CA", " US", "U\x01", "ÜS"} {
		t.Run(region, func(t *testing.T) {
			_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: regionSKU, ShipToRegion: region})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), inventory.RegionRule) ||
				!strings.Contains(status.Convert(err).Message(), "ship_to_region") {
				t.Errorf("gRPC: %v, want InvalidArgument naming ship_to_region and the rule", err)
			}
			r := e.get(t, availabilityPath(regionSKU)+"?ship_to_region="+url.QueryEscape(region))
			if r.status != http.StatusBadRequest {
				t.Fatalf("HTTP status %d, want 400; body %s", r.status, r.body)
			}
			if s := errorBody(t, r); s.Code != codes.InvalidArgument || !strings.Contains(s.Message, inventory.RegionRule) {
				t.Errorf("HTTP error body %+v, want the rule", s)
			}
		})
	}
	// A malformed region on an unknown SKU is still the caller's mistake first.
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "NO-SUCH-SKU", ShipToRegion: "usa"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown SKU with a malformed region: %v, want InvalidArgument", err)
	}
}
