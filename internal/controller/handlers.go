package controller

import (
	"context"
	"maps"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/certrollout/certrollout/internal/consumers"
)

// sourceHandler maps a changed Secret or ConfigMap to the workloads of one kind that use it, through the
// uses index, and enqueues them after the settle period: changes to several sources of a workload within
// it become one reconcile (the delaying queue keeps the earliest deadline of an item already waiting).
func sourceHandler(c client.Reader, pods *podCache, k kind, settle time.Duration) handler.EventHandler {
	enqueue := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		ref := consumers.Ref{Kind: consumers.KindSecret, Name: obj.GetName()}
		if _, ok := obj.(*corev1.ConfigMap); ok {
			ref.Kind = consumers.KindConfigMap
		}
		var list []string
		var err error
		if k.name == api.KindPod {
			list, err = pods.users(obj.GetNamespace(), ref)
		} else {
			list, err = listUsers(ctx, c, k, obj.GetNamespace(), ref)
		}
		if err != nil {
			log.FromContext(ctx).Error(err, "Failed to find the workloads that use an object", "object", ref.String(), "namespace", obj.GetNamespace())
			return
		}
		for _, name := range list {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}, settle)
		}
	}
	return onCertificateChange(enqueue)
}

// onCertificateChange calls enqueue for a Secret or ConfigMap that appears, goes, or changes its
// certificate data; other updates (labels, other keys, Helm bookkeeping) wake nothing.
func onCertificateChange(enqueue func(context.Context, client.Object, workqueue.TypedRateLimitingInterface[reconcile.Request])) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if !sameCertificateData(e.ObjectOld, e.ObjectNew) {
				enqueue(ctx, e.ObjectNew, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q)
		},
	}
}

// sameCertificateData compares the reduced (cached) objects: equal data means no certificate changed,
// whatever else did (labels, other keys, Helm bookkeeping).
func sameCertificateData(a, b client.Object) bool {
	switch oa := a.(type) {
	case *corev1.Secret:
		ob, ok := b.(*corev1.Secret)
		return ok && maps.EqualFunc(oa.Data, ob.Data, func(x, y []byte) bool { return string(x) == string(y) }) &&
			oa.Annotations[api.AnnotationInvalid] == ob.Annotations[api.AnnotationInvalid]
	case *corev1.ConfigMap:
		ob, ok := b.(*corev1.ConfigMap)
		return ok && maps.Equal(oa.Data, ob.Data) &&
			maps.EqualFunc(oa.BinaryData, ob.BinaryData, func(x, y []byte) bool { return string(x) == string(y) }) &&
			oa.Annotations[api.AnnotationInvalid] == ob.Annotations[api.AnnotationInvalid]
	}
	return false
}

// listUsers names the workloads of kind k in namespace ns that use ref.
func listUsers(ctx context.Context, c client.Reader, k kind, ns string, ref consumers.Ref) ([]string, error) {
	list := k.newList()
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{usesIndex: ref.String()}); err != nil {
		return nil, err
	}
	objs, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		if m, err := apimeta.Accessor(o); err == nil {
			names = append(names, m.GetName())
		}
	}
	return names, nil
}
