package controller

import (
	"context"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/certrollout/certrollout/internal/consumers"
	workloadkinds "github.com/certrollout/certrollout/internal/kinds"
)

// usesIndex is a field index on every workload kind but bare pods: the Secrets and ConfigMaps its pods use, as
// "Secret/name" and "ConfigMap/name". It answers "who uses this Secret?" from memory, with no LIST.
const usesIndex = "certrollout.io/uses"

// quiescedByIndex is a field index on the scalable kinds: the CertRollout named by a workload's
// certrollout.io/quiesced-by annotation. It finds what a rollout holds at zero replicas without trusting
// the rollout's status, which a crash or a lost write may have left behind.
const quiescedByIndex = "certrollout.io/quiesced-by"

func setupIndexes(ctx context.Context, mgr manager.Manager) error {
	for _, k := range scalableKinds() {
		err := mgr.GetFieldIndexer().IndexField(ctx, k.newObj(), quiescedByIndex, func(o client.Object) []string {
			if by := o.GetAnnotations()[api.AnnotationQuiescedBy]; by != "" {
				return []string{by}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, k := range kinds {
		if k.name == api.KindPod {
			continue // the pod cache has its own index (podUsesIndex)
		}
		err := mgr.GetFieldIndexer().IndexField(ctx, k.newObj(), usesIndex, func(o client.Object) []string {
			var out []string
			for _, r := range consumers.Refs(consumers.FromPodSpec(k.podSpec(o), o.GetAnnotations())) {
				out = append(out, r.String())
			}
			return out
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scalableKinds are the kinds a rollout can quiesce: Deployments and StatefulSets.
func scalableKinds() []kind {
	var out []kind
	for _, k := range kinds {
		if workloadkinds.Scalable(k.name) {
			out = append(out, k)
		}
	}
	return out
}

// quiescedBy lists the workloads of namespace ns whose quiesce annotation names rollout.
func quiescedBy(ctx context.Context, c client.Reader, ns, rollout string) ([]client.Object, error) {
	var out []client.Object
	for _, k := range scalableKinds() {
		list := k.newList()
		if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{quiescedByIndex: rollout}); err != nil {
			return nil, err
		}
		out = append(out, objectsOf(list)...)
	}
	return out, nil
}

// objectsOf returns the items of a typed list.
func objectsOf(list client.ObjectList) []client.Object {
	items, _ := apimeta.ExtractList(list) // only fails on a list without Items; every kind's has them
	out := make([]client.Object, 0, len(items))
	for _, o := range items {
		if obj, ok := o.(client.Object); ok {
			out = append(out, obj)
		}
	}
	return out
}
