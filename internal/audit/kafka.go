package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
)

// offsets are per-partition offsets of one topic.
type offsets map[int32]int64

// cluster reads topics and group offsets.
type cluster struct {
	client   sarama.Client
	consumer sarama.Consumer
	admin    sarama.ClusterAdmin
}

func dial(o Options) (*cluster, error) {
	cfg := o.Kafka.Sarama()
	cfg.ClientID = "skuflow-audit"
	client, err := sarama.NewClient(o.Kafka.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %v: %w", o.Kafka.Brokers, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		consumer.Close()
		client.Close()
		return nil, err
	}
	return &cluster{client: client, consumer: consumer, admin: admin}, nil
}

func (c *cluster) close() error {
	// The admin closes the client it was made from.
	return errors.Join(c.consumer.Close(), c.admin.Close())
}

// bounds returns the oldest and the next offset (head) of every partition
// of topic.
func (c *cluster) bounds(topic string) (oldest, head offsets, err error) {
	if err := c.client.RefreshMetadata(topic); err != nil {
		return nil, nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	parts, err := c.client.Partitions(topic)
	if err != nil {
		return nil, nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	oldest, head = offsets{}, offsets{}
	for _, p := range parts {
		if oldest[p], err = c.client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
			return nil, nil, fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
		if head[p], err = c.client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			return nil, nil, fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
	}
	return oldest, head, nil
}

// read returns the messages of topic in [from, to) per partition, each
// partition's in offset order, partitions in order; read counts them.
func (c *cluster) read(ctx context.Context, topic string, from, to offsets, read *atomic.Int64) ([]Message, error) {
	parts := make([][]Message, len(to))
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	for p, end := range to {
		start := max(from[p], 0)
		if end <= start {
			continue
		}
		g.Go(func() error {
			pc, err := c.consumer.ConsumePartition(topic, p, start)
			if err != nil {
				return fmt.Errorf("read %s partition %d from %d: %w", topic, p, start, err)
			}
			defer pc.Close()
			var got []Message
		loop:
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case err := <-pc.Errors():
					return fmt.Errorf("read %s partition %d: %w", topic, p, err)
				case m := <-pc.Messages():
					if m.Offset < end {
						got = append(got, Message{Topic: topic, Partition: p, Offset: m.Offset, Time: m.Timestamp.UTC(), Key: string(m.Key), Value: m.Value})
						read.Add(1)
					}
					if m.Offset+1 >= end {
						break loop
					}
				}
			}
			mu.Lock()
			parts[p] = got
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Message
	for _, ms := range parts {
		out = append(out, ms...)
	}
	return out, nil
}

// committed returns group's committed offsets on topic (-1: none).
func (c *cluster) committed(group, topic string, parts offsets) (offsets, error) {
	ps := make([]int32, 0, len(parts))
	for p := range parts {
		ps = append(ps, p)
	}
	out := offsets{}
	for _, p := range ps {
		out[p] = -1
	}
	resp, err := c.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if errors.Is(err, sarama.ErrGroupIDNotFound) || (err == nil && resp.Err == sarama.ErrGroupIDNotFound) {
		return out, nil // the group never committed
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, err)
	}
	if resp.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", group, topic, resp.Err)
	}
	for _, p := range ps {
		if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError {
			out[p] = b.Offset
		}
	}
	return out, nil
}

// settle waits up to d until group has committed at least want on every
// partition of topic that has messages (want > oldest), and returns its
// committed offsets.
func (c *cluster) settle(ctx context.Context, group, topic string, oldest, want offsets, d time.Duration) (offsets, error) {
	deadline := time.Now().Add(d)
	for {
		got, err := c.committed(group, topic, want)
		if err != nil {
			return nil, err
		}
		behind := false
		for p, w := range want {
			if w > oldest[p] && got[p] < w {
				behind = true
			}
		}
		if !behind || time.Now().After(deadline) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
