package chart

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
	"github.com/certrollout/certrollout/internal/trustsync"
)

// trustBundleSyncUnderTheChartsRBAC is Kaptain's rotation job, as a TrustBundleSync, run by a controller
// started with the chart's arguments and RBAC (trustSync.targets granting kubeflow-oidc-ca-bundle in app):
// the cluster CA renews; the sync copies it (keeping the previous one for an overlap) into the Secret
// that authservice reads, and authservice rolls once. A sync aimed at any other Secret is refused by the
// API server, and that Secret stays as it was.
func trustBundleSyncUnderTheChartsRBAC(t *testing.T, c *localcluster.Cluster, app, user, home string, running func() error) {
	secrets := func(verb, name string) bool {
		return allowed(t, c, user, home, authorizationv1.ResourceAttributes{Verb: verb, Resource: "secrets", Namespace: app, Name: name})
	}
	clustertest.Eventually(t, 30*time.Second, "the chart's Role to grant the target it lists", func(context.Context) (bool, error) {
		return secrets("update", "kubeflow-oidc-ca-bundle") && secrets("patch", "kubeflow-oidc-ca-bundle"), nil
	})
	for _, denied := range []struct{ verb, name string }{{"update", "other-bundle"}, {"update", ""}, {"create", ""}, {"delete", "kubeflow-oidc-ca-bundle"}, {"patch", "ca"}} {
		if secrets(denied.verb, denied.name) {
			t.Errorf("the chart lets the controller %s Secret %q in the target's namespace", denied.verb, denied.name)
		}
	}

	ctx := context.Background()
	if err := localcluster.Apply(ctx, c.Config, []byte(testgen.CertManagerChain(app, "dex", "dex-tls", "2160h", ""))); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, "the CA Certificate to be issued", func(ctx context.Context) (bool, error) {
		return localcluster.CertificateReady(ctx, c, app, "ca")
	})
	caBundle := func() []byte {
		s, err := c.Client.CoreV1().Secrets(app).Get(ctx, "ca", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Data["ca.crt"]
	}
	firstCA := caBundle()
	// What the Kaptain job left: the bundle holds the current CA; authservice reads it. other-bundle holds
	// another CA, so a sync aimed at it has something to write.
	otherCA := testgen.CA(t, "someone else's").PEM()
	for name, ca := range map[string][]byte{"kubeflow-oidc-ca-bundle": firstCA, "other-bundle": otherCA} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: app, Name: name}, Data: map[string][]byte{"ca.crt": ca}}
		if _, err := c.Client.CoreV1().Secrets(app).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	auth := testgen.Deployment(app, "authservice", 1, []testgen.PodOption{testgen.WithSecretVolume("kubeflow-oidc-ca-bundle")}, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(app).Create(ctx, auth, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, c.Config, []byte(`apiVersion: certrollout.io/v1alpha1
kind: TrustBundleSync
metadata: {name: oidc-ca, namespace: `+app+`}
spec:
  sources: [{certificate: {name: ca}}]
  target: {kind: Secret, name: kubeflow-oidc-ca-bundle, key: ca.crt}
  keepPrevious: 720h
---
apiVersion: certrollout.io/v1alpha1
kind: TrustBundleSync
metadata: {name: elsewhere, namespace: `+app+`}
spec:
  sources: [{secret: {name: ca, key: ca.crt}}, {certificate: {name: ca}}]
  target: {kind: Secret, name: other-bundle, key: ca.crt}
`)); err != nil {
		t.Fatal(err)
	}
	sync := func(name string) *api.TrustBundleSync {
		u, err := c.Dynamic.Resource(api.GroupVersion.WithResource("trustbundlesyncs")).Namespace(app).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var s api.TrustBundleSync
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	ready := func(name, reason string) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) {
			if err := running(); err != nil {
				t.Fatal(err)
			}
			cond := apimeta.FindStatusCondition(sync(name).Status.Conditions, api.ConditionReady)
			return cond != nil && cond.Reason == reason, nil
		}
	}
	clustertest.Eventually(t, time.Minute, "oidc-ca to be Synced", ready("oidc-ca", api.ReasonSynced))
	clustertest.Eventually(t, time.Minute, "elsewhere to be refused (TargetForbidden)", ready("elsewhere", api.ReasonTargetForbidden))
	clustertest.Eventually(t, time.Minute, "authservice's ledger", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(app).Get(ctx, "authservice", metav1.GetOptions{})
		return err == nil && d.Annotations[api.AnnotationCertificateHash] != "", err
	})
	// authservice's pod must have started before the renewal, or it would rightly count as running on the
	// new bundle already.
	clustertest.Eventually(t, 2*time.Minute, "authservice to be available", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(app).Get(ctx, "authservice", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 1 && d.Status.UpdatedReplicas == 1, err
	})
	fingerprints := func(data []byte) []string {
		cs, err := trustsync.Parse(data)
		if err != nil {
			return nil
		}
		return trustsync.Fingerprints(cs)
	}
	bundle := func() []string {
		s, err := c.Client.CoreV1().Secrets(app).Get(context.Background(), "kubeflow-oidc-ca-bundle", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return fingerprints(s.Data["ca.crt"])
	}
	clustertest.Eventually(t, time.Minute, "the bundle to hold the CA the Certificate has now", func(context.Context) (bool, error) {
		return len(bundle()) > 0 && bundle()[0] == fingerprints(caBundle())[0], nil
	})
	kept, rolls := bundle(), replicaSets(t, c, app, "authservice")

	clustertest.Renew(t, c, app, "ca") // the CA renews
	newCA := fingerprints(caBundle())
	if slices.Contains(kept, newCA[0]) {
		t.Fatal("the renewal issued no new CA certificate")
	}
	want := append(newCA, kept...) // the new CA first, the previous ones kept after it (keepPrevious)
	clustertest.Eventually(t, time.Minute, "the bundle to hold the new CA and keep the previous ones", func(context.Context) (bool, error) {
		if err := running(); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(bundle(), want), nil
	})
	clustertest.Eventually(t, time.Minute, "the status to count the certificates and the retained ones", func(context.Context) (bool, error) {
		st := sync("oidc-ca").Status
		if int(st.Certificates) != len(want) || len(st.Retained) != len(kept) || st.LastSyncTime == nil {
			return false, fmt.Errorf("status %+v", st)
		}
		return true, nil
	})
	clustertest.Eventually(t, 2*time.Minute, "authservice to roll onto the new bundle", func(ctx context.Context) (bool, error) {
		return replicaSets(t, c, app, "authservice") == rolls+1, nil
	})
	other, err := c.Client.CoreV1().Secrets(app).Get(ctx, "other-bundle", metav1.GetOptions{})
	if err != nil || string(other.Data["ca.crt"]) != string(otherCA) {
		t.Errorf("other-bundle changed (or could not be read: %v): the sync wrote a Secret it was not granted", err)
	}
	time.Sleep(5 * time.Second) // a few settle periods: a second roll would show by now
	if n := replicaSets(t, c, app, "authservice"); n != rolls+1 {
		t.Errorf("authservice has %d ReplicaSets, had %d: want one roll for one CA renewal", n, rolls)
	}
}

// replicaSets counts a Deployment's ReplicaSets: one per template it has had.
func replicaSets(t *testing.T, c *localcluster.Cluster, ns, app string) int {
	t.Helper()
	rs, err := c.Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: labels.Set{"app": app}.String()})
	if err != nil {
		t.Fatal(err)
	}
	return len(rs.Items)
}

func TestTheTrustSyncIsOffByDefaultAndGrantsOnlyItsTargetsByName(t *testing.T) {
	targets := `trustSync: {targets: [{namespace: kaptain-ingress, name: kubeflow-oidc-ca-bundle}, {namespace: web, name: ca-bundle, kind: ConfigMap}]}`
	for _, off := range []rendered{render(t, "certrollout-system", nil), render(t, "certrollout-system", values(t, targets))} {
		granted := slices.ContainsFunc(off.ofKind("Role"), func(u *unstructured.Unstructured) bool { return strings.Contains(u.GetName(), "trust-sync") })
		if slices.Contains(controllerArgs(t, off), "--trust-sync") || granted {
			t.Errorf("trustSync is off: want no --trust-sync and no trust-sync Role, got %v", off.keys())
		}
	}
	on := render(t, "certrollout-system", values(t, `trustSync: {enabled: true, targets: [{namespace: kaptain-ingress, name: kubeflow-oidc-ca-bundle}, {namespace: web, name: ca-bundle, kind: ConfigMap}]}`))
	if !slices.Contains(controllerArgs(t, on), "--trust-sync") {
		t.Error("trustSync.enabled does not pass --trust-sync")
	}
	for _, want := range []struct{ ns, name, resource, target string }{
		{"kaptain-ingress", "certrollout-trust-sync-secret-kubeflow-oidc-ca-bundle", "secrets", "kubeflow-oidc-ca-bundle"},
		{"web", "certrollout-trust-sync-configmap-ca-bundle", "configmaps", "ca-bundle"},
	} {
		role := on.get(t, "Role", want.name)
		rules := renderedRules(t, role)
		if role.GetNamespace() != want.ns || len(rules) != 1 || !slices.Equal(rules[0].Resources, []string{want.resource}) ||
			!slices.Equal(rules[0].ResourceNames, []string{want.target}) || !slices.Equal(rules[0].Verbs, []string{"get", "update", "patch"}) {
			t.Errorf("Role %s/%s: %+v, want get/update/patch of %s %s alone", role.GetNamespace(), role.GetName(), rules, want.resource, want.target)
		}
		on.get(t, "RoleBinding", want.name)
	}
	if _, err := tryRender(t, "certrollout-system", values(t, `trustSync: {enabled: true, targets: [{name: no-namespace}]}`)); err == nil {
		t.Error("a target without a namespace must be refused by the schema")
	}
}
