package audit

import (
	"errors"
	"fmt"
	"time"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
)

// DefaultGrace is how long past a due time the audit waits before it calls
// a hold unexpired or an answer unrepublished: two of the reconciler's
// default intervals plus a second.
const DefaultGrace = 11 * time.Second

// DefaultSettle bounds the wait for the processor groups to consume the
// log up to the offsets the audit folded.
const DefaultSettle = 30 * time.Second

// Options configure one audit.
type Options struct {
	Kafka kafkacfg.Options
	// Base is the answering configuration the processors run with.
	Base inventory.Base
	// SKUs limits the SKU checks (and orders with a line of one of them);
	// empty: every SKU.
	SKUs []string
	// Grace is the slack allowed past a due time (a reservation's expiry, an
	// answer's next_change_at) for the reconciler to act; it should be at
	// least the reconciler's interval plus one scan.
	Grace time.Duration
	// Settle bounds the wait for every group to consume up to the heads the
	// audit folded; keys of partitions still behind are skipped. 0: no wait.
	Settle time.Duration
	// MaxEventSkew is the processors' --max-event-skew, as
	// app.ProcessOptions.MaxEventSkew takes it (0: the default,
	// inventory.NoEventSkewLimit: no limit): the fold skips what they
	// dead-letter for it.
	MaxEventSkew time.Duration
	// Now is the audit's clock (nil: time.Now), used for the time-based
	// invariants only; the fold itself uses message timestamps.
	Now func() time.Time
	// Progress, if set, is called as messages are read with the count read
	// so far and the total expected.
	Progress func(done, total int64)
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if err := o.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("kafka: %w", err))
	}
	if err := o.Base.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("answering configuration: %w", err))
	}
	for _, s := range o.SKUs {
		if err := inventory.ValidateSKU("sku", s); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace %s is negative", o.Grace))
	}
	if o.MaxEventSkew < 0 && o.MaxEventSkew != inventory.NoEventSkewLimit {
		errs = append(errs, fmt.Errorf("max event skew %s is negative (0 turns the check off)", o.MaxEventSkew))
	}
	if o.Settle < 0 {
		errs = append(errs, fmt.Errorf("settle %s is negative", o.Settle))
	}
	return errors.Join(errs...)
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}
