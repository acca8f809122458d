// Package inventory holds skuflow's business rules as pure functions.
//
// Every rule has the shape
//
//	state', result, err = Apply(state, event, eventTime)
//
// and derived answers are computed from state alone (plus the query time, once
// rules depend on it). Nothing here performs I/O, reads the wall clock, draws
// random numbers or knows about goka, Kafka, gRPC or protobuf: the processors
// in processors/ are thin adapters that decode a message, call Apply, and
// store or emit what it returned. Because of that, replaying the same events
// gives the same state, byte for byte, and every rule is property-tested
// against a reference model in this package's tests.
//
// # Stock rules
//
//   - A location's absolute level is last-writer-wins by (AsOf, Sequence,
//     OnHand): re-sending or reordering levels never lets an older one win, and
//     an exact tie is broken by the larger count so the result never depends on
//     arrival order.
//   - An adjustment is applied at most once per (location, area, EventID). An
//     adjustment that occurred at or before the location's winning level's AsOf
//     is already reflected in that level and is ignored; adjustments after it
//     are kept and summed on top. When a newer level wins, the adjustments it
//     covers are pruned, which also keeps the state bounded.
//   - A location's on-hand is level + sum(later deltas), floored at 0 when it is
//     read. Stored values are never clamped, because clamping in the middle of
//     a sequence would make the result depend on the order of events.
//   - The SKU's on-hand and available totals are sums of floored per-location
//     values, so they are never negative.
//
// # Availability
//
// Evaluate derives a SKU's answer from its state, the location and merchant
// policies of its locations, and the time of the question:
//
//	available(channel, now) = max(0, min(usable(channel) − reserved(channel), remaining sales cap(channel)))
//	usable(channel)         = Σ over eligible, open, non-stale locations of max(0, on_hand − safety stock)
//
// A location with no policy is an owned warehouse serving every channel. A
// merchant location is stale once its newest level is at least its
// merchant's TTL old (or it has none). Safety stock is the SKU's override for
// the location, else the location's default. A sales cap applies within its
// window; backorders are answered separately, up to the SKU's limit. The
// Snapshot lists per channel the units available now, the backorderable
// units and why units are missing, per location the breakdown, a Version
// digest of the answer, and NextChangeAt, when the answer changes on its own.
//
// # Identifiers
//
// A SKU is the catalogue's own code (ValidateSKU, SKURule): 1 to
// MaxSKULength (256) bytes of valid UTF-8 whose every character is printable
// as unicode.IsPrint says (a letter, mark, number, punctuation or symbol, or
// the ASCII space), neither first nor last a space. So '/', spaces, '+',
// '%', quotes, commas and non-ASCII letters are allowed; control characters
// (C0, DEL, C1), format characters (zero-width, bidi controls, BOM), spaces
// other than U+0020, private-use and unassigned code points are not, nor is
// invalid UTF-8. A leading or trailing space is rejected rather than trimmed:
// it is almost always a data error, and trimming would make two spellings
// one SKU. The length is in bytes, as stored and keyed on Kafka: 256 ASCII
// characters, fewer non-ASCII ones. No normalisation happens: "é" precomposed
// and "e" + U+0301 are different SKUs, byte for byte, as in the catalogue.
//
// Locations, channels and merchants keep the narrow rule: 1 to MaxIDLength
// (64) characters of A-Z a-z 0-9 . _ - (ValidateID), which the operators
// choose and which appear unescaped in URLs and the registry; order and
// reservation ids follow ValidateRef. ValidateID(KindSKU, id) is ValidateSKU, so every caller that checks a
// field named "sku" follows the SKU rule.
//
// Over REST a SKU is one path segment, percent-encoded ('/' as %2F; a SKU
// that is just "." or ".." as %2E, or HTTP resolves it as a dot segment).
//
// This package must not import goka, sarama, grpc, net or any package that
// does I/O; `make lint` checks that.
//
// Example:
//
//	s := inventory.State{SKU: "SKU-1"}
//	s, _, err := inventory.Apply(s, inventory.StockLevel{
//		SKU: "SKU-1", Location: "WH-1", OnHand: 10, AsOf: t0, Sequence: 1,
//	}, t0)
//	snap := inventory.Evaluate(s, inventory.Policies{Channels: []string{"web"}}, now)
//	// snap.Channels[0].Available == 10
package inventory
