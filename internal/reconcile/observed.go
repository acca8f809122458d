package reconcile

import "github.com/skuflow/skuflow/views"

// ObservedViews are the goka views the reconciler runs, by name, for view
// metrics (views.Metrics).
func (r *Reconciler) ObservedViews() map[string]views.Observed {
	return map[string]views.Observed{"reconciler-stock": r.stock, "reconciler-policies": r.pols,
		"reconciler-availability": r.avail, "reconciler-orders": r.orders}
}
