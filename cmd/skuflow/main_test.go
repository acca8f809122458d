package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skuflow-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "skuflow")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build skuflow: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, timeout time.Duration, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("skuflow %v did not finish within %s:\n%s", args, timeout, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range [][]string{{"--help"}, {"dev", "--help"}, {"process", "--help"}, {"serve", "--help"}, {"emit", "--help"}} {
		out, code := run(t, 30*time.Second, "", c...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "Flags:") {
			t.Errorf("skuflow %v: exit %d, want usage:\n%s", c, code, out)
		}
	}
}

func TestBadFlagsGiveClearErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"process"}, "--brokers is required"},
		{[]string{"serve", "--brokers", "nohost"}, `"nohost" is not host:port`},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--partitions", "0"}, "partitions 0 is outside"},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--reconcile-interval", "0"}, "coalesced publishing needs the reconciler"},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--reconcile-interval", "-1s"}, "reconcile interval -1s is negative (0 turns the reconciler off)"},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--defer-publish-lag", "-1"}, "defer-publish lag -1 is negative (0 turns coalescing off)"},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--max-publish-defer", "-1s"}, "maximum publish deferral -1s must be positive while coalescing is on"},
		{[]string{"process", "--brokers", "127.0.0.1:1", "--max-publish-defer", "0"}, "maximum publish deferral 0s must be positive while coalescing is on"},
		{[]string{"dev", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"emit", "--brokers", "127.0.0.1:1", "--replication", "x"}, "invalid argument"},
		{[]string{"dev", "--log-level", "loud"}, "--log-level"},
		{[]string{"nosuch"}, "unknown command"},
	}
	for _, c := range cases {
		out, code := run(t, 30*time.Second, "", c.args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("skuflow %v: exit %d, want an error containing %q:\n%s", c.args, code, c.want, out)
		}
		if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
			t.Errorf("skuflow %v panicked:\n%s", c.args, out)
		}
	}
}

func TestUnreachableBrokersFailFast(t *testing.T) {
	start := time.Now()
	out, code := run(t, 60*time.Second, "", "process", "--brokers", "127.0.0.1:1", "--metrics", "127.0.0.1:0", "--data", t.TempDir())
	if code == 0 || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("exit %d, want an error naming the broker:\n%s", code, out)
	}
	t.Logf("failed after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
}

func TestEmitReportsBadLines(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	input := `{"stockLevel":{"sku":"SKU-1","location":"WH-1","onHand":"10","asOf":"2026-11-21T10:00:00Z","sequence":"1"}}
{"stockLevel":{"sku":"SKU-1","location":"WH-1","onHand":"-3","asOf":"2026-11-21T10:00:00Z"}}
not json
# a comment

{"stockAdjustment":{"eventId":"a1","sku":"SKU-1","location":"WH-1","delta":"2","occurredAt":"2026-11-21T11:00:00Z"}}
`
	out, code := run(t, 60*time.Second, input, "emit", "--brokers", b.Addrs()[0], "--replication", "1", "--partitions", "4")
	if code != 1 {
		t.Errorf("exit %d, want 1 because lines were rejected", code)
	}
	for _, want := range []string{"line 2: invalid event: on_hand is negative", "line 3: not a skuflow.v1.SupplyEvent", "emitted 2 events to supply, rejected 2 lines"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDevServesSampleDataAndStopsCleanly runs `skuflow dev --sample-data` as
// a real process, queries the sample SKUs over REST, then interrupts it as
// Ctrl-C would and checks that it stops, processors before the broker (the
// reverse costs ~40 s of client retries).
func TestDevServesSampleDataAndStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	cmd := exec.Command(binary, "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--kafka-port", "0", "--partitions", "4", "--sample-data")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); logs <- string(b) }()
	urlRe := regexp.MustCompile(`REST:\s+http://([0-9.:]+)/`)
	sc := bufio.NewScanner(stdout)
	var httpAddr string
	for sc.Scan() {
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			httpAddr = m[1]
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if httpAddr == "" {
		t.Fatal("dev printed no REST URL")
	}
	// The sample, by hand (see cmd/skuflow/sample/*.jsonl):
	//   SKU-1001: WH-EAST 40-5=35 minus SKU safety override 5 -> 30 on every channel;
	//             WH-WEST 12 (the older level of 99 loses), web and store-pickup only;
	//             MERCH-A-1 20 (fresh), marketplace only; MERCH-B-1 stale; WH-OLD closed;
	//             web capped at 30.
	//   SKU-1002: STORE-042 floor 3 + back room 6-7 -> 3, safety 1 -> 2, store-pickup only;
	//             not sellable on marketplace; backorder limit 5.
	//   SKU-1003: WH-EAST 0+25, safety 2 -> 23 everywhere.
	want := map[string]map[string]string{
		"SKU-1001": {"web": "30", "marketplace": "50", "store-pickup": "42"},
		"SKU-1002": {"web": "0", "marketplace": "0", "store-pickup": "2"},
		"SKU-1003": {"web": "23", "marketplace": "23", "store-pickup": "23"},
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		for sku, channels := range want {
			resp, err := http.Get("http://" + httpAddr + "/v1/availability/" + sku)
			if err != nil {
				return err
			}
			var body struct {
				Channels []struct{ Channel, Available string }
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				return fmt.Errorf("%s: status %d: %v", sku, resp.StatusCode, err)
			}
			got := map[string]string{}
			for _, c := range body.Channels {
				got[c.Channel] = c.Available
			}
			if !maps.Equal(got, channels) {
				return fmt.Errorf("%s: available %v, want %v", sku, got, channels)
			}
		}
		return nil
	})
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v:\n%s", err, <-logs)
		}
	case <-time.After(2 * time.Minute): // a hang guard; the order below is the check
		t.Fatalf("dev did not stop after SIGINT")
	}
	took := time.Since(start)
	out := <-logs
	iProc := strings.Index(out, "processors and gateway stopped")
	iBroker := strings.Index(out, "embedded broker stopped")
	if iProc < 0 || iBroker < iProc {
		t.Fatalf("shutdown order wrong (processors must stop before the broker):\n%s", out)
	}
	t.Logf("stopped cleanly %s after SIGINT", took.Round(time.Millisecond))
}

// TestBenchSmoke runs the benchmark harness on a tiny load, so `make bench`
// cannot rot: every scenario runs in its own process and the table has
// figures and ratios for each.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three embedded brokers")
	}
	out, code := run(t, 120*time.Second, "", "bench", "--messages", "300", "--keys", "30", "--partitions", "2",
		"--scenarios", "sarama,goka-sum,stock,stock-per-event", "--rounds", "2")
	if code != 0 {
		t.Fatalf("bench exit %d:\n%s", code, out)
	}
	for _, re := range []string{
		`(?m)^sarama\s+\d+\s+1\.00\s+\d+\.\d\d\s+\d+ MiB`,
		`(?m)^goka-sum\s+\d+\s+\d+\.\d\d\s+1\.00\s+\d+ MiB`,
		`(?m)^stock\s+\d+\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+ MiB`,
		`(?m)^stock-per-event\s+\d+\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+ MiB`,
		// Every SKU's final answer reached the availability topic.
		`stock published \d+ answers for 300 supply events over 30 SKUs`,
		`stock state on disk \(LevelDB\): \d+ bytes for 30 SKUs`,
		`median of 2 interleaved rounds`,
		`stock / goka-sum, round by round: \d+\.\d\d \d+\.\d\d`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("bench output lacks %s:\n%s", re, out)
		}
	}
}
