package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/processors/deadletter"
	"github.com/skuflow/skuflow/views"
)

// groupMetrics is a prometheus.Collector of, per processor group the role
// runs, read from goka's processor stats at each scrape:
//
//	skuflow_group_recovered{group}               1 once the group's tables (and lookups) have recovered and it processes input
//	skuflow_group_partitions{group}              partitions this instance owns
//	skuflow_group_input_lag_messages{group,topic} input messages not yet processed, summed over owned partitions
//	skuflow_group_table_lag_messages{group,table} changelog messages a group table (while recovering) or a lookup table has yet to read
//
// A group restarted after a failure (restarting) is reported from its new
// processor on: track records the latest build.
type groupMetrics struct {
	recovered, partitions, inputLag, tableLag *prometheus.Desc

	mu     sync.Mutex
	groups map[goka.Group]*goka.Processor
}

func newGroupMetrics() *groupMetrics {
	return &groupMetrics{
		groups: map[goka.Group]*goka.Processor{},
		recovered: prometheus.NewDesc("skuflow_group_recovered",
			"1 once the processor group's tables and lookups have recovered and it processes input, else 0.", []string{"group"}, nil),
		partitions: prometheus.NewDesc("skuflow_group_partitions",
			"Partitions of the group this instance owns.", []string{"group"}, nil),
		inputLag: prometheus.NewDesc("skuflow_group_input_lag_messages",
			"Input messages the group has yet to process on this instance (partition head minus position, summed over owned partitions).",
			[]string{"group", "topic"}, nil),
		tableLag: prometheus.NewDesc("skuflow_group_table_lag_messages",
			"Changelog messages a table of the group has yet to read: its own table while it recovers, a lookup table always.",
			[]string{"group", "table"}, nil),
	}
}

// track wraps a processor's build so the metrics follow its latest build.
func (m *groupMetrics) track(g goka.Group, build func() (*goka.Processor, error)) func() (*goka.Processor, error) {
	m.mu.Lock()
	if _, ok := m.groups[g]; !ok {
		m.groups[g] = nil // reported as not recovered until built
	}
	m.mu.Unlock()
	return func() (*goka.Processor, error) {
		p, err := build()
		if err == nil {
			m.mu.Lock()
			m.groups[g] = p
			m.mu.Unlock()
		}
		return p, err
	}
}

// Describe implements prometheus.Collector.
func (m *groupMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.recovered
	ch <- m.partitions
	ch <- m.inputLag
	ch <- m.tableLag
}

// Collect implements prometheus.Collector.
func (m *groupMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.mu.Lock()
	names := make([]goka.Group, 0, len(m.groups))
	for g := range m.groups {
		names = append(names, g)
	}
	procs := make(map[goka.Group]*goka.Processor, len(m.groups))
	for g, p := range m.groups {
		procs[g] = p
	}
	m.mu.Unlock()
	slices.Sort(names)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, g := range names {
		p := procs[g]
		if p == nil {
			gauge(m.recovered, 0, string(g))
			continue
		}
		rec := 0.0
		if p.Recovered() {
			rec = 1
		}
		gauge(m.recovered, rec, string(g))
		st := p.StatsWithContext(ctx)
		gauge(m.partitions, float64(len(st.Group)), string(g))
		inputs := map[string]int64{}
		tables := map[string]int64{}
		for _, pp := range st.Group {
			for topic, in := range pp.Input {
				inputs[topic] += inputLag(in)
			}
			if pp.TableStats != nil && g != "" {
				tables[string(goka.GroupTable(g))] += tableLag(pp.TableStats, false)
			}
		}
		for table, vs := range st.Lookup {
			tables[table] += 0
			for _, ts := range vs.Partitions {
				tables[table] += tableLag(ts, true)
			}
		}
		for topic, lag := range inputs {
			gauge(m.inputLag, float64(lag), string(g), topic)
		}
		for table, lag := range tables {
			gauge(m.tableLag, float64(lag), string(g), table)
		}
	}
}

// inputLag is an input partition's lag: goka's OffsetLag is the head
// (the next offset to be written) minus the last offset processed, so a
// caught-up partition has 1.
func inputLag(in *goka.InputStats) int64 {
	if in == nil || in.Count == 0 {
		return 0
	}
	return max(0, in.OffsetLag-1)
}

// tableLag is a table partition's lag: while it recovers, the changelog
// head minus the offset recovered; once it runs, nothing for a group table
// (the group writes it) and the input lag for a lookup (it keeps reading).
func tableLag(ts *goka.TableStats, lookup bool) int64 {
	if ts.Status == goka.PartitionRecovering || ts.Status == goka.PartitionPreparing {
		if r := ts.Recovery; r != nil && r.Hwm > 0 {
			return max(0, r.Hwm-r.Offset-1)
		}
		return 0
	}
	if lookup {
		return inputLag(ts.Input)
	}
	return 0
}

// opsMetrics are the processor role's own metrics, beside the package
// metrics of deadletter (events handled, dead letters, reservation
// outcomes) that it registers too.
type opsMetrics struct {
	groups *groupMetrics
	views  *views.Metrics // nil: the role runs no views
}

// newOpsMetrics registers the role's metrics on reg. observed are the
// views the role runs (the reconciler's), reported by views.Metrics.
func newOpsMetrics(reg prometheus.Registerer, k kafkacfg.Options, log *slog.Logger, observed map[string]views.Observed) (*opsMetrics, error) {
	m := &opsMetrics{groups: newGroupMetrics()}
	if err := deadletter.Register(reg); err != nil {
		return nil, fmt.Errorf("register dead-letter metrics: %w", err)
	}
	if err := reg.Register(m.groups); err != nil {
		return nil, fmt.Errorf("register group metrics: %w", err)
	}
	if len(observed) > 0 {
		vm, err := views.NewMetrics(views.MetricsOptions{Brokers: k.Brokers, Sarama: k.Sarama(), Logger: log})
		if err != nil {
			return nil, err
		}
		for name, v := range observed {
			if err := vm.Add(name, v); err != nil {
				return nil, err
			}
		}
		if err := reg.Register(vm); err != nil {
			return nil, fmt.Errorf("register view metrics: %w", err)
		}
		m.views = vm
	}
	return m, nil
}

// gathererOf is what the metrics endpoint serves: the default registry
// (Go runtime, process, and package metrics such as the stock backlog's)
// and reg, when reg is a gatherer of its own.
func gathererOf(reg prometheus.Registerer) prometheus.Gatherer {
	g, ok := reg.(prometheus.Gatherer)
	if !ok || g == prometheus.DefaultGatherer {
		return prometheus.DefaultGatherer
	}
	return prometheus.Gatherers{prometheus.DefaultGatherer, g}
}
