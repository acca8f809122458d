package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/schema"
)

// input is a group's input topics.
type input struct {
	group  goka.Group
	topics []string
}

var (
	stockInputs   = input{schema.StockGroup, []string{string(schema.Supply), string(schema.SkuPolicies), string(schema.StockTicks), string(schema.Demand)}}
	policyInputs  = input{schema.PoliciesGroup, []string{string(schema.Policies)}}
	orderInputs   = input{schema.OrdersGroup, []string{string(schema.Orders), string(schema.Outcomes)}}
	allInputs     = []input{stockInputs, policyInputs, orderInputs}
	materialTopic = []string{string(schema.StockTable), string(schema.OrdersTable), string(schema.PoliciesTable), string(schema.Availability)}
)

// Run audits the cluster: see the package documentation. An error means
// the audit could not run; divergences and violations are in the Report.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, fmt.Errorf("audit options: %w", err)
	}
	start := time.Now()
	c, err := dial(o)
	if err != nil {
		return Report{}, err
	}
	defer c.close()

	// The audited range: every input from the start of retention to its
	// head now.
	oldest, heads := map[string]offsets{}, map[string]offsets{}
	var total int64
	for _, in := range allInputs {
		for _, t := range in.topics {
			if oldest[t], heads[t], err = c.bounds(t); err != nil {
				return Report{}, err
			}
			total += span(oldest[t], heads[t])
		}
	}
	for _, t := range materialTopic {
		o, h, err := c.bounds(t)
		if err != nil {
			return Report{}, err
		}
		total += span(o, h)
	}
	var read atomic.Int64
	stopProgress := progress(ctx, o.Progress, &read, total)
	defer stopProgress()

	logs := map[string][]Message{}
	for _, in := range allInputs {
		for _, t := range in.topics {
			if logs[t], err = c.read(ctx, t, oldest[t], heads[t], &read); err != nil {
				return Report{}, err
			}
		}
	}
	events := read.Load()

	// Wait for the groups to have consumed what was folded; what they had
	// not by then, and anything that arrived since, is skipped.
	rep := Report{At: o.now()}
	from := map[string]offsets{}
	for _, in := range allInputs {
		for _, t := range in.topics {
			got, err := c.settle(ctx, string(in.group), t, oldest[t], heads[t], o.Settle)
			if err != nil {
				return Report{}, err
			}
			from[t] = offsets{}
			for p, h := range heads[t] {
				from[t][p] = h
				if h > oldest[t][p] && got[p] < h {
					rep.Behind = append(rep.Behind, Behind{Group: string(in.group), Topic: t, Partition: p, Committed: got[p], Audited: h})
					from[t][p] = max(got[p], oldest[t][p])
				}
			}
		}
	}
	material := map[string]map[string][]byte{}
	for _, t := range materialTopic {
		o, h, err := c.bounds(t)
		if err != nil {
			return Report{}, err
		}
		msgs, err := c.read(ctx, t, o, h, &read)
		if err != nil {
			return Report{}, err
		}
		latest := map[string][]byte{}
		for _, m := range msgs {
			if m.Value == nil {
				delete(latest, m.Key)
				continue
			}
			latest[m.Key] = m.Value
		}
		material[t] = latest
	}
	moving := map[string]bool{}
	for _, in := range allInputs {
		for _, t := range in.topics {
			_, now, err := c.bounds(t)
			if err != nil {
				return Report{}, err
			}
			var discard atomic.Int64
			msgs, err := c.read(ctx, t, from[t], now, &discard)
			if err != nil {
				return Report{}, err
			}
			for _, m := range msgs {
				moving[t+"\x00"+m.Key] = true
			}
		}
	}
	stopProgress()

	a := auditor{o: o, rep: &rep, now: rep.At, material: material}
	a.skip = func(topics []string, key string) bool {
		for _, t := range topics {
			if moving[t+"\x00"+key] {
				return true
			}
		}
		return false
	}
	a.truncated = func(topics []string, key string) bool {
		for _, t := range topics {
			if n := len(oldest[t]); n > 0 && oldest[t][schema.Partition(key, n)] > 0 {
				return true
			}
		}
		return false
	}
	a.run(logs)
	rep.Events = events
	rep.Read = read.Load()
	rep.Seconds = time.Since(start).Seconds()
	rep.sort()
	return rep, nil
}

func span(oldest, head offsets) int64 {
	var n int64
	for p, h := range head {
		n += max(0, h-oldest[p])
	}
	return n
}

// progress calls fn with the count read every 100ms until stopped (and
// once more at the end).
func progress(ctx context.Context, fn func(done, total int64), read *atomic.Int64, total int64) func() {
	if fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				fn(min(read.Load(), total), total)
				return
			case <-t.C:
				fn(min(read.Load(), total), total)
			}
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(done)
			<-stopped
		}
	}
}

// groupByKey groups messages of several topics by key.
func groupByKey(logs map[string][]Message, topics []string) map[string][]Message {
	out := map[string][]Message{}
	for _, t := range topics {
		for _, m := range logs[t] {
			out[m.Key] = append(out[m.Key], m)
		}
	}
	return out
}

// wanted reports whether sku is audited.
func (o Options) wanted(sku string) bool { return len(o.SKUs) == 0 || slices.Contains(o.SKUs, sku) }

var errNoValue = errors.New("no value")
