package restart

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Progress is how far a workload's rollout has come.
type Progress struct {
	// Done: every pod runs the current template and is available.
	Done bool
	// Failed says why the rollout cannot finish (a Deployment past its progress deadline); empty if it
	// can.
	Failed string
	// Message says what it waits for.
	Message string
}

// RolloutStatus judges a workload's rollout the way `kubectl rollout status` does: the controller has
// seen the current generation, every replica is updated and available, and no old one is left.
func RolloutStatus(obj client.Object) Progress {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return deploymentStatus(o)
	case *appsv1.StatefulSet:
		return statefulSetStatus(o)
	case *appsv1.DaemonSet:
		return daemonSetStatus(o)
	}
	return Progress{Failed: fmt.Sprintf("cannot follow the rollout of a %T", obj)}
}

func deploymentStatus(d *appsv1.Deployment) Progress {
	if d.Generation > d.Status.ObservedGeneration {
		return Progress{Message: "waiting for the Deployment controller to see the new template"}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return Progress{Failed: fmt.Sprintf("Deployment %s exceeded its progress deadline: %s", d.Name, c.Message)}
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.UpdatedReplicas < want:
		return Progress{Message: fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)}
	case s.Replicas > s.UpdatedReplicas:
		return Progress{Message: fmt.Sprintf("%d old replicas pending termination", s.Replicas-s.UpdatedReplicas)}
	case s.AvailableReplicas < s.UpdatedReplicas:
		return Progress{Message: fmt.Sprintf("%d of %d updated replicas available", s.AvailableReplicas, s.UpdatedReplicas)}
	}
	return Progress{Done: true, Message: "successfully rolled out"}
}

func statefulSetStatus(s *appsv1.StatefulSet) Progress {
	if s.Generation > s.Status.ObservedGeneration {
		return Progress{Message: "waiting for the StatefulSet controller to see the new template"}
	}
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	if st.ReadyReplicas < want {
		return Progress{Message: fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want)}
	}
	if s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && s.Spec.UpdateStrategy.RollingUpdate != nil &&
		s.Spec.UpdateStrategy.RollingUpdate.Partition != nil && *s.Spec.UpdateStrategy.RollingUpdate.Partition > 0 {
		if st.UpdatedReplicas < want-*s.Spec.UpdateStrategy.RollingUpdate.Partition {
			return Progress{Message: fmt.Sprintf("%d of %d pods above the partition updated", st.UpdatedReplicas, want-*s.Spec.UpdateStrategy.RollingUpdate.Partition)}
		}
		return Progress{Done: true, Message: "partitioned roll out complete"}
	}
	if st.UpdateRevision != st.CurrentRevision || st.UpdatedReplicas < want {
		return Progress{Message: fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want)}
	}
	return Progress{Done: true, Message: "successfully rolled out"}
}

func daemonSetStatus(d *appsv1.DaemonSet) Progress {
	if d.Generation > d.Status.ObservedGeneration {
		return Progress{Message: "waiting for the DaemonSet controller to see the new template"}
	}
	st := d.Status
	if st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
		return Progress{Message: fmt.Sprintf("%d of %d pods updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)}
	}
	if st.NumberAvailable < st.DesiredNumberScheduled {
		return Progress{Message: fmt.Sprintf("%d of %d updated pods available", st.NumberAvailable, st.DesiredNumberScheduled)}
	}
	return Progress{Done: true, Message: "successfully rolled out"}
}
