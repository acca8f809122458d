package kafkacfg_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
)

func admin(t *testing.T, k kafkacfg.Options) sarama.ClusterAdmin {
	t.Helper()
	a, err := sarama.NewClusterAdmin(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	t.Cleanup(func() { a.Close() }) // before the broker closes
	return a
}

func topicConfig(t *testing.T, a sarama.ClusterAdmin, topic, key string) string {
	t.Helper()
	entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{key}})
	if err != nil {
		t.Fatalf("describe %s config: %v", topic, err)
	}
	for _, e := range entries {
		if e.Name == key {
			return e.Value
		}
	}
	t.Fatalf("topic %s config lacks %s", topic, key)
	return ""
}

func TestEnsureTopicsCreatesCompactedAndDeleteTopics(t *testing.T) {
	b := testkit.StartBroker(t)
	k := b.Kafka
	topics := []kafkacfg.Topic{{Name: "a-table", Compacted: true}, {Name: "a-stream"}}
	if err := k.EnsureTopics(topics...); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	// Idempotent: existing topics with the right shape are accepted.
	if err := k.EnsureTopics(topics...); err != nil {
		t.Fatalf("EnsureTopics again: %v", err)
	}

	a := admin(t, k)
	details, err := a.ListTopics()
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, tp := range topics {
		d, ok := details[tp.Name]
		if !ok {
			t.Errorf("topic %s was not created", tp.Name)
			continue
		}
		if int(d.NumPartitions) != k.Partitions {
			t.Errorf("%s: %d partitions, want %d", tp.Name, d.NumPartitions, k.Partitions)
		}
		if int(d.ReplicationFactor) != k.Replication {
			t.Errorf("%s: replication %d, want %d", tp.Name, d.ReplicationFactor, k.Replication)
		}
		want := "delete"
		if tp.Compacted {
			want = "compact"
		}
		if got := topicConfig(t, a, tp.Name, "cleanup.policy"); got != want {
			t.Errorf("%s: cleanup.policy %q, want %q", tp.Name, got, want)
		}
	}
	t.Logf("stream topic retention.ms = %s", topicConfig(t, a, "a-stream", "retention.ms"))
}

func TestEnsureTopicsRejectsOtherPartitionCounts(t *testing.T) {
	b := testkit.StartBroker(t)
	k := b.Kafka
	a := admin(t, k)
	for name, n := range map[string]int32{"narrow": 2, "wide": int32(k.Partitions) * 2} {
		if err := a.CreateTopic(name, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}

	err := k.EnsureTopics(
		kafkacfg.Topic{Name: "narrow", Compacted: true},
		kafkacfg.Topic{Name: "fine"},
		kafkacfg.Topic{Name: "wide"},
	)
	if err == nil {
		t.Fatal("EnsureTopics accepted topics with other partition counts")
	}
	for _, want := range []string{
		"topic narrow has 2 partitions, skuflow is configured for 4",
		"topic wide has 8 partitions, skuflow is configured for 4",
		"co-partitioned",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "fine") {
		t.Errorf("error %q blames the correct topic", err)
	}
	// The problems do not stop the other topics from being created.
	details, lerr := a.ListTopics()
	if lerr != nil {
		t.Fatal(lerr)
	}
	if d, ok := details["fine"]; !ok || int(d.NumPartitions) != k.Partitions {
		t.Errorf("topic fine: %+v, exists=%v", d, ok)
	}
}

// TestEnsureTopicsRejectsWrongCleanupPolicy: a table changelog that exists
// with cleanup.policy=delete loses SKUs once retention passes, so the check
// must not be limited to partition counts. EnsureTopics passes goka's
// default MismatchBehavior (Ignore), so goka's own config check is silent.
func TestEnsureTopicsRejectsWrongCleanupPolicy(t *testing.T) {
	b := testkit.StartBroker(t)
	k := b.Kafka
	a := admin(t, k)
	del := "delete"
	if err := a.CreateTopic("table", &sarama.TopicDetail{
		NumPartitions: int32(k.Partitions), ReplicationFactor: 1, ConfigEntries: map[string]*string{"cleanup.policy": &del},
	}, false); err != nil {
		t.Fatalf("create: %v", err)
	}
	err := k.EnsureTopics(kafkacfg.Topic{Name: "table", Compacted: true})
	if err == nil || !strings.Contains(err.Error(), "cleanup.policy") {
		t.Errorf("EnsureTopics = %v, want an error naming cleanup.policy", err)
	}
}

func TestEnsureTopicsUnreachableBroker(t *testing.T) {
	k := kafkacfg.Options{Brokers: []string{"127.0.0.1:1"}, Partitions: 1, Replication: 1}
	err := k.EnsureTopics(kafkacfg.Topic{Name: "x"})
	if err == nil {
		t.Fatal("EnsureTopics succeeded without a broker")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the address", err)
	}
}

// A broker that takes connections and drops them is given up on after a
// bounded number of attempts (the metadata retries), not retried forever.
func TestEnsureTopicsGivesUpOnABrokenBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var attempts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			c.Close()
		}
	}()
	k := kafkacfg.Options{Brokers: []string{ln.Addr().String()}, Partitions: 1, Replication: 1}
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "x"}); err == nil {
		t.Fatal("EnsureTopics succeeded against a broker that drops every connection")
	}
	n, bound := attempts.Load(), int64(4*(k.Sarama().Metadata.Retry.Max+1))
	if n == 0 || n > bound {
		t.Errorf("%d connection attempts, want 1..%d (bounded by the metadata retries)", n, bound)
	}
	t.Logf("gave up after %d connection attempts", n)
}

func TestSarama(t *testing.T) {
	c := kafkacfg.Options{ClientID: "skuflow-test"}.Sarama()
	if c.Consumer.Offsets.Initial != sarama.OffsetOldest {
		t.Errorf("streams start at %d, want OffsetOldest", c.Consumer.Offsets.Initial)
	}
	if c.ClientID != "skuflow-test" {
		t.Errorf("ClientID %q", c.ClientID)
	}
	if c.Consumer.Group.Heartbeat.Interval*3 > c.Consumer.Group.Session.Timeout {
		t.Errorf("heartbeat %s is too long for session timeout %s", c.Consumer.Group.Heartbeat.Interval, c.Consumer.Group.Session.Timeout)
	}
	if !c.Producer.Return.Successes {
		t.Error("goka's producer needs Return.Successes")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("sarama rejects the config: %v", err)
	}
	if def := (kafkacfg.Options{}).Sarama().ClientID; def == "" {
		t.Error("an empty ClientID option clears sarama's default")
	}

	tmc := kafkacfg.Options{Replication: 3}.TopicManagerConfig()
	if tmc.Table.Replication != 3 || tmc.Stream.Replication != 3 {
		t.Errorf("replication table %d stream %d, want 3", tmc.Table.Replication, tmc.Stream.Replication)
	}
}

func TestOptionsValidate(t *testing.T) {
	valid := func() kafkacfg.Options {
		return kafkacfg.Options{Brokers: []string{"127.0.0.1:9092", "kafka-2:9092"}, Partitions: 8, Replication: 3}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	tests := []struct {
		name    string
		breakIt func(*kafkacfg.Options)
		want    string
	}{
		{"no brokers", func(o *kafkacfg.Options) { o.Brokers = nil }, "no brokers given"},
		{"broker without port", func(o *kafkacfg.Options) { o.Brokers[1] = "kafka-2" }, `broker address "kafka-2" is not host:port`},
		{"empty broker", func(o *kafkacfg.Options) { o.Brokers[0] = "" }, `broker address "" is not host:port`},
		{"zero partitions", func(o *kafkacfg.Options) { o.Partitions = 0 }, "partitions 0 is outside 1..10000"},
		{"too many partitions", func(o *kafkacfg.Options) { o.Partitions = 10001 }, "partitions 10001 is outside 1..10000"},
		{"zero replication", func(o *kafkacfg.Options) { o.Replication = 0 }, "replication factor 0 is outside 1..32"},
		{"replication too high", func(o *kafkacfg.Options) { o.Replication = 33 }, "replication factor 33 is outside 1..32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.breakIt(&o)
			checkJoined(t, o.Validate(), tt.want)
		})
	}
	t.Run("everything broken", func(t *testing.T) {
		o := kafkacfg.Options{Brokers: []string{"a", ""}, Partitions: -1, Replication: 99}
		checkJoined(t, o.Validate(),
			`broker address "a" is not host:port`, `broker address "" is not host:port`,
			"partitions -1 is outside", "replication factor 99 is outside")
	})
}

// checkJoined checks that err joins exactly one error per wanted message,
// each containing its message.
func checkJoined(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Validate() = nil, want %q", want)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %q (%T), not an errors.Join", err, err)
	}
	errs := joined.Unwrap()
	if len(errs) != len(want) {
		t.Errorf("Validate() reports %d problems, want %d: %q", len(errs), len(want), err)
	}
	for i, w := range want {
		if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d is %q, want it to mention %q", i, errs[i], w)
		}
	}
}

// Only processors' consumer groups get the small fetch size; everything
// else keeps sarama's default.
func TestProcessorConsumerSaramaScope(t *testing.T) {
	k := kafkacfg.Options{Brokers: []string{"localhost:9092"}, Partitions: 8, Replication: 1}
	if got := k.ProcessorConsumerSarama().Consumer.Fetch.Default; got != kafkacfg.ProcessorFetchDefault {
		t.Errorf("processor consumer Fetch.Default = %d, want %d", got, kafkacfg.ProcessorFetchDefault)
	}
	def := sarama.NewConfig().Consumer.Fetch.Default
	for name, c := range map[string]*sarama.Config{"Sarama": k.Sarama(), "ViewSarama": k.ViewSarama()} {
		if got := c.Consumer.Fetch.Default; got != def {
			t.Errorf("%s Fetch.Default = %d, want sarama's default %d", name, got, def)
		}
	}
	if err := k.ProcessorConsumerSarama().Validate(); err != nil {
		t.Errorf("processor consumer config invalid: %v", err)
	}
}
