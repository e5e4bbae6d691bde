package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// A workload annotated certrollout.io/enabled: "false" is neither restarted by a CertRollout that names
// it nor scaled down by a policy that lists it to quiesce: creating certrollout.io objects does not
// amount to restarting and scaling anything in the namespace.
func TestAnOptedOutWorkloadIsNeitherRestartedNorQuiesced(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	startController(t, options(ns))
	bank := web(ns, "bank")
	bank.Annotations = map[string]string{api.AnnotationEnabled: "false"}
	ledger := workers(ns, "ledger", 2, 0)
	ledger.Annotations = map[string]string{api.AnnotationEnabled: "false"}
	create(t, cl, bank, ledger, web(ns, "web"))
	for _, n := range []string{"bank", "ledger", "web"} {
		waitAvailable(t, cl, ns, n)
	}
	var before appsv1.Deployment
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "bank"}, &before); err != nil {
		t.Fatal(err)
	}

	create(t, cl, manual(ns, "restart-bank", "", "bank"))
	ro := waitPhase(t, cl, time.Minute, ns, "restart-bank", "to fail", phaseIs(api.PhaseFailed, api.PhaseSucceeded))
	if ro.Status.Phase != api.PhaseFailed || !strings.Contains(ro.Status.Message, "opted out") {
		t.Errorf("a rollout of an opted-out workload ended %s: %s; want Failed saying it is opted out", ro.Status.Phase, ro.Status.Message)
	}

	create(t, cl, &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stop-ledger"}, Spec: api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}},
		Quiesce:  []api.QuiesceTarget{{Kind: "Deployment", Name: "ledger"}},
	}}, manual(ns, "via-quiesce", "stop-ledger", "web"))
	// The policy is invalid, so the rollout waits (no deadline); the policy says why.
	clustertest.Eventually(t, time.Minute, "the policy to be Valid=False naming the opted-out workload", func(ctx context.Context) (bool, error) {
		var p api.RolloutPolicy
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stop-ledger"}, &p); err != nil {
			return false, err
		}
		c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionValid)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "Deployment ledger is opted out"), nil
	})
	time.Sleep(2 * time.Second)
	if got, _ := replicas(t, cl, ns, "ledger"); got != 2 {
		t.Errorf("the opted-out ledger was scaled to %d replicas", got)
	}
	var after appsv1.Deployment
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "bank"}, &after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("the opted-out bank was changed: generation %d → %d", before.Generation, after.Generation)
	}
}
