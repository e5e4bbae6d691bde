package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/policy"
)

// usesIndex is a field index on every workload kind but bare pods: the Secrets and ConfigMaps its pods use, as
// "Secret/name" and "ConfigMap/name". It answers "who uses this Secret?" from memory, with no LIST.
const usesIndex = "certrollout.io/uses"

func setupIndexes(ctx context.Context, mgr manager.Manager) error {
	for _, k := range kinds {
		if k.name == policy.KindPod {
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
