package audit

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// auditor compares a fold with what was materialized.
type auditor struct {
	o        Options
	rep      *Report
	now      time.Time
	material map[string]map[string][]byte
	// skip reports whether key had messages on topics the groups may
	// have consumed beyond the audited offsets.
	skip func(topics []string, key string) bool
	// truncated reports whether retention has deleted the start of a
	// key's input (a partition whose log no longer starts at offset 0):
	// its fold would start from nothing and is not compared.
	truncated func(topics []string, key string) bool
	skipped   map[string]int
}

func (a *auditor) diverged(kind, key, what, materialized, fold string) {
	a.rep.Divergences = append(a.rep.Divergences, Divergence{Kind: kind, Key: key, What: what, Materialized: materialized, Fold: fold})
}

func (a *auditor) violated(source, key, rule, format string, args ...any) {
	a.rep.Violations = append(a.rep.Violations, Violation{Source: source, Key: key, Rule: rule, Detail: fmt.Sprintf(format, args...)})
}

func (a *auditor) skipping(reason string) { a.skipped[reason]++ }

func (a *auditor) run(logs map[string][]Message) {
	a.skipped = map[string]int{}
	skew := inventory.EventSkew(a.o.MaxEventSkew)
	pol := FoldPolicies(logs[string(schema.Policies)], skew)
	final := pol.getter(time.Time{})
	a.policies(pol)

	byKey := groupByKey(logs, stockInputs.topics)
	for k := range byKey {
		if !a.o.wanted(k) {
			delete(byKey, k)
		}
	}
	foldA := FoldStock(byKey, pol, a.o.Base, ByTime, skew)
	withDemand := map[string][]Message{}
	for k, ms := range byKey {
		for _, m := range ms {
			if m.Topic == string(schema.Demand) {
				withDemand[k] = ms
				break
			}
		}
	}
	foldB := FoldStock(withDemand, pol, a.o.Base, DemandLast, skew)
	tables := map[string]inventory.State{}
	for k, raw := range a.material[string(schema.StockTable)] {
		if !a.o.wanted(k) {
			continue
		}
		v, err := codecs.State{}.Decode(raw)
		if err != nil {
			a.diverged("stock-table", k, "value does not decode", err.Error(), "")
			continue
		}
		tables[k] = v.(inventory.State)
	}
	a.rep.SKUs = len(foldA)
	for _, k := range union(keysOf(foldA), keysOf(tables)) {
		if a.truncated(stockInputs.topics, k) {
			a.skipping(truncatedReason)
			continue
		}
		if a.skip(stockInputs.topics, k) {
			a.skipping("SKUs with input the stock group had not consumed, or that arrived during the audit")
			continue
		}
		fa, fb := foldA[k], foldB[k]
		t, inTable := tables[k]
		a.stock(k, fa, fb, t, inTable)
		a.availability(k, fa, final)
	}
	for k := range a.material[string(schema.Availability)] {
		if _, folded := foldA[k]; !folded && a.o.wanted(k) && !a.skip(stockInputs.topics, k) && !a.truncated(stockInputs.topics, k) {
			a.availability(k, nil, final)
		}
	}
	for k, s := range tables {
		a.stockInvariants("stock-table", k, s, final)
	}
	for k, raw := range a.material[string(schema.Availability)] {
		if a.o.wanted(k) {
			a.availabilityInvariants(k, raw)
		}
	}

	obyKey := groupByKey(logs, orderInputs.topics)
	oA, oB := FoldOrders(obyKey, ByTime, skew), FoldOrders(obyKey, DemandLast, skew)
	otables := map[string]inventory.Order{}
	for k, raw := range a.material[string(schema.OrdersTable)] {
		v, err := codecs.Order{}.Decode(raw)
		if err != nil {
			a.diverged("orders-table", k, "value does not decode", err.Error(), "")
			continue
		}
		otables[k] = v.(inventory.Order)
	}
	a.rep.Orders = len(oA)
	for _, k := range union(keysOf(oA), keysOf(otables)) {
		t, inTable := otables[k]
		fa := oA[k]
		if !a.orderWanted(t, fa) {
			continue
		}
		if a.truncated(orderInputs.topics, k) {
			a.skipping(truncatedReason)
			continue
		}
		if a.skip(orderInputs.topics, k) {
			a.skipping("orders with input the saga had not consumed, or that arrived during the audit")
			continue
		}
		a.order(k, fa, oB[k], t, inTable)
	}
	for k, o := range otables {
		if a.orderWanted(o, nil) {
			a.orderInvariants(k, o, tables)
		}
	}
	for reason, n := range a.skipped {
		a.rep.Skipped = append(a.rep.Skipped, Skipped{Reason: reason, Keys: n})
	}
	sort.Slice(a.rep.Skipped, func(i, j int) bool { return a.rep.Skipped[i].Reason < a.rep.Skipped[j].Reason })
}

// truncatedReason names the keys skipped because retention deleted the
// start of their input.
const truncatedReason = "keys whose input partitions no longer start at offset 0 (retention deleted older events, so the log's fold cannot rebuild them)"

func (a *auditor) orderWanted(t inventory.Order, f *Order) bool {
	if len(a.o.SKUs) == 0 {
		return true
	}
	lines := t.Lines
	if f != nil {
		lines = append(lines[:len(lines):len(lines)], f.Order.Lines...)
	}
	for _, l := range lines {
		if a.o.wanted(l.SKU) {
			return true
		}
	}
	return false
}

// policies compares the policies table with the fold of the policies
// topic: the latest winning policy per key.
func (a *auditor) policies(pol Policies) {
	fold := pol.Final()
	a.rep.Policies = len(fold)
	if len(a.o.SKUs) > 0 {
		return
	}
	table := a.material[string(schema.PoliciesTable)]
	for _, k := range union(keysOf(fold), keysOf(table)) {
		if a.truncated(policyInputs.topics, k) {
			a.skipping(truncatedReason)
			continue
		}
		if a.skip(policyInputs.topics, k) {
			a.skipping("policies changed during the audit")
			continue
		}
		var want []byte
		if f := fold[k]; f != nil {
			want, _ = codecs.MarshalDeterministic(f)
		}
		got := table[k]
		if bytes.Equal(want, got) {
			continue
		}
		var gotS string
		if v, err := codecs.PolicyTable.Decode(got); err == nil && got != nil {
			gotS = fmt.Sprint(v)
		}
		a.diverged("policies-table", k, "policy", orNone(gotS, got != nil), orNone(fmt.Sprint(fold[k]), fold[k] != nil))
	}
}

// stock compares the order-independent parts of a SKU's state.
func (a *auditor) stock(k string, fa, fb *SKU, t inventory.State, inTable bool) {
	stored := fa != nil && fa.Stored
	switch {
	case !stored && !inTable:
		return
	case !inTable:
		a.diverged("stock-table", k, "missing from the table", "(none)", summary(fa.State))
		return
	case !stored:
		a.diverged("stock-table", k, "in the table, but the log's fold stores nothing for it", summary(t), "(none)")
		return
	}
	f := fa.State
	if !bytes.Equal(enc(inventory.State{SKU: k, Locations: t.Locations}), enc(inventory.State{SKU: k, Locations: f.Locations})) {
		a.diverged("stock-table", k, "locations", fmtLocations(t.Locations), fmtLocations(f.Locations))
	}
	if !bytes.Equal(enc(skuPolicies(t)), enc(skuPolicies(f))) {
		a.diverged("stock-table", k, "sku policies", fmtPolicies(t), fmtPolicies(f))
	}
	a.reservations(k, fa, fb, t)
}

// reservations compares what the request said always, and the decision
// only where both interleavings reach the same one.
func (a *auditor) reservations(k string, fa, fb *SKU, t inventory.State) {
	ra, rb := byID(fa.State.Reservations), map[string]inventory.Reservation{}
	if fb != nil {
		rb = byID(fb.State.Reservations)
	}
	rt := byID(t.Reservations)
	for id, r := range rt {
		if !fa.Requested[id] {
			a.diverged("stock-table", k, "reservation "+id+" was never requested on the demand log", fmtReservation(r), "(none)")
			continue
		}
		f, ok := ra[id]
		if !ok {
			a.rep.OrderDependent++ // not recorded (unknown SKU) or pruned in one of them
			continue
		}
		if facts(r) != facts(f) {
			a.diverged("stock-table", k, "reservation "+id, fmtReservation(r), fmtReservation(f))
			continue
		}
		if b, ok := rb[id]; !ok || decision(b) != decision(f) {
			a.rep.OrderDependent++
			continue
		}
		if decision(r) != decision(f) {
			a.diverged("stock-table", k, "reservation "+id+" decision", fmtReservation(r), fmtReservation(f))
		}
	}
	for id, f := range ra {
		if _, ok := rt[id]; ok || f.Status != inventory.StatusHeld {
			continue
		}
		if b, ok := rb[id]; ok && b.Status == inventory.StatusHeld {
			a.diverged("stock-table", k, "reservation "+id+" held in the fold, missing from the table", "(none)", fmtReservation(f))
		}
	}
}

// availability compares the latest published answer with the fold's
// answer at the record's evaluated_at, and checks that an answer due to
// change on its own was republished.
func (a *auditor) availability(k string, fa *SKU, final schema.PolicyGetter) {
	raw, published := a.material[string(schema.Availability)][k]
	if fa == nil || !fa.Stored {
		if published {
			a.diverged("availability", k, "published for a SKU the log's fold stores nothing for", fmtRecord(decodeRecord(raw)), "(none)")
		}
		return
	}
	pol, _ := schema.Gather(fa.State, final, a.o.Base)
	if !published {
		empty, _ := schema.Gather(inventory.State{SKU: k}, final, a.o.Base)
		snap := inventory.Evaluate(fa.State, pol, a.now)
		if snap.Version != inventory.Evaluate(inventory.State{SKU: k}, empty, a.now).Version {
			a.diverged("availability", k, "no answer published", "(none)", fmtSnapshot(snap))
		}
		return
	}
	rec := decodeRecord(raw)
	if rec == nil {
		a.diverged("availability", k, "record does not decode", fmt.Sprintf("%d bytes", len(raw)), "")
		return
	}
	at := rec.GetEvaluatedAt().AsTime()
	snap := inventory.Evaluate(fa.State, pol, at)
	if snap.Version != rec.GetVersion() {
		a.diverged("availability", k, "latest published answer differs from the log's answer at its evaluated_at "+at.Format(time.RFC3339Nano),
			fmtRecord(rec), fmtSnapshot(snap))
		return
	}
	if next := rec.GetNextChangeAt(); next != nil && next.AsTime().Add(a.o.Grace).Before(a.now) {
		if cur := inventory.Evaluate(fa.State, pol, a.now); cur.Version != rec.GetVersion() {
			a.diverged("availability", k, "answer changed on its own at "+next.AsTime().Format(time.RFC3339Nano)+" and was not republished",
				fmtRecord(rec), fmtSnapshot(cur))
		}
	}
}

func (a *auditor) order(k string, fa, fb *Order, t inventory.Order, inTable bool) {
	found := fa != nil && fa.Found
	switch {
	case !found && !inTable:
		return
	case !inTable:
		a.diverged("orders-table", k, "missing from the table", "(none)", fmtOrder(fa.Order))
		return
	case !found:
		a.diverged("orders-table", k, "in the table, but the log's fold has no such order", fmtOrder(t), "(none)")
		return
	}
	if orderFacts(t) != orderFacts(fa.Order) {
		a.diverged("orders-table", k, "order", fmtOrder(t), fmtOrder(fa.Order))
		return
	}
	if fb == nil || orderDecision(fb.Order) != orderDecision(fa.Order) {
		a.rep.OrderDependent++
		return
	}
	if orderDecision(t) != orderDecision(fa.Order) {
		a.diverged("orders-table", k, "order status", fmtOrder(t), fmtOrder(fa.Order))
	}
}

// keysOf and union list map keys, sorted.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range append(a, b...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func enc(s inventory.State) []byte {
	b, _ := codecs.State{}.Encode(s)
	return b
}

func skuPolicies(s inventory.State) inventory.State {
	return inventory.State{SKU: s.SKU, ChannelRules: s.ChannelRules, SalesCaps: s.SalesCaps, Backorder: s.Backorder, SafetyOverrides: s.SafetyOverrides}
}

func byID(rs []inventory.Reservation) map[string]inventory.Reservation {
	out := make(map[string]inventory.Reservation, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// facts are what the request said: identical whatever the interleaving.
func facts(r inventory.Reservation) string {
	return fmt.Sprintf("order %s channel %s quantity %d", r.OrderID, r.Channel, r.Quantity)
}

// decision is what the SKU decided and what became of it, without the
// processing-time fields (DecidedAt, ExpiresAt, ClosedAt, release reason).
func decision(r inventory.Reservation) string {
	return fmt.Sprintf("%s backorder=%v reject=%d shipped=%d", resStatus(r.Status), r.Backorder, r.Reject, r.FulfilledUnits())
}

func resStatus(s inventory.ReservationStatus) string {
	switch s {
	case inventory.StatusHeld:
		return "held"
	case inventory.StatusReleased:
		return "released"
	case inventory.StatusFulfilled:
		return "fulfilled"
	case inventory.StatusRejected:
		return "rejected"
	}
	return fmt.Sprintf("status %d", int(s))
}

func orderFacts(o inventory.Order) string {
	var b strings.Builder
	fmt.Fprintf(&b, "channel %s ttl %s ship-to %q placed %s lines", o.Channel, o.ReservationTTL, o.ShipTo, o.PlacedAt.UTC().Format(time.RFC3339Nano))
	for _, l := range o.Lines {
		fmt.Fprintf(&b, " [%s %s x%d]", l.ReservationID, l.SKU, l.Quantity)
	}
	return b.String()
}

func orderDecision(o inventory.Order) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", o.Status)
	for _, l := range o.Lines {
		fmt.Fprintf(&b, " [%s %s shipped %d]", l.ReservationID, l.Status, l.Fulfilled)
	}
	return b.String()
}

func orNone(s string, ok bool) string {
	if !ok {
		return "(none)"
	}
	return s
}

func decodeRecord(raw []byte) *pb.Availability {
	v, err := codecs.Availability.Decode(raw)
	if err != nil {
		return nil
	}
	return v.(*pb.Availability)
}
