package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/gateway"
)

// watchFlags bound WatchAvailability streams (gRPC and SSE) on serve and dev.
type watchFlags struct {
	maxWatchers int
	buffer      int
}

func (f *watchFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.maxWatchers, "max-watchers", gateway.DefaultMaxWatchers,
		"watch streams (gRPC WatchAvailability and SSE /v1/availability:watch together) served at once; past it a watch gets RESOURCE_EXHAUSTED (HTTP 429)")
	cmd.Flags().IntVar(&f.buffer, "watch-buffer", gateway.DefaultWatchBuffer,
		fmt.Sprintf("changes a watcher may fall behind before its stream is ended with RESOURCE_EXHAUSTED, so a slow watcher never holds back the others (1 to %d)", gateway.MaxWatchBuffer))
}

// check refuses values the gateway would read as "the default".
func (f watchFlags) check() error {
	if f.maxWatchers < 1 {
		return fmt.Errorf("--max-watchers %d: give at least 1", f.maxWatchers)
	}
	if f.buffer < 1 || f.buffer > gateway.MaxWatchBuffer {
		return fmt.Errorf("--watch-buffer %d: give 1 to %d", f.buffer, gateway.MaxWatchBuffer)
	}
	return nil
}
