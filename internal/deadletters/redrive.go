package deadletters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/schema"
)

// RedriveOptions configure Redrive.
type RedriveOptions struct {
	Kafka kafkacfg.Options
	// Filter selects the letters; Filter.Since is required, so that a
	// redrive is always scoped to the letters after a fix.
	Filter Filter
	// DryRun reports what would be re-sent and sends nothing.
	DryRun bool
	// Again re-sends letters of re-driven messages that were rejected
	// again (Letter.RedriveOf), after a further fix; without it they are
	// skipped, so redrives never loop.
	Again  bool
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o RedriveOptions) Validate() error {
	errs := []error{o.Kafka.Validate(), o.Filter.Validate()}
	if o.Filter.Since.IsZero() {
		errs = append(errs, errors.New("redrive needs a since time: the letters dead-lettered after the fix took effect"))
	}
	return errors.Join(errs...)
}

// Action is what Redrive did, or would do, with one letter.
type Action string

const (
	// Sent: re-sent to its original topic and recorded.
	Sent Action = "sent"
	// WouldSend: a dry run's Sent.
	WouldSend Action = "would-send"
	// AlreadyRedriven: recorded by an earlier redrive; nothing sent.
	AlreadyRedriven Action = "already-redriven"
	// Skipped: nothing to re-send (a tombstone) or not a stream skuflow reads.
	Skipped Action = "skipped"
)

// Redriven is one letter and what Redrive did with it.
type Redriven struct {
	Letter Letter `json:"letter"`
	Action Action `json:"action"`
	// Why explains a Skipped letter.
	Why string `json:"why,omitempty"`
}

// Report is the result of a redrive.
type Report struct {
	Letters []Redriven `json:"letters"`
	// Counts by action.
	Counts map[Action]int `json:"counts"`
}

// Redrive re-sends the original key and value of each selected letter not
// redriven before to its original topic (placed by key as every skuflow
// producer places it, with the original message timestamp and the header
// schema.HeaderRedrivenFrom), then records the letter in
// schema.DeadLetterRedriven, so a second redrive of the same letters sends
// nothing.
func Redrive(ctx context.Context, o RedriveOptions) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !o.DryRun {
		// The marker topic may be new to a cluster set up before it existed.
		if err := o.Kafka.EnsureTopics(mustTopic(string(schema.DeadLetterRedriven))); err != nil {
			return Report{}, err
		}
	}
	c, err := sarama.NewClient(o.Kafka.Brokers, o.Kafka.Sarama())
	if err != nil {
		return Report{}, fmt.Errorf("connect to %s: %w", strings.Join(o.Kafka.Brokers, ","), err)
	}
	defer c.Close()
	letters, err := list(ctx, c, o.Filter)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Counts: map[Action]int{}}
	var prod sarama.SyncProducer
	for _, l := range letters {
		r := Redriven{Letter: l}
		t, known := schema.Lookup(l.Topic)
		switch {
		case l.Redriven:
			r.Action = AlreadyRedriven
		case l.RedriveOf != "" && !o.Again:
			r.Action, r.Why = Skipped, "rejected again when re-driven from letter "+l.RedriveOf+" (--again re-sends it after a further fix)"
		case l.Value == nil:
			r.Action, r.Why = Skipped, "no value (a tombstone): nothing to re-send"
		case !known || !redrivable(t):
			r.Action, r.Why = Skipped, fmt.Sprintf("original topic %q is not a stream skuflow reads", l.Topic)
		case o.DryRun:
			r.Action = WouldSend
		default:
			if prod == nil {
				if prod, err = producer(o.Kafka); err != nil {
					return rep, err
				}
				defer prod.Close()
			}
			if err := send(prod, l); err != nil {
				return rep, err
			}
			r.Action = Sent
			log.Info("redrove dead letter", "letter", schema.DeadLetterKey(l.Partition, l.Offset), "topic", l.Topic, "key", string(l.Key), "class", l.Class)
		}
		rep.Letters = append(rep.Letters, r)
		rep.Counts[r.Action]++
	}
	return rep, nil
}

func mustTopic(name string) schema.Topic {
	t, ok := schema.Lookup(name)
	if !ok {
		panic("schema lacks topic " + name)
	}
	return t
}

func producer(k kafkacfg.Options) (sarama.SyncProducer, error) {
	cfg := k.Sarama()
	cfg.Producer.Partitioner = schema.Partitioner()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	p, err := sarama.NewSyncProducer(k.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("redrive producer: %w", err)
	}
	return p, nil
}

// send re-sends l, then records it: at-least-once (see the package doc).
func send(p sarama.SyncProducer, l Letter) error {
	from := schema.DeadLetterKey(l.Partition, l.Offset)
	msg := &sarama.ProducerMessage{Topic: l.Topic, Value: sarama.ByteEncoder(l.Value), Timestamp: l.MessageTime,
		Headers: []sarama.RecordHeader{{Key: []byte(schema.HeaderRedrivenFrom), Value: []byte(from)}}}
	if l.Key != nil {
		msg.Key = sarama.ByteEncoder(l.Key)
	}
	if _, _, err := p.SendMessage(msg); err != nil {
		return fmt.Errorf("re-send dead letter %s to %s: %w", from, l.Topic, err)
	}
	marker, err := schema.DeadLetterCodec.Encode(l.record())
	if err != nil {
		return err
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(schema.DeadLetterRedriven), Key: sarama.StringEncoder(l.redriveKey()),
		Value: sarama.ByteEncoder(marker)}); err != nil {
		return fmt.Errorf("record dead letter %s as redriven (it was re-sent; a later redrive re-sends it once more): %w", from, err)
	}
	return nil
}
