package rolloutstatus

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// ControlPlaneOutcome is what one step of a ControlPlaneRollout decided besides its writes (see Outcome).
type ControlPlaneOutcome struct {
	Status       api.ControlPlaneRolloutStatus
	Events       []Event
	RequeueAfter time.Duration
}

// ControlPlaneRecorder builds the ControlPlaneOutcome of one step, with the same condition rules as
// Recorder: the third state machine shares them rather than restating them.
type ControlPlaneRecorder struct {
	ControlPlaneOutcome
	now        time.Time
	generation int64
}

// NewControlPlane starts recording a step of ro at now, from a copy of its status.
func NewControlPlane(ro *api.ControlPlaneRollout, now time.Time) *ControlPlaneRecorder {
	return &ControlPlaneRecorder{ControlPlaneOutcome: ControlPlaneOutcome{Status: *ro.Status.DeepCopy()}, now: now, generation: ro.Generation}
}

// Now is the step's clock as an API time.
func (r *ControlPlaneRecorder) Now() *metav1.Time { return &metav1.Time{Time: r.now} }

// Event records an Event of type Normal or Warning.
func (r *ControlPlaneRecorder) Event(eventType, reason, format string, args ...any) {
	r.Events = append(r.Events, Event{Type: eventType, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// Wait asks to be called again after d at the latest (a second when d is not positive).
func (r *ControlPlaneRecorder) Wait(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if r.RequeueAfter == 0 || d < r.RequeueAfter {
		r.RequeueAfter = d
	}
}

// SetCondition sets a condition with the step's clock and the rollout's generation.
func (r *ControlPlaneRecorder) SetCondition(t string, status metav1.ConditionStatus, reason, msg string) {
	setCondition(&r.Status.Conditions, r.now, r.generation, t, status, reason, msg)
}

// Succeed ends the rollout as Succeeded: Complete and Ready True.
func (r *ControlPlaneRecorder) Succeed(msg string) {
	r.end(api.PhaseSucceeded, msg)
	r.SetCondition(api.ConditionComplete, metav1.ConditionTrue, api.ReasonSucceeded, msg)
	r.SetCondition(api.ConditionFailed, metav1.ConditionFalse, api.ReasonSucceeded, msg)
	r.SetKstatus()
	r.Event(Normal, api.ReasonSucceeded, "Succeeded: %s", msg)
}

// Fail ends the rollout as Failed for reason: Failed and Stalled True, Ready False.
func (r *ControlPlaneRecorder) Fail(reason, msg string) {
	r.end(api.PhaseFailed, msg)
	r.SetCondition(api.ConditionFailed, metav1.ConditionTrue, reason, msg)
	r.SetCondition(api.ConditionComplete, metav1.ConditionFalse, reason, msg)
	r.SetKstatus()
	r.Event(Warning, api.ReasonFailed, "Failed: %s", msg)
}

func (r *ControlPlaneRecorder) end(phase api.RolloutPhase, msg string) {
	r.Status.Phase, r.Status.Message, r.Status.CompletionTime, r.Status.CurrentNode = phase, msg, r.Now(), ""
}

// SetKstatus sets the kstatus conditions from the phase (see Recorder.SetKstatus).
func (r *ControlPlaneRecorder) SetKstatus() {
	setKstatus(r.Status.Phase, r.Status.Message, &r.Status.Conditions, r.SetCondition)
}
