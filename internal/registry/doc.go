// Package registry is the merchant registry: which merchant owns which
// locations, the merchant's staleness TTL, and the SHA-256 hashes of its API
// tokens. Entries live in the compacted `merchant-registry` topic keyed by
// merchant id and are read through a goka view, so every gateway instance
// sees the same data without calling anything on the request path.
//
// Every change also publishes the matching policies to the `policies` topic
// (processors/policies): a MerchantPolicy carrying the merchant's
// stale_after, and a LocationPolicy of kind MERCHANT naming the merchant for
// each of its locations with the channels it serves (closed once removed).
// That is how the availability calculus learns which locations are a
// merchant's, which channels their stock counts toward and when it goes
// stale.
//
// A merchant location serves only DefaultChannel ("marketplace") unless it
// is given channels (Create, AddLocations), and only channels the
// deployment is configured for (Options.Channels, inventory.Base's): any
// other is ErrInvalid naming the configured ones. When those leave out
// DefaultChannel there is no default, and giving a location no channels
// (a new one, or an owned one that records none) is ErrInvalid too.
//
// Entries written before the registry kept channels are read the same way
// (Channels). Once the view has recovered, Run upgrades them once
// (UpgradeLegacy): it records the default in each and republishes its
// location policies with it, logging how many. The upgrade depends on the
// entry alone (version+1, as_of = its updated_at + 1µs), so instances doing
// it at once write the same entry and policies, and an upgraded entry is
// not upgraded again; Ready waits for the first attempt. An entry that
// appears without channels later is upgraded by its first change, by
// Restore, or at the next start.
//
// Tokens look like "skf1.<merchant>.<secret>": the merchant part says whose
// hashes to compare with (in constant time), the secret is 32 random bytes.
// Tokens are never logged, stored or put in errors; only hashes are kept.
//
// This package must not import gateway/ or cmd/; it translates nothing to
// gRPC codes (gateway/apierr maps its errors).
//
// Example:
//
//	reg, err := registry.New(registry.Options{Kafka: k, DataDir: dir, Channels: base.Channels})
//	go reg.Run(ctx)
//	tok, m, err := reg.Create(ctx, "ACME", []string{"ACME-1"}, nil, 6*time.Hour) // marketplace only
//	m, err = reg.AddLocations(ctx, "ACME", []string{"ACME-2"}, []string{"marketplace", "web"})
//	merchant, err := reg.Authenticate(bearer) // "ACME" for tok
package registry
