package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// TestPipelineEndToEnd runs the real roles on the embedded broker over
// loopback TCP: emit levels and adjustments (with duplicates and out of
// order), query over gRPC and REST and compare with the pure model, restart
// the processor on its LevelDB, then delete the LevelDB and rebuild it from
// the changelog, byte for byte.
func TestPipelineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	procDir := t.TempDir()
	metrics := listen(t)
	metricsAddr := metrics.Addr().String()

	stopProc := testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: procDir, MetricsListener: metrics,
			ReconcileEvery: app.DefaultReconcileEvery, Coalescing: app.DefaultCoalescing})
	})
	srv, client := serve(t, k, testConfig)

	rng := rand.New(rand.NewPCG(7, 11))
	first := genEvents(rng, 12, 400)
	emitJSON(t, k, withDuplicatesShuffled(rng, first))
	// Malformed input must reach the dead-letter topic, not stop the pipeline.
	produceRaw(t, k, "SKU-BAD", []byte("not protobuf at all \xff"))

	want := model(first)
	checkAll(t, client, srv.HTTPAddr(), want)
	checkDeadLetter(t, k, "SKU-BAD")
	// The processor's own metrics endpoint shows its input lag.
	waitMetric(t, metricsAddr, `skuflow_stock_input_lag_messages{partition="`, `topic="supply"} 0`)

	// Restart the processor on the same LevelDB, with more events in between.
	stopProc()
	second := genEvents(rng, 12, 150)
	all := append(append([]inventory.Event{}, first...), second...)
	emitJSON(t, k, withDuplicatesShuffled(rng, second))
	stopProc = testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: procDir,
			ReconcileEvery: app.DefaultReconcileEvery, Coalescing: app.DefaultCoalescing})
	})
	want = model(all)
	checkAll(t, client, srv.HTTPAddr(), want)

	// Delete the LevelDB and rebuild it from the changelog: identical bytes.
	stopProc()
	before := dumpTables(t, procDir)
	if len(before) < len(want) {
		t.Fatalf("table dump has %d entries, want at least %d SKUs", len(before), len(want))
	}
	if err := os.RemoveAll(procDir); err != nil {
		t.Fatal(err)
	}
	stopProc = testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: testConfig, DataDir: procDir,
			ReconcileEvery: app.DefaultReconcileEvery, Coalescing: app.DefaultCoalescing})
	})
	// Recovery finishes before the processor consumes input; a probe event
	// for a fresh SKU proves it is running, then stop it and compare.
	probe := inventory.StockLevel{SKU: "SKU-PROBE", Location: "L1", OnHand: 1, AsOf: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Sequence: 1}
	emitJSON(t, k, []inventory.Event{probe})
	want["SKU-PROBE"] = model([]inventory.Event{probe})["SKU-PROBE"]
	checkAll(t, client, srv.HTTPAddr(), want)
	stopProc()
	after := dumpTables(t, procDir)
	for key, v := range before {
		if strings.HasSuffix(key, "/__offset") {
			continue // the probe moved the changelog on
		}
		if !bytes.Equal(after[key], v) {
			t.Errorf("rebuilt table differs at %s", key)
		}
	}
	if len(after) != len(before)+1 {
		t.Errorf("rebuilt table has %d entries, want %d (before) + 1 (probe)", len(after), len(before))
	}
}

// genEvents makes n valid supply events over nSKU SKUs and three locations,
// with times in a narrow range so levels and adjustments interleave.
func genEvents(rng *rand.Rand, nSKU, n int) []inventory.Event {
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var evs []inventory.Event
	for i := range n {
		sku := fmt.Sprintf("SKU-%03d", rng.IntN(nSKU))
		loc := []string{"WH-1", "WH-2", "STORE-9"}[rng.IntN(3)]
		at := base.Add(time.Duration(rng.IntN(600)) * time.Second)
		if rng.IntN(3) == 0 {
			evs = append(evs, inventory.StockLevel{SKU: sku, Location: loc, OnHand: int64(rng.IntN(50)), AsOf: at, Sequence: uint64(rng.IntN(3))})
		} else {
			d := int64(rng.IntN(21) - 10)
			if d == 0 {
				d = 1
			}
			evs = append(evs, inventory.StockAdjustment{EventID: fmt.Sprintf("adj-%d-%d", rng.Uint64(), i), SKU: sku, Location: loc, Delta: d, OccurredAt: at})
		}
	}
	return evs
}

// withDuplicatesShuffled re-sends a third of the events and shuffles all.
func withDuplicatesShuffled(rng *rand.Rand, evs []inventory.Event) []inventory.Event {
	out := append([]inventory.Event{}, evs...)
	for _, e := range evs {
		if rng.IntN(3) == 0 {
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

var testConfig = inventory.Base{Channels: []string{"marketplace", "web"}, DefaultStaleAfter: time.Hour}

// model folds the events in their original order with the pure rules and
// evaluates them with no location policies (every location a warehouse).
func model(evs []inventory.Event) map[string]*pb.Availability {
	states := map[string]inventory.State{}
	for _, e := range evs {
		s, _, err := inventory.Apply(states[e.EventSKU()], e, time.Time{})
		if err != nil {
			panic(err)
		}
		states[e.EventSKU()] = s
	}
	out := map[string]*pb.Availability{}
	for sku, s := range states {
		out[sku] = codecs.SnapshotToProto(inventory.Evaluate(s, testConfig.Policies(), time.Now()))
	}
	return out
}

func emitJSON(t *testing.T, k kafkaOpts, evs []inventory.Event) {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range evs {
		env, err := codecs.SupplyEventToProto(e)
		if err != nil {
			t.Fatal(err)
		}
		line, err := protojson.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	sum, err := emit.Emit(context.Background(), emit.Options{Kafka: k, Topic: "supply", Input: &buf})
	if err != nil {
		t.Fatalf("emit: %v", err)
	}
	if sum.Emitted != len(evs) {
		t.Fatalf("emitted %d of %d events", sum.Emitted, len(evs))
	}
}

func checkAll(t *testing.T, client pb.AvailabilityServiceClient, httpAddr string, want map[string]*pb.Availability) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, func() error {
		for sku, w := range want {
			got, err := client.GetAvailability(context.Background(), &pb.GetAvailabilityRequest{Sku: sku})
			if err != nil {
				return fmt.Errorf("gRPC %s: %w", sku, err)
			}
			if !sameAnswer(got, w) {
				return fmt.Errorf("gRPC %s:\n got %v\nwant %v", sku, got, w)
			}
		}
		return nil
	})
	for sku, w := range want {
		resp, err := http.Get("http://" + httpAddr + "/v1/availability/" + sku)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("REST %s: %d %s %v", sku, resp.StatusCode, body, err)
		}
		var got pb.Availability
		if err := protojson.Unmarshal(body, &got); err != nil {
			t.Fatalf("REST %s: %v in %s", sku, err, body)
		}
		if !sameAnswer(&got, w) {
			t.Fatalf("REST %s:\n got %v\nwant %v", sku, &got, w)
		}
		if etag := resp.Header.Get("ETag"); etag != `"`+w.GetVersion()+`"` {
			t.Fatalf("REST %s: ETag %q, want version %q", sku, etag, w.GetVersion())
		}
	}
}

// sameAnswer compares answers except the time they were evaluated at.
func sameAnswer(a, b *pb.Availability) bool {
	x, y := proto.Clone(a).(*pb.Availability), proto.Clone(b).(*pb.Availability)
	x.EvaluatedAt, y.EvaluatedAt = nil, nil
	return proto.Equal(x, y)
}

func produceRaw(t *testing.T, k kafkaOpts, key string, value []byte) {
	t.Helper()
	c := k.Sarama()
	c.Producer.Partitioner = schema.Partitioner()
	p, err := sarama.NewSyncProducer(k.Brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(schema.Supply), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}

func checkDeadLetter(t *testing.T, k kafkaOpts, key string) {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(string(schema.DeadLetter))
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan *pb.DeadLetter, 1)
	for _, p := range parts {
		pc, err := c.ConsumePartition(string(schema.DeadLetter), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				var dl pb.DeadLetter
				if proto.Unmarshal(m.Value, &dl) == nil && string(dl.GetKey()) == key {
					select {
					case found <- &dl:
					default:
					}
				}
			}
		}()
	}
	select {
	case dl := <-found:
		if !strings.Contains(dl.GetReason(), "malformed") || dl.GetTopic() != "supply" || !bytes.HasPrefix(dl.GetValue(), []byte("not protobuf")) {
			t.Fatalf("dead letter %v lacks reason, topic or original bytes", dl)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no dead letter for the malformed message within 30s")
	}
}

// dumpTables reads every key of the stock table's LevelDB partitions.
func dumpTables(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "processors", string(schema.StockGroup), string(schema.StockTable)+".*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no table partitions under %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		db, err := leveldb.OpenFile(p, &opt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		it := db.NewIterator(nil, nil)
		for it.Next() {
			out[filepath.Base(p)+"/"+string(it.Key())] = bytes.Clone(it.Value())
		}
		it.Release()
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	return out
}
