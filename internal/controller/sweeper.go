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
	kind := r.kind.name
	return sweepRollout(ctx, r, obj, client.ObjectKey{Namespace: req.Namespace, Name: by}, sweptRollout[*api.CertRollout]{
		kind: "CertRollout", obj: &api.CertRollout{},
		// Running, or being deleted (its finalizer restores what it quiesced).
		holds: func(ro *api.CertRollout) bool { return ro.DeletionTimestamp != nil || !ro.Status.Phase.Finished() },
		ended: func(ro *api.CertRollout) (api.RolloutPhase, *int32) {
			var inStatus *int32
			for _, q := range ro.Status.Quiesced {
				if q.Kind == kind && q.Name == obj.GetName() {
					inStatus = q.OriginalReplicas
				}
			}
			return ro.Status.Phase, inStatus
		},
	})
}

// sweptRollout is how the sweeper reads one kind of rollout that quiesces workloads.
type sweptRollout[T client.Object] struct {
	kind string
	obj  T // read into
	// holds says the rollout may still restore the workload itself: the sweeper leaves it alone.
	holds func(T) bool
	// ended is the phase of a rollout that no longer holds it, and the count its status recorded.
	ended func(T) (api.RolloutPhase, *int32)
}

// sweepRollout restores obj, quiesced by the rollout key names, once that rollout is gone or no longer
// holds it. A rollout in the cache that holds it settles it; anything else is confirmed from the API
// server: a rollout created a moment ago may not be cached yet, and restoring the workload under a
// running rollout would undo its quiesce.
func sweepRollout[T client.Object](ctx context.Context, r *quiesceSweeper, obj client.Object, key client.ObjectKey, s sweptRollout[T]) (ctrl.Result, error) {
	if err := r.client.Get(ctx, key, s.obj); err == nil && s.holds(s.obj) {
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	}
	err := r.direct.Get(ctx, key, s.obj)
	var why string
	var inStatus *int32
	switch {
	case apierrors.IsNotFound(err):
		why = fmt.Sprintf("%s %s that quiesced it no longer exists", s.kind, key.Name)
	case err != nil:
		return ctrl.Result{}, err
	case s.holds(s.obj):
		// Look again later in case its end is missed.
		return ctrl.Result{RequeueAfter: sweepInterval}, nil
	default:
		var phase api.RolloutPhase
		phase, inStatus = s.ended(s.obj)
		why = fmt.Sprintf("%s %s that quiesced it ended %s without restoring it", s.kind, key.Name, phase)
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
	kind := r.kind.name
	return sweepRollout(ctx, r, obj, client.ObjectKey{Name: name}, sweptRollout[*api.ControlPlaneRollout]{
		kind: "ControlPlaneRollout", obj: &api.ControlPlaneRollout{},
		// No finalizer: only an unfinished rollout restores what it quiesced.
		holds: func(ro *api.ControlPlaneRollout) bool { return !ro.Status.Phase.Finished() },
		ended: func(ro *api.ControlPlaneRollout) (api.RolloutPhase, *int32) {
			var inStatus *int32
			for _, q := range ro.Status.Quiesced {
				if q.Kind == kind && q.Namespace == obj.GetNamespace() && q.Name == obj.GetName() {
					inStatus = q.OriginalReplicas
				}
			}
			return ro.Status.Phase, inStatus
		},
	})
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
