package chart

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// `kubectl apply -k config/default` protects the metrics as the chart does by default: HTTPS on 8443 for
// callers the API server authenticates and allows GET /metrics, with the rights the controller needs to
// ask it (TokenReview, SubjectAccessReview) granted to the account it runs as.
func TestTheKustomizeTreeServesMetricsOverHTTPSToReadersOfTheMetricsReaderRole(t *testing.T) {
	r := kustomizeBuild(t, "config/default")
	d := r.deployment(t)
	args := controller(t, d).Args
	if !slices.Contains(args, "--metrics-secure") || !slices.Contains(args, "--metrics-bind-address=:8443") {
		t.Errorf("config/default's args %q lack --metrics-secure and --metrics-bind-address=:8443", args)
	}
	container, service := metricsPorts(t, r)
	if container["https"] != 8443 || service["https"] != 8443 || len(container) != 1 || len(service) != 1 {
		t.Errorf("metrics ports: container %v, Service %v; want https 8443 for both", container, service)
	}
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	diffRules(t, "config/default's certrollout-metrics-reader and GET /metrics", renderedRules(t, r.get(t, "ClusterRole", "certrollout-metrics-reader")), want)

	sa := d.Spec.Template.Spec.ServiceAccountName
	var granted []rbacv1.PolicyRule
	for _, u := range r.ofKind("ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == d.Namespace
		}) {
			granted = append(granted, renderedRules(t, r.get(t, "ClusterRole", b.RoleRef.Name))...)
		}
	}
	for _, need := range []struct{ group, resource string }{{"authentication.k8s.io", "tokenreviews"}, {"authorization.k8s.io", "subjectaccessreviews"}} {
		if !slices.ContainsFunc(granted, func(p rbacv1.PolicyRule) bool {
			return slices.Contains(p.APIGroups, need.group) && slices.Contains(p.Resources, need.resource) && slices.Contains(p.Verbs, "create")
		}) {
			t.Errorf("ServiceAccount %s/%s may not create %s.%s: --metrics-secure cannot check a scraper", d.Namespace, sa, need.resource, need.group)
		}
	}
}
