package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/app"
)

// gatewayFlags are the gateway's limits and API keys, on serve and dev.
type gatewayFlags struct {
	maxRequestBytes   int64
	readHeaderTimeout time.Duration
	bodyReadTimeout   time.Duration
	idleTimeout       time.Duration
	apiKeys           string
}

func (f *gatewayFlags) register(cmd *cobra.Command) {
	cmd.Flags().Int64Var(&f.maxRequestBytes, "max-request-bytes", gateway.DefaultMaxRequestBytes,
		"largest REST request body (413 past it) and gRPC request message (RESOURCE_EXHAUSTED); the streamed feed upload has its own limit")
	cmd.Flags().DurationVar(&f.readHeaderTimeout, "read-header-timeout", gateway.DefaultReadHeaderTimeout,
		"time a client has to send an HTTP request's headers")
	cmd.Flags().DurationVar(&f.bodyReadTimeout, "body-read-timeout", gateway.DefaultBodyReadTimeout,
		"time a client has to send a REST request body, from the request's start (408 past it; a streamed feed upload must make progress within it), or a gRPC request message (cancelled past it). Answers and watch streams have no write timeout")
	cmd.Flags().DurationVar(&f.idleTimeout, "idle-timeout", gateway.DefaultIdleTimeout,
		"an HTTP keep-alive connection with no request, or a gRPC connection with no RPC, is closed after this long (open watch streams keep theirs)")
	cmd.Flags().StringVar(&f.apiKeys, "api-keys", "",
		"file of hashed API keys (lines from 'skuflow apikey new'); when given, the availability API needs a key with scope read and the reservation API one with scope order (Authorization: Bearer <key>). Re-read every 5s: remove a line to revoke its key. Empty: both APIs are open")
}

// check refuses values the gateway would read as "the default".
func (f gatewayFlags) check() error {
	switch {
	case f.maxRequestBytes < 1:
		return fmt.Errorf("--max-request-bytes %d: give at least 1", f.maxRequestBytes)
	case f.readHeaderTimeout <= 0:
		return fmt.Errorf("--read-header-timeout %s: give more than 0", f.readHeaderTimeout)
	case f.bodyReadTimeout <= 0:
		return fmt.Errorf("--body-read-timeout %s: give more than 0", f.bodyReadTimeout)
	case f.idleTimeout <= 0:
		return fmt.Errorf("--idle-timeout %s: give more than 0", f.idleTimeout)
	}
	return nil
}

func (f gatewayFlags) apply(o *app.ServeOptions) {
	o.Limits = app.GatewayLimits{MaxRequestBytes: f.maxRequestBytes, ReadHeaderTimeout: f.readHeaderTimeout,
		BodyReadTimeout: f.bodyReadTimeout, IdleTimeout: f.idleTimeout}
	o.APIKeysFile = f.apiKeys
}
