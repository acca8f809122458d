// Package codecs turns bytes on Kafka topics and in goka tables into
// skuflow's domain values and back. Every encoding is protobuf (see proto/),
// marshalled deterministically so equal values give equal bytes.
//
// The goka codecs are written once, generically (Proto[T]), and reject a
// value of the wrong type with an error that names it. Conversions between
// the wire messages and inventory's domain types live here too, so that
// neither processors/ nor inventory/ repeat them.
//
// This package must not import goka's processor machinery beyond the Codec
// interface, and never performs I/O.
//
// Example:
//
//	ev, err := codecs.DecodeSupplyEvent(msg) // inventory.StockLevel or StockAdjustment
package codecs
