// Package hold decides the next step of a MaintenanceHold: resolve its targets, scale each to zero
// (recording its count on it first, through the same annotations a CertRollout's quiesce writes),
// verify no pod is left, scale it back to zero whenever something scales it up, and on release, expiry
// or deletion give each its recorded count back. It is pure like package orchestrate: the controller
// observes the workloads and passes what it saw; Next returns the new status, the writes and the Events.
// Every step is derived from what is observed on the workloads (their certrollout.io/quiesced-by and
// certrollout.io/quiesced-replicas annotations) as well as from the status, so a controller killed
// between a write and its status update resumes without scaling anything twice or losing a count.
package hold

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/orchestrate"
)

// pollInterval is how often a hold that waits for pods to go, or for another quiescer, looks again.
const pollInterval = 2 * time.Second

// checkInterval is how often a settled hold (held, or stalled) looks again when no watch event wakes
// it: a lost event must not leave a scaled-up workload running for long.
const checkInterval = time.Minute

// Key names a workload in the hold's namespace.
type Key struct{ Kind, Name string }

// String is "<kind>/<name>".
func (k Key) String() string { return k.Kind + "/" + k.Name }

// Workload is what the controller observed of one workload.
type Workload struct {
	Exists bool
	// OptedOut: annotated certrollout.io/enabled: "false"; certrollout never scales it.
	OptedOut bool
	// Replicas is spec.replicas.
	Replicas int32
	// QuiescedBy and QuiescedReplicas are its quiesce annotations.
	QuiescedBy       string
	QuiescedReplicas *int32
	// Pods still present (running or terminating).
	Pods int
}

// Input is everything Next looks at.
type Input struct {
	Now  time.Time
	Hold *api.MaintenanceHold
	// Selected are the workloads spec.targets.selector matches now, sorted; SelectorError says why the
	// selector cannot be used, when it cannot.
	Selected      []Key
	SelectorError string
	// Workloads are the observed workloads: the named targets, the selected ones, those in the status and
	// those whose quiesce annotation names the hold.
	Workloads map[Key]Workload
}

// ActionType is what an Action does.
type ActionType string

// Action types. Each is one patch of the workload, with a resourceVersion precondition.
const (
	// ScaleDown records Replicas on the workload and scales it to zero (restart.Quiesce).
	ScaleDown ActionType = "ScaleDown"
	// Enforce scales a held workload that was scaled up, or lost its marks, back to zero and records
	// Replicas (its original count) on it again (restart.Quiesce).
	Enforce ActionType = "Enforce"
	// Restore sets Replicas back and removes the quiesce annotations (restart.Restore).
	Restore ActionType = "Restore"
	// Release only removes the quiesce annotations: no count is recorded anywhere.
	Release ActionType = "Release"
)

// Action is a write for the controller to make, in order.
type Action struct {
	Type ActionType
	Key  Key
	// Replicas: the count ScaleDown and Enforce record, the count Restore sets.
	Replicas int32
	// Message is for the workload's Event.
	Message string
}

// Event is an Event to record on the hold.
type Event struct{ Type, Reason, Message string }

// Result is Next's answer.
type Result struct {
	Status  api.MaintenanceHoldStatus
	Actions []Action
	Events  []Event
	// RequeueAfter is when to look again at the latest (zero: only on a change).
	RequeueAfter time.Duration
	// Finished is true once a hold being deleted has restored everything: its finalizer may go.
	Finished bool
}

// Next decides the hold's next step.
func Next(in Input) Result {
	s := &stepper{in: in, me: api.HoldQuiescer(in.Hold.Name)}
	s.Status = *in.Hold.Status.DeepCopy()
	s.Status.ObservedGeneration = in.Hold.Generation
	if s.Status.Phase == "" {
		s.Status.Phase = api.HoldPhasePending
	}
	s.adopt()
	stalled := ""
	switch {
	case s.Status.Phase == api.HoldPhaseReleased:
	case s.releaseReason() != "":
		s.release()
	case s.Status.Phase == api.HoldPhasePending && len(s.Status.Workloads) == 0:
		stalled = s.resolve()
	default:
		s.hold()
	}
	s.setKstatus(stalled)
	s.Finished = in.Hold.DeletionTimestamp != nil && s.Status.Phase == api.HoldPhaseReleased
	if exp := in.Hold.Spec.ExpiresAt; exp != nil && s.Status.Phase != api.HoldPhaseReleased {
		s.wait(exp.Sub(in.Now))
	}
	return s.Result
}

type stepper struct {
	Result
	in Input
	// me is the hold's quiesced-by value.
	me string
}

func (s *stepper) now() *metav1.Time { return &metav1.Time{Time: s.in.Now} }

func (s *stepper) event(eventType, reason, format string, args ...any) {
	s.Events = append(s.Events, Event{Type: eventType, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (s *stepper) wait(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if s.RequeueAfter == 0 || d < s.RequeueAfter {
		s.RequeueAfter = d
	}
}

func (s *stepper) listed(k Key) *api.HeldWorkload {
	for i := range s.Status.Workloads {
		if w := &s.Status.Workloads[i]; w.Kind == k.Kind && w.Name == k.Name {
			return w
		}
	}
	return nil
}

// persisted reports whether the stored status lists k: a workload is scaled down only then, so whatever
// the hold keeps at zero is always found again from its status.
func (s *stepper) persisted(k Key) bool {
	for _, w := range s.in.Hold.Status.Workloads {
		if w.Kind == k.Kind && w.Name == k.Name {
			return true
		}
	}
	return false
}

// releaseReason says why the hold releases its workloads now, or "" while it holds them.
func (s *stepper) releaseReason() string {
	h := s.in.Hold
	switch {
	case h.DeletionTimestamp != nil:
		return "the MaintenanceHold is being deleted"
	case h.Spec.Release:
		return "spec.release is true"
	case h.Spec.ExpiresAt != nil && !s.in.Now.Before(h.Spec.ExpiresAt.Time):
		return "it expired at " + h.Spec.ExpiresAt.UTC().Format(time.RFC3339)
	case s.Status.Phase == api.HoldPhaseReleasing:
		return "it was released" // a release once begun finishes, whatever the spec says now
	}
	return ""
}

// adopt gives back, at once, every workload that names the hold in its quiesce annotation but is not in
// its status: nothing this hold scales down is missing from its stored status (see persisted), so such a
// workload was marked by hand, or by an earlier hold of the same name.
func (s *stepper) adopt() {
	keys := make([]Key, 0, len(s.in.Workloads))
	for k, w := range s.in.Workloads {
		if w.Exists && w.QuiescedBy == s.me && s.listed(k) == nil {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		s.restore(k, s.in.Workloads[k], nil, "it named this hold but was not one of its workloads")
	}
}

// resolve fixes the workloads to hold from spec.targets, or says why they cannot be held (the hold is
// then Stalled until they can: a workload created later, a corrected selector).
func (s *stepper) resolve() string {
	h := s.in.Hold
	var keys []Key
	seen := map[Key]bool{}
	add := func(k Key) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, t := range h.Spec.Targets.Workloads {
		if t.Namespace != "" && t.Namespace != h.Namespace {
			return fmt.Sprintf("%s %s/%s is in another namespace: a hold only reaches its own (%s)", t.Kind, t.Namespace, t.Name, h.Namespace)
		}
		k := Key{t.Kind, t.Name}
		w := s.in.Workloads[k]
		if !w.Exists {
			return fmt.Sprintf("%s %s does not exist", t.Kind, t.Name)
		}
		if w.OptedOut {
			return fmt.Sprintf("%s %s is opted out of certrollout (certrollout.io/enabled: \"false\"): no hold may scale it", t.Kind, t.Name)
		}
		add(k)
	}
	if h.Spec.Targets.Selector != nil {
		if s.in.SelectorError != "" {
			return "spec.targets.selector: " + s.in.SelectorError
		}
		matched := 0
		for _, k := range s.in.Selected {
			if w := s.in.Workloads[k]; w.Exists && !w.OptedOut {
				add(k)
				matched++
			}
		}
		if matched == 0 && len(h.Spec.Targets.Workloads) == 0 {
			return "spec.targets.selector matches no Deployment or StatefulSet in namespace " + h.Namespace
		}
	}
	for _, k := range keys {
		s.Status.Workloads = append(s.Status.Workloads, api.HeldWorkload{Kind: k.Kind, Name: k.Name, State: api.HeldPending})
	}
	s.Status.Phase = api.HoldPhaseDraining
	s.Status.Message = fmt.Sprintf("recording %d workload(s) before scaling them to zero", len(keys))
	s.wait(time.Second)
	return ""
}

// hold moves each workload towards zero replicas with no pod left, and keeps it there.
func (s *stepper) hold() {
	for i := range s.Status.Workloads {
		w := &s.Status.Workloads[i]
		k := Key{w.Kind, w.Name}
		obs := s.in.Workloads[k]
		switch w.State {
		case api.HeldPending:
			s.scaleDown(w, k, obs)
		case api.HeldDraining, api.HeldHeld:
			s.keep(w, k, obs)
		case api.HeldRestored: // a release began and the spec no longer says so: a release finishes
		}
	}
	held, fights := 0, []string{}
	for _, w := range s.Status.Workloads {
		if w.State == api.HeldHeld || w.State == api.HeldRestored {
			held++
		}
		if w.Enforced > 0 {
			fights = append(fights, fmt.Sprintf("%s %s scaled up %d time(s) and scaled back to 0", w.Kind, w.Name, w.Enforced))
		}
	}
	fight := ""
	if len(fights) > 0 {
		fight = "; " + strings.Join(fights, ", ") + ": something (an HPA, a person) fights the hold"
	}
	if held == len(s.Status.Workloads) {
		if s.Status.Phase != api.HoldPhaseHeld {
			s.event(corev1.EventTypeNormal, api.ReasonHeld, "Held %d workload(s) at zero replicas; no pod is left", held)
		}
		s.Status.Phase = api.HoldPhaseHeld
		if s.Status.HeldAt == nil {
			s.Status.HeldAt = s.now()
		}
		s.Status.Message = fmt.Sprintf("held: %d workload(s) at zero replicas, no pod left%s", held, fight)
		s.wait(checkInterval)
		return
	}
	s.Status.Phase = api.HoldPhaseDraining
	msg := fmt.Sprintf("draining: %d/%d held", held, len(s.Status.Workloads))
	for _, w := range s.Status.Workloads {
		if w.State != api.HeldHeld && w.Message != "" {
			msg += fmt.Sprintf("; %s %s %s", w.Kind, w.Name, w.Message)
		}
	}
	s.Status.Message = msg + fight
	s.wait(pollInterval)
}

// scaleDown scales a pending workload to zero once the stored status lists it.
func (s *stepper) scaleDown(w *api.HeldWorkload, k Key, obs Workload) {
	switch {
	case !obs.Exists:
		w.State, w.DrainedAt, w.Message = api.HeldHeld, s.now(), "does not exist; nothing to hold"
		return
	case obs.QuiescedBy == s.me:
		// Scaled down by this hold before a crash: the annotation holds the original count.
		w.OriginalReplicas = orchestrate.RecordedReplicas(obs.QuiescedReplicas, w.OriginalReplicas)
	case obs.QuiescedBy != "":
		msg := "is quiesced by " + quiescer(obs.QuiescedBy) + "; waiting for it to restore the workload"
		if w.Message != msg {
			s.event(corev1.EventTypeWarning, api.ReasonQuiesceConflict, "%s %s %s", k.Kind, k.Name, msg)
		}
		w.Message = msg
		return
	case obs.OptedOut:
		w.State, w.DrainedAt, w.Message = api.HeldHeld, s.now(), "opted out of certrollout (certrollout.io/enabled: \"false\"); not scaled"
		return
	case !s.persisted(k):
		w.Message = "recording the workload before scaling it down"
		return
	default:
		replicas := obs.Replicas
		w.OriginalReplicas = &replicas
		s.Actions = append(s.Actions, Action{Type: ScaleDown, Key: k, Replicas: replicas,
			Message: fmt.Sprintf("Scaled from %d to 0 replicas for MaintenanceHold %s; the count is recorded in %s", replicas, s.in.Hold.Name, api.AnnotationQuiescedReplicas)})
		s.event(corev1.EventTypeNormal, api.ReasonScaledDown, "Scaled %s %s from %d to 0 replicas", k.Kind, k.Name, replicas)
	}
	w.State, w.ScaledDownAt, w.Message = api.HeldDraining, s.now(), ""
	s.keep(w, k, s.in.Workloads[k])
}

// keep holds a scaled-down workload at zero: scaled up or stripped of its marks, it is scaled back down
// with its original count recorded again; with pods left it is draining; else it is held.
func (s *stepper) keep(w *api.HeldWorkload, k Key, obs Workload) {
	justScaled := len(s.Actions) > 0 && s.Actions[len(s.Actions)-1].Key == k
	switch {
	case !obs.Exists:
		if w.State != api.HeldHeld {
			w.DrainedAt = s.now()
		}
		w.State, w.Message = api.HeldHeld, "no longer exists; nothing to hold"
		return
	case justScaled:
		// Scaled down in this very step: its pods are still there, and go in the next ones.
		w.Message = fmt.Sprintf("waiting for %d pod(s) to terminate", obs.Pods)
		return
	case obs.QuiescedBy != s.me || obs.Replicas > 0:
		original := orchestrate.RecordedReplicas(markedCount(obs, s.me), w.OriginalReplicas)
		if original == nil {
			// Never recorded (a workload the hold found missing, created since): its count now is the one
			// it had before the hold scaled it down.
			original = &obs.Replicas
		}
		w.OriginalReplicas = original
		msg := fmt.Sprintf("lost its hold marks; marked again and kept at 0 (original count %d)", *original)
		if obs.Replicas > 0 {
			w.Enforced++
			msg = fmt.Sprintf("was scaled up to %d at %s (an HPA or a person) and scaled back to 0", obs.Replicas, s.in.Now.UTC().Format(time.RFC3339))
			s.event(corev1.EventTypeWarning, api.ReasonHoldEnforced, "%s %s %s; its HorizontalPodAutoscaler, if any, is not changed", k.Kind, k.Name, msg)
		}
		s.Actions = append(s.Actions, Action{Type: Enforce, Key: k, Replicas: *original, Message: msg})
		w.State, w.Message = api.HeldDraining, msg
	case obs.Pods > 0:
		w.State, w.Message = api.HeldDraining, fmt.Sprintf("waiting for %d pod(s) to terminate", obs.Pods)
	default:
		if w.State != api.HeldHeld {
			w.DrainedAt = s.now()
			s.event(corev1.EventTypeNormal, api.ReasonDrained, "%s %s has no pods left", k.Kind, k.Name)
		}
		w.State = api.HeldHeld
		if w.Enforced == 0 {
			w.Message = ""
		}
	}
}

// markedCount is the count recorded on the workload, when the marks are this hold's.
func markedCount(obs Workload, me string) *int32 {
	if obs.QuiescedBy != me {
		return nil
	}
	return obs.QuiescedReplicas
}

// release gives every held workload its recorded count back.
func (s *stepper) release() {
	why := s.releaseReason()
	if s.Status.Phase != api.HoldPhaseReleasing {
		reason := api.ReasonHoldReleasing
		if h := s.in.Hold; h.DeletionTimestamp == nil && !h.Spec.Release && h.Spec.ExpiresAt != nil {
			reason = api.ReasonHoldExpired
		}
		s.event(corev1.EventTypeNormal, reason, "Releasing %d workload(s): %s", len(s.Status.Workloads), why)
	}
	s.Status.Phase = api.HoldPhaseReleasing
	restored := 0
	for i := range s.Status.Workloads {
		w := &s.Status.Workloads[i]
		if w.State == api.HeldRestored {
			restored++
			continue
		}
		k := Key{w.Kind, w.Name}
		obs := s.in.Workloads[k]
		switch {
		case obs.Exists && obs.QuiescedBy == s.me:
			s.restore(k, obs, w.OriginalReplicas, why)
			w.Message = ""
			restored++
		case w.State == api.HeldPending:
			w.Message = "never scaled down by this hold"
		case !obs.Exists:
			w.Message = "no longer exists"
		default:
			w.Message = "its hold marks were removed by someone else; left at its current replicas"
		}
		w.State, w.RestoredAt = api.HeldRestored, s.now()
	}
	s.Status.Phase, s.Status.ReleasedAt = api.HoldPhaseReleased, s.now()
	s.Status.Message = fmt.Sprintf("released (%s): %d workload(s) restored", why, restored)
	s.event(corev1.EventTypeNormal, api.ReasonReleased, "Released: %d workload(s) restored to their recorded replica counts", restored)
}

// restore gives k its recorded count back by the one rule every restorer follows
// (orchestrate.RecordedReplicas): the count on the workload, else the status's; never a guessed one.
func (s *stepper) restore(k Key, obs Workload, inStatus *int32, why string) {
	replicas := orchestrate.RecordedReplicas(obs.QuiescedReplicas, inStatus)
	if replicas == nil {
		s.Actions = append(s.Actions, Action{Type: Release, Key: k,
			Message: fmt.Sprintf("MaintenanceHold %s released it (%s) but no replica count is recorded: left at %d replicas, scale it by hand", s.in.Hold.Name, why, obs.Replicas)})
		s.event(corev1.EventTypeWarning, api.ReasonNothingRecorded, "%s %s: no replica count is recorded for it; left at %d replicas, scale it by hand", k.Kind, k.Name, obs.Replicas)
		return
	}
	if obs.Replicas != 0 && obs.Replicas != *replicas {
		s.event(corev1.EventTypeWarning, api.ReasonQuiesceOverridden, "%s %s was scaled to %d during the hold; restoring the recorded %d", k.Kind, k.Name, obs.Replicas, *replicas)
	}
	s.Actions = append(s.Actions, Action{Type: Restore, Key: k, Replicas: *replicas,
		Message: fmt.Sprintf("Restored to %d replicas by MaintenanceHold %s (%s)", *replicas, s.in.Hold.Name, why)})
	s.event(corev1.EventTypeNormal, api.ReasonRestored, "Restored %s %s to %d replicas", k.Kind, k.Name, *replicas)
}

// setKstatus sets Ready, Reconciling and Stalled from the phase, with the status's message.
func (s *stepper) setKstatus(stalled string) {
	set := func(t string, status metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
			LastTransitionTime: *s.now(), ObservedGeneration: s.in.Hold.Generation})
	}
	if stalled != "" {
		if s.Status.Message != stalled {
			s.event(corev1.EventTypeWarning, api.ReasonInvalidHold, "%s", stalled)
		}
		s.Status.Message = stalled
		set(api.ConditionReady, metav1.ConditionFalse, api.ReasonInvalidHold, stalled)
		set(api.ConditionStalled, metav1.ConditionTrue, api.ReasonInvalidHold, stalled)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionReconciling)
		s.wait(checkInterval)
		return
	}
	msg := s.Status.Message
	switch s.Status.Phase {
	case api.HoldPhaseHeld:
		set(api.ConditionReady, metav1.ConditionTrue, api.ReasonHeld, msg)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionReconciling)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionStalled)
	case api.HoldPhaseReleased:
		set(api.ConditionReady, metav1.ConditionTrue, api.ReasonReleased, msg)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionReconciling)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionStalled)
	default:
		reason := api.ReasonHoldDraining
		if s.Status.Phase == api.HoldPhaseReleasing {
			reason = api.ReasonHoldReleasing
		}
		set(api.ConditionReady, metav1.ConditionFalse, reason, msg)
		set(api.ConditionReconciling, metav1.ConditionTrue, reason, msg)
		apimeta.RemoveStatusCondition(&s.Status.Conditions, api.ConditionStalled)
	}
}

// quiescer names what an AnnotationQuiescedBy value says quiesced a workload.
func quiescer(by string) string {
	if h, ok := api.HoldOf(by); ok {
		return "MaintenanceHold " + h
	}
	return "CertRollout " + by
}
