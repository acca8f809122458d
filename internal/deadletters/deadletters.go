// Package deadletters reads the dead-letter topic for operators and
// re-drives dead letters to their original topics after a fix (`skuflow
// deadletter list` and `skuflow deadletter redrive`).
//
// Redrive is idempotent across runs: after re-sending a letter's original
// key and bytes (with the original message timestamp, so the processors
// see the original event time) it records the letter, keyed by the input
// it holds (schema.RedriveKey: group, topic, partition, offset), in the
// compacted schema.DeadLetterRedriven topic; a later redrive skips every
// letter of an input recorded there, including a second letter of the same
// input. The re-sent message carries the header
// schema.HeaderRedrivenFrom. A crash between the re-send and the record
// re-sends that one letter on the next run: the domain's dedup by event id
// and last-writer-wins levels absorb it (at-least-once, as goka is).
//
// It must not import processors (it is an edge: it knows topics from the
// schema only), and reads no flags: cmd/skuflow fills the options.
//
//	letters, err := deadletters.List(ctx, deadletters.ListOptions{Kafka: k,
//		Filter: deadletters.Filter{Since: time.Now().Add(-time.Hour), Reason: "unknown_channel"}})
package deadletters

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Filter selects dead letters; the zero value selects all.
type Filter struct {
	// Since keeps letters dead-lettered at or after it (the dead-letter
	// record's timestamp); zero: from the start of retention.
	Since time.Time
	// Reason keeps letters whose reason class (schema.ReasonClasses) is
	// Reason, or whose reason text contains it (case-insensitive).
	Reason string
	// Topic keeps letters read from this original topic.
	Topic string
}

// Validate reports every problem with the filter.
func (f Filter) Validate() error {
	if f.Topic == "" {
		return nil
	}
	if t, ok := schema.Lookup(f.Topic); !ok || !redrivable(t) {
		return fmt.Errorf("topic %q is not one of skuflow's input streams (%s)", f.Topic, strings.Join(inputStreams(), ", "))
	}
	return nil
}

func (f Filter) match(l Letter) bool {
	if !f.Since.IsZero() && l.DeadLetteredAt.Before(f.Since) {
		return false
	}
	if f.Topic != "" && l.Topic != f.Topic {
		return false
	}
	if f.Reason != "" && l.Class != f.Reason && !strings.Contains(strings.ToLower(l.Reason), strings.ToLower(f.Reason)) {
		return false
	}
	return true
}

// Letter is one record of the dead-letter topic.
type Letter struct {
	// Partition and Offset place the letter in the dead-letter topic.
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	// DeadLetteredAt is the dead-letter record's timestamp.
	DeadLetteredAt time.Time `json:"dead_lettered_at"`
	// Topic, OriginalPartition and OriginalOffset are where the message was read.
	Topic             string `json:"topic"`
	OriginalPartition int32  `json:"original_partition"`
	OriginalOffset    int64  `json:"original_offset"`
	Group             string `json:"group"`
	// MessageTime is the original message's timestamp (its event time).
	MessageTime time.Time `json:"message_time"`
	Key         []byte    `json:"key"`
	Value       []byte    `json:"value"`
	Reason      string    `json:"reason"`
	// Class is the reason's class (the header; for older letters, the
	// reason text classified).
	Class string `json:"class"`
	// Redriven: the letter is recorded in schema.DeadLetterRedriven.
	Redriven bool `json:"redriven"`
	// RedriveOf is set on a letter of a re-driven message that was
	// rejected again: the letter (DeadLetterKey) it was re-driven from.
	RedriveOf string `json:"redrive_of,omitempty"`
}

// Summary describes the original value: its protobuf as JSON when the
// original topic's codec decodes it, else its length and first bytes in hex.
func (l Letter) Summary() string {
	if l.Value == nil {
		return "no value (tombstone)"
	}
	if t, ok := schema.Lookup(l.Topic); ok {
		if v, err := t.Codec.Decode(l.Value); err == nil {
			if m, ok := v.(proto.Message); ok {
				if b, err := (protojson.MarshalOptions{}).Marshal(m); err == nil {
					return string(b)
				}
			}
		}
	}
	head := l.Value[:min(len(l.Value), 16)]
	more := ""
	if len(head) < len(l.Value) {
		more = "..."
	}
	return fmt.Sprintf("%d bytes, undecodable: %s%s", len(l.Value), hex.EncodeToString(head), more)
}

// ListOptions configure List.
type ListOptions struct {
	Kafka  kafkacfg.Options
	Filter Filter
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o ListOptions) Validate() error { return errors.Join(o.Kafka.Validate(), o.Filter.Validate()) }

// List reads the dead-letter topic up to its head when called and returns
// the letters the filter selects, by partition and offset, each marked
// Redriven or not.
func List(ctx context.Context, o ListOptions) ([]Letter, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, err := sarama.NewClient(o.Kafka.Brokers, o.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(o.Kafka.Brokers, ","), err)
	}
	defer c.Close()
	return list(ctx, c, o.Filter)
}

func list(ctx context.Context, c sarama.Client, f Filter) ([]Letter, error) {
	done, err := redriven(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []Letter
	err = readTopic(ctx, c, string(schema.DeadLetter), f.Since, func(m *sarama.ConsumerMessage) error {
		l, err := decode(m)
		if err != nil {
			return err
		}
		l.Redriven = done[l.redriveKey()]
		if f.match(l) {
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// decode reads one dead-letter record.
func decode(m *sarama.ConsumerMessage) (Letter, error) {
	var dl pb.DeadLetter
	if err := proto.Unmarshal(m.Value, &dl); err != nil {
		return Letter{}, fmt.Errorf("dead letter %d/%d does not decode: %w", m.Partition, m.Offset, err)
	}
	l := Letter{Partition: m.Partition, Offset: m.Offset, DeadLetteredAt: m.Timestamp,
		Topic: dl.GetTopic(), OriginalPartition: dl.GetPartition(), OriginalOffset: dl.GetOffset(), Group: dl.GetGroup(),
		Key: dl.GetKey(), Value: dl.GetValue(), Reason: dl.GetReason()}
	if dl.GetMessageTime() != nil {
		l.MessageTime = dl.GetMessageTime().AsTime()
	}
	for _, h := range m.Headers {
		switch string(h.Key) {
		case schema.HeaderReasonClass:
			l.Class = string(h.Value)
		case schema.HeaderRedrivenFrom:
			l.RedriveOf = string(h.Value)
		}
	}
	if l.Class == "" {
		l.Class = schema.ClassifyReason(l.Reason)
	}
	return l, nil
}

// redriven reads the keys recorded in schema.DeadLetterRedriven.
func redriven(ctx context.Context, c sarama.Client) (map[string]bool, error) {
	done := map[string]bool{}
	err := readTopic(ctx, c, string(schema.DeadLetterRedriven), time.Time{}, func(m *sarama.ConsumerMessage) error {
		if m.Value == nil {
			delete(done, string(m.Key))
		} else {
			done[string(m.Key)] = true
		}
		return nil
	})
	return done, err
}

// idleLimit bounds the wait for the next record of a partition that has
// not reached the head it had when the read began.
const idleLimit = 30 * time.Second

// readTopic calls fn on every record of topic from since (zero: the
// oldest) up to the heads when it is called, partition by partition.
func readTopic(ctx context.Context, c sarama.Client, topic string, since time.Time, fn func(*sarama.ConsumerMessage) error) error {
	parts, err := c.Partitions(topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		return err
	}
	defer cons.Close()
	for _, p := range parts {
		head, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("head of %s/%d: %w", topic, p, err)
		}
		start, err := c.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("start of %s/%d: %w", topic, p, err)
		}
		if !since.IsZero() {
			at, err := c.GetOffset(topic, p, since.UnixMilli())
			if err != nil {
				return fmt.Errorf("offset of %s/%d at %s: %w", topic, p, since.Format(time.RFC3339), err)
			}
			if at < 0 { // no record at or after since
				continue
			}
			start = max(start, at)
		}
		if start >= head {
			continue
		}
		if err := readPartition(ctx, cons, topic, p, start, head, fn); err != nil {
			return err
		}
	}
	return nil
}

func readPartition(ctx context.Context, cons sarama.Consumer, topic string, p int32, start, head int64, fn func(*sarama.ConsumerMessage) error) error {
	pc, err := cons.ConsumePartition(topic, p, start)
	if err != nil {
		return fmt.Errorf("read %s/%d from %d: %w", topic, p, start, err)
	}
	defer pc.Close()
	idle := time.NewTimer(idleLimit)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return fmt.Errorf("read %s/%d: no record for %s before offset %d", topic, p, idleLimit, head)
		case err := <-pc.Errors():
			return fmt.Errorf("read %s/%d: %w", topic, p, err)
		case m := <-pc.Messages():
			if err := fn(m); err != nil {
				return err
			}
			if m.Offset >= head-1 {
				return nil
			}
			idle.Reset(idleLimit)
		}
	}
}

// redrivable reports whether t is a topic that redrive may write to: a
// stream the groups read (not a table, a change feed or the dead-letter
// topic).
func redrivable(t schema.Topic) bool {
	return !t.Compacted && t.Name != string(schema.DeadLetter)
}

func inputStreams() []string {
	var names []string
	for _, t := range schema.Topics() {
		if redrivable(t) {
			names = append(names, t.Name)
		}
	}
	return names
}

// record is the letter as the dead-letter topic holds it.
func (l Letter) record() *pb.DeadLetter {
	dl := &pb.DeadLetter{Topic: l.Topic, Partition: l.OriginalPartition, Offset: l.OriginalOffset, Key: l.Key, Value: l.Value,
		Reason: l.Reason, Group: l.Group}
	if !l.MessageTime.IsZero() {
		dl.MessageTime = timestamppb.New(l.MessageTime)
	}
	return dl
}

// redriveKey is l's record key in schema.DeadLetterRedriven.
func (l Letter) redriveKey() string {
	return schema.RedriveKey(l.Group, l.Topic, l.OriginalPartition, l.OriginalOffset)
}
