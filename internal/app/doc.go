// Package app is skuflow's composition root: it wires the processor
// groups, the reconciler, the views, the gateway and its services into the
// processes the binary runs (Process, NewServe), creates the topics of
// package schema, and owns the restart policy of processors.
//
// Only cmd/skuflow imports it (internal/archtest checks that). Features
// expose constructors (stock.New, gateway.New, gateway.NewReservations,
// feedservice.New, ...) and the root registers them; no feature imports the
// root. Flags are read in cmd/ only: this package takes typed options whose
// zero values are documented and validated once.
package app
