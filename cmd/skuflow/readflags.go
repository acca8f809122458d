package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
)

// readFlags configure the read API on serve and dev: the batch limit, HTTP
// caching and the kept answers.
type readFlags struct {
	batchLimit  int
	cacheMaxAge time.Duration
	answerCache int
}

func (f *readFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.batchLimit, "batch-limit", gateway.DefaultBatchLimit,
		"most SKUs one BatchGetAvailability (GET /v1/availability, POST /v1/availability:batchGet) may ask for; more get INVALID_ARGUMENT (HTTP 400)")
	cmd.Flags().DurationVar(&f.cacheMaxAge, "cache-max-age", gateway.DefaultCacheMaxAge,
		"longest Cache-Control max-age of a REST answer, which never reaches past the answer's next_change_at (0: no-cache)")
	cmd.Flags().IntVar(&f.answerCache, "answer-cache", gateway.DefaultAnswerCacheSize,
		"evaluated answers kept (with their encodings) while they hold, to answer reads without evaluating again; about 6 KB each for a SKU at five locations; rounded down to a multiple of 64, at least 64 (0: keep none)")
}

// check refuses values the gateway cannot use.
func (f readFlags) check() error {
	switch {
	case f.batchLimit < 1:
		return fmt.Errorf("--batch-limit %d: give at least 1", f.batchLimit)
	case f.cacheMaxAge < 0:
		return fmt.Errorf("--cache-max-age %s: give 0 (no-cache) or more", f.cacheMaxAge)
	case f.answerCache < 0:
		return fmt.Errorf("--answer-cache %d: give 0 (keep none) or more", f.answerCache)
	}
	return nil
}

// apply sets the serving role's read options; a flag's 0 ("none") is the
// gateway's negative, since its 0 means "the default".
func (f readFlags) apply(o *app.ServeOptions) {
	o.BatchLimit, o.CacheMaxAge, o.AnswerCacheSize = f.batchLimit, f.cacheMaxAge, f.answerCache
	if f.cacheMaxAge == 0 {
		o.CacheMaxAge = -1
	}
	if f.answerCache == 0 {
		o.AnswerCacheSize = -1
	}
}
