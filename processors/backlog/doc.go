// Package backlog is the stock group's flood machinery: it lets the stock
// processor coalesce its availability publishing while an input partition
// is far behind its head (a replay flood), and publish each SKU's answer
// about once per backlog instead of once per event. See Backlog for the
// rules, topology.md ("Replay floods") for the picture. States, the other
// half of the machinery, remembers the values a group last wrote per
// partition ownership, so a flood's messages need not re-read and decode
// the table.
//
// The stock processor calls it through the small stock.Coalescer
// interface: Claim and Observe on every message, then Extend, Hold, Take
// or Reconciled on the publish paths. The processor stays a thin adapter;
// everything about heads, deferrals, self-ticks and lag lives here.
//
// # Assumptions about goka
//
// These are goka v1.1.x behaviours this package relies on. Each is relied
// on where the comment marks "goka:", and the tests in processors/stock
// (backlog_tester_test.go, backlog_e2e_test.go) fail if one stops holding.
//
//   - goka: a partition's callbacks run on one goroutine, in offset order
//     per input topic; so Observe sees increasing offsets per topic, and
//     the per-partition state needs a lock only against Step and
//     Rebalanced, which run on other goroutines.
//   - goka: every assignment of a partition runs in a new partition
//     processor whose goka.Context.Context() is a new context value, valid
//     for that ownership only and cancelled when it ends. Claim and States
//     compare it by identity to tell one ownership from the next (another
//     instance may have published, or written the table, in between);
//     States drops the values of ownerships whose context is cancelled.
//   - goka: the rebalance callback (goka.WithRebalanceCallback) receives
//     the assigned partitions as a goka.Assignment keyed by partition
//     number, the same for every input topic (co-partitioning).
//   - goka: a message emitted to schema.StockTicks keyed by SKU reaches the
//     partition processor that owns the SKU's other inputs, because every
//     skuflow topic has the same partition count and goka's FNV-1a
//     partitioner (schema.Partition).
//   - goka: the committed offsets of group schema.StockGroup are what a new
//     owner resumes from; before a partition's first message its lag is
//     computed from them.
//
// It must not import other processor groups, views/, gateway/ or the
// composition root.
package backlog
