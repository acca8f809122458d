package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// TestCatalogueSKUsEndToEnd: SKUs as catalogues write them (a '/', spaces,
// '+', '%', quotes, commas, non-ASCII letters, 256 bytes) go in through
// `skuflow emit` (protojson lines) and kcat (binary protobuf), and come out
// of gRPC, REST (percent-encoded path) and the availability topic as the
// pure rules answer them. Malformed SKUs get InvalidArgument / 400 naming
// the SKU rule, and emit rejects them before they reach a topic.
func TestCatalogueSKUsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: t.TempDir(),
			ReconcileEvery: app.DefaultReconcileEvery, Coalescing: app.DefaultCoalescing})
	})
	srv, client := serve(t, k, testConfig)
	published := availabilityView(t, k)

	// Prefixes and escaped spellings of one another sit side by side, so an
	// answer for the wrong SKU shows.
	skus := []string{
		`Ä-Öl 5/8" +%`, "A", "A/B", "A%2FB", "A/B/C", "a b", "a+b", "100% Wolle, Größe XL", "品番/001",
		"Straße 12 ½", "x:cancel", strings.Repeat("é", inventory.MaxSKULength/2),
	}
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var evs []inventory.Event
	for i, sku := range skus {
		evs = append(evs,
			inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: int64(10 + i), AsOf: at, Sequence: 1},
			inventory.StockAdjustment{EventID: fmt.Sprintf("adj/%d", i), SKU: sku, Location: "WH-2", Delta: int64(i + 1), OccurredAt: at.Add(time.Minute)})
	}
	emitJSON(t, k, evs)

	// kcat, as an outside producer: binary protobuf, one file per message,
	// keyed by the SKU and placed with goka's FNV-1a partitioner.
	kcatSKU := "Kcat/Ü 3\" +%"
	kcatEv := inventory.StockLevel{SKU: kcatSKU, Location: "WH-1", OnHand: 7, AsOf: at, Sequence: 1}
	if kcat, err := exec.LookPath("kcat"); err != nil {
		t.Logf("kcat not installed: %v; emitting its event through emit instead", err)
		emitJSON(t, k, []inventory.Event{kcatEv})
	} else {
		data, err := codecs.EncodeSupplyEvent(kcatEv)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "event.bin")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kcat, "-P", "-b", k.Brokers[0], "-t", "supply", "-k", kcatSKU, "-X", "partitioner=fnv1a", file).CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v: %s", err, out)
		}
	}
	evs = append(evs, kcatEv)
	skus = append(skus, kcatSKU)

	want := model(evs)
	if len(want) != len(skus) {
		t.Fatalf("model has %d SKUs, want %d", len(want), len(skus))
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		for _, sku := range skus {
			got, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
			if err != nil {
				return fmt.Errorf("gRPC %q: %w", sku, err)
			}
			if !sameAnswer(got, want[sku]) {
				return fmt.Errorf("gRPC %q:\n got %v\nwant %v", sku, got, want[sku])
			}
		}
		return nil
	})
	for _, sku := range skus {
		path := "/v1/availability/" + url.PathEscape(sku)
		status, body := httpGet(t, srv.HTTPAddr(), path)
		if status != http.StatusOK {
			t.Fatalf("REST %s (%q): %d %s", path, sku, status, body)
		}
		var got pb.Availability
		if err := protojson.Unmarshal(body, &got); err != nil {
			t.Fatalf("REST %s: %v in %s", path, err, body)
		}
		if !sameAnswer(&got, want[sku]) {
			t.Fatalf("REST %s (%q):\n got %v\nwant %v", path, sku, &got, want[sku])
		}
		checkPublished(t, published, sku, func(now time.Time) *pb.Availability {
			return codecs.SnapshotToProto(inventory.Evaluate(fold(t, eventsOf(evs, sku)), testConfig.Policies(), now))
		})
	}

	// Malformed SKUs: 400 / InvalidArgument naming the rule.
	for _, tt := range []struct {
		name, sku, words string
		grpc             bool // gRPC clients refuse to send invalid UTF-8
	}{
		{"control character", "A\x01B", "control character", true},
		{"line break", "A/B\n", "control character", true},
		{"trailing space", "A/B ", "starts or ends with a space", true},
		{"invalid UTF-8", "A\xffB", "not valid UTF-8", false},
		{"too long", strings.Repeat("é", inventory.MaxSKULength/2) + "x", "longer than 256", true},
	} {
		path := "/v1/availability/" + url.PathEscape(tt.sku)
		code, body := httpGet(t, srv.HTTPAddr(), path)
		var st struct {
			Code    codes.Code `json:"code"`
			Message string     `json:"message"`
		}
		if err := json.Unmarshal(body, &st); err != nil || code != http.StatusBadRequest || st.Code != codes.InvalidArgument ||
			!strings.Contains(st.Message, tt.words) || !strings.Contains(st.Message, inventory.SKURule) {
			t.Errorf("REST %s: %d %s, want 400 naming %q and the rule", tt.name, code, body, tt.words)
		}
		if tt.grpc {
			_, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: tt.sku})
			if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), tt.words) {
				t.Errorf("gRPC %s: %v, want InvalidArgument naming %q", tt.name, err, tt.words)
			}
		}
	}

	// emit rejects a malformed SKU with the rule, publishing nothing for it.
	var rejected bytes.Buffer
	line := `{"stockLevel":{"sku":"A\u0001B","location":"WH-1","onHand":"1","asOf":"2026-11-20T08:00:00Z"}}` + "\n" +
		`{"stockLevel":{"sku":" A","location":"WH-1","onHand":"1","asOf":"2026-11-20T08:00:00Z"}}` + "\n"
	sum, err := emit.Emit(context.Background(), emit.Options{Kafka: k, Topic: "supply", Input: strings.NewReader(line), Rejected: &rejected})
	if err == nil || sum.Emitted != 0 || sum.Rejected != 2 {
		t.Errorf("emit of malformed SKUs: %+v, %v; want both rejected", sum, err)
	}
	for _, w := range []string{"line 1:", "control character", "line 2:", "starts or ends with a space", inventory.SKURule} {
		if !strings.Contains(rejected.String(), w) {
			t.Errorf("emit's rejections %q do not mention %q", rejected.String(), w)
		}
	}
}

// eventsOf is the events of one SKU, in order.
func eventsOf(evs []inventory.Event, sku string) []inventory.Event {
	var out []inventory.Event
	for _, e := range evs {
		if e.EventSKU() == sku {
			out = append(out, e)
		}
	}
	return out
}

func httpGet(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}
