package schema

import (
	"hash"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Every topic is co-partitioned: a key lands on the same partition number
// of every topic with the same partition count, so one SKU's supply,
// demand, ticks and table entry meet in one partition processor. The rule is
// goka's: sarama's hash partitioner with 32-bit FNV-1a, the sign dropped.
// A producer outside goka must use the same (kcat: -X partitioner=fnv1a).

// Hasher returns the hash the partitioner uses.
func Hasher() hash.Hash32 { return goka.DefaultHasher()() }

// Partitioner is the sarama partitioner every skuflow producer uses.
func Partitioner() sarama.PartitionerConstructor {
	return sarama.NewCustomHashPartitioner(goka.DefaultHasher())
}

// Partition returns the partition key lands on among partitions (> 0).
func Partition(key string, partitions int) int32 {
	h := Hasher()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % int32(partitions)
	if p < 0 {
		p = -p
	}
	return p
}
