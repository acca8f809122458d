package registry

import (
	"context"

	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// Observe reports the registry view's recovery and offsets to view metrics
// (views.Metrics), under the same guard as lookups.
func (r *Registry) Observe(ctx context.Context) views.Observation {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.stopping {
		return views.Observation{Topic: string(schema.MerchantRegistry)}
	}
	return views.ObserveView(ctx, r.view)
}
