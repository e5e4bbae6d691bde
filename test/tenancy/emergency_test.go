package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// emergency is a CertRollout of target that requestedBy asks to start at once.
func emergency(ns, name, requestedBy, target string) *api.CertRollout {
	ro := manual(ns, name, "", target)
	ro.Spec.Emergency = &api.EmergencySpec{Reason: "INC-42: the certificate expires before the window", RequestedBy: requestedBy}
	return ro
}

// An emergency rollout overrides a policy's windows and suspension, so the edit rights that let a tenant
// restart their workloads do not let them start one: the shipped admission policy asks for the verb
// "emergency" on certrollouts, which certrollout-emergency grants and certrollout-edit does not, and it
// refuses a record of who asked that names someone else.
func TestAnEmergencyRolloutNeedsTheEmergencyVerbOnTopOfEditRights(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	installTenancy(t, cl)
	create(t, cl, web(ns, "portal"))
	// carol may restart portal by hand and through an ordinary CertRollout.
	grant(t, cl, ns, "carol", "certrollout-edit")
	grant(t, cl, ns, "carol", "patch-workloads",
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "patch"}})
	carol := as(t, "carol")
	ctx := context.Background()

	clustertest.Eventually(t, time.Minute, "the admission policy to refuse carol's emergency CertRollout", func(ctx context.Context) (bool, error) {
		err := carol.Create(ctx, emergency(ns, "portal-now", "carol", "portal"))
		if err == nil {
			_ = cl.Delete(ctx, emergency(ns, "portal-now", "carol", "portal"))
			return false, nil
		}
		if !strings.Contains(err.Error(), `must be allowed the verb "emergency" on certrollouts in namespace `+ns+" (ClusterRole certrollout-emergency), and carol is not") {
			return false, err
		}
		return true, nil
	})
	if err := carol.Create(ctx, manual(ns, "portal-in-the-window", "", "portal")); err != nil {
		t.Fatalf("carol's ordinary CertRollout was refused: %v", err)
	}

	grant(t, cl, ns, "carol", "certrollout-emergency")
	clustertest.Eventually(t, time.Minute, "carol's emergency CertRollout to be admitted with certrollout-emergency bound", func(ctx context.Context) (bool, error) {
		err := carol.Create(ctx, emergency(ns, "portal-now", "carol", "portal"))
		if err != nil && strings.Contains(err.Error(), `the verb "emergency"`) {
			return false, nil // the RoleBinding is not in the authorizer's cache yet
		}
		return err == nil, err
	})
	// The record of who asked must be true.
	err := carol.Create(ctx, emergency(ns, "portal-as-dave", "dave", "portal"))
	if err == nil || !strings.Contains(err.Error(), `it must be the creating user, "carol"`) {
		t.Errorf("carol creating an emergency requested by dave: %v; want it refused", err)
	}
	err = carol.Create(ctx, emergency(ns, "portal-by-nobody", "", "portal"))
	if err == nil || !strings.Contains(err.Error(), `it must be the creating user, "carol"`) {
		t.Errorf("carol creating an emergency that names nobody: %v; want it refused", err)
	}
	// The emergency verb alone does not let a tenant restart what they may not patch.
	grant(t, cl, ns, "erin", "certrollout-edit")
	grant(t, cl, ns, "erin", "certrollout-emergency")
	err = as(t, "erin").Create(ctx, emergency(ns, "portal-by-erin", "erin", "portal"))
	if err == nil || !strings.Contains(err.Error(), "must be allowed to patch Deployments in namespace "+ns+", and erin is not") {
		t.Errorf("erin, with the emergency verb but no right to patch Deployments: %v; want it refused", err)
	}
}

// grantClusterWide binds user, cluster-wide, to a ClusterRole, or to the rules given, and removes both
// when the test ends (they outlive the test's namespace).
func grantClusterWide(t *testing.T, cl client.Client, user, clusterRole string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	name := strings.ToLower("test-" + user + "-" + clusterRole)
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole}
	if len(rules) > 0 {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
		create(t, cl, role)
		t.Cleanup(func() { _ = cl.Delete(context.Background(), role) })
		ref.Name = name
	}
	b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
	create(t, cl, b)
	t.Cleanup(func() { _ = cl.Delete(context.Background(), b) })
}

// cpEmergency is a ControlPlaneRollout that requestedBy asks to start at once.
func cpEmergency(name, requestedBy string) *api.ControlPlaneRollout {
	return &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: api.ControlPlaneRolloutSpec{
		Emergency: &api.EmergencySpec{Reason: "INC-43: the apiserver certificate expires tonight", RequestedBy: requestedBy}}}
}

// `certrollout restart --control-plane --now` creates a ControlPlaneRollout with spec.emergency: it starts
// whatever the ControlPlanePolicy's windows and suspension say, so the right to create ControlPlaneRollouts
// is not enough. The shipped admission policy asks for the verb "emergency" on controlplanerollouts,
// cluster-wide (certrollout-emergency bound by a ClusterRoleBinding; a RoleBinding cannot grant it), and a
// true record of who asked; an ordinary ControlPlaneRollout needs neither.
func TestAnEmergencyControlPlaneRolloutNeedsTheEmergencyVerbClusterWide(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	installTenancy(t, cl)
	suffix := ns // cluster-scoped names, unique per run
	grantClusterWide(t, cl, "olga", "create-cp-rollouts",
		rbacv1.PolicyRule{APIGroups: []string{api.GroupVersion.Group}, Resources: []string{"controlplanerollouts"}, Verbs: []string{"create", "get", "delete"}})
	olga := as(t, "olga")
	ctx := context.Background()
	made := func(name string) {
		t.Cleanup(func() {
			_ = cl.Delete(context.Background(), &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
	}

	now := "now-" + suffix
	clustertest.Eventually(t, time.Minute, "the admission policy to refuse olga's emergency ControlPlaneRollout", func(ctx context.Context) (bool, error) {
		err := olga.Create(ctx, cpEmergency(now, "olga"))
		if err == nil {
			_ = cl.Delete(ctx, cpEmergency(now, "olga"))
			return false, nil
		}
		if !strings.Contains(err.Error(), `must be allowed the verb "emergency" on controlplanerollouts, cluster-wide (ClusterRole certrollout-emergency bound by a ClusterRoleBinding), and olga is not`) {
			return false, err
		}
		return true, nil
	})
	ordinary := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "in-the-window-" + suffix}}
	made(ordinary.Name)
	if err := olga.Create(ctx, ordinary); err != nil {
		t.Fatalf("olga's ordinary ControlPlaneRollout was refused: %v", err)
	}

	// certrollout-emergency bound in a namespace does not reach the cluster-scoped kind.
	grant(t, cl, ns, "olga", "certrollout-emergency")
	if err := olga.Create(ctx, cpEmergency(now, "olga")); err == nil || !strings.Contains(err.Error(), `the verb "emergency" on controlplanerollouts`) {
		made(now)
		t.Errorf("olga with certrollout-emergency bound in namespace %s only: %v; want the emergency refused", ns, err)
	}

	grantClusterWide(t, cl, "olga", "certrollout-emergency")
	made(now)
	clustertest.Eventually(t, time.Minute, "olga's emergency ControlPlaneRollout to be admitted with certrollout-emergency bound cluster-wide", func(ctx context.Context) (bool, error) {
		err := olga.Create(ctx, cpEmergency(now, "olga"))
		if err != nil && strings.Contains(err.Error(), `the verb "emergency"`) {
			return false, nil // the ClusterRoleBinding is not in the authorizer's cache yet
		}
		return err == nil, err
	})
	for _, requestedBy := range []string{"dave", ""} {
		name := "as-" + requestedBy + "x-" + suffix
		err := olga.Create(ctx, cpEmergency(name, requestedBy))
		if err == nil {
			made(name)
		}
		if err == nil || !strings.Contains(err.Error(), `it must be the creating user, "olga"`) {
			t.Errorf("olga creating an emergency ControlPlaneRollout requested by %q: %v; want it refused", requestedBy, err)
		}
	}
}
