package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cporchestrate"
)

// controlPlaneTriggerInterval is how often the policy looks again without a change: a file comes within
// renewBefore by the clock alone, and the next window moves on.
const controlPlaneTriggerInterval = time.Hour

// controlPlaneTrigger reconciles the ControlPlanePolicy "default": it gathers the agents' reports and the
// rollouts, lets cporchestrate.Trigger decide the policy's status and whether a rollout is due, creates
// it and writes the status.
type controlPlaneTrigger struct {
	*gatherer
	recorder events.EventRecorder
}

func setupControlPlaneTrigger(mgr manager.Manager, disc *gatherer, recorder events.EventRecorder) error {
	toPolicy := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: api.ControlPlanePolicyName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).Named("controlplanepolicy").
		For(&api.ControlPlanePolicy{}).
		Watches(&api.NodeCertificates{}, toPolicy).
		Watches(&api.ControlPlaneRollout{}, toPolicy).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &disc.opts.AllowRepeatedSetup}).
		Complete(&controlPlaneTrigger{gatherer: disc, recorder: recorder})
}

func (r *controlPlaneTrigger) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Name != api.ControlPlanePolicyName {
		return ctrl.Result{}, nil
	}
	var p api.ControlPlanePolicy
	if err := r.client.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	in := cporchestrate.TriggerInput{Now: r.opts.Clock(), Policy: &p}
	var ncs api.NodeCertificatesList
	if err := r.client.List(ctx, &ncs); err != nil {
		return ctrl.Result{}, err
	}
	in.Agents = ncs.Items
	// From the API server: a rollout created a moment ago may not be cached yet, and a second one
	// would follow it.
	var list api.ControlPlaneRolloutList
	if err := r.direct.List(ctx, &list); err != nil {
		return ctrl.Result{}, err
	}
	in.Rollouts = list.Items
	d := cporchestrate.Trigger(in)
	if d.Create != "" {
		ro := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{GenerateName: "control-plane-"}, Spec: api.ControlPlaneRolloutSpec{Trigger: d.Create}}
		if err := r.client.Create(ctx, ro); err != nil {
			return ctrl.Result{}, fmt.Errorf("creating a ControlPlaneRollout: %w", err)
		}
		d.Status.LastRollout = &api.RolloutReference{Name: ro.Name, Phase: api.PhasePending}
		r.recorder.Eventf(&p, ro, corev1.EventTypeNormal, api.ReasonRolloutCreated, "Trigger",
			"Created ControlPlaneRollout %s (%s): nodes %v are due", ro.Name, d.Create, d.Status.DueNodes)
		ctrl.LoggerFrom(ctx).Info("Created ControlPlaneRollout", "rollout", ro.Name, "trigger", d.Create, "dueNodes", d.Status.DueNodes)
	}
	if !equality.Semantic.DeepEqual(d.Status, p.Status) {
		p.Status = d.Status
		if err := r.client.Status().Update(ctx, &p); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: controlPlaneTriggerInterval}, nil
}
