// Package kafkacfg turns skuflow's cluster options into goka and sarama
// configuration, so every processor, view and emitter talks to Kafka the same
// way. It makes no assumption about the embedded broker: the same settings
// are used against a real cluster.
package kafkacfg

import (
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/skuflow/skuflow/schema"
)

// Options say how to reach the cluster and how to create topics on it.
type Options struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// Partitions for topics skuflow creates. Every SKU-keyed topic must have
	// the same count (goka co-partitioning).
	Partitions int
	// Replication factor for topics skuflow creates: 1 on a one-broker
	// cluster, 3 on a real one.
	Replication int
	// ClientID names this process in broker logs.
	ClientID string
	// StreamRetention is how long non-compacted topics skuflow creates keep
	// messages (supply, dead letters): long enough to replay after an outage.
	// Zero means DefaultStreamRetention.
	StreamRetention time.Duration
}

// DefaultStreamRetention keeps stream topics for a week.
const DefaultStreamRetention = 7 * 24 * time.Hour

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers given"))
	}
	for _, b := range o.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("broker address %q is not host:port", b))
		}
	}
	if o.Partitions < 1 || o.Partitions > 10000 {
		errs = append(errs, fmt.Errorf("partitions %d is outside 1..10000", o.Partitions))
	}
	if o.Replication < 1 || o.Replication > 32 {
		errs = append(errs, fmt.Errorf("replication factor %d is outside 1..32", o.Replication))
	}
	if o.StreamRetention < 0 {
		errs = append(errs, fmt.Errorf("stream retention %s is negative", o.StreamRetention))
	}
	return errors.Join(errs...)
}

// Sarama is goka's default client configuration with skuflow's changes:
// streams start at the oldest offset (a new group must read what was emitted
// before it joined, and replays start from the beginning), and heartbeats are
// short so rebalances finish quickly.
func (o Options) Sarama() *sarama.Config {
	c := goka.DefaultConfig()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	// goka flushes produced batches every 100 ms; a PlaceOrder crosses
	// three processors, so that alone would cost ~300 ms. Batches still
	// fill up under load (Flush.Bytes).
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	if o.ClientID != "" {
		c.ClientID = o.ClientID
	}
	return c
}

// TopicManagerConfig sets the replication factor for topics goka creates.
func (o Options) TopicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = o.Replication
	tmc.Stream.Replication = o.Replication
	tmc.Stream.Retention = o.StreamRetention
	if tmc.Stream.Retention == 0 {
		tmc.Stream.Retention = DefaultStreamRetention
	}
	return tmc
}

func (o Options) topicManagerBuilder() goka.TopicManagerBuilder {
	return goka.TopicManagerBuilderWithConfig(o.Sarama(), o.TopicManagerConfig())
}

// ProcessorOptions configure a goka processor.
//
// goka's *WithConfig builders write the client id (and the producer's
// partitioner) into the config they are given each time they build a
// client, while clients built earlier read it: every client gets a config
// of its own, or the race detector sees a processor's consumer group
// rebalancing while its lookup views connect.
func (o Options) ProcessorOptions() []goka.ProcessorOption {
	return []goka.ProcessorOption{
		goka.WithTopicManagerBuilder(o.topicManagerBuilder()),
		goka.WithConsumerGroupBuilder(func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
			return goka.ConsumerGroupBuilderWithConfig(o.ProcessorConsumerSarama())(brokers, group, clientID)
		}),
		goka.WithConsumerSaramaBuilder(o.consumerBuilder()),
		goka.WithProducerBuilder(func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
			return goka.ProducerBuilderWithConfig(o.Sarama())(brokers, clientID, hasher)
		}),
	}
}

// ProcessorFetchDefault is the per-partition fetch size of processors'
// consumer groups (sarama's default is 1 MiB).
//
// sarama fetches all of a broker's partitions in one request and sends the
// next only when every partition has handed over its batch, so a demand
// message behind a supply backlog waits for whole rounds of supply batches:
// with 1 MiB per partition, PlaceOrder's p99 during a 300,000-event supply
// flood was 4.7-11.7 s. With 32 KiB each round is short, so demand partitions
// are fetched far more often: p99 0.61-0.90 s, with stock and goka-sum throughput
// unchanged within the benchmark's noise (BENCHMARKS.md, "Checkout during a
// flood"). A message larger than this is still read: sarama doubles the
// fetch size up to Consumer.Fetch.Max for it.
const ProcessorFetchDefault = 32 << 10

// ProcessorConsumerSarama is the client configuration of processors'
// consumer groups (their input streams): Sarama with ProcessorFetchDefault.
// Table recovery, views and producers keep Sarama's settings: they read or
// write bulk data where large fetches pay.
func (o Options) ProcessorConsumerSarama() *sarama.Config {
	c := o.Sarama()
	c.Consumer.Fetch.Default = ProcessorFetchDefault
	return c
}

func (o Options) consumerBuilder() goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		return goka.SaramaConsumerBuilderWithConfig(o.Sarama())(brokers, clientID)
	}
}

// ViewChannelBuffer is ...
const ViewChannelBuffer = 16384

// ViewSarama is the client configuration of views' consumers.
func (o Options) ViewSarama() *sarama.Config {
	c := o.Sarama()
	c.ChannelBufferSize = ViewChannelBuffer
	return c
}

func (o Options) viewConsumerBuilder() goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		return goka.SaramaConsumerBuilderWithConfig(o.ViewSarama())(brokers, clientID)
	}
}

// ViewOptions configure a goka view.
func (o Options) ViewOptions() []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewTopicManagerBuilder(o.topicManagerBuilder()),
		goka.WithViewConsumerSaramaBuilder(o.viewConsumerBuilder()),
		goka.WithViewAutoReconnect(),
	}
}

// EmitterOptions configure a goka emitter.
func (o Options) EmitterOptions() []goka.EmitterOption {
	return []goka.EmitterOption{
		goka.WithEmitterTopicManagerBuilder(o.topicManagerBuilder()),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(o.Sarama())),
	}
}

// ReliableEmitterOptions configure an emitter whose writes must survive a
// broker loss once acknowledged (acks=all). Each call builds its own sarama
// config: goka writes into the config it is given.
func (o Options) ReliableEmitterOptions() []goka.EmitterOption {
	c := o.Sarama()
	c.Producer.RequiredAcks = sarama.WaitForAll
	return []goka.EmitterOption{
		goka.WithEmitterTopicManagerBuilder(o.topicManagerBuilder()),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(c)),
	}
}

// LowLatencyEmitterOptions configure an emitter for request paths (a
// gateway waiting on the answer): batches are sent at once instead of every
// 100 ms.
func (o Options) LowLatencyEmitterOptions() []goka.EmitterOption {
	c := o.Sarama()
	c.Producer.Flush.Frequency = 0
	c.Producer.Flush.Bytes = 0
	c.Producer.Flush.Messages = 0
	return []goka.EmitterOption{
		goka.WithEmitterTopicManagerBuilder(o.topicManagerBuilder()),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(c)),
	}
}

// Topic is a topic skuflow needs to exist (see schema.Topics); only Name
// and Compacted matter here.
type Topic = schema.Topic

// EnsureTopics creates the topics that do not exist yet, with Partitions
// partitions, and checks that existing ones have that many and that
// compacted ones really are compacted (a table changelog with
// cleanup.policy=delete would silently lose SKUs).
func (o Options) EnsureTopics(topics ...Topic) error {
	tm, err := goka.NewTopicManager(o.Brokers, o.Sarama(), o.TopicManagerConfig())
	if err != nil {
		return fmt.Errorf("connect to brokers %s: %w", strings.Join(o.Brokers, ","), err)
	}
	var errs []error
	ensure := func(t Topic) error {
		if t.Compacted {
			return tm.EnsureTableExists(t.Name, o.Partitions)
		}
		return tm.EnsureStreamExists(t.Name, o.Partitions)
	}
	for _, t := range topics {
		err = ensure(t)
		if err != nil && strings.Contains(err.Error(), "already exists") {
			// Another process created it between our check and our create:
			// check the topic it made.
			err = ensure(t)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, err))
			continue
		}
		n, err := tm.Partitions(t.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, err))
		} else if len(n) != o.Partitions {
			errs = append(errs, fmt.Errorf("topic %s has %d partitions, skuflow is configured for %d: SKU-keyed topics must be co-partitioned", t.Name, len(n), o.Partitions))
		}
	}
	if err := tm.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, o.checkCompacted(topics))
	}
	return errors.Join(errs...)
}

func (o Options) checkCompacted(topics []Topic) error {
	admin, err := sarama.NewClusterAdmin(o.Brokers, o.Sarama())
	if err != nil {
		return fmt.Errorf("connect to brokers %s: %w", strings.Join(o.Brokers, ","), err)
	}
	defer admin.Close()
	var errs []error
	for _, t := range topics {
		if !t.Compacted {
			continue
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: t.Name, ConfigNames: []string{"cleanup.policy"}})
		if err != nil {
			errs = append(errs, fmt.Errorf("topic %s: describe config: %w", t.Name, err))
			continue
		}
		for _, e := range entries {
			if e.Name == "cleanup.policy" && !strings.Contains(e.Value, "compact") {
				errs = append(errs, fmt.Errorf("topic %s has cleanup.policy=%s, skuflow needs it compacted: alter it to compact", t.Name, e.Value))
			}
		}
	}
	return errors.Join(errs...)
}

// GokaLogger routes goka's printf logging into log at debug level; pass it
// to goka.WithLogger, goka.WithViewLogger and the like.
func GokaLogger(log *slog.Logger) interface {
	Print(...any)
	Println(...any)
	Printf(string, ...any)
} {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return gokaLogger{log}
}

type gokaLogger struct{ log *slog.Logger }

func (g gokaLogger) Print(args ...any)   { g.log.Debug(fmt.Sprint(args...), "component", "goka") }
func (g gokaLogger) Println(args ...any) { g.log.Debug(fmt.Sprint(args...), "component", "goka") }
func (g gokaLogger) Printf(format string, args ...any) {
	g.log.Debug(fmt.Sprintf(format, args...), "component", "goka")
}
