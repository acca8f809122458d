// Package ops holds skuflow's operator tools that talk to the cluster
// directly rather than through the processors: Replay rewinds a processor
// group's committed input offsets (to a time, the earliest or the latest
// offsets) and Status reports, for every group, its members and the
// partitions each owns, the committed offset, head and lag of each input
// partition, the changelog head of each table, and the dead letters by
// reason.
//
// It speaks the Kafka protocol with franz-go's admin client (kadm), from
// the same kafkacfg.Options as every other role, so the same calls work on
// the embedded broker and on a real cluster. Group, topic and table names
// come from the schema; Groups lists each group's inputs, and a test keeps
// it equal to the processors' own group graphs.
//
// ops is an edge: it depends on no package under processors/ and not on
// internal/app (internal/archtest checks both for every package; the
// processors' graphs are compared in tests only), and reads no flags.
//
//	plan, err := ops.Replay(ctx, ops.ReplayOptions{Kafka: k, Group: string(schema.StockGroup), ToTime: t, DryRun: true})
//	if err != nil {
//		var live *ops.LiveMembersError
//		if errors.As(err, &live) { ... } // stop the group's processes first
//	}
//	plan.WriteText(os.Stdout)
//
// # Status as JSON
//
// Report's JSON field names are stable (camelCase, like the REST API):
//
//	{"at": "...", "brokers": ["host:port"],
//	 "groups": [{"group": "skuflow-stock", "state": "Stable", "lag": 0,
//	             "members": [{"id": "...", "clientId": "...", "host": "...",
//	                          "partitions": [{"topic": "supply", "partitions": [0, 1]}]}],
//	             "inputs": [{"topic": "supply", "partition": 0, "owner": "<member id>",
//	                         "committed": 12, "start": 0, "head": 12, "lag": 0}]}],
//	 "tables": [{"table": "skuflow-stock-table", "group": "skuflow-stock", "records": 40,
//	             "partitions": [{"partition": 0, "start": 0, "head": 10}]}],
//	 "deadLetters": {"total": 1, "classes": [{"class": "malformed", "count": 1}],
//	                 "reasons": [{"group": "skuflow-stock", "topic": "supply", "class": "malformed",
//	                              "reason": "...", "count": 1}],
//	                 "error": "set only when the counts are incomplete"}}
//
// committed is -1 when the group has committed nothing on the partition
// (it then starts at start); lag is head minus committed (or minus start).
package ops
