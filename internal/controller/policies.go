package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/policy"
	"github.com/certrollout/certrollout/internal/schedule"
)

// Labels and annotations on CertRollouts.
const (
	// LabelPolicy names the RolloutPolicy a CertRollout the controller created follows (for kubectl -l).
	LabelPolicy = "certrollout.io/policy"
	// AnnotationOrder orders a policy's targets in its rollouts: lower first (default 0), then by kind
	// and name.
	AnnotationOrder = "certrollout.io/order"
)

// Event reasons on RolloutPolicies.
const (
	ReasonInvalidPolicy     = "InvalidPolicy"
	ReasonRolloutCreated    = "RolloutCreated"
	ReasonUpToDate          = "UpToDate"
	ReasonRolloutInProgress = "RolloutInProgress"
	ReasonSuspended         = "Suspended"
	ReasonLastRolloutFailed = "LastRolloutFailed"
	ReasonWaiting           = "Waiting"
)

// governing returns the RolloutPolicy that governs obj: of the policies in its namespace whose selector
// matches its labels, the first by name (ok false: none). An invalid policy still governs: its workloads
// wait for it to be fixed rather than restart outside the windows someone meant to set.
func (r *discovery) governing(ctx context.Context, obj client.Object) (api.RolloutPolicy, bool, error) {
	if !r.policies {
		return api.RolloutPolicy{}, false, nil
	}
	var list api.RolloutPolicyList
	if err := r.client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return api.RolloutPolicy{}, false, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(obj.GetLabels())) {
			return p, true, nil
		}
	}
	return api.RolloutPolicy{}, false, nil
}

// governed lists the workloads p governs.
func (r *discovery) governed(ctx context.Context, p *api.RolloutPolicy) ([]governedWorkload, error) {
	sel, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector)
	if err != nil {
		return nil, nil //nolint:nilerr // an unparsable selector governs nothing; parsePolicy reports it
	}
	var out []governedWorkload
	for _, k := range kinds {
		if !k.orchestrated {
			continue
		}
		list := k.newList()
		if err := r.client.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, err
		}
		objs, err := apimeta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			obj, ok := o.(client.Object)
			if !ok || obj.GetDeletionTimestamp() != nil {
				continue
			}
			g, found, err := r.governing(ctx, obj)
			if err != nil {
				return nil, err
			}
			if found && g.Name == p.Name {
				out = append(out, governedWorkload{kind: k, obj: obj})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out, nil
}

type governedWorkload struct {
	kind kind
	obj  client.Object
}

func (g governedWorkload) order() int {
	n, _ := strconv.Atoi(g.obj.GetAnnotations()[AnnotationOrder])
	return n
}

func (g governedWorkload) less(o governedWorkload) bool {
	if a, b := g.order(), o.order(); a != b {
		return a < b
	}
	if g.kind.name != o.kind.name {
		return g.kind.name < o.kind.name
	}
	return g.obj.GetName() < o.obj.GetName()
}

func (g governedWorkload) ref() api.WorkloadReference {
	return api.WorkloadReference{Kind: g.kind.name, Name: g.obj.GetName()}
}

// parsePolicy checks what the CRD schema cannot: cron expressions, time zones, that quiesced workloads
// exist in the policy's namespace and are not also restarted by it.
func (r *discovery) parsePolicy(ctx context.Context, p *api.RolloutPolicy, targets []governedWorkload) (orchestrate.Policy, error) {
	out := orchestrate.Policy{Name: p.Name, Spec: p.Spec}
	var problems []string
	if _, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector); err != nil {
		problems = append(problems, "selector: "+err.Error())
	}
	for i, w := range p.Spec.Windows {
		win, err := schedule.Parse(w.Schedule, w.Duration.Duration, w.TimeZone)
		if err != nil {
			problems = append(problems, fmt.Sprintf("windows[%d]: %v", i, err))
			continue
		}
		out.Windows = append(out.Windows, win)
	}
	for i, q := range p.Spec.Quiesce {
		k, ok := kindNamed(q.Kind)
		switch {
		case q.Namespace != "" && q.Namespace != p.Namespace:
			problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s/%s is in another namespace; a policy only reaches its own (%s)", i, q.Kind, q.Namespace, q.Name, p.Namespace))
			continue
		case !ok || (q.Kind != policy.KindDeployment && q.Kind != policy.KindStatefulSet):
			problems = append(problems, fmt.Sprintf("quiesce[%d]: kind %q cannot be scaled; use Deployment or StatefulSet", i, q.Kind))
			continue
		}
		obj := k.newObj()
		err := r.client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: q.Name}, obj)
		if apierrors.IsNotFound(err) {
			problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s does not exist in namespace %s", i, q.Kind, q.Name, p.Namespace))
			continue
		}
		if err != nil {
			return out, err
		}
		if policy.OptedOut(obj.GetAnnotations()) {
			problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s is opted out of certrollout (%s: \"false\"); it is not quiesced", i, q.Kind, q.Name, policy.AnnotationEnabled))
		}
		for _, t := range targets {
			if t.kind.name == q.Kind && t.obj.GetName() == q.Name {
				problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s is also selected by the policy; it cannot be both quiesced and restarted", i, q.Kind, q.Name))
			}
		}
	}
	out.Invalid = strings.Join(problems, "; ")
	return out, nil
}

func kindNamed(name string) (kind, bool) {
	for _, k := range kinds {
		if k.name == name {
			return k, true
		}
	}
	return kind{}, false
}

// policyReconciler keeps a RolloutPolicy's status and creates a CertRollout when workloads it governs
// are due for a restart and none of its rollouts is running.
type policyReconciler struct {
	*discovery
	recorder events.EventRecorder
}

func (r *policyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p api.RolloutPolicy
	if err := r.client.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if p.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	now := r.opts.Clock()
	workloads, err := r.governed(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	parsed, err := r.parsePolicy(ctx, &p, workloads)
	if err != nil {
		return ctrl.Result{}, err
	}
	var due, stale []governedWorkload
	var requeue time.Duration
	certificates := map[string]string{}
	earliest := time.Time{}
	for _, w := range workloads {
		in, _, err := r.gather(ctx, w.kind, w.obj)
		if err != nil {
			return ctrl.Result{}, err
		}
		d := policy.Decide(in)
		if len(d.StalePods) > 0 && d.Action != policy.ActionNone {
			stale = append(stale, w)
		}
		switch d.Action {
		case policy.ActionDelegate:
			due = append(due, w)
			certificates[w.kind.name+"/"+w.obj.GetName()] = d.Set.Hash
			if na := policy.ReadLedger(w.obj.GetAnnotations()).NotAfter; !na.IsZero() && (earliest.IsZero() || na.Before(earliest)) {
				earliest = na
			}
		case policy.ActionWait:
			if requeue == 0 || d.RequeueAfter < requeue {
				requeue = d.RequeueAfter
			}
		default: // up to date, recorded, blocked (the workload reconciler reports those)
		}
	}
	rollouts, err := r.rolloutsOf(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	var active, last, lastFinished *api.CertRollout
	for i := range rollouts {
		ro := &rollouts[i]
		if !ro.Status.Phase.Finished() {
			active = ro
		} else if lastFinished == nil || newer(ro, lastFinished) {
			lastFinished = ro
		}
		if last == nil || newer(ro, last) {
			last = ro
		}
	}
	if err := r.pruneHistory(ctx, &p, rollouts); err != nil {
		return ctrl.Result{}, err
	}

	status := p.Status.DeepCopy()
	status.ObservedGeneration = p.Generation
	status.Workloads = int32(len(workloads))      //nolint:gosec // bounded by the cache
	status.StaleWorkloadCount = int32(len(stale)) //nolint:gosec // bounded by the cache
	status.StaleWorkloads = nil
	for i, w := range stale {
		if i == 50 {
			break
		}
		status.StaleWorkloads = append(status.StaleWorkloads, w.ref())
	}
	status.NextWindow = nil
	if st := schedule.At(parsed.Windows, now); !st.Open {
		status.NextWindow = &metav1.Time{Time: st.NextOpen}
	}

	valid := metav1.Condition{Type: api.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", Message: "the policy can be followed"}
	if parsed.Invalid != "" {
		valid = metav1.Condition{Type: api.ConditionValid, Status: metav1.ConditionFalse, Reason: ReasonInvalidPolicy, Message: parsed.Invalid}
		if c := apimeta.FindStatusCondition(p.Status.Conditions, api.ConditionValid); c == nil || c.Message != parsed.Invalid {
			r.recorder.Eventf(&p, nil, corev1.EventTypeWarning, ReasonInvalidPolicy, "Validate", "%s", fitNote(parsed.Invalid))
		}
	}
	pending := metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionFalse, Reason: ReasonUpToDate, Message: "no governed workload waits for a restart"}
	switch {
	case active != nil:
		pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonRolloutInProgress,
			Message: fmt.Sprintf("CertRollout %s is %s", active.Name, orDefault(string(active.Status.Phase), "starting"))}
	case len(due) == 0:
	case parsed.Invalid != "":
		pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonInvalidPolicy,
			Message: fmt.Sprintf("%d workload(s) wait for the policy to be fixed", len(due))}
	case p.Spec.Suspend:
		pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonSuspended,
			Message: fmt.Sprintf("%d workload(s) wait for the policy to be resumed", len(due))}
	default:
		ro, created, err := r.createRollout(ctx, &p, &parsed, due, certificates, earliest, now)
		if err != nil {
			return ctrl.Result{}, err
		}
		last = ro
		switch {
		case created:
			r.recorder.Eventf(&p, ro, corev1.EventTypeNormal, ReasonRolloutCreated, "Create", "Created CertRollout %s for %d workload(s)", ro.Name, len(due))
			pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonRolloutInProgress, Message: "CertRollout " + ro.Name + " is starting"}
		case !ro.Status.Phase.Finished():
			pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonRolloutInProgress,
				Message: fmt.Sprintf("CertRollout %s is %s", ro.Name, orDefault(string(ro.Status.Phase), "starting"))}
		default:
			// The same workloads onto the same certificates were already rolled out: a failed rollout is
			// not retried on its own (create a CertRollout to retry), so a broken target cannot loop.
			pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonLastRolloutFailed,
				Message: fmt.Sprintf("CertRollout %s for these certificates ended %s: %s; create a CertRollout to retry", ro.Name, ro.Status.Phase, ro.Status.Message)}
		}
	}
	if len(due) == 0 && len(stale) > 0 && active == nil {
		pending = metav1.Condition{Type: api.ConditionPending, Status: metav1.ConditionTrue, Reason: ReasonWaiting,
			Message: fmt.Sprintf("%d workload(s) on old certificates wait (settle period, cooldown or a blocked rollout; see their Events)", len(stale))}
	}
	valid.ObservedGeneration, pending.ObservedGeneration = p.Generation, p.Generation
	apimeta.SetStatusCondition(&status.Conditions, valid)
	apimeta.SetStatusCondition(&status.Conditions, pending)
	if last != nil {
		status.LastRollout = &api.RolloutReference{Name: last.Name, Phase: last.Status.Phase}
	}
	if lastFinished != nil {
		result := metav1.Condition{Type: api.ConditionLastRolloutSucceeded, Status: metav1.ConditionTrue, Reason: orchestrate.ReasonSucceeded,
			Message: fmt.Sprintf("CertRollout %s: %s", lastFinished.Name, lastFinished.Status.Message), ObservedGeneration: p.Generation}
		if lastFinished.Status.Phase == api.PhaseFailed {
			result.Status, result.Reason = metav1.ConditionFalse, orchestrate.ReasonFailed
			if c := apimeta.FindStatusCondition(lastFinished.Status.Conditions, api.ConditionFailed); c != nil && c.Reason != "" {
				result.Reason = c.Reason
			}
		}
		apimeta.SetStatusCondition(&status.Conditions, result)
	}
	if !equality.Semantic.DeepEqual(status, &p.Status) {
		p.Status = *status
		if err := r.client.Status().Update(ctx, &p); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func newer(a, b *api.CertRollout) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.After(b.CreationTimestamp.Time)
	}
	return a.Name > b.Name
}

// pruneHistory deletes the policy's oldest finished CertRollouts beyond its rolloutHistoryLimit.
func (r *policyReconciler) pruneHistory(ctx context.Context, p *api.RolloutPolicy, rollouts []api.CertRollout) error {
	limit := int(p.Spec.RolloutHistoryLimit)
	if limit <= 0 {
		limit = 10
	}
	var finished []*api.CertRollout
	for i := range rollouts {
		if rollouts[i].Status.Phase.Finished() && rollouts[i].DeletionTimestamp == nil {
			finished = append(finished, &rollouts[i])
		}
	}
	if len(finished) <= limit {
		return nil
	}
	sort.Slice(finished, func(i, j int) bool { return newer(finished[i], finished[j]) })
	for _, ro := range finished[limit:] {
		if err := client.IgnoreNotFound(r.client.Delete(ctx, ro, client.Preconditions{UID: &ro.UID})); err != nil {
			return err
		}
		ctrl.LoggerFrom(ctx).Info("Deleted an old CertRollout", "certrollout", ro.Name, "policy", p.Name, "historyLimit", limit)
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// rolloutsOf lists the CertRollouts that follow p, the controller's and those created by hand.
func (r *discovery) rolloutsOf(ctx context.Context, p *api.RolloutPolicy) ([]api.CertRollout, error) {
	var list api.CertRolloutList
	if err := r.client.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingFields{rolloutPolicyIndex: p.Name}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// createRollout creates the CertRollout for due, named after the policy and the certificates the
// workloads roll onto: a controller that crashes after creating it finds it again instead of creating a
// second. created is false when it already existed.
func (r *policyReconciler) createRollout(ctx context.Context, p *api.RolloutPolicy, parsed *orchestrate.Policy, due []governedWorkload,
	certificates map[string]string, earliest, now time.Time,
) (*api.CertRollout, bool, error) {
	keys := make([]string, 0, len(certificates))
	for k, v := range certificates {
		keys = append(keys, k+"="+v)
	}
	slices.Sort(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	name := rolloutName(p.Name, hex.EncodeToString(sum[:5]))
	ro := &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: name, Labels: map[string]string{LabelPolicy: p.Name}},
		Spec: api.CertRolloutSpec{Policy: p.Name, Trigger: api.RolloutTrigger{
			Type: api.TriggerCertificateRenewed, Certificates: certificates,
			Message: fmt.Sprintf("%d workload(s) run on certificates older than the ones they use", len(due)),
		}},
	}
	if st := schedule.At(parsed.Windows, now); !st.Open && p.Spec.ExpiryDeadline != nil && !earliest.IsZero() && earliest.Sub(now) <= p.Spec.ExpiryDeadline.Duration {
		ro.Spec.Trigger.Type = api.TriggerDeadline
		ro.Spec.Trigger.Message += fmt.Sprintf("; the certificate they run on expires at %s, within the expiry deadline", earliest.UTC().Format(time.RFC3339))
	}
	for _, w := range due {
		ro.Spec.Targets = append(ro.Spec.Targets, w.ref())
	}
	err := r.client.Create(ctx, ro)
	if err == nil {
		return ro, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, false, err
	}
	existing := &api.CertRollout{}
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(ro), existing); err != nil {
		return nil, false, err
	}
	return existing, false, nil
}

// rolloutName is "<policy>-<suffix>", the policy's name cut so the whole stays a valid object name.
func rolloutName(policyName, suffix string) string {
	const maxLen = 253
	if len(policyName)+1+len(suffix) > maxLen {
		policyName = policyName[:maxLen-1-len(suffix)]
	}
	return policyName + "-" + suffix
}
