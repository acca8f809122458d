package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// isLegacy reports whether e owns a location it records no channels for:
// an entry written before the registry kept channels, whose locations'
// policies still say every channel.
func isLegacy(e *pb.RegistryEntry) bool {
	for _, l := range e.GetLocations() {
		if len(recordedChannels(e, l)) == 0 {
			return true
		}
	}
	return false
}

// legacyUpgrade is the entry that records the default for a legacy entry.
// It depends on the entry alone: its as_of is the entry's own last change
// plus 1µs (so its policies beat the channel-less ones published then), so
// every gateway instance that upgrades the same entry writes the same entry
// and publishes the same policies.
func legacyUpgrade(cur *pb.RegistryEntry) *pb.RegistryEntry {
	next := normalized(cur)
	next.Version = cur.GetVersion() + 1
	next.UpdatedAt = timestamppb.New(cur.GetUpdatedAt().AsTime().Add(time.Microsecond))
	return next
}

// upgradeLegacy waits until the view has recovered, then upgrades the
// legacy entries (UpgradeLegacy), retrying with backoff until it succeeds or
// ctx ends. The first attempt, whatever its outcome, makes Ready true.
func (r *Registry) upgradeLegacy(ctx context.Context) {
	defer r.firstPass.Store(true)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.RLock()
		ready := !r.stopping && r.view.Recovered()
		r.mu.RUnlock()
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = time.Minute
	for {
		_, err := r.UpgradeLegacy(ctx)
		r.firstPass.Store(true)
		if err == nil || ctx.Err() != nil {
			return
		}
		wait := b.NextBackOff()
		r.log.Warn("republishing the location policies of legacy merchant entries failed; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// UpgradeLegacy records DefaultChannels in every entry written before the
// registry kept channels and republishes those locations' policies with
// them, as the entry is read (Channels). It is idempotent: an upgraded entry
// is no longer legacy, and instances upgrading the same entry at once write
// identical entries and policies (legacyUpgrade). It returns how many
// entries it upgraded; Run calls it once the view has recovered.
func (r *Registry) UpgradeLegacy(ctx context.Context) (int, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	all, err := r.List()
	if err != nil {
		return 0, err
	}
	var done []*pb.RegistryEntry
	locations := 0
	for _, cur := range all {
		if !isLegacy(cur) {
			continue
		}
		next := legacyUpgrade(cur)
		for _, ev := range policyEvents(cur, next, next.GetUpdatedAt().AsTime()) {
			key, err := schema.PolicyKey(ev)
			if err != nil {
				return len(done), err
			}
			if err := r.policies.EmitSync(key, ev); err != nil {
				return len(done), fmt.Errorf("republish policy %s: %w", key, err)
			}
			if ev.GetLocation() != nil {
				locations++
			}
		}
		if err := r.entries.EmitSync(next.GetMerchantId(), next); err != nil {
			return len(done), fmt.Errorf("publish registry entry: %w", err)
		}
		done = append(done, next)
	}
	if len(done) == 0 {
		return 0, nil
	}
	for _, e := range done {
		if err := r.waitVisible(ctx, e.GetMerchantId(), e.GetVersion()); err != nil {
			return len(done), err
		}
	}
	r.log.Info("republished the location policies of merchant entries written before the registry kept channels, with the default channel",
		"merchants", len(done), "locations", locations, "channel", DefaultChannel)
	if _, found := slices.BinarySearch(r.channels, DefaultChannel); !found {
		r.log.Warn("the upgraded merchant locations serve only the default channel, which is not configured, so their stock counts toward nothing: give them channels with merchant add-location --channels",
			"merchants", len(done), "channel", DefaultChannel, "configured", r.channels)
	}
	return len(done), nil
}
