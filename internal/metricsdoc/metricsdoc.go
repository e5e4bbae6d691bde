// Package metricsdoc reads the series the controller exports from their documentation and checks PromQL
// against them, so the alert rules and the Grafana dashboard can only query series that exist.
//
// The list is docs/metrics.md's table whose rows start with a series name in backticks
// (`| `certrollout_x` | gauge | labels | meaning |`); the controller's tests keep that table equal to what
// it registers.
package metricsdoc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Document is the file Exported reads, relative to the repository root.
const Document = "docs/metrics.md"

// alwaysThere are series a query may use that no certrollout table lists: Prometheus's own.
var alwaysThere = []string{"up", "ALERTS", "ALERTS_FOR_STATE"}

// Exported returns the names a query may select, read from Document under root: every series of its
// table (a histogram as its _bucket, _sum and _count series), and alwaysThere. The second result names
// the document, for messages.
func Exported(root string) (map[string]bool, string, error) {
	data, err := os.ReadFile(filepath.Join(root, Document))
	if err != nil {
		return nil, "", err
	}
	names, err := Table(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", Document, err)
	}
	for _, n := range alwaysThere {
		names[n] = true
	}
	return names, Document, nil
}

// Table reads the series of a Markdown table whose rows start with a name in backticks and its type.
func Table(doc []byte) (map[string]bool, error) {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		cells := strings.Split(strings.TrimSpace(sc.Text()), "|")
		if len(cells) < 4 || cells[0] != "" {
			continue
		}
		name, typ := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		if len(name) < 3 || !strings.HasPrefix(name, "`") || !strings.HasSuffix(name, "`") {
			continue
		}
		name = strings.Trim(name, "`")
		if !strings.HasPrefix(name, "certrollout_") {
			continue
		}
		if strings.HasPrefix(typ, "histogram") {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[name+suffix] = true
			}
			continue
		}
		names[name] = true
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no table of certrollout_ series")
	}
	return names, sc.Err()
}

// Selected returns the metric names expr selects, sorted and without repeats. A selector without a
// fixed name (a regular expression on __name__, or none) is an error: it cannot be checked.
func Selected(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
			return nil
		}
		names = append(names, name)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Unknown returns the names expr selects that exported lacks.
func Unknown(expr string, exported map[string]bool) ([]string, error) {
	names, err := Selected(expr)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(n string) bool { return exported[n] }), nil
}
