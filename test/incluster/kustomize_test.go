package incluster

import (
	"context"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/certrollout/certrollout/internal/charttest"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/image"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// `kubectl apply -k config/default` is the other way to install: it must build with kustomize and every
// object must be accepted by a real API server, pointing at the released image.
func TestTheKustomizeTreeBuildsAndAppliesWithTheReleasedImage(t *testing.T) {
	c := clustertest.Cluster(t)
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	manifests, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charttest.Decode(string(manifests))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	// Every CRD config/crd/bases holds (a new kind is counted without editing this test).
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs under config/crd/bases: %v", err)
	}
	for kind, n := range map[string]int{"Namespace": 1, "CustomResourceDefinition": len(crds), "ServiceAccount": 1, "ClusterRole": 5, "ClusterRoleBinding": 1, "Role": 4, "RoleBinding": 4, "Deployment": 1, "Service": 1,
		"ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2} { // ClusterRoles: the controller's, certrollout-edit, certrollout-emergency, certrollout-view, certrollout-metrics-reader; Roles: leader election, settings, settings reader, the node agents' Lease
		if kinds[kind] != n {
			t.Errorf("config/default builds %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
	if err := localcluster.Apply(context.Background(), c.Config, manifests); err != nil {
		t.Fatalf("applying config/default: %v", err)
	}
	d, err := c.Client.AppsV1().Deployments("certrollout-system").Get(context.Background(), "certrollout-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Spec.Template.Spec.Containers[0].Image, image.Repository+":v0.1.0"; got != want {
		t.Errorf("config/default runs image %q, want the released %q", got, want)
	}
}

// `kubectl apply -k config/node-agent` (after config/default) installs the node agent: it builds, every
// object is accepted by a real API server, and the DaemonSet runs the released image with read-only host
// mounts.
func TestTheNodeAgentKustomizationBuildsAndApplies(t *testing.T) {
	c := clustertest.Cluster(t)
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "node-agent"))
	if err != nil {
		t.Fatalf("kustomize build config/node-agent: %v", err)
	}
	manifests, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charttest.Decode(string(manifests))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	want := map[string]int{"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "DaemonSet": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1}
	if len(kinds) != len(want) {
		t.Errorf("config/node-agent builds %v, want %v", kinds, want)
	}
	for kind, n := range want {
		if kinds[kind] != n {
			t.Errorf("config/node-agent builds %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
	// config/default first: the namespace and the NodeCertificates CRD.
	base, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	baseYAML, err := base.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(context.Background(), c.Config, baseYAML); err != nil {
		t.Fatalf("applying config/default: %v", err)
	}
	if err := localcluster.Apply(context.Background(), c.Config, manifests); err != nil {
		t.Fatalf("applying config/node-agent: %v", err)
	}
	ds, err := c.Client.AppsV1().DaemonSets("certrollout-system").Get(context.Background(), "certrollout-node-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if got, want := spec.Containers[0].Image, image.Repository+":v0.1.0"; got != want {
		t.Errorf("config/node-agent runs image %q, want the released %q", got, want)
	}
	if !spec.HostNetwork || spec.ServiceAccountName != "certrollout-node-agent" {
		t.Errorf("hostNetwork %v, serviceAccountName %q", spec.HostNetwork, spec.ServiceAccountName)
	}
	for _, m := range spec.Containers[0].VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
	if len(spec.Containers[0].VolumeMounts) != 2 {
		t.Errorf("mounts %v, want kubeadm's folder and the kubelet's PKI", spec.Containers[0].VolumeMounts)
	}
}
