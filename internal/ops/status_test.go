package ops_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/registry"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/ops"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/orders"
	"github.com/skuflow/skuflow/processors/policies"
	"github.com/skuflow/skuflow/processors/stock"
)

// ops may not import the processors, so Groups mirrors their graphs: this
// keeps the two equal.
func TestGroupsAreTheGraphs(t *testing.T) {
	graphs := []*goka.GroupGraph{stock.Define(inventory.Base{}, nil, nil, 0), policies.Define(nil, 0), orders.Define(nil, 0), registry.DefineWriter(nil)}
	got := ops.Groups()
	if len(got) != len(graphs) {
		t.Fatalf("ops.Groups() has %d groups, the processors %d", len(got), len(graphs))
	}
	for i, g := range graphs {
		var inputs []string
		for _, e := range g.InputStreams() {
			inputs = append(inputs, e.Topic())
		}
		want := ops.GroupTopics{Group: string(g.Group()), Inputs: inputs, Table: g.GroupTable().Topic()}
		if got[i].Group != want.Group || !slices.Equal(got[i].Inputs, want.Inputs) || got[i].Table != want.Table {
			t.Errorf("ops.Groups()[%d] = %+v, the graph says %+v", i, got[i], want)
		}
	}
	// Groups hands out copies.
	got[0].Inputs[0] = "changed"
	if ops.Groups()[0].Inputs[0] == "changed" {
		t.Error("Groups returns the package's own slices")
	}
}

func validKafka() kafkacfg.Options {
	return kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 1, Replication: 1}
}

func TestReplayOptionsValidate(t *testing.T) {
	valid := func() ops.ReplayOptions {
		return ops.ReplayOptions{Kafka: validKafka(), Group: "skuflow-stock", ToEarliest: true}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*ops.ReplayOptions)
		want   []string
	}{
		"no brokers":     {func(o *ops.ReplayOptions) { o.Kafka.Brokers = nil }, []string{"no brokers"}},
		"no group":       {func(o *ops.ReplayOptions) { o.Group = "" }, []string{"no group given"}},
		"unknown group":  {func(o *ops.ReplayOptions) { o.Group = "skuflow-nope" }, []string{`unknown group "skuflow-nope"`, "skuflow-stock, skuflow-policies, skuflow-orders"}},
		"registry group": {func(o *ops.ReplayOptions) { o.Group = "skuflow-registry" }, []string{"cannot be replayed", "merchant restore"}},
		"no target":      {func(o *ops.ReplayOptions) { o.ToEarliest = false }, []string{"no target given"}},
		"two targets":    {func(o *ops.ReplayOptions) { o.ToLatest = true }, []string{"more than one target"}},
		"time and other": {func(o *ops.ReplayOptions) { o.ToTime = time.Now() }, []string{"more than one target"}},
		"before 1970": {func(o *ops.ReplayOptions) {
			o.ToEarliest, o.ToTime = false, time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)
		}, []string{"before 1970"}},
		"everything wrong": {func(o *ops.ReplayOptions) { o.Kafka.Brokers, o.Group, o.ToEarliest = nil, "x", false },
			[]string{"no brokers", `unknown group "x"`, "no target given"}},
	} {
		o := valid()
		tc.change(&o)
		err := o.Validate()
		if err == nil {
			t.Errorf("%s: Validate passed", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", name, err, w)
			}
		}
	}
	var unknown *ops.UnknownGroupError
	o := valid()
	o.Group = "nope"
	if err := o.Validate(); !errors.As(err, &unknown) || unknown.Group != "nope" {
		t.Errorf("unknown group: %v is not an *UnknownGroupError", err)
	}
}

func TestStatusOptionsValidate(t *testing.T) {
	if err := (ops.StatusOptions{Kafka: validKafka()}).Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	err := ops.StatusOptions{Kafka: kafkacfg.Options{Partitions: 1, Replication: 1}, DeadLetterWait: -time.Second}.Validate()
	for _, w := range []string{"no brokers", "dead-letter wait -1s is negative"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
}

func TestPlanText(t *testing.T) {
	p := ops.Plan{Group: "skuflow-stock", Target: "earliest", DryRun: true, Partitions: []ops.PartitionMove{
		{Topic: "supply", Partition: 0, From: 10, To: 0, Start: 0, Head: 10},
		{Topic: "demand", Partition: 1, From: -1, To: 0, Start: 0, Head: 3},
	}}
	var b strings.Builder
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dry run", "nothing committed", "FROM", "TO", "supply", "+10", "none", "would read again 10 messages"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("plan text lacks %q:\n%s", w, b.String())
		}
	}
}
