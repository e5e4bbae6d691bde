package controller

import (
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestTheObjectCollectorReportsRolloutsCascadesDeadlinesAndInvalidPolicies(t *testing.T) {
	scheme, err := newScheme()
	if err != nil {
		t.Fatal(err)
	}
	deadline := metav1.NewTime(time.Unix(1_800_000_000, 0))
	rollout := func(ns, name string, phase api.RolloutPhase, mut ...func(*api.CertRollout)) client.Object {
		ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: api.CertRolloutStatus{Phase: phase}}
		for _, m := range mut {
			m(ro)
		}
		return ro
	}
	cascade := func(ro *api.CertRollout) {
		ro.Spec.Cascade = &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}}
		ro.Status.Certificates = []api.LeafStatus{{State: api.LeafIssued}, {State: api.LeafIssued}, {State: api.LeafPending}}
	}
	objs := []client.Object{
		rollout("shop", "a", api.PhaseSucceeded),
		rollout("shop", "b", api.PhaseSucceeded),
		rollout("shop", "c", api.PhaseWaitingForWindow, func(ro *api.CertRollout) { ro.Status.ExpiryDeadline = &deadline }),
		rollout("shop", "d", api.PhaseRestarting, func(ro *api.CertRollout) { ro.Status.ExpiryDeadline = &deadline }), // started: no deadline series
		rollout("pki", "ca", api.PhaseReissuing, cascade),
		rollout("pki", "done", api.PhaseSucceeded, cascade), // finished: its leaves are not reported
		&api.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "broken"},
			Status:     api.RolloutPolicyStatus{Conditions: []metav1.Condition{{Type: api.ConditionStalled, Status: metav1.ConditionTrue, Reason: "InvalidSchedule"}}},
		},
		&api.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fine"},
			Status:     api.RolloutPolicyStatus{Conditions: []metav1.Condition{{Type: api.ConditionStalled, Status: metav1.ConditionFalse, Reason: "Valid"}}},
		},
	}
	c := &objectCollector{}
	c.use(fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP certrollout_cascade_certificates Leaf certificates of unfinished CA cascades, by state.
# TYPE certrollout_cascade_certificates gauge
certrollout_cascade_certificates{name="ca",namespace="pki",state="Issued"} 2
certrollout_cascade_certificates{name="ca",namespace="pki",state="Pending"} 1
# HELP certrollout_rollout_deadline_timestamp_seconds For a CertRollout still waiting to start under a policy with an expiryDeadline: when the deadline lets it start whatever the windows (Unix time).
# TYPE certrollout_rollout_deadline_timestamp_seconds gauge
certrollout_rollout_deadline_timestamp_seconds{name="c",namespace="shop"} 1.8e+09
# HELP certrollout_rolloutpolicy_invalid 1 for a RolloutPolicy that is invalid (its Stalled condition is True), with the reason.
# TYPE certrollout_rolloutpolicy_invalid gauge
certrollout_rolloutpolicy_invalid{name="broken",namespace="shop",reason="InvalidSchedule"} 1
# HELP certrollout_rollouts CertRollouts that exist, by namespace, type (restart or cascade) and phase.
# TYPE certrollout_rollouts gauge
certrollout_rollouts{namespace="pki",phase="Reissuing",type="cascade"} 1
certrollout_rollouts{namespace="pki",phase="Succeeded",type="cascade"} 1
certrollout_rollouts{namespace="shop",phase="Restarting",type="restart"} 1
certrollout_rollouts{namespace="shop",phase="Succeeded",type="restart"} 2
certrollout_rollouts{namespace="shop",phase="WaitingForWindow",type="restart"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
