// Package metricsdoc reads the series the controller exports from their documentation and checks PromQL
// against them, so the alert rules and the Grafana dashboard can only query series that exist.
//
// The list is the table whose rows start with a series name in backticks (`| `certrollout_x` | gauge |
// labels | meaning |`): docs/metrics.md's once it lists every series (it names certrollout_build_info),
// until then the one in design/2026-11-28-watch-it.md.
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

// Documents are the files Exported reads, relative to the repository root, in order of preference.
var Documents = []string{"docs/metrics.md", "design/2026-11-28-watch-it.md"}

// completeMarker is a series only the complete table lists.
const completeMarker = "certrollout_build_info"

// alwaysThere are series a query may use that no certrollout table lists: Prometheus's own.
var alwaysThere = []string{"up", "ALERTS", "ALERTS_FOR_STATE"}

// Exported returns the names a query may select, read from the first of Documents (under root) that
// lists completeMarker: every series of its table (a histogram as its _bucket, _sum and _count series),
// and alwaysThere.
func Exported(root string) (map[string]bool, string, error) {
	for _, doc := range Documents {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			return nil, "", err
		}
		if !bytes.Contains(data, []byte("`"+completeMarker+"`")) {
			continue
		}
		names, err := Table(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", doc, err)
		}
		for _, n := range alwaysThere {
			names[n] = true
		}
		return names, doc, nil
	}
	return nil, "", fmt.Errorf("none of %v lists %s", Documents, completeMarker)
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
