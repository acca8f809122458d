package inventory_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// invalidCase is one broken field of an otherwise valid value; field is a
// fragment the error message must contain.
type invalidCase struct {
	name  string
	v     interface{ Validate() error }
	field string
}

// breakEach applies every change to a fresh valid value.
func breakEach[V interface{ Validate() error }](valid func() V, changes map[string]struct {
	field string
	f     func(*V)
}) []invalidCase {
	var out []invalidCase
	for name, c := range changes {
		v := valid()
		c.f(&v)
		out = append(out, invalidCase{name, v, c.field})
	}
	slices.SortFunc(out, func(a, b invalidCase) int { return strings.Compare(a.name, b.name) })
	return out
}

type change[V any] = struct {
	field string
	f     func(*V)
}

func validEligibility() inventory.ChannelEligibility { return sellable("web", true, at(0)) }
func validCap() inventory.SalesCap                   { return salesCap("web", 5, at(1), at(2), at(0)) }
func validBackorder() inventory.BackorderLimit       { return backorder(3, at(0)) }
func validSafety() inventory.SafetyStockOverride     { return safety("WH-1", 2, at(0)) }
func validLocationPolicy() inventory.LocationPolicy {
	return inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindWarehouse, Channels: []string{"web"}, SafetyStock: 1, AsOf: at(0)}
}
func validMerchantLocation() inventory.LocationPolicy {
	return inventory.LocationPolicy{Location: "MC-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(0)}
}
func validMerchantPolicy() inventory.MerchantPolicy {
	return inventory.MerchantPolicy{MerchantID: "acme", StaleAfter: time.Hour, AsOf: at(0)}
}

// badTimes breaks a time field every way checkTime rejects.
func badTimes[V any](field string, set func(*V, time.Time)) map[string]change[V] {
	out := map[string]change[V]{}
	for name, tm := range map[string]time.Time{
		"missing": {}, "before 1970": beforeEpoch, "at the epoch (an unset protobuf timestamp)": epoch,
		"at 2200": firstAfter, "far future": time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		out[field+" "+name] = change[V]{field, func(v *V) { set(v, tm) }}
	}
	return out
}

// badIDs breaks an id field every way ValidateID rejects.
func badIDs[V any](field string, set func(*V, string)) map[string]change[V] {
	out := map[string]change[V]{}
	for name, id := range map[string]string{"empty": "", "long": long65, "bad chars": "a b", "slash": "a/b", "non-ascii": "caf\u00e9"} {
		out[field+" "+name] = change[V]{field, func(v *V) { set(v, id) }}
	}
	if field == "sku" { // SKUs follow the SKU rule (ids_test.go)
		clear(out)
		for name, b := range badSKUs {
			out[field+" "+name] = change[V]{field, func(v *V) { set(v, b.sku) }}
		}
	}
	return out
}

// badUnits breaks a non-negative count field.
func badUnits[V any](field string, set func(*V, int64)) map[string]change[V] {
	out := map[string]change[V]{}
	for name, n := range map[string]int64{"negative": -1, "min int": math.MinInt64, "absurd": inventory.MaxUnits + 1, "max int": math.MaxInt64} {
		out[field+" "+name] = change[V]{field, func(v *V) { set(v, n) }}
	}
	return out
}

func merge[V any](ms ...map[string]change[V]) map[string]change[V] {
	out := map[string]change[V]{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func invalidPolicyEvents() []invalidCase {
	type CE = inventory.ChannelEligibility
	type SC = inventory.SalesCap
	type BL = inventory.BackorderLimit
	type SO = inventory.SafetyStockOverride
	var out []invalidCase
	add := func(prefix string, cs []invalidCase) {
		for _, c := range cs {
			c.name = prefix + ": " + c.name
			out = append(out, c)
		}
	}
	add("eligibility", breakEach(validEligibility, merge(
		badIDs("sku", func(e *CE, s string) { e.SKU = s }),
		badIDs("channel", func(e *CE, s string) { e.Channel = s }),
		badTimes("as_of", func(e *CE, t time.Time) { e.AsOf = t }),
	)))
	add("sales cap", breakEach(validCap, merge(
		badIDs("sku", func(e *SC, s string) { e.SKU = s }),
		badIDs("channel", func(e *SC, s string) { e.Channel = s }),
		badTimes("as_of", func(e *SC, t time.Time) { e.AsOf = t }),
		badTimes("window_start", func(e *SC, t time.Time) { e.WindowStart = t }),
		badTimes("window_end", func(e *SC, t time.Time) { e.WindowEnd = t; e.WindowStart = at(-1) }),
		badUnits("limit", func(e *SC, n int64) { e.Limit = n }),
		map[string]change[SC]{
			"window_end equal to window_start":  {"window_end", func(e *SC) { e.WindowEnd = e.WindowStart }},
			"window_end before window_start":    {"window_end", func(e *SC) { e.WindowEnd = e.WindowStart.Add(-time.Nanosecond) }},
			"window_end equal in another zone":  {"window_end", func(e *SC) { e.WindowEnd = e.WindowStart.In(zonePlus2) }},
			"cleared still needs a sku":         {"sku", func(e *SC) { e.Cleared, e.SKU = true, "" }},
			"cleared still needs a channel":     {"channel", func(e *SC) { e.Cleared, e.Channel = true, "" }},
			"cleared still needs as_of":         {"as_of", func(e *SC) { e.Cleared, e.AsOf = true, time.Time{} }},
			"window_start missing, end present": {"window_start", func(e *SC) { e.WindowStart = time.Time{} }},
		},
	)))
	add("backorder", breakEach(validBackorder, merge(
		badIDs("sku", func(e *BL, s string) { e.SKU = s }),
		badUnits("limit", func(e *BL, n int64) { e.Limit = n }),
		badTimes("as_of", func(e *BL, t time.Time) { e.AsOf = t }),
	)))
	add("safety override", breakEach(validSafety, merge(
		badIDs("sku", func(e *SO, s string) { e.SKU = s }),
		badIDs("location", func(e *SO, s string) { e.Location = s }),
		badUnits("units", func(e *SO, n int64) { e.Units = n }),
		badTimes("as_of", func(e *SO, t time.Time) { e.AsOf = t }),
	)))
	return out
}

func invalidLocationPolicies() []invalidCase {
	type LP = inventory.LocationPolicy
	out := breakEach(validLocationPolicy, merge(
		badIDs("location", func(p *LP, s string) { p.Location = s }),
		badUnits("safety_stock", func(p *LP, n int64) { p.SafetyStock = n }),
		badTimes("as_of", func(p *LP, t time.Time) { p.AsOf = t }),
		badIDs("channel", func(p *LP, s string) { p.Channels = []string{"web", s} }),
		map[string]change[LP]{
			"kind unset":                   {"kind", func(p *LP) { p.Kind = 0 }},
			"kind unknown":                 {"kind", func(p *LP) { p.Kind = 4 }},
			"kind negative":                {"kind", func(p *LP) { p.Kind = -1 }},
			"warehouse with a merchant id": {"merchant_id", func(p *LP) { p.MerchantID = "acme" }},
			"store with a merchant id":     {"merchant_id", func(p *LP) { p.Kind, p.MerchantID = inventory.KindStore, "acme" }},
		},
	))
	for _, c := range breakEach(validMerchantLocation, merge(
		badIDs("merchant_id", func(p *LP, s string) { p.MerchantID = s }),
	)) {
		c.name = "merchant location: " + c.name
		out = append(out, c)
	}
	return out
}

func invalidMerchantPolicies() []invalidCase {
	type MP = inventory.MerchantPolicy
	return breakEach(validMerchantPolicy, merge(
		badIDs("merchant_id", func(p *MP, s string) { p.MerchantID = s }),
		badTimes("as_of", func(p *MP, t time.Time) { p.AsOf = t }),
		map[string]change[MP]{
			"stale_after negative":           {"stale_after", func(p *MP) { p.StaleAfter = -time.Nanosecond }},
			"stale_after min":                {"stale_after", func(p *MP) { p.StaleAfter = math.MinInt64 }},
			"stale_after beyond the limit":   {"stale_after", func(p *MP) { p.StaleAfter = inventory.MaxStaleAfter + 1 }},
			"stale_after max int":            {"stale_after", func(p *MP) { p.StaleAfter = math.MaxInt64 }},
			"stale_after negative and no id": {"merchant_id", func(p *MP) { p.StaleAfter, p.MerchantID = -1, "" }},
		},
	))
}

func checkInvalid(t *testing.T, tt invalidCase) {
	t.Helper()
	err := tt.v.Validate()
	if !errors.Is(err, inventory.ErrInvalidEvent) {
		t.Fatalf("%+v: Validate() = %v, want ErrInvalidEvent", tt.v, err)
	}
	if !strings.Contains(err.Error(), tt.field) {
		t.Errorf("Validate() = %q, want it to name %q", err, tt.field)
	}
	if !inventory.IsInvalid(err) {
		t.Errorf("IsInvalid(%v) = false", err)
	}
}

func TestPolicyEventValidate(t *testing.T) {
	valid := []interface{ Validate() error }{
		validEligibility(),
		sellable("web", false, lastValid),
		sellable(long64, true, epoch.Add(time.Nanosecond)),
		validCap(),
		salesCap("web", 0, at(0), at(0).Add(time.Nanosecond), at(0)),
		salesCap("web", inventory.MaxUnits, epoch.Add(time.Nanosecond), lastValid, at(0)),
		salesCap("web", 1, at(5), at(6).In(zoneMinus5), at(0)), // the zone does not matter
		capCleared("web", at(0)),
		// A cleared cap carries no limit or window, so theirs are not checked.
		inventory.SalesCap{SKU: sku, Channel: "web", Cleared: true, Limit: -1, WindowStart: at(5), WindowEnd: at(1), AsOf: at(0)},
		validBackorder(),
		backorder(0, at(0)),
		backorder(inventory.MaxUnits, at(0)),
		validSafety(),
		safety("WH-1", 0, at(0)),
		safety(long64, inventory.MaxUnits, at(0)),
		safetyCleared("WH-1", at(0)),
	}
	for _, v := range valid {
		if err := v.Validate(); err != nil {
			t.Errorf("%T %+v: Validate() = %v, want nil", v, v, err)
		}
	}
	for _, tt := range invalidPolicyEvents() {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, tt) })
	}
}

func TestLocationPolicyValidate(t *testing.T) {
	valid := []inventory.LocationPolicy{
		validLocationPolicy(),
		validMerchantLocation(),
		{Location: "ST-1", Kind: inventory.KindStore, Closed: true, AsOf: at(0)},
		{Location: long64, Kind: inventory.KindWarehouse, SafetyStock: inventory.MaxUnits, AsOf: lastValid},
		{Location: "WH-1", Kind: inventory.KindWarehouse, Channels: []string{"web", "web", "app"}, AsOf: at(0)},
	}
	for _, p := range valid {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: Validate() = %v, want nil", p, err)
		}
	}
	for _, tt := range invalidLocationPolicies() {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, tt) })
	}
}

func TestMerchantPolicyValidate(t *testing.T) {
	valid := []inventory.MerchantPolicy{
		validMerchantPolicy(),
		{MerchantID: "acme", AsOf: at(0)}, // 0: the configured default
		{MerchantID: "acme", StaleAfter: time.Nanosecond, AsOf: at(0)},
		{MerchantID: long64, StaleAfter: inventory.MaxStaleAfter, AsOf: lastValid},
	}
	for _, p := range valid {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: Validate() = %v, want nil", p, err)
		}
	}
	for _, tt := range invalidMerchantPolicies() {
		t.Run(tt.name, func(t *testing.T) { checkInvalid(t, tt) })
	}
}

func TestPolicyValidateReportsEveryProblem(t *testing.T) {
	tests := []struct {
		v      interface{ Validate() error }
		fields []string
	}{
		{inventory.ChannelEligibility{}, []string{"sku", "channel", "as_of"}},
		{inventory.SalesCap{Limit: -1}, []string{"sku", "channel", "as_of", "limit", "window_start", "window_end"}},
		{inventory.BackorderLimit{Limit: -1}, []string{"sku", "limit", "as_of"}},
		{inventory.SafetyStockOverride{Units: -1}, []string{"sku", "location", "units", "as_of"}},
		{inventory.LocationPolicy{SafetyStock: -1, Channels: []string{""}}, []string{"location", "safety_stock", "as_of", "kind", "channel"}},
		{inventory.LocationPolicy{Kind: inventory.KindMerchant}, []string{"location", "as_of", "merchant_id"}},
		{inventory.MerchantPolicy{StaleAfter: -1}, []string{"merchant_id", "as_of", "stale_after"}},
	}
	for _, tt := range tests {
		err := tt.v.Validate()
		if !errors.Is(err, inventory.ErrInvalidEvent) {
			t.Errorf("%T: Validate() = %v, want ErrInvalidEvent", tt.v, err)
			continue
		}
		for _, f := range tt.fields {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("%T.Validate() = %q, want it to name %s", tt.v, err, f)
			}
		}
	}
}

// Apply rejects every invalid SKU policy event with ErrInvalidEvent and
// returns the state it was given, untouched.
func TestApplyRejectsInvalidPolicyEvents(t *testing.T) {
	starts := fuzzStarts(t)
	for _, tt := range invalidPolicyEvents() {
		t.Run(tt.name, func(t *testing.T) {
			for _, start := range starts {
				before := cloneState(start)
				got, res, err := inventory.Apply(start, tt.v.(inventory.Event), t0)
				if !errors.Is(err, inventory.ErrInvalidEvent) || res.Changed {
					t.Fatalf("Apply = changed %v, %v; want ErrInvalidEvent", res.Changed, err)
				}
				assertStateEqual(t, got, before, "state returned with the error")
				assertStateEqual(t, start, before, "input state")
			}
		})
	}
	// A valid policy for another SKU is rejected by a state that has one.
	for _, ev := range []inventory.Event{
		inventory.ChannelEligibility{SKU: "SKU-2", Channel: "web", AsOf: at(0)},
		inventory.SalesCap{SKU: "SKU-2", Channel: "web", Cleared: true, AsOf: at(0)},
		inventory.BackorderLimit{SKU: "SKU-2", AsOf: at(0)},
		inventory.SafetyStockOverride{SKU: "SKU-2", Location: "WH-1", AsOf: at(0)},
	} {
		if _, _, err := inventory.Apply(inventory.State{SKU: sku}, ev, t0); !errors.Is(err, inventory.ErrInvalidEvent) {
			t.Errorf("%T for another sku: %v, want ErrInvalidEvent", ev, err)
		}
		if s, _, err := inventory.Apply(inventory.State{}, ev, t0); err != nil || s.SKU != "SKU-2" {
			t.Errorf("%T into an empty state: sku %q err %v", ev, s.SKU, err)
		}
	}
}

func TestPolicyEventSKU(t *testing.T) {
	for _, ev := range []inventory.Event{validEligibility(), validCap(), validBackorder(), validSafety(), lvl("WH-1", 1, at(0), 0), adj("e", "WH-1", 1, at(0))} {
		if ev.EventSKU() != sku {
			t.Errorf("%T.EventSKU() = %q, want %q", ev, ev.EventSKU(), sku)
		}
	}
}

// TestSKUPolicyNewestWins: for each subject the newest AsOf wins whatever
// the arrival order, and exact ties are decided the same way in every order.
func TestSKUPolicyNewestWins(t *testing.T) {
	tests := []struct {
		name string
		evs  []inventory.Event
		want inventory.State // SKU filled in
	}{
		{
			name: "eligibility: newest wins per channel",
			evs:  []inventory.Event{sellable("web", false, at(1)), sellable("web", true, at(2)), sellable("app", false, at(1)), sellable("web", false, at(1).Add(time.Second-1))},
			want: inventory.State{ChannelRules: []inventory.ChannelRule{{Channel: "app", AsOf: at(1)}, {Channel: "web", Sellable: true, AsOf: at(2)}}},
		},
		{
			name: "eligibility: a tie is broken the same way in every order",
			evs:  []inventory.Event{sellable("web", false, at(1)), sellable("web", true, at(1).In(zonePlus2))},
			want: inventory.State{ChannelRules: []inventory.ChannelRule{{Channel: "web", Sellable: true, AsOf: at(1)}}},
		},
		{
			name: "sales cap: newest wins, a clear wipes the cap's fields",
			evs: []inventory.Event{salesCap("web", 5, at(1), at(9), at(1)), capCleared("web", at(2)),
				salesCap("app", 5, at(1), at(9), at(1)), salesCap("app", 7, at(3), at(4).In(zoneMinus5), at(3))},
			want: inventory.State{SalesCaps: []inventory.SalesCapRule{
				{Channel: "app", Limit: 7, WindowStart: at(3), WindowEnd: at(4), AsOf: at(3)},
				{Channel: "web", Cleared: true, AsOf: at(2)},
			}},
		},
		{
			name: "sales cap: an older cap does not undo a clear",
			evs:  []inventory.Event{capCleared("web", at(5)), salesCap("web", 5, at(1), at(9), at(4))},
			want: inventory.State{SalesCaps: []inventory.SalesCapRule{{Channel: "web", Cleared: true, AsOf: at(5)}}},
		},
		{
			name: "backorder: newest wins",
			evs:  []inventory.Event{backorder(4, at(2)), backorder(9, at(1)), backorder(0, at(3)), backorder(7, at(2))},
			want: inventory.State{Backorder: inventory.BackorderRule{Limit: 0, AsOf: at(3)}},
		},
		{
			name: "backorder: a tie is decided by content",
			evs:  []inventory.Event{backorder(4, at(2)), backorder(3, at(2))},
			want: inventory.State{Backorder: inventory.BackorderRule{Limit: 4, AsOf: at(2)}},
		},
		{
			name: "safety override: newest wins per location, clear keeps no units",
			evs: []inventory.Event{safety("WH-1", 3, at(1)), safetyCleared("WH-1", at(2)), safety("WH-2", 1, at(2)),
				safety("WH-2", 5, at(1)), safety("WH-0", 0, at(1))},
			want: inventory.State{SafetyOverrides: []inventory.SafetyOverrideRule{
				{Location: "WH-0", AsOf: at(1)}, {Location: "WH-1", Cleared: true, AsOf: at(2)}, {Location: "WH-2", Units: 1, AsOf: at(2)},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.SKU = sku
			for _, order := range permutations(tt.evs) {
				s := applyAll(t, inventory.State{}, order...)
				checkState(t, s)
				assertStateEqual(t, s, tt.want, fmt.Sprintf("after %+v", order))
				for _, ev := range tt.evs {
					again, res, err := inventory.Apply(s, inZone(ev, zoneMinus5), t0)
					if err != nil || res.Changed || !reflect.DeepEqual(again, s) {
						t.Fatalf("re-sending %+v: changed=%v err=%v", ev, res.Changed, err)
					}
				}
			}
		})
	}
}

// Policies and stock live side by side: a policy event never touches stock
// and a stock event never touches policies.
func TestPoliciesAndStockIndependent(t *testing.T) {
	stock := []inventory.Event{lvl("WH-1", 5, at(1), 0), adj("a", "WH-1", 1, at(2))}
	pols := []inventory.Event{sellable("web", false, at(1)), salesCap("web", 1, at(1), at(2), at(1)), backorder(1, at(1)), safety("WH-1", 1, at(1))}
	s := applyAll(t, inventory.State{}, stock...)
	p := applyAll(t, inventory.State{}, pols...)
	both := applyAll(t, s, pols...)
	if !reflect.DeepEqual(both.Locations, s.Locations) {
		t.Errorf("policies changed the stock: %+v", both.Locations)
	}
	want := p
	want.Locations = s.Locations
	assertStateEqual(t, both, want, "stock and policies")
}

// --- Location and merchant policies -------------------------------------

func TestApplyLocationPolicy(t *testing.T) {
	base := validLocationPolicy()
	with := func(f func(*inventory.LocationPolicy)) inventory.LocationPolicy {
		p := validLocationPolicy()
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		cur     inventory.LocationPolicy
		found   bool
		ev      inventory.LocationPolicy
		want    inventory.LocationPolicy
		changed bool
		err     bool
	}{
		{name: "first policy is normalised", ev: with(func(p *inventory.LocationPolicy) {
			p.AsOf = at(0).In(zonePlus2)
			p.Channels = []string{"web", "app", "web", "pickup"}
		}), want: with(func(p *inventory.LocationPolicy) { p.Channels = []string{"app", "pickup", "web"} }), changed: true},
		{name: "empty channels become nil", ev: with(func(p *inventory.LocationPolicy) { p.Channels = []string{} }),
			want: with(func(p *inventory.LocationPolicy) { p.Channels = nil }), changed: true},
		{name: "not found ignores whatever cur holds", cur: inventory.LocationPolicy{Location: "X"}, ev: base, want: base, changed: true},
		{name: "newer wins", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.AsOf, p.Closed = at(1), true }),
			want: with(func(p *inventory.LocationPolicy) { p.AsOf, p.Closed = at(1), true }), changed: true},
		{name: "older loses", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.AsOf, p.Closed = at(-1), true }), want: base},
		{name: "duplicate changes nothing", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.AsOf = at(0).In(zoneMinus5) }), want: base},
		{name: "duplicate with channels in another order", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.Channels = []string{"web", "web"} }), want: base},
		{name: "kind changes with a newer policy", cur: base, found: true,
			ev:   inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(1)},
			want: inventory.LocationPolicy{Location: "WH-1", Kind: inventory.KindMerchant, MerchantID: "acme", AsOf: at(1)}, changed: true},
		{name: "invalid returns cur", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.AsOf, p.Kind = at(5), 0 }), want: base, err: true},
		{name: "invalid with nothing current", ev: with(func(p *inventory.LocationPolicy) { p.SafetyStock = -1 }), want: inventory.LocationPolicy{}, err: true},
		{name: "another location's policy", cur: base, found: true, ev: with(func(p *inventory.LocationPolicy) { p.Location, p.AsOf = "WH-2", at(5) }), want: base, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evChannels := slices.Clone(tt.ev.Channels)
			got, res, err := inventory.ApplyLocationPolicy(tt.cur, tt.found, tt.ev)
			if (err != nil) != tt.err || err != nil && !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("err = %v, want error %v wrapping ErrInvalidEvent", err, tt.err)
			}
			if res.Changed != tt.changed {
				t.Errorf("Changed = %v, want %v", res.Changed, tt.changed)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.AsOf.Location() != time.UTC && !got.AsOf.IsZero() {
				t.Errorf("AsOf %v not in UTC", got.AsOf)
			}
			if !slices.Equal(tt.ev.Channels, evChannels) {
				t.Errorf("the event's channels were modified: %v, was %v", tt.ev.Channels, evChannels)
			}
		})
	}
}

func TestApplyMerchantPolicy(t *testing.T) {
	base := validMerchantPolicy()
	with := func(f func(*inventory.MerchantPolicy)) inventory.MerchantPolicy {
		p := validMerchantPolicy()
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		cur     inventory.MerchantPolicy
		found   bool
		ev      inventory.MerchantPolicy
		want    inventory.MerchantPolicy
		changed bool
		err     bool
	}{
		{name: "first policy is normalised", ev: with(func(p *inventory.MerchantPolicy) { p.AsOf = at(0).In(zonePlus2) }), want: base, changed: true},
		{name: "newer wins", cur: base, found: true, ev: with(func(p *inventory.MerchantPolicy) { p.AsOf, p.StaleAfter = at(1), 0 }),
			want: with(func(p *inventory.MerchantPolicy) { p.AsOf, p.StaleAfter = at(1), 0 }), changed: true},
		{name: "older loses", cur: base, found: true, ev: with(func(p *inventory.MerchantPolicy) { p.AsOf, p.StaleAfter = at(-1), time.Minute }), want: base},
		{name: "duplicate changes nothing", cur: base, found: true, ev: base, want: base},
		{name: "invalid returns cur", cur: base, found: true, ev: with(func(p *inventory.MerchantPolicy) { p.AsOf, p.StaleAfter = at(5), -1 }), want: base, err: true},
		{name: "another merchant's policy", cur: base, found: true, ev: with(func(p *inventory.MerchantPolicy) { p.MerchantID, p.AsOf = "other", at(5) }), want: base, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, res, err := inventory.ApplyMerchantPolicy(tt.cur, tt.found, tt.ev)
			if (err != nil) != tt.err || err != nil && !errors.Is(err, inventory.ErrInvalidEvent) {
				t.Fatalf("err = %v, want error %v wrapping ErrInvalidEvent", err, tt.err)
			}
			if res.Changed != tt.changed || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v changed=%v, want %+v changed=%v", got, res.Changed, tt.want, tt.changed)
			}
		})
	}
	// Ties on AsOf are decided the same way in both orders.
	a, b := with(func(p *inventory.MerchantPolicy) { p.StaleAfter = time.Minute }), with(func(p *inventory.MerchantPolicy) { p.StaleAfter = time.Hour })
	ab, _, _ := inventory.ApplyMerchantPolicy(a, true, b)
	ba, _, _ := inventory.ApplyMerchantPolicy(b, true, a)
	if !reflect.DeepEqual(ab, ba) {
		t.Errorf("tie decided by arrival order: %+v vs %+v", ab, ba)
	}
}

// Invalid location and merchant policies are rejected with ErrInvalidEvent
// and the current value comes back unchanged.
func TestApplyPolicyRejectsInvalid(t *testing.T) {
	curLoc := validLocationPolicy()
	for _, tt := range invalidLocationPolicies() {
		for _, found := range []bool{false, true} {
			got, res, err := inventory.ApplyLocationPolicy(curLoc, found, tt.v.(inventory.LocationPolicy))
			if !errors.Is(err, inventory.ErrInvalidEvent) || res.Changed || !reflect.DeepEqual(got, curLoc) {
				t.Errorf("%s (found %v): got %+v changed=%v err=%v", tt.name, found, got, res.Changed, err)
			}
		}
	}
	curM := validMerchantPolicy()
	for _, tt := range invalidMerchantPolicies() {
		for _, found := range []bool{false, true} {
			got, res, err := inventory.ApplyMerchantPolicy(curM, found, tt.v.(inventory.MerchantPolicy))
			if !errors.Is(err, inventory.ErrInvalidEvent) || res.Changed || !reflect.DeepEqual(got, curM) {
				t.Errorf("%s (found %v): got %+v changed=%v err=%v", tt.name, found, got, res.Changed, err)
			}
		}
	}
}

// Generators for location and merchant policy events of one subject, with
// few distinct times so ties are common.

func genLocationPolicyFor(loc string) *rapid.Generator[inventory.LocationPolicy] {
	return rapid.Custom(func(t *rapid.T) inventory.LocationPolicy {
		p := inventory.LocationPolicy{
			Location:    loc,
			Kind:        rapid.SampledFrom([]inventory.LocationKind{inventory.KindWarehouse, inventory.KindStore, inventory.KindMerchant}).Draw(t, "kind"),
			Closed:      rapid.Bool().Draw(t, "closed"),
			Channels:    rapid.SliceOfN(genChannel, 0, 3).Draw(t, "channels"),
			SafetyStock: rapid.Int64Range(0, 3).Draw(t, "safety_stock"),
			AsOf:        drawTime(t, "as_of"),
		}
		if p.Kind == inventory.KindMerchant {
			p.MerchantID = rapid.SampledFrom([]string{"M1", "M2"}).Draw(t, "merchant")
		}
		if rapid.IntRange(0, 9).Draw(t, "invalid") == 0 {
			p.SafetyStock = -1
		}
		return p
	})
}

var genMerchantPolicy = rapid.Custom(func(t *rapid.T) inventory.MerchantPolicy {
	p := inventory.MerchantPolicy{
		MerchantID: "M1",
		StaleAfter: time.Duration(rapid.IntRange(0, 3).Draw(t, "stale_after")) * time.Second,
		AsOf:       drawTime(t, "as_of"),
	}
	if rapid.IntRange(0, 9).Draw(t, "invalid") == 0 {
		p.StaleAfter = -time.Second
	}
	return p
})

// foldPolicy folds policy events with apply, as the policy table does,
// skipping (dead-lettering) the ones it rejects.
func foldPolicy[P any](t *rapid.T, apply func(P, bool, P) (P, inventory.Result, error), evs []P) (P, bool) {
	var cur P
	found := false
	for _, ev := range evs {
		next, res, err := apply(cur, found, ev)
		if err != nil {
			if res.Changed || !reflect.DeepEqual(next, cur) {
				t.Fatalf("rejected %+v but returned %+v changed=%v", ev, next, res.Changed)
			}
			continue
		}
		if !res.Changed && !reflect.DeepEqual(next, cur) {
			t.Fatalf("unchanged but returned %+v for %+v", next, cur)
		}
		cur, found = next, true
	}
	return cur, found
}

// policyModel is the brute-force answer: normalise every valid event and
// take the one that beats all others.
func policyModel[P any](evs []P, validate func(P) error, normalise func(P) P, asOf func(P) time.Time) (P, bool) {
	var best P
	found := false
	for _, ev := range evs {
		if validate(ev) != nil {
			continue
		}
		n := normalise(ev)
		if !found || beats(asOf(n), n, asOf(best), best) {
			best, found = n, true
		}
	}
	return best, found
}

func normaliseLocationPolicy(p inventory.LocationPolicy) inventory.LocationPolicy {
	p.AsOf = p.AsOf.UTC()
	var chans []string
	for _, c := range p.Channels {
		if !slices.Contains(chans, c) {
			chans = append(chans, c)
		}
	}
	slices.Sort(chans)
	p.Channels = chans
	return p
}

// ApplyLocationPolicy is newest-wins against the brute-force model,
// idempotent, and independent of order and duplicates.
func TestPropertyApplyLocationPolicy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := rapid.SliceOfN(genLocationPolicyFor("WH-1"), 1, 12).Draw(t, "events")
		got, found := foldPolicy(t, inventory.ApplyLocationPolicy, evs)
		want, wantFound := policyModel(evs, inventory.LocationPolicy.Validate, normaliseLocationPolicy,
			func(p inventory.LocationPolicy) time.Time { return p.AsOf })
		if found != wantFound || !reflect.DeepEqual(got, want) {
			t.Fatalf("fold = %+v (found %v), model = %+v (found %v)", got, found, want, wantFound)
		}
		dup := append(slices.Clone(evs), rapid.SliceOfN(rapid.SampledFrom(evs), 0, len(evs)).Draw(t, "duplicates")...)
		again, _ := foldPolicy(t, inventory.ApplyLocationPolicy, rapid.Permutation(dup).Draw(t, "order"))
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("another order with duplicates: %+v, want %+v", again, got)
		}
		if found {
			ev := rapid.SampledFrom(evs).Draw(t, "resend")
			next, res, err := inventory.ApplyLocationPolicy(got, true, ev)
			if err == nil && (res.Changed || !reflect.DeepEqual(next, got)) {
				t.Fatalf("re-sending %+v changed the winner %+v to %+v", ev, got, next)
			}
		}
	})
}

func TestPropertyApplyMerchantPolicy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		evs := rapid.SliceOfN(genMerchantPolicy, 1, 12).Draw(t, "events")
		got, found := foldPolicy(t, inventory.ApplyMerchantPolicy, evs)
		want, wantFound := policyModel(evs, inventory.MerchantPolicy.Validate,
			func(p inventory.MerchantPolicy) inventory.MerchantPolicy { p.AsOf = p.AsOf.UTC(); return p },
			func(p inventory.MerchantPolicy) time.Time { return p.AsOf })
		if found != wantFound || !reflect.DeepEqual(got, want) {
			t.Fatalf("fold = %+v (found %v), model = %+v (found %v)", got, found, want, wantFound)
		}
		dup := append(slices.Clone(evs), rapid.SliceOfN(rapid.SampledFrom(evs), 0, len(evs)).Draw(t, "duplicates")...)
		again, _ := foldPolicy(t, inventory.ApplyMerchantPolicy, rapid.Permutation(dup).Draw(t, "order"))
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("another order with duplicates: %+v, want %+v", again, got)
		}
		if found {
			ev := rapid.SampledFrom(evs).Draw(t, "resend")
			next, res, err := inventory.ApplyMerchantPolicy(got, true, ev)
			if err == nil && (res.Changed || !reflect.DeepEqual(next, got)) {
				t.Fatalf("re-sending %+v changed the winner %+v to %+v", ev, got, next)
			}
		}
	})
}
