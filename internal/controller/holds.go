package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/hold"
	"github.com/certrollout/certrollout/internal/restart"
)

// holdsServed reports whether the cluster serves MaintenanceHold: a cluster upgraded without its new CRD
// runs everything else.
func holdsServed(mgr manager.Manager) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(api.GroupVersion.WithKind("MaintenanceHold").GroupKind(), api.GroupVersion.Version)
	if apimeta.IsNoMatchError(err) {
		ctrl.Log.Info("MaintenanceHold is not served; holds are off (install config/crd and restart certrollout to use them)")
		return false, nil
	}
	return err == nil, err
}

// setupHolds registers the MaintenanceHold controller. A change of a Deployment or StatefulSet wakes the
// holds of its namespace that hold it (a scale-up is fought at once) or are still resolving their targets.
func setupHolds(mgr manager.Manager, disc *gatherer) error {
	c := mgr.GetClient()
	toHolds := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		return holdsFor(ctx, c, obj)
	})
	return ctrl.NewControllerManagedBy(mgr).Named("maintenancehold").
		For(&api.MaintenanceHold{}).
		Watches(objOfKind(api.KindDeployment), toHolds).
		Watches(objOfKind(api.KindStatefulSet), toHolds).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &disc.opts.AllowRepeatedSetup}).
		Complete(&holdReconciler{gatherer: disc, recorder: mgr.GetEventRecorder("certrollout")})
}

// holdsFor maps a workload to the holds of its namespace that hold it, name it, mark it, or have not
// resolved their targets yet.
func holdsFor(ctx context.Context, c client.Reader, obj client.Object) []reconcile.Request {
	var list api.MaintenanceHoldList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list MaintenanceHolds")
		return nil
	}
	kindName := kindOf(obj)
	marked, _ := api.HoldOf(obj.GetAnnotations()[api.AnnotationQuiescedBy])
	var out []reconcile.Request
	for _, h := range list.Items {
		match := h.Name == marked || (h.Status.Phase == api.HoldPhasePending && len(h.Status.Workloads) == 0) || h.Status.Phase == ""
		for _, w := range h.Status.Workloads {
			match = match || (w.Kind == kindName && w.Name == obj.GetName())
		}
		if match {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: h.Namespace, Name: h.Name}})
		}
	}
	return out
}

// holdReconciler drives MaintenanceHolds through hold.Next: observe, decide, write, record.
type holdReconciler struct {
	*gatherer
	recorder events.EventRecorder
}

func (r *holdReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var h api.MaintenanceHold
	if err := r.client.Get(ctx, req.NamespacedName, &h); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if h.DeletionTimestamp != nil && !controllerutil.ContainsFinalizer(&h, api.FinalizerReleaseHold) {
		return ctrl.Result{}, nil
	}
	if h.DeletionTimestamp == nil && h.Status.Phase != api.HoldPhaseReleased && !controllerutil.ContainsFinalizer(&h, api.FinalizerReleaseHold) {
		// The finalizer goes on before anything is scaled: a deleted hold always restores what it held.
		patch := client.MergeFromWithOptions(h.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&h, api.FinalizerReleaseHold)
		if err := r.client.Patch(ctx, &h, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	in, seen, err := r.observeHold(ctx, &h)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := hold.Next(in)
	for _, a := range res.Actions {
		if err := r.act(ctx, &h, a, seen[a.Key]); err != nil {
			if apierrors.IsConflict(err) {
				// The workload changed since it was observed (an HPA scaled it again): decide again.
				return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, nil
			}
			return ctrl.Result{}, err
		}
	}
	for _, e := range res.Events {
		r.recorder.Eventf(&h, nil, e.Type, e.Reason, "Hold", "%s", fitNote(e.Message))
	}
	if !equality.Semantic.DeepEqual(res.Status, h.Status) {
		h.Status = res.Status
		if err := r.client.Status().Update(ctx, &h); err != nil {
			return ctrl.Result{}, err
		}
	}
	if res.Status.Phase == api.HoldPhaseReleased && controllerutil.ContainsFinalizer(&h, api.FinalizerReleaseHold) {
		// Released: nothing is left to restore, so deleting the hold needs no more work.
		patch := client.MergeFromWithOptions(h.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.RemoveFinalizer(&h, api.FinalizerReleaseHold)
		if err := r.client.Patch(ctx, &h, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
}

// observeHold builds hold.Next's input. Workloads are read from the API server, not the cache, as a
// rollout reads its own: the hold decides from them whether a scale-up happened and whether it still
// marks them, and a lagging cache would make it fight its own write or miss a restore.
func (r *holdReconciler) observeHold(ctx context.Context, h *api.MaintenanceHold) (hold.Input, map[hold.Key]client.Object, error) {
	in := hold.Input{Now: r.opts.Clock(), Hold: h, Workloads: map[hold.Key]hold.Workload{}}
	keys := map[hold.Key]bool{}
	for _, w := range h.Status.Workloads {
		keys[hold.Key{Kind: w.Kind, Name: w.Name}] = true
	}
	resolving := h.Status.Phase == "" || (h.Status.Phase == api.HoldPhasePending && len(h.Status.Workloads) == 0)
	if resolving {
		for _, t := range h.Spec.Targets.Workloads {
			keys[hold.Key{Kind: t.Kind, Name: t.Name}] = true
		}
		if sel := h.Spec.Targets.Selector; sel != nil {
			selector, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				in.SelectorError = err.Error()
			} else {
				for _, k := range scalableKinds() {
					list := k.newList()
					if err := r.client.List(ctx, list, client.InNamespace(h.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
						return in, nil, err
					}
					for _, o := range objectsOf(list) {
						key := hold.Key{Kind: k.name, Name: o.GetName()}
						in.Selected = append(in.Selected, key)
						keys[key] = true
					}
				}
				slices.SortFunc(in.Selected, func(a, b hold.Key) int { return strings.Compare(a.String(), b.String()) })
			}
		}
	}
	marked, err := quiescedBy(ctx, r.client, h.Namespace, api.HoldQuiescer(h.Name))
	if err != nil {
		return in, nil, err
	}
	for _, o := range marked {
		keys[hold.Key{Kind: kindOf(o), Name: o.GetName()}] = true
	}
	seen := map[hold.Key]client.Object{}
	for key := range keys {
		obj, w, err := r.observeScalable(ctx, h.Namespace, key)
		if err != nil {
			return in, nil, err
		}
		in.Workloads[key] = w
		if w.Exists {
			seen[key] = obj
		}
	}
	return in, seen, nil
}

// observeScalable reads one Deployment or StatefulSet from the API server, with its pods from the cache.
func (r *holdReconciler) observeScalable(ctx context.Context, ns string, key hold.Key) (client.Object, hold.Workload, error) {
	k, ok := kindNamed(key.Kind)
	if !ok || !k.orchestrated {
		return nil, hold.Workload{}, nil
	}
	obj := k.newObj()
	if err := r.direct.Get(ctx, client.ObjectKey{Namespace: ns, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, hold.Workload{}, nil
		}
		return nil, hold.Workload{}, err
	}
	w := hold.Workload{
		Exists:           obj.GetDeletionTimestamp() == nil,
		OptedOut:         decide.OptedOut(obj.GetAnnotations()),
		QuiescedBy:       obj.GetAnnotations()[api.AnnotationQuiescedBy],
		QuiescedReplicas: restart.QuiescedReplicas(obj),
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w.Replicas = replicasOf(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		w.Replicas = replicasOf(o.Spec.Replicas)
	}
	if sel := k.selector(obj); sel != nil {
		selector, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, hold.Workload{}, fmt.Errorf("selector of %s %s/%s: %w", k.name, ns, key.Name, err)
		}
		w.Pods = r.pods.present(ns, selector)
	} else {
		w.Pods = r.pods.present(ns, labels.Nothing())
	}
	return obj, w, nil
}

// act makes one write of hold.Next, through package restart (the only code that changes workloads), and
// says so on the workload too, so `kubectl describe` on it shows who holds it.
func (r *holdReconciler) act(ctx context.Context, h *api.MaintenanceHold, a hold.Action, obj client.Object) error {
	if obj == nil {
		return fmt.Errorf("%s %s %s vanished while the hold acted on it", a.Type, a.Key.Kind, a.Key.Name)
	}
	logger := ctrl.LoggerFrom(ctx).WithValues("workload", klog.KObj(obj), "hold", h.Name)
	switch a.Type {
	case hold.ScaleDown, hold.Enforce:
		if err := restart.Quiesce(ctx, r.client, obj, api.HoldQuiescer(h.Name), a.Replicas); err != nil {
			return err
		}
		if a.Type == hold.Enforce {
			r.recorder.Eventf(obj, h, corev1.EventTypeWarning, api.ReasonHoldEnforced, "Hold", "%s", fitNote(a.Message))
			logger.Info("Scaled a held "+a.Key.Kind+" back to zero", "original", a.Replicas)
			return nil
		}
		r.recorder.Eventf(obj, h, corev1.EventTypeNormal, api.ReasonScaledDown, "Hold", "%s", fitNote(a.Message))
		logger.Info("Scaled "+a.Key.Kind+" to zero for a hold", "replicas", a.Replicas)
	case hold.Restore:
		replicas := a.Replicas
		if err := restart.Restore(ctx, r.client, obj, &replicas); err != nil {
			return err
		}
		r.recorder.Eventf(obj, h, corev1.EventTypeNormal, api.ReasonRestored, "Restore", "%s", fitNote(a.Message))
		logger.Info("Restored a held "+a.Key.Kind, "replicas", a.Replicas)
	case hold.Release:
		if err := restart.Restore(ctx, r.client, obj, nil); err != nil {
			return err
		}
		r.recorder.Eventf(obj, h, corev1.EventTypeWarning, api.ReasonNothingRecorded, "Restore", "%s", fitNote(a.Message))
		logger.Info("Released a held " + a.Key.Kind + " with no recorded count")
	default:
		return fmt.Errorf("unknown hold action %q", a.Type)
	}
	return nil
}
