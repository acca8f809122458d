package codecs

import (
	"errors"
	"fmt"
	"sync"

	"github.com/skuflow/skuflow/inventory"
)

// MaxStateBytes is the most bytes a SKU's encoded state (skuflow.v1.SkuState)
// may take. A state the changelog cannot store (Kafka's default message
// limit is about 1 MiB; the embedded broker refused one over ~900 KiB)
// fails the table write and stops the whole stock group; this limit stays
// well below, so an event that would pass it is refused instead (see
// CheckStateGrowth and topology.md, "Bounded state per SKU").
const MaxStateBytes = 512 << 10

// ErrStateLimit refuses an event whose resulting state would encode to
// more than MaxStateBytes.
var ErrStateLimit = errors.New("the sku's stored state would exceed its size limit")

var stateBuf = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// StateSize is the length of s's encoding (what State.Encode returns).
func StateSize(s inventory.State) int {
	bp := stateBuf.Get().(*[]byte)
	b := appendState((*bp)[:0], s)
	n := len(b)
	if cap(b) <= 2*MaxStateBytes {
		*bp = b[:0]
		stateBuf.Put(bp)
	}
	return n
}

// HardStateBytes is the most bytes any event may grow a SKU's state to:
// facts (levels, adjustments, fulfilments, releases, expiry ticks) are
// taken past MaxStateBytes up to it, since refusing a fact leaves the
// counts wrong; only reservation requests stop at MaxStateBytes. It stays
// below what the changelog can store.
const HardStateBytes = 768 << 10

// CheckStateGrowth refuses next, the state an event would leave in place of
// prev, if it is larger than prev and encodes to more than the limit: for a
// request (a new reservation, a client's doing) MaxStateBytes, for a fact
// HardStateBytes. An event that keeps or shrinks the state is never
// refused. The caller keeps the state as it was and dead-letters the event
// (the stock processor and the audit's fold do the same, so they agree).
// The error wraps ErrStateLimit.
func CheckStateGrowth(prev, next inventory.State, request bool) error {
	if sizeBound(next) <= MaxStateBytes {
		return nil // most states: no need to encode one more time
	}
	limit := HardStateBytes
	if request {
		limit = MaxStateBytes
	}
	n := StateSize(next)
	if n <= limit {
		return nil
	}
	if n <= StateSize(prev) {
		return nil // never refuse what keeps or shrinks the state
	}
	return fmt.Errorf("%w: the event would make sku %q's state %d bytes, more than the %d bytes it may grow to; the state is left as it was",
		ErrStateLimit, next.SKU, n, limit)
}

// IsRequest reports whether ev is a client's reservation request, the one
// kind of event CheckStateGrowth stops at MaxStateBytes.
func IsRequest(ev inventory.Event) bool {
	_, ok := ev.(inventory.ReservationRequested)
	return ok
}

// maxRecordBytes is more than any one record of a state encodes to (a
// location, an adjustment, a rule, a reservation, a fulfilment id), with
// every id as long as the rules allow (inventory.MaxIDLength,
// MaxRefLength, MaxEventIDLen): a reservation, the largest, takes about
// 330 bytes without its fulfilment ids. TestSizeBound holds it.
const maxRecordBytes = 1 << 10

// sizeBound is more than s encodes to, found without encoding it.
func sizeBound(s inventory.State) int {
	n := 1 + len(s.Locations) + len(s.ChannelRules) + len(s.SalesCaps) + len(s.SafetyOverrides) + len(s.Reservations) + len(s.CapUsage)
	for _, l := range s.Locations {
		n += len(l.Adjustment)
	}
	for _, r := range s.Reservations {
		n += len(r.Fulfilments)
	}
	return len(s.SKU) + n*maxRecordBytes
}
