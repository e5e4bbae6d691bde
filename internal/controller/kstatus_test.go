package controller

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/testgen"
)

// kubectlWait runs `kubectl wait --for=condition=<condition> <resource>` (certrollout/NAME,
// rolloutpolicy/NAME) in the test's namespace; condition may carry a value ("Ready=false").
func (e *env) kubectlWait(resource, condition string, timeout time.Duration) (string, error) {
	e.t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		e.t.Skip("kubectl is not installed: kubectl wait cannot be checked")
	}
	out, err := e.kubectl(timeout+30*time.Second, "wait", "--for=condition="+condition, resource, "--timeout="+timeout.String())
	return strings.TrimSpace(out), err
}

// GitOps tools and `kubectl wait` read a CertRollout's health from the kstatus conditions: Ready when it
// succeeded; Stalled, and never Ready, when it failed, for a restart and a CA cascade alike.
func TestKubectlWaitsForACertRolloutToBeReadyOrStalled(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	e.deploy(testgen.Deployment(e.ns, "a", 1, nil))
	e.waitAvailable("a")
	e.finishedBeforeKstatus("old")
	e.start()
	ok := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "ok"}, Spec: api.CertRolloutSpec{
		Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "a"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	bad := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "bad"}, Spec: api.CertRolloutSpec{
		Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "nope"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	badCascade := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "bad-cascade"}, Spec: api.CertRolloutSpec{
		Trigger: api.RolloutTrigger{Type: api.TriggerCARotated},
		Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "no-such-issuer"}, CAFingerprint: strings.Repeat("ab", 32)},
	}}
	for _, ro := range []*api.CertRollout{ok, bad, badCascade} {
		if err := e.crClient().Create(ctx, ro); err != nil {
			t.Fatal(err)
		}
	}

	if out, err := e.kubectlWait("certrollout/ok", api.ConditionReady, 2*time.Minute); err != nil {
		t.Fatalf("kubectl wait --for=condition=Ready on the rollout that succeeds: %v\n%s", err, out)
	}
	for name, reason := range map[string]string{"bad": api.ReasonInvalid, "bad-cascade": api.ReasonIssuerNotFound} {
		if out, err := e.kubectlWait("certrollout/"+name, api.ConditionStalled, time.Minute); err != nil {
			t.Fatalf("kubectl wait --for=condition=Stalled on the failed rollout %s: %v\n%s", name, err, out)
		}
		if out, err := e.kubectlWait("certrollout/"+name, api.ConditionReady, 5*time.Second); err == nil {
			t.Errorf("kubectl wait --for=condition=Ready on the failed rollout %s succeeded: %s", name, out)
		}
		e.checkKstatus(name, metav1.ConditionFalse, reason)
	}
	e.checkKstatus("ok", metav1.ConditionTrue, api.ReasonSucceeded)
	if out, err := e.kubectlWait("certrollout/old", api.ConditionReady, time.Minute); err != nil {
		t.Fatalf("kubectl wait --for=condition=Ready on a rollout that succeeded before the kstatus conditions existed: %v\n%s", err, out)
	}
	e.checkKstatus("old", metav1.ConditionTrue, api.ReasonSucceeded)
}

// finishedBeforeKstatus stores a CertRollout as a controller before the kstatus conditions left a
// rollout that succeeded: Complete only.
func (e *env) finishedBeforeKstatus(name string) {
	e.t.Helper()
	ctx := context.Background()
	ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: api.CertRolloutSpec{
		Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "a"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	if err := e.crClient().Create(ctx, ro); err != nil {
		e.t.Fatal(err)
	}
	done := metav1.Now()
	ro.Status = api.CertRolloutStatus{Phase: api.PhaseSucceeded, Message: "1 target(s) restarted", Progress: "1/1 restarted", CompletionTime: &done,
		Conditions: []metav1.Condition{{Type: api.ConditionComplete, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "1 target(s) restarted", LastTransitionTime: done}}}
	if err := e.crClient().Status().Update(ctx, ro); err != nil {
		e.t.Fatal(err)
	}
}

// checkKstatus asserts the stored CertRollout's Ready condition, that it observed the object's
// generation, and that Reconciling is gone and Stalled is set only when it failed.
func (e *env) checkKstatus(name string, ready metav1.ConditionStatus, reason string) {
	e.t.Helper()
	var ro api.CertRollout
	if err := e.crClient().Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &ro); err != nil {
		e.t.Fatal(err)
	}
	c := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionReady)
	if c == nil || c.Status != ready || c.Reason != reason || c.ObservedGeneration != ro.Generation {
		e.t.Errorf("%s: Ready %+v, want %s with reason %s at generation %d", name, c, ready, reason, ro.Generation)
	}
	if apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionReconciling) != nil {
		e.t.Errorf("%s: a finished rollout is still Reconciling: %+v", name, ro.Status.Conditions)
	}
	stalled := apimeta.IsStatusConditionTrue(ro.Status.Conditions, api.ConditionStalled)
	if stalled != (ready == metav1.ConditionFalse) {
		e.t.Errorf("%s: Stalled %v with Ready %s: %+v", name, stalled, ready, ro.Status.Conditions)
	}
}
