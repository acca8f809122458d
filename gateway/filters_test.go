package gateway_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// checkLocationAnswer checks a per-location answer against the full
// answer's breakdown: exactly the full answer's lines of the asked
// locations; per channel, usable is what those lines add to the channel
// (open, eligible, not stale, not excluded), available the smaller of that
// and the SKU's available; the SKU's reservations, cap and backorders; the
// reasons about those locations; the unknown ones listed; its own version.
func checkLocationAnswer(t *testing.T, got, full *pb.Availability, asked []string) {
	t.Helper()
	var lines []*pb.LocationAvailability
	var onHand int64
	for _, l := range full.GetLocations() {
		if slices.Contains(asked, l.GetLocation()) {
			lines = append(lines, l)
			onHand += l.GetOnHand()
		}
	}
	if len(got.GetLocations()) != len(lines) {
		t.Fatalf("locations %v, want the full answer's lines of %v: %v", got.GetLocations(), asked, lines)
	}
	for i, l := range lines {
		if !proto.Equal(got.GetLocations()[i], l) {
			t.Errorf("line %d: %v, full answer's %v", i, got.GetLocations()[i], l)
		}
	}
	if got.GetOnHand() != onHand {
		t.Errorf("on_hand %d, the lines hold %d", got.GetOnHand(), onHand)
	}
	var unknown []string
	for _, id := range asked {
		if !slices.ContainsFunc(lines, func(l *pb.LocationAvailability) bool { return l.GetLocation() == id }) && !slices.Contains(unknown, id) {
			unknown = append(unknown, id)
		}
	}
	slices.Sort(unknown)
	if !slices.Equal(got.GetUnknownLocations(), unknown) {
		t.Errorf("unknown_locations %v, want %v", got.GetUnknownLocations(), unknown)
	}
	if want := slices.Compact(slices.Sorted(slices.Values(asked))); !slices.Equal(got.GetFilterLocations(), want) {
		t.Errorf("filter_locations %v, want %v", got.GetFilterLocations(), want)
	}
	if got.GetVersion() == full.GetVersion() || got.GetVersion() == "" {
		t.Errorf("version %q, full answer's %q: a restricted answer has its own", got.GetVersion(), full.GetVersion())
	}
	if !proto.Equal(got.GetEvaluatedAt(), full.GetEvaluatedAt()) || !proto.Equal(got.GetNextChangeAt(), full.GetNextChangeAt()) {
		t.Errorf("times differ: %v", got)
	}
	for _, c := range got.GetChannels() {
		fc := channel(t, full, c.GetChannel())
		var usable int64
		for _, l := range lines {
			counts := !l.GetClosed() && !l.GetStale() && !l.GetRegionExcluded() &&
				(len(l.GetChannels()) == 0 || slices.Contains(l.GetChannels(), c.GetChannel()))
			if counts {
				usable += l.GetUsable()
			}
		}
		if c.GetUsable() != usable || c.GetAvailable() != min(usable, fc.GetAvailable()) {
			t.Errorf("%s: usable %d available %d; the lines add %d, the SKU has %d available", c.GetChannel(), c.GetUsable(), c.GetAvailable(), usable, fc.GetAvailable())
		}
		if c.GetReserved() != fc.GetReserved() || c.GetBackorderable() != fc.GetBackorderable() || c.GetSellable() != fc.GetSellable() ||
			c.GetCapRemaining() != fc.GetCapRemaining() || (c.CapRemaining == nil) != (fc.CapRemaining == nil) {
			t.Errorf("%s: the SKU's terms differ: %v, full %v", c.GetChannel(), c, fc)
		}
		var reasons []*pb.Reason
		for _, r := range fc.GetReasons() {
			if r.GetLocation() == "" || slices.Contains(asked, r.GetLocation()) {
				reasons = append(reasons, r)
			}
		}
		if len(c.GetReasons()) != len(reasons) {
			t.Errorf("%s: reasons %v, want %v", c.GetChannel(), c.GetReasons(), reasons)
		}
		for i := range min(len(reasons), len(c.GetReasons())) {
			if !proto.Equal(c.GetReasons()[i], reasons[i]) {
				t.Errorf("%s: reason %d %v, want %v", c.GetChannel(), i, c.GetReasons()[i], reasons[i])
			}
		}
	}
}

// getFiltered asks for sku restricted to locations and channels over gRPC
// and REST; both must agree, and carry the answer's version as ETag.
func (e *env) getFiltered(t *testing.T, sku string, locations, chans []string) *pb.Availability {
	t.Helper()
	var hdr metadata.MD
	got, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: sku, Locations: locations, Channels: chans}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	if etag := hdr.Get("etag"); len(etag) != 1 || etag[0] != `"`+got.GetVersion()+`"` {
		t.Errorf("gRPC etag %q, version %q", etag, got.GetVersion())
	}
	q := url.Values{"locations": locations, "channels": chans}
	r := e.get(t, availabilityPath(sku)+"?"+q.Encode())
	if r.status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.status, r.body)
	}
	var rest pb.Availability
	if err := protojson.Unmarshal(r.body, &rest); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&rest, got) {
		t.Errorf("REST\n%v\ngRPC\n%v", &rest, got)
	}
	if etag := r.header.Get("ETag"); etag != `"`+got.GetVersion()+`"` {
		t.Errorf("REST ETag %q, version %q", etag, got.GetVersion())
	}
	return got
}

// TestPerLocationAnswers: "how many can be picked up at store X", for the
// fixture's SKU with a warehouse, a pickup-only store, a closed store, a
// soon-stale merchant location, a cap and an unsellable channel: each
// restricted answer agrees with the full answer's breakdown.
func TestPerLocationAnswers(t *testing.T) {
	e := start(t, true)
	full := e.fix.want(e.fix.state(t, policySKU), now)
	for _, asked := range [][]string{
		{pickupLocation},
		{"WH-1"},
		{"WH-1", pickupLocation},
		{closedLocation, fastLocation, "STORE-NONE"},
		{noLevelMxLoc, slowLocation, "WH-1", pickupLocation, closedLocation, fastLocation}, // all of them
		{"STORE-NONE"},
	} {
		t.Run(strings.Join(asked, ","), func(t *testing.T) {
			got := e.getFiltered(t, policySKU, asked, nil)
			checkLocationAnswer(t, got, full, asked)
		})
	}

	// The pickup store alone: its 4 units less 1 safety stock count for
	// store-pickup only, within the channel's cap of 2.
	got := e.getFiltered(t, policySKU, []string{pickupLocation}, []string{"store-pickup"})
	if len(got.GetChannels()) != 1 {
		t.Fatalf("channels %v, want store-pickup only", got.GetChannels())
	}
	if c := got.GetChannels()[0]; c.GetUsable() != 3 || c.GetAvailable() != 2 {
		t.Errorf("store-pickup at %s: usable %d available %d, want 3 and 2 (the cap)", pickupLocation, c.GetUsable(), c.GetAvailable())
	}
	if !slices.Equal(got.GetFilterChannels(), []string{"store-pickup"}) {
		t.Errorf("filter_channels %v", got.GetFilterChannels())
	}

	// All locations and channels: the full answer's numbers, another version.
	all := e.getFiltered(t, policySKU, []string{noLevelMxLoc, slowLocation, "WH-1", pickupLocation, closedLocation, fastLocation}, channels)
	trimmed := proto.Clone(all).(*pb.Availability)
	trimmed.Version, trimmed.FilterLocations, trimmed.FilterChannels = full.GetVersion(), nil, nil
	if !proto.Equal(trimmed, full) {
		t.Errorf("restricted to everything\n%v\nfull\n%v", all, full)
	}

	// Different filters, different versions.
	versions := map[string][]string{}
	for _, f := range [][]string{{"WH-1"}, {pickupLocation}, {"WH-1", pickupLocation}} {
		v := e.getFiltered(t, policySKU, f, nil).GetVersion()
		if prev, dup := versions[v]; dup {
			t.Errorf("filters %v and %v share version %s", prev, f, v)
		}
		versions[v] = f
	}
}

// TestPerLocationRefused: an unconfigured channel, a malformed location
// or channel: InvalidArgument naming it, over gRPC and REST.
func TestPerLocationRefused(t *testing.T) {
	e := start(t, true)
	for _, tt := range []struct {
		locations, chans []string
		want             string
	}{
		{nil, []string{"app"}, `channel is not configured: "app" (configured: marketplace, store-pickup, web)`},
		{[]string{"WH 1"}, nil, `location "WH 1" has characters outside A-Z a-z 0-9 . _ -`},
		{nil, []string{"web/x"}, `channel "web/x" has characters outside`},
	} {
		_, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: policySKU, Locations: tt.locations, Channels: tt.chans})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
			t.Errorf("gRPC %v %v: %v, want InvalidArgument saying %q", tt.locations, tt.chans, err, tt.want)
		}
		r := e.get(t, availabilityPath(policySKU)+"?"+url.Values{"locations": tt.locations, "channels": tt.chans}.Encode())
		if r.status != http.StatusBadRequest {
			t.Errorf("REST %v %v: %d %s", tt.locations, tt.chans, r.status, r.body)
		} else if s := errorBody(t, r); !strings.Contains(s.Message, tt.want) {
			t.Errorf("REST %v %v: %+v", tt.locations, tt.chans, s)
		}
	}
	// An unknown SKU stays NotFound with a filter.
	if _, err := e.avail.GetAvailability(ctx(t), &pb.GetAvailabilityRequest{Sku: "SKU-NOPE", Locations: []string{"WH-1"}}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown SKU with a filter: %v", err)
	}
}
