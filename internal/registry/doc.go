// Package registry is the merchant registry: which merchant owns which
// locations, the merchant's staleness TTL, and the SHA-256 hashes of its API
// tokens. Entries live in the compacted `merchant-registry` topic keyed by
// merchant id and are read through a goka view, so every gateway instance
// sees the same data without calling anything on the request path.
//
// Changes have one writer (writer.go, rules.go): Create, AddLocations and
// the rest send a RegistryCommand keyed by the one key schema.RegistryKey,
// and the registry writer group (DefineWriter, run by Run in every gateway
// serving the feeds API; one group member at a time holds the partition)
// applies it to the whole registry in its group table with the pure rule
// Apply: it checks ownership against every merchant's locations and refuses
// a location a warehouse or store policy owns (LocationOwnedError). The
// caller waits for the command's outcome in the writer's table, then until
// its own view shows the new entry.
//
// Every change also publishes the matching policies to the `policies` topic
// (processors/policies), derived from the writer's table: a MerchantPolicy
// carrying the merchant's stale_after, and a LocationPolicy of kind MERCHANT
// naming the merchant for each of its locations with the channels it serves
// (closed once removed). That is how the availability calculus learns which
// locations are a merchant's, which channels their stock counts toward and
// when it goes stale.
//
// A merchant location serves only DefaultChannel ("marketplace") unless it
// is given channels (Create, AddLocations), and only channels the
// deployment is configured for (Options.Channels, inventory.Base's): any
// other is ErrInvalid naming the configured ones. When those leave out
// DefaultChannel there is no default, and giving a location no channels
// (a new one, or an owned one that records none) is ErrInvalid too.
//
// Entries written before the registry kept channels are read the same way
// (Channels). The writer starts empty and takes the existing registry once
// (a RegistrySeed that Run sends from its view once it has recovered): it
// records the default in each legacy entry and republishes its location
// policies with it (legacyUpgrade: as_of = the entry's updated_at + 1µs).
// An entry that appears on the topic later (an older gateway still
// running) is adopted, and upgraded, by its merchant's next change.
//
// The whole registry is one table value, one Kafka message: a change that
// would grow its entries beyond MaxEntriesBytes is ErrFull (FullError
// names the size), outcomes keep to MaxOutcomeBytes (the oldest dropped
// first) and their messages to MaxOutcomeMessage, and no value over
// MaxStateBytes is ever written. A registry too big to seed the writer
// makes every change fail at once with ErrFull, logged at error level. A
// command sent more than the allowed event skew ahead of the writer's
// clock, or one the latest change would push that far ahead, is
// ErrClockSkew: the policies it published would be dead-lettered.
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
