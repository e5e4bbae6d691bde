package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// A tenant's CertRollout naming a ClusterIssuer cannot re-issue another namespace's Certificates, nor can
// a cascade run for a ClusterIssuer the admin did not opt in, even from cert-manager's namespace: both
// fail at once with CascadeRefused and show nothing of other namespaces.
func TestATenantCannotRunAClusterIssuerCascade(t *testing.T) {
	cl := admin(t)
	c := clustertest.Cluster(t)
	ctx := context.Background()
	tenant, victim := clustertest.Namespace(t), clustertest.Namespace(t)
	home := localcluster.ProbeNamespace // the local cluster's cluster resource namespace
	root, secret := "root-"+tenant, "root-ca-"+tenant
	manifests := `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + secret + `, namespace: ` + home + `}
spec: {isCA: true, commonName: root-ca, secretName: ` + secret + `, privateKey: {rotationPolicy: Always}, issuerRef: {name: probe-selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: ` + root + `}
spec: {ca: {secretName: ` + secret + `}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: bank, namespace: ` + victim + `}
spec: {secretName: bank-tls, commonName: bank, dnsNames: [bank], duration: 2160h, issuerRef: {name: ` + root + `, kind: ClusterIssuer}}
`
	if err := localcluster.Apply(ctx, c.Config, []byte(manifests)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Dynamic.Resource(localcluster.CertificateGVR.GroupVersion().WithResource("clusterissuers")).Delete(context.Background(), root, metav1.DeleteOptions{})
		_ = c.Dynamic.Resource(localcluster.CertificateGVR).Namespace(home).Delete(context.Background(), secret, metav1.DeleteOptions{})
		_ = c.Client.CoreV1().Secrets(home).Delete(context.Background(), secret, metav1.DeleteOptions{})
		_ = cl.DeleteAllOf(context.Background(), &api.CertRollout{}, client.InNamespace(home), client.MatchingLabels{"test": tenant})
	})
	clustertest.Eventually(t, 3*time.Minute, "the root CA to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, home, secret)
	})
	clustertest.Eventually(t, 3*time.Minute, "the victim's Certificate to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, victim, "bank")
	})
	// The CA rotates: the victim's leaf is now signed by the previous CA certificate, what a cascade
	// re-issues.
	clustertest.Renew(t, c, home, secret)
	var ca corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: home, Name: secret}, &ca); err != nil {
		t.Fatal(err)
	}
	b, err := certs.ParsePEM(ca.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	fingerprint := b.Certificates[0].Fingerprint
	before, _, err := localcluster.CertificateRevision(ctx, c, victim, "bank")
	if err != nil {
		t.Fatal(err)
	}

	o := options(tenant, victim, home)
	o.ClusterResourceNamespace = home
	startController(t, o)
	cascadeOf := func(ns, name string) *api.CertRollout {
		return &api.CertRollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"test": tenant}},
			Spec:       api.CertRolloutSpec{Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "ClusterIssuer", Name: root}, CAFingerprint: fingerprint}},
		}
	}
	for _, tc := range []struct{ ns, name, want string }{
		{tenant, "steal", "runs only in namespace " + home},
		{home, "not-opted-in", "has not opted into CA cascades"},
	} {
		create(t, cl, cascadeOf(tc.ns, tc.name))
		ro := waitPhase(t, cl, time.Minute, tc.ns, tc.name, "to be refused", phaseIs(api.PhaseFailed, api.PhaseSucceeded))
		cond := failedCondition(ro)
		if ro.Status.Phase != api.PhaseFailed || cond == nil || cond.Reason != "CascadeRefused" || !strings.Contains(ro.Status.Message, tc.want) {
			t.Errorf("%s/%s ended %s (%v): %s; want Failed, CascadeRefused, saying %q", tc.ns, tc.name, ro.Status.Phase, cond, ro.Status.Message, tc.want)
		}
		if len(ro.Status.Certificates) != 0 || len(ro.Status.TrustedBy) != 0 {
			t.Errorf("%s/%s shows objects of other namespaces: certificates %+v, trustedBy %+v", tc.ns, tc.name, ro.Status.Certificates, ro.Status.TrustedBy)
		}
	}
	time.Sleep(3 * time.Second) // a re-issuance, had one been triggered, shows within this
	if after, _, err := localcluster.CertificateRevision(ctx, c, victim, "bank"); err != nil || after != before {
		t.Errorf("the victim's Certificate went from revision %d to %d (%v): want it untouched", before, after, err)
	}
}

func failedCondition(ro *api.CertRollout) *metav1.Condition {
	for i := range ro.Status.Conditions {
		if ro.Status.Conditions[i].Type == api.ConditionFailed {
			return &ro.Status.Conditions[i]
		}
	}
	return nil
}
