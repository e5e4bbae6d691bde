package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/nodeagent"
)

func TestNodeAgentRefusesBadInput(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	root := t.TempDir()
	cases := map[string]struct {
		args []string
		want string
	}{
		"without a node name":         {[]string{"--host-root", root}, "--node-name is required"},
		"with a root that is missing": {[]string{"--node-name", "cp-1", "--host-root", filepath.Join(root, "nope")}, "--host-root " + filepath.Join(root, "nope")},
		"with a relative kubeadm dir": {[]string{"--node-name", "cp-1", "--host-root", root, "--kubeadm-dir", "etc/kubernetes"}, "--kubeadm-dir must be an absolute path"},
		"with a zero interval":        {[]string{"--node-name", "cp-1", "--host-root", root, "--interval", "0"}, "--interval, --heartbeat and --probe-timeout must be positive"},
		"with a bad kubelet address":  {[]string{"--node-name", "cp-1", "--host-root", root, "--kubelet-address", "10.0.0.1"}, "--kubelet-address must be host:port"},
		"rollouts without a namespace for the Lease": {[]string{"--node-name", "cp-1", "--host-root", root, "--control-plane-rollouts"},
			"--control-plane-rollouts needs --lease-namespace (or POD_NAMESPACE"},
		"rollouts with the host's root as state": {[]string{"--node-name", "cp-1", "--host-root", root, "--control-plane-rollouts", "--lease-namespace", "ops", "--state-dir", "/"},
			"--state-dir must be an absolute path on the host other than /"},
	}
	copyDirs := []string{"root/.kube", "/", "/etc/kubernetes/copies", "/var/lib", "/etc"}
	for _, d := range copyDirs {
		cases["kubeconfig copies in "+d] = struct {
			args []string
			want string
		}{
			[]string{"--node-name", "cp-1", "--host-root", root, "--control-plane-rollouts", "--lease-namespace", "ops", "--kubeconfig-copy-dirs", "/root/.kube," + d},
			fmt.Sprintf("--kubeconfig-copy-dirs: %q must be an absolute host path other than /, neither holding nor inside --kubeadm-dir or --state-dir", d),
		}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := run(t, "certrollout", append([]string{"node-agent"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestNodeAgentHealthIsReadyOnlyAfterPublishing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := serveHealth(ctx, "127.0.0.1:0", &nodeagent.Agent{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable} {
		resp, err := http.Get("http://" + addr.String() + path) //nolint:noctx // a test against loopback
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestNodeAgentHelpTeachesRBAC(t *testing.T) {
	out, _, err := run(t, "certrollout", "node-agent", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nodecertificates/status", "list on pods in kube-system", "--host-root", "--etcd-cert-dir", "--once",
		"--control-plane-rollouts", "certrollout-control-plane", "kubeadm-config", "--state-dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not say %q", want)
		}
	}
}

// TestNodeAgentOncePublishes runs `node-agent --once` against the local cluster over a folder holding a
// CA and an apiserver certificate.
func TestNodeAgentOncePublishes(t *testing.T) {
	c := clustertest.Cluster(t)
	clustertest.InstallCRDs(t)
	root := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour)}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(root, "etc/kubernetes/pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, der := range map[string][]byte{"ca.crt": caDER, "apiserver.crt": leafDER} {
		if err := os.WriteFile(filepath.Join(pki, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cli-agent-" + hex.EncodeToString(suffix)}}
	if _, err := c.Client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })

	args := []string{"node-agent", "--once", "--kubeconfig", c.Kubeconfig, "--node-name", node.Name, "--host-root", root, "--health-probe-bind-address", "0"}
	out, stderr, err := run(t, "certrollout", args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.HasPrefix(out, "NodeCertificates "+node.Name+" (written): 2 files, soonest expiry ") || !strings.Contains(out, "0 problems") {
		t.Errorf("summary:\n%s", out)
	}
	out, _, err = run(t, "certrollout", args...)
	if err != nil || !strings.Contains(out, "(unchanged, not written)") {
		t.Errorf("second run: %v\n%s", err, out)
	}
}
