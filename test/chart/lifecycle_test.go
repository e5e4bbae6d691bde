package chart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

var (
	crdGVR           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	rolloutPolicyGVR = schema.GroupVersionResource{Group: "certrollout.io", Version: "v1alpha1", Resource: "rolloutpolicies"}
	certRolloutGVR   = schema.GroupVersionResource{Group: "certrollout.io", Version: "v1alpha1", Resource: "certrollouts"}
	crdNames         = []string{"certrollouts.certrollout.io", "maintenanceholds.certrollout.io", "rolloutpolicies.certrollout.io"}
)

// helmConfig is what `helm --kubeconfig ... -n ns` works with: the local cluster, releases stored as
// Secrets in ns.
func helmConfig(t *testing.T, c *localcluster.Cluster, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	flags.Namespace = &ns
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(quiet))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// asRelease unwraps Helm's release interface.
func asRelease(t *testing.T, r any) *release.Release {
	t.Helper()
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("a %T, not a release", r)
	}
	return rel
}

func TestInstallUpgradeAndUninstallKeepTheCRDsAndTheUsersObjects(t *testing.T) {
	c := clustertest.Cluster(t)
	home, app := clustertest.Namespace(t), clustertest.Namespace(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "life-" + hex.EncodeToString(suffix)
	fullname := name + "-certrollout"
	ctx := context.Background()
	cfg := helmConfig(t, c, home)
	installed := false
	t.Cleanup(func() {
		if installed {
			u := action.NewUninstall(cfg)
			u.WaitStrategy = kube.HookOnlyStrategy
			if _, err := u.Run(name); err != nil {
				t.Errorf("uninstalling in cleanup: %v", err)
			}
		}
	})

	// helm install: CRDs the package's other tests installed (cluster-wide, outside Helm) are adopted, as
	// `helm install --take-ownership` does for CRDs a user applied with kubectl.
	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = name, home
	install.WaitStrategy = kube.HookOnlyStrategy
	install.TakeOwnership = true
	install.Timeout = 2 * time.Minute
	r, err := install.RunWithContext(ctx, loadChart(t), nil)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	installed = true
	if rel := asRelease(t, r); rel.Info.Status != "deployed" || rel.Chart.Metadata.Version != "0.1.0" {
		t.Fatalf("release %s: status %s, chart %s", name, rel.Info.Status, rel.Chart.Metadata.Version)
	}
	for _, crd := range crdNames {
		u, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if u.GetAnnotations()["meta.helm.sh/release-name"] != name || u.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s after install: annotations %v, want release %s and resource-policy keep", crd, u.GetAnnotations(), name)
		}
	}
	if _, err := c.Client.AppsV1().Deployments(home).Get(ctx, fullname, metav1.GetOptions{}); err != nil {
		t.Fatalf("the controller Deployment after install: %v", err)
	}

	// The user's objects.
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "certrollout.io/v1alpha1", "kind": "RolloutPolicy",
		"metadata": map[string]any{"name": "web", "namespace": app},
		"spec":     map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}},
	}}
	rollout := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "certrollout.io/v1alpha1", "kind": "CertRollout",
		"metadata": map[string]any{"name": "web-by-hand", "namespace": app},
		"spec":     map[string]any{"policy": "web"},
	}}
	if _, err := c.Dynamic.Resource(rolloutPolicyGVR).Namespace(app).Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dynamic.Resource(certRolloutGVR).Namespace(app).Create(ctx, rollout, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	usersObjectsExist := func(when string) {
		t.Helper()
		for _, o := range []struct {
			gvr  schema.GroupVersionResource
			name string
		}{{rolloutPolicyGVR, "web"}, {certRolloutGVR, "web-by-hand"}} {
			u, err := c.Dynamic.Resource(o.gvr).Namespace(app).Get(ctx, o.name, metav1.GetOptions{})
			if err != nil || u.GetDeletionTimestamp() != nil {
				t.Errorf("%s %s/%s %s: %v", o.gvr.Resource, app, o.name, when, err)
			}
		}
		for _, crd := range crdNames {
			u, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{})
			if err != nil || u.GetDeletionTimestamp() != nil {
				t.Errorf("CRD %s %s: %v", crd, when, err)
			}
		}
	}

	// helm upgrade to the next chart version with other values.
	next := loadChart(t)
	next.Metadata.Version = "0.1.1"
	upgrade := action.NewUpgrade(cfg)
	upgrade.Namespace = home
	upgrade.WaitStrategy = kube.HookOnlyStrategy
	upgrade.Timeout = 2 * time.Minute
	r, err = upgrade.RunWithContext(ctx, name, next, values(t, "replicaCount: 3\nauto: true\nlogFormat: json\npodDisruptionBudget: {enabled: false}"))
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if rel := asRelease(t, r); rel.Version != 2 || rel.Info.Status != "deployed" || rel.Chart.Metadata.Version != "0.1.1" {
		t.Fatalf("release after upgrade: revision %d, status %s, chart %s", rel.Version, rel.Info.Status, rel.Chart.Metadata.Version)
	}
	usersObjectsExist("after helm upgrade")
	d, err := c.Client.AppsV1().Deployments(home).Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--auto") {
		t.Errorf("the Deployment after upgrade: %d replicas, args %q; want 3 and --auto", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
	}
	// The CRDs are templates, so the upgrade upgraded them too.
	for _, crd := range crdNames {
		u, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := u.GetLabels()["helm.sh/chart"]; got != "certrollout-0.1.1" {
			t.Errorf("CRD %s after upgrade is labelled helm.sh/chart=%q, want certrollout-0.1.1", crd, got)
		}
	}
	// And the PodDisruptionBudget the new values turned off is gone.
	if _, err := c.Client.PolicyV1().PodDisruptionBudgets(home).Get(ctx, fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the PodDisruptionBudget after podDisruptionBudget.enabled=false: %v, want NotFound", err)
	}

	// helm uninstall: the release's objects go, the CRDs and the user's objects stay.
	uninstall := action.NewUninstall(cfg)
	uninstall.WaitStrategy = kube.HookOnlyStrategy
	uninstall.Timeout = 2 * time.Minute
	resp, err := uninstall.Run(name)
	if err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	installed = false
	t.Logf("helm uninstall: %s", resp.Info)
	usersObjectsExist("after helm uninstall")
	clustertest.Eventually(t, time.Minute, "the release's Deployment and ClusterRole to be deleted", func(ctx context.Context) (bool, error) {
		_, derr := c.Client.AppsV1().Deployments(home).Get(ctx, fullname, metav1.GetOptions{})
		_, cerr := c.Client.RbacV1().ClusterRoles().Get(ctx, fullname, metav1.GetOptions{})
		return apierrors.IsNotFound(derr) && apierrors.IsNotFound(cerr), nil
	})

	// Installing again under the same name and namespace takes the kept CRDs back without
	// --take-ownership: they still name this release.
	again := action.NewInstall(cfg)
	again.ReleaseName, again.Namespace = name, home
	again.WaitStrategy = kube.HookOnlyStrategy
	again.Timeout = 2 * time.Minute
	if _, err := again.RunWithContext(ctx, loadChart(t), nil); err != nil {
		t.Fatalf("helm install after uninstall, same release: %v", err)
	}
	installed = true
	usersObjectsExist("after installing again")
}
