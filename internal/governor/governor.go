// Package governor decides what a RolloutPolicy does next: the status it reports, whether a CertRollout
// starts for the workloads it governs (and exactly which one), which of its old CertRollouts go, and
// which Events say so. It is pure, like internal/decide (one workload) and internal/orchestrate (one
// rollout): the controller gathers the policy, its workloads with their decisions already made, and its
// rollouts; Decide answers; the controller creates, deletes, records and writes the status.
//
// The rollout Decide asks for is named after the policy and the certificates its targets roll onto, so
// a controller that crashes after creating it finds it again instead of creating a second, and a
// finished rollout for the same certificates is never started again on its own (a failing target
// cannot loop). When the create finds the name already taken by a rollout the controller's cache did
// not show yet, the controller puts that rollout in Input.Existing and decides again: the second answer
// asks for no create and reports the rollout that exists. One function, two calls, no second code path.
package governor

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
)

// maxStaleNames bounds status.staleWorkloads (the CRD's MaxItems).
const maxStaleNames = 50

// Workload is one workload the policy governs, with what internal/decide decided for it.
type Workload struct {
	Ref      api.WorkloadReference
	Decision decide.Decision
	// RunningNotAfter is when the certificate its pods run on expires (its ledger); zero if unknown.
	RunningNotAfter time.Time
}

// Input is everything Decide looks at.
type Input struct {
	Now    time.Time
	Policy *api.RolloutPolicy
	// Parsed is the policy's spec as the controller parsed it: windows, and why it is invalid.
	Parsed orchestrate.Policy
	// Workloads are the governed workloads, in the order a rollout restarts them.
	Workloads []Workload
	// Rollouts are the CertRollouts that follow the policy, the controller's and those made by hand.
	Rollouts []api.CertRollout
	// Existing is the CertRollout found under the name of Result.Create when creating it failed because
	// the name was taken; nil on the first call.
	Existing *api.CertRollout
}

// Event is an Event to record on the policy.
type Event struct {
	Warning bool
	Reason  string
	Action  string
	Note    string
	// Related is the CertRollout the Event is about, if any.
	Related *api.CertRollout
}

// Result is Decide's answer.
type Result struct {
	Status api.RolloutPolicyStatus
	// Create is the CertRollout to create; nil when none is due.
	Create *api.CertRollout
	// Prune are the finished CertRollouts beyond the history limit, oldest last, to delete.
	Prune []*api.CertRollout
	// HistoryLimit is the limit Prune keeps to.
	HistoryLimit int
	Events       []Event
	// RequeueAfter asks to be called again after this long (the soonest waiting workload); zero means
	// when something changes.
	RequeueAfter time.Duration
}

// Decide decides what the policy does next.
func Decide(in Input) Result {
	g := tally(in)
	d := &decider{in: in, g: g, status: *in.Policy.Status.DeepCopy()}
	d.pending = d.decidePending()
	d.writeStatus()
	return Result{
		Status:       d.status,
		Create:       d.create,
		Prune:        prune(in),
		HistoryLimit: in.Policy.Spec.EffectiveRolloutHistoryLimit(),
		Events:       d.events,
		RequeueAfter: g.requeue,
	}
}

// facts are what the workloads and rollouts add up to.
type facts struct {
	due, stale   []Workload
	waits        int // workloads that wait on their own (settle period, cooldown, a cascade)
	requeue      time.Duration
	certificates map[string]string // the due workloads' Key → the certificate set they roll onto
	earliest     time.Time         // the earliest expiry the due workloads' pods run on
	active       *api.CertRollout  // a rollout that has not finished
	last         *api.CertRollout  // the newest rollout
	lastFinished *api.CertRollout
}

// tally sorts the workloads (due, stale, waiting) and the rollouts (running, newest).
func tally(in Input) facts {
	g := facts{certificates: map[string]string{}}
	for _, w := range in.Workloads {
		if len(w.Decision.StalePods) > 0 && w.Decision.Action != decide.ActionNone {
			g.stale = append(g.stale, w)
		}
		switch w.Decision.Action {
		case decide.ActionDelegate:
			g.due = append(g.due, w)
			g.certificates[w.Ref.Key()] = w.Decision.Set.Hash
			if na := w.RunningNotAfter; !na.IsZero() && (g.earliest.IsZero() || na.Before(g.earliest)) {
				g.earliest = na
			}
		case decide.ActionReload:
			g.waits++ // its own reconciler calls the hook; the policy hears of it when the workload changes
		case decide.ActionWait:
			g.waits++
			if g.requeue == 0 || w.Decision.RequeueAfter < g.requeue {
				g.requeue = w.Decision.RequeueAfter
			}
		default: // up to date, recorded, blocked: the workload reconciler reports those
		}
	}
	for i := range in.Rollouts {
		ro := &in.Rollouts[i]
		if !ro.Status.Phase.Finished() {
			g.active = ro
		} else if g.lastFinished == nil || newer(ro, g.lastFinished) {
			g.lastFinished = ro
		}
		if g.last == nil || newer(ro, g.last) {
			g.last = ro
		}
	}
	return g
}

type decider struct {
	in      Input
	g       facts
	status  api.RolloutPolicyStatus
	pending metav1.Condition
	// stalled is set when the last rollout for the due certificates finished and is not retried.
	stalled bool
	create  *api.CertRollout
	events  []Event
}

// decidePending says why stale workloads wait, and asks for a rollout when they need one.
func (d *decider) decidePending() metav1.Condition {
	in, g := d.in, d.g
	switch {
	case g.active != nil:
		return inProgress(g.active)
	case len(g.due) == 0 && len(g.stale) > 0:
		return pending(api.ReasonWaiting, "%d workload(s) on old certificates wait (settle period, cooldown, a reload or its probes, or a blocked rollout; see their Events)", len(g.stale))
	case len(g.due) == 0:
		return metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionFalse, Reason: api.ReasonUpToDate, Message: "no governed workload waits for a restart"}
	case in.Parsed.Invalid != "":
		return pending(api.ReasonInvalidPolicy, "%d workload(s) wait for the policy to be fixed", len(g.due))
	case in.Policy.Spec.Suspend:
		return pending(api.ReasonSuspended, "%d workload(s) wait for the policy to be resumed", len(g.due))
	}
	want := d.rollout()
	existing := d.existing(want.Name)
	if existing == nil {
		d.create, d.g.last = want, want
		d.events = append(d.events, Event{Reason: api.ReasonRolloutCreated, Action: "Create", Related: want,
			Note: fmt.Sprintf("Created CertRollout %s for %d workload(s)", want.Name, len(g.due))})
		return pending(api.ReasonRolloutInProgress, "CertRollout %s is starting", want.Name)
	}
	d.g.last = existing
	if !existing.Status.Phase.Finished() {
		return inProgress(existing)
	}
	// The same workloads onto the same certificates were already rolled out: a failed rollout is not
	// retried on its own (create a CertRollout to retry), so a broken target cannot loop.
	d.stalled = true
	return pending(api.ReasonLastRolloutFailed, "CertRollout %s for these certificates ended %s: %s; create a CertRollout to retry",
		existing.Name, existing.Status.Phase, existing.Status.Message)
}

func pending(reason, format string, args ...any) metav1.Condition {
	return metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func inProgress(ro *api.CertRollout) metav1.Condition {
	return pending(api.ReasonRolloutInProgress, "CertRollout %s is %s", ro.Name, cmp.Or(string(ro.Status.Phase), "starting"))
}

// existing is the rollout already named name: one the policy lists, or the one a create ran into.
func (d *decider) existing(name string) *api.CertRollout {
	if e := d.in.Existing; e != nil && e.Name == name {
		return e
	}
	for i := range d.in.Rollouts {
		if d.in.Rollouts[i].Name == name {
			return &d.in.Rollouts[i]
		}
	}
	return nil
}

// rollout is the CertRollout for the due workloads, named after the policy and the certificates they
// roll onto. Its trigger is Deadline when it is due outside every window because the certificate the
// pods run on is within the policy's expiry deadline.
func (d *decider) rollout() *api.CertRollout {
	p, g := d.in.Policy, d.g
	ro := &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: RolloutName(p.Name, g.certificates), Labels: map[string]string{api.LabelPolicy: p.Name}},
		Spec: api.CertRolloutSpec{Policy: p.Name, Trigger: api.RolloutTrigger{
			Type: api.TriggerCertificateRenewed, Certificates: g.certificates,
			Message: fmt.Sprintf("%d workload(s) run on certificates older than the ones they use", len(g.due)),
		}},
	}
	if st := schedule.At(d.in.Parsed.Windows, d.in.Now); !st.Open && p.Spec.PastDeadline(g.earliest, d.in.Now) {
		ro.Spec.Trigger.Type = api.TriggerDeadline
		ro.Spec.Trigger.Message += fmt.Sprintf("; the certificate they run on expires at %s, within the expiry deadline", g.earliest.UTC().Format(time.RFC3339))
	}
	for _, w := range g.due {
		ro.Spec.Targets = append(ro.Spec.Targets, w.Ref)
	}
	return ro
}

// RolloutName is the name of policyName's rollout onto certificates (workload key → certificate set
// hash): "<policy>-<10 hex digits of their hash>", the policy's name cut so the whole stays a valid
// object name.
func RolloutName(policyName string, certificates map[string]string) string {
	keys := make([]string, 0, len(certificates))
	for k, v := range certificates {
		keys = append(keys, k+"="+v)
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	suffix := hex.EncodeToString(sum[:5])
	const maxLen = 253
	if len(policyName)+1+len(suffix) > maxLen {
		policyName = policyName[:maxLen-1-len(suffix)]
	}
	return policyName + "-" + suffix
}

// writeStatus fills the status: counts, the next window, the last rollout and the conditions.
func (d *decider) writeStatus() {
	in, g, s := d.in, d.g, &d.status
	s.ObservedGeneration = in.Policy.Generation
	s.Workloads = int32(len(in.Workloads))     //nolint:gosec // bounded by the cache
	s.StaleWorkloadCount = int32(len(g.stale)) //nolint:gosec // bounded by the cache
	s.StaleWorkloads = nil
	for _, w := range g.stale[:min(len(g.stale), maxStaleNames)] {
		s.StaleWorkloads = append(s.StaleWorkloads, w.Ref)
	}
	s.NextWindow = nil
	if st := schedule.At(in.Parsed.Windows, in.Now); !st.Open {
		s.NextWindow = &metav1.Time{Time: st.NextOpen}
	}
	if d.g.last != nil {
		s.LastRollout = &api.RolloutReference{Name: d.g.last.Name, Phase: d.g.last.Status.Phase}
	}
	d.writeConditions()
}

// prune lists the policy's oldest finished CertRollouts beyond its rolloutHistoryLimit.
func prune(in Input) []*api.CertRollout {
	limit := in.Policy.Spec.EffectiveRolloutHistoryLimit()
	var finished []*api.CertRollout
	for i := range in.Rollouts {
		if in.Rollouts[i].Status.Phase.Finished() && in.Rollouts[i].DeletionTimestamp == nil {
			finished = append(finished, &in.Rollouts[i])
		}
	}
	if len(finished) <= limit {
		return nil
	}
	slices.SortFunc(finished, func(a, b *api.CertRollout) int {
		switch {
		case newer(a, b):
			return -1
		case newer(b, a):
			return 1
		}
		return 0
	})
	return finished[limit:]
}

func newer(a, b *api.CertRollout) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.After(b.CreationTimestamp.Time)
	}
	return a.Name > b.Name
}

// set records c with the policy's generation; a condition that changes status carries now as its
// transition time, so the status is a function of the input.
func (d *decider) set(c metav1.Condition) {
	c.ObservedGeneration = d.in.Policy.Generation
	c.LastTransitionTime = metav1.Time{Time: d.in.Now}
	apimeta.SetStatusCondition(&d.status.Conditions, c)
}

// unset removes a kstatus condition that is only present while True.
func (d *decider) unset(conditionType string) {
	apimeta.RemoveStatusCondition(&d.status.Conditions, conditionType)
}
