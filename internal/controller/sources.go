package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/inventory"
)

// sourceReconciler reports, on the Secret or ConfigMap that holds it, certificate data that does not parse,
// and a private key under a key where a workload reads a certificate.
type sourceReconciler struct {
	client   client.Client
	newObj   func() client.Object
	recorder events.EventRecorder
}

func (r *sourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.newObj()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var src *inventory.Source
	switch o := obj.(type) {
	case *corev1.Secret:
		src = inventory.FromSecret(o)
	case *corev1.ConfigMap:
		src = inventory.FromConfigMap(o)
	}
	if src == nil {
		return ctrl.Result{}, nil
	}
	if len(src.Invalid) > 0 {
		keys := make([]string, 0, len(src.Invalid))
		for k := range src.Invalid {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("key %s: %v", k, src.Invalid[k]))
		}
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, api.ReasonInvalidCertificate, "Parse", "%s",
			fitNote(fmt.Sprintf("Ignored malformed certificate data (%s); consumers keep their current certificates", strings.Join(parts, "; "))))
	}
	if len(src.KeysWithoutCertificate) == 0 {
		return ctrl.Result{}, nil
	}
	readers, err := r.readers(ctx, src)
	if err != nil {
		return ctrl.Result{}, err
	}
	var parts []string
	for _, key := range src.KeysWithoutCertificate {
		if len(readers[key]) > 0 {
			parts = append(parts, fmt.Sprintf("key %s (read by %s)", key, strings.Join(readers[key], ", ")))
		}
	}
	if len(parts) > 0 {
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, api.ReasonKeyWithoutCertificate, "Parse", "%s",
			fitNote(fmt.Sprintf("Found a private key and no certificate where workloads read a certificate: %s", strings.Join(parts, "; "))))
	}
	return ctrl.Result{}, nil
}

// readers maps each of src's keys without a certificate to the workloads that read it ("Deployment web"),
// through the uses index: a workload reads a key it names, or every key of an object it mounts whole.
// Bare pods are not looked at (they have a cache of their own, without specs of other kinds' pods).
func (r *sourceReconciler) readers(ctx context.Context, src *inventory.Source) (map[string][]string, error) {
	out := map[string][]string{}
	for _, k := range kinds {
		if k.name == api.KindPod {
			continue
		}
		list := k.newList()
		if err := r.client.List(ctx, list, client.InNamespace(src.Namespace), client.MatchingFields{usesIndex: src.String()}); err != nil {
			return nil, err
		}
		for _, o := range objectsOf(list) {
			read := consumers.KeysOf(consumers.FromPodSpec(k.podSpec(o), o.GetAnnotations()), src.Ref)
			for _, key := range src.KeysWithoutCertificate {
				if read == nil || slices.Contains(read, key) {
					out[key] = append(out[key], k.name+" "+o.GetName())
				}
			}
		}
	}
	return out, nil
}

// reportable selects reduced objects that carry parse errors or keys without a certificate.
var reportable = predicate.NewPredicateFuncs(func(o client.Object) bool {
	a := o.GetAnnotations()
	_, invalid := a[api.AnnotationInvalid]
	_, keys := a[api.AnnotationKeysWithoutCertificate]
	return invalid || keys
})

// readersOf maps a workload to the Secrets or ConfigMaps (of kind ref) it uses, so that a workload created
// after the object it reads still hears about a key without a certificate there.
func readersOf(k kind, refKind consumers.Kind) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		var out []reconcile.Request
		for _, ref := range consumers.Refs(consumers.FromPodSpec(k.podSpec(o), o.GetAnnotations())) {
			if ref.Kind == refKind {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
			}
		}
		return out
	})
}

func setupSourceControllers(mgr manager.Manager, o Options) error {
	for name, c := range map[string]struct {
		newObj  func() client.Object
		refKind consumers.Kind
	}{
		"invalid-secret":    {func() client.Object { return &corev1.Secret{} }, consumers.KindSecret},
		"invalid-configmap": {func() client.Object { return &corev1.ConfigMap{} }, consumers.KindConfigMap},
	} {
		r := &sourceReconciler{client: mgr.GetClient(), newObj: c.newObj, recorder: mgr.GetEventRecorder("certrollout")}
		b := ctrl.NewControllerManagedBy(mgr).
			Named(name).
			For(c.newObj(), builder.WithPredicates(reportable)).
			WithOptions(controller.Options{SkipNameValidation: &o.AllowRepeatedSetup})
		for _, k := range kinds {
			if k.name != api.KindPod {
				// A new workload, or a changed pod template: not its status updates.
				b = b.Watches(k.newObj(), readersOf(k, c.refKind), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
			}
		}
		if err := b.Complete(r); err != nil {
			return err
		}
	}
	return nil
}
