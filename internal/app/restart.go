package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/lovoo/goka"
)

// Restart policy of a processor (see restarting).
const (
	maxRestarts   = 5
	healthyRun    = 10 * time.Minute
	firstRestart  = 500 * time.Millisecond
	latestRestart = 10 * time.Second
)

// restarting runs a processor, building it anew after a failure that a
// fresh start recovers from: a table offset that compaction or retention
// removed between goka looking it up and fetching it ("offset is outside
// the range"; goka wraps the broker error in text, so the text is what can
// be matched). Other errors, and more than maxRestarts restarts in a row,
// end the role; a run longer than healthyRun starts the count afresh.
// Restarts wait with exponential backoff and jitter.
func restarting(log *slog.Logger, build func() (*goka.Processor, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = firstRestart, latestRestart
		for attempt := 1; ; attempt++ {
			p, err := build()
			if err != nil {
				return err
			}
			started := time.Now()
			err = p.Run(ctx)
			if time.Since(started) > healthyRun {
				attempt = 1
				b.Reset()
			}
			if err == nil || ctx.Err() != nil || attempt > maxRestarts || !strings.Contains(err.Error(), "outside the range of offsets") {
				return err
			}
			wait := b.NextBackOff()
			log.Warn("processor stopped on a vanished offset; restarting it", "attempt", attempt, "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}
