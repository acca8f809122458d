package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Errors become gRPC statuses in one place, gateway/apierr (STYLE.md
// practices 7 and 13): no other file of the gateway or of the feeds service
// builds a status.
func TestStatusesAreBuiltInOnePlace(t *testing.T) {
	root := repoRoot(t)
	const mapping = "gateway/apierr"
	files := goFiles(t, root, []string{"gateway", "internal/feeds/service"}, []string{mapping})
	calls(t, root, files, "google.golang.org/grpc/status", []string{"Error", "Errorf", "New", "Newf", "ErrorProto", "FromProto"},
		"build the error and let "+mapping+" map it (a domain error, or an apierr kind for what only the handler can classify)")
	if mine := goFiles(t, root, []string{mapping}, nil); len(mine) == 0 {
		t.Errorf("%s has no Go files: the rule above names the wrong package", mapping)
	}
}

// The processor groups dead-letter through deadletter.Handle (the poison
// queue): their callbacks return deadletter.Reject for bad input and never
// send a dead letter by hand.
func TestDeadLettersGoThroughTheWrapper(t *testing.T) {
	root := repoRoot(t)
	files := goFiles(t, root, groups, nil)
	calls(t, root, files, module+"/processors/deadletter", []string{"Send"},
		"return deadletter.Reject(err) from a callback wrapped by deadletter.Handle or deadletter.Process")
	calls(t, root, files, module+"/schema", []string{"DeadLetter", "DeadLetterCodec"},
		"a group names no dead-letter topic: deadletter.Handle emits the dead letter (and deadletter.Output declares the edge)")
}

// goFiles lists the non-test Go files under dirs (recursively, relative to
// root), skipping those under skip. Every dir must hold some.
func goFiles(t *testing.T, root string, dirs, skip []string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		n := len(out)
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r := filepath.ToSlash(rel(root, p))
			if e.IsDir() {
				if slices.ContainsFunc(skip, func(s string) bool { return r == s || strings.HasPrefix(r, s+"/") }) {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == n {
			t.Errorf("%s has no Go files: the rule names the wrong directory", d)
		}
	}
	return out
}

// calls reports every call in files of a function named in funcs of the
// package importPath, whatever name the file imports it under.
func calls(t *testing.T, root string, files []string, importPath string, funcs []string, instead string) {
	t.Helper()
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		name := ""
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
				name = filepath.Base(p)
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" || name == "_" {
			continue
		}
		if name == "." {
			t.Errorf("%s dot-imports %s", rel(root, f), importPath)
			continue
		}
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == name && id.Obj == nil && slices.Contains(funcs, sel.Sel.Name) {
				pos := fset.Position(sel.Pos())
				t.Errorf("%s:%d: %s.%s: %s", rel(root, pos.Filename), pos.Line, name, sel.Sel.Name, instead)
			}
			return true
		})
	}
}
