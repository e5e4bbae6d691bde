package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// statefulSet creates a StatefulSet of replicas whose pods start in parallel.
func (e *env) statefulSet(name string, replicas int32) {
	e.t.Helper()
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tier": "provider"}}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		PodManagementPolicy: appsv1.ParallelPodManagement,
		Template:            corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: testgen.PodSpec()},
	}}
	if _, err := e.c.Client.AppsV1().StatefulSets(e.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) statefulSetNamed(name string) *appsv1.StatefulSet {
	e.t.Helper()
	s, err := e.c.Client.AppsV1().StatefulSets(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// appPods counts the pods of app=name, terminating ones included.
func (e *env) appPods(name string) int {
	e.t.Helper()
	pods, err := e.c.Client.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(pods.Items)
}

// createHold creates a MaintenanceHold of the named workloads ("Kind/name").
func (e *env) createHold(name string, expiresAt *metav1.Time, workloads ...api.ScalableWorkloadReference) {
	e.t.Helper()
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: api.MaintenanceHoldSpec{
		Targets: api.HoldTargets{Workloads: workloads}, ExpiresAt: expiresAt,
	}}
	if err := e.crClient().Create(context.Background(), h); err != nil {
		e.t.Fatal(err)
	}
}

// waitHold waits for the hold to satisfy cond and returns it.
func (e *env) waitHold(name string, timeout time.Duration, what string, cond func(*api.MaintenanceHold) bool) *api.MaintenanceHold {
	e.t.Helper()
	var got api.MaintenanceHold
	clustertest.Eventually(e.t, timeout, what, func(ctx context.Context) (bool, error) {
		if err := e.crClient().Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &got); err != nil {
			return false, err
		}
		if !cond(&got) {
			return false, fmt.Errorf("phase %s: %s", got.Status.Phase, got.Status.Message)
		}
		return true, nil
	})
	return &got
}

func isHeld(h *api.MaintenanceHold) bool {
	return h.Status.Phase == api.HoldPhaseHeld && apimeta.IsStatusConditionTrue(h.Status.Conditions, api.ConditionReady)
}

func isReleased(h *api.MaintenanceHold) bool { return h.Status.Phase == api.HoldPhaseReleased }

// scaleAsAnHPA sets the StatefulSet's replicas through its scale subresource, which is what a
// HorizontalPodAutoscaler writes. The local cluster runs no metrics server, so a real HPA would never
// act: this is its write, made directly.
func (e *env) scaleAsAnHPA(name string, replicas int32) {
	e.t.Helper()
	sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	if _, err := e.c.Client.AppsV1().StatefulSets(e.ns).UpdateScale(context.Background(), name, sc, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// The Akash runbook as a hold: the provider (a 3-replica StatefulSet) is stopped and verified stopped
// (no pod left), stays stopped across a controller restart (the sweeper, which restores workloads a gone
// CertRollout left at zero, leaves it alone) and against an HPA's scale-up, and gets exactly its 3
// replicas back when released.
func TestAHoldKeepsAStatefulSetAtZeroAcrossARestartAndAnHPAThenRestoresItsExactCount(t *testing.T) {
	e := newEnv(t, testOptions())
	e.statefulSet("provider", 3)
	e.waitPodsRunning(3)
	// An orphan quiesced by a CertRollout that does not exist: the sweeper restores it, which shows the
	// sweeper ran over the namespace's quiesced workloads after the restart.
	e.deploy(testgen.Deployment(e.ns, "orphan", 2, nil))
	e.start()

	e.createHold("maintenance", nil, api.ScalableWorkloadReference{Kind: api.KindStatefulSet, Name: "provider"})
	h := e.waitHold("maintenance", 2*time.Minute, "the provider to be held with no pod left", isHeld)
	if n := e.appPods("provider"); n != 0 {
		t.Fatalf("hold Ready with %d provider pod(s) left", n)
	}
	sts := e.statefulSetNamed("provider")
	if *sts.Spec.Replicas != 0 || sts.Annotations[api.AnnotationQuiescedBy] != api.HoldQuiescer("maintenance") || sts.Annotations[api.AnnotationQuiescedReplicas] != "3" {
		t.Fatalf("held provider: %d replicas, annotations %v; want 0 with its count 3 recorded for the hold", *sts.Spec.Replicas, sts.Annotations)
	}
	if w := h.Status.Workloads; len(w) != 1 || w[0].State != api.HeldHeld || w[0].OriginalReplicas == nil || *w[0].OriginalReplicas != 3 || w[0].DrainedAt == nil {
		t.Fatalf("hold status: %+v", w)
	}

	// The controller restarts; meanwhile a CertRollout that no longer exists left the orphan at zero.
	e.stop()
	e.quiescedByAGoneRollout("orphan", 2)
	e.start()
	clustertest.Eventually(t, time.Minute, "the sweeper to restore the orphan", func(context.Context) (bool, error) {
		return e.replicas("orphan") == 2, nil
	})
	if sts := e.statefulSetNamed("provider"); *sts.Spec.Replicas != 0 || sts.Annotations[api.AnnotationQuiescedBy] != api.HoldQuiescer("maintenance") {
		t.Fatalf("after the controller restarted the provider has %d replicas, annotations %v: the hold was lost", *sts.Spec.Replicas, sts.Annotations)
	}

	// An HPA scales the provider up: the hold scales it back and says so.
	e.scaleAsAnHPA("provider", 2)
	h = e.waitHold("maintenance", time.Minute, "the hold to fight the scale-up", func(h *api.MaintenanceHold) bool {
		return isHeld(h) && len(h.Status.Workloads) == 1 && h.Status.Workloads[0].Enforced >= 1
	})
	if c := apimeta.FindStatusCondition(h.Status.Conditions, api.ConditionReady); c == nil || !containsAll(c.Message, "scaled up", "fights the hold") {
		t.Errorf("Ready does not report the fight: %+v", c)
	}
	if n := e.appPods("provider"); n != 0 {
		t.Errorf("held again with %d provider pod(s) left", n)
	}
	clustertest.Eventually(t, 30*time.Second, "a HoldEnforced Event on the provider", e.hasEvent("provider", corev1.EventTypeWarning, api.ReasonHoldEnforced))

	e.release("maintenance")
	e.waitHold("maintenance", time.Minute, "the hold to be released", isReleased)
	sts = e.statefulSetNamed("provider")
	if *sts.Spec.Replicas != 3 || sts.Annotations[api.AnnotationQuiescedBy] != "" || sts.Annotations[api.AnnotationQuiescedReplicas] != "" {
		t.Errorf("released provider: %d replicas, annotations %v; want exactly 3 and no hold marks", *sts.Spec.Replicas, sts.Annotations)
	}
	e.waitPodsRunning(5) // the provider's 3 and the orphan's 2
	clustertest.Eventually(t, 30*time.Second, "a Restored Event on the provider", e.hasEvent("provider", corev1.EventTypeNormal, api.ReasonRestored))
}

// quiescedByAGoneRollout leaves a Deployment at zero replicas, quiesced by a CertRollout that does not
// exist, with its count recorded: what a rollout force-deleted mid-way leaves behind.
func (e *env) quiescedByAGoneRollout(name string, replicas int) {
	e.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"gone",%q:"%d"}},"spec":{"replicas":0}}`, api.AnnotationQuiescedBy, api.AnnotationQuiescedReplicas, replicas)
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) release(name string) {
	e.t.Helper()
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}
	if err := e.crClient().Patch(context.Background(), h, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"release":true}}`))); err != nil {
		e.t.Fatal(err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// A hold with an expiry releases itself when it passes, and a deleted hold restores what it held before
// it goes (its finalizer).
func TestAHoldReleasesItselfWhenItExpiresAndWhenItIsDeleted(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	e.deploy(testgen.Deployment(e.ns, "expiring", 2, nil))
	e.deploy(testgen.Deployment(e.ns, "deleted", 3, nil))
	e.waitAvailable("expiring")
	e.waitAvailable("deleted")
	e.start()

	e.createHold("short", nil, api.ScalableWorkloadReference{Kind: api.KindDeployment, Name: "expiring"})
	e.createHold("until-deleted", nil, api.ScalableWorkloadReference{Kind: api.KindDeployment, Name: "deleted"})
	e.waitHold("until-deleted", 2*time.Minute, "until-deleted to hold", isHeld)
	if got := e.replicas("deleted"); got != 0 {
		t.Fatalf("held Deployment at %d replicas", got)
	}
	// Once held, the short hold is given an expiry that has passed (spec.expiresAt may change): how long
	// pods take to go on a busy machine then decides nothing.
	e.waitHold("short", 2*time.Minute, "the short hold to hold", isHeld)
	expired := fmt.Sprintf(`{"spec":{"expiresAt":%q}}`, time.Now().Add(-time.Second).UTC().Format(time.RFC3339))
	if err := e.crClient().Patch(ctx, &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "short"}}, client.RawPatch(types.MergePatchType, []byte(expired))); err != nil {
		t.Fatal(err)
	}

	h := e.waitHold("short", 2*time.Minute, "the short hold to expire", isReleased)
	if got := e.replicas("expiring"); got != 2 {
		t.Errorf("expired hold restored %d replicas, want 2", got)
	}
	if h.Status.HeldAt == nil || h.Status.ReleasedAt == nil || h.Status.Workloads[0].State != api.HeldRestored {
		t.Errorf("expired hold status: %+v", h.Status)
	}
	clustertest.Eventually(t, 30*time.Second, "an Expired Event on the hold", e.hasEvent("short", corev1.EventTypeNormal, api.ReasonHoldExpired))

	if err := e.crClient().Delete(ctx, &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "until-deleted"}}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the deleted hold to go", func(ctx context.Context) (bool, error) {
		err := e.crClient().Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "until-deleted"}, &api.MaintenanceHold{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	d := e.get("deleted")
	if *d.Spec.Replicas != 3 || d.Annotations[api.AnnotationQuiescedBy] != "" {
		t.Errorf("deleting the hold left the Deployment at %d replicas, annotations %v; want 3 and no marks", *d.Spec.Replicas, d.Annotations)
	}
}

// A CertRollout whose policy quiesces a workload a hold keeps at zero neither scales it nor, at its end,
// restores it: the workload stays held until the hold is released.
func TestARolloutLeavesAHeldWorkloadToItsHold(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := e.governedWeb()
	e.deploy(e.workers("workers", 2, 0))
	e.waitAvailable("web")
	e.waitAvailable("workers")
	e.createPolicy("web", api.RolloutPolicySpec{Selector: roleWeb, Quiesce: []api.QuiesceTarget{{Kind: api.KindDeployment, Name: "workers"}}})
	e.start()
	e.createHold("maintenance", nil, api.ScalableWorkloadReference{Kind: api.KindDeployment, Name: "workers"})
	e.waitHold("maintenance", 2*time.Minute, "the workers to be held", isHeld)
	e.waitLedger("web", "")

	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	ro := e.waitRollout(2*time.Minute, "the CertRollout to finish", func(r *api.CertRollout) bool { return r.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("rollout %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	w := e.get("workers")
	if *w.Spec.Replicas != 0 || w.Annotations[api.AnnotationQuiescedBy] != api.HoldQuiescer("maintenance") || w.Annotations[api.AnnotationQuiescedReplicas] != "2" {
		t.Fatalf("after the rollout the held workers have %d replicas, annotations %v: the rollout took them from the hold", *w.Spec.Replicas, w.Annotations)
	}
	e.release("maintenance")
	e.waitHold("maintenance", time.Minute, "the hold to be released", isReleased)
	if got := e.replicas("workers"); got != 2 {
		t.Errorf("released workers at %d replicas, want 2", got)
	}
}
