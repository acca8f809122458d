package archtest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The layers, from the edges down (see STYLE.md and README's layout):
//
//	cmd/skuflow -> internal/app (the composition root, and internal/app/bench)
//	  -> edges: gateway, views, internal/registry, internal/feeds/..., internal/reconcile, internal/emit
//	  -> processors/<group> (one goka group each) with processors, processors/deadletter,
//	     processors/backlog (libraries of the groups)
//	  -> schema -> codecs -> inventory; proto underneath
const module = "github.com/skuflow/skuflow"

var (
	// groups are the processor group packages.
	groups = []string{"processors/stock", "processors/policies", "processors/orders"}
	// processorLibs serve the groups only.
	processorLibs = []string{"processors", "processors/deadletter", "processors/backlog"}
	// root is the composition root; rootPrefix covers its subpackages.
	root, rootPrefix = "internal/app", "internal/app/"
	// cmdPkg is the one binary.
	cmdPkg = "cmd/skuflow"
	// edges are the APIs and tools: they may use schema, views, inventory,
	// codecs, but no processor package.
	edges = []string{"gateway", "views", "views/viewtest", "internal/registry", "internal/feeds", "internal/feeds/outbox", "internal/feeds/publisher", "internal/feeds/service",
		"internal/reconcile", "internal/emit", cmdPkg}
	// schemaAllowed is what the schema may import from the module.
	schemaAllowed = []string{"codecs", "inventory", "proto/skuflow/v1"}
)

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// packages lists the module's packages with their direct imports and
// transitive dependencies, test files excluded, paths relative to the
// module.
func packages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles,Imports,Deps", "./...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = local(p.ImportPath)
		for i := range p.Imports {
			p.Imports[i] = local(p.Imports[i])
		}
		for i := range p.Deps {
			p.Deps[i] = local(p.Deps[i])
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// local makes a module path relative to the module; standard library
// paths that would read like module ones (internal/..., cmd/...) get a
// "std:" prefix.
func local(path string) string {
	if path == module {
		return "."
	}
	if rel, ok := strings.CutPrefix(path, module+"/"); ok {
		return rel
	}
	if strings.HasPrefix(path, "internal/") || strings.HasPrefix(path, "cmd/") || strings.HasPrefix(path, "vendor/") {
		return "std:" + path
	}
	return path
}

func isProcessorPkg(p string) bool {
	return slices.Contains(groups, p) || slices.Contains(processorLibs, p) || strings.HasPrefix(p, "processors/")
}

func isRoot(p string) bool { return p == root || strings.HasPrefix(p, rootPrefix) }

// Every package the rules name exists, so a rename cannot switch a rule off.
func TestLayerRulesNameRealPackages(t *testing.T) {
	pkgs := packages(t)
	for _, list := range [][]string{groups, processorLibs, edges, schemaAllowed, {root, "schema"}} {
		for _, p := range list {
			if _, ok := pkgs[p]; !ok {
				t.Errorf("layer rules name %s, which is not a package of the module", p)
			}
		}
	}
	for p := range pkgs {
		if strings.HasPrefix(p, "processors/") && !slices.Contains(groups, p) && !slices.Contains(processorLibs, p) {
			t.Errorf("%s is under processors/ but is neither a group nor a library of the groups: list it in archtest", p)
		}
	}
}

// No package outside processors/ and the composition root depends on a
// processor package, even transitively: an edge (gateway, views, feeds,
// registry, reconciler, emit, and every future one) takes names from the
// schema and reads tables through views. The binary links them only
// through the root, so for cmd/skuflow its direct imports are checked.
// Test files are exempt: a test may build the stack it tests.
func TestEdgesDoNotImportProcessors(t *testing.T) {
	pkgs := packages(t)
	for p, info := range pkgs {
		if isProcessorPkg(p) || isRoot(p) || p == "internal/archtest" {
			continue
		}
		deps := info.Deps
		if p == cmdPkg {
			deps = info.Imports
		}
		for _, d := range deps {
			if isProcessorPkg(d) {
				t.Errorf("%s depends on processor package %s (via %s): take names from schema, read tables through views", p, d, via(pkgs, p, d))
			}
		}
	}
	for _, e := range edges {
		if _, ok := pkgs[e]; !ok {
			t.Errorf("edge %s is not a package of the module", e)
		}
	}
}

// A processor group imports no other group, directly or not, and nothing
// above it: no edge, no view, no root.
func TestProcessorsStayInTheirRoom(t *testing.T) {
	pkgs := packages(t)
	for p, info := range pkgs {
		if !isProcessorPkg(p) {
			continue
		}
		for _, d := range info.Deps {
			switch {
			case slices.Contains(groups, d) && d != p:
				t.Errorf("%s depends on processor group %s (via %s): groups never import each other", p, d, via(pkgs, p, d))
			case slices.Contains(edges, d) || isRoot(d):
				t.Errorf("%s depends on %s (via %s): processors sit below the edges and the root", p, d, via(pkgs, p, d))
			}
		}
	}
}

// Only cmd/skuflow imports the composition root, and only the root links
// the processor groups.
func TestOnlyCmdImportsTheRoot(t *testing.T) {
	pkgs := packages(t)
	for p, info := range pkgs {
		for _, imp := range info.Imports {
			if isRoot(imp) && p != cmdPkg && !isRoot(p) {
				t.Errorf("%s imports the composition root %s: features expose constructors and the root registers them", p, imp)
			}
			if slices.Contains(groups, imp) && !isRoot(p) && !isProcessorPkg(p) {
				t.Errorf("%s imports processor group %s: only the composition root wires groups", p, imp)
			}
		}
	}
}

// The schema holds names, keys, partitioning and codecs only: no
// callbacks (nothing of the processors), no metrics, nothing above it.
func TestSchemaIsData(t *testing.T) {
	pkgs := packages(t)
	s := pkgs["schema"]
	for _, imp := range s.Imports {
		if !isModule(pkgs, imp) {
			continue
		}
		if !slices.Contains(schemaAllowed, imp) {
			t.Errorf("schema imports %s; it may import only %v of the module", imp, schemaAllowed)
		}
	}
	for _, d := range s.Deps {
		if strings.HasPrefix(d, "github.com/prometheus/") {
			t.Errorf("schema depends on %s: it holds no metrics", d)
		}
	}
	// No callbacks: nothing in the schema takes a goka.Context.
	fset := token.NewFileSet()
	for _, f := range s.GoFiles {
		file, err := parser.ParseFile(fset, filepath.Join(s.Dir, f), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "goka" && (sel.Sel.Name == "Context" || sel.Sel.Name == "ProcessCallback") {
					t.Errorf("%s: schema refers to goka.%s: callbacks belong to processors/", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
}

func isModule(pkgs map[string]pkg, p string) bool { _, ok := pkgs[p]; return ok }

// Flags and the environment are read in cmd/ only (and in the build tools
// under internal/tools/ that make runs, which are entry points too);
// everything else takes typed options.
func TestFlagsAndEnvironmentOnlyInCmd(t *testing.T) {
	pkgs := packages(t)
	fset := token.NewFileSet()
	for p, info := range pkgs {
		if strings.HasPrefix(p, "cmd/") || strings.HasPrefix(p, "proto/") || strings.HasPrefix(p, "internal/tools/") {
			continue
		}
		for _, imp := range info.Imports {
			if imp == "flag" || strings.HasPrefix(imp, "github.com/spf13/") {
				t.Errorf("%s imports %s: flags are read in cmd/ only", p, imp)
			}
		}
		for _, f := range info.GoFiles {
			file, err := parser.ParseFile(fset, filepath.Join(info.Dir, f), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "os" && slices.Contains([]string{"Getenv", "LookupEnv", "Environ", "Args"}, sel.Sel.Name) {
						t.Errorf("%s: os.%s outside cmd/: pass it in through options", fset.Position(sel.Pos()), sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
}

// via names the direct import of from through which it depends on to.
func via(pkgs map[string]pkg, from, to string) string {
	for _, imp := range pkgs[from].Imports {
		if imp == to || slices.Contains(pkgs[imp].Deps, to) {
			return imp
		}
	}
	return "?"
}

// docRules are the import rules that package doc comments state, each
// checked here: a package's non-test code must not depend (transitively)
// on a module package or module listed, nor import directly a package in
// direct.
var docRules = map[string]struct{ deps, direct []string }{
	"inventory":                {deps: []string{"github.com/lovoo/goka", "github.com/IBM/sarama", "google.golang.org/grpc", "google.golang.org/protobuf", "net"}},
	"codecs":                   {deps: []string{"github.com/lovoo/goka", "github.com/IBM/sarama", "processors", "views", "gateway"}, direct: []string{"os", "net", "net/http"}},
	"schema":                   {deps: []string{"processors", "views", "gateway", "internal", "github.com/prometheus"}},
	"views":                    {deps: []string{"gateway", "processors", "internal/app"}},
	"internal/feeds":           {deps: []string{"gateway", "github.com/lovoo/goka", "github.com/IBM/sarama"}},
	"internal/feeds/outbox":    {deps: []string{"gateway", "github.com/lovoo/goka", "github.com/IBM/sarama"}},
	"internal/feeds/publisher": {deps: []string{"gateway"}},
	"internal/registry":        {deps: []string{"gateway", "cmd"}, direct: []string{"google.golang.org/grpc/status", "google.golang.org/grpc/codes"}},
	"gateway/apierr":           {deps: []string{"internal/feeds", "gateway/apierr/..", "internal/app"}},
	"processors/backlog":       {deps: []string{"processors/stock", "processors/policies", "processors/orders", "views", "gateway", "internal/app"}},
	"internal/deadletters":     {deps: []string{"processors", "gateway", "internal/app"}},
}

// under reports whether dep is rule or below it.
func under(dep, rule string) bool { return dep == rule || strings.HasPrefix(dep, rule+"/") }

// The rules that package doc comments state hold, and every package whose
// doc says what it "must not import" has its rule here, so a stated rule
// is always a checked one.
func TestDocStatedImportRules(t *testing.T) {
	pkgs := packages(t)
	gw := pkgs["gateway/apierr"]
	for _, d := range gw.Imports { // apierr sits below gateway: it must not import it
		if d == "gateway" {
			t.Errorf("gateway/apierr imports gateway")
		}
	}
	for p, rule := range docRules {
		info, ok := pkgs[p]
		if !ok {
			t.Errorf("docRules names %s, which is not a package of the module", p)
			continue
		}
		for _, d := range info.Deps {
			for _, bad := range rule.deps {
				if under(d, bad) && d != p {
					t.Errorf("%s depends on %s (via %s); its doc comment forbids %s", p, d, via(pkgs, p, d), bad)
				}
			}
		}
		for _, d := range info.Imports {
			if slices.Contains(rule.direct, d) {
				t.Errorf("%s imports %s; its doc comment forbids it", p, d)
			}
		}
	}
	fset := token.NewFileSet()
	for p, info := range pkgs {
		if strings.HasPrefix(p, "proto/") {
			continue
		}
		for _, f := range info.GoFiles {
			file, err := parser.ParseFile(fset, filepath.Join(info.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc == nil {
				continue
			}
			doc := file.Doc.Text()
			if (strings.Contains(doc, "must not import") || strings.Contains(doc, "never imports")) && docRules[p].deps == nil && !slices.Contains([]string{"processors", "views/viewtest"}, p) {
				t.Errorf("%s's doc comment (%s) states an import rule that docRules does not check", p, f)
			}
		}
	}
}

// views/viewtest is a test suite: only tests import it.
func TestViewtestOnlyInTests(t *testing.T) {
	for p, info := range packages(t) {
		if slices.Contains(info.Imports, "views/viewtest") {
			t.Errorf("%s imports views/viewtest, a test suite, outside its tests", p)
		}
	}
}
