package cporchestrate

import (
	"fmt"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
)

// The quiesce follows a CertRollout's (package orchestrate): the count a workload had is stored in the
// rollout's status before it is scaled down, and written on the workload with the scale-down in one
// patch; every workload is stopped (its pods gone) before the first node's turn; a workload that does
// not drain in time aborts the rollout, which then restores what it stopped. A control plane has no
// "continue anyway": the runbook stops the workers because they must not run through the restarts.

func (s *stepper) quiesce() {
	settled := true
	for i := range s.Status.Quiesced {
		q := &s.Status.Quiesced[i]
		switch q.State {
		case api.QuiescePending:
			settled = s.scaleDown(i, q) && settled
		case api.QuiesceDraining:
			settled = s.drain(q) && settled
		default: // drained, timed out or restored
		}
	}
	if !settled {
		s.Status.Message = "quiescing: " + s.quiesceSummary()
		return
	}
	for _, q := range s.Status.Quiesced {
		if q.State == api.QuiesceDrainTimedOut {
			msg := fmt.Sprintf("aborted: %s %s/%s did not drain in time; no node was touched", q.Kind, q.Namespace, q.Name)
			s.SetCondition(api.ConditionFailed, metav1.ConditionTrue, api.ReasonDrainTimedOut, msg)
			s.Status.Phase, s.Status.Message = api.PhaseRestoring, msg
			s.Wait(time.Second)
			return
		}
	}
	s.Status.Phase, s.Status.Message = api.PhaseRestarting, "restarting"
	s.Wait(time.Second)
}

func keyOf(q *api.ControlPlaneQuiescedWorkload) Key { return Key{q.Kind, q.Namespace, q.Name} }

// scaleDown stops a pending workload of the list and reports whether it is settled.
func (s *stepper) scaleDown(i int, q *api.ControlPlaneQuiescedWorkload) bool {
	k := keyOf(q)
	w := s.in.Workloads[k]
	switch {
	case !w.Exists:
		q.State, q.Message, q.DrainedAt = api.QuiesceDrained, "does not exist; nothing to quiesce", s.Now()
		return true
	case w.QuiescedBy == s.me:
		// Scaled down by this rollout before a crash: the annotation holds the count too.
		q.OriginalReplicas = orchestrate.RecordedReplicas(w.QuiescedReplicas, q.OriginalReplicas)
	case w.QuiescedBy != "":
		msg := "is quiesced by " + w.QuiescedBy + "; waiting for it to be restored"
		if q.Message != msg {
			s.Event(rolloutstatus.Warning, api.ReasonQuiesceConflict, "%s %s", k, msg)
		}
		q.Message = msg
		s.Wait(pollInterval)
		return false
	case !s.storedCount(i, w.Replicas):
		// The count goes into the stored status first; the status update wakes the next step.
		q.OriginalReplicas, q.Message = ptrTo(w.Replicas), "recording the replica count before scaling down"
		s.Wait(time.Second)
		return false
	default:
		s.actions = append(s.actions, Action{Type: ScaleDown, Key: k, Replicas: w.Replicas})
		s.Event(rolloutstatus.Normal, api.ReasonScaledDown, "Scaled %s from %d to 0 replicas", k, w.Replicas)
	}
	q.State, q.ScaledDownAt, q.Message = api.QuiesceDraining, s.Now(), ""
	s.Wait(pollInterval)
	return false
}

// storedCount reports whether the status as stored records replicas for the i-th workload.
func (s *stepper) storedCount(i int, replicas int32) bool {
	stored := s.in.Rollout.Status.Quiesced
	return i < len(stored) && stored[i].OriginalReplicas != nil && *stored[i].OriginalReplicas == replicas
}

func (s *stepper) drainTimeout(k Key) time.Duration {
	for _, q := range s.settings.Quiesce {
		if q.Kind == k.Kind && q.Namespace == k.Namespace && q.Name == k.Name && q.DrainTimeout.Duration > 0 {
			return q.DrainTimeout.Duration
		}
	}
	return api.DefaultDrainTimeout
}

// drain waits for a scaled-down workload's pods to go, up to its drain timeout; it reports whether it
// is settled.
func (s *stepper) drain(q *api.ControlPlaneQuiescedWorkload) bool {
	k := keyOf(q)
	w := s.in.Workloads[k]
	timeout := s.drainTimeout(k)
	switch {
	case !w.Exists || w.Pods == 0:
		q.State, q.DrainedAt, q.Message = api.QuiesceDrained, s.Now(), ""
		s.Event(rolloutstatus.Normal, api.ReasonDrained, "%s has no pods left", k)
	case q.ScaledDownAt != nil && !s.in.Now.Before(q.ScaledDownAt.Add(timeout)):
		q.State = api.QuiesceDrainTimedOut
		q.Message = fmt.Sprintf("%d pod(s) still present after the drain timeout of %s", w.Pods, timeout)
		s.Event(rolloutstatus.Warning, api.ReasonDrainTimedOut, "%s: %s", k, q.Message)
	default:
		q.Message = fmt.Sprintf("waiting for %d pod(s) to terminate", w.Pods)
		s.Wait(pollInterval)
		return false
	}
	return true
}

func (s *stepper) quiesceSummary() string {
	drained := 0
	for _, q := range s.Status.Quiesced {
		if q.State == api.QuiesceDrained || q.State == api.QuiesceDrainTimedOut {
			drained++
		}
	}
	return fmt.Sprintf("%d/%d drained", drained, len(s.Status.Quiesced))
}

// restore gives every stopped workload its count back, exactly, then ends the rollout: after the last
// node, and after a failure alike.
func (s *stepper) restore() {
	for i := range s.Status.Quiesced {
		q := &s.Status.Quiesced[i]
		if q.State == api.QuiesceRestored {
			continue
		}
		k := keyOf(q)
		w := s.in.Workloads[k]
		switch {
		case w.Exists && w.QuiescedBy == s.me:
			if r := orchestrate.RecordedReplicas(w.QuiescedReplicas, q.OriginalReplicas); r != nil {
				s.actions = append(s.actions, Action{Type: Restore, Key: k, Replicas: *r})
				s.Event(rolloutstatus.Normal, api.ReasonRestored, "Restored %s to %d replicas", k, *r)
			} else {
				s.actions = append(s.actions, Action{Type: Release, Key: k})
				s.Event(rolloutstatus.Warning, api.ReasonNothingRecorded, "%s has no recorded replica count; only its quiesce marks were removed", k)
			}
		case q.State == api.QuiescePending:
			q.Message = "not quiesced"
		}
		q.State, q.RestoredAt = api.QuiesceRestored, s.Now()
	}
	s.finish()
}

func (s *stepper) finish() {
	if c := apimeta.FindStatusCondition(s.Status.Conditions, api.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		msg := c.Message
		if len(s.Status.Quiesced) > 0 {
			msg += "; quiesced workloads restored"
		}
		s.Fail(c.Reason, msg)
		return
	}
	msg := fmt.Sprintf("%d control-plane node(s) done", len(s.Status.Nodes))
	if len(s.Status.Quiesced) > 0 {
		msg += fmt.Sprintf(", %d quiesced workload(s) restored", len(s.Status.Quiesced))
	}
	s.Succeed(msg)
}
