package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

// TestAuditExitStatus: 0 on a clean cluster, 1 once a table record and an
// availability record the log does not explain are planted, 2 when the
// cluster cannot be reached.
func TestAuditExitStatus(t *testing.T) {
	b := testkit.StartBroker(t)
	k := b.Kafka
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatal(err)
	}
	args := []string{"audit", "--brokers", strings.Join(k.Brokers, ","), "--partitions", strconv.Itoa(k.Partitions), "--replication", "1"}
	if out, code := run(t, time.Minute, "", args...); code != 0 || !strings.Contains(out, "clean") {
		t.Fatalf("audit of an empty cluster: exit %d\n%s", code, out)
	}

	cfg := k.Sarama()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = schema.Partitioner()
	p, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := inventory.State{SKU: "SKU-X", Locations: []inventory.Location{{ID: "WH-1", HasLevel: true, Level: 7, LevelAsOf: time.Now().UTC(), LevelSeq: 1}}}
	raw, _ := codecs.State{}.Encode(s)
	snap, _ := codecs.Availability.Encode(codecs.SnapshotToProto(inventory.Evaluate(s, inventory.DefaultBase().Policies(), time.Now())))
	for topic, v := range map[string][]byte{string(schema.StockTable): raw, string(schema.Availability): snap} {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("SKU-X"), Value: sarama.ByteEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}
	out, code := run(t, time.Minute, "", append(args, "--json")...)
	if code != 1 {
		t.Fatalf("audit with planted records: exit %d, want 1\n%s", code, out)
	}
	var rep struct {
		Divergences []struct{ Kind, Key string }
	}
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	kinds := map[string]bool{}
	for _, d := range rep.Divergences {
		kinds[d.Kind+" "+d.Key] = true
	}
	if !kinds["stock-table SKU-X"] || !kinds["availability SKU-X"] {
		t.Errorf("planted divergences not both reported:\n%s", out)
	}

	if out, code := run(t, time.Minute, "", "audit", "--brokers", "127.0.0.1:1", "--replication", "1"); code != 2 {
		t.Errorf("audit of an unreachable cluster: exit %d, want 2\n%s", code, out)
	}
}
