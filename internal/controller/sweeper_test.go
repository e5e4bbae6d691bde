package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// markQuiescedWithoutCount leaves a Deployment at zero replicas, quiesced by rollout by, with no count
// recorded: what a hand edit, or a bug, leaves behind.
func (e *env) markQuiescedWithoutCount(name, by string) {
	e.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"replicas":0}}`, api.AnnotationQuiescedBy, by)
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// waitReleased waits until the Deployment lost its quiesce marks, then checks it kept its zero replicas.
func (e *env) waitReleased(name string) {
	e.t.Helper()
	clustertest.Eventually(e.t, time.Minute, name+" to lose its quiesce marks", func(context.Context) (bool, error) {
		return e.get(name).Annotations[api.AnnotationQuiescedBy] == "", nil
	})
	if got := e.replicas(name); got != 0 {
		e.t.Errorf("%s given %d replicas with no count recorded anywhere, want it left at 0", name, got)
	}
	clustertest.Eventually(e.t, 30*time.Second, "a NothingRecorded Event on "+name, e.hasEvent(name, corev1.EventTypeWarning, api.ReasonNothingRecorded))
}

// A quiesced workload with no recorded count is never given a guessed one, whichever path gives it back:
// the finalizer of a rollout deleted mid-way and the sweeper of a gone rollout both only remove its
// marks and say so, as the rollout's own restore does (orchestrate.RecordedReplicas).
func TestAQuiescedWorkloadWithNoRecordedCountKeepsItsReplicas(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	e.deploy(testgen.Deployment(e.ns, "held", 2, nil))
	e.deploy(testgen.Deployment(e.ns, "orphan", 2, nil))
	// A rollout being deleted while it holds a workload, before any controller ran: its finalizer restores.
	ro := &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "deleted", Finalizers: []string{api.FinalizerRestore}}, Spec: api.CertRolloutSpec{
		Targets: []api.WorkloadReference{{Kind: "Deployment", Name: "held"}}, Trigger: api.RolloutTrigger{Type: api.TriggerManual},
	}}
	if err := e.crClient().Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	e.markQuiescedWithoutCount("held", "deleted")
	if err := e.crClient().Delete(ctx, ro); err != nil {
		t.Fatal(err)
	}
	e.markQuiescedWithoutCount("orphan", "gone")
	e.start()

	e.waitReleased("held")
	e.waitReleased("orphan")
	clustertest.Eventually(t, 30*time.Second, "the deleted rollout to go", func(ctx context.Context) (bool, error) {
		err := e.crClient().Get(ctx, client.ObjectKeyFromObject(ro), &api.CertRollout{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}
