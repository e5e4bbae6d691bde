package repo

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxFuncLines bounds the functions of the controller, the CLI and the decision packages (the hubs where
// long functions grew): past it a function must say why in its doc comment, with a line that starts
// "Long:".
const maxFuncLines = 80

// longFuncs lists the functions of dir's non-test Go files longer than maxFuncLines whose doc comment
// gives no reason, as "file:line name (n lines)".
func longFuncs(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fn, ok := n.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				return true
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLines && !strings.Contains(fn.Doc.Text(), "\nLong: ") && !strings.HasPrefix(fn.Doc.Text(), "Long: ") {
				out = append(out, filepath.Base(path)+":"+fn.Name.Name+" ("+strconv.Itoa(lines)+" lines)")
			}
			return false
		})
	}
	return out
}

func TestControllerCLIAndDecisionFunctionsAreShortOrSayWhyNot(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range []string{"internal/controller", "internal/cli", "internal/decide", "internal/governor", "internal/orchestrate", "internal/cascade", "internal/rolloutstatus", "internal/kinds"} {
		if long := longFuncs(t, filepath.Join(root, dir)); len(long) > 0 {
			t.Errorf("%s: functions over %d lines without a \"Long: <reason>\" line in their doc comment:\n  %s", dir, maxFuncLines, strings.Join(long, "\n  "))
		}
	}
}

func TestTheFunctionLengthRuleCatchesWhatItShould(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("\t_ = 1\n", maxFuncLines)
	src := "package x\n\nfunc long() {\n" + body + "}\n\n// Long: a table reads better in one piece.\nfunc excused() {\n" + body + "}\n\nfunc short() {\n\t_ = 1\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got := longFuncs(t, dir)
	if len(got) != 1 || !strings.HasPrefix(got[0], "x.go:long (") {
		t.Fatalf("want only long flagged, got %v", got)
	}
}
