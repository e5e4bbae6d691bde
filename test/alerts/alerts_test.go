package alerts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/metricsdoc"
)

const (
	rulesFile    = "deploy/prometheus/certrollout-alerts.yaml"
	unitTestFile = "test/alerts/certrollout-alerts.test.yaml"
	runbooks     = "docs/runbooks.md"
	runbookBase  = "https://github.com/certrollout/certrollout/blob/main/" + runbooks + "#"
)

// ruleFile is a Prometheus rules file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// unitTests is what these tests read of promtool's unit test file.
type unitTests struct {
	Tests []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			AlertName string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// exportedSeries is every series a rule may select: those docs/metrics.md lists.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	names, _, err := metricsdoc.Exported(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// readYAML reads a file of the repository into a struct; strict: every field must be known.
func readYAML(t *testing.T, path string, into any, strict bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	unmarshal := yaml.Unmarshal
	if strict {
		unmarshal = yaml.UnmarshalStrict
	}
	if err := unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	readYAML(t, rulesFile, &f, true)
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no rules", rulesFile)
	}
	return out
}

// promtool runs promtool with args in the repository root and fails the test with its output when it
// fails. Without promtool the test fails too (skips under -short): the rules would go unchecked.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("promtool is not on PATH (run make tools-prometheus)")
		}
		t.Fatal("promtool is not on PATH: run make tools-prometheus")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolChecksTheRulesFile(t *testing.T) {
	promtool(t, "check", "rules", rulesFile)
}

func TestPromtoolUnitTestsOfTheRulesPass(t *testing.T) {
	promtool(t, "test", "rules", unitTestFile)
}

func TestEveryRuleSelectsOnlySeriesTheControllerExports(t *testing.T) {
	exported := exportedSeries(t)
	for _, r := range alertRules(t) {
		unknown, err := metricsdoc.Unknown(r.Expr, exported)
		if err != nil {
			t.Errorf("%s: expression does not parse as PromQL: %v", r.Alert, err)
			continue
		}
		if len(unknown) > 0 {
			t.Errorf("%s selects series the controller does not export: %v", r.Alert, unknown)
		}
	}
	// The check is live: a misspelt series is caught.
	if unknown, err := metricsdoc.Unknown(`certrollout_workload_stale_pod > 0`, exported); err != nil || len(unknown) != 1 {
		t.Errorf("a misspelt series was not caught: %v, %v", unknown, err)
	}
}

// alertName is how every certrollout alert is named.
var alertName = regexp.MustCompile(`^CertRollout[A-Z][A-Za-z0-9]+$`)

// templated finds Prometheus templating of an alert's labels or value.
var templated = regexp.MustCompile(`\{\{[^}]*\$(labels|value)[^}]*\}\}`)

func TestEveryAlertHasASeveritySummaryDescriptionAndRunbook(t *testing.T) {
	for _, r := range alertRules(t) {
		if r.Record != "" || !alertName.MatchString(r.Alert) {
			t.Errorf("rule %q%q: want only alerts named CertRollout<Something>", r.Alert, r.Record)
			continue
		}
		if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
		}
		// absent() has no series to take labels or a value from.
		for _, a := range []string{"summary", "description"} {
			if !strings.HasPrefix(r.Expr, "absent(") && !templated.MatchString(r.Annotations[a]) {
				t.Errorf("%s: annotation %s %q does not use $labels or $value", r.Alert, a, r.Annotations[a])
			}
		}
		if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if len(r.Annotations) != 3 || len(r.Labels) != 1 {
			t.Errorf("%s: labels %v, annotations %v: want severity; summary, description, runbook_url", r.Alert, r.Labels, r.Annotations)
		}
	}
}

// anchors returns the GitHub anchors of a Markdown document's headings.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(title, ""), " ", "-")] = true
	}
	return out
}

func TestEveryAlertsRunbookSectionExistsAndNamesCommands(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), runbooks))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	have := anchors(doc)
	for _, r := range alertRules(t) {
		anchor := strings.TrimPrefix(r.Annotations["runbook_url"], runbookBase)
		if !have[anchor] {
			t.Errorf("%s: %s has no section #%s", r.Alert, runbooks, anchor)
		}
	}
	for _, must := range []string{"certrollout plan", "certrollout status", "kubectl describe certrollout", "--field-selector reason="} {
		if !strings.Contains(doc, must) {
			t.Errorf("%s never mentions %q", runbooks, must)
		}
	}
}

// An alert without a unit test that fires it can be broken without anyone noticing; one without a case
// where it stays quiet can page all the time.
func TestEveryAlertHasAFiringAndAQuietUnitTest(t *testing.T) {
	var tests unitTests
	readYAML(t, unitTestFile, &tests, false)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) == 0 {
				quiet[at.AlertName] = true
			}
			for _, a := range at.ExpAlerts {
				fires[at.AlertName+"/"+a.ExpLabels["severity"]] = true
			}
		}
	}
	for _, r := range alertRules(t) {
		if !fires[r.Alert+"/"+r.Labels["severity"]] {
			t.Errorf("%s (%s): no unit test expects it to fire", r.Alert, r.Labels["severity"])
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: no unit test expects it to stay quiet", r.Alert)
		}
	}
}
