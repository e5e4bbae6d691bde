package controller

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// kubectl runs kubectl against the test cluster in the test's namespace and returns its output.
func (e *env) kubectl(timeout time.Duration, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", e.c.Kubeconfig, "-n", e.ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// waitPolicy is `kubectl wait --for=condition=<condition> rolloutpolicy/<name>`, failing the test when
// it times out.
func (e *env) waitPolicy(condition, name string) {
	e.t.Helper()
	if out, err := e.kubectlWait("rolloutpolicy/"+name, condition, 90*time.Second); err != nil {
		e.t.Fatalf("kubectl wait --for=condition=%s rolloutpolicy/%s: %v: %s", condition, name, err, out)
	}
}

func TestKubectlWaitsForAPolicyToBeReadyAndSeesAnInvalidOneStalled(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	ca := e.governedWeb()
	e.waitAvailable("web")
	e.createPolicy("web", api.RolloutPolicySpec{Selector: roleWeb})
	e.createPolicy("broken", api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}},
		Windows:  []api.MaintenanceWindow{{Schedule: "every night", Duration: metav1.Duration{Duration: time.Hour}}},
	})
	e.start()

	e.waitPolicy("Ready", "web")
	e.waitPolicy("Stalled", "broken")
	e.waitPolicy("Ready=false", "broken")
	if out, err := e.kubectl(time.Minute, "get", "rolloutpolicy/web", "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].status}`); err != nil || out != "" {
		t.Errorf("web has a Stalled condition %q (%v)", out, err)
	}

	// A renewal rolls web through a CertRollout; the policy is Ready again once web runs on it.
	e.waitLedger("web", "")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	ro := e.waitRollout(2*time.Minute, "the CertRollout to succeed", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	e.waitPolicy("Ready", "web")

	// Fixing the broken policy clears Stalled, and every condition speaks of the new generation.
	broken := e.policyStatus("broken")
	broken.Spec.Windows[0].Schedule = "0 2 * * *"
	if err := e.crClient().Update(ctx, &broken); err != nil {
		t.Fatal(err)
	}
	e.waitPolicy("Ready", "broken")
	clustertest.Eventually(t, time.Minute, "every condition of the fixed policy at its generation, without Stalled", func(context.Context) (bool, error) {
		p := e.policyStatus("broken")
		if apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionStalled) != nil {
			return false, fmt.Errorf("still Stalled: %+v", p.Status.Conditions)
		}
		for _, c := range p.Status.Conditions {
			if c.ObservedGeneration != p.Generation {
				return false, fmt.Errorf("%s observed generation %d, the policy is at %d", c.Type, c.ObservedGeneration, p.Generation)
			}
		}
		return p.Generation > 1, nil
	})
}

// OpsChain's workers may need hours to finish a job; a drain that gives up after one hour would cut them
// off while Kubernetes still lets them run. The policy stays valid and says so, once.
func TestAPolicyWarnsWhenAQuiescedWorkerMayOutlastItsDrain(t *testing.T) {
	e := newEnv(t, testOptions())
	e.governedWeb()
	workers := e.workers("workers", 1, 0)
	workers.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To(int64(7200))
	e.deploy(workers)
	e.createPolicy("web", api.RolloutPolicySpec{Selector: roleWeb,
		Quiesce: []api.QuiesceTarget{{Kind: api.KindDeployment, Name: "workers", DrainTimeout: metav1.Duration{Duration: time.Hour}}}})
	e.start()
	e.waitPolicy("Ready", "web")
	p := e.policyStatus("web")
	c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionValid)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != api.ReasonDrainShorterThanGrace ||
		!strings.Contains(c.Message, "Deployment workers lets its pods take up to 2h0m0s to stop") || !strings.Contains(c.Message, "drainTimeout 1h0m0s") {
		t.Fatalf("Valid %+v: want True, DrainShorterThanGrace, naming the workers and both durations", c)
	}
	clustertest.Eventually(t, time.Minute, "a DrainShorterThanGrace Event", e.hasEvent("web", corev1.EventTypeWarning, api.ReasonDrainShorterThanGrace))
}
