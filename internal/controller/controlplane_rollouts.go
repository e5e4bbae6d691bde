package controller

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cporchestrate"
	"github.com/certrollout/certrollout/internal/restart"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
)

// controlPlaneRolloutReconciler drives ControlPlaneRollouts through cporchestrate.Next: gather the
// control-plane Nodes, the agents' NodeCertificates, the Lease and the quiesce list, decide, make the
// writes, record the status. It runs only in the cluster-wide controller (NodeCertificates, Nodes and
// ControlPlaneRollouts are cluster-scoped).
type controlPlaneRolloutReconciler struct {
	*gatherer
	recorder events.EventRecorder
	// leaseNamespace is where the node agents take the Lease api.ControlPlaneLeaseName.
	leaseNamespace string
}

// cpObserved is a workload of the quiesce list as read, for the writes.
type cpObserved struct {
	obj   client.Object
	state cporchestrate.Workload
}

func (r *controlPlaneRolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ro api.ControlPlaneRollout
	if err := r.client.Get(ctx, req.NamespacedName, &ro); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ro.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the sweeper restores what it quiesced once it is gone
	}
	in, seen, err := r.gatherControlPlane(ctx, &ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := cporchestrate.Next(in)
	for _, a := range res.Actions {
		if err := r.actControlPlane(ctx, &ro, a, seen); err != nil {
			if apierrors.IsConflict(err) {
				ctrl.LoggerFrom(ctx).V(1).Info("Quiesced workload changed before the write; observing it again", "workload", klog.KRef(a.Key.Namespace, a.Key.Name))
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, err
		}
	}
	if err := r.recordControlPlane(ctx, &ro, res.ControlPlaneOutcome); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
}

// recordControlPlane records the step's Events, then the status when it changed (see record).
func (r *controlPlaneRolloutReconciler) recordControlPlane(ctx context.Context, ro *api.ControlPlaneRollout, out rolloutstatus.ControlPlaneOutcome) error {
	ctrl.LoggerFrom(ctx).V(1).Info("Decided the next step of ControlPlaneRollout", "rollout", ro.Name, "phase", out.Status.Phase,
		"node", out.Status.CurrentNode, "events", len(out.Events), "requeueAfter", out.RequeueAfter)
	for _, e := range out.Events {
		r.recorder.Eventf(ro, nil, e.Type, e.Reason, "ControlPlaneRollout", "%s", fitNote(e.Message))
	}
	if equality.Semantic.DeepEqual(out.Status, ro.Status) {
		return nil
	}
	before := ro.Status
	ro.Status = out.Status
	// Update, not patch: the resourceVersion makes a status decided from an older one fail, so two
	// steps (or two controllers) never both hand out a turn.
	if err := r.client.Status().Update(ctx, ro); err != nil {
		return err
	}
	countControlPlane(&before, &ro.Status)
	return nil
}

// gatherControlPlane builds cporchestrate's input. The Lease and the quiesced workloads are read from the
// API server: a turn handed out on a cached Lease a moment old could overlap a node still working.
func (r *controlPlaneRolloutReconciler) gatherControlPlane(ctx context.Context, ro *api.ControlPlaneRollout) (cporchestrate.Input, map[cporchestrate.Key]*cpObserved, error) {
	in := cporchestrate.Input{Now: r.opts.Clock(), Rollout: ro, Agents: map[string]*cporchestrate.Agent{}}
	var p api.ControlPlanePolicy
	switch err := r.client.Get(ctx, client.ObjectKey{Name: api.ControlPlanePolicyName}, &p); {
	case err == nil:
		in.Policy = &p.Spec
	case !apierrors.IsNotFound(err):
		return in, nil, err
	}
	nodes, err := controlPlaneNodes(ctx, r.client)
	if err != nil {
		return in, nil, err
	}
	in.Nodes = nodes
	var ncs api.NodeCertificatesList
	if err := r.client.List(ctx, &ncs); err != nil {
		return in, nil, err
	}
	for i := range ncs.Items {
		nc := &ncs.Items[i]
		a := &cporchestrate.Agent{Files: nc.Status.Files, Operation: nc.Status.Operation, Rollouts: nc.Status.Rollouts}
		if nc.Status.ObservedAt != nil {
			a.ObservedAt = nc.Status.ObservedAt.Time
		}
		in.Agents[nc.Name] = a
	}
	if in.Lease, err = r.lease(ctx); err != nil {
		return in, nil, err
	}
	if in.Running, err = r.runningControlPlaneRollouts(ctx, ro); err != nil {
		return in, nil, err
	}
	seen, err := r.observeQuiesce(ctx, ro, in.Policy, &in)
	return in, seen, err
}

// runningControlPlaneRollouts names the other rollouts that have started and not finished, read from the
// API server: a rollout that started a moment ago may not be cached yet.
func (r *controlPlaneRolloutReconciler) runningControlPlaneRollouts(ctx context.Context, self *api.ControlPlaneRollout) ([]string, error) {
	if self.Status.StartTime != nil {
		return nil, nil // started: decided when it started
	}
	var list api.ControlPlaneRolloutList
	if err := r.direct.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, ro := range list.Items {
		if ro.UID != self.UID && ro.Status.StartTime != nil && !ro.Status.Phase.Finished() {
			out = append(out, ro.Name)
		}
	}
	return out, nil
}

// controlPlaneNodes lists the Nodes labelled node-role.kubernetes.io/control-plane with their readiness.
func controlPlaneNodes(ctx context.Context, c client.Reader) ([]cporchestrate.Node, error) {
	var list corev1.NodeList
	if err := c.List(ctx, &list, client.HasLabels{api.LabelControlPlaneRole}); err != nil {
		return nil, err
	}
	out := make([]cporchestrate.Node, 0, len(list.Items))
	for _, n := range list.Items {
		node := cporchestrate.Node{Name: n.Name, Message: "no Ready condition"}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				node.Ready, node.Message = c.Status == corev1.ConditionTrue, c.Message
			}
		}
		out = append(out, node)
	}
	return out, nil
}

func (r *controlPlaneRolloutReconciler) lease(ctx context.Context) (cporchestrate.Lease, error) {
	var l coordinationv1.Lease
	err := r.direct.Get(ctx, client.ObjectKey{Namespace: r.leaseNamespace, Name: api.ControlPlaneLeaseName}, &l)
	if apierrors.IsNotFound(err) {
		return cporchestrate.Lease{}, nil
	}
	if err != nil {
		return cporchestrate.Lease{}, fmt.Errorf("reading Lease %s/%s: %w", r.leaseNamespace, api.ControlPlaneLeaseName, err)
	}
	var out cporchestrate.Lease
	if l.Spec.HolderIdentity != nil {
		out.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		out.RenewTime = l.Spec.RenewTime.Time
	} else if l.Spec.AcquireTime != nil {
		out.RenewTime = l.Spec.AcquireTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		out.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out, nil
}

// observeQuiesce reads the workloads the rollout stops: those its settings (or, before it starts, the
// policy) list, and those its status lists.
func (r *controlPlaneRolloutReconciler) observeQuiesce(ctx context.Context, ro *api.ControlPlaneRollout, policy *api.ControlPlanePolicySpec, in *cporchestrate.Input) (map[cporchestrate.Key]*cpObserved, error) {
	keys := map[cporchestrate.Key]bool{}
	settings := ro.Status.Settings
	if settings == nil {
		settings = policy
	}
	if settings != nil {
		for _, q := range settings.Quiesce {
			keys[cporchestrate.Key{Kind: q.Kind, Namespace: q.Namespace, Name: q.Name}] = true
		}
	}
	for _, q := range ro.Status.Quiesced {
		keys[cporchestrate.Key{Kind: q.Kind, Namespace: q.Namespace, Name: q.Name}] = true
	}
	in.Workloads = map[cporchestrate.Key]cporchestrate.Workload{}
	seen := map[cporchestrate.Key]*cpObserved{}
	for key := range keys {
		o, err := r.observeQuiesced(ctx, key)
		if err != nil {
			return nil, err
		}
		in.Workloads[key] = o.state
		if o.state.Exists {
			seen[key] = o
		}
	}
	return seen, nil
}

func (r *controlPlaneRolloutReconciler) observeQuiesced(ctx context.Context, key cporchestrate.Key) (*cpObserved, error) {
	k, ok := kindNamed(key.Kind)
	if !ok || !k.orchestrated {
		return &cpObserved{}, nil
	}
	obj := k.newObj()
	if err := r.direct.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return &cpObserved{}, nil
		}
		return nil, err
	}
	o := &cpObserved{obj: obj, state: cporchestrate.Workload{
		Exists:           obj.GetDeletionTimestamp() == nil,
		QuiescedBy:       obj.GetAnnotations()[api.AnnotationQuiescedBy],
		QuiescedReplicas: restart.QuiescedReplicas(obj),
	}}
	switch w := obj.(type) {
	case *appsv1.Deployment:
		o.state.Replicas = replicasOf(w.Spec.Replicas)
	case *appsv1.StatefulSet:
		o.state.Replicas = replicasOf(w.Spec.Replicas)
	}
	if sel := k.selector(obj); sel != nil {
		selector, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, fmt.Errorf("selector of %s %s/%s: %w", k.name, key.Namespace, key.Name, err)
		}
		o.state.Pods = r.pods.present(key.Namespace, selector)
	}
	return o, nil
}

func (r *controlPlaneRolloutReconciler) actControlPlane(ctx context.Context, ro *api.ControlPlaneRollout, a cporchestrate.Action, seen map[cporchestrate.Key]*cpObserved) error {
	log := ctrl.LoggerFrom(ctx)
	o := seen[a.Key]
	if o == nil {
		return fmt.Errorf("%s %s vanished while the rollout acted on it", a.Type, a.Key)
	}
	ref := klog.KRef(a.Key.Namespace, a.Key.Name)
	switch a.Type {
	case cporchestrate.ScaleDown:
		if err := restart.Quiesce(ctx, r.client, o.obj, api.ControlPlaneQuiescer(ro.Name), a.Replicas); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeNormal, api.ReasonScaledDown, "Quiesce",
			"Scaled from %d to 0 replicas for ControlPlaneRollout %s; the count is recorded in %s", a.Replicas, ro.Name, api.AnnotationQuiescedReplicas)
		log.Info("Scaled "+a.Key.Kind+" to zero", "workload", ref, "replicas", a.Replicas, "controlPlaneRollout", ro.Name)
	case cporchestrate.Restore:
		replicas := a.Replicas
		if err := restart.Restore(ctx, r.client, o.obj, &replicas); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeNormal, api.ReasonRestored, "Restore", "Restored to %d replicas by ControlPlaneRollout %s", a.Replicas, ro.Name)
		log.Info("Restored "+a.Key.Kind, "workload", ref, "replicas", a.Replicas, "controlPlaneRollout", ro.Name)
	case cporchestrate.Release:
		if err := restart.Restore(ctx, r.client, o.obj, nil); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeWarning, api.ReasonNothingRecorded, "Restore",
			"ControlPlaneRollout %s found no recorded replica count; only the quiesce marks were removed: scale it by hand", ro.Name)
		log.Info("Released "+a.Key.Kind+" with no recorded count", "workload", ref, "controlPlaneRollout", ro.Name)
	default:
		return fmt.Errorf("unknown control-plane rollout action %q", a.Type)
	}
	return nil
}

// setupControlPlaneRollouts registers the ControlPlaneRollout controller and the automatic trigger.
func setupControlPlaneRollouts(mgr manager.Manager, disc *gatherer, leaseNamespace string) error {
	objects.controlPlane.Store(true)
	c := mgr.GetClient()
	recorder := mgr.GetEventRecorder("certrollout")
	toUnfinished := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return unfinishedControlPlaneRollouts(ctx, c)
	})
	controlPlaneNode := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetLabels()[api.LabelControlPlaneRole]
		return ok
	})
	theLease := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetName() == api.ControlPlaneLeaseName && o.GetNamespace() == leaseNamespace
	})
	quiesced := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := api.ControlPlaneRolloutOf(o.GetAnnotations()[api.AnnotationQuiescedBy])
		return ok
	})
	toQuiescer := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if name, ok := api.ControlPlaneRolloutOf(o.GetAnnotations()[api.AnnotationQuiescedBy]); ok {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
		}
		return nil
	})
	skip := &disc.opts.AllowRepeatedSetup
	err := ctrl.NewControllerManagedBy(mgr).Named("controlplanerollout").
		For(&api.ControlPlaneRollout{}).
		Watches(&api.NodeCertificates{}, toUnfinished).
		Watches(&corev1.Node{}, toUnfinished, builder.WithPredicates(controlPlaneNode)).
		Watches(&coordinationv1.Lease{}, toUnfinished, builder.WithPredicates(theLease)).
		Watches(&api.ControlPlanePolicy{}, toUnfinished).
		Watches(objOfKind("Deployment"), toQuiescer, builder.WithPredicates(quiesced)).
		Watches(objOfKind("StatefulSet"), toQuiescer, builder.WithPredicates(quiesced)).
		WatchesRawSource(disc.pods.source(nil)).
		// One at a time: two steps of one rollout decided at once could both hand out a turn (the status
		// update's resourceVersion would refuse the second, but one worker never tries).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: skip}).
		Complete(&controlPlaneRolloutReconciler{gatherer: disc, recorder: recorder, leaseNamespace: leaseNamespace})
	if err != nil {
		return err
	}
	return setupControlPlaneTrigger(mgr, disc, recorder)
}

// unfinishedControlPlaneRollouts are the requests of every ControlPlaneRollout not yet finished.
func unfinishedControlPlaneRollouts(ctx context.Context, c client.Reader) []reconcile.Request {
	var list api.ControlPlaneRolloutList
	if err := c.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list ControlPlaneRollouts")
		return nil
	}
	var out []reconcile.Request
	for _, ro := range list.Items {
		if !ro.Status.Phase.Finished() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: ro.Name}})
		}
	}
	return out
}

// controlPlaneSelector selects the control-plane Nodes.
var controlPlaneSelector = func() labels.Selector {
	req, err := labels.NewRequirement(api.LabelControlPlaneRole, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant label key
	}
	return labels.NewSelector().Add(*req)
}()

// controlPlaneServed reports whether the cluster serves NodeCertificates, ControlPlaneRollout and
// ControlPlanePolicy: a cluster upgraded without the new CRDs runs everything else.
func controlPlaneServed(mgr manager.Manager) (bool, error) {
	for _, obj := range []client.Object{&api.NodeCertificates{}, &api.ControlPlaneRollout{}, &api.ControlPlanePolicy{}} {
		ok, err := isServed(mgr.GetRESTMapper(), mgr.GetScheme(), obj)
		if err != nil || !ok {
			if err == nil {
				ctrl.Log.Info("ControlPlaneRollout, ControlPlanePolicy or NodeCertificates is not served; control-plane rollouts are off (install config/crd and restart certrollout to use them)")
			}
			return false, err
		}
	}
	return true, nil
}
