package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/schema"
)

// GroupTopics is a skuflow processor group with the streams it consumes
// (its committed offsets are on these) and the table it persists.
type GroupTopics struct {
	Group  string
	Inputs []string
	Table  string
}

// groupTopics mirrors the processors' Define graphs (input streams and group
// table); TestGroupsAreTheGraphs keeps it equal to them. ops is an edge and
// may not import the processors.
var groupTopics = []GroupTopics{
	{Group: string(schema.StockGroup), Inputs: []string{string(schema.Supply), string(schema.SkuPolicies), string(schema.StockTicks), string(schema.Demand)}, Table: string(schema.StockTable)},
	{Group: string(schema.PoliciesGroup), Inputs: []string{string(schema.Policies)}, Table: string(schema.PoliciesTable)},
	{Group: string(schema.OrdersGroup), Inputs: []string{string(schema.Orders), string(schema.Outcomes)}, Table: string(schema.OrdersTable)},
	{Group: string(schema.RegistryGroup), Inputs: []string{string(schema.RegistryCommands)}, Table: string(schema.RegistryTable)},
}

// Groups lists skuflow's processor groups with their inputs and tables.
func Groups() []GroupTopics {
	out := make([]GroupTopics, len(groupTopics))
	for i, g := range groupTopics {
		out[i] = GroupTopics{Group: g.Group, Inputs: slices.Clone(g.Inputs), Table: g.Table}
	}
	return out
}

// UnknownGroupError is the error for a group that is not one of skuflow's.
type UnknownGroupError struct{ Group string }

func (e *UnknownGroupError) Error() string {
	var names []string
	for _, g := range groupTopics {
		names = append(names, g.Group)
	}
	return fmt.Sprintf("unknown group %q: skuflow's groups are %s", e.Group, strings.Join(names, ", "))
}

func lookupGroup(name string) (GroupTopics, error) {
	for _, g := range Groups() {
		if g.Group == name {
			return g, nil
		}
	}
	return GroupTopics{}, &UnknownGroupError{Group: name}
}

// opsClient is a franz-go client with its admin wrapper, built from the
// same cluster options as every other role.
type opsClient struct {
	kgo  *kgo.Client
	adm  *kadm.Client
	seed []string
}

func newOpsClient(k kafkacfg.Options, extra ...kgo.Opt) (*opsClient, error) {
	id := k.ClientID
	if id == "" {
		id = "skuflow-ops"
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(id)}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to brokers %s: %w", strings.Join(k.Brokers, ","), err)
	}
	return &opsClient{kgo: cl, adm: kadm.NewClient(cl), seed: k.Brokers}, nil
}

func (c *opsClient) close() { c.kgo.Close() }

// offsets are one kind of listed offset (start, end, at a time) per topic
// and partition.
type offsets map[string]map[int32]int64

// list runs one ListOffsets call and fails on any partition error; a topic
// that does not exist is an error naming it unless allowMissing.
func list(ctx context.Context, what string, call func(context.Context, ...string) (kadm.ListedOffsets, error), allowMissing bool, topics ...string) (offsets, error) {
	l, err := call(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list %s offsets of %s: %w", what, strings.Join(topics, ", "), err)
	}
	out := offsets{}
	var errs []error
	l.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err == nil:
			if out[o.Topic] == nil {
				out[o.Topic] = map[int32]int64{}
			}
			out[o.Topic][o.Partition] = o.Offset
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition) && o.Partition == -1:
			if !allowMissing {
				errs = append(errs, fmt.Errorf("topic %s does not exist: has skuflow process run against this cluster?", o.Topic))
			}
		default:
			errs = append(errs, fmt.Errorf("list %s offsets of %s/%d: %w", what, o.Topic, o.Partition, o.Err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !allowMissing {
		for _, t := range topics {
			if _, ok := out[t]; !ok {
				return nil, fmt.Errorf("topic %s does not exist: has skuflow process run against this cluster?", t)
			}
		}
	}
	return out, nil
}

// partitions lists the partitions of t in o, in order.
func (o offsets) partitions(t string) []int32 {
	var ps []int32
	for p := range o[t] {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// committed is the group's committed offsets on topics; a partition
// without a commit is absent.
func (c *opsClient) committed(ctx context.Context, group string, topics []string) (offsets, error) {
	resp, err := c.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return offsets{}, nil // no group, no commits
	}
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of group %s: %w", group, err)
	}
	out := offsets{}
	var errs []error
	resp.Each(func(o kadm.OffsetResponse) {
		if !slices.Contains(topics, o.Topic) {
			return
		}
		if o.Err != nil {
			if !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("committed offset of group %s on %s/%d: %w", group, o.Topic, o.Partition, o.Err))
			}
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out, errors.Join(errs...)
}

// describe describes group: its state and members with their assignments.
// A group the cluster does not know (never joined, or expired) is "Dead",
// Kafka's name for it, with no members.
func (c *opsClient) describe(ctx context.Context, group string) (kadm.DescribedGroup, error) {
	ds, err := c.adm.DescribeGroups(ctx, group)
	if err != nil {
		return kadm.DescribedGroup{}, fmt.Errorf("describe group %s: %w", group, err)
	}
	d, err := ds.On(group, nil)
	if err == nil {
		err = d.Err
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return kadm.DescribedGroup{Group: group, State: "Dead"}, nil
	}
	if err != nil {
		return kadm.DescribedGroup{}, fmt.Errorf("describe group %s: %w", group, err)
	}
	return d, nil
}

// Member is a live member of a consumer group.
type Member struct {
	ID       string `json:"id"`
	ClientID string `json:"clientId"`
	Host     string `json:"host"`
	// Partitions are the partitions it owns, per topic (sorted).
	Partitions []TopicPartitions `json:"partitions"`
}

// TopicPartitions are some partitions of one topic.
type TopicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

func members(d kadm.DescribedGroup) []Member {
	out := make([]Member, 0, len(d.Members))
	for _, m := range d.Members {
		mm := Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Partitions: []TopicPartitions{}}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				ps := slices.Clone(t.Partitions)
				slices.Sort(ps)
				mm.Partitions = append(mm.Partitions, TopicPartitions{Topic: t.Topic, Partitions: ps})
			}
		}
		slices.SortFunc(mm.Partitions, func(a, b TopicPartitions) int { return strings.Compare(a.Topic, b.Topic) })
		out = append(out, mm)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}
