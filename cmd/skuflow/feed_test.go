package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// startServe runs `skuflow serve` as a real process and returns it with its
// REST address once it is ready.
func startServe(t *testing.T, k kafkacfg.Options, data, adminFile string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append([]string{"serve", "--brokers", k.Brokers[0], "--partitions", fmt.Sprint(k.Partitions), "--replication", "1",
		"--data", data, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--admin-token-file", adminFile}, extra...)
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if testing.Verbose() == false {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urlRe := regexp.MustCompile(`REST:\s+http://([0-9.:]+)/`)
	sc := bufio.NewScanner(stdout)
	addr := ""
	for sc.Scan() {
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if addr == "" {
		t.Fatal("serve printed no REST URL")
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	return cmd, addr
}

// supply reads every stock level on the supply topic.
func supply(t *testing.T, k kafkacfg.Options) []*pb.StockLevel {
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
	topic := string(schema.Supply)
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.StockLevel
	for _, p := range parts {
		hi, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		lo, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if hi <= lo {
			continue
		}
		pc, err := c.ConsumePartition(topic, p, lo)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			var ev pb.SupplyEvent
			if err := proto.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
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

// TestFeedSurvivesKill9BeforePublishing acknowledges a feed through the
// CLI to a real gateway process whose publisher is off, kills it with
// SIGKILL, restarts it with the publisher on, and checks that the supply
// topic receives exactly the acknowledged rows.
func TestFeedSurvivesKill9BeforePublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker and gateway processes")
	}
	b := testkit.StartBroker(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	adminFile := filepath.Join(dir, "admin-token")
	tokenFile := filepath.Join(dir, "merchant-token")
	if err := os.WriteFile(adminFile, []byte("durability-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, addr := startServe(t, b.Kafka, data, adminFile, "--feeds-publish=false")
	url := "http://" + addr

	out, code := run(t, 60*time.Second, "", "merchant", "create", "ACME", "--location", "ACME-1,ACME-2", "--stale-after", "6h",
		"--url", url, "--admin-token-file", adminFile, "--token-out", tokenFile)
	if code != 0 || !strings.Contains(out, "token written to") {
		t.Fatalf("merchant create: exit %d\n%s", code, out)
	}
	const rows = 500
	var feed strings.Builder
	feed.WriteString("sku,location,on_hand,as_of\n")
	for i := range rows {
		fmt.Fprintf(&feed, "SKU-%04d,ACME-%d,%d,2026-11-21T10:00:00Z\n", i, i%2+1, i*3)
	}
	feedFile := filepath.Join(dir, "feed.csv")
	if err := os.WriteFile(feedFile, []byte(feed.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, 60*time.Second, "", "feed", "publish", "--url", url, "--merchant", "ACME", "--token-file", tokenFile, feedFile)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("accepted %d rows, rejected 0", rows)) {
		t.Fatalf("feed publish: exit %d\n%s", code, out)
	}
	feedID := regexp.MustCompile(`feed (\S+) \(merchant ACME\): complete`).FindStringSubmatch(out)
	if feedID == nil {
		t.Fatalf("no feed id in:\n%s", out)
	}
	if got := supply(t, b.Kafka); len(got) != 0 {
		t.Fatalf("the publisher is off but supply has %d levels", len(got))
	}

	// Acknowledged, not published: kill -9.
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()

	_, addr = startServe(t, b.Kafka, data, adminFile)
	url = "http://" + addr
	testkit.Eventually(t, 60*time.Second, func() error {
		got := supply(t, b.Kafka)
		if len(got) != rows {
			return fmt.Errorf("supply has %d levels, want %d", len(got), rows)
		}
		seen := map[string]bool{}
		for _, l := range got {
			var i int
			if _, err := fmt.Sscanf(l.GetSku(), "SKU-%04d", &i); err != nil || seen[l.GetSku()] {
				return fmt.Errorf("unexpected or duplicate level %v", l)
			}
			seen[l.GetSku()] = true
			want := &pb.StockLevel{Sku: l.GetSku(), Location: fmt.Sprintf("ACME-%d", i%2+1), OnHand: int64(i * 3),
				AsOf: l.GetAsOf(), Sequence: uint64(i + 1)}
			if !proto.Equal(l, want) || l.GetAsOf().AsTime() != time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC) {
				return fmt.Errorf("level %v, want %v", l, want)
			}
		}
		return nil
	})
	out, code = run(t, 60*time.Second, "", "feed", "status", "--url", url, "--merchant", "ACME", "--token-file", tokenFile, feedID[1])
	if code != 0 || !strings.Contains(out, "published: true") {
		t.Fatalf("feed status: exit %d\n%s", code, out)
	}

	// The CLI reports rejected rows with their line numbers and exits 1.
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("sku,location,on_hand\nSKU-X,ACME-1,4\nSKU-Y,OTHER-9,1\nSKU-Z,ACME-2,-5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, 60*time.Second, "", "feed", "publish", "--url", url, "--merchant", "ACME", "--token-file", tokenFile, bad)
	for _, want := range []string{"accepted 1 rows, rejected 2", `line 3: location "OTHER-9" is not registered to merchant "ACME"`, "line 4: on_hand is negative (-5)", "2 rows rejected"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("bad feed: exit %d, want 1 and %q in:\n%s", code, want, out)
		}
	}
	out, code = run(t, 60*time.Second, "", "feed", "locations", "--url", url, "--merchant", "ACME", "--token-file", tokenFile)
	if code != 0 || !strings.Contains(out, "stale after 6h0m0s") || !strings.Contains(out, "ACME-1") {
		t.Errorf("feed locations: exit %d\n%s", code, out)
	}
	// Admin commands refuse the merchant's token.
	out, code = run(t, 60*time.Second, "", "merchant", "list", "--url", url, "--admin-token-file", tokenFile)
	if code != 1 || !strings.Contains(out, "403") {
		t.Errorf("merchant list with a merchant token: exit %d\n%s", code, out)
	}
}

// TestFeedsBenchSmoke runs the feeds benchmark scenarios on a few rows, so
// the 1,000,000-row run in `make bench` cannot rot.
func TestFeedsBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts embedded brokers and a gateway")
	}
	out, code := run(t, 120*time.Second, "", "bench", "--scenarios", "feeds-sarama,feeds", "--messages", "300", "--keys", "30", "--partitions", "2")
	if code != 0 || !regexp.MustCompile(`(?m)^feeds-sarama\s+\d+`).MatchString(out) || !regexp.MustCompile(`(?m)^feeds\s+\d+\s.*MiB`).MatchString(out) {
		t.Fatalf("bench exit %d:\n%s", code, out)
	}
}
