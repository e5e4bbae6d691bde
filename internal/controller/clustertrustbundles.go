package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
)

// ClusterTrustBundles (certificates.k8s.io/v1beta1) are cluster-scoped CA bundles that pods project by
// name or by signer and label selector. A change to one concerns the workloads of every namespace that
// project it, so only the cluster-wide controller watches them: a namespaced (tenant) install has no
// cluster-scoped rights and never learns of them (design/2026-11-29-native-certificate-sources.md).

// bundleSignerIndex is a field index on every workload kind but bare pods: the signer names of the
// ClusterTrustBundles its pods project by signer and selector. Which bundles a selector matches is only
// known when one changes, so the index answers "who may project a bundle of this signer?" and the
// reconcile resolves the selector.
const bundleSignerIndex = "certrollout.io/bundle-signers"

// bundlesServed reports whether the controller can follow ClusterTrustBundles: it is cluster-wide, the
// cluster serves certificates.k8s.io/v1beta1 ClusterTrustBundles, and it may list them. Each "no" is
// logged once and the controller carries on without them, as it does on clusters before 1.33.
func bundlesServed(ctx context.Context, mapper apimeta.RESTMapper, scheme *runtime.Scheme, direct client.Reader, namespaces []string) (bool, error) {
	if len(namespaces) > 0 {
		return false, nil // tenant installs hold no cluster-scoped rights
	}
	served, err := isServed(mapper, scheme, &certificatesv1beta1.ClusterTrustBundle{})
	if err != nil {
		return false, err
	}
	if !served {
		ctrl.Log.Info("ClusterTrustBundles are not served (certificates.k8s.io/v1beta1); workloads that project them are not restarted when they change")
		return false, nil
	}
	err = direct.List(ctx, &certificatesv1beta1.ClusterTrustBundleList{}, client.Limit(1))
	if apierrors.IsForbidden(err) {
		ctrl.Log.Info("ClusterTrustBundles are not followed: the controller may not list them (grant the RBAC of config/rbac or the Helm chart)", "err", err.Error())
		return false, nil
	}
	return err == nil, err
}

// indexBundleSigners registers bundleSignerIndex on every workload kind but bare pods.
func indexBundleSigners(ctx context.Context, mgr manager.Manager) error {
	for _, k := range kinds {
		if k.name == api.KindPod {
			continue
		}
		err := mgr.GetFieldIndexer().IndexField(ctx, k.newObj(), bundleSignerIndex, func(o client.Object) []string {
			return bundleSigners(consumers.FromPodSpec(k.podSpec(o), o.GetAnnotations()))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// bundleSigners are the signers of the signer queries among uses.
func bundleSigners(uses []consumers.Use) []string {
	var out []string
	for _, r := range consumers.Refs(uses) {
		if q, err := r.Query(); err == nil {
			out = append(out, q.Signer)
		}
	}
	return out
}

// bundleSource reads the ClusterTrustBundles a use resolves to from the cache, as one Source: the named
// one, or every bundle the signer query matches now. found is false when none does (or they are not
// followed), which leaves the workload's set without them, as a missing Secret does.
func (r *gatherer) bundleSource(ctx context.Context, ref consumers.Ref) (*inventory.Source, bool, error) {
	if !r.bundles {
		return nil, false, nil
	}
	var matched []certificatesv1beta1.ClusterTrustBundle
	if ref.Kind == consumers.KindClusterTrustBundle {
		b := certificatesv1beta1.ClusterTrustBundle{}
		if err := r.client.Get(ctx, client.ObjectKey{Name: ref.Name}, &b); err != nil {
			return nil, false, client.IgnoreNotFound(err)
		}
		matched = append(matched, b)
	} else {
		q, err := ref.Query()
		if err != nil {
			return nil, false, err
		}
		list := &certificatesv1beta1.ClusterTrustBundleList{}
		if err := r.client.List(ctx, list); err != nil {
			return nil, false, err
		}
		for _, b := range list.Items {
			if q.Matches(b.Spec.SignerName, b.Labels) {
				matched = append(matched, b)
			}
		}
	}
	if len(matched) == 0 {
		return nil, false, nil
	}
	return inventory.FromClusterTrustBundles(ref, matched), true, nil
}

// watchBundles adds, when the gatherer follows ClusterTrustBundles, the watch that wakes the workloads of
// kind k that project a changed bundle.
func watchBundles(b *builder.Builder, disc *gatherer, k kind, o Options, recorder events.EventRecorder) *builder.Builder {
	if !disc.bundles {
		return b
	}
	users := func(ctx context.Context, b *certificatesv1beta1.ClusterTrustBundle) ([]client.Object, error) {
		return bundleUsers(ctx, disc.client, k, b)
	}
	if k.name == api.KindPod {
		users = func(_ context.Context, b *certificatesv1beta1.ClusterTrustBundle) ([]client.Object, error) {
			return bareBundleUsers(disc.pods, b), nil
		}
	}
	return b.Watches(&certificatesv1beta1.ClusterTrustBundle{}, bundleHandler(users, o, recorder))
}

// bareBundleUsers lists the running bare pods, in every watched namespace, that project b. Bare pods have
// no index of their own here (the pod cache's are per namespace): they are few, and a bundle changes
// rarely.
func bareBundleUsers(pods *podCache, b *certificatesv1beta1.ClusterTrustBundle) []client.Object {
	var out []client.Object
	for _, p := range pods.bare("") {
		if p.Spec == nil {
			continue
		}
		uses := consumers.FromPodSpec(p.Spec, p.Annotations)
		byName := slices.ContainsFunc(consumers.Refs(uses), func(r consumers.Ref) bool {
			return r.Kind == consumers.KindClusterTrustBundle && r.Name == b.Name
		})
		if byName || projectsBundle(uses, b) {
			out = append(out, p.pod())
		}
	}
	return out
}

// bundleHandler maps a ClusterTrustBundle that appears, goes, or changes its CAs, signer or labels to the
// workloads of one kind, in every watched namespace, that project it by name or signer (bundleUsers),
// and enqueues them after the settle period: each is then decided on as for a Secret change, so one
// renewal is one rollout per workload. A change of CAs also tells each of them, in an Event, whether it
// only adds CAs or removes some.
func bundleHandler(bundleUsers func(context.Context, *certificatesv1beta1.ClusterTrustBundle) ([]client.Object, error), o Options, recorder events.EventRecorder) handler.EventHandler {
	wake := func(ctx context.Context, b *certificatesv1beta1.ClusterTrustBundle, change *inventory.CAChange, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		users, err := bundleUsers(ctx, b)
		if err != nil {
			log.FromContext(ctx).Error(err, "Failed to find the workloads that project a ClusterTrustBundle", "object", "ClusterTrustBundle/"+b.Name)
			return
		}
		for _, obj := range users {
			// Only workloads certrollout may restart hear of it, as only they would be rolled.
			if change != nil && decide.Enabled(obj.GetAnnotations(), o.Auto) {
				recorder.Eventf(obj, b, corev1.EventTypeNormal, api.ReasonTrustBundleChanged, "Detect", "%s",
					fitNote(fmt.Sprintf("ClusterTrustBundle %s %s", b.Name, change)))
			}
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}}, o.SettlePeriod)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if b, ok := e.Object.(*certificatesv1beta1.ClusterTrustBundle); ok {
				wake(ctx, b, nil, q)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, ok1 := e.ObjectOld.(*certificatesv1beta1.ClusterTrustBundle)
			b, ok2 := e.ObjectNew.(*certificatesv1beta1.ClusterTrustBundle)
			if !ok1 || !ok2 {
				return
			}
			change := inventory.CompareCAs(inventory.BundleCAs(old), inventory.BundleCAs(b))
			switch {
			case !change.None():
				wake(ctx, b, &change, q)
				if old.Spec.SignerName != b.Spec.SignerName {
					wake(ctx, old, nil, q)
				}
			case old.Spec.SignerName != b.Spec.SignerName || !maps.Equal(old.Labels, b.Labels):
				// Same CAs, other selection: users of the old or the new selection may gain or lose them.
				wake(ctx, old, nil, q)
				wake(ctx, b, nil, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if b, ok := e.Object.(*certificatesv1beta1.ClusterTrustBundle); ok {
				wake(ctx, b, nil, q)
			}
		},
	}
}

// bundleUsers lists the workloads of kind k, in every watched namespace, that project b: by name through
// the uses index, by signer through bundleSignerIndex, keeping those whose selector matches b.
func bundleUsers(ctx context.Context, c client.Reader, k kind, b *certificatesv1beta1.ClusterTrustBundle) ([]client.Object, error) {
	byName := k.newList()
	ref := consumers.Ref{Kind: consumers.KindClusterTrustBundle, Name: b.Name}
	if err := c.List(ctx, byName, client.MatchingFields{usesIndex: ref.String()}); err != nil {
		return nil, err
	}
	out := objectsOf(byName)
	if b.Spec.SignerName == "" {
		return out, nil
	}
	bySigner := k.newList()
	if err := c.List(ctx, bySigner, client.MatchingFields{bundleSignerIndex: b.Spec.SignerName}); err != nil {
		return nil, err
	}
	for _, o := range objectsOf(bySigner) {
		if projectsBundle(consumers.FromPodSpec(k.podSpec(o), o.GetAnnotations()), b) && !containsObject(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// projectsBundle reports whether one of the signer queries among uses selects b.
func projectsBundle(uses []consumers.Use, b *certificatesv1beta1.ClusterTrustBundle) bool {
	for _, r := range consumers.Refs(uses) {
		if q, err := r.Query(); err == nil && q.Matches(b.Spec.SignerName, b.Labels) {
			return true
		}
	}
	return false
}

func containsObject(list []client.Object, o client.Object) bool {
	for _, x := range list {
		if x.GetNamespace() == o.GetNamespace() && x.GetName() == o.GetName() {
			return true
		}
	}
	return false
}

// bundlesInDiscovery reports whether the cluster serves ClusterTrustBundles (certificates.k8s.io/v1beta1)
// to a view that reads them: a controller that watches every namespace, or the CLI's snapshot (namespaces
// nil). Asked before the cache
// is built: the cache needs the type's REST mapping for its options, and has none where it is not served.
func bundlesInDiscovery(cfg *rest.Config, namespaces []string) (bool, error) {
	if len(namespaces) > 0 {
		return false, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	list, err := dc.ServerResourcesForGroupVersion(certificatesv1beta1.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", certificatesv1beta1.SchemeGroupVersion, err)
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == "clustertrustbundles" }), nil
}
