package controller

import (
	"context"
	"fmt"
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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/governor"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
)

// governing returns the RolloutPolicy that governs obj: of the policies in its namespace whose selector
// matches its labels, the first by name (ok false: none). An invalid policy still governs: its workloads
// wait for it to be fixed rather than restart outside the windows someone meant to set.
func (r *gatherer) governing(ctx context.Context, obj client.Object) (api.RolloutPolicy, bool, error) {
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
func (r *gatherer) governed(ctx context.Context, p *api.RolloutPolicy) ([]governedWorkload, error) {
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
	n, _ := strconv.Atoi(g.obj.GetAnnotations()[api.AnnotationOrder])
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
func (r *gatherer) parsePolicy(ctx context.Context, p *api.RolloutPolicy, targets []governedWorkload) (orchestrate.Policy, error) {
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
	for i, st := range p.Spec.Steps {
		if st.Selector != nil {
			if _, err := metav1.LabelSelectorAsSelector(st.Selector); err != nil {
				problems = append(problems, fmt.Sprintf("steps[%d].selector: %v", i, err))
			}
		}
		for _, w := range st.Workloads {
			if w.Namespace != "" && w.Namespace != p.Namespace {
				problems = append(problems, fmt.Sprintf("steps[%d]: %s %s/%s is in another namespace; a policy only reaches its own (%s)", i, w.Kind, w.Namespace, w.Name, p.Namespace))
			}
		}
	}
	for i, q := range p.Spec.Quiesce {
		k, ok := kindNamed(q.Kind)
		switch {
		case q.Namespace != "" && q.Namespace != p.Namespace:
			problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s/%s is in another namespace; a policy only reaches its own (%s)", i, q.Kind, q.Namespace, q.Name, p.Namespace))
			continue
		case !ok || (q.Kind != api.KindDeployment && q.Kind != api.KindStatefulSet):
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
		if decide.OptedOut(obj.GetAnnotations()) {
			problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s is opted out of certrollout (%s: \"false\"); it is not quiesced", i, q.Kind, q.Name, api.AnnotationEnabled))
		}
		if w := orchestrate.DrainWarning(i, q, gracePeriod(k.podSpec(obj)), p.Spec.OnDrainTimeout); w != "" {
			out.Warnings = append(out.Warnings, w)
		}
		for _, t := range targets {
			if t.kind.name == q.Kind && t.obj.GetName() == q.Name {
				problems = append(problems, fmt.Sprintf("quiesce[%d]: %s %s is also selected by the policy; it cannot be both quiesced and restarted", i, q.Kind, q.Name))
			}
		}
	}
	if p.Spec.Verification == api.VerificationRequired && r.acting && r.prober == nil {
		problems = append(problems, "verification: Required needs the controller to probe pods, and it runs with --probe=false")
	}
	out.Invalid = strings.Join(problems, "; ")
	return out, nil
}

// gracePeriod is how long the kubelet lets a pod of spec take to stop (the API server's default when unset).
func gracePeriod(spec *corev1.PodSpec) time.Duration {
	if spec != nil && spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	return corev1.DefaultTerminationGracePeriodSeconds * time.Second
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
// are due for a restart and none of its rollouts is running. It gathers, internal/governor decides, and
// it applies the answer.
type policyReconciler struct {
	*gatherer
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
	in, err := r.policyInput(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := governor.Decide(in)
	if res.Create != nil {
		existing, created, err := r.createRollout(ctx, res.Create)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !created { // the cache did not show it yet: decide again, knowing it
			in.Existing = existing
			res = governor.Decide(in)
		}
	}
	return r.applyPolicy(ctx, &p, res)
}

// policyInput gathers what governor.Decide looks at: the parsed policy, each governed workload with its
// workload decision, and the policy's rollouts.
func (r *gatherer) policyInput(ctx context.Context, p *api.RolloutPolicy) (governor.Input, error) {
	in := governor.Input{Now: r.opts.Clock(), Policy: p}
	workloads, err := r.governed(ctx, p)
	if err != nil {
		return in, err
	}
	if in.Parsed, err = r.parsePolicy(ctx, p, workloads); err != nil {
		return in, err
	}
	probesPending := false
	for _, w := range workloads {
		pin, _, err := r.gather(ctx, w.kind, w.obj)
		if err != nil {
			return in, err
		}
		// Decided as the workload's own reconciler decides, with its probes: a workload that reloaded by
		// itself, is still receiving its files, or is being reloaded through its hook is not due.
		d, pending := r.decideGoverned(ctx, w.kind, w.obj, &pin)
		probesPending = probesPending || pending
		in.Workloads = append(in.Workloads, governor.Workload{Ref: w.ref(), Decision: d,
			RunningNotAfter: decide.ReadLedger(w.obj.GetAnnotations()).NotAfter})
	}
	if probesPending {
		holdForProbes(in.Workloads)
	}
	in.Rollouts, err = r.rolloutsOf(ctx, p)
	return in, err
}

// holdForProbes turns the due workloads into waiting ones for servedPoll: another governed workload's
// probes have not decided yet, and the policy's next CertRollout should take them all at once.
func holdForProbes(ws []governor.Workload) {
	for i := range ws {
		if d := &ws[i].Decision; d.Action == decide.ActionDelegate {
			d.Action, d.RequeueAfter = decide.ActionWait, servedPoll
			d.Message += "; held a moment for the probes of another workload of the policy, to roll them together"
		}
	}
}

// createRollout creates ro. When its name is taken (a controller that crashed after creating it, or a
// cache that does not show it yet), it returns the CertRollout that exists and created false.
func (r *policyReconciler) createRollout(ctx context.Context, ro *api.CertRollout) (*api.CertRollout, bool, error) {
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

// applyPolicy deletes the rollouts beyond the history limit, records the Events and writes the status if
// it changed.
func (r *policyReconciler) applyPolicy(ctx context.Context, p *api.RolloutPolicy, res governor.Result) (ctrl.Result, error) {
	created := ""
	if res.Create != nil {
		created = res.Create.Name
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Decided for RolloutPolicy", "policy", p.Name, "reason", readyReason(res.Status.Conditions),
		"workloads", res.Status.Workloads, "staleWorkloads", res.Status.StaleWorkloadCount, "rollout", created, "requeueAfter", res.RequeueAfter)
	for _, ro := range res.Prune {
		if err := client.IgnoreNotFound(r.client.Delete(ctx, ro, client.Preconditions{UID: &ro.UID})); err != nil {
			return ctrl.Result{}, err
		}
		ctrl.LoggerFrom(ctx).Info("Deleted an old CertRollout", "rollout", ro.Name, "policy", p.Name, "historyLimit", res.HistoryLimit)
	}
	for _, e := range res.Events {
		eventType := corev1.EventTypeNormal
		if e.Warning {
			eventType = corev1.EventTypeWarning
		}
		var related runtime.Object
		if e.Related != nil {
			related = e.Related
		}
		r.recorder.Eventf(p, related, eventType, e.Reason, e.Action, "%s", fitNote(e.Note))
	}
	if equality.Semantic.DeepEqual(res.Status, p.Status) {
		return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
	}
	p.Status = res.Status
	if err := r.client.Status().Update(ctx, p); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
}

// rolloutsOf lists the CertRollouts that follow p, the controller's and those created by hand.
func (r *gatherer) rolloutsOf(ctx context.Context, p *api.RolloutPolicy) ([]api.CertRollout, error) {
	var list api.CertRolloutList
	if err := r.client.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingFields{rolloutPolicyIndex: p.Name}); err != nil {
		return nil, err
	}
	return list.Items, nil
}
