package controller

import (
	"context"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// A CA bundle is a certificate source like any other. The Kaptain guide (seeds/003) copies a renewed CA
// bundle into a Secret on a daily CronJob and restarts authservice, leaving hours between issuance and
// restart; trust-manager writes bundles into ConfigMaps it annotates with trust.cert-manager.io/hash.
// With certrollout the bundle's change itself rolls its consumers, once, and nothing else.
func TestACABundleChangeRollsItsConsumersOnceWithoutWaitingForASchedule(t *testing.T) {
	e := newEnv(t, testOptions())
	ctx := context.Background()
	// CAs issued well before the test, as a platform CA is: their dates alone say when they were issued.
	old := testgen.CA(t, "kommander-ca", testgen.WithValidity(time.Now().Add(-30*24*time.Hour), time.Now().Add(365*24*time.Hour)))
	bundleSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "kubeflow-oidc-ca-bundle"},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"ca.crt": old.PEM()}}
	if _, err := e.c.Client.CoreV1().Secrets(e.ns).Create(ctx, bundleSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bundleCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "trust-bundle",
		Annotations: map[string]string{"trust.cert-manager.io/hash": "h1"}}, Data: map[string]string{"trust-bundle.pem": string(old.PEM())}}
	if _, err := e.c.Client.CoreV1().ConfigMaps(e.ns).Create(ctx, bundleCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.deploy(deployment(e.ns, "authservice", true, testgen.WithSecretVolume("kubeflow-oidc-ca-bundle")))
	e.deploy(deployment(e.ns, "web", true, testgen.WithConfigMapVolume("trust-bundle")))
	for _, n := range []string{"authservice", "web"} {
		e.waitAvailable(n)
	}
	e.start()
	e.waitLedger("authservice", "")
	e.waitLedger("web", "")
	e.quietly(3*time.Second, "authservice", "web")

	// The platform CA renews: the new CA joins the bundle in the Secret (as the Kaptain CronJob would copy it).
	renewed := testgen.CA(t, "kommander-ca", testgen.WithValidity(time.Now().Add(-time.Hour), time.Now().Add(2*365*24*time.Hour)))
	bundleSecret.Data["ca.crt"] = testgen.Concat(renewed.PEM(), old.PEM())
	if _, err := e.c.Client.CoreV1().Secrets(e.ns).Update(ctx, bundleSecret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRollouts(e, "authservice", 2)
	e.quietly(3*time.Second, "authservice", "web")

	// trust-manager updates its target ConfigMap and the hash annotation.
	bundleCM.Data["trust-bundle.pem"] = string(testgen.Concat(renewed.PEM(), old.PEM()))
	bundleCM.Annotations["trust.cert-manager.io/hash"] = "h2"
	if _, err := e.c.Client.CoreV1().ConfigMaps(e.ns).Update(ctx, bundleCM, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRollouts(e, "web", 2)
	e.quietly(3*time.Second, "authservice", "web")
	for _, n := range []string{"authservice", "web"} {
		d := e.get(n)
		if d.Annotations[api.AnnotationCertificateHash] != d.Spec.Template.Annotations[api.AnnotationRestartHash] {
			t.Errorf("%s: the ledger and the template disagree: %v", n, d.Annotations)
		}
	}
}

// waitRollouts waits until the Deployment has had n templates (ReplicaSets).
func waitRollouts(e *env, name string, n int) {
	e.t.Helper()
	clustertest.Eventually(e.t, 30*time.Second, "Deployment "+name+" to roll", func(context.Context) (bool, error) {
		return e.rollouts(name) == n, nil
	})
}
