package restart

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func deployment(gen, observed int64, replicas int32, st appsv1.DeploymentStatus) *appsv1.Deployment {
	st.ObservedGeneration = observed
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}, Status: st}
}

func TestRolloutStatus(t *testing.T) {
	for name, tc := range map[string]struct {
		obj     client.Object
		done    bool
		failed  string
		message string
	}{
		"waits until the Deployment controller has seen the new template": {
			obj: deployment(3, 2, 2, appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}), message: "see the new template",
		},
		"waits for replicas to be updated": {
			obj: deployment(3, 3, 3, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}), message: "1 of 3 replicas updated",
		},
		"waits for old replicas to go": {
			obj: deployment(3, 3, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}), message: "1 old replicas pending termination",
		},
		"waits for updated replicas to be available": {
			obj: deployment(3, 3, 2, appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1}), message: "1 of 2 updated replicas available",
		},
		"is done when every replica is updated and available": {
			obj: deployment(3, 3, 2, appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}), done: true,
		},
		"is done for a Deployment scaled to zero": {
			obj: deployment(3, 3, 0, appsv1.DeploymentStatus{}), done: true,
		},
		"fails past the progress deadline": {
			obj: deployment(3, 3, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-2" has timed out progressing.`},
			}}), failed: "exceeded its progress deadline",
		},
		"waits for StatefulSet pods to be ready on the update revision": {
			obj: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
				Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 3, UpdatedReplicas: 1, CurrentRevision: "a", UpdateRevision: "b"}},
			message: "1 of 3 pods updated",
		},
		"is done when the StatefulSet's current revision is the update revision": {
			obj: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
				Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, ReadyReplicas: 3, UpdatedReplicas: 3, CurrentRevision: "b", UpdateRevision: "b"}},
			done: true,
		},
		"waits for DaemonSet pods to be available": {
			obj:     &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 2}},
			message: "2 of 3 updated pods available",
		},
		"is done when every DaemonSet pod is updated and available": {
			obj:  &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3}},
			done: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := RolloutStatus(tc.obj)
			if p.Done != tc.done || (tc.failed == "") != (p.Failed == "") || !strings.Contains(p.Failed, tc.failed) || !strings.Contains(p.Message, tc.message) {
				t.Fatalf("got %+v, want done=%v failed~%q message~%q", p, tc.done, tc.failed, tc.message)
			}
		})
	}
}

func TestQuiescedReplicasToleratesGarbage(t *testing.T) {
	for value, want := range map[string]*int32{"3": ptr.To[int32](3), "0": ptr.To[int32](0), "-1": nil, "three": nil, "99999999999": nil} {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"certrollout.io/quiesced-replicas": value}}}
		got := QuiescedReplicas(d)
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("%q: got %v, want %v", value, got, want)
		}
	}
	if QuiescedReplicas(&appsv1.Deployment{}) != nil {
		t.Error("no annotation, no count")
	}
}
