package tenancy

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

func bundleSync(ns, name, srcNS, src, target string) *api.TrustBundleSync {
	return &api.TrustBundleSync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: api.TrustBundleSyncSpec{
		Sources: []api.TrustBundleSource{{Secret: &api.KeySelector{Namespace: srcNS, Name: src, Key: "ca.crt"}}},
		Target:  api.TrustBundleTarget{Kind: "Secret", Name: target, Key: "ca.crt"},
	}}
}

// A TrustBundleSync reads Secrets and has the controller write one: a tenant may create one only when
// they could read every source and update the target themselves. The cluster CA lives in another
// namespace, as Kaptain's does.
func TestATenantsTrustBundleSyncReadsAndWritesOnlyWhatTheyCouldThemselves(t *testing.T) {
	cl := admin(t)
	ns, platform := clustertest.Namespace(t), clustertest.Namespace(t)
	installTenancy(t, cl)
	create(t, cl,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: platform, Name: "cluster-ca"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "oidc-bundle"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payroll-bundle"}})
	// dave edits certrollout objects in his namespace and may update one Secret there.
	grant(t, cl, ns, "dave", "certrollout-edit")
	grant(t, cl, ns, "dave", "update-oidc-bundle",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"oidc-bundle"}, Verbs: []string{"get", "update"}})
	dave := as(t, "dave")

	clustertest.Eventually(t, time.Minute, "the admission policy to refuse a sync of a Secret dave may not read", func(ctx context.Context) (bool, error) {
		err := dave.Create(ctx, bundleSync(ns, "oidc", platform, "cluster-ca", "oidc-bundle"))
		if err == nil {
			_ = cl.Delete(ctx, bundleSync(ns, "oidc", platform, "cluster-ca", "oidc-bundle"))
			return false, nil
		}
		if !strings.Contains(err.Error(), "must be allowed to get each of them, and dave is not") {
			return false, err
		}
		return true, nil
	})
	ctx := context.Background()
	err := dave.Create(ctx, bundleSync(ns, "payroll", ns, "oidc-bundle", "payroll-bundle"))
	if err == nil || !strings.Contains(err.Error(), "writes Secret "+ns+"/payroll-bundle: its author must be allowed to update it, and dave is not") {
		t.Errorf("a sync into a Secret dave may not update: %v", err)
	}

	// Once the platform team lets dave read the CA, his sync is admitted.
	grant(t, cl, platform, "dave", "read-cluster-ca",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"cluster-ca"}, Verbs: []string{"get"}})
	clustertest.Eventually(t, time.Minute, "dave's sync to be admitted", func(ctx context.Context) (bool, error) {
		return dave.Create(ctx, bundleSync(ns, "oidc", platform, "cluster-ca", "oidc-bundle")) == nil, nil
	})
}
