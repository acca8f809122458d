package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/broker"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
)

func start(t *testing.T, opts broker.Options) *broker.Broker {
	t.Helper()
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatalf("broker.Start(%+v): %v", opts, err)
	}
	t.Cleanup(b.Close) // Close is idempotent: tests may close earlier
	return b
}

func kafkaOpts(b *broker.Broker, partitions int) kafkacfg.Options {
	return kafkacfg.Options{Brokers: b.Addrs(), Partitions: partitions, Replication: 1, ClientID: "broker-test"}
}

func TestStartOnFreePort(t *testing.T) {
	b1 := start(t, broker.Options{})
	b2 := start(t, broker.Options{})
	var ports []int
	for _, b := range []*broker.Broker{b1, b2} {
		addrs := b.Addrs()
		if len(addrs) != 1 {
			t.Fatalf("Addrs() = %v, want one address", addrs)
		}
		host, port, err := net.SplitHostPort(addrs[0])
		if err != nil {
			t.Fatalf("address %q: %v", addrs[0], err)
		}
		if host != "127.0.0.1" {
			t.Errorf("listening on %q, want loopback 127.0.0.1", host)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p == 0 {
			t.Errorf("port %q is not a bound port", port)
		}
		ports = append(ports, p)

		// It speaks the Kafka protocol: a client gets metadata naming it.
		c, err := sarama.NewClient(addrs, kafkaOpts(b, 1).Sarama())
		if err != nil {
			t.Fatalf("sarama client: %v", err)
		}
		if bs := c.Brokers(); len(bs) != 1 || bs[0].Addr() != addrs[0] {
			t.Errorf("metadata brokers %v, want just %s", brokerAddrs(bs), addrs[0])
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	if ports[0] == ports[1] {
		t.Errorf("two brokers share port %d", ports[0])
	}
}

func brokerAddrs(bs []*sarama.Broker) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Addr())
	}
	return out
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	b := start(t, broker.Options{})
	k := kafkaOpts(b, testkit.Partitions)
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "roundtrip"}); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	sent := produce(t, k, "roundtrip", 20, "v1")
	got := consumeAll(t, k, "roundtrip", len(sent))
	for key, want := range sent {
		if got[key] != want {
			t.Errorf("key %s: consumed %+v, produced %+v", key, got[key], want)
		}
	}
}

// message is where a produced value landed.
type message struct {
	partition int32
	offset    int64
	value     string
}

// produce sends n keyed messages in one batch, with goka's producer
// settings, and returns where each landed, by key.
func produce(t *testing.T, k kafkacfg.Options, topic string, n int, tag string) map[string]message {
	t.Helper()
	p, err := sarama.NewSyncProducer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producer: %v", err)
		}
	}()
	batch := make([]*sarama.ProducerMessage, n)
	for i := range batch {
		key, value := fmt.Sprintf("key-%03d", i), fmt.Sprintf("%s-value-%03d", tag, i)
		batch[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)}
	}
	if err := p.SendMessages(batch); err != nil {
		t.Fatalf("send: %v", err)
	}
	out := map[string]message{}
	for _, m := range batch {
		key, _ := m.Key.Encode()
		value, _ := m.Value.Encode()
		out[string(key)] = message{partition: m.Partition, offset: m.Offset, value: string(value)}
	}
	return out
}

// consumeAll reads every partition of topic from the oldest offset until
// want messages arrived, and returns them by key.
func consumeAll(t *testing.T, k kafkacfg.Options, topic string, want int) map[string]message {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	msgs := make(chan *sarama.ConsumerMessage)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	got := map[string]message{}
	deadline := time.After(15 * time.Second)
	for n := 0; n < want; n++ {
		select {
		case m := <-msgs:
			got[string(m.Key)] = message{partition: m.Partition, offset: m.Offset, value: string(m.Value)}
		case <-deadline:
			t.Fatalf("consumed %d of %d messages from %s", n, want, topic)
		}
	}
	return got
}

// TestRestartKeepsState: a broker restarted on the same data directory and
// address still has the topic with its partitions and config, its messages
// at the same offsets, and committed group offsets. The test holds the port
// throughout and lends it to each broker in turn, so nothing else can take
// it between the two.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	port := testkit.HoldPort(t)
	b := start(t, broker.Options{DataDir: dir, Listener: port.Listener()})
	k := kafkaOpts(b, testkit.Partitions)
	if got := b.Addrs(); len(got) != 1 || got[0] != port.Addr().String() {
		t.Fatalf("broker on %v, want the held port %s", got, port.Addr())
	}
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "kept", Compacted: true}); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	sent := produce(t, k, "kept", 10, "before")
	commitOffset(t, k, "kept-group", "kept", 0, 7)
	b.Close()

	b = start(t, broker.Options{DataDir: dir, Listener: port.Listener()})
	if got := b.Addrs(); len(got) != 1 || got[0] != k.Brokers[0] {
		t.Fatalf("restarted broker on %v, want %s", got, k.Brokers[0])
	}

	admin, err := sarama.NewClusterAdmin(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	if d, ok := topics["kept"]; !ok {
		t.Fatalf("topic lost in the restart; topics: %v", topics)
	} else if d.NumPartitions != testkit.Partitions {
		t.Errorf("topic has %d partitions after restart, want %d", d.NumPartitions, testkit.Partitions)
	}
	if policy := topicConfig(t, admin, "kept", "cleanup.policy"); policy != "compact" {
		t.Errorf("cleanup.policy after restart = %q, want compact", policy)
	}

	got := consumeAll(t, k, "kept", len(sent))
	for key, want := range sent {
		if got[key] != want {
			t.Errorf("key %s after restart: %+v, want %+v", key, got[key], want)
		}
	}
	if off := fetchOffset(t, k, "kept-group", "kept", 0); off != 7 {
		t.Errorf("committed offset after restart = %d, want 7", off)
	}

	// The restarted broker keeps working: new messages get later offsets.
	more := produce(t, k, "kept", 10, "after")
	for key, m := range more {
		if m.offset <= sent[key].offset {
			t.Errorf("key %s: new offset %d does not follow %d", key, m.offset, sent[key].offset)
		}
	}
}

// commitOffset commits offset for a group without members, as a standalone
// consumer (generation -1) would.
func commitOffset(t *testing.T, k kafkacfg.Options, group, topic string, partition int32, offset int64) {
	t.Helper()
	c, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer c.Close()
	coord, err := c.Coordinator(group)
	if err != nil {
		t.Fatalf("coordinator of %s: %v", group, err)
	}
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: group, ConsumerGroupGeneration: -1, RetentionTime: -1}
	req.AddBlock(topic, partition, offset, 0, "")
	resp, err := coord.CommitOffset(req)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if kerr := resp.Errors[topic][partition]; kerr != sarama.ErrNoError {
		t.Fatalf("commit %s/%d: %v", topic, partition, kerr)
	}
}

func fetchOffset(t *testing.T, k kafkacfg.Options, group, topic string, partition int32) int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err != nil {
		t.Fatalf("list group offsets: %v", err)
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil || blk.Err != sarama.ErrNoError {
		t.Fatalf("group %s offset block %+v", group, blk)
	}
	return blk.Offset
}

func topicConfig(t *testing.T, admin sarama.ClusterAdmin, topic, key string) string {
	t.Helper()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{key}})
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

// TestCompaction: with a short CompactionInterval, a compacted topic really
// drops superseded values.
func TestCompaction(t *testing.T) {
	b := start(t, broker.Options{CompactionInterval: 100 * time.Millisecond})
	k := kafkaOpts(b, 1)
	if err := k.EnsureTopics(kafkacfg.Topic{Name: "compacted", Compacted: true}); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	p, err := sarama.NewSyncProducer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*sarama.ProducerMessage, 50)
	for i := range batch {
		batch[i] = &sarama.ProducerMessage{Topic: "compacted", Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(strconv.Itoa(i))}
	}
	// Two batches: the broker never cleans the last (active) one.
	for _, b := range [][]*sarama.ProducerMessage{batch[:49], batch[49:]} {
		if err := p.SendMessages(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		c, err := sarama.NewClient(k.Brokers, k.Sarama())
		if err != nil {
			return err
		}
		defer c.Close()
		newest, err := c.GetOffset("compacted", 0, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		if newest != 50 {
			return fmt.Errorf("high watermark %d, want 50", newest)
		}
		n, err := countFrom(t, k, "compacted", newest)
		if err != nil {
			return err
		}
		if n >= 50 {
			return fmt.Errorf("still %d records for one key", n)
		}
		return nil
	})
}

// countFrom counts the records from the log start to the high watermark hw.
func countFrom(t *testing.T, k kafkacfg.Options, topic string, hw int64) (int, error) {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return 0, err
	}
	defer pc.AsyncClose()
	n := 0
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return 0, errors.New("partition consumer closed")
			}
			n++
			if m.Offset == hw-1 {
				return n, nil
			}
		case err := <-pc.Errors():
			return 0, err
		case <-timeout:
			return 0, fmt.Errorf("did not reach offset %d", hw-1)
		}
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	b, err := broker.Start(broker.Options{Port: port})
	if err == nil {
		b.Close()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name port %d", err, port)
	}
}

// A broker that cannot start closes the listener it was given.
func TestStartFailureClosesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if b, err := broker.Start(broker.Options{Listener: ln, CompactionInterval: -time.Second}); err == nil {
		b.Close()
		t.Fatal("Start with a negative compaction interval succeeded")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on the listener after a failed Start = %v, want net.ErrClosed", err)
	}
}

func TestRunClosesOnCancel(t *testing.T) {
	b := start(t, broker.Options{})
	addr := b.Addrs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, ok := range []broker.Options{{}, {Port: 65535, CompactionInterval: time.Second, DataDir: "x", SyncWrites: true}, {Listener: stubListener{}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	tests := []struct {
		name string
		opts broker.Options
		want []string
	}{
		{"negative port", broker.Options{Port: -1}, []string{"port -1 is outside 0..65535"}},
		{"port too large", broker.Options{Port: 65536}, []string{"port 65536 is outside 0..65535"}},
		{"negative compaction interval", broker.Options{CompactionInterval: -time.Second}, []string{"compaction interval -1s is negative"}},
		{"port and listener", broker.Options{Port: 9092, Listener: stubListener{}}, []string{"broker port 9092 and a listener are both set"}},
		{"everything broken", broker.Options{Port: 70000, CompactionInterval: -time.Millisecond},
			[]string{"port 70000 is outside", "compaction interval -1ms is negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			checkJoined(t, err, tt.want...)
			if _, serr := broker.Start(tt.opts); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Start = %v, want Validate's error", serr)
			}
		})
	}
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

// stubListener is a listener that is never served.
type stubListener struct{ net.Listener }

func (stubListener) Close() error { return nil }
