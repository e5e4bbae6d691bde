package chart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/certrollout/certrollout/internal/cli"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/testgen"
)

// impersonatingKubeconfig writes a kubeconfig for the cluster that acts as user (kubectl's --as).
func impersonatingKubeconfig(t *testing.T, c *localcluster.Cluster, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		t.Fatalf("%s has no current context", c.Kubeconfig)
	}
	cfg.AuthInfos[ctx.AuthInfo].Impersonate = user
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddress returns a loopback address with a port nothing listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// applyObjects server-side applies the rendered objects kinds picks, and deletes the cluster-scoped
// ones when the test ends (namespaced ones go with their namespaces).
func applyObjects(t *testing.T, c *localcluster.Cluster, r rendered, kinds ...string) {
	t.Helper()
	pick := func(u *unstructured.Unstructured) bool {
		for _, k := range kinds {
			if u.GetKind() == k {
				return false
			}
		}
		return true
	}
	if err := localcluster.Apply(context.Background(), c.Config, r.manifest(t, pick)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, u := range r.Objects {
			var err error
			switch {
			case pick(u):
				continue
			case u.GetKind() == "ClusterRole":
				err = c.Client.RbacV1().ClusterRoles().Delete(ctx, u.GetName(), metav1.DeleteOptions{})
			case u.GetKind() == "ClusterRoleBinding":
				err = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, u.GetName(), metav1.DeleteOptions{})
			}
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s: %v", key(u), err)
			}
		}
	})
}

func TestTheControllerRunsInNamespacedModeWithOnlyTheChartsRBAC(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	home, watched, other, unwatched := clustertest.Namespace(t), clustertest.Namespace(t), clustertest.Namespace(t), clustertest.Namespace(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	release := "nsmode-" + hex.EncodeToString(suffix) // cluster-scoped names must not clash with other tests'
	r := renderRelease(t, release, home, values(t, fmt.Sprintf(`
watchNamespaces: [%s, %s]
settlePeriod: 1s
logFormat: json
verbosity: 1
trustSync:
  enabled: true
  targets: [{namespace: %s, name: kubeflow-oidc-ca-bundle}]
`, watched, other, watched)))
	applyObjects(t, c, r, "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
	sa := release + "-certrollout"
	user := "system:serviceaccount:" + home + ":" + sa

	// What the ServiceAccount may do, as the API server's authorizer answers.
	ctx := context.Background()
	can := func(verb, group, resource, ns string) bool {
		t.Helper()
		return allowed(t, c, user, home, authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns})
	}
	if !can("watch", "", "secrets", watched) || !can("patch", "apps", "deployments", other) || !can("list", "cert-manager.io", "clusterissuers", "") ||
		!can("update", "coordination.k8s.io", "leases", home) {
		t.Error("the namespaced RBAC lacks what the controller needs in its namespaces")
	}
	if can("list", "", "secrets", "") || can("list", "", "secrets", unwatched) || can("patch", "apps", "deployments", unwatched) ||
		can("list", "cert-manager.io", "issuers", "") || can("update", "coordination.k8s.io", "leases", watched) {
		t.Error("the namespaced RBAC grants beyond the watched namespaces")
	}

	// An opted-in workload on a TLS Secret in a watched namespace.
	ca := testgen.CA(t, "root")
	writeTLSSecret(t, c, watched, "api-tls", testgen.Leaf(t, ca, "api"), ca)
	d := testgen.Deployment(watched, "web", 2, []testgen.PodOption{testgen.WithSecretVolume("api-tls")}, testgen.WithAnnotation(api.AnnotationEnabled, "true"))
	if _, err := c.Client.AppsV1().Deployments(watched).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 2*time.Minute, "Deployment web to be available", func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(watched).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 2 && d.Status.UpdatedReplicas == 2, nil
	})

	logs, running := runChartController(t, c, r, user, home)
	var hash string
	clustertest.Eventually(t, 2*time.Minute, "web's ledger (the certificates its pods run on)", func(ctx context.Context) (bool, error) {
		if err := running(); err != nil {
			t.Fatal(err)
		}
		d, err := c.Client.AppsV1().Deployments(watched).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		hash = d.Annotations[api.AnnotationCertificateHash]
		return hash != "", nil
	})

	// The certificate renews: web rolls once, its pod template annotated with the new certificates.
	writeTLSSecret(t, c, watched, "api-tls", testgen.Leaf(t, ca, "api"), ca)
	clustertest.Eventually(t, 2*time.Minute, "web to roll after its certificate changed", func(ctx context.Context) (bool, error) {
		if err := running(); err != nil {
			t.Fatal(err)
		}
		d, err := c.Client.AppsV1().Deployments(watched).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Annotations[api.AnnotationCertificateHash] != hash && d.Spec.Template.Annotations[api.AnnotationRestartHash] != "", nil
	})
	lease, err := c.Client.CoordinationV1().Leases(home).Get(ctx, "certrollout-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("the controller should hold its Lease in %s: %v", home, err)
	}
	// Nothing it may not read was tried: no Forbidden in its logs.
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("the controller met Forbidden errors under the chart's RBAC:\n%s", logs.String())
	}
	// The same controller (one per test process: controller names are process-wide) syncs trust bundles.
	t.Run("a TrustBundleSync writes only its granted Secret and its consumer rolls once", func(t *testing.T) {
		trustBundleSyncUnderTheChartsRBAC(t, c, watched, user, home, running)
	})
}

// allowed asks the API server's authorizer whether the ServiceAccount user (of namespace home) may do what.
func allowed(t *testing.T, c *localcluster.Cluster, user, home string, what authorizationv1.ResourceAttributes) bool {
	t.Helper()
	sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + home, "system:authenticated"},
		ResourceAttributes: &what,
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// runChartController runs `certrollout controller` in this process with exactly the rendered Deployment's
// arguments, as user (the chart's ServiceAccount, of namespace home), until the test ends, and waits for
// its /readyz. Out of a pod the controller cannot find its own namespace, so the Lease's is given, and the
// endpoints listen on free loopback ports instead of :8080/:8081, which other processes of this machine may
// hold. running reports an exit, failing the test.
func runChartController(t *testing.T, c *localcluster.Cluster, r rendered, user, home string) (logs *clustertest.SyncBuffer, running func() error) {
	t.Helper()
	args := controllerArgs(t, r)
	probes, metrics := freeAddress(t), freeAddress(t)
	args = append(args, "--kubeconfig="+impersonatingKubeconfig(t, c, user), "--leader-election-namespace="+home,
		"--health-probe-bind-address="+probes, "--metrics-bind-address="+metrics)
	logs = &clustertest.SyncBuffer{}
	root := cli.NewRootCommand(cli.IOStreams{In: strings.NewReader(""), Out: logs, ErrOut: logs}, "certrollout")
	root.SetArgs(args)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the controller stopped with: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the controller did not stop within a minute")
		}
		if t.Failed() {
			t.Logf("controller logs:\n%s", logs.String())
		}
	})
	running = func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("the controller exited: %w", err)
		default:
			return nil
		}
	}
	clustertest.Eventually(t, 2*time.Minute, "the controller's /readyz under the chart's RBAC", func(ctx context.Context) (bool, error) {
		if err := running(); err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probes+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return logs, running
}

// controllerArgs are the rendered controller container's arguments.
func controllerArgs(t *testing.T, r rendered) []string {
	t.Helper()
	for _, u := range r.ofKind("Deployment") {
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		for _, ct := range containers {
			m := ct.(map[string]any)
			if m["name"] != "controller" {
				continue
			}
			var args []string
			for _, a := range m["args"].([]any) {
				args = append(args, a.(string))
			}
			return args
		}
	}
	t.Fatal("no controller container rendered")
	return nil
}

// writeTLSSecret creates or replaces a TLS Secret holding leaf (with its CA).
func writeTLSSecret(t *testing.T, c *localcluster.Cluster, ns, name string, leaf, ca *testgen.Cert) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": testgen.Concat(leaf.PEM(), ca.PEM()), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()},
	}
	_, err := c.Client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			t.Fatal(gerr)
		}
		s.ResourceVersion = cur.ResourceVersion
		_, err = c.Client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}
