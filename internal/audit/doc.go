// Package audit checks skuflow's materialized state against its event log:
// it reads every input topic from the start of retention, folds it through
// the pure rules of package inventory exactly as the processors do (same
// keys, same message timestamps, same per-topic order), and diffs the result
// against the group tables (read from their changelogs) and the latest
// record per SKU on the availability topic. It also scans invariants that
// must hold whatever the log says: no negative counts, no hold past its
// expiry, no stale merchant counted, no reserved order with a released
// line, sales caps respected.
//
// Kafka does not order messages across topics, so where a processor's
// result depends on how its inputs interleaved (a reservation's decision
// against stock that arrived around the same time, the order saga's
// status when a cancel races an outcome), the audit folds the log in two
// interleavings and compares such fields only where both agree. Fields
// that depend on processing time (DecidedAt, ExpiresAt, ClosedAt of
// reservations, cap usage kept by pruning) are never compared.
//
// It is an edge: it imports schema, codecs and inventory, never a
// processor package, and takes its configuration as Options.
//
//	rep, err := audit.Run(ctx, audit.Options{Kafka: k, Base: inventory.DefaultBase()})
//	if err == nil && !rep.Clean() { /* divergences and violations in rep */ }
package audit
