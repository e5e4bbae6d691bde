package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The alert rules and the dashboard the chart installs are deploy/'s, byte for byte.
func TestTheChartsAlertRulesAndDashboardAreThoseOfDeploy(t *testing.T) {
	for _, f := range []struct{ deploy, chart string }{
		{"deploy/prometheus/certrollout-alerts.yaml", "files/prometheus/certrollout-alerts.yaml"},
		{"deploy/grafana/certrollout-dashboard.json", "files/grafana/certrollout-dashboard.json"},
	} {
		want, err := os.ReadFile(filepath.Join(repoRoot(t), f.deploy))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir(t), f.chart))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/certrollout/%s differs from %s: run make generate", f.chart, f.deploy)
		}
	}
}

// deployRuleGroups parses the groups of deploy/prometheus/certrollout-alerts.yaml.
func deployRuleGroups(t *testing.T) []any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus", "certrollout-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) == 0 {
		t.Fatal("deploy/prometheus/certrollout-alerts.yaml holds no groups")
	}
	return file.Groups
}

func TestThePrometheusRuleHoldsTheRulesFilesGroupsWithPrometheusTemplatesIntact(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "prometheusRule: {enabled: true}"))
	pr := r.get(t, "PrometheusRule", "certrollout")
	if pr.GetAPIVersion() != "monitoring.coreos.com/v1" || pr.GetNamespace() != releaseNamespace {
		t.Errorf("PrometheusRule %s in %q, want monitoring.coreos.com/v1 in %s", pr.GetAPIVersion(), pr.GetNamespace(), releaseNamespace)
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	if !equalJSON(t, groups, deployRuleGroups(t)) {
		t.Errorf("the PrometheusRule's groups differ from deploy/prometheus/certrollout-alerts.yaml's")
	}
	// Helm did not read Prometheus's templates as its own.
	if !strings.Contains(r.Manifest, "{{ $labels.namespace }}") {
		t.Error("the rendered rules lost their {{ $labels.namespace }} templates")
	}
}

func TestThePrometheusRuleFollowsItsValues(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
prometheusRule:
  enabled: true
  namespace: monitoring
  labels: {release: prometheus}
  annotations: {owner: sre}
  additionalRuleLabels: {team: platform, severity: none}
`))
	pr := r.get(t, "PrometheusRule", "certrollout")
	if pr.GetNamespace() != "monitoring" || pr.GetLabels()["release"] != "prometheus" || pr.GetLabels()["app.kubernetes.io/name"] != "certrollout" ||
		pr.GetAnnotations()["owner"] != "sre" {
		t.Errorf("PrometheusRule in %q, labels %v, annotations %v: want monitoring, release=prometheus with the chart's labels, owner=sre",
			pr.GetNamespace(), pr.GetLabels(), pr.GetAnnotations())
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	n := 0
	for _, g := range groups {
		for _, rule := range g.(map[string]any)["rules"].([]any) {
			n++
			labels := rule.(map[string]any)["labels"].(map[string]any)
			if labels["team"] != "platform" || (labels["severity"] != "warning" && labels["severity"] != "critical") {
				t.Errorf("%v: labels %v, want team=platform and the rule's own severity", rule.(map[string]any)["alert"], labels)
			}
		}
	}
	if n == 0 {
		t.Error("the PrometheusRule holds no rules")
	}
}

func TestThePrometheusRuleNeedsMetrics(t *testing.T) {
	_, err := tryRender(t, releaseNamespace, values(t, "prometheusRule: {enabled: true}\nmetrics: {enabled: false}"))
	if err == nil || !strings.Contains(err.Error(), "metrics.enabled is false") {
		t.Errorf("rendering alerts without metrics: error %v, want one naming metrics.enabled", err)
	}
}

func TestTheDashboardConfigMapHoldsTheDashboardForGrafanasSidecar(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "certrollout-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := render(t, releaseNamespace, values(t, "grafanaDashboard: {enabled: true}"))
	cm := r.get(t, "ConfigMap", "certrollout-dashboard")
	if cm.GetNamespace() != releaseNamespace || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap in %q with labels %v, want %s and grafana_dashboard=1", cm.GetNamespace(), cm.GetLabels(), releaseNamespace)
	}
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "certrollout.json"); got != string(want) {
		t.Errorf("data certrollout.json (%d bytes) differs from deploy/grafana/certrollout-dashboard.json (%d bytes)", len(got), len(want))
	}

	r = render(t, releaseNamespace, values(t, `
grafanaDashboard:
  enabled: true
  namespace: grafana
  labels: {dashboards: certrollout}
  annotations: {grafana_folder: Certificates}
`))
	cm = r.get(t, "ConfigMap", "certrollout-dashboard")
	if cm.GetNamespace() != "grafana" || cm.GetLabels()["dashboards"] != "certrollout" || cm.GetAnnotations()["grafana_folder"] != "Certificates" {
		t.Errorf("ConfigMap in %q, labels %v, annotations %v: want grafana, dashboards=certrollout, grafana_folder=Certificates",
			cm.GetNamespace(), cm.GetLabels(), cm.GetAnnotations())
	}
	// Helm merges the values' maps: the default sidecar label stays unless set to null.
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("labels %v lack the default grafana_dashboard=1", cm.GetLabels())
	}
	cm = render(t, releaseNamespace, values(t, "grafanaDashboard: {enabled: true, labels: {grafana_dashboard: null, dash: 'yes'}}")).get(t, "ConfigMap", "certrollout-dashboard")
	if _, ok := cm.GetLabels()["grafana_dashboard"]; ok || cm.GetLabels()["dash"] != "yes" {
		t.Errorf("labels %v: want dash=yes and no grafana_dashboard once it is set to null", cm.GetLabels())
	}
}

// The series carry the namespace of the workload they describe: the monitors keep it rather than renaming
// it exported_namespace, or the alerts and the dashboard would select nothing.
func TestTheMonitorsKeepTheSeriesOwnNamespaceLabel(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "serviceMonitor: {enabled: true}\npodMonitor: {enabled: true, authorization: {type: Bearer, credentials: {name: prom, key: token}}}"))
	for kind, field := range map[string]string{"ServiceMonitor": "endpoints", "PodMonitor": "podMetricsEndpoints"} {
		eps, _, _ := unstructured.NestedSlice(r.get(t, kind, "certrollout").Object, "spec", field)
		if len(eps) != 1 || eps[0].(map[string]any)["honorLabels"] != true {
			t.Errorf("%s endpoints %v, want one with honorLabels: true", kind, eps)
		}
	}
}

func TestTheSchemaRejectsMisspeltAlertAndDashboardValues(t *testing.T) {
	for _, doc := range []string{
		"prometheusRule: {enable: true}",
		"prometheusRule: {additionalRuleLabels: [team]}",
		"grafanaDashboard: {labels: {grafana_dashboard: 1}}",
		"grafanaDashboard: {folder: certificates}",
	} {
		if _, err := tryRender(t, releaseNamespace, values(t, doc)); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("values %q: error %v, want the schema's", doc, err)
		}
	}
}
