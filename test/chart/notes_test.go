package chart

import (
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/engine"
)

// notes renders templates/NOTES.txt with Helm's template engine alone.
func notes(t *testing.T, doc string) string {
	t.Helper()
	ch := loadChart(t)
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	vals, err := util.ToRenderValuesWithSchemaValidation(ch, values(t, doc),
		common.ReleaseOptions{Name: "certrollout", Namespace: releaseNamespace, Revision: 1, IsInstall: true}, caps, false)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := files["certrollout/templates/NOTES.txt"]
	if !ok {
		t.Fatal("no NOTES.txt rendered")
	}
	return out
}

func TestNotesSayWhatWasInstalledHowToStartAndToWaitForCertRolloutsBeforeUninstalling(t *testing.T) {
	for name, tc := range map[string]struct {
		values   string
		want     []string
		unwanted []string
	}{
		"defaults": {"", []string{
			"certrollout v0.1.0 is installed in namespace certrollout-system",
			"2 replica(s) of ghcr.io/certrollout/certrollout:v0.1.0, one active through leader election",
			"watching the whole cluster",
			"kubectl certrollout check -A",
			"kubectl annotate deployment/NAME certrollout.io/enabled=true",
			"kubectl get certrollouts -A",
			"helm uninstall certrollout -n certrollout-system",
			"CertRollouts carry a finalizer",
			"(helm.sh/resource-policy: keep); delete them yourself",
			"the CRDs RolloutPolicy, CertRollout, MaintenanceHold, TrustBundleSync, NodeCertificates, ControlPlanePolicy and ControlPlaneRollout, kept on uninstall",
		}, []string{"certrollout.io/enabled=false", "node agent", "--control-plane"}},
		"auto in namespaced mode": {"auto: true\nwatchNamespaces: [team-a, team-b]", []string{
			"watching only namespaces team-a, team-b",
			"in those namespaces restarts when its certificates renew (--auto)",
			"kubectl annotate deployment/NAME certrollout.io/enabled=false",
			"kubectl get certrollouts -A",
		}, []string{"watching the whole cluster", "certrollout.io/enabled=true"}},
		"CRDs not kept": {"crds: {keep: false}", []string{"the CRDs RolloutPolicy, CertRollout, MaintenanceHold, TrustBundleSync, NodeCertificates, ControlPlanePolicy and ControlPlaneRollout\n"},
			[]string{"helm.sh/resource-policy: keep", "kept on uninstall"}},
		"node agent": {"nodeAgent: {enabled: true, etcdCertDir: /etc/ssl/etcd}", []string{
			"DaemonSet certrollout-node-agent on the control-plane nodes (hostNetwork, root, read-only host mounts of /etc/kubernetes and /var/lib/kubelet/pki and /etc/ssl/etcd), each writing only its own node's NodeCertificates (ValidatingAdmissionPolicy certrollout.io-node-certificates)",
			"kubectl certrollout check --control-plane",
			"Pod Security level allows it (privileged",
		}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got := notes(t, tc.values)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("NOTES lack %q:\n%s", w, got)
				}
			}
			for _, u := range tc.unwanted {
				if strings.Contains(got, u) {
					t.Errorf("NOTES say %q:\n%s", u, got)
				}
			}
		})
	}
}
