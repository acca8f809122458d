package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/views"
)

func TestOptionsValidate(t *testing.T) {
	valid := func() gateway.Options {
		return gateway.Options{
			HTTPAddr: ":8080", GRPCAddr: ":9090", Stock: views.NewMemory(), Policies: views.NewMemory(),
			Base: inventory.Base{Channels: []string{"web", "store-pickup"}, DefaultStaleAfter: time.Hour},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, fix := range map[string]func(*gateway.Options){
		"zero shutdown timeout (the default)": func(o *gateway.Options) { o.ShutdownTimeout = 0 },
		"nil clock (time.Now)":                func(o *gateway.Options) { o.Now = nil },
		"injected clock":                      func(o *gateway.Options) { o.Now = func() time.Time { return time.Unix(0, 0) } },
		"one channel":                         func(o *gateway.Options) { o.Base.Channels = []string{"web"} },
	} {
		o := valid()
		fix(&o)
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Each break is reported on its own; those not marked alone are also
	// broken all together, in Validate's order.
	breaks := []struct {
		name    string
		breakIt func(*gateway.Options)
		want    []string
		alone   bool // conflicts with a later break of the same field
	}{
		{"no HTTP address", func(o *gateway.Options) { o.HTTPAddr = "" }, []string{"HTTP address is empty"}, false},
		{"no gRPC address", func(o *gateway.Options) { o.GRPCAddr = "" }, []string{"gRPC address is empty"}, false},
		{"no stock lookup", func(o *gateway.Options) { o.Stock = nil }, []string{"no stock lookup"}, false},
		{"no policy lookup", func(o *gateway.Options) { o.Policies = nil }, []string{"no policy lookup"}, false},
		// The base's own rules are inventory.Base.Validate's (see its test);
		// the gateway reports them as one problem.
		{"invalid base", func(o *gateway.Options) { o.Base.Channels = nil; o.Base.DefaultStaleAfter = 0 },
			[]string{"gateway: no channels configured\ndefault merchant stale-after 0s is outside (0, 87600h0m0s]"}, false},
		{"negative shutdown timeout", func(o *gateway.Options) { o.ShutdownTimeout = -time.Second },
			[]string{"shutdown timeout -1s is negative"}, false},
		{"negative body read timeout", func(o *gateway.Options) { o.BodyReadTimeout = -time.Second },
			[]string{"body read timeout -1s is negative"}, false},
		{"negative idle timeout", func(o *gateway.Options) { o.IdleTimeout = -time.Second },
			[]string{"idle timeout -1s is negative"}, false},
		{"negative max request bytes", func(o *gateway.Options) { o.MaxRequestBytes = -1 },
			[]string{"max request bytes -1 is outside [0, 2147483647]"}, true},
		{"max request bytes beyond gRPC's int32", func(o *gateway.Options) { o.MaxRequestBytes = 1 << 31 },
			[]string{"max request bytes 2147483648 is outside"}, false},
		{"negative read header timeout", func(o *gateway.Options) { o.ReadHeaderTimeout = -time.Second },
			[]string{"read header timeout -1s is negative"}, false},
	}
	all := valid()
	var wantAll []string
	for _, tt := range breaks {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.breakIt(&o)
			checkJoined(t, o.Validate(), tt.want...)
		})
		if !tt.alone {
			tt.breakIt(&all)
			wantAll = append(wantAll, tt.want...)
		}
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
