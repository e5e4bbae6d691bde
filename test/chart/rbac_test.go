package chart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	"github.com/certrollout/certrollout/internal/clustertest"
)

// normalise sorts each rule's lists and the rules, so rule sets compare by content, not by order.
func normalise(rules []rbacv1.PolicyRule) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		s := func(v []string) string { v = slices.Clone(v); slices.Sort(v); return strings.Join(v, ",") }
		out = append(out, fmt.Sprintf("groups=%s resources=%s verbs=%s names=%s urls=%s",
			s(r.APIGroups), s(r.Resources), s(r.Verbs), s(r.ResourceNames), s(r.NonResourceURLs)))
	}
	slices.Sort(out)
	return out
}

// shippedRules reads the rules of a Role or ClusterRole document in config/rbac.
func shippedRules(t *testing.T, file, kind string) []rbacv1.PolicyRule {
	t.Helper()
	return shippedRulesOf(t, file, kind, "")
}

// shippedRulesOf returns the rules of the object of that kind and name (any name when "") in a file of
// config/rbac.
func shippedRulesOf(t *testing.T, file, kind, name string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var role rbacv1.ClusterRole // a Role has the same rules field
		if err := yaml.Unmarshal(doc, &role); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if role.Kind == kind && (name == "" || role.Name == name) {
			if len(role.Rules) == 0 {
				t.Fatalf("%s: a %s without rules", file, kind)
			}
			return role.Rules
		}
	}
	t.Fatalf("%s holds no %s %s", file, kind, name)
	return nil
}

// renderedRules returns the rules of a rendered Role or ClusterRole.
func renderedRules(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &role, true); err != nil {
		t.Fatalf("%s: %v", key(u), err)
	}
	return role.Rules
}

// diffRules fails the test when two normalised rule sets differ, showing what each lacks.
func diffRules(t *testing.T, what string, got, want []rbacv1.PolicyRule) {
	t.Helper()
	g, w := normalise(got), normalise(want)
	if slices.Equal(g, w) {
		return
	}
	var missing, extra []string
	for _, r := range w {
		if !slices.Contains(g, r) {
			missing = append(missing, r)
		}
	}
	for _, r := range g {
		if !slices.Contains(w, r) {
			extra = append(extra, r)
		}
	}
	t.Errorf("%s differ:\n missing %q\n extra   %q", what, missing, extra)
}

func TestTheChartGrantsExactlyTheRulesOfConfigRBAC(t *testing.T) {
	r := render(t, releaseNamespace, nil)
	diffRules(t, "the ClusterRole's rules and config/rbac/cluster_role.yaml's",
		renderedRules(t, r.get(t, "ClusterRole", "certrollout")), shippedRules(t, "cluster_role.yaml", "ClusterRole"))
	diffRules(t, "the leader election Role's rules and config/rbac/leader_election_role.yaml's",
		renderedRules(t, r.get(t, "Role", "certrollout-leader-election")), shippedRules(t, "leader_election_role.yaml", "Role"))
	diffRules(t, "the control-plane Lease Role's rules and config/rbac/control_plane_lease_role.yaml's",
		renderedRules(t, r.get(t, "Role", "certrollout-control-plane-lease")), shippedRules(t, "control_plane_lease_role.yaml", "Role"))
	if got := r.get(t, "Role", "certrollout-control-plane-lease").GetNamespace(); got != releaseNamespace {
		t.Errorf("the control-plane Lease Role is in %q; want the release namespace %q, where the node agents take the Lease", got, releaseNamespace)
	}
	for _, rule := range renderedRules(t, r.get(t, "ClusterRole", "certrollout")) {
		if slices.Contains(rule.Resources, "leases") {
			t.Errorf("the ClusterRole grants Leases cluster-wide: %+v", rule)
		}
	}
	for _, name := range []string{"certrollout-settings", "certrollout-settings-reader"} {
		diffRules(t, "the Role "+name+"'s rules and config/rbac/leader_election_role.yaml's",
			renderedRules(t, r.get(t, "Role", name)), shippedRulesOf(t, "leader_election_role.yaml", "Role", name))
	}
	// The comparison is live: a rule more or less is caught.
	if slices.Equal(normalise(shippedRules(t, "cluster_role.yaml", "ClusterRole")[1:]), normalise(shippedRules(t, "cluster_role.yaml", "ClusterRole"))) {
		t.Fatal("normalise does not tell rule sets apart")
	}
}

// splitByScope splits rules into the part a Role can grant (namespaced resources) and the part only a
// ClusterRole can (cluster-scoped resources), asking the API server which resource is which. A rule
// naming both kinds is split in two with the same verbs.
func splitByScope(t *testing.T, dc discovery.DiscoveryInterface, rules []rbacv1.PolicyRule) (namespaced, clusterScoped []rbacv1.PolicyRule) {
	t.Helper()
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil && len(lists) == 0 {
		t.Fatal(err)
	}
	scope := map[schema.GroupResource]bool{} // true: namespaced
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range l.APIResources {
			scope[schema.GroupResource{Group: gv.Group, Resource: res.Name}] = res.Namespaced // includes subresources ("certificates/status")
		}
	}
	for _, rule := range rules {
		ns, cl := rule.DeepCopy(), rule.DeepCopy()
		ns.Resources, cl.Resources = nil, nil
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				namespaced, known := scope[schema.GroupResource{Group: g, Resource: res}]
				if parent, _, sub := strings.Cut(res, "/"); !known && sub {
					// Discovery lists served subresources (status, scale) but not RBAC-only ones
					// (finalizers): those take their resource's scope.
					namespaced, known = scope[schema.GroupResource{Group: g, Resource: parent}]
				}
				if !known {
					t.Fatalf("the API server does not serve %s in group %q (is its CRD installed?)", res, g)
				}
				if namespaced {
					ns.Resources = append(ns.Resources, res)
				} else {
					cl.Resources = append(cl.Resources, res)
				}
			}
		}
		if len(ns.Resources) > 0 {
			namespaced = append(namespaced, *ns)
		}
		if len(cl.Resources) > 0 {
			clusterScoped = append(clusterScoped, *cl)
		}
	}
	return namespaced, clusterScoped
}

func TestNamespacedModeGrantsTheNamespacedRulesPerNamespaceAndOnlyTheClusterScopedOnesClusterWide(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	namespaced, clusterScoped := splitByScope(t, dc, shippedRules(t, "cluster_role.yaml", "ClusterRole"))
	if len(clusterScoped) == 0 || len(namespaced) == 0 {
		t.Fatalf("config/rbac's rules split into %d namespaced and %d cluster-scoped: the split is not live", len(namespaced), len(clusterScoped))
	}
	// NodeCertificates, control-plane rollouts and their policy, Nodes and the node agents' Lease serve
	// only the cluster-wide controller (control-plane metrics and rollouts): a namespaced controller
	// neither watches them nor is granted them.
	var dropped int
	namespaced, dropped = withoutClusterWideOnly(namespaced, dropped)
	clusterScoped, dropped = withoutClusterWideOnly(clusterScoped, dropped)
	if dropped != len(clusterWideOnly) {
		t.Fatalf("config/rbac grants %d of the %d cluster-wide-only rules %v: %v", dropped, len(clusterWideOnly), clusterWideOnly, clusterScoped)
	}
	r := render(t, releaseNamespace, values(t, "watchNamespaces: [team-a, team-b]"))
	for _, ns := range []string{"team-a", "team-b"} {
		var role *unstructured.Unstructured
		for _, u := range r.ofKind("Role") {
			if u.GetNamespace() == ns && u.GetName() == "certrollout" {
				role = u
			}
		}
		if role == nil {
			t.Fatalf("no Role certrollout in %s: %v", ns, r.keys())
		}
		diffRules(t, "the Role in "+ns+" and config/rbac's namespaced rules", renderedRules(t, role), namespaced)
	}
	diffRules(t, "the namespaced mode's ClusterRole and config/rbac's cluster-scoped rules",
		renderedRules(t, r.get(t, "ClusterRole", "certrollout")), clusterScoped)
	// The Lease's namespace is not watched, so the leader's Event there needs its own grant.
	leader := append(shippedRules(t, "leader_election_role.yaml", "Role"), rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}})
	diffRules(t, "the namespaced mode's leader election Role and config/rbac's, with Events",
		renderedRules(t, r.get(t, "Role", "certrollout-leader-election")), leader)
}

// clusterWideOnly are the resources of config/rbac's rules that only the cluster-wide controller is
// granted, each rule as its first resource.
var clusterWideOnly = []string{"nodecertificates", "controlplanerollouts", "controlplanerollouts/status", "controlplanepolicies", "nodes",
	"clustertrustbundles", "podcertificaterequests"}

// withoutClusterWideOnly drops the rules that begin with a clusterWideOnly resource, counting them.
func withoutClusterWideOnly(rules []rbacv1.PolicyRule, dropped int) ([]rbacv1.PolicyRule, int) {
	return slices.DeleteFunc(rules, func(r rbacv1.PolicyRule) bool {
		if len(r.Resources) > 0 && slices.Contains(clusterWideOnly, r.Resources[0]) {
			dropped++
			return true
		}
		return false
	}), dropped
}

// The tenant roles and the admission policy the chart installs are config/'s, byte for byte in content.
func TestTheChartsTenancyObjectsAreThoseOfConfig(t *testing.T) {
	for _, f := range []struct{ config, chart string }{
		{"config/admission/admission_policy.yaml", "files/admission/admission_policy.yaml"},
		{"config/rbac/tenant_roles.yaml", "files/rbac/tenant_roles.yaml"},
	} {
		want, err := os.ReadFile(filepath.Join(repoRoot(t), f.config))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir(t), f.chart))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/certrollout/%s differs from %s: run make generate", f.chart, f.config)
		}
	}
	r := render(t, releaseNamespace, nil)
	diffRules(t, "the rendered certrollout-edit and config/rbac/tenant_roles.yaml's",
		renderedRules(t, r.get(t, "ClusterRole", "certrollout-edit")), shippedRules(t, "tenant_roles.yaml", "ClusterRole"))
	if got := r.get(t, "ClusterRole", "certrollout-view").GetLabels()["rbac.authorization.k8s.io/aggregate-to-view"]; got != "true" {
		t.Errorf("certrollout-view is not aggregated into view: %q", got)
	}
	emergency := r.get(t, "ClusterRole", "certrollout-emergency")
	diffRules(t, "the rendered certrollout-emergency and config/rbac/tenant_roles.yaml's",
		renderedRules(t, emergency), shippedRulesOf(t, "tenant_roles.yaml", "ClusterRole", "certrollout-emergency"))
	for k := range emergency.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			t.Errorf("certrollout-emergency is aggregated (%s): emergency rights must be granted on their own", k)
		}
	}
}

func TestTheChartsCRDsAreThoseOfConfigCRDBases(t *testing.T) {
	bases, err := filepath.Glob(filepath.Join(repoRoot(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	copies, err := filepath.Glob(filepath.Join(chartDir(t), "files", "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(names(bases), names(copies)) {
		t.Fatalf("charts/certrollout/files/crds holds %v, config/crd/bases %v: run make generate", names(copies), names(bases))
	}
	for i := range bases {
		want, err := os.ReadFile(bases[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(copies[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/certrollout/files/crds/%s differs from config/crd/bases/%[1]s: run make generate", filepath.Base(bases[i]))
		}
	}
	// And the chart renders each of them with its spec unchanged.
	r := render(t, releaseNamespace, nil)
	for _, path := range bases {
		data, _ := os.ReadFile(path)
		objs, err := decode(string(data))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %v", path, err)
		}
		got := r.get(t, "CustomResourceDefinition", objs[0].GetName())
		if !equalJSON(t, got.Object["spec"], objs[0].Object["spec"]) {
			t.Errorf("the rendered CRD %s's spec differs from %s", got.GetName(), filepath.Base(path))
		}
	}
}

// equalJSON compares two values by their encoding (sigs.k8s.io/yaml goes through JSON: map keys sorted).
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}
