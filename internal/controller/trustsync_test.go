package controller

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

func (e *env) trustSync(name string, spec api.TrustBundleSyncSpec) {
	e.t.Helper()
	s := &api.TrustBundleSync{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: spec}
	if err := e.crClient().Create(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) syncReady(name string) *metav1.Condition {
	e.t.Helper()
	var s api.TrustBundleSync
	if err := e.crClient().Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &s); err != nil {
		e.t.Fatal(err)
	}
	return apimeta.FindStatusCondition(s.Status.Conditions, api.ConditionReady)
}

// The sync's write is a change of the target like any other: the workload that mounts it rolls once.
func TestATrustBundleSyncWritesARenewedCAAndTheTargetsConsumerRollsOnce(t *testing.T) {
	opts := testOptions()
	opts.TrustSync = true
	e := newEnv(t, opts)
	out := e.logJSON(1)
	ctx := context.Background()
	if err := localcluster.Apply(ctx, e.c.Config, []byte(testgen.CertManagerChain(e.ns, "dex", "dex-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the CA to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, e.c, e.ns, "ca")
	})
	ca, err := e.c.Client.CoreV1().Secrets(e.ns).Get(ctx, "ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "bundle"}, Data: map[string][]byte{"ca.crt": ca.Data["ca.crt"]}}
	if _, err := e.c.Client.CoreV1().Secrets(e.ns).Create(ctx, bundle, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.deploy(deployment(e.ns, "authservice", true, testgen.WithSecretVolume("bundle")))
	e.waitAvailable("authservice")
	e.trustSync("oidc", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{Certificate: &api.ObjectSelector{Name: "ca"}}},
		Target: api.TrustBundleTarget{Kind: "Secret", Name: "bundle", Key: "ca.crt"}, KeepPrevious: &metav1.Duration{Duration: 720 * time.Hour}})
	e.start()
	e.waitLedger("authservice", "")
	clustertest.Eventually(t, time.Minute, "the sync to be Ready", func(context.Context) (bool, error) {
		c := e.syncReady("oidc")
		return c != nil && c.Reason == api.ReasonSynced, nil
	})
	// cert-manager may issue a new CA's second revision right after the first: count from here.
	first, before := e.get("authservice").Annotations[api.AnnotationCertificateHash], e.rollouts("authservice")

	clustertest.Renew(t, e.c, e.ns, "ca")
	clustertest.Eventually(t, 2*time.Minute, "authservice to roll onto the new CA", func(context.Context) (bool, error) {
		return e.get("authservice").Annotations[api.AnnotationCertificateHash] != first, nil
	})
	e.waitAvailable("authservice")
	e.quietly(3*time.Second, "authservice")
	if n := e.rollouts("authservice"); n != before+1 {
		t.Errorf("authservice has %d ReplicaSets, had %d: want one roll for one renewal", n, before)
	}
	if t.Failed() || os.Getenv("CERTROLLOUT_SHOW_LOGS") != "" {
		t.Logf("logs:\n%s", out.String())
	}
}

// What stops a sync is said in its status, and the target keeps what it had.
func TestATrustBundleSyncSaysWhyItCannotSyncAndLeavesTheTargetAlone(t *testing.T) {
	opts := testOptions()
	opts.TrustSync = true
	e := newEnv(t, opts)
	ctx := context.Background()
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "portal")
	e.tlsSecret("leaf-only", leaf, ca, map[string][]byte{"ca.crt": nil, "tls.crt": leaf.PEM()}) // a leaf and no CA
	kept := testgen.CA(t, "kept").PEM()
	for _, name := range []string{"bundle", "bundle-2"} {
		target := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Data: map[string][]byte{"ca.crt": kept}}
		if _, err := e.c.Client.CoreV1().Secrets(e.ns).Create(ctx, target, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	to := func(name string) api.TrustBundleTarget {
		return api.TrustBundleTarget{Kind: "Secret", Name: name, Key: "ca.crt"}
	}
	e.trustSync("no-ca", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{Secret: &api.KeySelector{Name: "leaf-only", Key: "tls.crt"}}}, Target: to("bundle")})
	e.trustSync("no-source", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{ConfigMap: &api.KeySelector{Name: "nowhere", Key: "ca.crt"}}}, Target: to("bundle-2")})
	e.trustSync("no-target", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{Secret: &api.KeySelector{Name: "bundle", Key: "ca.crt"}}}, Target: to("missing")})
	time.Sleep(time.Second) // creation times have one-second resolution: the twin is younger than no-ca
	e.trustSync("twin", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{Secret: &api.KeySelector{Name: "bundle-2", Key: "ca.crt"}}}, Target: to("bundle")})
	e.start()
	for name, want := range map[string]string{"no-ca": api.ReasonSourceHasNoCA, "no-source": api.ReasonSourceMissing, "no-target": api.ReasonTargetMissing, "twin": api.ReasonTargetConflict} {
		clustertest.Eventually(t, time.Minute, name+" to say "+want, func(context.Context) (bool, error) {
			var s api.TrustBundleSync
			if err := e.crClient().Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, &s); err != nil {
				return false, err
			}
			ready := apimeta.FindStatusCondition(s.Status.Conditions, api.ConditionReady)
			stalled := apimeta.FindStatusCondition(s.Status.Conditions, api.ConditionStalled)
			return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == want && stalled != nil && stalled.Status == metav1.ConditionTrue, nil
		})
	}
	if c := e.syncReady("twin"); !strings.Contains(c.Message, "TrustBundleSync no-ca already writes Secret bundle key ca.crt") {
		t.Errorf("TargetConflict %q should name the sync that writes the key", c.Message)
	}
	if c := e.syncReady("no-target"); !strings.Contains(c.Message, "kubectl create secret generic missing -n "+e.ns) {
		t.Errorf("TargetMissing %q should give the command that creates it", c.Message)
	}
	if c := e.syncReady("no-ca"); !strings.Contains(c.Message, "sources[0]") || !strings.Contains(c.Message, "CN=portal") {
		t.Errorf("SourceHasNoCA %q should name the source and what it holds", c.Message)
	}
	got, err := e.c.Client.CoreV1().Secrets(e.ns).Get(ctx, "bundle", metav1.GetOptions{})
	if err != nil || string(got.Data["ca.crt"]) != string(kept) {
		t.Errorf("the target changed although no sync could run (%v)", err)
	}
}

func TestWithoutTrustSyncASyncSaysItIsOff(t *testing.T) {
	e := newEnv(t, testOptions())
	e.trustSync("off", api.TrustBundleSyncSpec{Sources: []api.TrustBundleSource{{Secret: &api.KeySelector{Name: "a", Key: "ca.crt"}}},
		Target: api.TrustBundleTarget{Kind: "Secret", Name: "b", Key: "ca.crt"}})
	e.start()
	clustertest.Eventually(t, time.Minute, "a SyncDisabled condition", func(context.Context) (bool, error) {
		c := e.syncReady("off")
		return c != nil && c.Reason == api.ReasonSyncDisabled && strings.Contains(c.Message, "--trust-sync"), nil
	})
}
