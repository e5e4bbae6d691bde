package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// AnnotationLeaseRollout on the control-plane Lease names the rollout its holder works on.
const AnnotationLeaseRollout = "certrollout.io/rollout"

// DefaultLeaseDuration is how long the control-plane Lease holds without renewal. The holder renews it
// every third of that; a holder that is gone for longer loses it, but only a node the controller has
// given its turn ever asks for it.
const DefaultLeaseDuration = 60 * time.Second

// NodeLock is the coordination Lease that keeps every control-plane node but one out of its rollout.
type NodeLock struct {
	Client    client.Client
	Namespace string
	// Name defaults to api.ControlPlaneLeaseName.
	Name string
	// Holder is this node's name.
	Holder   string
	Duration time.Duration
	Now      func() time.Time
}

func (l *NodeLock) name() string {
	if l.Name != "" {
		return l.Name
	}
	return api.ControlPlaneLeaseName
}

func (l *NodeLock) duration() time.Duration {
	if l.Duration > 0 {
		return l.Duration
	}
	return DefaultLeaseDuration
}

func (l *NodeLock) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// TryAcquire takes or renews the Lease for rollout. It returns "" when held, else who holds it. A lease
// held by another node is never taken before it expires; this node takes its own back at once (after a
// restart of the agent).
func (l *NodeLock) TryAcquire(ctx context.Context, rollout string) (string, error) {
	var lease coordinationv1.Lease
	key := client.ObjectKey{Namespace: l.Namespace, Name: l.name()}
	now := metav1.NewMicroTime(l.now())
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(l.Holder),
		LeaseDurationSeconds: ptr.To(int32(min(l.duration()/time.Second, 3600))), //nolint:gosec // at most an hour
		AcquireTime:          &now,
		RenewTime:            &now,
	}
	err := l.Client.Get(ctx, key, &lease)
	if apierrors.IsNotFound(err) {
		lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: l.name(),
			Annotations: map[string]string{AnnotationLeaseRollout: rollout}}, Spec: spec}
		if err := l.Client.Create(ctx, &lease); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return "another node (the Lease was just created)", nil
			}
			return "", fmt.Errorf("creating Lease %s/%s: %w", l.Namespace, l.name(), err)
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading Lease %s/%s: %w", l.Namespace, l.name(), err)
	}
	if holder := heldBy(&lease, l.now()); holder != "" && holder != l.Holder {
		return holder, nil
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") == l.Holder && lease.Spec.AcquireTime != nil {
		spec.AcquireTime = lease.Spec.AcquireTime
	}
	lease.Spec = spec
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AnnotationLeaseRollout] = rollout
	// The update carries the resourceVersion read: two nodes racing for an expired Lease cannot both win.
	if err := l.Client.Update(ctx, &lease); err != nil {
		if apierrors.IsConflict(err) {
			return "another node (the Lease changed while this node took it)", nil
		}
		return "", fmt.Errorf("taking Lease %s/%s: %w", l.Namespace, l.name(), err)
	}
	return "", nil
}

// ErrLeaseLost says this node no longer holds the Lease.
var ErrLeaseLost = errors.New("this node no longer holds the control-plane Lease")

// Held checks, from the API server, that this node holds the Lease and it has not expired.
func (l *NodeLock) Held(ctx context.Context) error {
	var lease coordinationv1.Lease
	if err := l.Client.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: l.name()}, &lease); err != nil {
		return fmt.Errorf("reading Lease %s/%s: %w", l.Namespace, l.name(), err)
	}
	if holder := heldBy(&lease, l.now()); holder != l.Holder {
		if holder == "" {
			holder = "nobody (it expired)"
		}
		return fmt.Errorf("%w: Lease %s/%s is held by %s", ErrLeaseLost, l.Namespace, l.name(), holder)
	}
	return nil
}

// Release gives the Lease up if this node holds it.
func (l *NodeLock) Release(ctx context.Context) error {
	var lease coordinationv1.Lease
	if err := l.Client.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: l.name()}, &lease); err != nil {
		return client.IgnoreNotFound(err)
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") != l.Holder {
		return nil
	}
	lease.Spec.HolderIdentity = nil
	lease.Spec.RenewTime = nil
	lease.Spec.AcquireTime = nil
	delete(lease.Annotations, AnnotationLeaseRollout)
	return l.Client.Update(ctx, &lease)
}

// heldBy is the Lease's holder while it is unexpired, else "".
func heldBy(lease *coordinationv1.Lease, now time.Time) string {
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	if holder == "" || lease.Spec.RenewTime == nil {
		return ""
	}
	d := time.Duration(ptr.Deref(lease.Spec.LeaseDurationSeconds, 0)) * time.Second
	if now.After(lease.Spec.RenewTime.Add(d)) {
		return ""
	}
	return holder
}

// HeldBy reads the Lease and returns its unexpired holder, or "".
func HeldBy(ctx context.Context, c client.Reader, namespace string, now time.Time) (string, error) {
	var lease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: api.ControlPlaneLeaseName}, &lease); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return heldBy(&lease, now), nil
}
