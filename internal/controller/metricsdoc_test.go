package controller

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// series is what docs/metrics.md says of a series, and what the code exports.
type series struct {
	typ    string
	labels string // comma-separated, in the Desc's order
}

// Every series the controller exports is in docs/metrics.md's table with its type and labels, and every
// series the table lists is exported: the alert rules and the dashboard are checked against that table.
func TestDocsMetricsListsExactlyTheExportedSeries(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]series{}
	row := regexp.MustCompile("(?m)^\\| `(certrollout_[a-z_]+)` \\| ([a-z]+) \\|([a-z_, ]*)\\|")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = series{typ: m[2], labels: strings.ReplaceAll(strings.TrimSpace(m[3]), " ", "")}
	}
	exported := exportedSeries(t)
	for _, name := range slices.Sorted(maps.Keys(exported)) {
		switch doc, ok := documented[name]; {
		case !ok:
			t.Errorf("%s is exported, not in docs/metrics.md", name)
		case doc != exported[name]:
			t.Errorf("docs/metrics.md says %s is a %s with labels %q; it is a %s with labels %q", name, doc.typ, doc.labels, exported[name].typ, exported[name].labels)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := exported[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which is not exported", name)
		}
	}
	if len(exported) < 20 {
		t.Fatalf("found %d exported series: the test reads too little to prove anything", len(exported))
	}
}

// exportedSeries reads every collector's Descs (names, labels) and types: a metric or vector says its
// own; the scrape-time collectors' series are typed by the value type of the MustNewConstMetric calls
// that emit them.
func exportedSeries(t *testing.T) map[string]series {
	t.Helper()
	constTypes := constMetricTypes(t)
	desc := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string]series{}
	for _, c := range collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := desc.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			typ := ""
			switch c.(type) {
			case prometheus.Gauge, *prometheus.GaugeVec:
				typ = "gauge"
			case prometheus.Counter, *prometheus.CounterVec:
				typ = "counter"
			case prometheus.Histogram, *prometheus.HistogramVec:
				typ = "histogram"
			default:
				typ = constTypes[m[1]]
			}
			out[m[1]] = series{typ: typ, labels: m[2]}
		}
	}
	return out
}

// constMetricTypes maps the name of each Desc of the package (prometheus.NewDesc("name", ...)) to the
// type of the values emitted for it (prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, ...)).
func constMetricTypes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names, types := map[string]string{}, map[string]string{} // Desc variable → series name, → type
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if spec, ok := n.(*ast.ValueSpec); ok {
				for i, v := range spec.Values {
					if name, ok := newDescName(v); ok {
						names[spec.Names[i].Name] = name
					}
				}
			}
			if call, ok := n.(*ast.CallExpr); ok && isPrometheus(call.Fun, "MustNewConstMetric") && len(call.Args) > 1 {
				if id, ok := call.Args[0].(*ast.Ident); ok {
					if sel, ok := call.Args[1].(*ast.SelectorExpr); ok {
						types[id.Name] = strings.ToLower(strings.TrimSuffix(sel.Sel.Name, "Value"))
					}
				}
			}
			return true
		})
	}
	out := map[string]string{}
	for v, name := range names {
		out[name] = types[v]
	}
	return out
}

// newDescName is the series name of a prometheus.NewDesc("name", ...) expression.
func newDescName(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || !isPrometheus(call.Fun, "NewDesc") || len(call.Args) == 0 {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	return name, err == nil
}

func isPrometheus(fun ast.Expr, name string) bool {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "prometheus" && sel.Sel.Name == name
}
