package codecs

import (
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/skuflow/skuflow/inventory"
)

// DefaultStateCacheSKUs is the number of SKUs a StateCache keeps.
const DefaultStateCacheSKUs = 1 << 15

// StateCache is the State codec with a bounded cache of decoded states.
// goka decodes a SKU's table value on every message for the SKU, and that
// value is almost always the one it encoded for the SKU's previous message;
// decoding it again was a tenth of the stock processor's time. The cache
// keeps, per SKU, the bytes last encoded or decoded and the state they
// stand for; Decode returns that state when the bytes are identical and
// decodes otherwise. The answer is therefore always the decoding of the
// given bytes: encoding is deterministic and round-trips exactly (see the
// codec's tests), and inventory's functions never modify a state they are
// given, so one state value can be shared by every reader.
//
// It is safe for concurrent use. When full, each new SKU evicts an
// arbitrary one.
type StateCache struct {
	State
	max int

	mu sync.Mutex
	m  map[string]cachedState
}

type cachedState struct {
	raw   string
	value any // the inventory.State, boxed once
}

// NewStateCache returns a cache of at most skus SKUs (at least 1).
func NewStateCache(skus int) *StateCache {
	return &StateCache{max: max(1, skus), m: make(map[string]cachedState)}
}

// Encode implements goka.Codec.
func (c *StateCache) Encode(value any) ([]byte, error) {
	data, err := c.State.Encode(value)
	if err != nil {
		return nil, err
	}
	c.put(value.(inventory.State).SKU, data, value, true) // State.Encode checked the type
	return data, nil
}

// Decode implements goka.Codec.
func (c *StateCache) Decode(data []byte) (any, error) {
	sku, ok := leadingSKU(data)
	if ok {
		c.mu.Lock()
		e, hit := c.m[sku]
		c.mu.Unlock()
		if hit && e.raw == string(data) {
			return e.value, nil
		}
	}
	v, err := c.State.Decode(data)
	if err != nil {
		return nil, err
	}
	if ok && v.(inventory.State).SKU == sku {
		// Only into a free slot: a reader of an older value (a view behind
		// the processor) must not displace the processor's latest.
		c.put(sku, data, v, false)
	}
	return v, nil
}

// Len is the number of SKUs cached.
func (c *StateCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// put caches value as the decoding of data, replacing sku's entry only if
// replace is set.
func (c *StateCache) put(sku string, data []byte, value any, replace bool) {
	if sku == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sku]; ok && !replace {
		return
	} else if !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[sku] = cachedState{raw: string(data), value: value}
}

// leadingSKU reads the sku field, which deterministic encoding writes
// first, from an encoded skuflow.v1.SkuState.
func leadingSKU(data []byte) (string, bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return "", false
	}
	v, m := protowire.ConsumeBytes(data[n:])
	if m < 0 {
		return "", false
	}
	return string(v), true
}
