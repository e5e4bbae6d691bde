package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// TestAutomaticCascadeRollsEachWorkloadOnce renews the CA of an issuer annotated certrollout.io/cascade
// and lets the controller do the rest: it creates the cascade, which rolls the trusting workload, then
// re-issues each leaf once; the workload that uses the CA and a leaf is held until its leaf is new and
// rolls once. A second CA issuer on the same CA Secret, not annotated, gets no cascade.
func TestAutomaticCascadeRollsEachWorkloadOnce(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	leaves := []string{"api", "web"}
	plain := "metadata: {name: ca, namespace: " + e.ns + "}\nspec: {ca:"
	chain := caChain(e.ns, leaves, nil)
	if !strings.Contains(chain, plain) {
		t.Fatal("caChain changed: cannot annotate its CA Issuer")
	}
	chain = strings.Replace(chain, plain, "metadata: {name: ca, namespace: "+e.ns+", annotations: {certrollout.io/cascade: \"true\"}}\nspec: {ca:", 1)
	chain += `---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: plain, namespace: ` + e.ns + `}
spec: {ca: {secretName: ca}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: other, namespace: ` + e.ns + `}
spec: {secretName: other-tls, commonName: other, dnsNames: [other], duration: 2160h, issuerRef: {name: plain, kind: Issuer}}
`
	if err := localcluster.Apply(ctx, e.c.Config, []byte(chain)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ca", "api", "web", "other"} {
		clustertest.Eventually(t, 3*time.Minute, "Certificate "+n+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, e.c, e.ns, n)
		})
	}
	e.deploy(deployment(e.ns, "trust", true, testgen.WithSecretVolume("ca", "ca.crt")))
	e.deploy(deployment(e.ns, "api", true, testgen.WithSecretVolume("api-tls")))
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("web-tls")))
	e.deploy(deployment(e.ns, "both", true, testgen.WithSecretVolume("ca", "ca.crt"), testgen.WithSecretVolume("api-tls")))
	workloads := []string{"trust", "api", "web", "both"}
	for _, n := range workloads {
		e.waitAvailable(n)
	}
	e.start()
	for _, n := range workloads {
		e.waitLedger(n, "")
	}
	if n := e.rolloutCount(); n != 0 {
		t.Fatalf("%d CertRollouts before the CA renewed: every leaf was current", n)
	}
	before := map[string]int64{}
	for _, l := range append([]string{"other"}, leaves...) {
		before[l] = e.revision(l)
	}

	clustertest.Renew(t, e.c, e.ns, "ca")
	fingerprint := e.caFingerprint()
	ro := e.waitRollout(5*time.Minute, "the controller's cascade to succeed", func(ro *api.CertRollout) bool {
		if ro.Status.Phase == api.PhaseFailed {
			t.Fatalf("cascade failed: %s", ro.Status.Message)
		}
		return ro.Status.Phase == api.PhaseSucceeded
	})
	if ro.Name != cascadeRolloutName("ca", fingerprint) || ro.Spec.Trigger.Type != api.TriggerCARotated ||
		ro.Spec.Cascade == nil || ro.Spec.Cascade.IssuerRef != (api.IssuerReference{Kind: "Issuer", Name: "ca"}) || ro.Spec.Cascade.CAFingerprint != fingerprint {
		t.Fatalf("rollout %s: %+v", ro.Name, ro.Spec)
	}
	clustertest.Eventually(t, time.Minute, "Event CascadeStarted on Issuer ca", e.hasEvent("ca", "Normal", api.ReasonCascadeStarted))
	for _, l := range leaves {
		if got := e.revision(l); got != before[l]+1 {
			t.Errorf("Certificate %s: revision %d, want %d (re-issued exactly once)", l, got, before[l]+1)
		}
	}
	if got := e.revision("other"); got != before["other"] {
		t.Errorf("Certificate other of the issuer without the annotation: revision %d, want %d (no cascade)", got, before["other"])
	}

	for _, n := range workloads {
		waitRollouts(e, n, 2) // the leaves' consumers roll onto their new leaves as the cascade ends
		e.waitAvailable(n)
	}
	e.quietly(3*time.Second, workloads...)
	for _, n := range workloads {
		if got := e.rollouts(n); got != 2 {
			t.Errorf("Deployment %s: %d ReplicaSets, want 2 (rolled exactly once)", n, got)
		}
	}
	// both uses the CA and leaf api: it rolled once, after api was re-issued.
	restarted, err := time.Parse(time.RFC3339, e.get("both").Annotations[api.AnnotationRestartedAt])
	if err != nil {
		t.Fatalf("Deployment both was not restarted: %v", err)
	}
	if started := leafOf(ro, "api").StartedAt; started == nil || restarted.Before(started.Time) {
		t.Errorf("Deployment both restarted at %s, before its leaf api was re-issued (%v)", restarted, started)
	}
	// trust mounts the CA Secret: it rolled onto the new CA before any leaf was re-issued.
	trusted, err := time.Parse(time.RFC3339, e.get("trust").Annotations[api.AnnotationRestartedAt])
	if err != nil {
		t.Fatalf("Deployment trust was not restarted: %v", err)
	}
	for _, l := range leaves {
		if started := leafOf(ro, l).StartedAt; started == nil || started.Time.Before(trusted) {
			t.Errorf("leaf %s was re-issued at %v, before the trusting workload rolled at %s", l, started, trusted)
		}
	}
	if n := e.rolloutCount(); n != 1 {
		t.Errorf("%d CertRollouts, want the one cascade", n)
	}

	// As check sees it: no leaf of the cascading issuer needs re-issuing; the other issuer's still does.
	snap, err := NewSnapshot(ctx, e.c.Config, Options{Namespaces: []string{e.ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	g, err := snap.CAGraph(ctx, e.ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, is := range g.Issuers {
		want := map[string]int{"ca": 0, "plain": 1}[is.Name]
		if got := is.NotCurrent(); got != want {
			t.Errorf("%s: %d leaves need re-issuing, want %d", is.IssuerRef, got, want)
		}
	}
	if len(g.Issuers) != 2 {
		t.Errorf("CA graph has %d issuers, want ca and plain", len(g.Issuers))
	}
}

// TestACascadingIssuerWithoutItsCASecretGetsAnEvent: bad input on an issuer is said on the issuer, and
// nothing is started for it.
func TestACascadingIssuerWithoutItsCASecretGetsAnEvent(t *testing.T) {
	e := newEnv(t, testOptions())
	issuer := `apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: broken, namespace: ` + e.ns + `, annotations: {certrollout.io/cascade: "true"}}
spec: {ca: {secretName: missing}}
`
	if err := localcluster.Apply(context.Background(), e.c.Config, []byte(issuer)); err != nil {
		t.Fatal(err)
	}
	e.start()
	clustertest.Eventually(t, time.Minute, "an InvalidCA Event on Issuer broken", e.hasEvent("broken", "Warning", api.ReasonInvalidCA))
	if n := e.rolloutCount(); n != 0 {
		t.Fatalf("%d CertRollouts for an issuer whose CA cannot be read", n)
	}
}

// TestAnAnnotatedClusterIssuerCascadesAcrossNamespaces is issue 6's acceptance case: the root CA of an
// annotated CA ClusterIssuer renews (its Secret in cert-manager's cluster resource namespace); every
// leaf it signed, in another namespace, is re-issued exactly once and every consumer rolls exactly once,
// the one that reads only a leaf Secret's ca.crt included (it changes with the leaf). Trust-first order
// is tested with an Issuer, whose CA Secret a workload can mount.
func TestAnAnnotatedClusterIssuerCascadesAcrossNamespaces(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	home := localcluster.ProbeNamespace // the local cluster's cluster resource namespace
	e.opts.Namespaces = append(e.opts.Namespaces, home)
	e.opts.ClusterResourceNamespace = home
	root, secret := "root-"+e.ns, "root-ca-"+e.ns
	manifests := `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + secret + `, namespace: ` + home + `}
spec: {isCA: true, commonName: root-ca, secretName: ` + secret + `, privateKey: {rotationPolicy: Always}, issuerRef: {name: probe-selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: ` + root + `, annotations: {certrollout.io/cascade: "true"}}
spec: {ca: {secretName: ` + secret + `}}
`
	leaves := []string{"api", "web"}
	for _, l := range leaves {
		manifests += `---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + l + `, namespace: ` + e.ns + `}
spec: {secretName: ` + l + `-tls, commonName: ` + l + `, dnsNames: [` + l + `], duration: 2160h, issuerRef: {name: ` + root + `, kind: ClusterIssuer}}
`
	}
	if err := localcluster.Apply(ctx, e.c.Config, []byte(manifests)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, res := range []struct{ gvr, ns, name string }{{"clusterissuers", "", root}, {"certificates", home, secret}} {
			_ = e.c.Dynamic.Resource(localcluster.CertificateGVR.GroupVersion().WithResource(res.gvr)).Namespace(res.ns).Delete(context.Background(), res.name, metav1.DeleteOptions{})
		}
		_ = e.c.Client.CoreV1().Secrets(home).Delete(context.Background(), secret, metav1.DeleteOptions{})
		var list api.CertRolloutList
		if err := e.crClient().List(context.Background(), &list, client.InNamespace(home)); err == nil {
			for i := range list.Items {
				if c := list.Items[i].Spec.Cascade; c != nil && c.IssuerRef.Name == root {
					_ = e.crClient().Delete(context.Background(), &list.Items[i])
				}
			}
		}
	})
	clustertest.Eventually(t, 3*time.Minute, "the root CA to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, e.c, home, secret)
	})
	for _, l := range leaves {
		clustertest.Eventually(t, 3*time.Minute, "Certificate "+l+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, e.c, e.ns, l)
		})
	}
	e.deploy(deployment(e.ns, "trust", true, testgen.WithSecretVolume("api-tls", "ca.crt")))
	e.deploy(deployment(e.ns, "api", true, testgen.WithSecretVolume("api-tls")))
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("web-tls")))
	workloads := []string{"trust", "api", "web"}
	for _, n := range workloads {
		e.waitAvailable(n)
	}
	e.start()
	for _, n := range workloads {
		e.waitLedger(n, "")
	}
	before := map[string]int64{}
	for _, l := range leaves {
		before[l] = e.revision(l)
	}

	clustertest.Renew(t, e.c, home, secret)
	var ro *api.CertRollout
	clustertest.Eventually(t, 5*time.Minute, "the ClusterIssuer's cascade to succeed", func(ctx context.Context) (bool, error) {
		var list api.CertRolloutList
		if err := e.crClient().List(ctx, &list, client.InNamespace(home)); err != nil {
			return false, err
		}
		for i := range list.Items {
			if c := list.Items[i].Spec.Cascade; c != nil && c.IssuerRef == (api.IssuerReference{Kind: "ClusterIssuer", Name: root}) {
				ro = &list.Items[i]
				if ro.Status.Phase == api.PhaseFailed {
					t.Fatalf("cascade failed: %s", ro.Status.Message)
				}
				return ro.Status.Phase == api.PhaseSucceeded, nil
			}
		}
		return false, nil
	})
	for _, l := range leaves {
		if got := e.revision(l); got != before[l]+1 {
			t.Errorf("Certificate %s: revision %d, want %d (re-issued exactly once)", l, got, before[l]+1)
		}
	}
	for _, n := range workloads {
		waitRollouts(e, n, 2) // each consumer rolls onto its new leaf
		e.waitAvailable(n)
	}
	e.quietly(3*time.Second, workloads...)
	for _, n := range workloads {
		if got := e.rollouts(n); got != 2 {
			t.Errorf("Deployment %s: %d ReplicaSets, want 2 (rolled exactly once)", n, got)
		}
	}
}

// TestUnderCACascadeAnIssuerWithoutTheAnnotationCascadesAndGovernedConsumersRollThroughTheirPolicy: with
// --ca-cascade every CA issuer cascades; a leaf consumer that a RolloutPolicy governs rolls once, after its
// new leaf exists, through a CertRollout of its policy.
func TestUnderCACascadeAnIssuerWithoutTheAnnotationCascadesAndGovernedConsumersRollThroughTheirPolicy(t *testing.T) {
	opts := testOptions()
	opts.CACascade = true
	e := newEnv(t, opts)
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(caChain(e.ns, []string{"api"}, nil))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ca", "api"} {
		clustertest.Eventually(t, 3*time.Minute, "Certificate "+n+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, e.c, e.ns, n)
		})
	}
	api1 := deployment(e.ns, "api", false, testgen.WithSecretVolume("api-tls"))
	api1.Labels = map[string]string{"tier": "api"}
	e.deploy(api1)
	e.waitAvailable("api")
	e.createPolicy("api", api.RolloutPolicySpec{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"tier": "api"}},
		HealthTimeout: metav1.Duration{Duration: 2 * time.Minute}})
	e.start()
	e.waitLedger("api", "")
	before := e.revision("api")

	clustertest.Renew(t, e.c, e.ns, "ca")
	fingerprint := e.caFingerprint()
	var cascadeRO, policyRO *api.CertRollout
	clustertest.Eventually(t, 5*time.Minute, "the cascade to succeed and the policy's rollout to restart api", func(ctx context.Context) (bool, error) {
		var list api.CertRolloutList
		if err := e.crClient().List(ctx, &list, client.InNamespace(e.ns)); err != nil {
			return false, err
		}
		cascadeRO, policyRO = nil, nil
		for i := range list.Items {
			ro := &list.Items[i]
			if ro.Spec.Cascade != nil {
				cascadeRO = ro
			} else if ro.Spec.Policy == "api" {
				policyRO = ro
			}
		}
		if cascadeRO == nil || policyRO == nil {
			return false, fmt.Errorf("cascade %v, policy rollout %v", cascadeRO != nil, policyRO != nil)
		}
		return cascadeRO.Status.Phase == api.PhaseSucceeded && policyRO.Status.Phase == api.PhaseSucceeded, nil
	})
	if cascadeRO.Name != cascadeRolloutName("ca", fingerprint) {
		t.Errorf("cascade %s, want %s", cascadeRO.Name, cascadeRolloutName("ca", fingerprint))
	}
	if got := e.revision("api"); got != before+1 {
		t.Errorf("Certificate api: revision %d, want %d (re-issued exactly once)", got, before+1)
	}
	e.waitAvailable("api")
	e.quietly(3*time.Second, "api")
	if got := e.rollouts("api"); got != 2 {
		t.Errorf("Deployment api: %d ReplicaSets, want 2 (rolled once, after its new leaf)", got)
	}
	if n := e.rolloutCount(); n != 2 {
		t.Errorf("%d CertRollouts, want the cascade and one rollout of the policy", n)
	}
}
