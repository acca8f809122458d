package processors

import (
	"fmt"

	"github.com/lovoo/goka"
)

// Store writes next to the group table when changed, and otherwise
// rewrites the value the table already holds for the key.
//
// goka sets a key in local storage before the changelog write is
// acknowledged. A process killed in between restarts with a local table
// ahead of its changelog; the input message is redelivered (its offset was
// not committed), changes nothing locally, and without a write the
// changelog would keep missing it: views, other instances after a
// rebalance, and a rebuild from the changelog would lose the update. The
// rewrite of an unchanged value makes the changelog whole again; on a
// compacted changelog it costs one message per no-op input.
func Store(ctx goka.Context, next any, changed bool) {
	if changed {
		ctx.SetValue(next)
		return
	}
	if cur := ctx.Value(); cur != nil {
		ctx.SetValue(cur)
	}
}

// NewProcessor builds a group's processor with the settings every skuflow
// group shares: nil values reach the callbacks (which dead-letter them)
// instead of being dropped silently.
func NewProcessor(brokers []string, g *goka.GroupGraph, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	opts = append([]goka.ProcessorOption{goka.WithNilHandling(goka.NilProcess)}, opts...)
	p, err := goka.NewProcessor(brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s processor: %w", g.Group(), err)
	}
	return p, nil
}
