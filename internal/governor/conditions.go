package governor

import (
	"fmt"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// writeConditions sets the policy's own conditions (Valid, Pending, LastRolloutSucceeded) and the kstatus
// ones derived from them:
//   - Stalled=True when nothing moves without a person: the policy is invalid (InvalidPolicy), or the
//     rollout for the certificates the due workloads need already finished and is not retried on its own
//     (LastRolloutFailed). Absent otherwise.
//   - Reconciling=True while the policy makes progress on its own: a rollout of the policy is created or
//     runs (RolloutInProgress, whatever its phase, waiting for a window included), or stale workloads wait
//     for their settle period, cooldown or a cascade (Waiting). Absent otherwise: a suspended policy, or
//     stale workloads that are blocked (a paused Deployment: their own Events say why), do not progress.
//   - Ready=True when the policy is valid and no workload it governs waits for a restart (Pending=False),
//     so `kubectl wait --for=condition=Ready` returns once every governed workload runs on current
//     certificates. False otherwise, with the reason of Stalled, else of Pending.
//
// All carry the policy's generation.
func (d *decider) writeConditions() {
	in, g := d.in, d.g
	valid := metav1.Condition{Type: api.ConditionValid, Status: metav1.ConditionTrue, Reason: api.ReasonValid, Message: "the policy can be followed"}
	if w := in.Parsed.Warnings; in.Parsed.Invalid == "" && len(w) > 0 {
		// Still valid: the rollouts run, but a drain may end before the workers do.
		valid.Reason, valid.Message = api.ReasonDrainShorterThanGrace, "the policy can be followed, but "+strings.Join(w, "; ")
		if c := apimeta.FindStatusCondition(in.Policy.Status.Conditions, api.ConditionValid); c == nil || c.Message != valid.Message {
			d.events = append(d.events, Event{Warning: true, Reason: api.ReasonDrainShorterThanGrace, Action: "Validate", Note: valid.Message})
		}
	}
	if in.Parsed.Invalid != "" {
		valid = metav1.Condition{Type: api.ConditionValid, Status: metav1.ConditionFalse, Reason: api.ReasonInvalidPolicy, Message: in.Parsed.Invalid}
		if c := apimeta.FindStatusCondition(in.Policy.Status.Conditions, api.ConditionValid); c == nil || c.Message != in.Parsed.Invalid {
			d.events = append(d.events, Event{Warning: true, Reason: api.ReasonInvalidPolicy, Action: "Validate", Note: in.Parsed.Invalid})
		}
	}
	d.set(valid)
	d.set(d.pending)
	if g.lastFinished != nil {
		d.set(lastResult(g.lastFinished))
	}

	var stalled *metav1.Condition
	switch {
	case in.Parsed.Invalid != "":
		stalled = &metav1.Condition{Reason: api.ReasonInvalidPolicy, Message: in.Parsed.Invalid}
	case d.stalled:
		stalled = &metav1.Condition{Reason: d.pending.Reason, Message: d.pending.Message}
	}
	if stalled != nil {
		d.set(metav1.Condition{Type: api.ConditionStalled, Status: metav1.ConditionTrue, Reason: stalled.Reason, Message: stalled.Message})
	} else {
		d.unset(api.ConditionStalled)
	}

	if d.pending.Reason == api.ReasonRolloutInProgress || (d.pending.Reason == api.ReasonWaiting && g.waits > 0) {
		d.set(metav1.Condition{Type: api.ConditionReconciling, Status: metav1.ConditionTrue, Reason: d.pending.Reason, Message: d.pending.Message})
	} else {
		d.unset(api.ConditionReconciling)
	}

	ready := metav1.Condition{Type: api.ConditionReady, Status: metav1.ConditionTrue, Reason: api.ReasonUpToDate,
		Message: "the policy is valid and every workload it governs runs on current certificates"}
	switch {
	case stalled != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, stalled.Reason, stalled.Message
	case d.pending.Status == metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, d.pending.Reason, d.pending.Message
	}
	d.set(ready)
}

// lastResult is LastRolloutSucceeded for the policy's most recent finished rollout.
func lastResult(ro *api.CertRollout) metav1.Condition {
	c := metav1.Condition{Type: api.ConditionLastRolloutSucceeded, Status: metav1.ConditionTrue, Reason: api.ReasonSucceeded,
		Message: fmt.Sprintf("CertRollout %s: %s", ro.Name, ro.Status.Message)}
	if ro.Status.Phase == api.PhaseFailed {
		c.Status, c.Reason = metav1.ConditionFalse, api.ReasonFailed
		if f := apimeta.FindStatusCondition(ro.Status.Conditions, api.ConditionFailed); f != nil && f.Reason != "" {
			c.Reason = f.Reason
		}
	}
	return c
}
