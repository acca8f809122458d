// Package broker runs skuflow's embedded Kafka-protocol broker: franz-go's
// kfake, listening on loopback TCP, so that `skuflow dev` and the tests run
// the real Kafka client code paths without a Kafka installation.
//
// It is a single-node cluster: topics must use replication factor 1. With a
// data directory it keeps topics, configs, committed offsets and logs across
// restarts. Compaction runs every CompactionInterval (Kafka's
// log.cleaner.backoff.ms), which is lowered from Kafka's hour so changelogs
// really shrink during development and tests.
//
// Production deployments do not use this package: they pass --brokers to a
// real cluster.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configure the embedded broker.
type Options struct {
	// DataDir keeps the broker's state across restarts; empty means in-memory.
	DataDir string
	// Port to listen on at 127.0.0.1; 0 picks a free port.
	Port int
	// Listener, when set, is served instead of listening on Port (which
	// must then be 0); Close closes it, and so does Start if it fails.
	// Tests that restart a broker on the same address pass listeners lent
	// from one port they hold throughout (testkit.HoldPort), so no other
	// process can take the port between one broker's Close and the next
	// one's start.
	Listener net.Listener
	// CompactionInterval is how often compacted topics are cleaned.
	CompactionInterval time.Duration
	// SyncWrites fsyncs every produced batch (slower, survives power loss).
	SyncWrites bool
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

// DefaultCompactionInterval is the compaction period used when none is set.
const DefaultCompactionInterval = 10 * time.Second

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("broker port %d is outside 0..65535", o.Port))
	}
	if o.Port != 0 && o.Listener != nil {
		errs = append(errs, fmt.Errorf("broker port %d and a listener are both set: give one", o.Port))
	}
	if o.CompactionInterval < 0 {
		errs = append(errs, fmt.Errorf("compaction interval %s is negative", o.CompactionInterval))
	}
	return errors.Join(errs...)
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	log     *slog.Logger
}

// Start starts the broker and returns once it accepts connections. It
// closes opts.Listener if it fails.
func Start(opts Options) (_ *Broker, err error) {
	if opts.Listener != nil {
		defer func() {
			if err != nil {
				opts.Listener.Close()
			}
		}()
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval := opts.CompactionInterval
	if interval == 0 {
		interval = DefaultCompactionInterval
	}
	at := fmt.Sprintf("127.0.0.1:%d", opts.Port)
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(opts.Port),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms":     strconv.FormatInt(interval.Milliseconds(), 10),
			"default.replication.factor": "1",
		}),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("broker data directory: %w", err)
		}
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if opts.SyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	if ln := opts.Listener; ln != nil {
		at = ln.Addr().String()
		lent := false
		kopts = append(kopts, kfake.ListenFn(func(string, string) (net.Listener, error) {
			if lent { // one broker, one listener
				return nil, errors.New("the given listener is already in use")
			}
			lent = true
			return ln, nil
		}))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", at, err)
	}
	b := &Broker{cluster: c, log: log}
	log.Info("embedded broker started", "addrs", c.ListenAddrs(), "data", opts.DataDir, "compaction_interval", interval)
	return b, nil
}

// Addrs are the host:port addresses clients bootstrap from.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker, flushing persisted state. Stop processors and views
// first: clients still connected keep retrying against a closed broker.
func (b *Broker) Close() {
	b.cluster.Close()
	b.log.Info("embedded broker stopped")
}

// Run blocks until ctx is cancelled, then closes the broker.
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	b.Close()
	return nil
}
