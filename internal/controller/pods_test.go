package controller

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
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
	if c.IP != "" {
		t.Errorf("IP %q for a pod without one", c.IP)
	}
	p.Status.PodIP = "10.0.0.7"
	if out, _ := reducePod(p); out.(*cachedPod).IP != "10.0.0.7" {
		t.Errorf("the pod's IP is not kept: %q", out.(*cachedPod).IP)
	}
	p.Spec.HostNetwork = true
	if out, _ := reducePod(p); out.(*cachedPod).IP != "" {
		t.Errorf("a host-network pod's IP (its node's) is kept: %q", out.(*cachedPod).IP)
	}
	p.Spec.HostNetwork, p.Status.PodIP = false, ""
	if !c.Started.Equal(started) {
		t.Errorf("started %s, want the earliest running container %s", c.Started, started)
	}
	if !labels.SelectorFromSet(labels.Set{"app": "web"}).Matches(&c.podLabels) || labels.SelectorFromSet(labels.Set{"app": "api"}).Matches(&c.podLabels) {
		t.Error("selectors must match the kept labels")
	}
	if sel, _ := labels.Parse("app in (web),!missing,pod-template-hash"); !sel.Matches(&c.podLabels) {
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

// BenchmarkSelected measures the pod scan a workload reconcile makes: 10,000 pods in the namespace, 10
// of them the workload's.
func BenchmarkSelected(b *testing.B) {
	idx := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, podLabelIndex: indexPodLabels})
	for i := range 10000 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("app-%04d-%d", i/10, i%10),
			Labels:          map[string]string{"app": fmt.Sprintf("app-%04d", i/10), "pod-template-hash": "5d8f7c9b4"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", Controller: ptr.To(true)}}}}
		c, _ := reducePod(p)
		if err := idx.Add(c); err != nil {
			b.Fatal(err)
		}
	}
	pc := &podCache{informers: map[string]toolscache.SharedIndexInformer{"": fakeInformer{idx: idx}}}
	sel := labels.SelectorFromSet(labels.Set{"app": "app-0500"})
	b.ResetTimer()
	for range b.N {
		pods, err := pc.selected("bench", sel)
		if err != nil || len(pods) != 10 {
			b.Fatalf("%d pods, %v", len(pods), err)
		}
	}
}

// fakeInformer serves only its indexer.
type fakeInformer struct {
	toolscache.SharedIndexInformer
	idx toolscache.Indexer
}

func (f fakeInformer) GetIndexer() toolscache.Indexer { return f.idx }

func TestSelectedFindsPodsThroughTheLabelIndexOrTheNamespace(t *testing.T) {
	idx := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc, podLabelIndex: indexPodLabels})
	add := func(ns, name string, lbls map[string]string, finished, deleting bool) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls,
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", Controller: ptr.To(true)}}}}
		if finished {
			p.Status.Phase = corev1.PodSucceeded
		}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		c, _ := reducePod(p)
		if err := idx.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "web-1", map[string]string{"app": "web", "tier": "front"}, false, false)
	add("a", "web-2", map[string]string{"app": "web", "tier": "back"}, false, true)
	add("a", "web-3", map[string]string{"app": "web"}, true, false)
	add("a", "api-1", map[string]string{"app": "api"}, false, false)
	add("b", "web-1", map[string]string{"app": "web"}, false, false)
	pc := &podCache{informers: map[string]toolscache.SharedIndexInformer{"": fakeInformer{idx: idx}}}
	for _, tc := range []struct {
		selector string
		running  int // selected: not finished, not being deleted
		present  int // present: not finished
	}{
		{"app=web", 1, 2},
		{"app in (web)", 1, 2},
		{"app=web,tier=front", 1, 1},
		{"app in (web,api)", 2, 3}, // no single-value requirement: scans the namespace
		{"tier", 1, 2},
		{"app!=web", 1, 1},
		{"app=none", 0, 0},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		pods, err := pc.selected("a", sel)
		if err != nil || len(pods) != tc.running {
			t.Errorf("%s: selected %d pods (%v), want %d", tc.selector, len(pods), err, tc.running)
		}
		if got := pc.present("a", sel); got != tc.present {
			t.Errorf("%s: present %d, want %d", tc.selector, got, tc.present)
		}
	}
}
