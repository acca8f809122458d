package app

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
)

// A metrics address or a metrics listener, not both.
func TestProcessOptionsMetricsListener(t *testing.T) {
	base := ProcessOptions{
		Kafka:   kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 4, Replication: 1},
		Base:    inventory.DefaultBase(),
		DataDir: "/tmp/x",
	}
	ln := &closeRecorder{}
	for name, fix := range map[string]func(*ProcessOptions){
		"neither":  func(*ProcessOptions) {},
		"address":  func(o *ProcessOptions) { o.MetricsAddr = "127.0.0.1:0" },
		"listener": func(o *ProcessOptions) { o.MetricsListener = ln },
	} {
		o := base
		fix(&o)
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	o := base
	o.MetricsAddr, o.MetricsListener = "127.0.0.1:0", ln
	want := `metrics address "127.0.0.1:0" and a metrics listener are both set`
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate() = %v, want it to mention %q", err, want)
	}
	// Process owns a listener it is given: it closes it even when it
	// returns before serving.
	if err := Process(context.Background(), o); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Process() = %v, want the validation error", err)
	}
	if !ln.closed {
		t.Error("Process returned without closing the metrics listener it was given")
	}
}

type closeRecorder struct {
	net.Listener
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

func (c *closeRecorder) Accept() (net.Conn, error) { return nil, errors.New("never served") }
