// Package rolloutstatus is what the two CertRollout state machines (package orchestrate for restarts,
// package cascade for CA cascades) share to record a step: the new status with its conditions, the
// Events, when to be called again, and the "settle what is in flight, then start what is pending" loop.
// It is pure like them: the clock is passed in. The controller applies an Outcome in one place
// (internal/controller), whichever machine computed it.
//
// The condition setters follow Flux's: each transition sets the certrollout conditions (Complete, Failed)
// and the kstatus ones (Ready, Reconciling, Stalled; see api/v1alpha1/conditions.go) together, with
// observedGeneration, so no path can set one and forget the other.
package rolloutstatus

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Event types, those of corev1.
const (
	Normal  = corev1.EventTypeNormal
	Warning = corev1.EventTypeWarning
)

// Event is an Event to record on the CertRollout.
type Event struct {
	Type, Reason, Message string
}

// Outcome is what one step decided besides its writes: the status to store, the Events to record, and
// when to be called again (zero: when something changes).
type Outcome struct {
	Status       api.CertRolloutStatus
	Events       []Event
	RequeueAfter time.Duration
}

// Recorder builds the Outcome of one step of a rollout.
type Recorder struct {
	Outcome
	now        time.Time
	generation int64
}

// New starts recording a step of ro at now, from a copy of its status.
func New(ro *api.CertRollout, now time.Time) *Recorder {
	return &Recorder{Outcome: Outcome{Status: *ro.Status.DeepCopy()}, now: now, generation: ro.Generation}
}

// Now is the step's clock as an API time.
func (r *Recorder) Now() *metav1.Time { return &metav1.Time{Time: r.now} }

// Event records an Event of type Normal or Warning.
func (r *Recorder) Event(eventType, reason, format string, args ...any) {
	r.Events = append(r.Events, Event{Type: eventType, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// Wait asks to be called again after d at the latest (a second when d is not positive).
func (r *Recorder) Wait(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if r.RequeueAfter == 0 || d < r.RequeueAfter {
		r.RequeueAfter = d
	}
}

// SetCondition sets a condition with the step's clock (not apimeta's: the machines stay pure) and the
// rollout's generation.
func (r *Recorder) SetCondition(t string, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&r.Status.Conditions, r.now, r.generation, t, status, reason, msg)
}

func setCondition(conds *[]metav1.Condition, now time.Time, generation int64, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(conds, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Time{Time: now}, ObservedGeneration: generation,
	})
}

// Succeed ends the rollout as Succeeded: Complete and Ready True.
func (r *Recorder) Succeed(msg string) {
	r.end(api.PhaseSucceeded, msg)
	r.SetCondition(api.ConditionComplete, metav1.ConditionTrue, api.ReasonSucceeded, msg)
	r.SetCondition(api.ConditionFailed, metav1.ConditionFalse, api.ReasonSucceeded, msg)
	r.SetKstatus()
	r.Event(Normal, api.ReasonSucceeded, "Succeeded: %s", msg)
}

// Fail ends the rollout as Failed for reason: Failed and Stalled True, Ready False. The Event reads the
// same for both kinds of rollout.
func (r *Recorder) Fail(reason, msg string) {
	r.end(api.PhaseFailed, msg)
	r.SetCondition(api.ConditionFailed, metav1.ConditionTrue, reason, msg)
	r.SetCondition(api.ConditionComplete, metav1.ConditionFalse, reason, msg)
	r.SetKstatus()
	r.Event(Warning, api.ReasonFailed, "Failed: %s", msg)
}

func (r *Recorder) end(phase api.RolloutPhase, msg string) {
	r.Status.Phase, r.Status.Message, r.Status.CompletionTime = phase, msg, r.Now()
}

// SetKstatus sets the kstatus conditions from the phase, the one place that derives them, with the
// rollout's message: in progress, Reconciling True and Ready False with the phase as reason; Succeeded,
// Ready True; Failed, Ready False and Stalled True with the reason of the Failed condition. Each state
// machine calls it at the end of every step, so a rollout that finished before these conditions existed
// gets them too, and calling it again changes nothing.
func (r *Recorder) SetKstatus() {
	setKstatus(r.Status.Phase, r.Status.Message, &r.Status.Conditions, r.SetCondition)
}

// setKstatus derives the kstatus conditions from phase for either kind of rollout (see SetKstatus).
func setKstatus(phase api.RolloutPhase, msg string, conds *[]metav1.Condition, set func(t string, status metav1.ConditionStatus, reason, msg string)) {
	switch phase {
	case api.PhaseSucceeded:
		set(api.ConditionReady, metav1.ConditionTrue, api.ReasonSucceeded, msg)
		apimeta.RemoveStatusCondition(conds, api.ConditionReconciling)
		apimeta.RemoveStatusCondition(conds, api.ConditionStalled)
	case api.PhaseFailed:
		reason := api.ReasonFailed
		if c := apimeta.FindStatusCondition(*conds, api.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
			reason = c.Reason
		}
		set(api.ConditionReady, metav1.ConditionFalse, reason, msg)
		set(api.ConditionStalled, metav1.ConditionTrue, reason, msg)
		apimeta.RemoveStatusCondition(conds, api.ConditionReconciling)
	default:
		reason := string(phase)
		if reason == "" {
			reason = string(api.PhasePending)
		}
		set(api.ConditionReconciling, metav1.ConditionTrue, reason, msg)
		set(api.ConditionReady, metav1.ConditionFalse, reason, msg)
		apimeta.RemoveStatusCondition(conds, api.ConditionStalled)
	}
}

// SettleThenStart is the loop both machines run over their items (targets, leaf Certificates): settle(i)
// is called for every item, in order, and reports whether item i is (still) in flight; then start(i) is
// called in order while fewer than limit are in flight, and reports whether item i is now in flight and
// whether to stop starting (the rest wait). It returns how many are in flight.
func SettleThenStart(n, limit int, settle func(i int) bool, start func(i int) (inFlight, stop bool)) int {
	active := 0
	for i := range n {
		if settle(i) {
			active++
		}
	}
	for i := 0; i < n && active < limit; i++ {
		inFlight, stop := start(i)
		if inFlight {
			active++
		}
		if stop {
			break
		}
	}
	return active
}
