package app

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// Standby says how a processor instance prepares for partitions it does not
// own yet. The zero value turns both off: an instance that is assigned a
// partition recovers that partition's tables from their changelogs first,
// and the partition waits meanwhile.
//
// Cost. With Hot, every instance keeps a copy of every partition of every
// group table (stock, orders, policies), not only of the partitions it owns:
//   - disk: each instance holds the whole of each table in LevelDB under its
//     data directory, about the changelogs' compacted size (Report.Tables'
//     Records in ops.Status) where it would hold 1/n of it among n instances;
//   - network: each instance reads every table's changelog, so changelog
//     reads grow with the number of instances;
//   - memory: one LevelDB per table partition stays open with goleveldb's
//     defaults (up to 8 MiB block cache and a 4 MiB write buffer each), so
//     with 3 tables and P partitions an instance holds 3·P databases open
//     instead of 3·P/n; and the partitions' catch-up goroutines.
//
// In return, an instance that takes over a partition (a member crashed or
// left) finds its tables on local disk a few records behind the changelog
// and starts processing after a short catch-up instead of a full recovery.
type Standby struct {
	// Hot keeps standby copies of the tables of the partitions this
	// instance does not own, following their changelogs
	// (goka.WithHotStandby). It implies RecoverAhead, as goka advises: a new
	// instance recovers every partition before it joins the group.
	Hot bool
	// RecoverAhead recovers the tables of every partition before the
	// instance joins its groups (goka.WithRecoverAhead), so adding an
	// instance during a flood does not pause the partitions it is given
	// while it rebuilds their tables. It costs the disk of every partition
	// while the instance starts; without Hot the copies of the partitions
	// the instance is not given are then left behind, not followed.
	RecoverAhead bool
}

func (s Standby) processorOptions() []goka.ProcessorOption {
	var opts []goka.ProcessorOption
	if s.Hot {
		opts = append(opts, goka.WithHotStandby())
	}
	if s.Hot || s.RecoverAhead {
		opts = append(opts, goka.WithRecoverAhead())
	}
	return opts
}

// reclaiming wraps a storage builder for one group's processors, built
// anew by restarting: when a partition's storage is built while a storage
// of the same table partition is still open, it closes the old one first.
// goka v1.1.17's recover-ahead leaves a partition's storage open when that
// partition's recovery fails (waitForStartupTables returns the partition
// processor's Start error without stopping it): the processor restarted
// after a vanished changelog offset then could not open the LevelDB
// ("resource temporarily unavailable") and the role ended. Outside that
// leak goka closes a partition's storage before it opens it again, so
// closing a storage still open means closing a leaked one.
func reclaiming(b storage.Builder) storage.Builder {
	var mu sync.Mutex
	open := map[string]*reclaimable{}
	return func(topic string, partition int32) (storage.Storage, error) {
		key := topic + "/" + strconv.Itoa(int(partition))
		mu.Lock()
		defer mu.Unlock()
		if old := open[key]; old != nil {
			delete(open, key)
			if err := old.closeOnce(); err != nil {
				return nil, fmt.Errorf("close the storage of %s that a failed recovery left open: %w", key, err)
			}
		}
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		r := &reclaimable{Storage: st}
		r.close = func() {
			mu.Lock()
			defer mu.Unlock()
			if open[key] == r {
				delete(open, key)
			}
		}
		open[key] = r
		return r, nil
	}
}

type reclaimable struct {
	storage.Storage
	close func()
	once  sync.Once
	err   error
}

// Close closes the storage once: the goka component that leaked it may
// still close it after it was reclaimed, and goka's storage panics on a
// second Close.
func (r *reclaimable) Close() error {
	r.close()
	return r.closeOnce()
}

func (r *reclaimable) closeOnce() error {
	r.once.Do(func() { r.err = r.Storage.Close() })
	return r.err
}
