package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/restart"
)

// sweepInterval is how often a workload quiesced by a running rollout is looked at again, in case the
// rollout's end was missed.
const sweepInterval = 10 * time.Minute

// setupQuiesceSweeper registers, per scalable kind, the controller that restores a workload whose
// certrollout.io/quiesced-by names a CertRollout that no longer exists or has finished: whatever a crash,
// a lost write, a forced deletion or a bug left at zero replicas gets its recorded count back. A workload
// whose quiesced-by names a MaintenanceHold ("MaintenanceHold/<name>") belongs to that hold while it
// exists, and is restored here only once the hold is gone (see sweepHeld).
func setupQuiesceSweeper(mgr manager.Manager, disc *gatherer, recorder events.EventRecorder) error {
	quiesced := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetAnnotations()[api.AnnotationQuiescedBy] != "" })
	c := mgr.GetClient()
	for _, k := range scalableKinds() {
		// toWorkloads maps a quiescer (a CertRollout, a MaintenanceHold) to the workloads that name it.
		toWorkloads := func(quiescer func(name string) string) handler.EventHandler {
			return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
				list := k.newList()
				by := quiescer(obj.GetName())
				if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{quiescedByIndex: by}); err != nil {
					ctrl.LoggerFrom(ctx).Error(err, "Failed to list the workloads a quiescer holds at zero", "quiescedBy", by)
					return nil
				}
				var out []reconcile.Request
				for _, o := range objectsOf(list) {
					out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
				}
				return out
			})
		}
		b := ctrl.NewControllerManagedBy(mgr).Named("quiesce-sweeper-"+strings.ToLower(k.name)).
			For(k.newObj(), builder.WithPredicates(quiesced)).
			Watches(&api.CertRollout{}, toWorkloads(func(name string) string { return name }))
		if disc.holds {
			b = b.Watches(&api.MaintenanceHold{}, toWorkloads(api.HoldQuiescer))
		}
		if disc.controlPlane {
			// Cluster-scoped: its namespace is "", so the list spans every namespace.
			b = b.Watches(&api.ControlPlaneRollout{}, toWorkloads(api.ControlPlaneQuiescer))
		}
		err := b.WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &disc.opts.AllowRepeatedSetup}).
			Complete(&quiesceSweeper{gatherer: disc, kind: k, recorder: recorder})
		if err != nil {
			return err
		}
	}
	return nil
}

type quiesceSweeper struct {
	*gatherer
	kind     kind
	recorder events.EventRecorder
}

func (r *quiesceSweeper) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.kind.newObj()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	by := obj.GetAnnotations()[api.AnnotationQuiescedBy]
	if by == "" || obj.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil
	}
	if hold, ok := api.HoldOf(by); ok {
		return r.sweepHeld(ctx, obj, hold)
	}
	if name, ok := api.ControlPlaneRolloutOf(by); ok {
		return r.sweepControlPlane(ctx, obj, name)
	}
	// A running rollout in the cache settles it; anything else is confirmed from the API server: a
	// rollout created a moment ago may not be cached yet, and restoring the workload under a running
	// rollout would undo its quiesce.
	var ro api.CertRollout
	key := client.ObjectKey{Namespace: req.Namespace, Name: by}
	if err := r.client.Get(ctx, key, &ro); err == nil && ro.DeletionTimestamp == nil && !ro.Status.Phase.Finished() {
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	}
	err := r.direct.Get(ctx, key, &ro)
	var why string
	var inStatus *int32
	switch {
	case apierrors.IsNotFound(err):
		why = fmt.Sprintf("CertRollout %s that quiesced it no longer exists", by)
	case err != nil:
		return ctrl.Result{}, err
	case ro.DeletionTimestamp != nil || !ro.Status.Phase.Finished():
		// Running, or being deleted (its finalizer restores what it quiesced): look again later in case
		// its end is missed.
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	default:
		why = fmt.Sprintf("CertRollout %s that quiesced it ended %s without restoring it", by, ro.Status.Phase)
		for _, q := range ro.Status.Quiesced {
			if q.Kind == r.kind.name && q.Name == obj.GetName() {
				inStatus = q.OriginalReplicas
			}
		}
	}
	return ctrl.Result{}, restoreQuiesced(ctx, r.client, r.recorder, obj, inStatus, corev1.EventTypeWarning, api.ReasonRestoredOrphan, why)
}

// sweepHeld leaves a workload a MaintenanceHold holds to that hold, whatever its phase: the hold keeps it
// at zero, and restores it when released, expired or deleted (its finalizer). Only a workload whose hold
// is gone (its finalizer removed by force) is restored here, by the same never-guess rule, from the
// count recorded on it: the hold's status went with it.
func (r *quiesceSweeper) sweepHeld(ctx context.Context, obj client.Object, name string) (ctrl.Result, error) {
	if !r.holds {
		// Holds are not served here, so no hold can restore it, nor can the sweeper tell whether one
		// existed: it is left as it is, marks included, for a person (never a guessed restore).
		return ctrl.Result{}, nil
	}
	key := client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}
	if err := r.client.Get(ctx, key, &api.MaintenanceHold{}); err == nil {
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	}
	// Not cached: confirmed from the API server, since a hold created a moment ago may not be cached yet.
	err := r.direct.Get(ctx, key, &api.MaintenanceHold{})
	switch {
	case apierrors.IsNotFound(err):
		why := fmt.Sprintf("MaintenanceHold %s that held it no longer exists", name)
		return ctrl.Result{}, restoreQuiesced(ctx, r.client, r.recorder, obj, nil, corev1.EventTypeWarning, api.ReasonRestoredOrphan, why)
	case err != nil:
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: sweepInterval}, nil
}

// sweepControlPlane leaves a workload a ControlPlaneRollout stopped to that rollout while it is
// unfinished, and restores it, by the same never-guess rule, once the rollout is gone or finished.
func (r *quiesceSweeper) sweepControlPlane(ctx context.Context, obj client.Object, name string) (ctrl.Result, error) {
	if !r.controlPlane {
		// Not served here (or a namespaced controller): nobody can tell whether the rollout exists, so
		// the workload is left as it is, marks included, for a person.
		return ctrl.Result{}, nil
	}
	var ro api.ControlPlaneRollout
	key := client.ObjectKey{Name: name}
	if err := r.client.Get(ctx, key, &ro); err == nil && ro.DeletionTimestamp == nil && !ro.Status.Phase.Finished() {
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	}
	// Confirmed from the API server: a rollout created a moment ago may not be cached yet.
	err := r.direct.Get(ctx, key, &ro)
	var why string
	var inStatus *int32
	switch {
	case apierrors.IsNotFound(err):
		why = fmt.Sprintf("ControlPlaneRollout %s that quiesced it no longer exists", name)
	case err != nil:
		return ctrl.Result{}, err
	case !ro.Status.Phase.Finished():
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	default:
		why = fmt.Sprintf("ControlPlaneRollout %s that quiesced it ended %s without restoring it", name, ro.Status.Phase)
		for _, q := range ro.Status.Quiesced {
			if q.Kind == r.kind.name && q.Namespace == obj.GetNamespace() && q.Name == obj.GetName() {
				inStatus = q.OriginalReplicas
			}
		}
	}
	return ctrl.Result{}, restoreQuiesced(ctx, r.client, r.recorder, obj, inStatus, corev1.EventTypeWarning, api.ReasonRestoredOrphan, why)
}

// restoreQuiesced gives obj, quiesced by a rollout that is gone, finished or being deleted, its count
// back by the rule the rollout itself follows (orchestrate.RecordedReplicas: never a guessed count),
// and says so on obj with an Event of eventType and reason (or ReasonNothingRecorded when no count is recorded). The rollout's
// finalizer and the sweeper share it, so both do and say the same.
func restoreQuiesced(ctx context.Context, c client.Client, rec events.EventRecorder, obj client.Object, inStatus *int32, eventType, reason, why string) error {
	log := ctrl.LoggerFrom(ctx).WithValues("workload", klog.KObj(obj), "rollout", obj.GetAnnotations()[api.AnnotationQuiescedBy])
	replicas := orchestrate.RecordedReplicas(restart.QuiescedReplicas(obj), inStatus)
	if err := restart.Restore(ctx, c, obj, replicas); err != nil {
		return err
	}
	if replicas == nil {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, api.ReasonNothingRecorded, "Restore",
			"%s; no replica count is recorded, so only its quiesce marks were removed: scale it by hand", why)
		log.Info("Released a quiesced workload with no recorded count")
		return nil
	}
	rec.Eventf(obj, nil, eventType, reason, "Restore", "Restored to %d replicas: %s", *replicas, why)
	log.Info("Restored a quiesced workload", "replicas", *replicas)
	return nil
}
