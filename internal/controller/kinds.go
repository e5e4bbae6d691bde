package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/decide"
	workloadkinds "github.com/certrollout/certrollout/internal/kinds"
)

// kind adapts one workload type to the generic reconciler.
type kind struct {
	name    string
	newObj  func() client.Object
	newList func() client.ObjectList
	// podSpec is the spec its pods are made from.
	podSpec func(client.Object) *corev1.PodSpec
	// selector picks its pods; nil for a bare Pod (the pod is itself).
	selector func(client.Object) *metav1.LabelSelector
	// describe fills what policy needs beyond name and annotations.
	describe func(client.Object, *decide.Workload)
	// orchestrated kinds can be governed by a RolloutPolicy and restarted by a CertRollout.
	orchestrated bool
}

// kinds are the controller's view of the one table of workload kinds (package kinds).
var kinds = func() []kind {
	out := make([]kind, 0, len(workloadkinds.All))
	for _, k := range workloadkinds.All {
		out = append(out, kind{name: k.Name, orchestrated: k.Orchestrated, newObj: k.New, newList: k.NewList, podSpec: k.PodSpec, selector: k.Selector,
			describe: func(o client.Object, w *decide.Workload) {
				s := k.Strategy(o)
				w.Paused, w.OnDelete, w.Partition = s.Paused, s.OnDelete, s.Partition
			}})
	}
	return out
}()
