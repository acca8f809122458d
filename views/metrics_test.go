package views_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
	"github.com/skuflow/skuflow/views/viewtest"
)

var (
	_ views.Observed = (*views.Stock)(nil)
	_ views.Observed = (*views.Policies)(nil)
	_ views.Observed = (*views.Orders)(nil)
	_ views.Observed = (*views.Availability)(nil)
)

func TestMetricsOptionsValidate(t *testing.T) {
	valid := views.MetricsOptions{Brokers: []string{"127.0.0.1:9092"}, Interval: time.Second}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, tc := range map[string]struct {
		break_ func(*views.MetricsOptions)
		want   string
	}{
		"no brokers":        {func(o *views.MetricsOptions) { o.Brokers = nil }, "no brokers"},
		"negative interval": {func(o *views.MetricsOptions) { o.Interval = -time.Second }, "interval -1s is negative"},
	} {
		t.Run(name, func(t *testing.T) {
			o := valid
			tc.break_(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := views.NewMetrics(o); err == nil {
				t.Error("NewMetrics accepted the options")
			}
		})
	}
}

type observed struct{}

func (observed) Observe(context.Context) views.Observation { return views.Observation{} }

func TestMetricsAddTwice(t *testing.T) {
	m, err := views.NewMetrics(views.MetricsOptions{Brokers: []string{"127.0.0.1:9092"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add("stock", observed{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Add("stock", observed{}); err == nil || !strings.Contains(err.Error(), `"stock" added twice`) {
		t.Errorf("second Add = %v, want an error naming the view", err)
	}
}

// TestViewMetrics: on the embedded broker, a view that has not run yet is
// not recovered and lags by every message of its changelog; once it runs it
// is recovered with lag 0, keeps lag 0 as the table moves on, and once it
// stops it is not recovered and its lag is left out. Read through /metrics
// with a real HTTP client.
func TestViewMetrics(t *testing.T) {
	b := testkit.StartBroker(t)
	if err := b.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
	states := viewtest.States(t)
	emitTable(t, b, states...)

	stock, err := views.NewStock(b.Kafka.Brokers, viewOptions(t, b)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := views.NewMetrics(views.MetricsOptions{Brokers: b.Kafka.Brokers, Sarama: b.Kafka.Sarama(), Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add("stock", stock); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	testkit.Go(t, m.Run)

	want := func(recovered float64, lag string) func() error {
		return func() error {
			fams, err := scrape(srv.URL)
			if err != nil {
				return err
			}
			if got, ok := gauge(fams, "skuflow_view_recovered", "stock"); !ok || got != recovered {
				return fmt.Errorf("skuflow_view_recovered{view=stock} = %v (present %v), want %v", got, ok, recovered)
			}
			got, ok := gauge(fams, "skuflow_view_lag_messages", "stock")
			switch {
			case lag == "absent" && ok:
				return fmt.Errorf("skuflow_view_lag_messages{view=stock} = %v, want it left out", got)
			case lag != "absent" && (!ok || fmt.Sprint(got) != lag):
				return fmt.Errorf("skuflow_view_lag_messages{view=stock} = %v (present %v), want %s", got, ok, lag)
			}
			return nil
		}
	}
	// Not run yet: the whole changelog is ahead.
	testkit.Eventually(t, 20*time.Second, want(0, fmt.Sprint(len(states))))

	stop := testkit.Go(t, stock.Run)
	testkit.Eventually(t, 20*time.Second, want(1, "0"))

	// The table moves on; the running view follows it.
	emitTable(t, b, states[0], states[1])
	waitVisible(t, stock, states...)
	testkit.Eventually(t, 20*time.Second, want(1, "0"))

	stop()
	testkit.Eventually(t, 20*time.Second, want(0, "absent"))
}

// TestViewMetricsRunStops: Run returns once its context ends, also while
// the cluster cannot be reached.
func TestViewMetricsRunStops(t *testing.T) {
	m, err := views.NewMetrics(views.MetricsOptions{Brokers: []string{"127.0.0.1:1"}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// scrape reads url with a real HTTP client and parses the text exposition.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(string(body)))
}

// gauge is the value of family name's sample with label view=view.
func gauge(fams map[string]*dto.MetricFamily, name, view string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "view" && l.GetValue() == view {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
