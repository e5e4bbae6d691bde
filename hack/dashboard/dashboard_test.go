package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/metricsdoc"
)

const checkedIn = "deploy/grafana/certrollout-dashboard.json"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// exportedSeries is every series a query may select: those docs/metrics.md lists.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	names, _, err := metricsdoc.Exported(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// grafanaVariables are what Grafana substitutes before a query reaches Prometheus, with values of the
// same shape.
var grafanaVariables = strings.NewReplacer(
	"$namespace", "shop|ops", "$__rate_interval", "4m", "$__interval", "1m", "$__range", "1d",
	"${datasource}", "prometheus",
)

func allPanels() []Panel {
	var out []Panel
	for _, p := range build().Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func TestTheCheckedInDashboardIsWhatTheGeneratorWrites(t *testing.T) {
	want, err := render(build())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot(t), checkedIn))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what hack/dashboard writes: run make dashboard", checkedIn)
	}
	var back Dashboard
	if err := json.Unmarshal(got, &back); err != nil || back.UID != "certrollout" {
		t.Errorf("%s does not read back as a dashboard: %v", checkedIn, err)
	}
}

func TestEveryQueryIsPromQLOverExportedSeries(t *testing.T) {
	exported := exportedSeries(t)
	n := 0
	for _, p := range allPanels() {
		for _, tg := range p.Targets {
			n++
			expr := grafanaVariables.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %s: a variable Grafana does not substitute: %s", p.Title, tg.RefID, tg.Expr)
			}
			unknown, err := metricsdoc.Unknown(expr, exported)
			if err != nil {
				t.Errorf("panel %q query %s does not parse as PromQL: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
				continue
			}
			if len(unknown) > 0 {
				t.Errorf("panel %q query %s selects series the controller does not export: %v", p.Title, tg.RefID, unknown)
			}
			if strings.Contains(tg.Expr, "certrollout_workload") && !strings.Contains(tg.Expr, `namespace=~"$namespace"`) {
				t.Errorf("panel %q query %s reads workloads without the namespace variable: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d queries: the dashboard lost its panels", n)
	}
}

// overlap reports whether two grid rectangles share a cell.
func overlap(a, b GridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

func TestPanelsHaveUniqueIDsTitlesQueriesAndDoNotOverlap(t *testing.T) {
	panels := allPanels()
	ids := map[int]string{}
	for i, p := range panels {
		if other, ok := ids[p.ID]; ok || p.ID <= 0 {
			t.Errorf("panel %q has id %d, as %q does (or it is not positive)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if strings.TrimSpace(p.Title) == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q at %+v is off the 24-column grid", p.Title, g)
		}
		for _, q := range panels[:i] {
			if overlap(g, q.GridPos) {
				t.Errorf("panels %q %+v and %q %+v overlap", p.Title, g, q.Title, q.GridPos)
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: %d queries, data source %v; want at least one query on ${datasource}", p.Title, len(p.Targets), p.Datasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.RefID == "" || tg.Expr == "" || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %q is empty, repeats its refId or has another data source", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	// The check is live.
	if !overlap(GridPos{X: 0, Y: 0, W: 12, H: 8}, GridPos{X: 11, Y: 7, W: 2, H: 2}) || overlap(GridPos{X: 0, Y: 0, W: 12, H: 8}, GridPos{X: 12, Y: 0, W: 12, H: 8}) {
		t.Error("overlap is wrong")
	}
}

func TestTheDashboardHasTheDatasourceAndNamespaceVariables(t *testing.T) {
	vars := map[string]Variable{}
	for _, v := range build().Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("datasource variable %+v, want a prometheus data source picker", v)
	}
	v, ok := vars["namespace"]
	if !ok || v.Type != "query" || !v.Multi || !v.IncludeAll || v.Datasource == nil || v.Datasource.UID != "${datasource}" ||
		v.Definition != "label_values(certrollout_workload_certificate_expiry_timestamp_seconds, namespace)" {
		t.Errorf("namespace variable %+v, want a multi-value query of label_values(certrollout_workload_certificate_expiry_timestamp_seconds, namespace) on ${datasource}", v)
	}
}

func TestTheExpiryTimelineColoursTimeLeftAsTheAlertsDo(t *testing.T) {
	var found bool
	for _, p := range allPanels() {
		if p.Title != "Certificate expiry timeline" {
			continue
		}
		found = true
		th := p.FieldConfig.Overrides[0].Properties[1].Value.(*Thresholds)
		var got []string
		for _, s := range th.Steps {
			v := "-inf"
			if s.Value != nil {
				v = formatFloat(*s.Value)
			}
			got = append(got, s.Color+"@"+v)
		}
		if want := "red@-inf orange@0 yellow@604800 green@2419200"; strings.Join(got, " ") != want {
			t.Errorf("time left colours %v, want %s", got, want)
		}
	}
	if !found {
		t.Error("no panel Certificate expiry timeline")
	}
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
