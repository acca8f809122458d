package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Every read scenario runs at a small size and measures something sane.
// The goals of issue 11 are the bench's to report, not this test's.
func TestReadScenariosRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded broker, processors and gateway per scenario")
	}
	o := Options{Messages: 400, Keys: 100, Partitions: 2, Clients: 4}
	for _, name := range readOrder {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var out bytes.Buffer
			if err := Child(ctx, o, name, &out); err != nil {
				t.Fatal(err)
			}
			var r Result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("result %q: %v", out.String(), err)
			}
			t.Logf("%+v", r)
			if r.Scenario != name || r.Unit == "" || r.Description == "" {
				t.Errorf("result names scenario %q, unit %q, description %q", r.Scenario, r.Unit, r.Description)
			}
			if r.Messages <= 0 || r.Seconds <= 0 || r.PerSecond <= 0 {
				t.Errorf("measured %d in %.3f s = %.1f/s; want a positive rate", r.Messages, r.Seconds, r.PerSecond)
			}
			if r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
				t.Errorf("latency p50 %.3f ms, p99 %.3f ms; want 0 < p50 <= p99", r.P50Ms, r.P99Ms)
			}
			switch name {
			case "rest-hello", "rest-get", "grpc-hello", "grpc-get":
				if r.Clients != o.Clients || r.HalfRate <= 0 || r.HalfRate > r.PerSecond || r.HalfP99Ms <= 0 || r.HalfP99Ms < r.HalfP50Ms {
					t.Errorf("clients %d, at half the peak %.1f/s (peak %.1f/s): p50 %.3f ms, p99 %.3f ms", r.Clients, r.HalfRate, r.PerSecond, r.HalfP50Ms, r.HalfP99Ms)
				}
			case "batch-100", "single-100":
				if r.Messages%100 != 0 || r.Messages < o.Messages {
					t.Errorf("answered %d SKUs; want at least %d, in hundreds", r.Messages, o.Messages)
				}
			case "watch-fanout":
				// A burst may coalesce a SKU's changes; never more than one
				// delivery per change and watcher.
				sz := sizes(o)
				if most := sz.watchers * sz.changes; r.Messages > most || r.Clients != sz.watchers {
					t.Errorf("%d deliveries to %d watchers; want at most %d to %d", r.Messages, r.Clients, most, sz.watchers)
				}
				if r.HalfRate <= 0 || r.HalfP99Ms <= 0 || r.HalfP99Ms < r.HalfP50Ms {
					t.Errorf("at half the peak %.1f deliveries/s, lag p50 %.3f ms, p99 %.3f ms", r.HalfRate, r.HalfP50Ms, r.HalfP99Ms)
				}
			case "freshness":
				if r.Messages != sizes(o).freshness {
					t.Errorf("%d changes; want %d", r.Messages, sizes(o).freshness)
				}
			}
		})
	}
}

// The read table puts each scenario beside its baseline and judges the
// goals of issue 11 from the figures.
func TestPrintReads(t *testing.T) {
	results := []Result{
		{Scenario: "stock", PerSecond: 50_000},
		{Scenario: "rest-hello", PerSecond: 20_000, Unit: "req/s", P50Ms: 1, P99Ms: 3, HalfRate: 10_000, HalfP50Ms: 0.2, HalfP99Ms: 0.5},
		{Scenario: "rest-get", PerSecond: 15_000, Unit: "req/s", P50Ms: 1.5, P99Ms: 4, HalfRate: 7_500, HalfP50Ms: 0.3, HalfP99Ms: 0.9},
		{Scenario: "grpc-hello", PerSecond: 20_000, Unit: "req/s", HalfRate: 10_000, HalfP99Ms: 0.5},
		{Scenario: "grpc-get", PerSecond: 10_000, Unit: "req/s", HalfRate: 5_000, HalfP99Ms: 2},
		{Scenario: "single-100", PerSecond: 10_000, Unit: "SKUs/s"},
		{Scenario: "batch-100", PerSecond: 250_000, Unit: "SKUs/s"},
		{Scenario: "freshness", P50Ms: 8, P99Ms: 25, Unit: "changes/s", Detail: "10 changes"},
	}
	var b strings.Builder
	rest := printReads(&b, results)
	out := b.String()
	t.Log("\n" + out)
	if len(rest) != 1 || rest[0].Scenario != "stock" {
		t.Errorf("returned %v; want only the stock result", rest)
	}
	for _, want := range []string{
		"0.75 of rest-hello", "0.50 of grpc-hello", "25.0x single-100",
		"0.30 / 0.90 (at 7500/s)",
		"REST GetAvailability >= 0.7 of rest-hello: 0.75, reached",
		"gRPC GetAvailability >= 0.8 of grpc-hello: 0.50, NOT reached",
		"rest-get p99 < 1 ms at half the peak rate (7500/s): 0.90 ms, reached",
		"grpc-get p99 < 1 ms at half the peak rate (5000/s): 2.00 ms, NOT reached",
		"BatchGet(100) >= 20x the SKUs/s of single Gets: 25.0x, reached",
		"freshness p99 < 20 ms: 25.0 ms, NOT reached",
		"freshness: 10 changes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if strings.Contains(out, "stock") {
		t.Error("the read table lists a processing scenario")
	}
}

// At a fixed rate, callLoad spaces the calls out (it can only be late);
// with rate 0 every worker calls back to back.
func TestCallLoadPaces(t *testing.T) {
	var calls atomic.Int64
	s, err := callLoad(context.Background(), 4, 100, 1000, func(int, int) error { calls.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 100 || s.n != 100 {
		t.Fatalf("%d calls, counted %d; want 100", calls.Load(), s.n)
	}
	// 100 calls at 1000/s: the last starts 99 ms after the first.
	if s.elapsed < 95*time.Millisecond {
		t.Errorf("100 calls at 1000/s took %s; want at least 99 ms", s.elapsed)
	}
	s, err = callLoad(context.Background(), 4, 1000, 0, func(int, int) error { return nil })
	if err != nil || s.n != 1000 {
		t.Fatalf("closed loop: %d calls, %v", s.n, err)
	}
}

// watchFields reads what the protobuf encoding of a response holds.
func TestWatchFields(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 11, 12, 123456789, time.UTC)
	for _, m := range []*pb.WatchAvailabilityResponse{
		{Availability: &pb.Availability{Sku: "SKU-00007", OnHand: 12, Version: "v1", UpdatedAt: timestamppb.New(at),
			Locations: []*pb.LocationAvailability{{Location: "WH-EAST", OnHand: 12, LevelAsOf: timestamppb.New(at.Add(-time.Hour))}}}},
		{Synced: true},
		{Availability: &pb.Availability{Sku: "SKU-2"}, Synced: true},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		sku, updated, synced, err := watchFields(b)
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		var want int64
		if ts := m.GetAvailability().GetUpdatedAt(); ts != nil {
			want = ts.AsTime().UnixNano()
		}
		if string(sku) != m.GetAvailability().GetSku() || updated != want || synced != m.GetSynced() {
			t.Errorf("%v: read sku %q, updated %d, synced %v", m, sku, updated, synced)
		}
	}
	if _, _, _, err := watchFields([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Error("a truncated message read without error")
	}
}
