package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

const (
	shippedNamespace = "certrollout-system"
	shippedAccount   = "certrollout"
)

// installShippedRBAC applies config/manager/namespace.yaml and everything in config/rbac, as a user would.
func installShippedRBAC(t *testing.T, c *localcluster.Cluster) {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(root, "config", "manager", "namespace.yaml")}
	rbac, _ := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
	for _, f := range rbac {
		if filepath.Base(f) != "kustomization.yaml" {
			files = append(files, f)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := localcluster.Apply(context.Background(), c.Config, data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// serviceAccountConfig authenticates as the shipped ServiceAccount with a real token, not impersonation.
func serviceAccountConfig(t *testing.T, c *localcluster.Cluster) *rest.Config {
	t.Helper()
	var token string
	clustertest.Eventually(t, time.Minute, "a token for the certrollout ServiceAccount", func(ctx context.Context) (bool, error) {
		tr, err := c.Client.CoreV1().ServiceAccounts(shippedNamespace).CreateToken(ctx, shippedAccount,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		token = tr.Status.Token
		return true, nil
	})
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = token
	return cfg
}

func TestShippedRBACSufficesAndGrantsNoSecretWrites(t *testing.T) {
	c := clustertest.Cluster(t)
	installShippedRBAC(t, c)
	ctx := context.Background()
	user := "system:serviceaccount:" + shippedNamespace + ":" + shippedAccount
	can := func(verb, group, resource, ns string) bool {
		t.Helper()
		sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + shippedNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
		if can(verb, "", "secrets", "") || can(verb, "", "secrets", "default") {
			t.Errorf("the shipped RBAC lets certrollout %s Secrets", verb)
		}
	}
	if can("update", "", "configmaps", "") || can("delete", "apps", "deployments", "") || can("update", "certrollout.io", "nodecertificates", "") {
		t.Error("the shipped RBAC grants writes beyond what the controller does")
	}
	if !can("watch", "", "secrets", "") || !can("patch", "apps", "deployments", "default") ||
		!can("watch", "cert-manager.io", "issuers", "") || !can("list", "cert-manager.io", "clusterissuers", "") ||
		!can("list", "certrollout.io", "nodecertificates", "") || !can("watch", "certrollout.io", "nodecertificates", "") ||
		!can("watch", "certificates.k8s.io", "clustertrustbundles", "") || !can("list", "certificates.k8s.io", "podcertificaterequests", "") {
		t.Error("the shipped RBAC lacks what the controller needs")
	}

	// Run the controller as that ServiceAccount, leader election on, and watch it do its job.
	opts := testOptions()
	e := newEnv(t, opts)
	ca := testgen.CA(t, "root")
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	e.deploy(deployment(e.ns, "web", true, testgen.WithSecretVolume("api-tls")))
	e.waitAvailable("web")

	mgr, err := NewManager(serviceAccountConfig(t, c), ManagerOptions{
		Options: e.opts, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		LeaderElection: true, LeaderElectionNamespace: shippedNamespace, LeaderElectionID: "certrollout-rbac-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	e.waitLedger("web", "")
	hash := e.get("web").Annotations[api.AnnotationCertificateHash]
	e.tlsSecret("api-tls", testgen.Leaf(t, ca, "api"), ca, nil)
	clustertest.Eventually(t, time.Minute, "web to restart under the shipped RBAC", func(ctx context.Context) (bool, error) {
		d := e.get("web")
		return d.Annotations[api.AnnotationCertificateHash] != hash && d.Spec.Template.Annotations[api.AnnotationRestartHash] != "", nil
	})
	lease, err := c.Client.CoordinationV1().Leases(shippedNamespace).Get(ctx, "certrollout-rbac-test", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("the controller should hold its leader election Lease: %v", err)
	}
}
