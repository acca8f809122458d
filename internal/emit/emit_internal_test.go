package emit

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Every topic emit publishes to parses a valid line into the key and bytes
// the processors decode, and rejects an invalid one with the reason.
func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		topic, line, key string
	}{
		{"supply", `{"stockLevel":{"sku":"SKU-1","location":"WH-1","onHand":"10","asOf":"2026-11-21T10:00:00Z","sequence":"1"}}`, "SKU-1"},
		{"sku-policies", `{"channelEligibility":{"sku":"SKU-1","channel":"marketplace","sellable":false,"asOf":"2026-11-21T10:00:00Z"}}`, "SKU-1"},
		{"policies", `{"location":{"location":"STORE-7","kind":"LOCATION_KIND_STORE","channels":["store-pickup"],"asOf":"2026-11-21T10:00:00Z"}}`, "location/STORE-7"},
		{"policies", `{"location":{"location":"WH-EU","kind":"LOCATION_KIND_WAREHOUSE","excludedRegions":["US","CA-QC"],"asOf":"2026-11-21T10:00:00Z"}}`, "location/WH-EU"},
		{"demand", `{"fulfilled":{"reservationId":"cart-42:1","sku":"SKU-1","location":"WH-1","fulfilledAt":"2026-11-21T11:00:00Z"}}`, "SKU-1"},
		{"demand", `{"released":{"reservationId":"cart-42:1","sku":"SKU-1","reason":"RELEASE_REASON_CANCELLED"}}`, "SKU-1"},
	} {
		key, b, err := parseLine(tt.topic, []byte(tt.line))
		if err != nil || key != tt.key {
			t.Errorf("%s %s: key %q, %v; want %q", tt.topic, tt.line, key, err, tt.key)
			continue
		}
		if tt.topic == "demand" {
			ev, err := codecs.DecodeDemandEvent(b)
			if err != nil || ev.EventSKU() != tt.key {
				t.Errorf("demand bytes decode to %v, %v", ev, err)
			}
			var env pb.DemandEvent
			if err := proto.Unmarshal(b, &env); err != nil || env.GetEvent() == nil {
				t.Errorf("demand bytes are not a DemandEvent: %v", err)
			}
			if _, ok := ev.(inventory.Event); !ok {
				t.Errorf("%T is not an inventory.Event", ev)
			}
		}
	}
	for _, tt := range []struct{ topic, line, want string }{
		{"demand", `{}`, "no event set"},
		{"demand", `{"requested":{"reservationId":"o:1","orderId":"o","sku":"SKU-1","channel":"web","quantity":"1","ttl":"60s"}}`, "the order saga's to send"},
		{"demand", `{"extended":{"reservationId":"o:1","orderId":"o","sku":"SKU-1","expiresAt":"2026-11-21T11:00:00Z"}}`, "the order saga's to send"},
		{"demand", `{"fulfilled":{"reservationId":"r-1","location":"WH-1","fulfilledAt":"2026-11-21T11:00:00Z"}}`, "sku"},
		{"demand", `{"fulfilled":{"reservationId":"r-1","sku":"SKU-1","location":"WH-1"}}`, "fulfilled_at"},
		{"demand", `not json`, "not a skuflow.v1.DemandEvent"},
		{"policies", `{"location":{"location":"WH-EU","kind":"LOCATION_KIND_WAREHOUSE","excludedRegions":["usa"],"asOf":"2026-11-21T10:00:00Z"}}`, inventory.RegionRule},
		{"orders", `{}`, `topic "orders" is not one emit publishes to`},
	} {
		if _, _, err := parseLine(tt.topic, []byte(tt.line)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: %v, want an error mentioning %q", tt.topic, tt.line, err, tt.want)
		}
	}
}
