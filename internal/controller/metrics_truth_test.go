package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// touch makes the controller reconcile the Deployment again without changing what it decides from (it
// watches annotations), and waits until a decision with the labels has been counted.
func (e *env) touch(name string, decision map[string]string) {
	e.t.Helper()
	before, _ := sample(e.t, "certrollout_decisions_total", decision)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.certrollout.io/touched":"%d"}}}`, time.Now().UnixNano())
	if _, err := e.c.Client.AppsV1().Deployments(e.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
	clustertest.Eventually(e.t, time.Minute, "Deployment "+name+" to be reconciled again", func(context.Context) (bool, error) {
		got, _ := sample(e.t, "certrollout_decisions_total", decision)
		return got > before, nil
	})
}

// A Deployment that did not opt in has no ledger: after a renewal, only the controller's memory knows what
// its old pods run on. The running expiry must stay the old certificate's through later reconciles of the
// same certificates, or the headline alert could never fire for such workloads.
func TestAWorkloadNotOptedInReportsTheOldExpiryItsPodsRunOnThroughLaterReconciles(t *testing.T) {
	e := newEnv(t, testOptions())
	now := time.Now()
	ca := testgen.CA(t, "root")
	oldLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Hour), now.Add(3*24*time.Hour)))
	e.tlsSecret("api-tls", oldLeaf, ca, nil)
	e.deploy(deployment(e.ns, "web", false, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")
	e.start()
	web := map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "web"}
	oldExpiry := float64(oldLeaf.X509.NotAfter.Unix())
	waitSample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web, oldExpiry)

	newLeaf := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-time.Minute), now.Add(90*24*time.Hour)))
	e.tlsSecret("api-tls", newLeaf, ca, nil)
	waitSample(t, "certrollout_workload_certificate_expiry_timestamp_seconds", web, float64(newLeaf.X509.NotAfter.Unix()))
	waitSample(t, "certrollout_workload_stale_pods", web, 2)
	notEnabled := map[string]string{"action": "None", "reason": api.ReasonNotEnabled}
	for range 2 {
		e.touch("web", notEnabled)
		if got, ok := sample(t, "certrollout_workload_running_certificate_expiry_timestamp_seconds", web); !ok || got != oldExpiry {
			t.Fatalf("after another reconcile the running expiry is %g (present: %v), want the old certificate's %g", got, ok, oldExpiry)
		}
	}
	if h := e.get("web").Annotations[api.AnnotationCertificateHash]; h != "" {
		t.Fatalf("a workload that did not opt in got a ledger %q: the test no longer tests the memory", h)
	}
}
