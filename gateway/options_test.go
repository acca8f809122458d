package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/views"
)

func TestOptionsValidate(t *testing.T) {
	valid := func() gateway.Options {
		return gateway.Options{HTTPAddr: ":8080", GRPCAddr: ":9090", Stock: views.NewMemory()}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	zeroTimeout := valid()
	zeroTimeout.ShutdownTimeout = 0 // means the default
	if err := zeroTimeout.Validate(); err != nil {
		t.Fatalf("zero shutdown timeout: %v", err)
	}

	breaks := []struct {
		name    string
		breakIt func(*gateway.Options)
		want    string
	}{
		{"no HTTP address", func(o *gateway.Options) { o.HTTPAddr = "" }, "HTTP address is empty"},
		{"no gRPC address", func(o *gateway.Options) { o.GRPCAddr = "" }, "gRPC address is empty"},
		{"no stock lookup", func(o *gateway.Options) { o.Stock = nil }, "no stock lookup"},
		{"negative shutdown timeout", func(o *gateway.Options) { o.ShutdownTimeout = -time.Second }, "shutdown timeout -1s is negative"},
	}
	all := valid()
	var wantAll []string
	for _, tt := range breaks {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.breakIt(&o)
			checkJoined(t, o.Validate(), tt.want)
		})
		tt.breakIt(&all)
		wantAll = append(wantAll, tt.want)
	}
	t.Run("everything broken", func(t *testing.T) { checkJoined(t, all.Validate(), wantAll...) })
}

// checkJoined checks that err joins exactly one error per wanted message,
// each containing its message.
func checkJoined(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Validate() = nil, want %q", want)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %q (%T), not an errors.Join", err, err)
	}
	errs := joined.Unwrap()
	if len(errs) != len(want) {
		t.Errorf("Validate() reports %d problems, want %d: %q", len(errs), len(want), err)
	}
	for i, w := range want {
		if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d is %q, want it to mention %q", i, errs[i], w)
		}
	}
}
