package kinds

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestNamedAcceptsWhatKubectlAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"Deployment": "Deployment", "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
		"sts": "StatefulSet", "StatefulSets": "StatefulSet", "ds": "DaemonSet", "cj": "CronJob", "po": "Pod", "PODS": "Pod",
	} {
		k, ok := Named(in)
		if !ok || k.Name != want {
			t.Errorf("Named(%q) = %q, %v; want %q", in, k.Name, ok, want)
		}
	}
	for _, in := range []string{"", "job", "replicaset", "deploymentx"} {
		if k, ok := Named(in); ok {
			t.Errorf("Named(%q) = %q, want no kind", in, k.Name)
		}
	}
}

func TestOfAndScalable(t *testing.T) {
	if k, ok := Of(&appsv1.StatefulSet{}); !ok || k.Name != "StatefulSet" || !k.Scalable || !k.Orchestrated {
		t.Errorf("Of(StatefulSet) = %+v, %v", k.Name, ok)
	}
	if k, ok := Of(&corev1.Pod{}); !ok || k.Name != "Pod" || k.Orchestrated || k.Scalable {
		t.Errorf("Of(Pod) = %+v, %v", k.Name, ok)
	}
	if _, ok := Of(&corev1.Secret{}); ok {
		t.Error("a Secret is not a workload")
	}
	if Scalable("DaemonSet") || !Scalable("Deployment") || Scalable("nope") {
		t.Error("only Deployments and StatefulSets scale to zero")
	}
	for _, k := range All {
		if k.Strategy == nil || k.New == nil || k.NewList == nil || k.PodSpec == nil {
			t.Errorf("%s lacks a function", k.Name)
		}
		if k.PodSpec(k.New()) == nil {
			t.Errorf("%s: no pod spec on an empty object", k.Name)
		}
	}
}
