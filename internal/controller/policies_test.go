package controller

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// kubectlWait is `kubectl wait --for=<condition> rolloutpolicy/<name>`, failing the test when it times out.
func (e *env) kubectlWait(condition, name string) {
	e.t.Helper()
	if _, err := e.kubectl(2*time.Minute, "wait", "--for="+condition, "rolloutpolicy/"+name, "--timeout=90s"); err != nil {
		e.t.Fatal(err)
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

	e.kubectlWait("condition=Ready", "web")
	e.kubectlWait("condition=Stalled", "broken")
	e.kubectlWait("condition=Ready=false", "broken")
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
	e.kubectlWait("condition=Ready", "web")

	// Fixing the broken policy clears Stalled, and every condition speaks of the new generation.
	broken := e.policyStatus("broken")
	broken.Spec.Windows[0].Schedule = "0 2 * * *"
	if err := e.crClient().Update(ctx, &broken); err != nil {
		t.Fatal(err)
	}
	e.kubectlWait("condition=Ready", "broken")
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
