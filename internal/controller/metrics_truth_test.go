package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// touch makes the controller reconcile the Deployment again without changing what it decides from (it
// watches annotations), and waits until a decision with the labels has been counted.
func (e *env) touch(name string, decision map[string]string) {
	e.t.Helper()
	before, _ := sample(e.t, "certrollout_decisions_total", decision)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.certrollout.io/touched":"%d"}}}`, time.Now().UnixNano())
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
	clustertest.Eventually(e.t, time.Minute, "Deployment "+name+" to be reconciled again", func(context.Context) (bool, error) {
		got, _ := sample(e.t, "certrollout_decisions_total", decision)
		return got > before, nil
	})
}

// A Deployment that did not opt in has no ledger: after a renewal, only the controller's memory knows what
// its old pods run on. The running expiry must stay the old certificate's through later reconciles of the
// same certificates, or the headline alert could never fire for such workloads.
func TestAWorkloadNotOptedInReportsTheOldExpiryItsPodsRunOnThroughLaterReconciles(t *testing.T) {
	e := newEnv(t, testOptions())
	now := time.Now()
	ca := testgen.CA(t, "root")
	oldLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Hour), now.Add(3*24*time.Hour)))
	e.tlsSecret("api-tls", oldLeaf, ca, nil)
	e.deploy(deployment(e.ns, "web", false, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")
	e.start()
	web := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "web"}
	oldExpiry := float64(oldLeaf.X509.NotAfter.Unix())
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web, oldExpiry)

	newLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Minute), now.Add(90*24*time.Hour)))
	e.tlsSecret("api-tls", newLeaf, ca, nil)
	waitSample(t, "certrollout_workload_certificate_expiry_timestamp_seconds", web, float64(newLeaf.X509.NotAfter.Unix()))
	waitSample(t, "certrollout_workload_stale_pods", web, 2)
	notEnabled := map[string]string{"action": "None", "reason": api.ReasonNotEnabled}
	for range 2 {
		e.touch("web", notEnabled)
		if got, ok := sample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web); !ok || got != oldExpiry {
			t.Fatalf("after another reconcile the running expiry is %g (present: %v), want the old certificate's %g", got, ok, oldExpiry)
		}
	}
	if h := e.get("web").Annotations[api.AnnotationCertificateHash]; h != "" {
		t.Fatalf("a workload that did not opt in got a ledger %q: the test no longer tests the memory", h)
	}
}

// waitFinished waits until the CertRollout has finished and returns it.
func (e *env) waitFinished(name string) *api.CertRollout {
	e.t.Helper()
	ro := &api.CertRollout{}
	clustertest.Eventually(e.t, 2*time.Minute, "CertRollout "+name+" to finish", func(ctx context.Context) (bool, error) {
		if err := e.crClient().Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, ro); err != nil {
			return false, err
		}
		return ro.Status.Phase.Finished(), nil
	})
	return ro
}

// A policy restarts a renewed workload through a CertRollout: renewal_to_restart times that restart as it
// times a direct one, the finished rollout is counted by type and result and its duration observed. A
// Manual rollout of the same workload, on the certificates it already runs, restarts it without a renewal:
// it is counted, not timed as one.
func TestAPolicysRestartIsTimedFromTheRenewalAndItsRolloutCountedWhenItFinishes(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	e.tlsSecret("gov-tls", testgen.Leaf(t, ca, "gov"), ca, nil)
	gov := deployment(e.ns, "gov", false, testgen.WithSecretVolume("gov-tls"))
	gov.Labels = map[string]string{"role": "gov"}
	e.deploy(gov)
	e.waitAvailable("gov")
	e.createPolicy("gov", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "gov"}}})
	e.start()
	web := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "gov"}
	waitSample(t, "certrollout_workload_stale_pods", web, 0)
	renewed, _ := sample(t, "certrollout_renewal_to_restart_seconds", nil)
	succeeded := map[string]string{"type": "restart", "result": string(api.PhaseSucceeded)}
	durations, _ := sample(t, "certrollout_rollout_duration_seconds", succeeded)

	e.tlsSecret("gov-tls", testgen.Leaf(t, ca, "gov"), ca, nil)
	ro := e.waitRollout(2*time.Minute, "the policy's CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded || ro.Spec.Trigger.Type != api.TriggerCertificateRenewed {
		t.Fatalf("rollout %s (%s): %s", ro.Status.Phase, ro.Spec.Trigger.Type, ro.Status.Message)
	}
	if got, _ := sample(t, "certrollout_renewal_to_restart_seconds", nil); got != renewed+1 {
		t.Errorf("renewal_to_restart observed %g times for the rollout's restart after a renewal, want once", got-renewed)
	}
	waitSample(t, "certrollout_rollouts_total", map[string]string{"namespace": e.ns, "type": "restart", "result": string(api.PhaseSucceeded)}, 1)
	waitSample(t, "certrollout_rollout_duration_seconds", succeeded, durations+1)

	before := e.rollouts("gov")
	manual := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "by-hand"}, Spec: api.CertRolloutSpec{
		Policy: "gov", Targets: []api.WorkloadReference{{Kind: api.KindDeployment, Name: "gov"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	if err := e.crClient().Create(context.Background(), manual); err != nil {
		t.Fatal(err)
	}
	if ro := e.waitFinished("by-hand"); ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("manual rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	if got := e.rollouts("gov"); got != before+1 {
		t.Fatalf("the manual rollout made %d ReplicaSets, want 1: it must restart for this test to mean anything", got-before)
	}
	waitSample(t, "certrollout_rollouts_total", map[string]string{"namespace": e.ns, "type": "restart", "result": string(api.PhaseSucceeded)}, 2)
	if got, _ := sample(t, "certrollout_renewal_to_restart_seconds", nil); got != renewed+1 {
		t.Errorf("renewal_to_restart observed a restart no renewal caused (%g observations, want 1)", got-renewed)
	}
}
