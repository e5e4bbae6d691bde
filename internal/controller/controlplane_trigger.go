package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/certrollout/certrollout/internal/schedule"
)

// controlPlaneTriggerInterval is how often the policy looks again without a change: a file comes within
// renewBefore by the clock alone, and the next window moves on.
const controlPlaneTriggerInterval = time.Hour

// controlPlaneTrigger reconciles the ControlPlanePolicy "default": its status (Valid, Blocked, dueNodes,
// nextWindow, lastRollout) and, with trigger Automatic and not suspended, the creation of a
// ControlPlaneRollout when an agent reports a component serving an old certificate or a kubeadm file
// within renewBefore and no rollout is unfinished. A failed newest rollout blocks creation until it is
// deleted or a newer one exists: a failure on a control plane is looked at, not retried in a loop.
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
	now := r.opts.Clock()
	settings := cporchestrate.Settings(&p.Spec)
	st := p.Status.DeepCopy()
	st.ObservedGeneration = p.Generation
	windows, werr := cporchestrate.Windows(p.Spec.Windows)
	if werr != nil {
		setPolicyCondition(st, p.Generation, now, api.ConditionValid, metav1.ConditionFalse, api.ReasonInvalidPolicy, werr.Error())
	} else {
		setPolicyCondition(st, p.Generation, now, api.ConditionValid, metav1.ConditionTrue, api.ReasonValid, "the windows parse")
	}
	st.NextWindow = nil
	if werr == nil {
		if next := schedule.At(windows, now).NextOpen; !next.IsZero() {
			st.NextWindow = &metav1.Time{Time: next}
		}
	}
	// From the API server: a rollout created a moment ago may not be cached yet, and a second one
	// would follow it.
	var list api.ControlPlaneRolloutList
	if err := r.direct.List(ctx, &list); err != nil {
		return ctrl.Result{}, err
	}
	newest, unfinished := newestControlPlaneRollout(list.Items)
	due, trigger, err := r.dueNodes(ctx, settings, newest, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	st.DueNodes = due
	st.LastRollout = nil
	if newest != nil {
		st.LastRollout = &api.RolloutReference{Name: newest.Name, Phase: newest.Status.Phase}
	}
	blocked := newest != nil && newest.Status.Phase == api.PhaseFailed
	if blocked {
		setPolicyCondition(st, p.Generation, now, api.ConditionBlocked, metav1.ConditionTrue, api.ReasonPreviousRolloutFailed,
			fmt.Sprintf("ControlPlaneRollout %s failed (%s): no rollout starts by itself until it is deleted or a newer one is created", newest.Name, newest.Status.Message))
	} else {
		setPolicyCondition(st, p.Generation, now, api.ConditionBlocked, metav1.ConditionFalse, api.ReasonNotBlocked, "no failed rollout blocks automatic ones")
	}
	if settings.Trigger == api.ControlPlaneTriggerAutomatic && !p.Spec.Suspend && !blocked && !unfinished && trigger != "" {
		ro, err := r.createControlPlaneRollout(ctx, trigger)
		if err != nil {
			return ctrl.Result{}, err
		}
		st.LastRollout = &api.RolloutReference{Name: ro.Name, Phase: api.PhasePending}
		r.recorder.Eventf(&p, ro, corev1.EventTypeNormal, api.ReasonRolloutCreated, "Trigger",
			"Created ControlPlaneRollout %s (%s): nodes %v are due", ro.Name, trigger, due)
		ctrl.LoggerFrom(ctx).Info("Created ControlPlaneRollout", "rollout", ro.Name, "trigger", trigger, "dueNodes", due)
	}
	if !equality.Semantic.DeepEqual(*st, p.Status) {
		p.Status = *st
		if err := r.client.Status().Update(ctx, &p); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: controlPlaneTriggerInterval}, nil
}

// dueNodes are the nodes whose agents report a rollout is due, by name, and the trigger for a new one:
// ServingOld when a node has a component serving an old certificate, else Expiring (only with renewal
// on: a rollout that renews nothing cannot take a file out of renewBefore, and would be created again
// and again). Only a report made after the newest rollout finished triggers: one from before it would
// start the same rollout twice.
func (r *controlPlaneTrigger) dueNodes(ctx context.Context, settings api.ControlPlanePolicySpec, newest *api.ControlPlaneRollout, now time.Time) ([]string, api.ControlPlaneTrigger, error) {
	var ncs api.NodeCertificatesList
	if err := r.client.List(ctx, &ncs); err != nil {
		return nil, "", err
	}
	var finished time.Time
	if newest != nil && newest.Status.CompletionTime != nil {
		finished = newest.Status.CompletionTime.Time
	}
	var due []string
	var trigger api.ControlPlaneTrigger
	for i := range ncs.Items {
		nc := &ncs.Items[i]
		why := cporchestrate.Due(nc, settings.Renewal.RenewBefore.Duration, now)
		if why == api.ControlPlaneTriggerExpiring && !*settings.Renewal.Enabled {
			why = ""
		}
		if why == "" {
			continue
		}
		due = append(due, nc.Name)
		if nc.Status.ObservedAt != nil && nc.Status.ObservedAt.After(finished) && trigger != api.ControlPlaneTriggerServesOld {
			trigger = why
		}
	}
	slices.Sort(due)
	return due, trigger, nil
}

func (r *controlPlaneTrigger) createControlPlaneRollout(ctx context.Context, trigger api.ControlPlaneTrigger) (*api.ControlPlaneRollout, error) {
	ro := &api.ControlPlaneRollout{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "control-plane-"},
		Spec:       api.ControlPlaneRolloutSpec{Trigger: trigger},
	}
	if err := r.client.Create(ctx, ro); err != nil {
		return nil, fmt.Errorf("creating a ControlPlaneRollout: %w", err)
	}
	return ro, nil
}

// newestControlPlaneRollout is the newest rollout (by creation, then name), and whether any is
// unfinished.
func newestControlPlaneRollout(items []api.ControlPlaneRollout) (*api.ControlPlaneRollout, bool) {
	var newest *api.ControlPlaneRollout
	unfinished := false
	for i := range items {
		ro := &items[i]
		if !ro.Status.Phase.Finished() && ro.DeletionTimestamp == nil {
			unfinished = true
		}
		if newest == nil || newest.CreationTimestamp.Before(&ro.CreationTimestamp) ||
			(newest.CreationTimestamp.Equal(&ro.CreationTimestamp) && newest.Name < ro.Name) {
			newest = ro
		}
	}
	return newest, unfinished
}

// setPolicyCondition sets a condition of the policy with the step's clock.
func setPolicyCondition(st *api.ControlPlanePolicyStatus, generation int64, now time.Time, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: generation, LastTransitionTime: metav1.Time{Time: now}})
}
