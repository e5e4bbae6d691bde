package clustertest

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/certrollout/certrollout/internal/localcluster"
)

// Renew triggers a real cert-manager re-issuance of Certificate ns/name the way `cmctl renew` does
// (condition Issuing=True, reason ManuallyTriggered) and waits until the next revision is Ready.
func Renew(t testing.TB, c *localcluster.Cluster, ns, name string) {
	t.Helper()
	ctx := context.Background()
	certs := c.Dynamic.Resource(localcluster.CertificateGVR).Namespace(ns)
	cert, err := certs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev, _, _ := unstructured.NestedInt64(cert.Object, "status", "revision")
	conds, _, _ := unstructured.NestedSlice(cert.Object, "status", "conditions")
	conds = append(conds, map[string]any{
		"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
		"message": "Certificate re-issuance manually triggered", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	})
	if err := unstructured.SetNestedSlice(cert.Object, conds, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.UpdateStatus(ctx, cert, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 2*time.Minute, "Certificate "+name+" to be re-issued", func(ctx context.Context) (bool, error) {
		r, _, err := localcluster.CertificateRevision(ctx, c, ns, name)
		if err != nil {
			return false, nil
		}
		ready, _ := localcluster.CertificateReady(ctx, c, ns, name)
		return r > rev && ready, nil
	})
}
