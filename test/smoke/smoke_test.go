package smoke

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// rolledOut is kubectl's rollout-status rule for a Deployment.
func rolledOut(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	return d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas == want &&
		d.Status.Replicas == want &&
		d.Status.AvailableReplicas == want
}

func TestDeploymentBecomesAvailableAndRolloutRestartCompletes(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "smoke"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(ctx context.Context) (*appsv1.Deployment, error) {
		return c.Client.AppsV1().Deployments(ns).Get(ctx, "smoke", metav1.GetOptions{})
	}
	clustertest.Eventually(t, 2*time.Minute, "Deployment smoke to be available", func(ctx context.Context) (bool, error) {
		d, err := get(ctx)
		return err == nil && rolledOut(d), err
	})
	before := podUIDs(t, c, ns)
	if len(before) != 3 {
		t.Fatalf("want 3 pods before the restart, got %d", len(before))
	}

	// What `kubectl rollout restart` does.
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
		time.Now().Format(time.RFC3339))
	if _, err := c.Client.AppsV1().Deployments(ns).Patch(ctx, "smoke", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "the restart of Deployment smoke to complete", func(ctx context.Context) (bool, error) {
		d, err := get(ctx)
		if err != nil {
			return false, err
		}
		if !rolledOut(d) {
			return false, fmt.Errorf("not rolled out: generation %d, status %+v", d.Generation, d.Status)
		}
		after := podUIDs(t, c, ns)
		for uid := range after {
			if before[uid] {
				return false, fmt.Errorf("pod %s from before the restart still runs", uid)
			}
		}
		if len(after) != 3 {
			return false, fmt.Errorf("want 3 pods after the restart, have %d", len(after))
		}
		return true, nil
	})
}

// podUIDs lists the pods of a namespace that are not being deleted.
func podUIDs(t *testing.T, c *localcluster.Cluster, ns string) map[types.UID]bool {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uids := map[types.UID]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			uids[p.UID] = true
		}
	}
	return uids
}

func TestCertManagerRenewsALeafCertificateRepeatedly(t *testing.T) {
	c := clustertest.Cluster(t)
	ns := clustertest.Namespace(t)
	ctx := context.Background()
	manifests := testgen.CertManagerChain(ns, "leaf", "leaf-tls", "1h", "59m50s")
	if err := localcluster.Apply(ctx, c.Config, []byte(manifests)); err != nil {
		t.Fatal(err)
	}
	// cert-manager writes the Secret a moment before it bumps status.revision, so revisions and serials
	// are followed independently: both must advance twice past the first issuance.
	var firstRev, lastRev int64
	serials := map[string]bool{}
	clustertest.Eventually(t, 3*time.Minute, "Certificate leaf to be renewed twice", func(ctx context.Context) (bool, error) {
		rev, serial, err := localcluster.CertificateRevision(ctx, c, ns, "leaf")
		if err != nil || rev == 0 || serial == "" {
			return false, nil // not issued yet
		}
		if firstRev == 0 {
			firstRev = rev
		}
		lastRev = rev
		serials[serial] = true
		return rev >= firstRev+2 && len(serials) >= 3, nil
	})
	t.Logf("revisions %d..%d, %d distinct serials", firstRev, lastRev, len(serials))
	ready, err := localcluster.CertificateReady(ctx, c, ns, "leaf")
	if err != nil || !ready {
		t.Fatalf("Certificate leaf not Ready after renewals (err %v)", err)
	}
}

// Without lease renewals the node lifecycle controller marks a kwok node NotReady every grace period and
// takes readiness from all its pods, which makes every rollout in every other test flaky.
func TestKwokNodeLeaseIsRenewed(t *testing.T) {
	c := clustertest.Cluster(t)
	leases := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	var first time.Time
	clustertest.Eventually(t, time.Minute, "the node Lease to be renewed", func(ctx context.Context) (bool, error) {
		l, err := leases.Get(ctx, localcluster.NodeName(0), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if l.Spec.RenewTime == nil {
			return false, fmt.Errorf("lease has no renewTime")
		}
		if first.IsZero() {
			first = l.Spec.RenewTime.Time
			return false, nil
		}
		return l.Spec.RenewTime.After(first), nil
	})
}
