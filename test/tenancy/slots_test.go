package tenancy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// slowPolicy holds each rollout as long as the API allows: a target that never becomes ready keeps it
// Restarting for the whole health timeout.
func slowPolicy(ns string) *api.RolloutPolicy {
	return &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"}, Spec: api.RolloutPolicySpec{
		Selector:      metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}},
		HealthTimeout: dur("24h"),
	}}
}

// tenantHoldsSlots makes namespace ns (the tenant's) start n CertRollouts that never finish, and waits
// until held of them run.
func tenantHoldsSlots(t *testing.T, cl client.Client, ns string, n, held int) {
	t.Helper()
	create(t, cl, stuck(ns, "stuck"), slowPolicy(ns))
	for i := range n {
		create(t, cl, manual(ns, fmt.Sprintf("hold-%d", i), "slow", "stuck"))
	}
	clustertest.Eventually(t, time.Minute, fmt.Sprintf("%d of the tenant's rollouts to be Restarting", held), func(ctx context.Context) (bool, error) {
		var list api.CertRolloutList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		running := 0
		for _, ro := range list.Items {
			if ro.Status.Phase == api.PhaseRestarting {
				running++
			}
		}
		if running != held {
			return false, fmt.Errorf("%d Restarting", running)
		}
		return true, nil
	})
}

// A tenant who creates more never-ending rollouts than the cluster allows at once holds only its
// namespace's share: another namespace's rollout starts and finishes meanwhile.
func TestOneTenantCannotHoldEveryRolloutSlot(t *testing.T) {
	cl := admin(t)
	tenant, victim := clustertest.Namespace(t), clustertest.Namespace(t)
	o := options(tenant, victim)
	o.MaxConcurrentRollouts, o.MaxConcurrentRolloutsPerNamespace = 3, 2
	startController(t, o)
	tenantHoldsSlots(t, cl, tenant, 4, 2)
	ro := waitPhase(t, cl, 20*time.Second, tenant, "hold-3", "to wait for its namespace's share", phaseIs(api.PhasePending))
	if !strings.Contains(ro.Status.Message, "--max-concurrent-rollouts-per-namespace") {
		t.Errorf("the tenant's third rollout waits with %q; want it to name the per-namespace limit", ro.Status.Message)
	}

	create(t, cl, web(victim, "web"))
	waitAvailable(t, cl, victim, "web")
	create(t, cl, manual(victim, "fix", "", "web"))
	waitPhase(t, cl, 2*time.Minute, victim, "fix", "to succeed beside the tenant's rollouts", phaseIs(api.PhaseSucceeded))
}

// When other namespaces' rollouts fill every slot, a rollout whose certificate expires within its
// policy's expiryDeadline starts anyway; one without a deadline waits its turn.
func TestADeadlineRolloutNeverWaitsBehindOtherNamespaces(t *testing.T) {
	cl := admin(t)
	tenant, victim := clustertest.Namespace(t), clustertest.Namespace(t)
	o := options(tenant, victim)
	o.MaxConcurrentRollouts, o.MaxConcurrentRolloutsPerNamespace = 2, 2
	startController(t, o)
	tenantHoldsSlots(t, cl, tenant, 2, 2)

	create(t, cl, web(victim, "calm"), web(victim, "expiring"))
	waitAvailable(t, cl, victim, "calm")
	waitAvailable(t, cl, victim, "expiring")
	// The ledger says expiring's pods run on a certificate that expires in an hour.
	ctx := context.Background()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"0123abcd",%q:%q}}}`, api.AnnotationCertificateHash,
		api.AnnotationCertificateNotAfter, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if err := cl.Patch(ctx, web(victim, "expiring"), client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	deadline := &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: victim, Name: "urgent"}, Spec: api.RolloutPolicySpec{
		Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}},
		ExpiryDeadline: &metav1.Duration{Duration: 72 * time.Hour},
	}}
	create(t, cl, deadline, manual(victim, "calm", "", "calm"), manual(victim, "urgent", "urgent", "expiring"))
	waitPhase(t, cl, 2*time.Minute, victim, "urgent", "to succeed although every slot is taken", phaseIs(api.PhaseSucceeded))
	ro := waitPhase(t, cl, 10*time.Second, victim, "calm", "to wait for a slot", phaseIs(api.PhasePending))
	if !strings.Contains(ro.Status.Message, "--max-concurrent-rollouts allows") {
		t.Errorf("the rollout without a deadline waits with %q; want it to name the global limit", ro.Status.Message)
	}
	clustertest.Eventually(t, 30*time.Second, "a DeadlineOverride Event naming the running rollouts",
		hasEvent(cl, victim, "urgent", "Warning", "DeadlineOverride", "rollouts already running"))
}
