// Package orchestrate decides the next step of a CertRollout: wait for a window, quiesce, restart the
// targets in order with health gates, restore. It is pure: the controller observes the workloads and
// passes what it saw; Next returns the new status and the writes to make. Every write is idempotent and
// every step is derived from what is observed on the cluster (annotations on the workloads), not only
// from the status, so a controller killed between a write and its status update resumes correctly:
// nothing is scaled twice, no replica count is lost, no target restarts twice for the same rollout.
// A target that already runs on the certificates the rollout's trigger names for it (its ledger says so,
// and another restart put it there) is skipped, so that two rollouts, or a rollout and the controller's
// direct restart, for one renewal roll each workload once; a rollout whose targets all are is done at once,
// without quiescing anything.
package orchestrate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/kinds"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
	"github.com/certrollout/certrollout/internal/schedule"
)

// pollInterval bounds how long a waiting rollout sleeps when no watch event is due to wake it.
const pollInterval = 5 * time.Second

// Policy is the RolloutPolicy a rollout follows, parsed.
type Policy struct {
	Name string
	Spec api.RolloutPolicySpec
	// Windows are the parsed spec.windows.
	Windows []schedule.Window
	// Invalid says why the policy cannot be followed; empty when it can.
	Invalid string
	// Warnings say how a valid policy may not do what its author expects (DrainWarning); shown in its
	// Valid condition and by plan.
	Warnings []string
}

// DrainWarning says what happens when quiesce target i (q) lets its pods take up to grace to stop
// (terminationGracePeriodSeconds) and that is longer than its drainTimeout; "" when it is not. A worker
// finishing a long job is then cut off by the drain's end, not by its own grace period.
func DrainWarning(i int, q api.QuiesceTarget, grace time.Duration, action api.DrainTimeoutAction) string {
	drain := q.EffectiveDrainTimeout()
	if grace <= drain {
		return ""
	}
	what := "the rollout stops waiting, restores the quiesced workloads and fails without restarting anything (onDrainTimeout: Abort)"
	if action == api.DrainTimeoutProceed {
		what = "the targets restart while its pods may still be finishing their work (onDrainTimeout: Proceed)"
	}
	return fmt.Sprintf("quiesce[%d]: %s %s lets its pods take up to %s to stop (terminationGracePeriodSeconds), longer than its drainTimeout %s: if they use it, %s; raise drainTimeout to at least %s",
		i, q.Kind, q.Name, grace, drain, what, grace)
}

// Workload is what the controller observed of one quiesce target or restart target.
type Workload struct {
	Exists bool
	// OptedOut is set when the workload is annotated certrollout.io/enabled: "false": no rollout may
	// restart or quiesce it.
	OptedOut bool
	// Replicas is spec.replicas (Deployments, StatefulSets).
	Replicas int32
	// QuiescedBy and QuiescedReplicas are the workload's quiesce annotations: which rollout scaled it to
	// zero and the replica count it had.
	QuiescedBy       string
	QuiescedReplicas *int32
	// Pods still present (running or terminating).
	Pods int
	// RolledBy is the pod template's rollout annotation: the rollout that last restarted it.
	RolledBy string
	// LedgerHash is the certificate set its pods run on, as its ledger annotation records it (written by
	// every restart certrollout makes, direct or through a rollout); empty when none is recorded.
	LedgerHash string
	// RestartValue is the certificate-derived value a restart writes (the current certificate set hash);
	// empty when the workload uses no certificates.
	RestartValue string
	// RunningNotAfter is when the earliest certificate its pods run on expires (the ledger); zero if
	// unknown.
	RunningNotAfter time.Time
	// Rollout is the workload's rollout progress after a restart.
	Rollout Progress
	// Labels are the workload's labels (a policy's steps select by them); Order is its
	// certrollout.io/order annotation.
	Labels map[string]string
	Order  string
	// Verification is what probes of its pods found; the controller fills it in only for a target this
	// rollout restarted whose rollout is done. Nil otherwise.
	Verification *Verification
}

// Verification is what TLS probes of a restarted target's pods found.
type Verification struct {
	// Probed is false when the workload declares no TLS port: nothing can be verified.
	Probed bool
	// Answered is false while no pod answered its probe.
	Answered bool
	// Verified is true when every pod serves the certificates the target was restarted onto.
	Verified bool
	// Message says what was found, naming the pods that serve something else.
	Message string
}

// showsRestart reports whether the observed workload carries the restart rollout made: its template
// names the rollout, or its ledger records the certificates the rollout restarted it onto.
func (w Workload) showsRestart(rollout, value string) bool {
	return w.RolledBy == rollout || (value != "" && w.LedgerHash == value)
}

// Progress is a workload's rollout status, as `kubectl rollout status` judges it.
type Progress struct {
	Done bool
	// Failed is set when the rollout cannot finish (a Deployment's progress deadline exceeded).
	Failed string
	// Message says what it is waiting for.
	Message string
}

// Input is everything Next looks at.
type Input struct {
	Now     time.Time
	Rollout *api.CertRollout
	// Policy is nil when the rollout names none. PolicyMissing is true when it names one that does not
	// exist.
	Policy        *Policy
	PolicyMissing bool
	// Selected are the workloads the policy selects, used as targets when the rollout names none.
	Selected []api.WorkloadReference
	// Workloads are the observed quiesce targets and targets, by Key.
	Workloads map[Key]Workload
	// Running is how many other rollouts are past Pending and not finished, across the cluster;
	// MaxRunning the global limit (0: none). RunningHere and MaxRunningHere are the same within the
	// rollout's namespace: its share of the global limit, so one namespace cannot take every slot.
	Running, MaxRunning         int
	RunningHere, MaxRunningHere int
	// Throttled says the controller's global restart rate applies: at most RestartTokens targets may
	// start restarting now (the rest wait for tokens, like the controller's direct restarts do).
	Throttled     bool
	RestartTokens int
}

// Key identifies a workload in the rollout's namespace.
type Key struct{ Kind, Name string }

// String is "<kind>/<name>", as the API names a workload (api.WorkloadReference.Key).
func (k Key) String() string { return api.WorkloadReference{Kind: k.Kind, Name: k.Name}.Key() }

// Action is a write for the controller to make, in order.
type Action struct {
	Type ActionType
	Key  Key
	// Replicas: ScaleDown records it as the original count; Restore sets it.
	Replicas int32
	// RestartValue is written by Restart.
	RestartValue string
}

// ActionType is what an Action does.
type ActionType string

// Action types.
const (
	// ScaleDown records the replica count on the workload and scales it to zero, in one patch, unless it
	// is already quiesced by this rollout.
	ScaleDown ActionType = "ScaleDown"
	// Restart writes RestartValue and the rollout's name into the pod template.
	Restart ActionType = "Restart"
	// Restore sets the recorded replica count back and removes the quiesce annotations, in one patch.
	Restore ActionType = "Restore"
	// Release removes the quiesce annotations and leaves the replicas as they are: nothing recorded a
	// count to restore (see RecordedReplicas).
	Release ActionType = "Release"
)

// Result is Next's answer: the writes to make, in order, then the status and Events to record.
type Result struct {
	rolloutstatus.Outcome
	Actions []Action
}

// Next decides the rollout's next step.
func Next(in Input) Result {
	s := &stepper{Recorder: rolloutstatus.New(in.Rollout, in.Now), in: in}
	s.step()
	s.Status.Progress = s.progress()
	if c := verifiedCondition(s.Status.Targets); c != nil {
		c.LastTransitionTime = metav1.NewTime(in.Now)
		apimeta.SetStatusCondition(&s.Status.Conditions, *c)
	}
	s.SetKstatus()
	return Result{Outcome: s.Outcome, Actions: s.actions}
}

type stepper struct {
	*rolloutstatus.Recorder
	in      Input
	actions []Action
}

func (s *stepper) step() {
	s.adopt()
	// Each phase hands over to the next as soon as it can, so one call goes as far as it can without
	// waiting for the cluster to react to its own writes.
	for range 8 {
		before := s.Status.Phase
		switch before {
		case "":
			s.initialize()
		case api.PhasePending, api.PhaseWaitingForWindow:
			s.start()
		case api.PhaseQuiescing:
			s.quiesce()
		case api.PhaseRestarting:
			s.restart()
		case api.PhaseRestoring:
			s.restore()
		default:
			return // finished
		}
		if s.Status.Phase == before {
			return
		}
	}
}

// RecordedReplicas is the one rule for the count a quiesced workload gets back, whoever gives it back
// (this package's restore, the controller's finalizer for a deleted rollout, its sweeper of orphans):
// the count recorded on the workload in the very patch that scaled it down, else the one in the
// rollout's status; nil when neither exists. A count is never guessed: with nil the workload keeps the
// replicas it has (it is never "restored" to zero, nor to any default), loses its quiesce marks, and a
// Warning (api.ReasonNothingRecorded) asks a person to scale it.
func RecordedReplicas(onWorkload, inStatus *int32) *int32 {
	if onWorkload != nil {
		return onWorkload
	}
	return inStatus
}

// heldBy is the MaintenanceHold a quiesced-by value names, or "".
func heldBy(quiescedBy string) string {
	if h, ok := api.HoldOf(quiescedBy); ok {
		return h
	}
	return ""
}

// restoreAction gives k back its recorded count (Release when none is recorded), with Events.
func (s *stepper) restoreAction(k Key, w Workload, inStatus *int32, why string) {
	replicas := RecordedReplicas(w.QuiescedReplicas, inStatus)
	if replicas == nil {
		s.actions = append(s.actions, Action{Type: Release, Key: k})
		s.Event(rolloutstatus.Warning, api.ReasonNothingRecorded, "%s %s: no replica count is recorded for it; left at %d replicas, scale it by hand%s", k.Kind, k.Name, w.Replicas, why)
		return
	}
	if w.Replicas != 0 && w.Replicas != *replicas {
		s.Event(rolloutstatus.Warning, api.ReasonQuiesceOverridden, "%s %s was scaled to %d during the quiesce; restoring the recorded %d", k.Kind, k.Name, w.Replicas, *replicas)
	}
	s.actions = append(s.actions, Action{Type: Restore, Key: k, Replicas: *replicas})
	s.Event(rolloutstatus.Normal, api.ReasonRestored, "Restored %s %s to %d replicas%s", k.Kind, k.Name, *replicas, why)
}

// adopt takes back every workload this rollout scaled down that its status does not list: the status
// write after a scale-down was lost, or was made by a controller that scaled down before recording
// the quiesce list. Before the rollout has started such a workload is restored at once (it will be
// quiesced again, from a persisted list, when the rollout starts); after, it joins the quiesce list and
// is restored with the others.
func (s *stepper) adopt() {
	name := s.in.Rollout.Name
	keys := make([]Key, 0, len(s.in.Workloads))
	for k := range s.in.Workloads {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		w := s.in.Workloads[k]
		if !w.Exists || w.QuiescedBy != name || s.listsQuiesced(k) {
			continue
		}
		switch s.Status.Phase {
		case "", api.PhasePending, api.PhaseWaitingForWindow:
			s.restoreAction(k, w, nil, ": it was scaled down before the rollout recorded it")
		default:
			s.Status.Quiesced = append(s.Status.Quiesced, api.QuiescedWorkload{
				Kind: k.Kind, Name: k.Name, State: api.QuiesceDraining, OriginalReplicas: w.QuiescedReplicas, ScaledDownAt: s.Now(),
				Message: "scaled down by this rollout before its status recorded it; adopted",
			})
			s.Event(rolloutstatus.Warning, api.ReasonAdopted, "%s %s was scaled down by this rollout but missing from its status; it will be restored with the others", k.Kind, k.Name)
		}
	}
}

func (s *stepper) listsQuiesced(k Key) bool {
	for _, q := range s.Status.Quiesced {
		if q.Kind == k.Kind && q.Name == k.Name {
			return true
		}
	}
	return false
}

// persisted reports whether the rollout's stored status already lists k as to be quiesced: a workload
// is scaled down only then, so whatever is at zero replicas is always found again from the status.
func (s *stepper) persisted(k Key) bool {
	if s.in.Rollout.Status.Phase != api.PhaseQuiescing {
		return false
	}
	for _, q := range s.in.Rollout.Status.Quiesced {
		if q.Kind == k.Kind && q.Name == k.Name {
			return true
		}
	}
	return false
}

// initialize fixes the targets and the quiesce list: later changes to the policy do not change a rollout
// in flight, so what was scaled down is always what gets restored.
func (s *stepper) initialize() {
	r := s.in.Rollout
	if s.in.PolicyMissing {
		s.Fail(api.ReasonInvalid, fmt.Sprintf("RolloutPolicy %q does not exist in namespace %s", r.Spec.Policy, r.Namespace))
		return
	}
	if r.Spec.Cascade != nil {
		// Package cascade runs these; the controller never passes one here. Say so rather than report
		// "no targets" should it ever happen.
		s.Fail(api.ReasonInvalid, "spec.cascade: a CA cascade is run by package cascade, not orchestrate")
		return
	}
	targets := r.Spec.Targets
	if len(targets) == 0 {
		for _, t := range s.in.Selected {
			if !s.in.Workloads[Key{t.Kind, t.Name}].OptedOut {
				targets = append(targets, t)
			}
		}
	}
	if len(targets) == 0 {
		s.Fail(api.ReasonInvalid, "no targets: the rollout names none and its policy selects no workload (to keep workloads stopped during a maintenance, without restarting anything, use a MaintenanceHold: certrollout hold NAME KIND/NAME...)")
		return
	}
	seen := map[Key]bool{}
	for _, t := range targets {
		if t.Namespace != "" && t.Namespace != r.Namespace {
			s.Fail(api.ReasonInvalid, fmt.Sprintf("target %s %s/%s is in another namespace: a rollout only reaches its own (%s)", t.Kind, t.Namespace, t.Name, r.Namespace))
			return
		}
		k := Key{t.Kind, t.Name}
		if !s.in.Workloads[k].Exists {
			s.Fail(api.ReasonInvalid, fmt.Sprintf("target %s %s does not exist", t.Kind, t.Name))
			return
		}
		if s.in.Workloads[k].OptedOut {
			s.Fail(api.ReasonInvalid, fmt.Sprintf("target %s %s is opted out of certrollout (certrollout.io/enabled: \"false\"): no rollout may restart it", t.Kind, t.Name))
			return
		}
		if !seen[k] {
			seen[k] = true
			s.Status.Targets = append(s.Status.Targets, api.TargetStatus{Kind: t.Kind, Name: t.Name, State: api.TargetPending})
		}
	}
	assignSteps(s.in.Policy, s.Status.Targets, s.in.Workloads)
	if p := s.in.Policy; p != nil {
		for _, q := range p.Spec.Quiesce {
			k := Key{q.Kind, q.Name}
			// What an invalid policy asks and no rollout may do is left out: another namespace, a kind that
			// cannot be scaled, a workload that is also a target, one listed twice.
			if (q.Namespace != "" && q.Namespace != r.Namespace) || !kinds.Scalable(q.Kind) || seen[k] || s.listsQuiesced(k) {
				continue
			}
			s.Status.Quiesced = append(s.Status.Quiesced, api.QuiescedWorkload{Kind: q.Kind, Name: q.Name, State: api.QuiescePending})
		}
	}
	s.Status.Phase = api.PhasePending
}

func (s *stepper) start() {
	p := s.in.Policy
	gate := StartGate(Start{Policy: p, NotAfter: s.earliestNotAfter(), Now: s.in.Now, Emergency: s.emergency() != nil})
	if p != nil {
		if dl := p.Spec.DeadlineFor(s.earliestNotAfter()); !dl.IsZero() {
			s.Status.ExpiryDeadline = &metav1.Time{Time: dl}
		}
	}
	switch gate.Reason {
	case api.ReasonPolicyInvalid:
		// An invalid policy holds its rollouts, except when a certificate they run on is about to expire:
		// then the rollout starts with what the policy validly asks (see initialize).
		s.pending(api.ReasonPolicyInvalid, fmt.Sprintf("waiting: RolloutPolicy %s is invalid: %s", p.Name, p.Invalid))
		return
	case api.ReasonPolicySuspended:
		s.pending(api.ReasonPolicySuspended, fmt.Sprintf("waiting: RolloutPolicy %s is suspended", p.Name))
		return
	}
	if s.skipUpToDate() {
		// Nothing to restart, so nothing to quiesce and no reason to wait for a window or a free slot.
		s.Status.NextWindow = nil
		s.Status.StartTime = s.Now()
		for i := range s.Status.Quiesced {
			s.Status.Quiesced[i].Message = "not quiesced: no target needed a restart"
		}
		s.Status.Phase = api.PhaseRestoring
		return
	}
	overridden, ok := s.takeSlot()
	if !ok {
		return
	}
	if !gate.Open {
		s.waitForWindow(gate)
		return
	}
	switch gate.Reason {
	case api.ReasonDeadlineOverride, api.ReasonEmergencyStart:
		if p.Spec.Suspend {
			overridden = append(overridden, fmt.Sprintf("RolloutPolicy %s being suspended", p.Name))
		}
		if p.Invalid != "" {
			overridden = append(overridden, fmt.Sprintf("RolloutPolicy %s being invalid (%s): only what it validly asks is done", p.Name, p.Invalid))
		}
		if !schedule.At(p.Windows, s.in.Now).Open {
			overridden = append(overridden, "the maintenance windows")
		}
	}
	s.Status.NextWindow = nil
	s.Status.StartTime = s.Now()
	s.Status.Phase = api.PhaseQuiescing
	s.Status.Message = "quiescing"
	switch e := s.emergency(); {
	case e != nil:
		// Recorded whether or not anything held it: who asked and why belong on the rollout's record.
		s.Status.Message = "quiescing (emergency)"
		s.SetCondition(api.ConditionEmergency, metav1.ConditionTrue, api.ReasonEmergencyStart, emergencyMessage(e, overridden))
		s.Event(rolloutstatus.Warning, api.ReasonEmergencyStart, "%s", emergencyMessage(e, overridden))
	case len(overridden) > 0:
		s.Event(rolloutstatus.Warning, api.ReasonDeadlineOverride, "Started despite %s: %s", strings.Join(overridden, ", "), s.deadlineOverride(p))
	}
	s.Event(rolloutstatus.Normal, api.ReasonStarted, "Started: %d target(s), %d workload(s) to quiesce", len(s.Status.Targets), len(s.Status.Quiesced))
}

// emergency is the rollout's spec.emergency; nil for an ordinary rollout.
func (s *stepper) emergency() *api.EmergencySpec { return s.in.Rollout.Spec.Emergency }

// emergencyMessage is the record of an emergency start: who, why, and what it overrode.
func emergencyMessage(e *api.EmergencySpec, overridden []string) string {
	who := e.RequestedBy
	if who == "" {
		who = "an unnamed user"
	}
	msg := fmt.Sprintf("Started at once as an emergency requested by %s: %s", who, e.Reason)
	if len(overridden) > 0 {
		msg += " (despite " + strings.Join(overridden, ", ") + ")"
	}
	return msg
}

// takeSlot applies the controller's limits on running rollouts: the namespace's share holds every
// rollout, an emergency too (a tenant's emergency must not take other namespaces' share); the
// cluster-wide limit holds all but an emergency and a rollout past its policy's expiry deadline, which
// say what they overrode. ok is false when the rollout waits for a slot.
func (s *stepper) takeSlot() (overridden []string, ok bool) {
	if s.in.MaxRunningHere > 0 && s.in.RunningHere >= s.in.MaxRunningHere {
		// The namespace's share is taken by its own rollouts: even a deadline waits for those.
		s.pending(api.ReasonConcurrencyLimit, fmt.Sprintf("waiting: %d rollouts of namespace %s are running, the most --max-concurrent-rollouts-per-namespace allows", s.in.RunningHere, s.in.Rollout.Namespace))
		s.Wait(pollInterval)
		return nil, false
	}
	if s.in.MaxRunning > 0 && s.in.Running >= s.in.MaxRunning {
		// Other namespaces' rollouts hold every slot; a rollout whose certificate is about to expire does
		// not wait behind them.
		if s.emergency() == nil && (s.in.Policy == nil || s.deadlineOverride(s.in.Policy) == "") {
			s.pending(api.ReasonConcurrencyLimit, fmt.Sprintf("waiting: %d rollouts are running, the most --max-concurrent-rollouts allows", s.in.Running))
			s.Wait(pollInterval)
			return nil, false
		}
		return []string{fmt.Sprintf("the %d rollouts already running (--max-concurrent-rollouts)", s.in.Running)}, true
	}
	return nil, true
}

// pending keeps the rollout Pending for a reason, with an Event when the reason is new.
func (s *stepper) pending(reason, msg string) {
	if s.Status.Message != msg {
		s.Event(rolloutstatus.Normal, reason, "%s", msg)
	}
	s.Status.Phase, s.Status.Message = api.PhasePending, msg
}

// waitForWindow waits for the gate to open: the next window, or the expiry deadline if that comes first.
func (s *stepper) waitForWindow(g Gate) {
	next := g.Window
	if s.Status.Phase != api.PhaseWaitingForWindow {
		s.Event(rolloutstatus.Normal, api.ReasonWaitingForWindow, "Waiting for the next maintenance window, at %s", next.UTC().Format(time.RFC3339))
	}
	s.Status.Phase = api.PhaseWaitingForWindow
	s.Status.NextWindow = &metav1.Time{Time: next}
	s.Status.Message = "waiting for the maintenance window at " + next.UTC().Format(time.RFC3339)
	s.Wait(g.At.Sub(s.in.Now))
}

// deadlineOverride says why the rollout may start now whatever else holds it (windows, other
// namespaces' rollouts, an invalid policy), or returns "" when no certificate its targets run on expires
// within the policy's expiryDeadline.
func (s *stepper) deadlineOverride(p *Policy) string {
	na := s.earliestNotAfter()
	if !p.Spec.PastDeadline(na, s.in.Now) {
		return ""
	}
	return fmt.Sprintf("a certificate the targets run on expires at %s, within the policy's expiryDeadline of %s",
		na.UTC().Format(time.RFC3339), p.Spec.ExpiryDeadline.Duration)
}

func (s *stepper) earliestNotAfter() time.Time {
	var t time.Time
	for _, ts := range s.Status.Targets {
		na := s.in.Workloads[Key{ts.Kind, ts.Name}].RunningNotAfter
		if !na.IsZero() && (t.IsZero() || na.Before(t)) {
			t = na
		}
	}
	return t
}

func (s *stepper) quiesceSpec(k Key) api.QuiesceTarget {
	if s.in.Policy != nil {
		for _, q := range s.in.Policy.Spec.Quiesce {
			if q.Kind == k.Kind && q.Name == k.Name {
				return q
			}
		}
	}
	return api.QuiesceTarget{Kind: k.Kind, Name: k.Name}
}

func (s *stepper) quiesce() {
	if s.skipUpToDate() {
		// Another restart (the controller's direct one, or another rollout this one waited behind) rolled
		// every target onto its certificates meanwhile: scaling the quiesce list down now would disrupt it
		// for nothing. Whatever this rollout already scaled down is restored.
		for i := range s.Status.Quiesced {
			if q := &s.Status.Quiesced[i]; q.State == api.QuiescePending {
				q.Message = "not quiesced: no target needed a restart"
			}
		}
		s.Status.Phase = api.PhaseRestoring
		return
	}
	settled := true
	for i := range s.Status.Quiesced {
		q := &s.Status.Quiesced[i]
		switch q.State {
		case api.QuiescePending:
			settled = s.scaleDown(q) && settled
		case api.QuiesceDraining:
			settled = s.drain(q) && settled
		default: // drained, timed out or restored: settled
		}
	}
	if !settled {
		s.Status.Message = "quiescing: " + s.quiesceSummary()
		for _, q := range s.Status.Quiesced {
			if q.Message != "" && q.State == api.QuiescePending {
				s.Status.Message += fmt.Sprintf("; %s %s %s", q.Kind, q.Name, q.Message)
			}
		}
		return
	}
	for _, q := range s.Status.Quiesced {
		if q.State == api.QuiesceDrainTimedOut && s.onDrainTimeout() == api.DrainTimeoutAbort {
			msg := fmt.Sprintf("aborted: %s %s did not drain in time (onDrainTimeout: Abort); no target was restarted", q.Kind, q.Name)
			for i := range s.Status.Targets {
				s.Status.Targets[i].State, s.Status.Targets[i].Message = api.TargetSkipped, "rollout aborted"
			}
			// Recorded now, so a crash before the end still knows the rollout failed.
			s.SetCondition(api.ConditionFailed, metav1.ConditionTrue, api.ReasonDrainTimedOut, msg)
			s.Status.Message = msg
			s.Status.Phase = api.PhaseRestoring
			return
		}
	}
	s.Status.Phase = api.PhaseRestarting
	s.Status.Message = "restarting"
}

// scaleDown quiesces a pending workload of the list, unless it need not or may not yet be, and reports
// whether it is settled (nothing to wait for).
func (s *stepper) scaleDown(q *api.QuiescedWorkload) bool {
	name := s.in.Rollout.Name
	k := Key{q.Kind, q.Name}
	w := s.in.Workloads[k]
	switch {
	case !w.Exists:
		q.State, q.Message, q.DrainedAt = api.QuiesceDrained, "does not exist; nothing to quiesce", s.Now()
		return true
	case w.OptedOut && w.QuiescedBy != name:
		q.State, q.Message, q.DrainedAt = api.QuiesceDrained, "opted out of certrollout (certrollout.io/enabled: \"false\"); not quiesced", s.Now()
		return true
	case w.QuiescedBy == name:
		// Scaled down by this rollout before a crash: the annotation holds the original count (a
		// count the status already holds is not dropped should the annotation have lost it).
		q.OriginalReplicas = RecordedReplicas(w.QuiescedReplicas, q.OriginalReplicas)
	case heldBy(w.QuiescedBy) != "":
		// A MaintenanceHold keeps it at zero already: the rollout neither scales it nor restores it (its
		// marks are the hold's, which gives it back when released). It only waits, like for any quiesced
		// workload, for its pods to be gone.
		q.State, q.ScaledDownAt = api.QuiesceDraining, s.Now()
		q.Message = "held at zero replicas by MaintenanceHold " + heldBy(w.QuiescedBy) + "; left to the hold"
		return s.drain(q)
	case w.QuiescedBy != "":
		msg := "is quiesced by rollout " + w.QuiescedBy + "; waiting for it to restore the workload"
		if q.Message != msg {
			s.Event(rolloutstatus.Warning, api.ReasonQuiesceConflict, "%s %s %s", k.Kind, k.Name, msg)
		}
		q.Message = msg
		s.Wait(pollInterval)
		return false
	case !s.persisted(k):
		// The quiesce list is stored before anything is scaled down (the status update this
		// decision makes wakes the next step).
		q.Message = "recording the quiesce list before scaling down"
		s.Wait(time.Second)
		return false
	default:
		replicas := w.Replicas
		q.OriginalReplicas = &replicas
		s.actions = append(s.actions, Action{Type: ScaleDown, Key: k, Replicas: replicas})
		s.Event(rolloutstatus.Normal, api.ReasonScaledDown, "Scaled %s %s from %d to 0 replicas", k.Kind, k.Name, replicas)
	}
	q.State, q.ScaledDownAt, q.Message = api.QuiesceDraining, s.Now(), ""
	s.Wait(pollInterval)
	return false
}

// drain waits for a scaled-down workload's pods to go, up to its drain timeout, and reports whether it
// is settled (drained or timed out).
func (s *stepper) drain(q *api.QuiescedWorkload) bool {
	k := Key{q.Kind, q.Name}
	w := s.in.Workloads[k]
	spec := s.quiesceSpec(k)
	timeout := spec.EffectiveDrainTimeout()
	switch {
	case !w.Exists || w.Pods == 0:
		q.State, q.DrainedAt = api.QuiesceDrained, s.Now()
		s.Event(rolloutstatus.Normal, api.ReasonDrained, "%s %s has no pods left", k.Kind, k.Name)
	case !s.in.Now.Before(q.ScaledDownAt.Add(timeout)):
		q.State = api.QuiesceDrainTimedOut
		q.Message = fmt.Sprintf("%d pod(s) still present after the drain timeout of %s", w.Pods, timeout)
		s.Event(rolloutstatus.Warning, api.ReasonDrainTimedOut, "%s %s: %s", k.Kind, k.Name, q.Message)
	default:
		q.Message = fmt.Sprintf("waiting for %d pod(s) to terminate", w.Pods)
		s.Wait(min(pollInterval, q.ScaledDownAt.Add(timeout).Sub(s.in.Now)))
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

func (s *stepper) onDrainTimeout() api.DrainTimeoutAction {
	if s.in.Policy != nil && s.in.Policy.Spec.OnDrainTimeout != "" {
		return s.in.Policy.Spec.OnDrainTimeout
	}
	return api.DrainTimeoutAbort
}

func (s *stepper) restart() {
	spec := api.RolloutPolicySpec{}
	if s.in.Policy != nil {
		spec = s.in.Policy.Spec
	}
	halted := func() bool {
		return spec.OnFailure != api.FailureContinue && slices.ContainsFunc(s.Status.Targets, func(t api.TargetStatus) bool { return t.State == api.TargetFailed })
	}
	throttled := false
	ts := s.Status.Targets
	active := rolloutstatus.SettleThenStart(len(ts), spec.EffectiveMaxConcurrent(),
		func(i int) bool { return s.settleTarget(&ts[i], spec.EffectiveHealthTimeout()) },
		func(i int) (bool, bool) {
			switch {
			case ts[i].State != api.TargetPending:
				return false, false
			case halted():
				return false, true // the pending ones are skipped below
			case ts[i].Step > currentStep(ts):
				return false, true // an earlier step is still restarting (targets are in step order)
			case s.in.Throttled && s.in.RestartTokens <= 0:
				ts[i].Message = "waiting for the global restart rate (--restart-rate, --restart-burst)"
				throttled = true
				s.Wait(time.Second)
				return false, true
			}
			return s.startTarget(&ts[i]), false
		})
	if halted() {
		s.halt()
	}
	if active > 0 || throttled {
		s.Status.Message = "restarting: " + s.progress()
		return
	}
	s.Status.Phase = api.PhaseRestoring
}

// halt skips every pending target: an earlier one failed and the policy says onFailure: Halt.
func (s *stepper) halt() {
	for i := range s.Status.Targets {
		if t := &s.Status.Targets[i]; t.State == api.TargetPending {
			t.State, t.Message = api.TargetSkipped, "not restarted: an earlier target failed (onFailure: Halt)"
		}
	}
}

// settleTarget judges a target in flight and reports whether it still is.
func (s *stepper) settleTarget(t *api.TargetStatus, health time.Duration) bool {
	if t.State != api.TargetRestarting {
		return false
	}
	w := s.in.Workloads[Key{t.Kind, t.Name}]
	switch {
	case !w.Exists:
		s.targetFailed(t, "the workload was deleted during its rollout")
	case w.Rollout.Done && !w.showsRestart(s.in.Rollout.Name, t.RestartValue):
		// Done, but for a version that predates this rollout's restart (a reader that lags behind the
		// write): not a verdict on the restart.
		t.Message = "waiting to observe the restart"
		s.Wait(time.Second)
		return true
	case w.Rollout.Done:
		return s.verifyTarget(t, w, health)
	case w.Rollout.Failed != "":
		s.targetFailed(t, w.Rollout.Failed)
	case !s.in.Now.Before(t.StartedAt.Add(health)):
		s.targetFailed(t, fmt.Sprintf("rollout not finished within the health timeout of %s: %s", health, w.Rollout.Message))
	default:
		t.Message = w.Rollout.Message
		s.Wait(min(pollInterval, t.StartedAt.Add(health).Sub(s.in.Now)))
		return true
	}
	return false
}

// verifyTarget judges a target whose rollout is done by what its pods serve, where they can be probed,
// and reports whether it is still in flight (waiting for its pods to answer). Under verification
// Required a target that cannot prove it serves its new certificates fails.
func (s *stepper) verifyTarget(t *api.TargetStatus, w Workload, health time.Duration) bool {
	required := s.in.Policy != nil && s.in.Policy.Spec.Verification == api.VerificationRequired
	v := w.Verification
	timedOut := !s.in.Now.Before(t.StartedAt.Add(health))
	switch {
	case v == nil && required:
		s.targetFailed(t, "verification: Required, but the controller does not probe pods (--probe=false)")
		return false
	case v == nil:
	case !v.Probed:
		if required {
			s.targetFailed(t, "verification: Required, but the workload declares no TLS port to probe (annotation "+api.AnnotationProbe+", or a container port named https or *tls*)")
			return false
		}
	case !v.Answered && !timedOut:
		t.Message = "rolled out; waiting for its pods to answer a TLS probe: " + v.Message
		s.Wait(min(pollInterval, t.StartedAt.Add(health).Sub(s.in.Now)))
		return true
	case v.Verified:
		t.Verification = api.TargetVerified
		s.Event(rolloutstatus.Normal, api.ReasonVerified, "%s %s: %s", t.Kind, t.Name, v.Message)
	default:
		t.Verification = api.TargetNotVerified
		if required {
			s.targetFailed(t, "not verified: "+v.Message)
			return false
		}
		s.Event(rolloutstatus.Warning, api.ReasonNotVerified, "%s %s: %s", t.Kind, t.Name, v.Message)
	}
	t.State, t.FinishedAt, t.Message = api.TargetSucceeded, s.Now(), ""
	if t.Verification == api.TargetNotVerified {
		t.Message = "not verified: " + v.Message
	}
	s.Event(rolloutstatus.Normal, api.ReasonTargetHealthy, "%s %s finished its rollout", t.Kind, t.Name)
	return false
}

// verifiedCondition sums the targets' verifications up as the rollout's Verified condition; nil when no
// target was probed.
func verifiedCondition(targets []api.TargetStatus) *metav1.Condition {
	var verified int
	var not []string
	for _, t := range targets {
		switch t.Verification {
		case api.TargetVerified:
			verified++
		case api.TargetNotVerified:
			not = append(not, fmt.Sprintf("%s %s (%s)", t.Kind, t.Name, t.Message))
		}
	}
	switch {
	case len(not) > 0:
		return &metav1.Condition{Type: api.ConditionVerified, Status: metav1.ConditionFalse, Reason: api.ReasonNotVerified,
			Message: fmt.Sprintf("%d target(s) do not serve their new certificates: %s", len(not), strings.Join(not, "; "))}
	case verified > 0:
		return &metav1.Condition{Type: api.ConditionVerified, Status: metav1.ConditionTrue, Reason: api.ReasonVerified,
			Message: fmt.Sprintf("every pod of the %d probed target(s) serves its new certificates", verified)}
	}
	return nil
}

// startTarget restarts a pending target, or skips it, and reports whether it is now in flight.
func (s *stepper) startTarget(t *api.TargetStatus) bool {
	name := s.in.Rollout.Name
	k := Key{t.Kind, t.Name}
	w := s.in.Workloads[k]
	switch {
	case !w.Exists:
		t.State, t.Message = api.TargetSkipped, "the workload no longer exists"
		return false
	case w.OptedOut && w.RolledBy != name:
		t.State, t.Message = api.TargetSkipped, "opted out of certrollout (certrollout.io/enabled: \"false\") since the rollout began; not restarted"
		return false
	case s.upToDate(k, w):
		s.skipTarget(t, w)
		return false
	}
	t.State, t.StartedAt, t.RestartValue, t.Message = api.TargetRestarting, s.Now(), w.RestartValue, ""
	if w.RolledBy != name { // else restarted by this rollout before a crash: only wait for health
		s.actions = append(s.actions, Action{Type: Restart, Key: k, RestartValue: w.RestartValue})
		s.Event(rolloutstatus.Normal, api.ReasonRestarted, "Restarted %s %s", k.Kind, k.Name)
		s.in.RestartTokens--
	}
	s.Wait(pollInterval)
	return true
}

// upToDate reports whether target k already runs on the certificates the trigger rolls it onto
// (spec.trigger.certificates), restarted by someone else: the controller's direct restart, another
// rollout, or a restart certrollout recorded. Restarting it again would be a second rollout for one
// renewal. A target this rollout restarted before a crash is not up to date in this sense: it is waited
// for. Without a hash for k (a manual `certrollout restart`) a target is never up to date: restart means
// restart.
func (s *stepper) upToDate(k Key, w Workload) bool {
	want := s.in.Rollout.Spec.Trigger.Certificates[k.String()]
	return want != "" && w.LedgerHash == want && w.RolledBy != s.in.Rollout.Name
}

func (s *stepper) skipTarget(t *api.TargetStatus, w Workload) {
	t.State, t.FinishedAt = api.TargetUpToDate, s.Now()
	t.Message = "already runs on certificates " + w.LedgerHash + " (rolled onto them before this rollout reached it); not restarted again"
	s.Event(rolloutstatus.Normal, api.ReasonTargetUpToDate, "%s %s %s", t.Kind, t.Name, t.Message)
}

// skipUpToDate skips every pending target when all of them are up to date and reports whether it did;
// it changes nothing when any target still needs this rollout.
func (s *stepper) skipUpToDate() bool {
	pending := 0
	for _, t := range s.Status.Targets {
		switch t.State {
		case api.TargetPending:
			w := s.in.Workloads[Key{t.Kind, t.Name}]
			if !w.Exists || !s.upToDate(Key{t.Kind, t.Name}, w) {
				return false
			}
			pending++
		case api.TargetSkipped, api.TargetUpToDate:
		default:
			return false // restarting or restarted by this rollout: it goes on
		}
	}
	if pending == 0 {
		return false
	}
	for i := range s.Status.Targets {
		if t := &s.Status.Targets[i]; t.State == api.TargetPending {
			s.skipTarget(t, s.in.Workloads[Key{t.Kind, t.Name}])
		}
	}
	return true
}

func (s *stepper) targetFailed(t *api.TargetStatus, msg string) {
	t.State, t.FinishedAt, t.Message = api.TargetFailed, s.Now(), msg
	s.Event(rolloutstatus.Warning, api.ReasonTargetFailed, "%s %s failed: %s", t.Kind, t.Name, msg)
}

func (s *stepper) restore() {
	name := s.in.Rollout.Name
	for i := range s.Status.Quiesced {
		q := &s.Status.Quiesced[i]
		if q.State == api.QuiescePending || q.State == api.QuiesceRestored {
			continue
		}
		k := Key{q.Kind, q.Name}
		w := s.in.Workloads[k]
		switch {
		case w.Exists && w.QuiescedBy == name:
			s.restoreAction(k, w, q.OriginalReplicas, "")
		case w.Exists && heldBy(w.QuiescedBy) != "":
			// Never this rollout's to restore: the hold gives it back at its release.
			q.Message = "not restored: held by MaintenanceHold " + heldBy(w.QuiescedBy)
		}
		q.State, q.RestoredAt = api.QuiesceRestored, s.Now()
	}
	s.finish()
}

// finish ends the rollout once every quiesced workload is restored: Failed when it was aborted or a
// target failed, Succeeded otherwise.
func (s *stepper) finish() {
	if reason, msg := s.failure(); reason != "" {
		if len(s.Status.Quiesced) > 0 {
			msg += "; quiesced workloads restored"
		}
		s.Fail(reason, msg)
		return
	}
	restarted, upToDate, restored := 0, 0, 0
	for _, t := range s.Status.Targets {
		switch {
		case t.State == api.TargetSucceeded:
			restarted++
		case t.IsUpToDate():
			upToDate++
		}
	}
	for _, q := range s.Status.Quiesced {
		if q.State == api.QuiesceRestored {
			restored++
		}
	}
	msg := fmt.Sprintf("%d target(s) restarted", restarted)
	if upToDate > 0 {
		msg += fmt.Sprintf(", %d already on their certificates", upToDate)
	}
	if restored > 0 {
		msg += fmt.Sprintf(", %d quiesced workload(s) restored", restored)
	}
	s.Succeed(msg)
}

// failure is why the rollout fails, if it does: the abort recorded earlier, or its failed targets.
func (s *stepper) failure() (reason, msg string) {
	if c := apimeta.FindStatusCondition(s.Status.Conditions, api.ConditionFailed); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason, c.Message // aborted earlier
	}
	failed := 0
	for _, t := range s.Status.Targets {
		if t.State == api.TargetFailed {
			failed++
		}
	}
	if failed == 0 {
		return "", ""
	}
	return api.ReasonTargetFailed, fmt.Sprintf("%d of %d target(s) failed", failed, len(s.Status.Targets))
}

func (s *stepper) progress() string {
	done, upToDate := 0, 0
	for _, t := range s.Status.Targets {
		switch {
		case t.State == api.TargetSucceeded:
			done++
		case t.IsUpToDate():
			upToDate++
		}
	}
	p := fmt.Sprintf("%d/%d restarted", done, len(s.Status.Targets))
	if upToDate > 0 {
		p += fmt.Sprintf(", %d up to date", upToDate)
	}
	return p
}
