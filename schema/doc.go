// Package schema is skuflow's data contract in one place: every topic,
// table and group name, what each topic's key is, how keys are placed on
// partitions, and the codec of each value. It also holds the rule for which
// policies-table entries a SKU's answer reads (Gather).
//
// It holds no callbacks and no metrics, so any package may import it for a
// name without linking a processor. Processor groups (processors/...),
// views, the gateway, the registry, feeds, the reconciler and the CLI all
// take their names from here; topology.md is generated from Topics and the
// processors' group graphs (see internal/archtest).
//
// It must not import processors/, views/, gateway/ or anything under
// internal/.
//
// Example:
//
//	em, err := goka.NewEmitter(brokers, schema.Supply, new(codec.Bytes))
//	// ... em.Emit(sku, bytes) lands on partition schema.Partition(sku, n)
package schema
