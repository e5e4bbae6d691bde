package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/testgen"
)

// A portal that reloads its own certificates (certrollout.io/reloads-itself) is renewed with a workload
// that does not: the other one rolls, the portal's ledger records the new certificates without a rollout,
// and its pods are never counted stale.
func TestAWorkloadThatReloadsItselfIsRecordedNotRestartedAndNeverStale(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	e.tlsSecret("portal-tls", testgen.Leaf(t, ca, "portal"), ca, nil)
	e.deploy(deployment(e.ns, "portal", true, testgen.WithSecretVolume("portal-tls")))
	reloads := deployment(e.ns, "reloads", true, testgen.WithSecretVolume("portal-tls"))
	reloads.Annotations[api.AnnotationReloadsItself] = "true"
	e.deploy(reloads)
	e.waitAvailable("portal")
	e.waitAvailable("reloads")
	e.start()
	e.waitLedger("portal", "")
	e.waitLedger("reloads", "")
	first := e.get("portal").Annotations[api.AnnotationCertificateHash]

	e.tlsSecret("portal-tls", testgen.Leaf(t, ca, "portal"), ca, nil) // the renewal
	clustertest.Eventually(t, time.Minute, "portal to restart", func(context.Context) (bool, error) {
		return e.get("portal").Annotations[api.AnnotationCertificateHash] != first, nil
	})
	renewed := e.get("portal").Annotations[api.AnnotationCertificateHash]
	e.waitLedger("reloads", renewed)
	e.waitAvailable("portal")
	if n := e.rollouts("reloads"); n != 1 {
		t.Errorf("the self-reloading Deployment has %d ReplicaSets: it was restarted", n)
	}
	if n := e.rollouts("portal"); n != 2 {
		t.Errorf("the other Deployment has %d ReplicaSets, want 2: one restart", n)
	}
	if at, ok := e.get("reloads").Annotations[api.AnnotationRestartedAt]; ok {
		t.Errorf("the self-reloading Deployment records a restart at %s", at)
	}
	// Its pods predate the renewal and are still not stale.
	waitSample(t, "certrollout_workload_stale_pods", map[string]string{"namespace": e.ns, "kind": api.KindDeployment, "name": "reloads"}, 0)
	e.quietly(3*time.Second, "reloads")
}

// A Secret whose tls.crt holds the private key (the wrong half of the pair) is reported with an Event, but
// only once a workload reads a certificate there; tls.key holding a key is never a finding.
func TestAKeyWithoutACertificateIsAnEventOnlyWhereAWorkloadReadsACertificate(t *testing.T) {
	e := newEnv(t, testOptions())
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "portal")
	swapped := func(name string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
			Data: map[string][]byte{"tls.crt": leaf.KeyPEM(t), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()}}
		if _, err := e.c.Client.CoreV1().Secrets(e.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	swapped("read-tls")
	swapped("unread-tls")
	e.tlsSecret("fine-tls", leaf, ca, nil)
	e.deploy(deployment(e.ns, "ca-only", true, testgen.WithSecretVolume("unread-tls", "ca.crt"))) // reads ca.crt alone
	e.deploy(deployment(e.ns, "fine", true, testgen.WithSecretVolume("fine-tls")))
	e.start()
	// Created after the Secret and the controller: the workload's arrival is what finds the key.
	e.deploy(deployment(e.ns, "portal", true, testgen.WithSecretVolume("read-tls")))
	clustertest.Eventually(t, time.Minute, "a KeyWithoutCertificate Event on read-tls", e.hasEvent("read-tls", corev1.EventTypeWarning, api.ReasonKeyWithoutCertificate))
	evs, err := e.c.Client.EventsV1().Events(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Reason != api.ReasonKeyWithoutCertificate {
			continue
		}
		if ev.Regarding.Name != "read-tls" {
			t.Errorf("a KeyWithoutCertificate Event on %s: no workload reads a certificate where it has a key", ev.Regarding.Name)
			continue
		}
		if !strings.Contains(ev.Note, "key tls.crt (read by Deployment portal)") || strings.Contains(ev.Note, "tls.key") || strings.Contains(ev.Note, "PRIVATE KEY") {
			t.Errorf("Event note %q: want tls.crt read by Deployment portal, nothing about tls.key, no key data", ev.Note)
		}
	}
}
