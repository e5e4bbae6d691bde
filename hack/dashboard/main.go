// Command dashboard writes certrollout's Grafana dashboard, deploy/grafana/certrollout-dashboard.json,
// from Go code (`make dashboard`, which also copies it into the Helm chart). A test keeps the checked-in
// file equal to what this program writes and every query on the series the controller exports.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("o", "deploy/grafana/certrollout-dashboard.json", "the file to write")
	flag.Parse()
	data, err := render(build())
	if err == nil {
		err = os.WriteFile(*out, data, 0o644) //nolint:gosec // a dashboard, read by everyone
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// render is the dashboard as its file holds it: indented JSON, no HTML escaping, a final newline.
func render(d Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// build is the dashboard: its variables and its sections laid out on Grafana's 24-column grid.
func build() Dashboard {
	return Dashboard{
		Annotations: Annotations{List: []AnnotationQuery{{
			BuiltIn: 1, Datasource: DatasourceRef{Type: "grafana", UID: "-- Grafana --"}, Enable: true, Hide: true,
			IconColor: "rgba(0, 211, 255, 1)", Name: "Annotations & Alerts", Type: "dashboard",
		}}},
		Description:  "certrollout: certificate expiry, workloads still on older certificates, restarts, CertRollouts, CA cascades and the controller.",
		Editable:     true,
		GraphTooltip: 1,
		Links: []Link{{
			Icon: "doc", TargetBlank: true, Title: "Runbooks", Type: "link",
			URL: "https://github.com/certrollout/certrollout/blob/main/docs/runbooks.md",
		}},
		Panels:        layout(sections()),
		Refresh:       "1m",
		SchemaVersion: 39,
		Tags:          []string{"certrollout", "certificates"},
		Templating:    Templating{List: variables()},
		Time:          TimeRange{From: "now-24h", To: "now"},
		Timezone:      "browser",
		Title:         "certrollout",
		UID:           "certrollout",
		Version:       1,
	}
}

func variables() []Variable {
	namespaces := "label_values(certrollout_workload_certificate_expiry_timestamp_seconds, namespace)"
	return []Variable{
		{
			Current: map[string]any{}, Label: "Data source", Name: "datasource", Options: []any{},
			Query: "prometheus", Refresh: 1, Type: "datasource",
		},
		{
			AllValue: ".*", Current: map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}},
			Datasource: ptr(datasource), Definition: namespaces, IncludeAll: true, Label: "Namespace", Multi: true,
			Name: "namespace", Options: []any{}, Query: map[string]any{"query": namespaces, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
			Refresh: 2, Sort: 1, Type: "query",
		},
	}
}

// layout places each section under a row, its panels left to right in lines of 24 columns, and numbers
// every panel.
func layout(secs []section) []Panel {
	var out []Panel
	id, y := 0, 0
	for _, s := range secs {
		id++
		out = append(out, Panel{Collapsed: ptr(false), GridPos: GridPos{H: 1, W: 24, X: 0, Y: y}, ID: id, Title: s.title, Type: "row"})
		y++
		x, lineH := 0, 0
		for _, sp := range s.panels {
			if x+sp.w > 24 {
				x, y, lineH = 0, y+lineH, 0
			}
			id++
			p := sp.p
			p.ID, p.GridPos = id, GridPos{H: sp.h, W: sp.w, X: x, Y: y}
			out = append(out, p)
			x += sp.w
			lineH = max(lineH, sp.h)
		}
		y += lineH
	}
	return out
}
