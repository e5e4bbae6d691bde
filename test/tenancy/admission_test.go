package tenancy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// applyShipped applies a file of the repository's config/ folder, as `kubectl apply -k config/default`
// would, and deletes what it created when the test ends.
func applyShipped(t *testing.T, rel string) {
	t.Helper()
	c := clustertest.Cluster(t)
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(context.Background(), c.Config, data); err != nil {
		t.Fatalf("applying config/%s: %v", rel, err)
	}
}

// as returns a client that impersonates user, as `kubectl --as` does.
// installTenancy applies the shipped tenant roles and admission policies, as an admin installing
// certrollout would, and removes the policies when the test ends (they are cluster-wide).
func installTenancy(t *testing.T, cl client.Client) {
	t.Helper()
	applyShipped(t, "rbac/tenant_roles.yaml")
	applyShipped(t, "admission/admission_policy.yaml")
	t.Cleanup(func() {
		for _, name := range []string{"certrollout.io-restart-rights", "certrollout.io-trust-sync-rights"} {
			meta := metav1.ObjectMeta{Name: name}
			_ = cl.Delete(context.Background(), &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: meta})
			_ = cl.Delete(context.Background(), &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: meta})
		}
	})
}

func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(clustertest.Cluster(t).Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cl, err := client.New(cfg, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// grant binds user to a ClusterRole, or to the rules given, in namespace ns.
func grant(t *testing.T, cl client.Client, ns, user, clusterRole string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	name := strings.ToLower(user + "-" + clusterRole)
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole}
	if len(rules) > 0 {
		create(t, cl, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules})
		ref = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}
	}
	create(t, cl, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}})
}

// holdOf is a MaintenanceHold of the named Deployments, or of what selector selects.
func holdOf(ns, name string, selector *metav1.LabelSelector, deployments ...string) *api.MaintenanceHold {
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: api.MaintenanceHoldSpec{Targets: api.HoldTargets{Selector: selector}}}
	for _, d := range deployments {
		h.Spec.Targets.Workloads = append(h.Spec.Targets.Workloads, api.ScalableWorkloadReference{Kind: api.KindDeployment, Name: d})
	}
	return h
}

// A tenant given certrollout's edit role may create certrollout.io objects only for what they could change
// themselves: the shipped admission policy refuses, on the real API server, a CertRollout naming a
// workload they may not patch, a RolloutPolicy in a namespace whose workloads they may not patch, a
// MaintenanceHold of workloads they may not scale, and a ClusterIssuer cascade; the same objects pass for someone with those rights.
func TestTheShippedAdmissionPolicyLetsTenantsCreateOnlyWhatTheyCouldDoThemselves(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	installTenancy(t, cl)
	create(t, cl, web(ns, "web"), web(ns, "payroll"))

	// alice: certrollout's edit role and read access to workloads, but no right to change them.
	grant(t, cl, ns, "alice", "certrollout-edit")
	grant(t, cl, ns, "alice", "read-workloads",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get", "list", "watch"}})
	alice := as(t, "alice")
	ctx := context.Background()

	// The binding takes effect once the API server has loaded it.
	clustertest.Eventually(t, time.Minute, "the admission policy to refuse alice's CertRollout of payroll", func(ctx context.Context) (bool, error) {
		err := alice.Create(ctx, manual(ns, "payroll-now", "", "payroll"))
		if err == nil {
			_ = cl.Delete(ctx, manual(ns, "payroll-now", "", "payroll"))
			return false, nil
		}
		if !strings.Contains(err.Error(), "must be allowed to patch Deployments in namespace "+ns+", and alice is not") {
			return false, err
		}
		return true, nil
	})
	refused := map[string]client.Object{
		"this RolloutPolicy restarts or scales Deployments": &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"},
			Spec: api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}}},
		"this CertRollout restarts or scales Deployments":                 manual(ns, "policy-only", "all"),
		"this MaintenanceHold restarts or scales Deployments":             holdOf(ns, "hold-payroll", nil, "payroll"),
		"this MaintenanceHold restarts or scales Deployments: its author": holdOf(ns, "hold-all", &metav1.LabelSelector{}),
		"patch certificates/status in every namespace": &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "steal"},
			Spec: api.CertRolloutSpec{Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "ClusterIssuer", Name: "root"}, CAFingerprint: strings.Repeat("a", 64)}}},
	}
	for want, obj := range refused {
		err := alice.Create(ctx, obj)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("alice creating %T %s: %v; want it refused saying %q", obj, obj.GetName(), err, want)
		}
	}

	// bob may patch every workload of the namespace: the same objects pass (the cascade aside: he may
	// not re-issue Certificates).
	grant(t, cl, ns, "bob", "certrollout-edit")
	grant(t, cl, ns, "bob", "patch-workloads",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get", "patch"}})
	bob := as(t, "bob")
	for _, obj := range []client.Object{
		manual(ns, "payroll-by-bob", "", "payroll"),
		&api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bobs"}, Spec: api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}}},
		manual(ns, "bobs-policy-only", "bobs"),
		holdOf(ns, "bobs-hold", nil, "payroll"),
		holdOf(ns, "bobs-hold-all", &metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}),
	} {
		if err := bob.Create(ctx, obj); err != nil {
			t.Errorf("bob creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	// The controller's own rights (the shipped ClusterRole) pass every check: it creates the rollouts of
	// policies, with or without targets, and cascades.
	applyShipped(t, "rbac/cluster_role.yaml")
	applyShipped(t, "rbac/cluster_role_binding.yaml")
	controllerSA := as(t, "system:serviceaccount:certrollout-system:certrollout")
	for _, obj := range []client.Object{
		manual(ns, "by-the-controller", "bobs", "web"),
		manual(ns, "by-the-controller-all", "bobs"),
		&api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cascade-by-the-controller"},
			Spec: api.CertRolloutSpec{Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}, CAFingerprint: strings.Repeat("a", 64)}}},
	} {
		if err := controllerSA.Create(ctx, obj); err != nil {
			t.Errorf("the controller creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	// Someone with no certrollout role at all is stopped by RBAC before admission.
	if err := as(t, "mallory").Create(ctx, manual(ns, "m", "", "web")); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("mallory, with no role: %v; want forbidden", err)
	}
}
