package service

import "github.com/skuflow/skuflow/views"

// ObservedViews are the goka views the service runs, for view metrics
// (views.Metrics).
func (s *Service) ObservedViews() map[string]views.Observed {
	return map[string]views.Observed{"registry": s.reg}
}
