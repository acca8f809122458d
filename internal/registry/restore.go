package registry

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lovoo/goka"
	"github.com/syndtr/goleveldb/leveldb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// Restore re-publishes the registry from a gateway's local copy of it (the
// view's LevelDB under viewDir, e.g. <data>/feeds/registry) to a cluster
// that lost it, with the policies every entry implies. Run it, with the
// gateway stopped, after a broker loss and before the view's directory is
// wiped. It returns how many merchants it restored.
func Restore(k kafkacfg.Options, viewDir string) (int, error) {
	if err := k.Validate(); err != nil {
		return 0, err
	}
	dirs, err := filepath.Glob(filepath.Join(viewDir, string(schema.MerchantRegistry)+".*"))
	if err != nil {
		return 0, err
	}
	if len(dirs) == 0 {
		return 0, fmt.Errorf("registry restore: no local copy of %s under %s", schema.MerchantRegistry, viewDir)
	}
	var entries []*pb.RegistryEntry
	for _, d := range dirs {
		db, err := leveldb.OpenFile(d, nil)
		if err != nil {
			return 0, fmt.Errorf("registry restore: %s: %w", d, err)
		}
		it := db.NewIterator(nil, nil)
		for it.Next() {
			if strings.HasPrefix(string(it.Key()), "__") {
				continue // goka's offset bookkeeping
			}
			e := new(pb.RegistryEntry)
			if err := proto.Unmarshal(it.Value(), e); err != nil {
				it.Release()
				db.Close()
				return 0, fmt.Errorf("registry restore: merchant %q: %w", it.Key(), err)
			}
			// Entries from before the registry kept channels come back with
			// the default recorded, as their policies are published.
			entries = append(entries, normalized(e))
		}
		it.Release()
		err = errors.Join(it.Error(), db.Close())
		if err != nil {
			return 0, fmt.Errorf("registry restore: %s: %w", d, err)
		}
	}
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return 0, err
	}
	reg, err := goka.NewEmitter(k.Brokers, goka.Stream(schema.MerchantRegistry), schema.RegistryCodec, k.ReliableEmitterOptions()...)
	if err != nil {
		return 0, err
	}
	pol, err := goka.NewEmitter(k.Brokers, schema.Policies, schema.PolicyEventCodec, k.ReliableEmitterOptions()...)
	if err != nil {
		return 0, errors.Join(err, reg.Finish())
	}
	var errs []error
	for _, e := range entries {
		for _, ev := range restoreEvents(e) {
			key, err := schema.PolicyKey(ev)
			if err == nil {
				err = pol.EmitSync(key, ev)
			}
			errs = append(errs, err)
		}
		errs = append(errs, reg.EmitSync(e.GetMerchantId(), e))
	}
	errs = append(errs, reg.Finish(), pol.Finish())
	return len(entries), errors.Join(errs...)
}

// restoreEvents are the policies a restored entry republishes: its merchant
// policy, its locations open with their channels (DefaultChannels where the
// entry records none, as Channels reads it), and the locations it lost
// closed.
func restoreEvents(e *pb.RegistryEntry) []*pb.PolicyEvent {
	at := e.GetUpdatedAt().AsTime()
	out := policyEvents(nil, e, at)
	for _, l := range e.GetRemovedLocations() {
		out = append(out, locationPolicy(e.GetMerchantId(), l, nil, timestamppb.New(at)))
	}
	return out
}
