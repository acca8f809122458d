package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"
)

// Divergence is a key whose materialized value differs from the fold.
type Divergence struct {
	// Kind: "stock-table", "orders-table", "policies-table" or
	// "availability".
	Kind string `json:"kind"`
	Key  string `json:"key"`
	// What differs.
	What string `json:"what"`
	// Materialized is the table's or topic's value, Fold the log's.
	Materialized string `json:"materialized"`
	Fold         string `json:"fold"`
}

// Violation is a broken invariant.
type Violation struct {
	// Source is where it was found: "stock-table", "orders-table",
	// "availability" or "fold".
	Source string `json:"source"`
	Key    string `json:"key"`
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Skipped counts keys not compared, by reason.
type Skipped struct {
	Reason string `json:"reason"`
	Keys   int    `json:"keys"`
}

// Behind is a group's partition that had not consumed up to the audited
// offsets when the audit compared; its keys are skipped.
type Behind struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	Audited   int64  `json:"audited"`
}

// Report is what an audit found.
type Report struct {
	At      time.Time `json:"at"`
	Seconds float64   `json:"seconds"`
	// Events is the input messages folded; Read every message read
	// (inputs, changelogs and the availability topic).
	Events   int64 `json:"events"`
	Read     int64 `json:"read"`
	SKUs     int   `json:"skus"`
	Orders   int   `json:"orders"`
	Policies int   `json:"policies"`
	// OrderDependent counts fields not compared because the two
	// interleavings of the log gave different values.
	OrderDependent int          `json:"order_dependent"`
	Divergences    []Divergence `json:"divergences"`
	Violations     []Violation  `json:"violations"`
	Skipped        []Skipped    `json:"skipped,omitempty"`
	Behind         []Behind     `json:"behind,omitempty"`
}

// Clean reports whether nothing diverged and no invariant broke.
func (r Report) Clean() bool { return len(r.Divergences) == 0 && len(r.Violations) == 0 }

// WriteJSON writes the report as one JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Divergences == nil {
		r.Divergences = []Divergence{}
	}
	if r.Violations == nil {
		r.Violations = []Violation{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a reader.
func (r Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("audit at %s: %d events folded (%d messages read) in %.1fs: %d SKUs, %d orders, %d policies\n",
		r.At.Format(time.RFC3339), r.Events, r.Read, r.Seconds, r.SKUs, r.Orders, r.Policies)
	for _, b := range r.Behind {
		ew.printf("  behind: group %s on %s/%d committed %d of %d audited; its keys were skipped\n", b.Group, b.Topic, b.Partition, b.Committed, b.Audited)
	}
	for _, s := range r.Skipped {
		ew.printf("  skipped %d keys: %s\n", s.Keys, s.Reason)
	}
	if r.OrderDependent > 0 {
		ew.printf("  fields not compared, as they depend on how the topics interleaved: %d\n", r.OrderDependent)
	}
	for _, d := range r.Divergences {
		ew.printf("\nDIVERGED %s %s: %s\n  materialized: %s\n  log fold:     %s\n", d.Kind, d.Key, d.What, d.Materialized, d.Fold)
	}
	for _, v := range r.Violations {
		ew.printf("\nVIOLATION %s %s: %s\n  %s\n", v.Source, v.Key, v.Rule, v.Detail)
	}
	if r.Clean() {
		ew.printf("clean: the tables and the availability topic equal the fold of the log, and every invariant holds\n")
	} else {
		ew.printf("\n%d divergences, %d invariant violations\n", len(r.Divergences), len(r.Violations))
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (r *Report) sort() {
	sort.Slice(r.Divergences, func(i, j int) bool {
		a, b := r.Divergences[i], r.Divergences[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.What < b.What
	})
	sort.Slice(r.Violations, func(i, j int) bool {
		a, b := r.Violations[i], r.Violations[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Rule < b.Rule
	})
}
