package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/audit"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

func TestOptionsValidate(t *testing.T) {
	good := audit.Options{Kafka: kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 4, Replication: 1}, Base: inventory.DefaultBase()}
	if err := good.Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for name, tc := range map[string]struct {
		break_ func(*audit.Options)
		want   string
	}{
		"no brokers":      {func(o *audit.Options) { o.Kafka.Brokers = nil }, "no brokers"},
		"no channels":     {func(o *audit.Options) { o.Base.Channels = nil }, "no channels"},
		"bad sku":         {func(o *audit.Options) { o.SKUs = []string{" x"} }, "space"},
		"negative grace":  {func(o *audit.Options) { o.Grace = -time.Second }, "grace"},
		"negative settle": {func(o *audit.Options) { o.Settle = -time.Second }, "settle"},
	} {
		o := good
		tc.break_(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	two := good
	two.Kafka.Brokers, two.Grace = nil, -1
	if err := two.Validate(); err == nil || !strings.Contains(err.Error(), "brokers") || !strings.Contains(err.Error(), "grace") {
		t.Errorf("Validate does not join every problem: %v", err)
	}
}

// TestAuditFindsPlantedDivergences runs the processors on the embedded
// broker, waits until an audit is clean, then plants a wrong stock-table
// record and a stale availability record, and expects both found.
func TestAuditFindsPlantedDivergences(t *testing.T) {
	b := testkit.StartBroker(t)
	k := b.Kafka
	base := inventory.DefaultBase()
	// No reconciler: it would heal the planted availability record.
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: base, DataDir: t.TempDir()})
	})
	at := time.Now().UTC().Add(-time.Minute)
	events := []inventory.Event{
		inventory.StockLevel{SKU: "SKU-A", Location: "WH-1", OnHand: 10, AsOf: at, Sequence: 1},
		inventory.StockLevel{SKU: "SKU-B", Location: "WH-1", OnHand: 20, AsOf: at, Sequence: 1},
		inventory.StockAdjustment{EventID: "adj-1", SKU: "SKU-B", Location: "WH-1", Delta: -3, OccurredAt: at.Add(time.Second)},
		inventory.StockLevel{SKU: "SKU-C", Location: "WH-2", OnHand: 5, AsOf: at, Sequence: 1},
	}
	prod := producer(t, k)
	for _, ev := range events {
		b, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		send(t, prod, string(schema.Supply), ev.EventSKU(), b)
	}
	o := audit.Options{Kafka: k, Base: base, Grace: audit.DefaultGrace, Settle: 5 * time.Second}
	var rep audit.Report
	testkit.Eventually(t, 60*time.Second, func() error {
		var err error
		if rep, err = audit.Run(context.Background(), o); err != nil {
			return err
		}
		if !rep.Clean() || rep.SKUs != 3 || len(rep.Skipped) > 0 || len(rep.Behind) > 0 {
			var sb strings.Builder
			_ = rep.WriteText(&sb)
			return errorString(sb.String())
		}
		return nil
	})
	if rep.Events != int64(len(events)) {
		t.Errorf("clean audit folded %d events, want %d", rep.Events, len(events))
	}

	// Plant: SKU-A's table entry says 99 units; SKU-B's latest published
	// answer is an older one (20 units, before the adjustment).
	wrong := inventory.State{SKU: "SKU-A", Locations: []inventory.Location{{ID: "WH-1", HasLevel: true, Level: 99, LevelAsOf: at, LevelSeq: 1}}}
	raw, err := codecs.State{}.Encode(wrong)
	if err != nil {
		t.Fatal(err)
	}
	send(t, prod, string(schema.StockTable), "SKU-A", raw)
	old, _, _ := inventory.Apply(inventory.State{SKU: "SKU-B"}, events[1], at)
	stale := inventory.Evaluate(old, base.Policies(), time.Now().UTC())
	rawA, err := proto.Marshal(codecs.SnapshotToProto(stale))
	if err != nil {
		t.Fatal(err)
	}
	send(t, prod, string(schema.Availability), "SKU-B", rawA)

	rep, err = audit.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	_ = rep.WriteText(&sb)
	found := map[string]bool{}
	for _, d := range rep.Divergences {
		found[d.Kind+" "+d.Key] = true
	}
	if !found["stock-table SKU-A"] || !found["availability SKU-B"] || len(rep.Divergences) != 2 {
		t.Fatalf("want exactly the planted stock-table SKU-A and availability SKU-B divergences, got:\n%s", sb.String())
	}
	if !strings.Contains(sb.String(), "level 99") || !strings.Contains(sb.String(), "level 10") {
		t.Errorf("the stock divergence does not show both values:\n%s", sb.String())
	}
	// --sku narrows the audit.
	o.SKUs = []string{"SKU-C"}
	if rep, err = audit.Run(context.Background(), o); err != nil || !rep.Clean() {
		t.Errorf("audit of SKU-C alone: %v %+v", err, rep.Divergences)
	}

	// Retention deletes SKU-C's supply events: the fold no longer knows
	// SKU-C, so its keys are skipped (and counted), not reported divergent.
	truncate(t, k, string(schema.Supply), schema.Partition("SKU-C", k.Partitions))
	if rep, err = audit.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	sb.Reset()
	_ = rep.WriteText(&sb)
	if !rep.Clean() || len(rep.Skipped) != 1 || rep.Skipped[0].Keys < 1 || !strings.Contains(rep.Skipped[0].Reason, "retention") {
		t.Errorf("audit of SKU-C after retention deleted its events: want clean with its key skipped for retention, got:\n%s", sb.String())
	}
}

// truncate deletes every record of topic's partition, as retention would.
func truncate(t *testing.T, k kafkacfg.Options, topic string, partition int32) {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	head, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{partition: head}); err != nil {
		t.Fatalf("delete records of %s/%d before %d: %v", topic, partition, head, err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func producer(t *testing.T, k kafkacfg.Options) sarama.SyncProducer {
	t.Helper()
	cfg := k.Sarama()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = schema.Partitioner()
	p, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func send(t *testing.T, p sarama.SyncProducer, topic, key string, value []byte) {
	t.Helper()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}
