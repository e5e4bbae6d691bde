package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// A ClusterTrustBundle is projected into pods of any namespace, by name or by signer and label selector.
// When its CAs change, the cluster-wide controller rolls every consumer once, through the same decision as
// for a Secret; a rewrite with the same CAs (reordered, re-encoded) rolls nothing; and each consumer is
// told whether the change only adds CAs (the safe trust-first step) or removes some.
func TestAClusterTrustBundleChangeRollsItsConsumersInEveryNamespaceOnce(t *testing.T) {
	e := newEnv(t, testOptions())
	e.opts.Namespaces = nil // ClusterTrustBundles are cluster-scoped: only the cluster-wide controller follows them
	other := *e
	other.ns = clustertest.Namespace(t)
	ctx := context.Background()
	days := 24 * time.Hour
	oldA := testgen.CA(t, "corp-root-a", testgen.WithValidity(time.Now().Add(-30*days), time.Now().Add(365*days)))
	oldB := testgen.CA(t, "corp-root-b", testgen.WithValidity(time.Now().Add(-30*days), time.Now().Add(365*days)))
	signer := "certrollout.test/" + e.ns
	bundle := &certificatesv1beta1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(signer, "/", ":") + ":roots", Labels: map[string]string{"tier": "prod"}},
		Spec:       certificatesv1beta1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: string(testgen.Concat(oldA.PEM(), oldB.PEM()))},
	}
	bundles := e.c.Client.CertificatesV1beta1().ClusterTrustBundles()
	if _, err := bundles.Create(ctx, bundle, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bundles.Delete(context.Background(), bundle.Name, metav1.DeleteOptions{}) })
	update := func(pems ...[]byte) {
		t.Helper()
		cur, err := bundles.Get(ctx, bundle.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Spec.TrustBundle = string(testgen.Concat(pems...))
		if _, err := bundles.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	e.deploy(deployment(e.ns, "by-name", true, testgen.WithProjectedSources("ca", testgen.BundleByName(bundle.Name))))
	other.deploy(deployment(other.ns, "by-signer", true, testgen.WithProjectedSources("ca", testgen.BundleBySigner(signer, map[string]string{"tier": "prod"}))))
	// A consumer that did not opt in is neither rolled nor told.
	e.deploy(deployment(e.ns, "bystander", false, testgen.WithProjectedSources("ca", testgen.BundleByName(bundle.Name))))
	// A bare pod is a workload of its own: it is woken by the bundle too, and deleted as it allows.
	lonely := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: other.ns, Name: "lonely", Annotations: map[string]string{api.AnnotationEnabled: "true", api.AnnotationDeleteStalePods: "true"}},
		Spec: testgen.PodSpec(testgen.WithProjectedSources("ca", testgen.BundleBySigner(signer, map[string]string{"tier": "prod"})))}
	if _, err := e.c.Client.CoreV1().Pods(other.ns).Create(ctx, lonely, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lonelyGone := func(ctx context.Context) (bool, error) {
		p, err := e.c.Client.CoreV1().Pods(other.ns).Get(ctx, "lonely", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && p.DeletionTimestamp != nil, err
	}
	e.waitAvailable("by-name")
	e.waitAvailable("bystander")
	other.waitAvailable("by-signer")
	clustertest.Eventually(t, time.Minute, "the bare pod lonely to run", func(ctx context.Context) (bool, error) {
		p, err := e.c.Client.CoreV1().Pods(other.ns).Get(ctx, "lonely", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	logs := e.logJSON(1)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "by-name") || strings.Contains(l, "rustBundle") {
					t.Log(l)
				}
			}
		}
	})
	e.start()
	e.waitLedger("by-name", "")
	other.waitLedger("by-signer", "")
	ledgerName, ledgerSigner := e.get("by-name").Annotations, other.get("by-signer").Annotations
	if ledgerName[api.AnnotationCertificateHash] != ledgerSigner[api.AnnotationCertificateHash] {
		t.Errorf("the two consumers of one bundle record different certificates: %v and %v", ledgerName, ledgerSigner)
	}
	quietlyBoth(2*time.Second, e, "by-name", &other, "by-signer")

	// The same CAs, reordered and with text around them: nothing to roll.
	update([]byte("# corp roots\n"), oldB.PEM(), oldA.PEM())
	quietlyBoth(4*time.Second, e, "by-name", &other, "by-signer")
	if gone, err := lonelyGone(ctx); err != nil || gone {
		t.Errorf("the bare pod was deleted for a bundle whose CAs did not change (%v)", err)
	}

	// The next root joins the bundle: trust-first, every consumer rolls once and hears it only adds.
	next := testgen.CA(t, "corp-root-c", testgen.WithValidity(time.Now().Add(-time.Hour), time.Now().Add(2*365*days)))
	update(oldA.PEM(), oldB.PEM(), next.PEM())
	waitRollouts(e, "by-name", 2)
	waitRollouts(&other, "by-signer", 2)
	waitBundleEvent(e, "by-name", "adds 1 CA only")
	waitBundleEvent(&other, "by-signer", "adds 1 CA only")
	waitBundleEvent(&other, "lonely", "adds 1 CA only")
	clustertest.Eventually(t, time.Minute, "the bare pod lonely to be deleted", lonelyGone)
	quietlyBoth(4*time.Second, e, "by-name", &other, "by-signer")
	if n := e.rollouts("bystander"); n != 1 {
		t.Errorf("the Deployment that did not opt in rolled: %d ReplicaSets", n)
	}
	if told, err := e.hasEvent("bystander", "Normal", api.ReasonTrustBundleChanged)(ctx); err != nil || told {
		t.Errorf("the Deployment that did not opt in got a %s Event (%v)", api.ReasonTrustBundleChanged, err)
	}

	// An old root leaves: one more roll each, and the Event says trust is removed.
	update(oldB.PEM(), next.PEM())
	waitRollouts(e, "by-name", 3)
	waitRollouts(&other, "by-signer", 3)
	waitBundleEvent(e, "by-name", "removes 1 CA")
	waitBundleEvent(&other, "by-signer", "removes 1 CA")
	quietlyBoth(4*time.Second, e, "by-name", &other, "by-signer")
}

// quietlyBoth checks that neither Deployment rolls for d (each in its env's namespace).
func quietlyBoth(d time.Duration, a *env, aName string, b *env, bName string) {
	before := [2]int{a.rollouts(aName), b.rollouts(bName)}
	time.Sleep(d)
	if got := a.rollouts(aName); got != before[0] {
		a.t.Errorf("Deployment %s/%s rolled: %d ReplicaSets, had %d", a.ns, aName, got, before[0])
	}
	if got := b.rollouts(bName); got != before[1] {
		b.t.Errorf("Deployment %s/%s rolled: %d ReplicaSets, had %d", b.ns, bName, got, before[1])
	}
}

// waitBundleEvent waits for a TrustBundleChanged Event on the Deployment whose note contains says.
func waitBundleEvent(e *env, name, says string) {
	e.t.Helper()
	clustertest.Eventually(e.t, 30*time.Second, fmt.Sprintf("a %s Event on %s saying %q", api.ReasonTrustBundleChanged, name, says), func(ctx context.Context) (bool, error) {
		evs, err := e.c.Client.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + name})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Reason == api.ReasonTrustBundleChanged && strings.Contains(ev.Note, says) {
				return true, nil
			}
		}
		return false, nil
	})
}
