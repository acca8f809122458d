package archtest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/roles"
	"github.com/skuflow/skuflow/processors/orders"
	"github.com/skuflow/skuflow/processors/policies"
	"github.com/skuflow/skuflow/processors/stock"
)

var update = flag.Bool("update", false, "rewrite the generated block of topology.md")

// graphs are every processor group skuflow runs, with the topics it creates.
func graphs() []*goka.GroupGraph {
	return []*goka.GroupGraph{policies.Define(nil), stock.Define(stock.Config{}, nil, nil), orders.Define(nil)}
}

func topics() []kafkacfg.Topic { return roles.Topics() }

const (
	beginMarker = "<!-- BEGIN GENERATED: go test ./internal/archtest -run TestTopologyDoc -update -->"
	endMarker   = "<!-- END GENERATED -->"
)

// renderTopology draws the group graphs as markdown tables.
func renderTopology() string {
	var b strings.Builder
	b.WriteString("| topic | cleanup policy | created by |\n|---|---|---|\n")
	seen := map[string]bool{}
	for _, t := range topics() {
		if seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		policy := "delete"
		if t.Compacted {
			policy = "compact"
		}
		fmt.Fprintf(&b, "| `%s` | %s | skuflow (`EnsureTopics`) |\n", t.Name, policy)
	}
	b.WriteString("\n| group | edge | topic | codec |\n|---|---|---|---|\n")
	for _, g := range graphs() {
		row := func(kind string, e goka.Edge) {
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | `%T` |\n", g.Group(), kind, e.Topic(), e.Codec())
		}
		for _, e := range g.InputStreams() {
			row("input", e)
		}
		for _, e := range g.JointTables() {
			row("join", e)
		}
		for _, e := range g.LookupTables() {
			row("lookup", e)
		}
		if e := g.GroupTable(); e != nil {
			row("group table (persist)", e)
		}
		if e := g.LoopStream(); e != nil {
			row("loopback", e)
		}
		outs := slices.Clone(g.OutputStreams())
		slices.SortFunc(outs, func(a, c goka.Edge) int { return strings.Compare(a.Topic(), c.Topic()) })
		for _, e := range outs {
			row("output", e)
		}
	}
	return b.String()
}

// TestTopologyDoc keeps topology.md's generated tables equal to the code's
// own group graphs, so the document cannot drift.
func TestTopologyDoc(t *testing.T) {
	path := filepath.Join(repoRoot(t), "topology.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		t.Fatalf("topology.md lacks the generated block markers %q ... %q", beginMarker, endMarker)
	}
	want := beginMarker + "\n" + renderTopology() + endMarker
	got := s[i : j+len(endMarker)]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i]+want+s[j+len(endMarker):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("topology.md is stale: run `go test ./internal/archtest -run TestTopologyDoc -update`\n got:\n%s\nwant:\n%s", got, want)
}
