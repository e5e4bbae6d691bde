package tenancy

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// markQuiesced leaves a Deployment as a CertRollout's scale-down does: at zero replicas, its count and
// the rollout recorded on it.
func markQuiesced(t *testing.T, cl client.Client, ns, name, by string, recorded int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:"%d"}},"spec":{"replicas":0}}`,
		api.AnnotationQuiescedBy, by, api.AnnotationQuiescedReplicas, recorded)
	if err := cl.Patch(context.Background(), web(ns, name), client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func waitRestored(t *testing.T, cl client.Client, ns, name string, want int32) {
	t.Helper()
	clustertest.Eventually(t, time.Minute, fmt.Sprintf("%s to be restored to %d replicas", name, want), func(context.Context) (bool, error) {
		got, ann := replicas(t, cl, ns, name)
		if got != want || ann[api.AnnotationQuiescedBy] != "" || ann[api.AnnotationQuiescedReplicas] != "" {
			return false, fmt.Errorf("%d replicas, quiesced by %q", got, ann[api.AnnotationQuiescedBy])
		}
		return true, nil
	})
}

// A workload left at zero replicas by a CertRollout that is gone, or that finished without restoring it,
// gets its recorded count back, with a Warning Event that says why.
func TestTheSweeperRestoresWorkloadsOrphanedAtZero(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	startController(t, options(ns))
	create(t, cl, web(ns, "web"), workers(ns, "left-by-gone", 1, 0), workers(ns, "left-by-done", 1, 0))
	waitAvailable(t, cl, ns, "web")

	markQuiesced(t, cl, ns, "left-by-gone", "gone", 3)
	waitRestored(t, cl, ns, "left-by-gone", 3)
	clustertest.Eventually(t, 30*time.Second, "a RestoredOrphan Event", hasEvent(cl, ns, "left-by-gone", "Warning", "RestoredOrphan", "CertRollout gone that quiesced it no longer exists"))

	create(t, cl, manual(ns, "done", "", "web"))
	waitPhase(t, cl, 2*time.Minute, ns, "done", "to succeed", phaseIs(api.PhaseSucceeded))
	markQuiesced(t, cl, ns, "left-by-done", "done", 2)
	waitRestored(t, cl, ns, "left-by-done", 2)
	clustertest.Eventually(t, 30*time.Second, "a RestoredOrphan Event", hasEvent(cl, ns, "left-by-done", "Warning", "RestoredOrphan", "ended Succeeded without restoring it"))
}

// A CertRollout deleted mid-quiesce whose status lost the quiesce list (a crash or a failed status write
// after the scale-down) still restores the workers: what it holds is found from the workloads' own marks.
func TestADeletedRolloutRestoresWhatItsStatusLost(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	stop := startController(t, options(ns))
	create(t, cl, web(ns, "web"), workers(ns, "workers", 3, time.Minute))
	waitAvailable(t, cl, ns, "web")
	waitAvailable(t, cl, ns, "workers")
	create(t, cl, &api.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ops"}, Spec: api.RolloutPolicySpec{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "none"}},
		Quiesce:  []api.QuiesceTarget{{Kind: "Deployment", Name: "workers", DrainTimeout: dur("5m")}},
	}}, manual(ns, "by-hand", "ops", "web"))
	ro := waitPhase(t, cl, time.Minute, ns, "by-hand", "to drain the workers", func(ro *api.CertRollout) bool {
		return len(ro.Status.Quiesced) == 1 && ro.Status.Quiesced[0].State == api.QuiesceDraining
	})
	stop()

	// The status loses the quiesce list, then the rollout is deleted while no controller runs.
	ro.Status.Quiesced = nil
	if err := cl.Status().Update(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	if err := cl.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	if got, _ := replicas(t, cl, ns, "workers"); got != 0 {
		t.Fatalf("workers at %d replicas before the controller comes back; the test wants them quiesced", got)
	}
	startController(t, options(ns))
	waitRestored(t, cl, ns, "workers", 3)
	clustertest.Eventually(t, time.Minute, "the CertRollout to be gone", func(ctx context.Context) (bool, error) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(ro), &api.CertRollout{})
		return client.IgnoreNotFound(err) == nil && err != nil, nil
	})
}
