package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// lockedBuffer collects a process's output for assertions.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gatewayProc is a `skuflow serve` process.
type gatewayProc struct {
	cmd  *exec.Cmd
	grpc string // gRPC address, host:port
	logs *lockedBuffer
}

// startServe runs `skuflow serve` as a real process and returns it with its
// gRPC address once it is ready; its logs (stderr) are kept.
func startServe(t *testing.T, k kafkacfg.Options, data, adminFile string, extra ...string) gatewayProc {
	t.Helper()
	args := append([]string{"serve", "--brokers", k.Brokers[0], "--partitions", fmt.Sprint(k.Partitions), "--replication", "1",
		"--data", data, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--admin-token-file", adminFile}, extra...)
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if testing.Verbose() {
		cmd.Stderr = io.MultiWriter(logs, os.Stderr)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	restRe := regexp.MustCompile(`REST:\s+http://([0-9.:]+)/`)
	grpcRe := regexp.MustCompile(`gRPC:\s+([0-9.:]+) `)
	sc := bufio.NewScanner(stdout)
	rest, grpcAddr := "", ""
	for (rest == "" || grpcAddr == "") && sc.Scan() {
		if m := restRe.FindStringSubmatch(sc.Text()); m != nil {
			rest = m[1]
		}
		if m := grpcRe.FindStringSubmatch(sc.Text()); m != nil {
			grpcAddr = m[1]
		}
	}
	go io.Copy(io.Discard, stdout)
	if rest == "" || grpcAddr == "" {
		t.Fatalf("serve printed no REST or gRPC address (REST %q, gRPC %q)", rest, grpcAddr)
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + rest + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	return gatewayProc{cmd: cmd, grpc: grpcAddr, logs: logs}
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
// CLI (gRPC) to a real gateway process whose publisher is off, kills it with
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
	gw := startServe(t, b.Kafka, data, adminFile, "--feeds-publish=false")

	out, code := run(t, 60*time.Second, "", "merchant", "create", "ACME", "--location", "ACME-1,ACME-2", "--stale-after", "6h",
		"--grpc", gw.grpc, "--admin-token-file", adminFile, "--token-out", tokenFile)
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
	out, code = run(t, 60*time.Second, "", "feed", "publish", "--grpc", gw.grpc, "--merchant", "ACME", "--token-file", tokenFile, feedFile)
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
	if err := gw.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gw.cmd.Wait()

	gw = startServe(t, b.Kafka, data, adminFile)
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
	testkit.Eventually(t, 60*time.Second, func() error {
		out, code := run(t, 60*time.Second, "", "feed", "status", "--grpc", gw.grpc, "--merchant", "ACME", "--token-file", tokenFile, feedID[1])
		if code != 0 || !strings.Contains(out, "published: true") {
			return fmt.Errorf("feed status: exit %d\n%s", code, out)
		}
		return nil
	})
}

// TestFeedAndMerchantCommandsOverGRPC runs every feed and merchant command
// against a real gateway process over gRPC: the happy paths, the gateway's
// errors with their codes and exit status 1, the rows rejected with their
// file line numbers, a multi-message upload, and no token in any output or
// gateway log.
func TestFeedAndMerchantCommandsOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker and a gateway process")
	}
	b := testkit.StartBroker(t)
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-token")
	const adminToken = "grpc-cli-admin-token-0123456789abcdef"
	if err := os.WriteFile(adminFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startServe(t, b.Kafka, filepath.Join(dir, "data"), adminFile, "--feeds-max-rows", "5000", "--log-level", "debug")
	var outputs []string
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, code := run(t, 60*time.Second, "", append(args, "--grpc", gw.grpc)...)
		outputs = append(outputs, out)
		if code != wantCode {
			t.Fatalf("skuflow %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Fatalf("skuflow %s panicked:\n%s", strings.Join(args, " "), out)
		}
		return out
	}
	// protojson varies its spacing on purpose: compare `"key": value`.
	jsonSpace := regexp.MustCompile(`":\s+`)
	contains := func(what, out string, wants ...string) {
		t.Helper()
		out = jsonSpace.ReplaceAllString(out, `": `)
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", what, w, out)
			}
		}
	}
	readToken := func(path string) string {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	writeFile := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// The registry.
	acmeFile := filepath.Join(dir, "acme.token")
	out := cli(0, "merchant", "create", "ACME", "--location", "ACME-1,ACME-2", "--stale-after", "6h", "--admin-token-file", adminFile, "--token-out", acmeFile)
	contains("merchant create", out, `"merchantId": "ACME"`, "token written to "+acmeFile)
	// Merchant locations serve only marketplace unless --channels says
	// otherwise.
	wantChannels := func(what, out string, want map[string]string) {
		t.Helper()
		js, _, _ := strings.Cut(out, "\ntoken ")
		var m pb.Merchant
		if err := protojson.Unmarshal([]byte(js), &m); err != nil {
			t.Fatalf("%s: output is no merchant (%v):\n%s", what, err, out)
		}
		got := map[string]string{}
		for _, lc := range m.GetLocationChannels() {
			got[lc.GetLocation()] = strings.Join(lc.GetChannels(), ",")
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: channels by location %v, want %v", what, got, want)
		}
	}
	wantChannels("merchant create", out, map[string]string{"ACME-1": "marketplace", "ACME-2": "marketplace"})
	acme := readToken(acmeFile)
	out = cli(0, "merchant", "create", "BETA", "--location", "BETA-1", "--admin-token-file", adminFile)
	m := regexp.MustCompile(`token \(shown only now; store it safely\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("merchant create without --token-out prints no token:\n%s", out)
	}
	beta := m[1]
	betaFile := writeFile("beta.token", beta+"\n")
	out = cli(1, "merchant", "create", "ACME", "--admin-token-file", adminFile, "--token-out", filepath.Join(dir, "never.token"))
	contains("duplicate merchant", out, "merchant create: the gateway answered ALREADY_EXISTS")
	if _, err := os.Stat(filepath.Join(dir, "never.token")); !os.IsNotExist(err) {
		t.Errorf("a failed create left a token file behind (%v)", err)
	}
	out = cli(1, "merchant", "add-location", "ACME", "BETA-1", "--admin-token-file", adminFile)
	contains("a location of another merchant", out, "FAILED_PRECONDITION")
	out = cli(0, "merchant", "add-location", "ACME", "ACME-3", "--admin-token-file", adminFile)
	contains("add-location", out, `"ACME-3"`)
	wantChannels("add-location", out, map[string]string{"ACME-1": "marketplace", "ACME-2": "marketplace", "ACME-3": "marketplace"})
	out = cli(0, "merchant", "add-location", "ACME", "ACME-3", "--channels", "web,marketplace,web", "--admin-token-file", adminFile)
	wantChannels("add-location --channels", out, map[string]string{"ACME-1": "marketplace", "ACME-2": "marketplace", "ACME-3": "marketplace,web"})
	out = cli(0, "merchant", "add-location", "ACME", "ACME-3", "--admin-token-file", adminFile)
	wantChannels("add-location again without --channels", out, map[string]string{"ACME-1": "marketplace", "ACME-2": "marketplace", "ACME-3": "marketplace,web"})
	out = cli(1, "merchant", "add-location", "ACME", "ACME-3", "--channels", "web,Store Pickup", "--admin-token-file", adminFile)
	contains("add-location with a bad channel", out, `--channels: channel "Store Pickup" has characters outside`)
	out = cli(1, "merchant", "create", "GAMMA", "--location", "GAMMA-1", "--channels", "marketplace,", "--admin-token-file", adminFile)
	contains("create with an empty channel", out, "--channels: channel is empty")
	out = cli(0, "merchant", "remove-location", "ACME", "ACME-3", "--admin-token-file", adminFile)
	if strings.Contains(out, `"ACME-3"`) || !strings.Contains(out, `"ACME-1"`) {
		t.Errorf("remove-location: want ACME-1 and ACME-2 left:\n%s", out)
	}
	out = cli(0, "merchant", "set-stale-after", "BETA", "2h", "--admin-token-file", adminFile)
	contains("set-stale-after", out, `"staleAfter": "7200s"`)
	out = cli(0, "merchant", "get", "ACME", "--admin-token-file", adminFile)
	contains("merchant get", out, `"merchantId": "ACME"`, `"ACME-1"`, `"ACME-2"`, `"staleAfter": "21600s"`)
	out = cli(0, "merchant", "list", "--admin-token-file", adminFile)
	contains("merchant list", out, `"merchantId": "ACME"`, `"merchantId": "BETA"`)
	out = cli(1, "merchant", "get", "NOBODY", "--admin-token-file", adminFile)
	contains("unknown merchant", out, "merchant get: the gateway answered NOT_FOUND")
	out = cli(1, "merchant", "get", "bad id", "--admin-token-file", adminFile)
	contains("bad merchant id", out, "INVALID_ARGUMENT")
	// Admin commands refuse merchant tokens and wrong tokens.
	out = cli(1, "merchant", "list", "--admin-token-file", acmeFile)
	contains("merchant list with a merchant token", out, "merchant list: the gateway answered PERMISSION_DENIED: merchant tokens may not use the admin API")
	wrongFile := writeFile("wrong.token", "not-the-admin-token-0123456789\n")
	out = cli(1, "merchant", "list", "--admin-token-file", wrongFile)
	contains("merchant list with a wrong token", out, "UNAUTHENTICATED", "check the token file")

	// A feed over several messages: blank lines and rows that do not parse
	// are skipped by the CLI, the gateway rejects rows of unowned locations;
	// every rejected row is reported with its line in the file.
	var feed strings.Builder
	feed.WriteString("location,sku,on_hand\n") // line 1
	line, wantAccepted := 1, 0
	var wantRejected []string
	for i := range 2600 {
		line++
		switch {
		case i == 700:
			feed.WriteString("\n") // a blank line is skipped
		case i == 1200:
			feed.WriteString("ACME-1,SKU-X,many\n")
			wantRejected = append(wantRejected, fmt.Sprintf(`line %d: on_hand "many" is not a whole number`, line))
		case i == 1500:
			feed.WriteString("ACME-2,SKU-Y,-4\n")
			wantRejected = append(wantRejected, fmt.Sprintf("line %d: on_hand is negative (-4)", line))
		case i == 1800 || i == 2599:
			feed.WriteString("BETA-1,SKU-Z,9\n")
			wantRejected = append(wantRejected, fmt.Sprintf(`line %d: location "BETA-1" is not registered to merchant "ACME"`, line))
		default:
			fmt.Fprintf(&feed, "ACME-%d,SKU-%04d,%d\n", i%2+1, i, i)
			wantAccepted++
		}
	}
	big := writeFile("big.csv", feed.String())
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, big)
	contains("feed publish", out, append(wantRejected, fmt.Sprintf("accepted %d rows, rejected 4", wantAccepted),
		"(2 of them rejected here, not sent: 'feed status' counts only the rows the gateway received)", "4 rows rejected")...)
	for i := 1; i < len(wantRejected); i++ {
		if strings.Index(out, wantRejected[i-1]) > strings.Index(out, wantRejected[i]) {
			t.Errorf("rejected rows are not in line order:\n%s", out)
		}
	}
	feedID := regexp.MustCompile(`feed (\S+) \(merchant ACME\): complete`).FindStringSubmatch(out)
	if feedID == nil {
		t.Fatalf("no feed id in:\n%s", out)
	}
	// The gateway's record counts the rows it received; wait until published.
	testkit.Eventually(t, 60*time.Second, func() error {
		out, code := run(t, 60*time.Second, "", "feed", "status", "--grpc", gw.grpc, "--merchant", "ACME", "--token-file", acmeFile, feedID[1])
		if code != 0 || !strings.Contains(out, fmt.Sprintf("accepted %d rows, rejected 2", wantAccepted)) || !strings.Contains(out, "published: true") {
			return fmt.Errorf("feed status: exit %d\n%s", code, out)
		}
		return nil
	})

	// NDJSON, by extension and by --format.
	nd := writeFile("feed.ndjson", `{"sku":"SKU-N1","location":"ACME-1","on_hand":5}`+"\n"+`{"sku":"SKU-N2","location":"ACME-2","on_hand":0,"as_of":"2026-11-21T10:00:00Z"}`+"\n")
	out = cli(0, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, nd)
	contains("ndjson feed", out, "accepted 2 rows, rejected 0")
	txt := writeFile("feed.txt", `{"sku":"SKU-N3","location":"ACME-1","on_hand":1}`+"\n")
	out = cli(0, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, "--format", "ndjson", txt)
	contains("--format ndjson", out, "accepted 1 rows, rejected 0")
	empty := writeFile("empty.ndjson", "")
	out = cli(0, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, empty)
	contains("empty ndjson feed", out, "accepted 0 rows, rejected 0")

	// A broken header sends nothing; a long line stops reading, the rows
	// before it are stored.
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, writeFile("header.csv", "sku,where,on_hand\nSKU-1,ACME-1,1\n"))
	contains("broken header", out, `unknown column "where"`, "nothing was uploaded")
	// The gateway records such a feed failed with the reason (as for a REST
	// upload that stops early), and 'feed status' says so.
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile,
		writeFile("long.csv", "sku,location,on_hand\nSKU-L1,ACME-1,1\nSKU-L2,ACME-1,"+strings.Repeat("9", 1<<20)+"\nSKU-L3,ACME-1,3\n"))
	contains("long line", out, "): failed", "accepted 1 rows, rejected 0", "line 3 is longer than the limit of 1048576 bytes", "the 1 rows before it were uploaded as feed")
	longID := regexp.MustCompile(`feed (\S+) \(merchant ACME\): failed`).FindStringSubmatch(out)
	if longID == nil {
		t.Fatalf("no failed feed id in:\n%s", out)
	}
	out = cli(0, "feed", "status", "--merchant", "ACME", "--token-file", acmeFile, longID[1])
	contains("status of the stopped feed", out, "): failed", "the client stopped the upload: line 3 is longer than the limit of 1048576 bytes", "accepted 1 rows")
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile,
		writeFile("long.ndjson", `{"sku":"`+strings.Repeat("S", 1<<20)+`"}`+"\n"))
	contains("long first line", out, "line 1 is longer than the limit of 1048576 bytes; nothing was uploaded")

	// More rows than the gateway's --feeds-max-rows: RESOURCE_EXHAUSTED,
	// after the gateway ended the stream in the middle.
	feed.Reset()
	feed.WriteString("sku,location,on_hand\n")
	for i := range 6000 {
		fmt.Fprintf(&feed, "SKU-%04d,ACME-1,%d\n", i, i)
	}
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", acmeFile, writeFile("huge.csv", feed.String()))
	contains("too many rows", out, "feed publish: the gateway answered RESOURCE_EXHAUSTED: feed ", "more than the limit of 5000 rows")

	// Tokens: another merchant's is PERMISSION_DENIED, a wrong one UNAUTHENTICATED.
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", betaFile, nd)
	contains("another merchant's token", out, "feed publish: the gateway answered PERMISSION_DENIED: this token belongs to another merchant")
	out = cli(1, "feed", "publish", "--merchant", "ACME", "--token-file", wrongFile, big)
	contains("wrong token", out, "feed publish: the gateway answered UNAUTHENTICATED")
	out = cli(1, "feed", "locations", "--merchant", "ACME", "--token-file", adminFile)
	contains("the admin token on the merchant API", out, "UNAUTHENTICATED")
	out = cli(1, "feed", "status", "--merchant", "ACME", "--token-file", acmeFile, "20260101T000000Z-000000000000")
	contains("unknown feed", out, "feed status: the gateway answered NOT_FOUND")

	out = cli(0, "feed", "locations", "--merchant", "ACME", "--token-file", acmeFile)
	contains("feed locations", out, "merchant ACME, stale after 6h0m0s", "ACME-1", "ACME-2")
	if strings.Contains(out, "never") {
		t.Errorf("feed locations: a location without a feed after feeds for both:\n%s", out)
	}
	out = cli(0, "feed", "republish", "--since", "1", "--admin-token-file", adminFile)
	contains("feed republish", out, "outbox: checkpoint is now 0", "re-publishing")
	out = cli(1, "feed", "republish", "--since", "1", "--admin-token-file", acmeFile)
	contains("feed republish with a merchant token", out, "PERMISSION_DENIED")

	// rotate-token replaces the token file; the old token stops working.
	out = cli(0, "merchant", "rotate-token", "ACME", "--admin-token-file", adminFile, "--token-out", acmeFile)
	contains("rotate-token", out, "token written to "+acmeFile)
	acme2 := readToken(acmeFile)
	if acme2 == acme || acme2 == "" {
		t.Fatalf("rotate-token wrote the same or no token")
	}
	cli(1, "feed", "locations", "--merchant", "ACME", "--token-file", writeFile("old.token", acme+"\n"))
	cli(0, "feed", "locations", "--merchant", "ACME", "--token-file", acmeFile)

	// No token in any output or in the gateway's log.
	logs := gw.logs.String()
	if !strings.Contains(logs, "feed received") {
		t.Errorf("the gateway's log is not captured:\n%s", logs)
	}
	for _, tok := range []string{adminToken, acme, acme2, beta, "not-the-admin-token-0123456789"} {
		if strings.Contains(logs, tok) {
			t.Errorf("the gateway logged a token")
		}
		for _, o := range outputs {
			if strings.Contains(o, tok) && !strings.Contains(o, "shown only now") {
				t.Errorf("CLI output holds a token:\n%s", o)
			}
		}
	}
}

// TestFeedAndMerchantCommandsRejectBadInput checks the errors that come
// before or instead of a call: bad flags, token files, unreachable or wrong
// addresses. None panics, each exits 1 with a clear message.
func TestFeedAndMerchantCommandsRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("a-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spaced := filepath.Join(dir, "spaced")
	if err := os.WriteFile(spaced, []byte("secret part-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyTok := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyTok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "feed.csv")
	if err := os.WriteFile(csv, []byte("sku,location,on_hand\nSKU-1,ACME-1,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on.
	closed := refusedAddr(t)
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	// Something that is not a gRPC server.
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	webAddr := strings.TrimPrefix(web.URL, "http://")

	publish := []string{"feed", "publish", "--merchant", "ACME", "--token-file", tok}
	cases := []struct {
		args []string
		want string
	}{
		{append(publish, "--url", "http://localhost:8080", csv), "--url is no longer supported: the CLI calls the gateway over gRPC; give its gRPC address with --grpc host:port (default localhost:9090)"},
		{append(publish, "--grpc", "http://localhost:9090", csv), `--grpc "http://localhost:9090" is a URL: give the gateway's gRPC address as host:port`},
		{append(publish, "--grpc", "nohost", csv), `--grpc "nohost" is not host:port`},
		{append(publish, "--grpc", "localhost:http", csv), `port "http" is not a number`},
		{append(publish, "--grpc", closed, csv), "feed publish: cannot reach the gateway at " + closed},
		{append(publish, "--grpc", webAddr, csv), "is " + webAddr + " the gateway's gRPC address?"},
		{append(publish, "--timeout", "-1s", csv), "--timeout -1s is negative"},
		{append(publish, filepath.Join(dir, "feed.xml")), "cannot tell the format of"},
		{append(publish, "--format", "xml", csv), `--format "xml": want csv or ndjson`},
		{append(publish, filepath.Join(dir, "missing.csv")), "no such file"},
		{append(publish, "--format", "csv", dir), "is a directory"},
		{[]string{"feed", "publish", "--token-file", tok, csv}, "--merchant is required"},
		{[]string{"feed", "publish", "--merchant", "AC ME", "--token-file", tok, csv}, `--merchant: merchant "AC ME" has characters outside`},
		{[]string{"feed", "publish", "--merchant", "ACME", csv}, "--token-file is required"},
		{[]string{"feed", "publish", "--merchant", "ACME", "--token-file", spaced, csv}, "does not hold a token"},
		{[]string{"feed", "publish", "--merchant", "ACME", "--token-file", emptyTok, csv}, "is empty"},
		{[]string{"feed", "publish", "--merchant", "ACME", "--token-file", filepath.Join(dir, "nope"), csv}, "--token-file: open"},
		{[]string{"feed", "status", "--merchant", "ACME", "--token-file", tok, "--grpc", closed, "X"}, "feed status: cannot reach the gateway"},
		{[]string{"feed", "locations", "--merchant", "ACME", "--token-file", tok, "--url", "http://x"}, "--url is no longer supported"},
		{[]string{"feed", "republish", "--since", "yesterday", "--admin-token-file", tok}, `--since "yesterday": want an outbox sequence`},
		{[]string{"feed", "republish", "--since", "1"}, "--admin-token-file is required (or --outbox DIR for a stopped gateway)"},
		{[]string{"feed", "republish", "--since", "1", "--outbox", dir, "--grpc", "localhost:9090"}, "--outbox rewinds a stopped gateway's outbox directly; --grpc is for a running gateway"},
		{[]string{"merchant", "list", "--admin-token-file", tok, "--grpc", closed}, "merchant list: cannot reach the gateway at " + closed},
		{[]string{"merchant", "list", "--admin-token-file", tok, "--url", "http://localhost:8080"}, "--url is no longer supported"},
		{[]string{"merchant", "create", "ACME", "--admin-token-file", tok, "--grpc", closed, "--token-out", dir}, "is a directory (no token was issued)"},
		{[]string{"merchant", "create", "ACME", "--admin-token-file", tok, "--grpc", closed, "--stale-after", "-1h"}, "--stale-after -1h0m0s is negative"},
		{[]string{"merchant", "set-stale-after", "ACME", "soon", "--admin-token-file", tok, "--grpc", closed}, `duration "soon": want e.g. 6h`},
		{[]string{"merchant", "list"}, "--admin-token-file is required"},
		{[]string{"merchant", "list", "--admin-token-file", tok, "--grpc", silent.Addr().String(), "--timeout", "1s"},
			"merchant list: no answer within --timeout 1s (DEADLINE_EXCEEDED); the gateway may be busy"},
	}
	for _, c := range cases {
		out, code := run(t, 30*time.Second, "", c.args...)
		if code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("skuflow %v: exit %d, want 1 and %q in:\n%s", c.args, code, c.want, out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("skuflow %v panicked:\n%s", c.args, out)
		}
		if strings.Contains(out, "a-token-0123456789abcdef") || strings.Contains(out, "secret") {
			t.Errorf("skuflow %v shows a token:\n%s", c.args, out)
		}
	}
}

func TestLineMap(t *testing.T) {
	var m lineMap
	// Rows 1-3 on lines 2-4, a blank line, rows 4-5 on lines 6-7, two
	// skipped lines, row 6 on line 10.
	for _, rl := range [][2]int{{1, 2}, {2, 3}, {3, 4}, {4, 6}, {5, 7}, {6, 10}} {
		m.add(rl[0], rl[1])
	}
	if len(m.rows) != 3 {
		t.Errorf("%d runs, want 3", len(m.rows))
	}
	for _, rl := range [][2]int{{1, 2}, {2, 3}, {3, 4}, {4, 6}, {5, 7}, {6, 10}} {
		if got := m.line(rl[0]); got != rl[1] {
			t.Errorf("row %d: line %d, want %d", rl[0], got, rl[1])
		}
	}
}

func TestUploadSummaryMergesRejectedRows(t *testing.T) {
	var m lineMap
	for row := 1; row <= 10; row++ {
		m.add(row, row*2) // every other line was skipped
	}
	r := &uploadResult{lines: m,
		status: &pb.FeedStatus{FeedId: "F", Accepted: 6, Rejected: 3,
			RejectedRows: []*pb.RejectedRow{{Line: 2, Reason: "remote a"}, {Line: 5, Reason: "remote b"}}},
		localRejected: 2, localRows: []*pb.RejectedRow{{Line: 3, Reason: "local a"}, {Line: 13, Reason: "local b"}}}
	st := r.summary()
	if st.GetRejected() != 5 {
		t.Errorf("rejected %d, want 5", st.GetRejected())
	}
	// The gateway listed 2 of its 3 rejected rows, the last on line 10: a
	// row after line 10 may be missing, so the list stops there.
	var got []string
	for _, rr := range st.GetRejectedRows() {
		got = append(got, fmt.Sprintf("%d %s", rr.GetLine(), rr.GetReason()))
	}
	want := []string{"3 local a", "4 remote a", "10 remote b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rejected rows %q, want %q", got, want)
	}
	if r.status.GetRejected() != 3 || r.status.GetRejectedRows()[0].GetLine() != 2 {
		t.Errorf("summary changed the gateway's answer: %v", r.status)
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
