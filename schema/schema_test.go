package schema_test

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/skuflow/skuflow/schema"
)

// Partition is where sarama's producers with the schema's Partitioner place
// a key, for every partition count.
func TestPartitionIsThePartitioners(t *testing.T) {
	keys := []string{"", "SKU-1", "SKU-1001", "order-42", "location/WH-1", "merchant/acme", "ü/ß 12"}
	for _, n := range []int{1, 2, 3, 4, 8, 12, 100} {
		part := schema.Partitioner()("any")
		for _, k := range keys {
			got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, int32(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := schema.Partition(k, n); got != want {
				t.Errorf("key %q over %d partitions: producer %d, Partition %d", k, n, got, want)
			}
			if got < 0 || int(got) >= n {
				t.Errorf("key %q over %d partitions: partition %d out of range", k, n, got)
			}
		}
	}
}

func TestTopicsAreUniqueAndDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range schema.Topics() {
		if seen[tp.Name] {
			t.Errorf("topic %s listed twice", tp.Name)
		}
		seen[tp.Name] = true
		if tp.Key == "" || tp.Value == "" || tp.Codec == nil {
			t.Errorf("topic %s lacks a key, value or codec: %+v", tp.Name, tp)
		}
		got, ok := schema.Lookup(tp.Name)
		if !ok || got.Name != tp.Name {
			t.Errorf("Lookup(%s) = %+v, %v", tp.Name, got, ok)
		}
	}
	if _, ok := schema.Lookup("no-such-topic"); ok {
		t.Error("Lookup found a topic that is not listed")
	}
	for _, name := range []string{string(schema.StockTable), string(schema.PoliciesTable), string(schema.OrdersTable), string(schema.Availability), string(schema.MerchantRegistry)} {
		if tp, _ := schema.Lookup(name); !tp.Compacted {
			t.Errorf("%s must be compacted", name)
		}
	}
}
