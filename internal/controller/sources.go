package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/certrollout/certrollout/internal/inventory"
)

// sourceReconciler reports malformed certificate data on the Secret or ConfigMap that holds it.
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
	if src == nil || len(src.Invalid) == 0 {
		return ctrl.Result{}, nil
	}
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
	return ctrl.Result{}, nil
}

// hasInvalid selects reduced objects that carry parse errors.
var hasInvalid = predicate.NewPredicateFuncs(func(o client.Object) bool {
	_, ok := o.GetAnnotations()[api.AnnotationInvalid]
	return ok
})

func setupSourceControllers(mgr manager.Manager, o Options) error {
	for name, newObj := range map[string]func() client.Object{
		"invalid-secret":    func() client.Object { return &corev1.Secret{} },
		"invalid-configmap": func() client.Object { return &corev1.ConfigMap{} },
	} {
		r := &sourceReconciler{client: mgr.GetClient(), newObj: newObj, recorder: mgr.GetEventRecorder("certrollout")}
		err := ctrl.NewControllerManagedBy(mgr).
			Named(name).
			For(newObj(), builder.WithPredicates(hasInvalid)).
			WithOptions(controller.Options{SkipNameValidation: &o.AllowRepeatedSetup}).
			Complete(r)
		if err != nil {
			return err
		}
	}
	return nil
}
