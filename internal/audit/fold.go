package audit

import (
	"sort"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Message is one message of an input topic, as the processor's callback
// sees it: key, value and timestamp.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      time.Time
	Key       string
	Value     []byte
}

// Interleaving says how the messages of one key on several topics are
// merged; within a topic, offset order is always kept.
type Interleaving int

const (
	// ByTime merges by message timestamp (ties in topic order): the order a
	// processor that keeps up with its inputs sees them in.
	ByTime Interleaving = iota
	// DemandLast applies a SKU's supply and SKU policies before its demand
	// and ticks (and an order's commands before its outcomes), with the
	// final policies: the other extreme a backlog can produce.
	DemandLast
)

// rank orders topics for ties and for DemandLast.
var rank = map[string]int{
	string(schema.Supply): 0, string(schema.SkuPolicies): 1, string(schema.StockTicks): 2, string(schema.Demand): 3,
	string(schema.Orders): 0, string(schema.Outcomes): 1,
}

// merge orders one key's messages (each topic's in offset order) for the
// interleaving; late reports whether a topic goes after the others in
// DemandLast.
func merge(msgs []Message, how Interleaving, late func(topic string) bool) []Message {
	out := make([]Message, len(msgs))
	copy(out, msgs)
	// A stable sort on (group, time, rank) keeps each topic's offset order
	// only if its timestamps rise; they may not (several producers), so
	// sort by time within a topic's position instead: a k-way merge.
	byTopic := map[string][]Message{}
	var topics []string
	for _, m := range msgs {
		if _, ok := byTopic[m.Topic]; !ok {
			topics = append(topics, m.Topic)
		}
		byTopic[m.Topic] = append(byTopic[m.Topic], m)
	}
	sort.Slice(topics, func(i, j int) bool { return rank[topics[i]] < rank[topics[j]] })
	out = out[:0]
	phase := func(lateOnes bool) {
		for {
			best := -1
			for i, t := range topics {
				q := byTopic[t]
				if len(q) == 0 || (how == DemandLast && late(t) != lateOnes) {
					continue
				}
				if best < 0 || q[0].Time.Before(byTopic[topics[best]][0].Time) {
					best = i
				}
			}
			if best < 0 {
				return
			}
			t := topics[best]
			out = append(out, byTopic[t][0])
			byTopic[t] = byTopic[t][1:]
		}
	}
	if how == DemandLast {
		phase(false)
		phase(true)
	} else {
		phase(false)
	}
	return out
}

// Policies is the fold of the policies topic: every key's value after each
// change, in order, so the value in effect at a time can be looked up.
type Policies struct {
	history map[string][]policyAt
}

type policyAt struct {
	at time.Time
	v  *pb.PolicyEvent
}

// FoldPolicies folds the policies topic as the policies group does, with
// its event skew (inventory.EventSkew of what it is configured with).
func FoldPolicies(msgs []Message, skew time.Duration) Policies {
	p := Policies{history: map[string][]policyAt{}}
	for _, m := range msgs {
		if m.Value == nil {
			continue
		}
		ev, err := codecs.DecodePolicyEvent(m.Value)
		if err != nil || codecs.CheckPolicyTimes(ev, m.Time, skew) != nil {
			continue
		}
		h := p.history[m.Key]
		var cur *pb.PolicyEvent
		if len(h) > 0 {
			cur = h[len(h)-1].v
		}
		next, changed, err := schema.FoldPolicy(m.Key, ev, cur)
		if err != nil || !changed {
			continue
		}
		p.history[m.Key] = append(h, policyAt{at: m.Time, v: next})
	}
	return p
}

// Final returns each key's latest value.
func (p Policies) Final() map[string]*pb.PolicyEvent {
	out := make(map[string]*pb.PolicyEvent, len(p.history))
	for k, h := range p.history {
		out[k] = h[len(h)-1].v
	}
	return out
}

// getter reads the policies in effect at t (zero t: the final ones).
func (p Policies) getter(t time.Time) schema.PolicyGetter {
	return func(key string) (*pb.PolicyEvent, error) {
		h := p.history[key]
		if t.IsZero() {
			if len(h) == 0 {
				return nil, nil
			}
			return h[len(h)-1].v, nil
		}
		i := sort.Search(len(h), func(i int) bool { return h[i].at.After(t) })
		if i == 0 {
			return nil, nil
		}
		return h[i-1].v, nil
	}
}

// SKU is one SKU's fold.
type SKU struct {
	State inventory.State
	// Stored: the processor would have written a table entry.
	Stored bool
	// Requested are the reservation ids requested in the demand log.
	Requested map[string]bool
}

// FoldStock folds each SKU's supply, sku-policies, stock-ticks and demand
// messages (grouped by key, each topic's in offset order) as the stock
// processor does, deciding demand with the policies in effect at the
// message time (ByTime) or the final ones (DemandLast), with the group's
// event skew (inventory.EventSkew of what it is configured with).
func FoldStock(byKey map[string][]Message, pol Policies, base inventory.Base, how Interleaving, skew time.Duration) map[string]*SKU {
	late := func(t string) bool { return t == string(schema.Demand) || t == string(schema.StockTicks) }
	out := make(map[string]*SKU, len(byKey))
	for key, msgs := range byKey {
		f := &SKU{State: inventory.State{SKU: key}, Requested: map[string]bool{}}
		for _, m := range merge(msgs, how, late) {
			foldStockMessage(f, m, pol, base, how, skew)
		}
		out[key] = f
	}
	return out
}

// foldStockMessage is the stock processor's callback for one message,
// without I/O: what it would store. It skips what the processor
// dead-letters: undecodable, mis-keyed, bad or skewed times
// (inventory.CheckEventTimes, CheckTickTimes), refused by the rules, or a
// state over codecs.MaxStateBytes.
func foldStockMessage(f *SKU, m Message, pol Policies, base inventory.Base, how Interleaving, skew time.Duration) {
	if m.Value == nil {
		return // a tombstone is dead-lettered
	}
	at := m.Time.UTC()
	var decode func([]byte) (inventory.Event, error)
	switch m.Topic {
	case string(schema.Supply):
		decode = codecs.DecodeSupplyEvent
	case string(schema.SkuPolicies):
		decode = codecs.DecodeSkuPolicyEvent
	case string(schema.Demand):
		decode = codecs.DecodeDemandEvent
	case string(schema.StockTicks):
		t, err := codecs.DecodeStockTick(m.Value)
		if err != nil || t.GetSku() != m.Key || inventory.CheckTickTimes(t.GetAt().AsTime(), at, skew) != nil || t.GetDeferred() || !f.Stored {
			return
		}
		s, res := inventory.Expire(f.State, t.GetAt().AsTime())
		if res.Changed && codecs.CheckStateGrowth(f.State, s, false) == nil {
			f.State = s
		}
		return
	default:
		return
	}
	ev, err := decode(m.Value)
	if err != nil || ev.EventSKU() != m.Key || inventory.CheckEventTimes(ev, at, skew) != nil {
		return
	}
	var next inventory.State
	var res inventory.Result
	if m.Topic == string(schema.Demand) {
		if r, ok := ev.(inventory.ReservationRequested); ok {
			f.Requested[r.ReservationID] = true
		}
		when := at
		if how == DemandLast {
			when = time.Time{}
		}
		p, _ := schema.Gather(f.State, pol.getter(when), base)
		next, _, res, err = inventory.Demand(f.State, ev, p, at)
	} else {
		next, res, err = inventory.Apply(f.State, ev, at)
	}
	if err != nil || !res.Changed || codecs.CheckStateGrowth(f.State, next, codecs.IsRequest(ev)) != nil {
		return
	}
	f.State, f.Stored = next, true
}

// Order is one order's fold.
type Order struct {
	Order inventory.Order
	Found bool
}

// FoldOrders folds each order's orders and reservation-outcomes messages
// as the saga does, with its event skew (inventory.EventSkew of what it
// is configured with).
func FoldOrders(byKey map[string][]Message, how Interleaving, skew time.Duration) map[string]*Order {
	late := func(t string) bool { return t == string(schema.Outcomes) }
	out := make(map[string]*Order, len(byKey))
	for key, msgs := range byKey {
		f := &Order{}
		for _, m := range merge(msgs, how, late) {
			foldOrderMessage(f, m, skew)
		}
		out[key] = f
	}
	return out
}

func foldOrderMessage(f *Order, m Message, skew time.Duration) {
	if m.Value == nil {
		return
	}
	var in any
	at := m.Time
	switch m.Topic {
	case string(schema.Orders):
		c, id, err := codecs.DecodeOrderCommand(m.Value)
		if err != nil || id != m.Key {
			return
		}
		if t, ok := c.(inventory.OrderTick); ok {
			at = t.At
		}
		in = c
	case string(schema.Outcomes):
		o, err := codecs.DecodeOutcome(m.Value)
		if err != nil || o.OrderID != m.Key {
			return
		}
		in = o
	default:
		return
	}
	if inventory.CheckOrderTimes(in, m.Time, skew) != nil {
		return
	}
	next, _, res, err := inventory.ApplyOrder(f.Order, f.Found, in, at)
	if err != nil || !res.Changed {
		return
	}
	f.Order, f.Found = next, true
}
