package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/testkit"
)

func TestReplayFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"replay", "--group", "skuflow-stock", "--to-earliest"}, []string{"--brokers is required"}},
		{[]string{"replay", "--brokers", "127.0.0.1:1", "--group", "skuflow-nope", "--to-earliest"}, []string{`unknown group "skuflow-nope"`, "skuflow-stock, skuflow-policies, skuflow-orders"}},
		{[]string{"replay", "--brokers", "127.0.0.1:1", "--group", "skuflow-stock"}, []string{"no target given"}},
		{[]string{"replay", "--brokers", "127.0.0.1:1", "--group", "skuflow-stock", "--to-time", "yesterday"}, []string{`--to-time "yesterday" is not an RFC 3339 time`}},
		{[]string{"replay", "--brokers", "127.0.0.1:1", "--to-time", "2026-13-01T00:00:00Z"}, []string{"is not an RFC 3339 time", "no group given"}},
		{[]string{"replay", "--brokers", "127.0.0.1:1", "--group", "skuflow-stock", "--to-earliest", "--to-latest"}, []string{"more than one target"}},
		{[]string{"status", "--brokers", "127.0.0.1:1", "--watch", "--interval", "0s"}, []string{"--interval 0s"}},
	} {
		out, code := run(t, 30*time.Second, "", tc.args...)
		if code == 0 {
			t.Errorf("skuflow %v succeeded:\n%s", tc.args, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("skuflow %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// Against a cluster no process has run on, status lists every group with
// nothing to show, and replay names the missing topics.
func TestStatusAndReplayCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	brokers := strings.Join(b.Kafka.Brokers, ",")
	out, code := run(t, 60*time.Second, "", "status", "--brokers", brokers, "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	var r struct {
		Groups []struct {
			Group   string `json:"group"`
			Members []any  `json:"members"`
			Lag     int64  `json:"lag"`
		} `json:"groups"`
		Tables      []struct{ Table string } `json:"tables"`
		DeadLetters struct{ Total int64 }    `json:"deadLetters"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if len(r.Groups) != 4 || r.Groups[0].Group != "skuflow-stock" || r.Groups[3].Group != "skuflow-registry" || len(r.Tables) != 4 || r.DeadLetters.Total != 0 {
		t.Errorf("status --json on an empty cluster: %+v", r)
	}
	out, code = run(t, 60*time.Second, "", "status", "--brokers", brokers)
	if code != 0 || !strings.Contains(out, "GROUP skuflow-orders") || !strings.Contains(out, "DEAD LETTERS  total 0") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	out, code = run(t, 60*time.Second, "", "replay", "--brokers", brokers, "--group", "skuflow-policies", "--to-earliest", "--dry-run")
	if code == 0 || !strings.Contains(out, "topic policies does not exist") {
		t.Errorf("replay on an empty cluster: exit %d\n%s", code, out)
	}
}
