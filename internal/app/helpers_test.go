package app_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type kafkaOpts = kafkacfg.Options

// listen binds a free loopback port for a server the test starts: the test
// hands the listener itself to the server (never just its port, which
// another process could take between closing and reopening it) and reads
// the address from it.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // in case the server never starts
	return ln
}

// waitMetric waits until a line of http://addr/metrics contains every part,
// for up to 20 s.
func waitMetric(t *testing.T, addr string, parts ...string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return nil
			}
		}
		return fmt.Errorf("no metric line with %q at %s; body:\n%s", parts, addr, b)
	})
}

// metricValue is the value of an unlabelled metric at http://addr/metrics.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s", name, addr)
	return 0
}

// serve starts the serving role on cluster k with base and returns it with
// an availability client over gRPC.
func serve(t *testing.T, k kafkaOpts, base inventory.Base) (*app.Serve, pb.AvailabilityServiceClient) {
	t.Helper()
	srv, err := app.NewServe(app.ServeOptions{Kafka: k, Base: base, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	conn := dialGRPC(t, srv.GRPCAddr())
	return srv, pb.NewAvailabilityServiceClient(conn)
}

// dialGRPC is a client connection to addr that closes with the test.
func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
