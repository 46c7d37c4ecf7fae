package testutil

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sharedHelpers are the helpers of this package that tests once declared
// for themselves; a declaration by one of these names (in any case) in a
// test file elsewhere is a copy.
var sharedHelpers = []string{"capturesDir", "syncBuffer", "waitFor", "startRouter", "newSink"}

// hygieneProblems returns what is wrong with one test file: a copy of a
// shared helper, the capture corpus path spelled out
// (filepath.Join(..., "shared", "captures")), or a time.Sleep without a
// comment on its line or the line above saying why it is not a condition
// wait.
func hygieneProblems(fset *token.FileSet, name string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	report := func(pos token.Pos, format string, args ...any) {
		out = append(out, fset.Position(pos).String()+": "+fmt.Sprintf(format, args...))
	}
	isShared := func(id *ast.Ident) bool {
		return slices.ContainsFunc(sharedHelpers, func(h string) bool { return strings.EqualFold(h, id.Name) })
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && isShared(d.Name) {
				report(d.Pos(), "func %s copies a helper of internal/testutil", d.Name.Name)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok && isShared(ts.Name) {
					report(ts.Pos(), "type %s copies a helper of internal/testutil", ts.Name.Name)
				}
			}
		}
	}
	commented := map[int]bool{} // lines on which a comment ends
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			commented[fset.Position(c.End()).Line] = true
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		for i := 0; i+1 < len(call.Args); i++ {
			if stringLit(call.Args[i]) == "shared" && stringLit(call.Args[i+1]) == "captures" {
				report(call.Pos(), "the capture corpus path is spelled out: use testutil.CapturesDir or CapturesPath")
			}
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sleep" {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "time" {
				line := fset.Position(call.Pos()).Line
				if !commented[line] && !commented[line-1] {
					report(call.Pos(), "time.Sleep without a comment saying why it is not a condition wait (testutil.WaitFor) or synctest")
				}
			}
		}
		return true
	})
	return out, nil
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// TestNoCopiesOfSharedHelpers scans every *_test.go file of the repository
// (outside internal/testutil) for copies of the shared helpers and for
// unexplained sleeps.
func TestNoCopiesOfSharedHelpers(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	var problems []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || path == self) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		p, err := hygieneProblems(fset, rel, src)
		if err != nil {
			return err
		}
		files++
		problems = append(problems, p...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d test files found under %s: is the walk broken?", files, root)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// The scan finds what it is meant to find, and accepts what is fine.
func TestHygieneProblems(t *testing.T) {
	const bad = `package x

import (
	"path/filepath"
	"testing"
	"time"
)

type syncBuffer struct{}

func WaitFor(t *testing.T) {}

func (r *router) startRouter() {} // a method: not a copy

func captures() string { return filepath.Join("..", "shared", "captures") }

func f() {
	time.Sleep(time.Second)
	// The sender is paced: this is what the test measures.
	time.Sleep(time.Millisecond)
	time.Sleep(time.Millisecond) // fake clock (synctest)
}
`
	got, err := hygieneProblems(token.NewFileSet(), "x_test.go", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"x_test.go:9:6: type syncBuffer copies a helper of internal/testutil",
		"x_test.go:11:1: func WaitFor copies a helper of internal/testutil",
		"x_test.go:15:33: the capture corpus path is spelled out: use testutil.CapturesDir or CapturesPath",
		"x_test.go:18:2: time.Sleep without a comment saying why it is not a condition wait (testutil.WaitFor) or synctest",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
