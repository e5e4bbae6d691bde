package chart

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// metricsPorts returns the container's and the Service's metrics port as name:number.
func metricsPorts(t *testing.T, r rendered) (container, service map[string]int64) {
	t.Helper()
	container, service = map[string]int64{}, map[string]int64{}
	for _, p := range controller(t, r.deployment(t)).Ports {
		if p.Name != "probes" {
			container[p.Name] = int64(p.ContainerPort)
		}
	}
	ports, _, _ := unstructured.NestedSlice(r.get(t, "Service", "certrollout-metrics").Object, "spec", "ports")
	for _, p := range ports {
		m := p.(map[string]any)
		if m["targetPort"] != m["name"] {
			t.Errorf("Service port %v targets another port than its name", m)
		}
		service[m["name"].(string)] = m["port"].(int64)
	}
	return container, service
}

// scrapeEndpoint returns the one endpoint of the rendered ServiceMonitor or PodMonitor.
func scrapeEndpoint(t *testing.T, r rendered, kind, field string) map[string]any {
	t.Helper()
	eps, _, _ := unstructured.NestedSlice(r.get(t, kind, "certrollout").Object, "spec", field)
	if len(eps) != 1 {
		t.Fatalf("%s has %d endpoints, want 1", kind, len(eps))
	}
	return eps[0].(map[string]any)
}

func TestByDefaultMetricsAreServedOverHTTPSToReadersOfTheMetricsReaderRole(t *testing.T) {
	r := render(t, releaseNamespace, values(t, `
serviceMonitor: {enabled: true}
podMonitor: {enabled: true, authorization: {type: Bearer, credentials: {name: prometheus-token, key: token}}}
`))
	args := controller(t, r.deployment(t)).Args
	if !slices.Contains(args, "--metrics-secure") || !slices.Contains(args, "--metrics-bind-address=:8443") {
		t.Errorf("args %q lack --metrics-secure and --metrics-bind-address=:8443", args)
	}
	container, service := metricsPorts(t, r)
	if container["https"] != 8443 || service["https"] != 8443 || len(container) != 1 || len(service) != 1 {
		t.Errorf("metrics ports: container %v, Service %v; want https 8443 for both", container, service)
	}
	diffRules(t, "the chart's certrollout-metrics-reader and config/rbac/metrics_reader_role.yaml's",
		renderedRules(t, r.get(t, "ClusterRole", "certrollout-metrics-reader")), shippedRules(t, "metrics_reader_role.yaml", "ClusterRole"))
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	diffRules(t, "certrollout-metrics-reader's rules and GET /metrics", renderedRules(t, r.get(t, "ClusterRole", "certrollout-metrics-reader")), want)

	sm := scrapeEndpoint(t, r, "ServiceMonitor", "endpoints")
	if sm["scheme"] != "https" || sm["port"] != "https" || sm["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("ServiceMonitor endpoint %v: want scheme https on port https with Prometheus's own token", sm)
	}
	pm := scrapeEndpoint(t, r, "PodMonitor", "podMetricsEndpoints")
	if pm["scheme"] != "https" || pm["authorization"].(map[string]any)["type"] != "Bearer" {
		t.Errorf("PodMonitor endpoint %v: want scheme https with the given authorization", pm)
	}
	for kind, ep := range map[string]map[string]any{"ServiceMonitor": sm, "PodMonitor": pm} {
		if tls, _ := ep["tlsConfig"].(map[string]any); tls["insecureSkipVerify"] != true {
			t.Errorf("%s tlsConfig %v: the certificate is self-signed, want insecureSkipVerify", kind, ep["tlsConfig"])
		}
	}
	for _, b := range r.ofKind("ClusterRoleBinding") {
		if b.GetName() == "certrollout-metrics-reader" {
			t.Errorf("a metrics-reader binding without metrics.reader.serviceAccount")
		}
	}
}

func TestMetricsSecureFalseServesPlainHTTPOnTheBinarysPort(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "metrics: {secure: false}\nserviceMonitor: {enabled: true}\npodMonitor: {enabled: true}"))
	args := controller(t, r.deployment(t)).Args
	if slices.Contains(args, "--metrics-secure") || !slices.Contains(args, "--metrics-bind-address=:8080") {
		t.Errorf("args %q: want --metrics-bind-address=:8080 without --metrics-secure", args)
	}
	container, service := metricsPorts(t, r)
	if container["metrics"] != 8080 || service["metrics"] != 8080 || len(container) != 1 || len(service) != 1 {
		t.Errorf("metrics ports: container %v, Service %v; want metrics 8080 for both", container, service)
	}
	for kind, field := range map[string]string{"ServiceMonitor": "endpoints", "PodMonitor": "podMetricsEndpoints"} {
		ep := scrapeEndpoint(t, r, kind, field)
		if ep["port"] != "metrics" || ep["scheme"] != nil || ep["bearerTokenFile"] != nil || ep["tlsConfig"] != nil {
			t.Errorf("%s endpoint %v: want plain HTTP on port metrics", kind, ep)
		}
	}
}

func TestTheMetricsReaderIsBoundToTheGivenServiceAccount(t *testing.T) {
	r := render(t, releaseNamespace, values(t, "metrics: {reader: {serviceAccount: {name: prometheus-k8s, namespace: monitoring}}}"))
	b := r.get(t, "ClusterRoleBinding", "certrollout-metrics-reader")
	subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
	role, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
	if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != "prometheus-k8s" || subjects[0].(map[string]any)["namespace"] != "monitoring" || role != "certrollout-metrics-reader" {
		t.Errorf("binding %v to %s, want ServiceAccount monitoring/prometheus-k8s to certrollout-metrics-reader", subjects, role)
	}
}

func TestAPodMonitorOfSecureMetricsWithoutCredentialsFailsToRender(t *testing.T) {
	_, err := tryRender(t, releaseNamespace, values(t, "podMonitor: {enabled: true}"))
	if err == nil || !strings.Contains(err.Error(), "podMonitor.authorization") {
		t.Fatalf("a PodMonitor that Prometheus cannot authenticate with: want an error naming podMonitor.authorization, got %v", err)
	}
}
