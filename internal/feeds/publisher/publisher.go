// Package publisher ships a feeds outbox to the `supply` topic: in sequence
// order, with acks=all, keyed by SKU and partitioned with goka's FNV-1a
// hasher, and it moves the outbox checkpoint only over records the cluster
// acknowledged. After a restart it resumes after the checkpoint; after a
// rewind (outbox.Rewind) it starts again from the new checkpoint. A batch
// that fails is sent again whole: the stock processor is idempotent, and
// every row carries its outbox sequence as the stock level's sequence.
//
// This package must not import gateway/.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Options configure a Publisher.
type Options struct {
	Kafka  kafkacfg.Options
	Outbox *outbox.Outbox
	// Topic to publish to (default: supply).
	Topic string
	// BatchSize is how many records are sent before waiting for their
	// acknowledgement and checkpointing (default 8192).
	BatchSize int
	// MaxBackoff bounds the wait between retries of a failed batch
	// (default 5s).
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	errs = append(errs, o.Kafka.Validate())
	if o.Outbox == nil {
		errs = append(errs, errors.New("publisher: no outbox"))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("publisher: batch size %d is negative", o.BatchSize))
	}
	if o.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("publisher: max backoff %s is negative", o.MaxBackoff))
	}
	return errors.Join(errs...)
}

// SaramaConfig is the producer configuration: skuflow's cluster settings
// with acks=all, goka's partitioner, and a short linger so a batch is not
// held back waiting for more.
func SaramaConfig(k kafkacfg.Options) *sarama.Config {
	c := k.Sarama()
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = schema.Partitioner()
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	return c
}

// Publisher ships the outbox.
type Publisher struct {
	o        Options
	log      *slog.Logger
	producer sarama.SyncProducer
}

// New connects the producer.
func New(o Options) (*Publisher, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Topic == "" {
		o.Topic = string(schema.Supply)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 8192
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := sarama.NewSyncProducer(o.Kafka.Brokers, SaramaConfig(o.Kafka))
	if err != nil {
		return nil, fmt.Errorf("publisher: connect: %w", err)
	}
	return &Publisher{o: o, log: log.With("component", "outbox-publisher"), producer: p}, nil
}

// Message turns an outbox record into its supply topic message; ok is
// false for records that are not published (feed ends).
func Message(topic string, rec *pb.OutboxRecord) (*sarama.ProducerMessage, bool, error) {
	sl := rec.GetStockLevel()
	if sl == nil {
		return nil, false, nil
	}
	sl = proto.Clone(sl).(*pb.StockLevel)
	sl.Sequence = rec.GetSequence()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: sl}})
	if err != nil {
		return nil, false, err
	}
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(sl.GetSku()), Value: sarama.ByteEncoder(b),
		Timestamp: rec.GetReceivedAt().AsTime()}, true, nil
}

// Run publishes until ctx is cancelled or the outbox is closed. A failure
// is logged and publishing starts again from the checkpoint after an
// exponential backoff (100ms doubling to MaxBackoff, no jitter); a rewind
// starts again at once, with the backoff reset.
func (p *Publisher) Run(ctx context.Context) error {
	defer p.producer.Close()
	for ctx.Err() == nil {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.Multiplier, b.RandomizationFactor, b.MaxInterval = 100*time.Millisecond, 2, 0, p.o.MaxBackoff
		var cp uint64
		_, err := backoff.Retry(ctx, func() (struct{}, error) {
			var gen uint64
			cp, gen = p.o.Outbox.Checkpoint()
			err := p.from(ctx, cp, gen)
			switch {
			case ctx.Err() != nil:
				return struct{}{}, backoff.Permanent(ctx.Err())
			case errors.Is(err, outbox.ErrRewound), errors.Is(err, outbox.ErrClosed):
				return struct{}{}, backoff.Permanent(err)
			case err == nil: // from returns only errors; retry rather than stop
				err = errors.New("publishing stopped without an error")
			}
			return struct{}{}, err
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, wait time.Duration) {
			p.log.Warn("publishing failed; retrying from the checkpoint", "error", err, "checkpoint", cp, "retry_in", wait)
		}))
		if !errors.Is(err, outbox.ErrRewound) {
			// ErrClosed, or ctx is done: nothing failed that Run reports.
			return nil
		}
	}
	return nil
}

// from publishes the records after checkpoint cp until ctx ends, the
// checkpoint is rewound (ErrRewound) or a batch fails.
func (p *Publisher) from(ctx context.Context, cp, gen uint64) error {
	ob := p.o.Outbox
	rd := ob.NewReader(cp + 1)
	defer rd.Close()
	for {
		changed := ob.Changed()
		recs, err := rd.Read(p.o.BatchSize)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			if err := rd.Wait(ctx, changed); err != nil {
				return err
			}
			if _, g := ob.Checkpoint(); g != gen {
				return outbox.ErrRewound
			}
			continue
		}
		msgs := make([]*sarama.ProducerMessage, 0, len(recs))
		for _, rec := range recs {
			m, ok, err := Message(p.o.Topic, rec)
			if err != nil {
				return fmt.Errorf("encode record %d: %w", rec.GetSequence(), err)
			}
			if ok {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) > 0 {
			if err := p.producer.SendMessages(msgs); err != nil {
				return fmt.Errorf("send %d records (%d..%d): %w", len(msgs), recs[0].GetSequence(), recs[len(recs)-1].GetSequence(), summarize(err))
			}
		}
		if err := ob.Commit(gen, recs[len(recs)-1].GetSequence()); err != nil {
			return err
		}
	}
}

// summarize keeps the first of many producer errors.
func summarize(err error) error {
	var pe sarama.ProducerErrors
	if errors.As(err, &pe) && len(pe) > 0 {
		return fmt.Errorf("%d failed, first: %w", len(pe), pe[0].Err)
	}
	return err
}
