package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/certrollout/certrollout/internal/testgen"
)

func TestReducePodKeepsIdentityLabelsAndStartOfOwnedPods(t *testing.T) {
	started := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "app", Name: "web-1", UID: "u1", ResourceVersion: "7", GenerateName: "web-",
			Labels:          map[string]string{"app": "web", "pod-template-hash": "abc"},
			Annotations:     map[string]string{"big": "annotation"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-abc", Controller: ptr.To(true)}},
		},
		Spec: testgen.PodSpec(testgen.WithSecretVolume("api-tls")),
		Status: corev1.PodStatus{
			StartTime: &metav1.Time{Time: started.Add(-time.Minute)},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "a", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: started.Add(time.Minute)}}}},
				{Name: "b", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: started}}}},
			},
		},
	}
	out, err := reducePod(p)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := out.(*cachedPod)
	if !ok {
		t.Fatalf("reducePod returned %T", out)
	}
	if c.Name != "web-1" || c.Namespace != "app" || c.UID != "u1" || c.ResourceVersion != "7" {
		t.Errorf("identity lost: %+v", c.ObjectMeta)
	}
	if c.Bare || c.Spec != nil || c.Annotations != nil || c.GenerateName != "" {
		t.Errorf("an owned pod keeps no spec, annotations or generateName: bare=%v spec=%v annotations=%v", c.Bare, c.Spec != nil, c.Annotations)
	}
	if !c.Started.Equal(started) {
		t.Errorf("started %s, want the earliest running container %s", c.Started, started)
	}
	if !labels.SelectorFromSet(labels.Set{"app": "web"}).Matches(c.podLabels) || labels.SelectorFromSet(labels.Set{"app": "api"}).Matches(c.podLabels) {
		t.Error("selectors must match the kept labels")
	}
	if sel, _ := labels.Parse("app in (web),!missing,pod-template-hash"); !sel.Matches(c.podLabels) {
		t.Error("set-based selectors must match too")
	}
}

func TestReducePodKeepsTheSpecAndAnnotationsOfBarePods(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "solo", Labels: map[string]string{"app": "solo"},
			Annotations: map[string]string{"certrollout.io/enabled": "true", corev1.LastAppliedConfigAnnotation: "{...}"}},
		Spec:   testgen.PodSpec(testgen.WithSecretVolume("api-tls")),
		Status: corev1.PodStatus{StartTime: &metav1.Time{Time: time.Unix(1_800_000_000, 0)}},
	}
	out, _ := reducePod(p)
	c := out.(*cachedPod)
	if !c.Bare || c.Spec == nil || c.Annotations["certrollout.io/enabled"] != "true" {
		t.Fatalf("a bare pod keeps spec and annotations: %+v", c)
	}
	if _, ok := c.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Error("the last-applied annotation is dropped")
	}
	back := c.pod()
	if back.Labels["app"] != "solo" || len(back.Spec.Volumes) != 1 || back.Name != "solo" {
		t.Errorf("pod() must rebuild what the reconcile reads: %+v", back)
	}
	cp := c.DeepCopyObject().(*cachedPod)
	cp.Spec.Volumes = nil
	cp.podLabels[1] = "changed"
	if len(c.Spec.Volumes) != 1 || c.podLabels.Get("app") != "solo" {
		t.Error("DeepCopyObject must not share the spec or labels")
	}
}

func TestReducePodPassesOtherObjectsThrough(t *testing.T) {
	tomb := "not a pod"
	if out, err := reducePod(tomb); err != nil || out != tomb {
		t.Fatalf("got %v, %v", out, err)
	}
}
