package reconcile

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/schema"
)

func validOptions() Options {
	return Options{
		Kafka:    kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 8, Replication: 1},
		Base:     inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour},
		Interval: time.Second,
		DataDir:  "/tmp/skuflow-reconciler",
	}
}

// Validate reports each broken field, and every one of them at once.
func TestOptionsValidate(t *testing.T) {
	if err := validOptions().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	// Logger, Now and Base are optional here: New defaults the first two,
	// and the composition root (internal/app) validates Base, which it
	// shares with the stock processor.
	minimal := validOptions()
	minimal.Base, minimal.Logger, minimal.Now = inventory.Base{}, nil, nil
	if err := minimal.Validate(); err != nil {
		t.Errorf("options without config, logger and clock: %v", err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no brokers", func(o *Options) { o.Kafka.Brokers = nil }, "no brokers"},
		{"broker without port", func(o *Options) { o.Kafka.Brokers = []string{"localhost"} }, "host:port"},
		{"zero partitions", func(o *Options) { o.Kafka.Partitions = 0 }, "partitions"},
		{"zero replication", func(o *Options) { o.Kafka.Replication = 0 }, "replication"},
		{"negative retention", func(o *Options) { o.Kafka.StreamRetention = -time.Second }, "retention"},
		{"zero interval", func(o *Options) { o.Interval = 0 }, "interval"},
		{"negative interval", func(o *Options) { o.Interval = -time.Second }, "interval"},
		{"no data dir", func(o *Options) { o.DataDir = "" }, "data directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.mutate(&o)
			err := o.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %q, want it to mention %q", err, tc.want)
			}
			if _, err := New(o); err == nil {
				t.Errorf("New accepted options with %s", tc.name)
			}
		})
	}

	var o Options
	err := o.Validate()
	if err == nil {
		t.Fatal("zero Options validated")
	}
	for _, want := range []string{"no brokers", "partitions", "replication", "interval", "data directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("zero Options: error %q does not mention %q (errors must be joined, not first-wins)", err, want)
		}
	}
}

// partition must put a key where goka's producers (the emitter the
// reconciler ticks with, and the producers feeding supply) put it: sarama's
// hash partitioner with goka's FNV-1a hasher. Otherwise a reconciler that
// owns some partitions would skip SKUs it owns and tick SKUs it does not.
func TestPartitionAgreesWithSaramaHashPartitioner(t *testing.T) {
	var keys []string
	for i := range 3000 {
		keys = append(keys, fmt.Sprintf("SKU-%d", i))
	}
	keys = append(keys, "", "a", "SKU-1", strings.Repeat("z", 64), "ünïcödé", "with space", "\x00\xff")
	counts := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 24, 31, 32, 50, 64, 100, 127, 128, 1000, 9973, 10000}

	negative := 0
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k))
		if int32(h.Sum32()) < 0 {
			negative++
		}
	}
	if negative == 0 || negative == len(keys) {
		t.Fatalf("%d of %d keys hash to a negative int32: both signs must be covered", negative, len(keys))
	}

	partitioner := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(string(schema.StockTicks))
	if !partitioner.RequiresConsistency() {
		t.Fatal("goka's partitioner does not promise consistent placement")
	}
	for _, n := range counts {
		o := validOptions()
		o.Kafka.Partitions = n
		r := &Reconciler{o: o}
		seen := map[int32]bool{}
		for _, k := range keys {
			want, err := partitioner.Partition(&sarama.ProducerMessage{Topic: string(schema.StockTicks), Key: sarama.StringEncoder(k)}, int32(n))
			if err != nil {
				t.Fatalf("sarama partition of %q: %v", k, err)
			}
			got := r.partition(k)
			if got != want {
				t.Fatalf("%d partitions: partition(%q) = %d, sarama/goka put it in %d", n, k, got, want)
			}
			if got < 0 || got >= int32(n) {
				t.Fatalf("%d partitions: partition(%q) = %d is out of range", n, k, got)
			}
			seen[got] = true
		}
		if n <= 64 && len(seen) != n {
			t.Errorf("%d partitions: %d keys landed in only %d partitions", n, len(keys), len(seen))
		}
	}
}

// TestKcatFnv1aMatchesGokaPlacement checks the documented interop rule with
// the real tool: kcat (librdkafka) with -X partitioner=fnv1a places keys in
// the partitions goka and schema.Partition use, so external producers following
// the README stay co-partitioned.
func TestKcatFnv1aMatchesGokaPlacement(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	b := testkit.StartBroker(t)
	const n = 8
	k := b.Kafka
	k.Partitions = n
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "placement"}); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	want := map[string]int32{}
	for i := range 200 {
		key := fmt.Sprintf("SKU-%d", i)
		want[key] = schema.Partition(key, n)
		fmt.Fprintf(&in, "%s:x\n", key)
	}
	produce := exec.Command(kcat, "-P", "-b", b.Addrs()[0], "-t", "placement", "-K:", "-X", "partitioner=fnv1a")
	produce.Stdin = strings.NewReader(in.String())
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	out, err := exec.Command(kcat, "-C", "-b", b.Addrs()[0], "-t", "placement", "-e", "-q", "-f", "%k %p\n").Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	got := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var key string
		var p int32
		if _, err := fmt.Sscanf(line, "%s %d", &key, &p); err != nil {
			t.Fatalf("kcat line %q: %v", line, err)
		}
		got++
		if want[key] != p {
			t.Errorf("kcat put %s in partition %d, goka places it in %d", key, p, want[key])
		}
	}
	if got != len(want) {
		t.Fatalf("kcat consumed %d of %d keys", got, len(want))
	}
}
