// Package kinds is the one table of the workload kinds certrollout knows: their names (as certrollout and
// kubectl spell them), their Go types, where their pod template and selector are, what keeps a template
// change from reaching their pods, and what certrollout may do with them. The controller, the rollout
// state machine and the CLI all read it, so a kind is added in one place.
package kinds

import (
	"reflect"
	"strings"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kind is one workload kind.
type Kind struct {
	// Name is the API kind ("Deployment").
	Name string
	// Aliases are the other names kubectl accepts for it, lower case: plural and short name.
	Aliases []string
	// Orchestrated kinds can be governed by a RolloutPolicy and restarted by a CertRollout.
	Orchestrated bool
	// Scalable kinds can be quiesced: scaled to zero and back.
	Scalable bool
	New      func() client.Object
	NewList  func() client.ObjectList
	// PodSpec is the spec its pods are made from.
	PodSpec func(client.Object) *corev1.PodSpec
	// Selector picks its pods; nil for a CronJob (its pods are its Jobs') and a bare Pod (itself).
	Selector func(client.Object) *metav1.LabelSelector
	// Strategy says what keeps a template change from reaching its pods.
	Strategy func(client.Object) Strategy
}

// Strategy is what keeps a pod template change from reaching (some of) the pods.
type Strategy struct {
	Paused    bool
	OnDelete  bool
	Partition int32
}

func noStrategy(client.Object) Strategy { return Strategy{} }

// All are the kinds, in the order certrollout lists them.
var All = []Kind{
	{
		Name: api.KindDeployment, Aliases: []string{"deployments", "deploy"}, Orchestrated: true, Scalable: true,
		New:      func() client.Object { return &appsv1.Deployment{} },
		NewList:  func() client.ObjectList { return &appsv1.DeploymentList{} },
		PodSpec:  func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.Deployment).Spec.Template.Spec },
		Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.Deployment).Spec.Selector },
		Strategy: func(o client.Object) Strategy { return Strategy{Paused: o.(*appsv1.Deployment).Spec.Paused} },
	},
	{
		Name: api.KindStatefulSet, Aliases: []string{"statefulsets", "sts"}, Orchestrated: true, Scalable: true,
		New:      func() client.Object { return &appsv1.StatefulSet{} },
		NewList:  func() client.ObjectList { return &appsv1.StatefulSetList{} },
		PodSpec:  func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.StatefulSet).Spec.Template.Spec },
		Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.StatefulSet).Spec.Selector },
		Strategy: func(o client.Object) Strategy {
			s := o.(*appsv1.StatefulSet).Spec.UpdateStrategy
			out := Strategy{OnDelete: s.Type == appsv1.OnDeleteStatefulSetStrategyType}
			if s.RollingUpdate != nil && s.RollingUpdate.Partition != nil {
				out.Partition = *s.RollingUpdate.Partition
			}
			return out
		},
	},
	{
		Name: api.KindDaemonSet, Aliases: []string{"daemonsets", "ds"}, Orchestrated: true,
		New:      func() client.Object { return &appsv1.DaemonSet{} },
		NewList:  func() client.ObjectList { return &appsv1.DaemonSetList{} },
		PodSpec:  func(o client.Object) *corev1.PodSpec { return &o.(*appsv1.DaemonSet).Spec.Template.Spec },
		Selector: func(o client.Object) *metav1.LabelSelector { return o.(*appsv1.DaemonSet).Spec.Selector },
		Strategy: func(o client.Object) Strategy {
			return Strategy{OnDelete: o.(*appsv1.DaemonSet).Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType}
		},
	},
	{
		Name: api.KindCronJob, Aliases: []string{"cronjobs", "cj"},
		New:     func() client.Object { return &batchv1.CronJob{} },
		NewList: func() client.ObjectList { return &batchv1.CronJobList{} },
		PodSpec: func(o client.Object) *corev1.PodSpec {
			return &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Spec
		},
		Selector: func(client.Object) *metav1.LabelSelector { return nil },
		Strategy: noStrategy,
	},
	{
		Name: api.KindPod, Aliases: []string{"pods", "po"},
		New:      func() client.Object { return &corev1.Pod{} },
		NewList:  func() client.ObjectList { return &corev1.PodList{} },
		PodSpec:  func(o client.Object) *corev1.PodSpec { return &o.(*corev1.Pod).Spec },
		Strategy: noStrategy,
	},
}

// Named finds a kind by its name or an alias, in any case ("Deployment", "deploy", "STS").
func Named(name string) (Kind, bool) {
	for _, k := range All {
		if strings.EqualFold(k.Name, name) {
			return k, true
		}
		for _, a := range k.Aliases {
			if strings.EqualFold(a, name) {
				return k, true
			}
		}
	}
	return Kind{}, false
}

// Of finds the kind of a typed object (*appsv1.Deployment, ...).
func Of(obj client.Object) (Kind, bool) {
	for _, k := range All {
		if reflect.TypeOf(k.New()) == reflect.TypeOf(obj) {
			return k, true
		}
	}
	return Kind{}, false
}

// Scalable reports whether the named kind can be quiesced.
func Scalable(name string) bool {
	k, ok := Named(name)
	return ok && k.Scalable
}

// Names are the kinds' names, lower case, as completion offers them ("deployment", ...).
func Names() []string {
	out := make([]string, 0, len(All))
	for _, k := range All {
		out = append(out, strings.ToLower(k.Name))
	}
	return out
}
