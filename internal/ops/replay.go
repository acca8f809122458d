package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skuflow/skuflow/schema"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/skuflow/skuflow/internal/kafkacfg"
)

// ReplayOptions say which group to rewind and to where. Exactly one of
// ToTime, ToEarliest and ToLatest is set.
type ReplayOptions struct {
	Kafka kafkacfg.Options
	// Group is one of skuflow's processor groups (see Groups).
	Group string
	// ToTime moves each input partition to its first message with a
	// timestamp at or after it (the partition's head if there is none).
	ToTime time.Time
	// ToEarliest moves each input partition to its log start: everything
	// still within retention is processed again.
	ToEarliest bool
	// ToLatest moves each input partition to its head: everything not
	// processed yet is skipped.
	ToLatest bool
	// DryRun computes the plan and commits nothing.
	DryRun bool
}

// ErrRegistryReplay refuses to replay the merchant registry's writer: its
// commands are not idempotent once their outcomes have left the table (the
// latest 1024 are kept), so a replay onto the existing table could undo
// later changes. topology.md ("Merchant registry: one writer") says how
// the registry is restored instead.
var ErrRegistryReplay = errors.New("the registry group (skuflow-registry) cannot be replayed: its commands are applied once; restore the registry with 'skuflow merchant restore' instead")

// Validate reports every problem with the options.
func (o ReplayOptions) Validate() error {
	errs := []error{o.Kafka.Validate()}
	if o.Group == "" {
		errs = append(errs, errors.New("no group given"))
	} else if _, err := lookupGroup(o.Group); err != nil {
		errs = append(errs, err)
	} else if o.Group == string(schema.RegistryGroup) {
		errs = append(errs, ErrRegistryReplay)
	}
	modes := 0
	for _, set := range []bool{!o.ToTime.IsZero(), o.ToEarliest, o.ToLatest} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		errs = append(errs, errors.New("no target given: replay to a time, to the earliest or to the latest offsets"))
	case modes > 1:
		errs = append(errs, errors.New("more than one target given: replay to a time, to the earliest or to the latest offsets, one of them"))
	}
	if !o.ToTime.IsZero() && o.ToTime.UnixMilli() < 0 {
		errs = append(errs, fmt.Errorf("time %s is before 1970", o.ToTime.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// target names the mode for humans and the plan.
func (o ReplayOptions) target() string {
	switch {
	case o.ToEarliest:
		return "earliest"
	case o.ToLatest:
		return "latest"
	default:
		return o.ToTime.UTC().Format(time.RFC3339Nano)
	}
}

// Plan is what Replay did, or would do on a dry run.
type Plan struct {
	Group string `json:"group"`
	// Target is "earliest", "latest" or the RFC 3339 time replayed to.
	Target string `json:"target"`
	DryRun bool   `json:"dryRun"`
	// Committed is true once the new offsets are committed.
	Committed  bool            `json:"committed"`
	Partitions []PartitionMove `json:"partitions"`
}

// PartitionMove is one input partition's committed offset before and after.
type PartitionMove struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// From is the committed offset before, -1 if none (the group would
	// start at the log start).
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Start and Head bound the partition's log.
	Start int64 `json:"start"`
	Head  int64 `json:"head"`
}

// Reprocessed is how many messages the group will read again (positive) or
// skip (negative) because of the move.
func (m PartitionMove) Reprocessed() int64 {
	from := m.From
	if from < 0 {
		from = m.Start
	}
	return from - m.To
}

// LiveMembersError is Replay's refusal while the group has members:
// offsets of a running group cannot be moved under it.
type LiveMembersError struct {
	Group   string
	State   string
	Members []Member
}

func (e *LiveMembersError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "group %s has %d live member(s) (state %s); stop every skuflow process of the group first:", e.Group, len(e.Members), e.State)
	for _, m := range e.Members {
		fmt.Fprintf(&b, "\n  member %s (client %s, host %s)", m.ID, m.ClientID, m.Host)
	}
	return b.String()
}

// Replay rewinds (or advances) the group's committed offsets on every
// input partition. It refuses while the group has live members
// (*LiveMembersError). With DryRun it only returns the plan.
func Replay(ctx context.Context, o ReplayOptions) (Plan, error) {
	if err := o.Validate(); err != nil {
		return Plan{}, err
	}
	g, _ := lookupGroup(o.Group)
	c, err := newOpsClient(o.Kafka)
	if err != nil {
		return Plan{}, err
	}
	defer c.close()

	d, err := c.describe(ctx, g.Group)
	if err != nil {
		return Plan{}, err
	}
	if len(d.Members) > 0 {
		return Plan{}, &LiveMembersError{Group: g.Group, State: d.State, Members: members(d)}
	}
	starts, err := list(ctx, "start", c.adm.ListStartOffsets, false, g.Inputs...)
	if err != nil {
		return Plan{}, err
	}
	heads, err := list(ctx, "end", c.adm.ListEndOffsets, false, g.Inputs...)
	if err != nil {
		return Plan{}, err
	}
	var targets offsets
	switch {
	case o.ToEarliest:
		targets = starts
	case o.ToLatest:
		targets = heads
	default:
		ms := o.ToTime.UnixMilli()
		targets, err = list(ctx, "time", func(ctx context.Context, ts ...string) (kadm.ListedOffsets, error) {
			return c.adm.ListOffsetsAfterMilli(ctx, ms, ts...)
		}, false, g.Inputs...)
		if err != nil {
			return Plan{}, err
		}
	}
	committed, err := c.committed(ctx, g.Group, g.Inputs)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Group: g.Group, Target: o.target(), DryRun: o.DryRun, Partitions: []PartitionMove{}}
	commit := kadm.Offsets{}
	for _, t := range g.Inputs {
		for _, p := range heads.partitions(t) {
			from, ok := committed[t][p]
			if !ok {
				from = -1
			}
			to, ok := targets[t][p]
			if !ok || to < 0 {
				to = heads[t][p]
			}
			plan.Partitions = append(plan.Partitions, PartitionMove{Topic: t, Partition: p, From: from, To: to, Start: starts[t][p], Head: heads[t][p]})
			commit.Add(kadm.Offset{Topic: t, Partition: p, At: to, LeaderEpoch: -1})
		}
	}
	if o.DryRun {
		return plan, nil
	}
	resp, err := c.adm.CommitOffsets(ctx, g.Group, commit)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return plan, fmt.Errorf("commit offsets of group %s (did a member join meanwhile? run status): %w", g.Group, err)
	}
	plan.Committed = true
	return plan, nil
}

// WriteText prints the plan as a table: each partition's offset from and
// to, and how many messages the group reads again.
func (p Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	switch {
	case p.DryRun:
		fmt.Fprintf(&b, "dry run: group %s would be moved to %s (nothing committed)\n", p.Group, p.Target)
	case p.Committed:
		fmt.Fprintf(&b, "group %s moved to %s\n", p.Group, p.Target)
	default:
		fmt.Fprintf(&b, "group %s NOT moved to %s\n", p.Group, p.Target)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tFROM\tTO\tSTART\tHEAD\tREPROCESS\t")
	var total int64
	for _, m := range p.Partitions {
		from := "none"
		if m.From >= 0 {
			from = strconv.FormatInt(m.From, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%+d\t\n", m.Topic, m.Partition, from, m.To, m.Start, m.Head, m.Reprocessed())
		total += m.Reprocessed()
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "reads again"
	if p.DryRun {
		verb = "would read again"
	}
	fmt.Fprintf(&b, "%d partitions; the group %s %d messages (negative: skips them)\n", len(p.Partitions), verb, total)
	_, err := io.WriteString(w, b.String())
	return err
}
