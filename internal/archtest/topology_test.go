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

	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/orders"
	"github.com/skuflow/skuflow/processors/policies"
	"github.com/skuflow/skuflow/processors/stock"
	"github.com/skuflow/skuflow/schema"
)

var update = flag.Bool("update", false, "rewrite the generated block of topology.md")

// graphs are every processor group skuflow runs, with the topics it creates.
func graphs() []*goka.GroupGraph {
	return []*goka.GroupGraph{policies.Define(nil, 0), stock.Define(inventory.Base{}, nil, nil, 0), orders.Define(nil, 0)}
}

func topics() []schema.Topic { return schema.Topics() }

const (
	beginMarker = "<!-- BEGIN GENERATED: go test ./internal/archtest -run TestTopologyDoc -update -->"
	endMarker   = "<!-- END GENERATED -->"
)

// renderTopology draws the group graphs as markdown tables.
func renderTopology() string {
	var b strings.Builder
	b.WriteString("| topic | cleanup policy | key | value | codec |\n|---|---|---|---|---|\n")
	for _, t := range topics() {
		policy := "delete"
		if t.Compacted {
			policy = "compact"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` | `%T` |\n", t.Name, policy, t.Key, t.Value, t.Codec)
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

// graphs covers every processor group package, and nothing else.
func TestGraphsAreTheGroups(t *testing.T) {
	var got []string
	for _, g := range graphs() {
		got = append(got, string(g.Group()))
	}
	if len(got) != len(groups) {
		t.Errorf("graphs() draws groups %v, archtest's groups are the packages %v: keep them one to one", got, groups)
	}
	for _, g := range []goka.Group{schema.StockGroup, schema.PoliciesGroup, schema.OrdersGroup} {
		if !slices.Contains(got, string(g)) {
			t.Errorf("graphs() lacks group %s", g)
		}
	}
}

// Every edge of every group graph is a topic of the schema, read or
// written with the schema's codec for it, or as raw bytes that the
// callback decodes (inputs) or encoded itself (outputs) with the codecs
// package.
func TestGroupGraphsUseTheSchema(t *testing.T) {
	for _, g := range graphs() {
		for _, e := range g.AllEdges() {
			tp, ok := schema.Lookup(e.Topic())
			if !ok {
				t.Errorf("group %s: topic %s is not in schema.Topics", g.Group(), e.Topic())
				continue
			}
			bytes := fmt.Sprintf("%T", schema.BytesCodec)
			if got, want := fmt.Sprintf("%T", e.Codec()), fmt.Sprintf("%T", tp.Codec); got != want && got != bytes {
				t.Errorf("group %s: topic %s with codec %s, the schema says %s", g.Group(), e.Topic(), got, want)
			}
		}
	}
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
