package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

const adminToken = "admin-secret-0123456789abcdef"

// logBuffer collects every log line of a test stack.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type stack struct {
	t     *testing.T
	kafka kafkacfg.Options
	serve *app.Serve
	base  string
	logs  *logBuffer
	stop  context.CancelFunc
}

func testLimits() feeds.Limits {
	l := feeds.DefaultLimits()
	l.MaxBodyBytes, l.MaxRowBytes, l.MaxRows, l.MaxRejectedShown = 64<<10, 256, 1000, 5
	return l
}

type stackOpts struct {
	kafka      kafkacfg.Options
	dataDir    string
	limits     feeds.Limits
	publish    bool
	processors bool
	reauth     time.Duration // service.Options.ReauthorizeEvery (0: its default)
}

// startStack runs a gateway with the feeds service (and the processors if
// asked) against the cluster, all logging at debug level into one buffer.
func startStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.limits == (feeds.Limits{}) {
		o.limits = testLimits()
	}
	cfg := inventory.Base{Channels: []string{"marketplace", "web"}, DefaultStaleAfter: 24 * time.Hour}
	f := app.Feeds(service.Options{Limits: o.limits, AdminToken: adminToken, DefaultStaleAfter: cfg.DefaultStaleAfter, Publish: o.publish,
		ReauthorizeEvery: o.reauth})
	s, err := app.NewServe(app.ServeOptions{Kafka: o.kafka, Base: cfg, DataDir: o.dataDir, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: log, Services: []app.ServiceFactory{f}})
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, kafka: o.kafka, serve: s, base: "http://" + s.HTTPAddr(), logs: logs}
	st.stop = testkit.Go(t, s.Run)
	if o.processors {
		stopP := testkit.Go(t, func(ctx context.Context) error {
			return app.Process(ctx, app.ProcessOptions{Kafka: o.kafka, Base: cfg, DataDir: o.dataDir, Logger: log})
		})
		prev := st.stop
		st.stop = func() { stopP(); prev() }
	}
	testkit.Eventually(t, 30*time.Second, func() error { // /readyz covers the feeds service too
		resp, err := http.Get(st.base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("gateway not ready: %d", resp.StatusCode)
		}
		return nil
	})
	return st
}

type answer struct {
	status int
	body   []byte
	header http.Header
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// do sends a request; token "" sends no Authorization header.
func (s *stack) do(method, path, token, ctype string, body io.Reader) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: b, header: resp.Header}
}

func (s *stack) admin(method, path string, in proto.Message, out proto.Message) answer {
	s.t.Helper()
	var body io.Reader
	ctype := ""
	if in != nil {
		b, _ := protojson.Marshal(in)
		body, ctype = bytes.NewReader(b), "application/json"
	}
	a := s.do(method, path, adminToken, ctype, body)
	if out != nil && a.status == 200 {
		if err := protojson.Unmarshal(a.body, out); err != nil {
			s.t.Fatalf("decode %s: %v", a.body, err)
		}
	}
	return a
}

// createMerchant registers a merchant and returns its token.
func (s *stack) createMerchant(id string, locs ...string) string {
	s.t.Helper()
	var out pb.MerchantToken
	if a := s.admin("POST", "/v1/admin/merchants", &pb.CreateMerchantRequest{MerchantId: id, Locations: locs}, &out); a.status != 200 {
		s.t.Fatalf("create merchant %s: %s", id, a)
	}
	return out.GetToken()
}

func (s *stack) upload(merchant, token, ctype, body string) (answer, *pb.FeedStatus) {
	s.t.Helper()
	a := s.do("POST", "/v1/merchants/"+merchant+"/feeds", token, ctype, strings.NewReader(body))
	var st pb.FeedStatus
	if a.status == 200 || a.status == 413 || (a.status == 400 && bytes.Contains(a.body, []byte("feedId"))) {
		if err := protojson.Unmarshal(a.body, &st); err != nil {
			s.t.Fatalf("decode feed status %s: %v", a.body, err)
		}
	}
	return a, &st
}

func (s *stack) feed(merchant, token, id string) *pb.FeedStatus {
	s.t.Helper()
	a := s.do("GET", "/v1/merchants/"+merchant+"/feeds/"+id, token, "", nil)
	if a.status != 200 {
		s.t.Fatalf("get feed %s: %s", id, a)
	}
	var st pb.FeedStatus
	if err := protojson.Unmarshal(a.body, &st); err != nil {
		s.t.Fatal(err)
	}
	return &st
}

func errorMessage(t *testing.T, a answer) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error answer %s is not JSON: %v", a.body, err)
	}
	return e.Message
}

// supplyLevels reads every stock level on the supply topic.
func supplyLevels(t *testing.T, k kafkacfg.Options) []*pb.StockLevel {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := client.Partitions(string(schema.Supply))
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.StockLevel
	for _, p := range parts {
		hi, err := client.GetOffset(string(schema.Supply), p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		lo, err := client.GetOffset(string(schema.Supply), p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if hi <= lo {
			continue
		}
		pc, err := c.ConsumePartition(string(schema.Supply), p, lo)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			var ev pb.SupplyEvent
			if err := proto.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			if string(m.Key) != ev.GetStockLevel().GetSku() {
				t.Errorf("message key %q, sku %q", m.Key, ev.GetStockLevel().GetSku())
			}
			out = append(out, ev.GetStockLevel())
			if m.Offset >= hi-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

func jsonUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
