// Package archtest checks skuflow's layer boundaries. `make lint` runs it.
package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The pure domain may import only these standard packages: no I/O, no
// network, no randomness, no clock.
var domainAllowed = []string{
	"encoding/binary", "errors", "fmt", "hash", "hash/fnv", "regexp", "slices", "sort", "strconv", "strings", "time", "maps", "cmp", "math",
}

// Modules the domain must never depend on, even transitively.
var domainForbiddenDeps = []string{
	"github.com/lovoo/goka", "github.com/IBM/sarama", "google.golang.org/grpc", "google.golang.org/protobuf",
	"github.com/grpc-ecosystem", "net",
}

func TestLayerBoundaries(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, "inventory", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no inventory sources: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(domainAllowed, p) {
				t.Errorf("%s imports %q: inventory/ may import only %v", rel(root, f), p, domainAllowed)
			}
		}
		full, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(full, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
				t.Errorf("%s: time.%s in the domain: time comes in as a parameter", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}

	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./inventory")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range domainForbiddenDeps {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("inventory/ depends on %s (via %s)", bad, dep)
			}
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}
