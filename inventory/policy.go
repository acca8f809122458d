package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SKU-level policies. Each is absolute: for one SKU and subject (a channel
// or a location) the newest AsOf wins, and an exact tie is broken by the
// content, so the winner never depends on arrival order.

// ChannelEligibility says whether the SKU may be sold on a channel at all.
// A SKU is sellable on every channel until told otherwise.
type ChannelEligibility struct {
	SKU      string
	Channel  string
	Sellable bool
	AsOf     time.Time
}

// SalesCap accepts at most Limit units of the SKU on Channel within
// [WindowStart, WindowEnd). Cleared removes the cap.
type SalesCap struct {
	SKU         string
	Channel     string
	Limit       int64
	WindowStart time.Time
	WindowEnd   time.Time
	Cleared     bool
	AsOf        time.Time
}

// BackorderLimit lets the SKU promise up to Limit units beyond stock.
type BackorderLimit struct {
	SKU   string
	Limit int64
	AsOf  time.Time
}

// SafetyStockOverride replaces the location's safety stock for this SKU;
// Cleared falls back to the location's default.
type SafetyStockOverride struct {
	SKU      string
	Location string
	Units    int64
	Cleared  bool
	AsOf     time.Time
}

func (ChannelEligibility) isEvent()  {}
func (SalesCap) isEvent()            {}
func (BackorderLimit) isEvent()      {}
func (SafetyStockOverride) isEvent() {}

func (e ChannelEligibility) EventSKU() string  { return e.SKU }
func (e SalesCap) EventSKU() string            { return e.SKU }
func (e BackorderLimit) EventSKU() string      { return e.SKU }
func (e SafetyStockOverride) EventSKU() string { return e.SKU }

// Validate implements Event.
func (e ChannelEligibility) Validate() error {
	return errors.Join(validID("sku", e.SKU), validID("channel", e.Channel), checkTime("as_of", e.AsOf))
}

// Validate implements Event.
func (e SalesCap) Validate() error {
	errs := []error{validID("sku", e.SKU), validID("channel", e.Channel), checkTime("as_of", e.AsOf)}
	if !e.Cleared {
		errs = append(errs, checkUnits("limit", e.Limit, false),
			checkTime("window_start", e.WindowStart), checkTime("window_end", e.WindowEnd))
		if !e.WindowEnd.After(e.WindowStart) {
			errs = append(errs, fmt.Errorf("%w: window_end is not after window_start", ErrInvalidEvent))
		}
	}
	return errors.Join(errs...)
}

// Validate implements Event.
func (e BackorderLimit) Validate() error {
	return errors.Join(validID("sku", e.SKU), checkUnits("limit", e.Limit, false), checkTime("as_of", e.AsOf))
}

// Validate implements Event.
func (e SafetyStockOverride) Validate() error {
	return errors.Join(validID("sku", e.SKU), validID("location", e.Location),
		checkUnits("units", e.Units, false), checkTime("as_of", e.AsOf))
}

// ChannelRule is the winning ChannelEligibility for one channel.
type ChannelRule struct {
	Channel  string
	Sellable bool
	AsOf     time.Time
}

// SalesCapRule is the winning SalesCap for one channel.
type SalesCapRule struct {
	Channel     string
	Limit       int64
	WindowStart time.Time
	WindowEnd   time.Time
	Cleared     bool
	AsOf        time.Time
}

// BackorderRule is the winning BackorderLimit; zero AsOf means none was set.
type BackorderRule struct {
	Limit int64
	AsOf  time.Time
}

// SafetyOverrideRule is the winning SafetyStockOverride for one location.
type SafetyOverrideRule struct {
	Location string
	Units    int64
	Cleared  bool
	AsOf     time.Time
}

// newer reports whether a candidate (asOf, content) beats the current
// (asOf, content): the later time wins, an exact tie goes to the larger
// content string.
func newer(candAsOf time.Time, cand string, curAsOf time.Time, cur string) bool {
	if c := candAsOf.Compare(curAsOf); c != 0 {
		return c > 0
	}
	return cand > cur
}

func content(v any) string { return fmt.Sprintf("%+v", v) }

// upsertRule replaces or inserts the rule for subject in a sorted list if
// the candidate wins; it returns the new list and whether it changed.
func upsertRule[R any](rules []R, subject string, subjectOf func(R) string, asOf func(R) time.Time, cand R) ([]R, bool) {
	i, found := slices.BinarySearchFunc(rules, subject, func(r R, s string) int { return strings.Compare(subjectOf(r), s) })
	if found && !newer(asOf(cand), content(cand), asOf(rules[i]), content(rules[i])) {
		return rules, false
	}
	out := slices.Clone(rules)
	if found {
		out[i] = cand
	} else {
		out = slices.Insert(out, i, cand)
	}
	return out, true
}

func applyChannelEligibility(s State, e ChannelEligibility) (State, Result, error) {
	rules, changed := upsertRule(s.ChannelRules, e.Channel,
		func(r ChannelRule) string { return r.Channel }, func(r ChannelRule) time.Time { return r.AsOf },
		ChannelRule{Channel: e.Channel, Sellable: e.Sellable, AsOf: e.AsOf.UTC()})
	if !changed {
		return s, Result{}, nil
	}
	out := s
	out.SKU, out.ChannelRules = e.SKU, rules
	return out, Result{Changed: true}, nil
}

func applySalesCap(s State, e SalesCap) (State, Result, error) {
	r := SalesCapRule{Channel: e.Channel, Cleared: e.Cleared, AsOf: e.AsOf.UTC()}
	if !e.Cleared {
		r.Limit, r.WindowStart, r.WindowEnd = e.Limit, e.WindowStart.UTC(), e.WindowEnd.UTC()
	}
	rules, changed := upsertRule(s.SalesCaps, e.Channel,
		func(r SalesCapRule) string { return r.Channel }, func(r SalesCapRule) time.Time { return r.AsOf }, r)
	if !changed {
		return s, Result{}, nil
	}
	out := s
	out.SKU, out.SalesCaps = e.SKU, rules
	return out, Result{Changed: true}, nil
}

func applyBackorderLimit(s State, e BackorderLimit) (State, Result, error) {
	cand := BackorderRule{Limit: e.Limit, AsOf: e.AsOf.UTC()}
	if !s.Backorder.AsOf.IsZero() && !newer(cand.AsOf, content(cand), s.Backorder.AsOf, content(s.Backorder)) {
		return s, Result{}, nil
	}
	out := s
	out.SKU, out.Backorder = e.SKU, cand
	return out, Result{Changed: true}, nil
}

func applySafetyOverride(s State, e SafetyStockOverride) (State, Result, error) {
	r := SafetyOverrideRule{Location: e.Location, Cleared: e.Cleared, AsOf: e.AsOf.UTC()}
	if !e.Cleared {
		r.Units = e.Units
	}
	rules, changed := upsertRule(s.SafetyOverrides, e.Location,
		func(r SafetyOverrideRule) string { return r.Location }, func(r SafetyOverrideRule) time.Time { return r.AsOf }, r)
	if !changed {
		return s, Result{}, nil
	}
	out := s
	out.SKU, out.SafetyOverrides = e.SKU, rules
	return out, Result{Changed: true}, nil
}

// Location-wide and merchant-wide policies. They live in their own table
// keyed by location or merchant id and are folded by ApplyLocationPolicy and
// ApplyMerchantPolicy with the same newest-wins rule.

// LocationKind says what a location is.
type LocationKind int

// Location kinds.
const (
	KindWarehouse LocationKind = 1
	KindStore     LocationKind = 2
	KindMerchant  LocationKind = 3
)

func (k LocationKind) String() string {
	switch k {
	case KindWarehouse:
		return "warehouse"
	case KindStore:
		return "store"
	case KindMerchant:
		return "merchant"
	}
	return fmt.Sprintf("LocationKind(%d)", int(k))
}

// LocationPolicy says what a location is, which channels it may fulfil and
// which regions it may not ship to. A location with no policy is an owned
// warehouse serving every channel and shipping everywhere.
type LocationPolicy struct {
	Location    string
	Kind        LocationKind
	MerchantID  string
	Closed      bool
	Channels    []string // sorted; empty means every channel
	SafetyStock int64
	// ExcludedRegions are the region codes (RegionRule) the location may not
	// ship to, sorted without duplicates; empty means it ships everywhere.
	// A country code excludes all of the country's subdivisions too.
	ExcludedRegions []string
	AsOf            time.Time
}

// RegionRule states the region code rule; ValidateRegion's errors end with it.
const RegionRule = "a region is an ISO 3166-1 alpha-2 country code such as \"US\" or an ISO 3166-2 " +
	"subdivision code such as \"US-CA\" or \"FR-75\": two upper-case letters A-Z, optionally " +
	"followed by a hyphen and 1 to 3 upper-case letters A-Z or digits"

// MaxExcludedRegions bounds a location policy's ExcludedRegions (ISO 3166-1
// has 249 countries; the rest leaves room for subdivisions).
const MaxExcludedRegions = 512

// ValidateRegion checks a region code against RegionRule: "DE", "US-CA",
// "GB-SCT", "FR-75". Lower case is not accepted (codes compare byte for
// byte). kind names the field in the error.
func ValidateRegion(kind, code string) error {
	ok := len(code) == 2 || len(code) >= 4 && len(code) <= 6 && code[2] == '-'
	for i := 0; ok && i < len(code); i++ {
		c := code[i]
		switch {
		case i == 2:
		case 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9':
			ok = i > 2
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%s %q is not a region code: %s", kind, code, RegionRule)
	}
	return nil
}

// RegionCountry is the country of a region code: "US" for "US-CA" and "US".
func RegionCountry(code string) string {
	if i := strings.IndexByte(code, '-'); i >= 0 {
		return code[:i]
	}
	return code
}

// ExcludesRegion reports whether the location may not ship to region: its
// ExcludedRegions list the region or the region's country. Excluding
// "US-CA" does not exclude a ship-to of "US" (the caller did not say where
// in the country), and an empty region is never excluded.
func (p LocationPolicy) ExcludesRegion(region string) bool {
	if region == "" || len(p.ExcludedRegions) == 0 {
		return false
	}
	country := RegionCountry(region)
	for _, r := range p.ExcludedRegions {
		if r == region || r == country {
			return true
		}
	}
	return false
}

// MerchantPolicy holds what applies to all of a merchant's locations.
type MerchantPolicy struct {
	MerchantID string
	// StaleAfter <= 0 means the configured default.
	StaleAfter time.Duration
	AsOf       time.Time
}

// MaxStaleAfter bounds merchant TTLs.
const MaxStaleAfter = 10 * 365 * 24 * time.Hour

// Validate reports every problem with the policy.
func (p LocationPolicy) Validate() error {
	errs := []error{validID("location", p.Location), checkUnits("safety_stock", p.SafetyStock, false), checkTime("as_of", p.AsOf)}
	switch p.Kind {
	case KindWarehouse, KindStore:
		if p.MerchantID != "" {
			errs = append(errs, fmt.Errorf("%w: merchant_id is set on a %s location", ErrInvalidEvent, p.Kind))
		}
	case KindMerchant:
		errs = append(errs, validID("merchant_id", p.MerchantID))
	default:
		errs = append(errs, fmt.Errorf("%w: location kind %d is not warehouse, store or merchant", ErrInvalidEvent, int(p.Kind)))
	}
	for _, c := range p.Channels {
		errs = append(errs, validID("channel", c))
	}
	if len(p.ExcludedRegions) > MaxExcludedRegions {
		errs = append(errs, fmt.Errorf("%w: %d excluded_regions, more than %d", ErrInvalidEvent, len(p.ExcludedRegions), MaxExcludedRegions))
	}
	// The first bad entry and how many there are: a long list of bad codes
	// must not make a dead letter's reason as long.
	var bad int
	var first error
	for _, r := range p.ExcludedRegions {
		if err := ValidateRegion("excluded_regions entry", r); err != nil {
			bad++
			first = cmp.Or(first, err)
		}
	}
	switch {
	case bad == 1:
		errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidEvent, first))
	case bad > 1:
		errs = append(errs, fmt.Errorf("%w: %d invalid excluded_regions entries, the first: %w", ErrInvalidEvent, bad, first))
	}
	return errors.Join(errs...)
}

// Validate reports every problem with the policy.
func (p MerchantPolicy) Validate() error {
	errs := []error{validID("merchant_id", p.MerchantID), checkTime("as_of", p.AsOf)}
	if p.StaleAfter < 0 || p.StaleAfter > MaxStaleAfter {
		errs = append(errs, fmt.Errorf("%w: stale_after %s is outside 0..%s", ErrInvalidEvent, p.StaleAfter, MaxStaleAfter))
	}
	return errors.Join(errs...)
}

// ApplyLocationPolicy folds a policy event into the current one (found
// false when there is none) and reports whether it won.
func ApplyLocationPolicy(cur LocationPolicy, found bool, ev LocationPolicy) (LocationPolicy, Result, error) {
	if err := ev.Validate(); err != nil {
		return cur, Result{}, err
	}
	if found && cur.Location != ev.Location {
		return cur, Result{}, fmt.Errorf("%w: policy for location %q applied to %q", ErrInvalidEvent, ev.Location, cur.Location)
	}
	ev.AsOf = ev.AsOf.UTC()
	ev.Channels = slices.Compact(slices.Sorted(slices.Values(ev.Channels)))
	if len(ev.Channels) == 0 {
		ev.Channels = nil
	}
	ev.ExcludedRegions = slices.Compact(slices.Sorted(slices.Values(ev.ExcludedRegions)))
	if len(ev.ExcludedRegions) == 0 {
		ev.ExcludedRegions = nil
	}
	if found && !newer(ev.AsOf, content(ev), cur.AsOf, content(cur)) {
		return cur, Result{}, nil
	}
	return ev, Result{Changed: true}, nil
}

// ApplyMerchantPolicy is ApplyLocationPolicy for merchant policies.
func ApplyMerchantPolicy(cur MerchantPolicy, found bool, ev MerchantPolicy) (MerchantPolicy, Result, error) {
	if err := ev.Validate(); err != nil {
		return cur, Result{}, err
	}
	if found && cur.MerchantID != ev.MerchantID {
		return cur, Result{}, fmt.Errorf("%w: policy for merchant %q applied to %q", ErrInvalidEvent, ev.MerchantID, cur.MerchantID)
	}
	ev.AsOf = ev.AsOf.UTC()
	if found && !newer(ev.AsOf, content(ev), cur.AsOf, content(cur)) {
		return cur, Result{}, nil
	}
	return ev, Result{Changed: true}, nil
}
