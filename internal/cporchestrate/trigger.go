package cporchestrate

import (
	"fmt"
	"slices"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/schedule"
)

// TriggerInput is what the ControlPlanePolicy's automatic trigger decides from.
type TriggerInput struct {
	Now      time.Time
	Policy   *api.ControlPlanePolicy
	Agents   []api.NodeCertificates
	Rollouts []api.ControlPlaneRollout
}

// TriggerDecision is the policy's new status and, when not empty, the trigger of a ControlPlaneRollout
// to create (the caller then names it in status.lastRollout).
type TriggerDecision struct {
	Status api.ControlPlanePolicyStatus
	Create api.ControlPlaneTrigger
}

// Trigger decides the policy's status (Valid, Blocked, dueNodes, nextWindow, lastRollout) and whether to
// create a rollout: with trigger Automatic and not suspended, when an agent reports a component serving
// an old certificate or a kubeadm file within renewBefore, and no rollout is unfinished. A failed newest
// rollout blocks creation until it is deleted or a newer one exists: a failure on a control plane is
// looked at, not retried in a loop.
func Trigger(in TriggerInput) TriggerDecision {
	p := in.Policy
	settings := Settings(&p.Spec)
	st := *p.Status.DeepCopy()
	st.ObservedGeneration = p.Generation
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: p.Generation, LastTransitionTime: metav1.Time{Time: in.Now}})
	}
	st.NextWindow = nil
	if windows, err := Windows(p.Spec.Windows); err != nil {
		set(api.ConditionValid, metav1.ConditionFalse, api.ReasonInvalidPolicy, err.Error())
	} else {
		set(api.ConditionValid, metav1.ConditionTrue, api.ReasonValid, "the windows parse")
		if next := schedule.At(windows, in.Now).NextOpen; !next.IsZero() {
			st.NextWindow = &metav1.Time{Time: next}
		}
	}
	newest, unfinished := newestRollout(in.Rollouts)
	st.LastRollout = nil
	if newest != nil {
		st.LastRollout = &api.RolloutReference{Name: newest.Name, Phase: newest.Status.Phase}
	}
	blocked := newest != nil && newest.Status.Phase == api.PhaseFailed
	if blocked {
		set(api.ConditionBlocked, metav1.ConditionTrue, api.ReasonPreviousRolloutFailed,
			fmt.Sprintf("ControlPlaneRollout %s failed (%s): no rollout starts by itself until it is deleted or a newer one is created", newest.Name, newest.Status.Message))
	} else {
		set(api.ConditionBlocked, metav1.ConditionFalse, api.ReasonNotBlocked, "no failed rollout blocks automatic ones")
	}
	due, trigger := dueNodes(in.Agents, settings, newest, in.Now)
	st.DueNodes = due
	d := TriggerDecision{Status: st}
	if settings.Trigger == api.ControlPlaneTriggerAutomatic && !p.Spec.Suspend && !blocked && !unfinished {
		d.Create = trigger
	}
	return d
}

// dueNodes are the nodes whose agents report a rollout is due, by name, and the trigger for a new one:
// ServingOld when a node has a component serving an old certificate, else Expiring (only with renewal
// on: a rollout that renews nothing cannot take a file out of renewBefore, and would be created again
// and again). Only a report made after the newest rollout finished triggers: one from before it would
// start the same rollout twice.
func dueNodes(agents []api.NodeCertificates, settings api.ControlPlanePolicySpec, newest *api.ControlPlaneRollout, now time.Time) ([]string, api.ControlPlaneTrigger) {
	var finished time.Time
	if newest != nil && newest.Status.CompletionTime != nil {
		finished = newest.Status.CompletionTime.Time
	}
	var due []string
	var trigger api.ControlPlaneTrigger
	for i := range agents {
		nc := &agents[i]
		why := Due(nc, settings.ComponentOrder, settings.Renewal.RenewBefore.Duration, now)
		if why == api.ControlPlaneTriggerExpiring && !*settings.Renewal.Enabled {
			why = ""
		}
		if why == "" {
			continue
		}
		due = append(due, nc.Name)
		if nc.Status.ObservedAt != nil && nc.Status.ObservedAt.After(finished) && trigger != api.ControlPlaneTriggerServesOld {
			trigger = why
		}
	}
	slices.Sort(due)
	return due, trigger
}

// newestRollout is the newest rollout (by creation, then name), and whether any is unfinished.
func newestRollout(items []api.ControlPlaneRollout) (*api.ControlPlaneRollout, bool) {
	var newest *api.ControlPlaneRollout
	unfinished := false
	for i := range items {
		ro := &items[i]
		if !ro.Status.Phase.Finished() && ro.DeletionTimestamp == nil {
			unfinished = true
		}
		if newest == nil || newest.CreationTimestamp.Before(&ro.CreationTimestamp) ||
			(newest.CreationTimestamp.Equal(&ro.CreationTimestamp) && newest.Name < ro.Name) {
			newest = ro
		}
	}
	return newest, unfinished
}
