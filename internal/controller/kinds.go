package controller

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/policy"
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
	describe func(client.Object, *policy.Workload)
	// orchestrated kinds can be governed by a RolloutPolicy and restarted by a CertRollout.
	orchestrated bool
}

var kinds = []kind{
	{
		name:         policy.KindDeployment,
		orchestrated: true,
		newObj:       func() client.Object { return &appsv1.Deployment{} },
		newList:      func() client.ObjectList { return &appsv1.DeploymentList{} },
		podSpec:      func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.Deployment).Spec.Template.Spec },
		selector:     func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.Deployment).Spec.Selector },
		describe:     func(o client.Object, w *policy.Workload) { w.Paused = o.(*appsv1.Deployment).Spec.Paused },
	},
	{
		name:         policy.KindStatefulSet,
		orchestrated: true,
		newObj:       func() client.Object { return &appsv1.StatefulSet{} },
		newList:      func() client.ObjectList { return &appsv1.StatefulSetList{} },
		podSpec:      func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.StatefulSet).Spec.Template.Spec },
		selector:     func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.StatefulSet).Spec.Selector },
		describe: func(o client.Object, w *policy.Workload) {
			s := o.(*appsv1.StatefulSet).Spec.UpdateStrategy
			w.OnDelete = s.Type == appsv1.OnDeleteStatefulSetStrategyType
			if s.RollingUpdate != nil && s.RollingUpdate.Partition != nil {
				w.Partition = *s.RollingUpdate.Partition
			}
		},
	},
	{
		name:         policy.KindDaemonSet,
		orchestrated: true,
		newObj:       func() client.Object { return &appsv1.DaemonSet{} },
		newList:      func() client.ObjectList { return &appsv1.DaemonSetList{} },
		podSpec:      func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.DaemonSet).Spec.Template.Spec },
		selector:     func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.DaemonSet).Spec.Selector },
		describe: func(o client.Object, w *policy.Workload) {
			w.OnDelete = o.(*appsv1.DaemonSet).Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
		},
	},
	{
		name:    policy.KindCronJob,
		newObj:  func() client.Object { return &batchv1.CronJob{} },
		newList: func() client.ObjectList { return &batchv1.CronJobList{} },
		podSpec: func(o client.Object) *corev1.PodSpec {
			return &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Spec
		},
		// A CronJob's pods are those of its Jobs; they are reported, never restarted.
		selector: func(client.Object) *metav1.LabelSelector { return nil },
		describe: func(client.Object, *policy.Workload) {},
	},
	{
		name:     policy.KindPod,
		newObj:   func() client.Object { return &corev1.Pod{} },
		newList:  func() client.ObjectList { return &corev1.PodList{} },
		podSpec:  func(o client.Object) *corev1.PodSpec { return &o.(*corev1.Pod).Spec },
		selector: nil,
		describe: func(client.Object, *policy.Workload) {},
	},
}
