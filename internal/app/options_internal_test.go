package app

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
)

func validProcessOptions() ProcessOptions {
	return ProcessOptions{
		Kafka:          kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 4, Replication: 1},
		Base:           inventory.DefaultBase(),
		DataDir:        "/tmp/x",
		ReconcileEvery: DefaultReconcileEvery,
		Coalescing:     DefaultCoalescing,
	}
}

// Zero values mean "off", and off is valid.
func TestProcessOptionsZeroMeansOff(t *testing.T) {
	for name, fix := range map[string]func(*ProcessOptions){
		"defaults":              func(*ProcessOptions) {},
		"coalescing off":        func(o *ProcessOptions) { o.Coalescing = Coalescing{} },
		"both off":              func(o *ProcessOptions) { o.Coalescing, o.ReconcileEvery = Coalescing{}, 0 },
		"coalescing off, defer": func(o *ProcessOptions) { o.Coalescing = Coalescing{MaxDefer: time.Second} },
		"no metrics":            func(o *ProcessOptions) { o.MetricsAddr = "" },
	} {
		o := validProcessOptions()
		fix(&o)
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Each broken field is reported with what to do about it.
func TestProcessOptionsValidate(t *testing.T) {
	for name, tt := range map[string]struct {
		breakIt func(*ProcessOptions)
		want    string
	}{
		"no data dir":              {func(o *ProcessOptions) { o.DataDir = "" }, "data directory is empty"},
		"bad base":                 {func(o *ProcessOptions) { o.Base.Channels = nil }, "no channels configured"},
		"bad kafka":                {func(o *ProcessOptions) { o.Kafka.Brokers = nil }, "no brokers given"},
		"negative reconcile":       {func(o *ProcessOptions) { o.ReconcileEvery = -time.Second }, "reconcile interval -1s is negative (0 turns the reconciler off)"},
		"negative event skew":      {func(o *ProcessOptions) { o.MaxEventSkew = -time.Second }, "max event skew -1s is negative (0 turns the check off)"},
		"negative lag":             {func(o *ProcessOptions) { o.Coalescing.Lag = -1 }, "defer-publish lag -1 is negative (0 turns coalescing off)"},
		"coalescing, no max":       {func(o *ProcessOptions) { o.Coalescing.MaxDefer = 0 }, "maximum publish deferral 0s must be positive while coalescing is on"},
		"off, negative max":        {func(o *ProcessOptions) { o.Coalescing = Coalescing{MaxDefer: -time.Second} }, "maximum publish deferral -1s is negative"},
		"coalescing, no reconcile": {func(o *ProcessOptions) { o.ReconcileEvery = 0 }, "coalesced publishing needs the reconciler"},
	} {
		o := validProcessOptions()
		tt.breakIt(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want it to mention %q", name, err, tt.want)
		}
	}
}

func TestServeOptionsValidate(t *testing.T) {
	o := ServeOptions{Kafka: validProcessOptions().Kafka, Base: inventory.DefaultBase(), DataDir: "/tmp/x"}
	if err := o.Validate(); err != nil {
		t.Fatalf("valid: %v", err)
	}
	o.Base.DefaultStaleAfter, o.DataDir = 0, ""
	err := o.Validate()
	for _, want := range []string{"default merchant stale-after 0s", "data directory is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
