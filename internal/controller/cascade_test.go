package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// caChain is a self-signed CA whose renewal rotates its key, a CA Issuer, and the given leaves. A leaf
// with a slow key (RSA 8192) takes seconds to issue, which leaves a test time to act mid-issuance.
func caChain(ns string, leaves []string, slow map[string]bool) string {
	y := `apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: selfsigned, namespace: ` + ns + `}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ca, namespace: ` + ns + `}
spec: {isCA: true, commonName: cascade-ca, secretName: ca, privateKey: {rotationPolicy: Always}, issuerRef: {name: selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: ca, namespace: ` + ns + `}
spec: {ca: {secretName: ca}}
`
	for _, l := range leaves {
		key := ""
		if slow[l] {
			key = ", privateKey: {algorithm: RSA, size: 8192, rotationPolicy: Always}"
		}
		y += `---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + l + `, namespace: ` + ns + `}
spec: {secretName: ` + l + `-tls, commonName: ` + l + `, dnsNames: [` + l + `], duration: 2160h` + key + `, issuerRef: {name: ca, kind: Issuer}}
`
	}
	return y
}

// cascadeEnv sets up the chain, a Deployment that trusts the CA (its ca.crt only) and one per leaf, all
// opted in, with the controller running and every ledger recorded.
func cascadeEnv(t *testing.T, leaves []string, slow map[string]bool) *env {
	t.Helper()
	e := newEnv(t, testOptions())
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(caChain(e.ns, leaves, slow))); err != nil {
		t.Fatal(err)
	}
	for _, n := range append([]string{"ca"}, leaves...) {
		clustertest.Eventually(t, 3*time.Minute, "Certificate "+n+" to be issued", func(ctx context.Context) (bool, error) {
			return localcluster.CertificateReady(ctx, e.c, e.ns, n)
		})
	}
	e.deploy(deployment(e.ns, "trust", true, testgen.WithSecretVolume("ca", "ca.crt")))
	for _, l := range leaves {
		e.deploy(deployment(e.ns, l, true, testgen.WithSecretVolume(l+"-tls")))
	}
	all := append([]string{"trust"}, leaves...)
	for _, n := range all {
		e.waitAvailable(n)
	}
	e.start()
	for _, n := range all {
		e.waitLedger(n, "")
	}
	return e
}

// caFingerprint is the fingerprint of the CA certificate in the ca Secret now.
func (e *env) caFingerprint() string {
	e.t.Helper()
	s, err := e.c.Client.CoreV1().Secrets(e.ns).Get(context.Background(), "ca", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := certs.ParsePEM(s.Data[corev1.TLSCertKey])
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Certificates[0].Fingerprint
}

func (e *env) revision(name string) int64 {
	e.t.Helper()
	r, _, err := localcluster.CertificateRevision(context.Background(), e.c, e.ns, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// createCascade creates the cascade rollout by hand, as the controller will when a CA rotates.
func (e *env) createCascade(fingerprint string, maxConcurrent int32) {
	e.t.Helper()
	ro := &api.CertRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "ca-rotated"},
		Spec: api.CertRolloutSpec{
			Trigger: api.RolloutTrigger{Type: api.TriggerCARotated},
			Cascade: &api.CascadeSpec{IssuerRef: api.IssuerReference{Kind: "Issuer", Name: "ca"}, CAFingerprint: fingerprint, MaxConcurrent: maxConcurrent},
		},
	}
	if err := e.crClient().Create(context.Background(), ro); err != nil {
		e.t.Fatal(err)
	}
}

func leafOf(ro *api.CertRollout, name string) api.LeafStatus {
	for _, c := range ro.Status.Certificates {
		if c.Name == name {
			return c
		}
	}
	return api.LeafStatus{}
}

func TestCascadeRefreshesTrustThenReissuesEachLeafOnce(t *testing.T) {
	leaves := []string{"api", "web"}
	e := cascadeEnv(t, leaves, nil)
	before := map[string]int64{}
	for _, l := range leaves {
		before[l] = e.revision(l)
	}
	clustertest.Renew(t, e.c, e.ns, "ca")
	e.createCascade(e.caFingerprint(), 1)

	ro := e.waitRollout(4*time.Minute, "the cascade to succeed", func(ro *api.CertRollout) bool {
		if ro.Status.Phase == api.PhaseFailed {
			t.Fatalf("cascade failed: %s", ro.Status.Message)
		}
		return ro.Status.Phase == api.PhaseSucceeded
	})
	if len(ro.Status.Certificates) != len(leaves) || ro.Status.Progress != "2/2 re-issued" {
		t.Fatalf("certificates %+v, progress %q", ro.Status.Certificates, ro.Status.Progress)
	}
	for _, l := range leaves {
		if got := e.revision(l); got != before[l]+1 {
			t.Errorf("Certificate %s: revision %d, want %d (re-issued exactly once)", l, got, before[l]+1)
		}
		if s := leafOf(ro, l); s.State != api.LeafIssued || s.PreviousRevision == nil || int64(*s.PreviousRevision) != before[l] {
			t.Errorf("status of %s = %+v", l, s)
		}
	}
	if len(ro.Status.TrustedBy) != 1 || ro.Status.TrustedBy[0].Name != "trust" || ro.Status.TrustedBy[0].State != api.TrustCurrent {
		t.Fatalf("trustedBy = %+v, want Deployment trust Current (the leaf consumers are not trusting workloads)", ro.Status.TrustedBy)
	}
	// Order: the trusting workload rolled onto the new CA before any leaf was triggered.
	restarted, err := time.Parse(time.RFC3339, e.get("trust").Annotations[api.AnnotationRestartedAt])
	if err != nil {
		t.Fatalf("Deployment trust was not restarted: %v", err)
	}
	for _, l := range leaves {
		if started := leafOf(ro, l).StartedAt; started == nil || restarted.After(started.Time) {
			t.Errorf("leaf %s triggered at %v, before the trusting Deployment restarted at %s", l, started, restarted)
		}
	}
	// Each Deployment rolled exactly once: trust for the CA, each leaf consumer for its new leaf.
	for _, n := range append([]string{"trust"}, leaves...) {
		waitRollouts(e, n, 2) // a leaf's consumer may roll just after the cascade ends
		e.waitAvailable(n)
	}
	e.quietly(3*time.Second, append([]string{"trust"}, leaves...)...)
	for _, n := range append([]string{"trust"}, leaves...) {
		if got := e.rollouts(n); got != 2 {
			t.Errorf("Deployment %s: %d ReplicaSets, want 2 (rolled exactly once)", n, got)
		}
	}
}

func TestCascadeRecordsAFailedLeafAndReissuesTheOthers(t *testing.T) {
	// bad has a slow key: its issuance takes seconds, in which the test makes it fail as cert-manager
	// does (Issuing=False, reason Failed).
	e := cascadeEnv(t, []string{"bad", "good"}, map[string]bool{"bad": true})
	clustertest.Renew(t, e.c, e.ns, "ca")
	e.createCascade(e.caFingerprint(), 2)

	certsAPI := e.c.Dynamic.Resource(localcluster.CertificateGVR).Namespace(e.ns)
	clustertest.Eventually(t, 3*time.Minute, "the cascade to trigger Certificate bad, then to fail it", func(ctx context.Context) (bool, error) {
		crt, err := certsAPI.Get(ctx, "bad", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crt.Object, "status", "conditions")
		for i, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] != "Issuing" {
				continue
			}
			if m["status"] != "True" || m["reason"] != "CARotated" {
				return false, fmt.Errorf("Issuing=%v (%v)", m["status"], m["reason"])
			}
			patch, _ := json.Marshal([]map[string]any{
				{"op": "test", "path": fmt.Sprintf("/status/conditions/%d/type", i), "value": "Issuing"},
				{"op": "replace", "path": fmt.Sprintf("/status/conditions/%d", i), "value": map[string]any{
					"type": "Issuing", "status": "False", "reason": "Failed", "message": "simulated: the issuer refused the request",
					"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
			})
			if _, err := certsAPI.Patch(ctx, "bad", types.JSONPatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
				return false, err
			}
			return true, nil
		}
		return false, fmt.Errorf("no Issuing condition yet")
	})
	ro := e.waitRollout(3*time.Minute, "the cascade to fail", func(ro *api.CertRollout) bool { return ro.Status.Phase.Finished() })
	if ro.Status.Phase != api.PhaseFailed {
		t.Fatalf("phase %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	if s := leafOf(ro, "bad"); s.State != api.LeafFailed || s.Message != "cert-manager failed to issue it: simulated: the issuer refused the request" {
		t.Errorf("bad = %+v", s)
	}
	if s := leafOf(ro, "good"); s.State != api.LeafIssued {
		t.Errorf("good = %+v", s)
	}
	var failed *metav1.Condition
	for i := range ro.Status.Conditions {
		if ro.Status.Conditions[i].Type == api.ConditionFailed {
			failed = &ro.Status.Conditions[i]
		}
	}
	if failed == nil || failed.Reason != "LeavesFailed" || failed.Message != "1 of 2 leaf Certificate(s) failed to re-issue: "+e.ns+"/bad" {
		t.Errorf("Failed condition = %+v", failed)
	}
	// CertRolloutCascadeFailed selects type="cascade", result="Failed".
	waitSample(t, "certrollout_rollouts_total", map[string]string{"namespace": e.ns, "type": "cascade", "result": "Failed"}, 1)
	if n, ok := sample(t, "certrollout_rollout_duration_seconds", map[string]string{"type": "cascade", "result": "Failed"}); !ok || n < 1 {
		t.Errorf("rollout_duration_seconds{type=cascade,result=Failed} has %g observations", n)
	}
}
