package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The gateway the read scenarios (reads.go) query, and its data.

// restGet GETs one answer.
func restGet(ctx context.Context, c *http.Client, url string) (*pb.Availability, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
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
	var a pb.Availability
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &a, nil
}

func onHandAt(a *pb.Availability, loc string) int64 {
	for _, l := range a.GetLocations() {
		if l.GetLocation() == loc {
			return l.GetOnHand()
		}
	}
	return -1
}

// readStack is the embedded broker, every processor and the gateway
// (app.Process and app.Serve, as `skuflow dev` runs them) with the
// sample-like data recovered.
type readStack struct {
	k       kafkacfg.Options
	srv     *app.Serve
	skus    []string
	stop    func()
	roleErr chan error
}

// err reports a role that stopped while the scenario ran.
func (s *readStack) err() error {
	select {
	case err := <-s.roleErr:
		return err
	default:
		return nil
	}
}

func (s *readStack) restURL(sku string) string {
	return "http://" + s.srv.HTTPAddr() + "/v1/availability/" + sku
}

// availClients dials n connections to the gateway's gRPC port.
func (s *readStack) availClients(n int) ([]pb.AvailabilityServiceClient, func(), error) {
	conns, closeAll, err := grpcConns(s.srv.GRPCAddr(), n)
	if err != nil {
		return nil, nil, err
	}
	out := make([]pb.AvailabilityServiceClient, n)
	for i, c := range conns {
		out[i] = pb.NewAvailabilityServiceClient(c)
	}
	return out, closeAll, nil
}

func startStack(ctx context.Context, o Options, dir string, opts ...func(*app.ServeOptions)) (st *readStack, err error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	st = &readStack{k: k, roleErr: make(chan error, 2)}
	st.stop = func() {
		cancel()
		wg.Wait()
		b.Close()
	}
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	role := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(pctx); err != nil && pctx.Err() == nil {
				st.roleErr <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	base := inventory.DefaultBase()
	role("process", func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: base, DataDir: filepath.Join(dir, "proc"),
			ReconcileEvery: app.DefaultReconcileEvery, Coalescing: app.DefaultCoalescing})
	})
	so := app.ServeOptions{Kafka: k, Base: base, DataDir: filepath.Join(dir, "serve"), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"}
	for _, f := range opts {
		f(&so)
	}
	if st.srv, err = app.NewServe(so); err != nil {
		return nil, err
	}
	role("serve", st.srv.Run)
	sz := sizes(o)
	data := sampleLike(sz.skus)
	for _, topic := range []string{string(schema.Policies), string(schema.SkuPolicies), string(schema.Supply)} {
		if _, err := emit.Emit(ctx, emit.Options{Kafka: k, Topic: topic, Input: bytes.NewReader(data.lines[topic])}); err != nil {
			return nil, fmt.Errorf("publish %s: %w", topic, err)
		}
	}
	st.skus = data.skus
	conns, closeConns, err := st.availClients(1)
	if err != nil {
		return nil, err
	}
	defer closeConns()
	// Ready when the views have recovered and every SKU is answered: polled
	// every 50 ms for up to 2 minutes.
	next := 0
	if _, err := backoff.Retry(ctx, func() (struct{}, error) {
		if err := st.err(); err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		for ; next < len(st.skus); next++ {
			if _, err := conns[0].GetAvailability(ctx, &pb.GetAvailabilityRequest{Sku: st.skus[next]}); err != nil {
				return struct{}{}, err
			}
		}
		if !st.srv.Ready() {
			return struct{}{}, errors.New("views recovering")
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(50*time.Millisecond)), backoff.WithMaxElapsedTime(2*time.Minute)); err != nil {
		return nil, fmt.Errorf("stack not ready (%d of %d SKUs answered): %w", next, len(st.skus), err)
	}
	if o.Debug != nil {
		fmt.Fprintf(o.Debug, "stack ready: %d SKUs, REST %s, gRPC %s\n", len(st.skus), st.srv.HTTPAddr(), st.srv.GRPCAddr())
	}
	return st, nil
}

// sampleData is what the read scenarios' gateway serves: protojson lines
// per topic, in the shape of `skuflow dev --sample-data`.
type sampleData struct {
	skus  []string
	lines map[string][]byte
}

// sampleLike builds n SKUs like the sample data: each with stock at two
// warehouses, a store (floor and back room) and a trusted merchant, an
// adjustment; every tenth with a web sales cap, every seventh with a
// safety-stock override, every thirteenth not sellable on the marketplace.
func sampleLike(n int) sampleData {
	const asOf = "2026-11-20T08:00:00Z"
	var pol, skuPol, supply strings.Builder
	for _, l := range []string{
		`{"location":{"location":"WH-EAST","kind":"LOCATION_KIND_WAREHOUSE","safetyStock":"2","asOf":"2026-11-01T00:00:00Z"}}`,
		`{"location":{"location":"WH-WEST","kind":"LOCATION_KIND_WAREHOUSE","channels":["web","store-pickup"],"asOf":"2026-11-01T00:00:00Z"}}`,
		`{"location":{"location":"STORE-042","kind":"LOCATION_KIND_STORE","channels":["store-pickup"],"safetyStock":"1","asOf":"2026-11-01T00:00:00Z"}}`,
		`{"location":{"location":"MERCH-A-1","kind":"LOCATION_KIND_MERCHANT","merchantId":"MERCHANT-A","channels":["marketplace"],"asOf":"2026-11-01T00:00:00Z"}}`,
		`{"merchant":{"merchantId":"MERCHANT-A","staleAfter":"315360000s","asOf":"2026-11-01T00:00:00Z"}}`,
	} {
		pol.WriteString(l + "\n")
	}
	d := sampleData{lines: map[string][]byte{}}
	for i := range n {
		sku := fmt.Sprintf("SKU-%05d", i)
		d.skus = append(d.skus, sku)
		level := func(loc, area string, onHand int) {
			a := ""
			if area != "" {
				a = fmt.Sprintf(`"area":%q,`, area)
			}
			fmt.Fprintf(&supply, `{"stockLevel":{"sku":%q,"location":%q,%s"onHand":"%d","asOf":%q,"sequence":"1"}}`+"\n", sku, loc, a, onHand, asOf)
		}
		level("WH-EAST", "", 20+i%50)
		level("WH-WEST", "", 5+i%30)
		level("STORE-042", "floor", i%4)
		level("STORE-042", "backroom", i%9)
		level("MERCH-A-1", "", 10+i%40)
		fmt.Fprintf(&supply, `{"stockAdjustment":{"eventId":"adj-%s-1","sku":%q,"location":"WH-EAST","delta":"-1","occurredAt":"2026-11-20T09:00:00Z"}}`+"\n", sku, sku)
		if i%10 == 0 {
			fmt.Fprintf(&skuPol, `{"salesCap":{"sku":%q,"channel":"web","limit":"30","windowStart":"2026-11-01T00:00:00Z","windowEnd":"2036-11-01T00:00:00Z","asOf":"2026-11-01T00:00:00Z"}}`+"\n", sku)
		}
		if i%7 == 0 {
			fmt.Fprintf(&skuPol, `{"safetyStock":{"sku":%q,"location":"WH-EAST","units":"5","asOf":"2026-11-01T00:00:00Z"}}`+"\n", sku)
		}
		if i%13 == 0 {
			fmt.Fprintf(&skuPol, `{"channelEligibility":{"sku":%q,"channel":"marketplace","sellable":false,"asOf":"2026-11-01T00:00:00Z"}}`+"\n", sku)
		}
	}
	d.lines[string(schema.Policies)] = []byte(pol.String())
	d.lines[string(schema.SkuPolicies)] = []byte(skuPol.String())
	d.lines[string(schema.Supply)] = []byte(supply.String())
	return d
}
