package stock

import "time"

// NewTestBacklog returns a Backlog without a cluster, for tests outside the
// package: heads stands in for reading the inputs' heads and send for
// emitting a deferred tick; now (nil: time.Now) is its clock.
func NewTestBacklog(o BacklogOptions, heads func() (map[string]map[int32]int64, error), send func(sku string, at time.Time) error, now func() time.Time) *Backlog {
	b := newBacklog(o)
	b.heads, b.send = heads, send
	if now != nil {
		b.now = now
	}
	return b
}
