package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	workloadkinds "github.com/certrollout/certrollout/internal/kinds"
)

// setupPolicies reports whether the cluster serves certrollout's CRDs. Without them the controller still
// restarts workloads directly, and says how to enable policies.
func setupPolicies(mgr manager.Manager) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(api.GroupVersion.WithKind("RolloutPolicy").GroupKind(), api.GroupVersion.Version)
	if apimeta.IsNoMatchError(err) {
		ctrl.Log.Info("RolloutPolicy and CertRollout are not served; workloads restart without policies (install config/crd and restart certrollout to use them)")
		return false, nil
	}
	return err == nil, err
}

// rolloutPolicyIndex indexes CertRollouts by spec.policy.
const rolloutPolicyIndex = "spec.policy"

// indexRollouts indexes CertRollouts by the policy they follow.
func indexRollouts(ctx context.Context, mgr manager.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &api.CertRollout{}, rolloutPolicyIndex, func(o client.Object) []string {
		if ro, ok := o.(*api.CertRollout); ok && ro.Spec.Policy != "" {
			return []string{ro.Spec.Policy}
		}
		return nil
	})
}

// setupOrchestration registers the RolloutPolicy and CertRollout controllers.
func setupOrchestration(ctx context.Context, mgr manager.Manager, disc *gatherer) error {
	recorder := mgr.GetEventRecorder("certrollout")
	c := mgr.GetClient()
	skip := &disc.opts.AllowRepeatedSetup
	toPolicies := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		return policiesFor(ctx, c, obj)
	})
	err := ctrl.NewControllerManagedBy(mgr).Named("rolloutpolicy").
		For(&api.RolloutPolicy{}).
		Watches(&api.CertRollout{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			if ro, ok := obj.(*api.CertRollout); ok && ro.Spec.Policy != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.Policy}}}
			}
			return nil
		})).
		Watches(objOfKind("Deployment"), toPolicies).
		Watches(objOfKind("StatefulSet"), toPolicies).
		Watches(objOfKind("DaemonSet"), toPolicies).
		Watches(&corev1.Secret{}, sourceToPolicies(c, disc.opts.SettlePeriod)).
		Watches(&corev1.ConfigMap{}, sourceToPolicies(c, disc.opts.SettlePeriod)).
		WatchesRawSource(disc.pods.source(nil)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: skip}).
		Complete(&policyReconciler{gatherer: disc, recorder: recorder})
	if err != nil {
		return err
	}
	if err := setupCascadeTrigger(mgr, disc); err != nil {
		return err
	}
	if err := setupQuiesceSweeper(mgr, disc, recorder); err != nil {
		return err
	}
	toRollouts := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		return rolloutsFor(ctx, c, obj)
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("certrollout")
	if disc.linker.reader != nil {
		// A leaf's issuance progress wakes its cascade; the cascade's requeue is only a fallback.
		b = b.Watches(&certmanager.Certificate{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			return cascadesFor(ctx, c, obj)
		}))
	}
	return b.
		For(&api.CertRollout{}).
		Watches(&api.RolloutPolicy{}, toRollouts).
		Watches(objOfKind("Deployment"), toRollouts).
		Watches(objOfKind("StatefulSet"), toRollouts).
		Watches(objOfKind("DaemonSet"), toRollouts).
		WatchesRawSource(disc.pods.source(nil)).
		// One at a time: the global limit on running rollouts is counted from the cache.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: skip}).
		Complete(&rolloutReconciler{gatherer: disc, recorder: recorder})
}

// objOfKind returns an empty object of the named workload kind, for watches.
func objOfKind(name string) client.Object {
	k, _ := kindNamed(name)
	return k.newObj()
}

// policiesFor maps a workload to the policies of its namespace that select or quiesce it.
func policiesFor(ctx context.Context, c client.Reader, obj client.Object) []reconcile.Request {
	var list api.RolloutPolicyList
	if err := c.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list RolloutPolicies")
		return nil
	}
	kindName := kindOf(obj)
	var out []reconcile.Request
	for _, p := range list.Items {
		match := false
		if sel, err := metav1.LabelSelectorAsSelector(&p.Spec.Selector); err == nil && sel.Matches(labels.Set(obj.GetLabels())) {
			match = true
		}
		for _, q := range p.Spec.Quiesce {
			if q.Kind == kindName && q.Name == obj.GetName() {
				match = true
			}
		}
		if match {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
	}
	return out
}

// rolloutsFor maps a RolloutPolicy or a workload to the unfinished CertRollouts that follow or touch it,
// or, for a cascade, wait for it to trust the new CA (a ClusterIssuer's cascade waits for workloads of
// every namespace, hence the list across namespaces).
func rolloutsFor(ctx context.Context, c client.Reader, obj client.Object) []reconcile.Request {
	var list api.CertRolloutList
	if err := c.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list CertRollouts")
		return nil
	}
	_, isPolicy := obj.(*api.RolloutPolicy)
	kindName := kindOf(obj)
	var out []reconcile.Request
	for _, ro := range list.Items {
		if ro.Status.Phase.Finished() {
			continue
		}
		for _, t := range ro.Status.TrustedBy {
			if !isPolicy && t.Kind == kindName && t.Namespace == obj.GetNamespace() && t.Name == obj.GetName() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
			}
		}
		if ro.Namespace != obj.GetNamespace() {
			continue
		}
		match := isPolicy && ro.Spec.Policy == obj.GetName()
		for _, t := range ro.Status.Targets {
			match = match || (!isPolicy && t.Kind == kindName && t.Name == obj.GetName())
		}
		for _, q := range ro.Status.Quiesced {
			match = match || (!isPolicy && q.Kind == kindName && q.Name == obj.GetName())
		}
		if match {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
		}
	}
	return out
}

func kindOf(obj client.Object) string {
	if k, ok := workloadkinds.Of(obj); ok && k.Orchestrated {
		return k.Name
	}
	return ""
}

// sourceToPolicies maps a changed Secret or ConfigMap to the policies that govern its users, after the
// settle period.
func sourceToPolicies(c client.Reader, settle time.Duration) handler.EventHandler {
	enqueue := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		ref := consumers.Ref{Kind: consumers.KindSecret, Name: obj.GetName()}
		if _, ok := obj.(*corev1.ConfigMap); ok {
			ref.Kind = consumers.KindConfigMap
		}
		for _, k := range kinds {
			if !k.orchestrated {
				continue
			}
			list := k.newList()
			if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{usesIndex: ref.String()}); err != nil {
				log.FromContext(ctx).Error(err, "Failed to find the workloads that use an object", "object", ref.String())
				return
			}
			objs, _ := apimeta.ExtractList(list)
			for _, o := range objs {
				if w, ok := o.(client.Object); ok {
					for _, req := range policiesFor(ctx, c, w) {
						q.AddAfter(req, settle)
					}
				}
			}
		}
	}
	return onCertificateChange(enqueue)
}
