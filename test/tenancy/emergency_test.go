package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

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
