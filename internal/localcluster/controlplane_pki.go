package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeadmConfig is the node's kubeadm configuration, kept beside the node (kubeadm.yaml) for the phases
// run here and for later `kubeadm certs renew all --config` and check-expiration runs. kubeadm refuses a
// loopback advertise address, so the node advertises 198.18.0.N (benchmarking range; nothing is ever sent
// there) and its real address is an extra SAN.
func kubeadmConfig(n ControlPlaneNode, index int, version string, validity time.Duration) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.%[1]d
  bindPort: %[2]d
nodeRegistration:
  name: %[3]s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %[4]s
certificatesDir: %[5]s
controlPlaneEndpoint: 127.0.0.1:%[2]d
%[8]sapiServer:
  certSANs: [127.0.0.1, 127.0.0.2, 127.0.0.3, localhost]
etcd:
  local:
    dataDir: %[6]s
    serverCertSANs: [%[7]s]
    peerCertSANs: [%[7]s]
`, index, n.Ports.APIServer, n.Name, version, filepath.Join(n.Root, "etc", "kubernetes", "pki"), filepath.Join(n.Root, "var", "lib", "etcd"), n.IP, validityLine(validity))
}

func validityLine(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return "certificateValidityPeriod: " + d.String() + "\n"
}

// uploadKubeadmConfig writes the kubeadm-config ConfigMap as kubeadm init's upload-config phase does:
// node 1's ClusterConfiguration, with the certificates folder every node has (/etc/kubernetes/pki; the
// nodes' folders are that path in kubeadm's mount namespace) and without certificateValidityPeriod: a
// short one only ages the first PKI, as if it had been written long ago with kubeadm's default year.
func (cp *ControlPlane) uploadKubeadmConfig(ctx context.Context) error {
	data, err := os.ReadFile(cp.Nodes[0].KubeadmConfig)
	if err != nil {
		return err
	}
	_, cluster, ok := strings.Cut(string(data), "\n---\n")
	if !ok {
		return fmt.Errorf("%s has no ClusterConfiguration", cp.Nodes[0].KubeadmConfig)
	}
	cluster = regexp.MustCompile(`(?m)^certificatesDir: .*$`).ReplaceAllString(cluster, "certificatesDir: /etc/kubernetes/pki")
	cluster = regexp.MustCompile(`(?m)^certificateValidityPeriod: .*\n`).ReplaceAllString(cluster, "")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "kubeadm-config"},
		Data: map[string]string{"ClusterConfiguration": cluster}}
	_, err = cp.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// sharedPKI are the files every control-plane node holds the same copy of: what `kubeadm join
// --control-plane --certificate-key` downloads before it generates the node's own leaves.
var sharedPKI = []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"}

// kubeadmPhases writes the node's PKI and kubeconfigs with real kubeadm. first generates the cluster's
// authorities; the other nodes get copies of first's first.
func (cp *ControlPlane) kubeadmPhases(ctx context.Context, n, first ControlPlaneNode) error {
	pki := filepath.Join(n.Root, "etc", "kubernetes", "pki")
	if err := os.MkdirAll(filepath.Join(pki, "etcd"), 0o755); err != nil {
		return err
	}
	if n.Name != first.Name {
		for _, f := range sharedPKI {
			data, err := os.ReadFile(filepath.Join(first.Root, "etc", "kubernetes", "pki", f))
			if err != nil {
				return fmt.Errorf("copying the cluster's authorities to %s: %w", n.Name, err)
			}
			if err := os.WriteFile(filepath.Join(pki, f), data, 0o600); err != nil {
				return err
			}
		}
	}
	for _, args := range [][]string{
		{"init", "phase", "certs", "all", "--config", n.KubeadmConfig},
		{"init", "phase", "kubeconfig", "all", "--config", n.KubeadmConfig, "--kubeconfig-dir", filepath.Join(n.Root, "etc", "kubernetes")},
	} {
		cmd := exec.CommandContext(ctx, cp.kubeadm, args...)
		cmd.Dir = n.Root
		cmd.Env = componentEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubeadm %s for %s: %w\n%s", strings.Join(args[:4], " "), n.Name, err, out)
		}
	}
	// kubeadm wrote its advertise address (or the shared endpoint) as the server: the node's own
	// components talk to the node's own API server, as on a kubeadm node; only the address changes.
	own := "https://" + n.IP + ":" + strconv.Itoa(n.Ports.APIServer)
	for _, f := range []string{"controller-manager.conf", "scheduler.conf", "kubelet.conf"} {
		if err := setServer(filepath.Join(n.Root, "etc", "kubernetes", f), own); err != nil {
			return err
		}
	}
	return nil
}

var serverLine = regexp.MustCompile(`(?m)^(\s*server:\s*)\S+\s*$`)

// setServer rewrites the server: lines of a kubeconfig in place, leaving every other byte as kubeadm wrote it.
func setServer(path, server string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !serverLine.Match(data) {
		return fmt.Errorf("%s has no server: line", path)
	}
	out := serverLine.ReplaceAll(data, []byte("${1}"+server))
	return os.WriteFile(path, out, 0o600)
}

// Kubeadm runs real kubeadm for a node, in a private mount namespace where /etc/kubernetes is the node's
// etc/kubernetes: kubeadm reads kubeconfigs from there whatever its --config says. The host's
// /etc/kubernetes is created (empty) if absent, as a mount point; it is never written to.
func (cp *ControlPlane) Kubeadm(ctx context.Context, node string, args ...string) ([]byte, error) {
	n, err := cp.Node(node)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll("/etc/kubernetes", 0o755); err != nil {
		return nil, fmt.Errorf("creating the mount point /etc/kubernetes: %w", err)
	}
	script := `mount --make-rprivate / && mount --bind "$1" /etc/kubernetes && shift && exec "$@"`
	full := append([]string{"-m", "sh", "-c", script, "sh", filepath.Join(n.Root, "etc", "kubernetes"), cp.kubeadm}, args...)
	cmd := exec.CommandContext(ctx, "unshare", full...)
	cmd.Dir = n.Root
	cmd.Env = componentEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubeadm %s on %s: %w\n%s", strings.Join(args, " "), node, err, stderr.String())
	}
	return out, nil
}

// Node returns the control-plane node named name.
func (cp *ControlPlane) Node(name string) (ControlPlaneNode, error) {
	for _, n := range cp.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return ControlPlaneNode{}, fmt.Errorf("no control-plane node %q", name)
}

var errNoKubeadm = errors.New("localcluster: Binaries.Kubeadm is empty: the control plane needs kubeadm")
