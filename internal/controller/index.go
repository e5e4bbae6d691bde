package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/certrollout/certrollout/internal/consumers"
)

// usesIndex is a field index on every workload kind: the Secrets and ConfigMaps its pods use, as
// "Secret/name" and "ConfigMap/name". It answers "who uses this Secret?" from memory, with no LIST.
const usesIndex = "certrollout.io/uses"

func setupIndexes(ctx context.Context, mgr manager.Manager) error {
	for _, k := range kinds {
		k := k
		err := mgr.GetFieldIndexer().IndexField(ctx, k.newObj(), usesIndex, func(o client.Object) []string {
			if p, ok := o.(*corev1.Pod); ok && !barePod(p) {
				return nil // pods of a workload are indexed through the workload
			}
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
