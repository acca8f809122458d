package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// StatusOptions say which cluster to report on.
type StatusOptions struct {
	Kafka kafkacfg.Options
	// DeadLetterWait bounds how long a report waits to read the dead-letter
	// topic up to its head; 0 means DefaultDeadLetterWait.
	DeadLetterWait time.Duration
}

// DefaultDeadLetterWait is how long a report reads dead letters at most.
const DefaultDeadLetterWait = 20 * time.Second

// Validate reports every problem with the options.
func (o StatusOptions) Validate() error {
	errs := []error{o.Kafka.Validate()}
	if o.DeadLetterWait < 0 {
		errs = append(errs, fmt.Errorf("dead-letter wait %s is negative", o.DeadLetterWait))
	}
	return errors.Join(errs...)
}

// Report is the state of every skuflow group, table and the dead letters
// at one moment. Field names in JSON are stable: scripts rely on them.
type Report struct {
	At          time.Time        `json:"at"`
	Brokers     []string         `json:"brokers"`
	Groups      []GroupStatus    `json:"groups"`
	Tables      []TableStatus    `json:"tables"`
	DeadLetters DeadLetterStatus `json:"deadLetters"`
}

// Group is the status of the named group, if the report has it.
func (r Report) Group(name string) (GroupStatus, bool) {
	i := slices.IndexFunc(r.Groups, func(g GroupStatus) bool { return g.Group == name })
	if i < 0 {
		return GroupStatus{}, false
	}
	return r.Groups[i], true
}

// GroupStatus is one consumer group: its state (Empty, Stable,
// PreparingRebalance, CompletingRebalance, Dead), its members and the
// position of every input partition.
type GroupStatus struct {
	Group   string         `json:"group"`
	State   string         `json:"state"`
	Members []Member       `json:"members"`
	Inputs  []PartitionLag `json:"inputs"`
	// Lag is the sum over Inputs.
	Lag int64 `json:"lag"`
}

// TopicLag sums the lag of one input topic.
func (g GroupStatus) TopicLag(topic string) int64 {
	var n int64
	for _, p := range g.Inputs {
		if p.Topic == topic {
			n += p.Lag
		}
	}
	return n
}

// PartitionLag is one input partition of a group.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Owner is the member id that owns the partition ("" if none).
	Owner string `json:"owner"`
	// Committed is the next offset the group reads, -1 if it has committed
	// nothing (it then starts at Start).
	Committed int64 `json:"committed"`
	Start     int64 `json:"start"`
	Head      int64 `json:"head"`
	Lag       int64 `json:"lag"`
}

// TableStatus is one group table's changelog.
type TableStatus struct {
	Table string `json:"table"`
	Group string `json:"group"`
	// Records is the sum of Head - Start: what a recovery reads at most.
	Records    int64            `json:"records"`
	Partitions []PartitionRange `json:"partitions"`
}

// PartitionRange is a partition's log start and head (end offset).
type PartitionRange struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	Head      int64 `json:"head"`
}

// DeadLetterStatus counts the records of the dead-letter topic by reason
// class (schema.ReasonClasses: the record's schema.HeaderReasonClass
// header, or schema.ClassifyReason of the text for letters written before
// the header existed), and
// in detail by the group that rejected them, the input topic, the class
// and the reason's text.
type DeadLetterStatus struct {
	Total   int64         `json:"total"`
	Classes []ClassCount  `json:"classes"`
	Reasons []ReasonCount `json:"reasons"`
	// Error says why the counts are incomplete ("" when complete).
	Error string `json:"error,omitempty"`
}

// ClassCount is how many dead letters have a reason class.
type ClassCount struct {
	Class string `json:"class"`
	Count int64  `json:"count"`
}

// ReasonCount is how many dead letters share a group, topic, reason class
// and reason.
type ReasonCount struct {
	Group  string `json:"group"`
	Topic  string `json:"topic"`
	Class  string `json:"class"`
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// UndecodableReason is the reason counted for a dead-letter record that
// is not a skuflow.v1.DeadLetter.
const UndecodableReason = "(record is not a skuflow.v1.DeadLetter)"

// Status takes one report.
func Status(ctx context.Context, o StatusOptions) (Report, error) {
	m, err := NewMonitor(o)
	if err != nil {
		return Report{}, err
	}
	defer m.Close()
	return m.Report(ctx)
}

// Monitor takes reports again and again (status --watch) on one
// connection, reading only the dead letters added since the last report.
type Monitor struct {
	o  StatusOptions
	c  *opsClient
	mu sync.Mutex
	dl *kgo.Client // reads the dead-letter topic from its start; nil until it exists
	// pos is the next offset to count per dead-letter partition.
	pos    map[int32]int64
	counts map[ReasonCount]int64
	total  int64
}

// NewMonitor connects to the cluster.
func NewMonitor(o StatusOptions) (*Monitor, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.DeadLetterWait == 0 {
		o.DeadLetterWait = DefaultDeadLetterWait
	}
	c, err := newOpsClient(o.Kafka)
	if err != nil {
		return nil, err
	}
	return &Monitor{o: o, c: c, pos: map[int32]int64{}, counts: map[ReasonCount]int64{}}, nil
}

// Close disconnects.
func (m *Monitor) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dl != nil {
		m.dl.Close()
	}
	m.c.close()
}

// Report reads the cluster's state now.
func (m *Monitor) Report(ctx context.Context) (Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := Report{At: time.Now().UTC(), Brokers: m.c.seed, Groups: []GroupStatus{}, Tables: []TableStatus{}}
	var topics []string
	for _, g := range groupTopics {
		topics = append(topics, g.Inputs...)
		topics = append(topics, g.Table)
	}
	starts, err := list(ctx, "start", m.c.adm.ListStartOffsets, true, topics...)
	if err != nil {
		return Report{}, err
	}
	heads, err := list(ctx, "end", m.c.adm.ListEndOffsets, true, topics...)
	if err != nil {
		return Report{}, err
	}
	for _, g := range groupTopics {
		gs, err := m.group(ctx, g, starts, heads)
		if err != nil {
			return Report{}, err
		}
		r.Groups = append(r.Groups, gs)
		ts := TableStatus{Table: g.Table, Group: g.Group, Partitions: []PartitionRange{}}
		for _, p := range heads.partitions(g.Table) {
			pr := PartitionRange{Partition: p, Start: starts[g.Table][p], Head: heads[g.Table][p]}
			ts.Partitions = append(ts.Partitions, pr)
			ts.Records += pr.Head - pr.Start
		}
		r.Tables = append(r.Tables, ts)
	}
	r.DeadLetters = m.deadLetters(ctx)
	return r, nil
}

func (m *Monitor) group(ctx context.Context, g GroupTopics, starts, heads offsets) (GroupStatus, error) {
	d, err := m.c.describe(ctx, g.Group)
	if err != nil {
		return GroupStatus{}, err
	}
	gs := GroupStatus{Group: g.Group, State: d.State, Members: members(d), Inputs: []PartitionLag{}}
	owner := map[string]map[int32]string{}
	for _, mem := range gs.Members {
		for _, tp := range mem.Partitions {
			if owner[tp.Topic] == nil {
				owner[tp.Topic] = map[int32]string{}
			}
			for _, p := range tp.Partitions {
				owner[tp.Topic][p] = mem.ID
			}
		}
	}
	committed, err := m.c.committed(ctx, g.Group, g.Inputs)
	if err != nil {
		return GroupStatus{}, err
	}
	for _, t := range g.Inputs {
		for _, p := range heads.partitions(t) {
			pl := PartitionLag{Topic: t, Partition: p, Owner: owner[t][p], Committed: -1, Start: starts[t][p], Head: heads[t][p]}
			from := pl.Start
			if c, ok := committed[t][p]; ok && c >= 0 {
				pl.Committed = c
				from = max(c, pl.Start)
			}
			pl.Lag = max(pl.Head-from, 0)
			gs.Lag += pl.Lag
			gs.Inputs = append(gs.Inputs, pl)
		}
	}
	return gs, nil
}

// deadLetters reads the dead-letter topic from where the last report
// stopped up to its head now, and returns the counts so far.
func (m *Monitor) deadLetters(ctx context.Context) DeadLetterStatus {
	topic := string(schema.DeadLetter)
	st := DeadLetterStatus{Classes: []ClassCount{}, Reasons: []ReasonCount{}}
	err := m.readDeadLetters(ctx, topic)
	if err != nil {
		st.Error = err.Error()
	}
	st.Total = m.total
	classes := map[string]int64{}
	for k, n := range m.counts {
		k.Count = n
		st.Reasons = append(st.Reasons, k)
		classes[k.Class] += n
	}
	for c, n := range classes {
		st.Classes = append(st.Classes, ClassCount{Class: c, Count: n})
	}
	slices.SortFunc(st.Classes, func(a, b ClassCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Class, b.Class))
	})
	slices.SortFunc(st.Reasons, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Group, b.Group), strings.Compare(a.Topic, b.Topic), strings.Compare(a.Reason, b.Reason))
	})
	return st
}

func (m *Monitor) readDeadLetters(ctx context.Context, topic string) error {
	heads, err := list(ctx, "end", m.c.adm.ListEndOffsets, true, topic)
	if err != nil {
		return err
	}
	if len(heads[topic]) == 0 {
		return nil // no dead-letter topic yet: nothing was rejected
	}
	behind := func() bool {
		for p, h := range heads[topic] {
			if m.pos[p] < h {
				return true
			}
		}
		return false
	}
	if !behind() {
		return nil
	}
	if m.dl == nil {
		m.dl, err = kgo.NewClient(kgo.SeedBrokers(m.o.Kafka.Brokers...), kgo.ClientID(m.clientID()),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.MetadataMinAge(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.DeadLetterWait)
	defer cancel()
	for behind() {
		fs := m.dl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read dead letters up to their head within %s: %w", m.o.DeadLetterWait, ctx.Err())
		}
		var errs []error
		fs.EachError(func(t string, p int32, err error) { errs = append(errs, fmt.Errorf("%s/%d: %w", t, p, err)) })
		if len(errs) > 0 {
			return fmt.Errorf("read dead letters: %w", errors.Join(errs...))
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset < m.pos[rec.Partition] {
				return
			}
			m.pos[rec.Partition] = rec.Offset + 1
			m.total++
			m.counts[reasonOf(rec)]++
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			// Offsets a record does not occupy (compaction, control
			// records) still count as read once the fetch passed them.
			if p.HighWatermark > 0 && len(p.Records) == 0 && m.pos[p.Partition] < p.LogStartOffset {
				m.pos[p.Partition] = p.LogStartOffset
			}
		})
	}
	return nil
}

func (m *Monitor) clientID() string {
	if m.o.Kafka.ClientID != "" {
		return m.o.Kafka.ClientID
	}
	return "skuflow-ops"
}

func reasonOf(rec *kgo.Record) ReasonCount {
	var class string
	for _, h := range rec.Headers {
		if h.Key == schema.HeaderReasonClass {
			class = string(h.Value)
		}
	}
	dv, err := schema.DeadLetterCodec.Decode(rec.Value)
	dl, ok := dv.(*pb.DeadLetter)
	if err != nil || !ok {
		return ReasonCount{Class: class, Reason: UndecodableReason}
	}
	if class == "" { // written before letters carried their class
		class = schema.ClassifyReason(dl.GetReason())
	}
	return ReasonCount{Group: dl.GetGroup(), Topic: dl.GetTopic(), Class: class, Reason: dl.GetReason()}
}

// WriteText prints the report as tables for a terminal.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "skuflow status at %s (brokers %s)\n", r.At.Format(time.RFC3339), strings.Join(r.Brokers, ","))
	for _, g := range r.Groups {
		fmt.Fprintf(&b, "\nGROUP %s  state %s  members %d  lag %d\n", g.Group, g.State, len(g.Members), g.Lag)
		short := map[string]string{}
		if len(g.Members) > 0 {
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  \tMEMBER\tCLIENT\tHOST\tPARTITIONS")
			for i, mem := range g.Members {
				short[mem.ID] = "m" + strconv.Itoa(i+1)
				var parts []string
				for _, tp := range mem.Partitions {
					parts = append(parts, tp.Topic+" "+ranges(tp.Partitions))
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", short[mem.ID], mem.ID, mem.ClientID, mem.Host, strings.Join(parts, "; "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TOPIC\tPARTITION\tOWNER\tCOMMITTED\tHEAD\tLAG")
		for _, p := range g.Inputs {
			owner, committed := cmp.Or(short[p.Owner], "-"), "none"
			if p.Committed >= 0 {
				committed = strconv.FormatInt(p.Committed, 10)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%d\n", p.Topic, p.Partition, owner, committed, p.Head, p.Lag)
		}
		if len(g.Inputs) == 0 {
			fmt.Fprintln(tw, "  (no input topics yet)")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	b.WriteString("\nTABLES (changelog heads)\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TABLE\tGROUP\tRECORDS\tHEAD PER PARTITION")
	for _, t := range r.Tables {
		var heads []string
		for _, p := range t.Partitions {
			heads = append(heads, fmt.Sprintf("%d:%d", p.Partition, p.Head))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", t.Table, t.Group, t.Records, cmp.Or(strings.Join(heads, " "), "(no changelog yet)"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nDEAD LETTERS  total %d\n", r.DeadLetters.Total)
	if r.DeadLetters.Error != "" {
		fmt.Fprintf(&b, "  incomplete: %s\n", r.DeadLetters.Error)
	}
	if len(r.DeadLetters.Reasons) > 0 {
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  COUNT\tCLASS")
		for _, c := range r.DeadLetters.Classes {
			fmt.Fprintf(tw, "  %d\t%s\n", c.Count, cmp.Or(c.Class, "(none)"))
		}
		fmt.Fprintln(tw, "\n  COUNT\tGROUP\tTOPIC\tCLASS\tREASON")
		for i, rc := range r.DeadLetters.Reasons {
			if i == textReasons {
				fmt.Fprintf(tw, "  ...\t%d more reasons (--json lists all)\n", len(r.DeadLetters.Reasons)-i)
				break
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", rc.Count, cmp.Or(rc.Group, "-"), cmp.Or(rc.Topic, "-"), cmp.Or(rc.Class, "-"), oneLine(rc.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// textReasons is how many detailed reasons the text report lists.
const textReasons = 20

// ranges writes sorted partitions compactly: 0-3,6.
func ranges(ps []int32) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ps[i], ps[j]))
		} else {
			parts = append(parts, strconv.Itoa(int(ps[i])))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// oneLine keeps a reason on one line and within 120 characters for the
// terminal (JSON has it whole).
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		return string(r[:119]) + "…"
	}
	return s
}
