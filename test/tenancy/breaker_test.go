package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// A Secret that keeps changing restarts its consumer no more than the restart budget allows: then the
// breaker trips, with a RestartBudgetExhausted Event, and the flapping goes on without restarts.
func TestAFlappingSecretTripsTheRestartBudget(t *testing.T) {
	cl := admin(t)
	ns := clustertest.Namespace(t)
	o := options(ns)
	o.MaxRestartsPerDay = 2
	startController(t, o)
	ca := testgen.CA(t, "root")
	secret := func() *corev1.Secret {
		leaf := testgen.Leaf(t, ca, "api")
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": leaf.PEM(), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()}}
	}
	create(t, cl, secret(), testgen.Deployment(ns, "api", 1, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, testgen.WithAnnotation(api.AnnotationEnabled, "true")))
	waitAvailable(t, cl, ns, "api")
	clustertest.Eventually(t, time.Minute, "the ledger to be recorded", func(ctx context.Context) (bool, error) {
		_, ann := replicas(t, cl, ns, "api")
		return ann[api.AnnotationCertificateHash] != "", nil
	})

	// Renew every 3 s (longer than the 1 s settle period, so each renewal is due on its own) for 8 rounds.
	for range 8 {
		if err := cl.Update(context.Background(), secret()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
	}
	clustertest.Eventually(t, 30*time.Second, "a RestartBudgetExhausted Event", hasEvent(cl, ns, "api", corev1.EventTypeWarning, "RestartBudgetExhausted", "restarted 2 times in the last 24h0m0s"))
	var rs appsv1.ReplicaSetList
	if err := cl.List(context.Background(), &rs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(rs.Items) != 3 {
		t.Fatalf("%d ReplicaSets: want 3, the first template and one per restart the budget of 2 allows", len(rs.Items))
	}
	if _, ann := replicas(t, cl, ns, "api"); len(strings.Split(ann[api.AnnotationRestartHistory], ",")) != 2 {
		t.Errorf("restart history %q: want the 2 restarts", ann[api.AnnotationRestartHistory])
	}
}
