package inventory

import (
	"errors"
	"fmt"
	"time"
)

// Base is what every answer depends on besides events and policies: the
// channels answered for and the merchant TTL where a merchant sets none.
// It is skuflow's answering configuration; the processors, the gateway and
// the reconciler all take one, so they evaluate alike.
type Base struct {
	// Channels to answer for, e.g. web, marketplace, store-pickup.
	Channels []string
	// DefaultStaleAfter is the merchant TTL where a merchant sets none.
	DefaultStaleAfter time.Duration
}

// DefaultStaleAfter is the merchant TTL when none is configured.
const DefaultStaleAfter = 24 * time.Hour

// DefaultBase answers for marketplace, store-pickup and web with a 24h
// merchant TTL.
func DefaultBase() Base {
	return Base{Channels: []string{"marketplace", "store-pickup", "web"}, DefaultStaleAfter: DefaultStaleAfter}
}

// Policies returns the base inventory.Policies: channels and default TTL,
// no location or merchant policies.
func (b Base) Policies() Policies {
	return Policies{Channels: b.Channels, DefaultStaleAfter: b.DefaultStaleAfter}
}

// Validate reports every problem with the base.
func (b Base) Validate() error {
	var errs []error
	if len(b.Channels) == 0 {
		errs = append(errs, errors.New("no channels configured"))
	}
	for _, ch := range b.Channels {
		if err := ValidateID("channel", ch); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, ValidateDefaultStaleAfter(b.DefaultStaleAfter))
	return errors.Join(errs...)
}

// ValidateDefaultStaleAfter checks a default merchant TTL: positive and at
// most MaxStaleAfter.
func ValidateDefaultStaleAfter(d time.Duration) error {
	if d <= 0 || d > MaxStaleAfter {
		return fmt.Errorf("default merchant stale-after %s is outside (0, %s]", d, MaxStaleAfter)
	}
	return nil
}
