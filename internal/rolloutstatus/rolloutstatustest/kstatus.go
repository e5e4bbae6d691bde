// Package rolloutstatustest checks, in the state machines' tests, the kstatus conditions package
// rolloutstatus sets, so both machines' tables assert the same contract.
package rolloutstatustest

import (
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// CheckKstatus fails t unless st carries the kstatus conditions of its phase, each observing generation:
// in progress, Reconciling=True and Ready=False with the phase as reason and no Stalled; Succeeded,
// Ready=True and neither Reconciling nor Stalled; Failed, Ready=False and Stalled=True with the reason of
// the Failed condition, and no Reconciling.
func CheckKstatus(t *testing.T, generation int64, st api.CertRolloutStatus) {
	t.Helper()
	want := map[string]*metav1.Condition{}
	switch st.Phase {
	case api.PhaseSucceeded:
		want[api.ConditionReady] = &metav1.Condition{Status: metav1.ConditionTrue, Reason: "Succeeded"}
		want[api.ConditionReconciling], want[api.ConditionStalled] = nil, nil
	case api.PhaseFailed:
		failed := apimeta.FindStatusCondition(st.Conditions, api.ConditionFailed)
		if failed == nil || failed.Status != metav1.ConditionTrue {
			t.Fatalf("a Failed rollout without the condition Failed=True: %+v", st.Conditions)
		}
		want[api.ConditionReady] = &metav1.Condition{Status: metav1.ConditionFalse, Reason: failed.Reason}
		want[api.ConditionStalled] = &metav1.Condition{Status: metav1.ConditionTrue, Reason: failed.Reason}
		want[api.ConditionReconciling] = nil
	default:
		want[api.ConditionReady] = &metav1.Condition{Status: metav1.ConditionFalse, Reason: string(st.Phase)}
		want[api.ConditionReconciling] = &metav1.Condition{Status: metav1.ConditionTrue, Reason: string(st.Phase)}
		want[api.ConditionStalled] = nil
	}
	for typ, w := range want {
		got := apimeta.FindStatusCondition(st.Conditions, typ)
		switch {
		case w == nil && got != nil:
			t.Errorf("phase %s: condition %s is set (%s, %s), want it absent", st.Phase, typ, got.Status, got.Reason)
		case w == nil:
		case got == nil:
			t.Errorf("phase %s: no condition %s, want %s with reason %s", st.Phase, typ, w.Status, w.Reason)
		case got.Status != w.Status || got.Reason != w.Reason || got.ObservedGeneration != generation || got.Message != st.Message:
			t.Errorf("phase %s: condition %s is %s/%s (generation %d, message %q), want %s/%s (generation %d, message %q)",
				st.Phase, typ, got.Status, got.Reason, got.ObservedGeneration, got.Message, w.Status, w.Reason, generation, st.Message)
		}
	}
}
