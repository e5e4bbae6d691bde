package nodeagent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/localcluster"
)

// kubeadmConfig is the node cp-1's kubeadm configuration, read inside the chroot kubeadm makes of the
// node's folder (--rootfs). kubeadm refuses a loopback advertise address; 198.18.0.1 is never dialled:
// the tests route it through the agent's dialer.
const kubeadmConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 198.18.0.1
  bindPort: 6443
nodeRegistration:
  name: cp-1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
certificatesDir: /etc/kubernetes/pki
`

// kubeadmNode is a node's folder written by real kubeadm: the PKI, the kubeconfigs and the static pod
// manifests (`init phase certs all`, `kubeconfig all`, `control-plane all`, `etcd local`, each with
// --rootfs so every path is kubeadm's own), plus the kubelet's folder as a kubelet leaves it: a
// self-signed kubelet.crt and kubelet-client-current.pem, a symlink to a rotated file that kubelet.conf
// references.
type kubeadmNode struct {
	t       *testing.T
	root    string
	kubeadm string
}

func newKubeadmNode(t *testing.T) *kubeadmNode {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real kubeadm")
	}
	if os.Geteuid() != 0 {
		t.Skip("kubeadm --rootfs chroots into the node's folder: needs root")
	}
	bins, err := localcluster.EnsureBinaries(context.Background(), localcluster.BuildOptions{Versions: localcluster.DefaultVersions})
	if err != nil {
		t.Fatal(err)
	}
	n := &kubeadmNode{t: t, root: t.TempDir(), kubeadm: bins.Kubeadm}
	n.write("etc/kubernetes/kubeadm.yaml", kubeadmConfig, 0o600)
	for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"control-plane", "all"}, {"etcd", "local"}} {
		n.run(append(append([]string{"init", "phase"}, phase...), "--config", "/etc/kubernetes/kubeadm.yaml")...)
	}
	n.kubeletFiles()
	return n
}

func (n *kubeadmNode) run(args ...string) {
	n.t.Helper()
	cmd := exec.Command(n.kubeadm, append(args, "--rootfs", n.root)...) //nolint:gosec // the test's own kubeadm
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("kubeadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// renew runs `kubeadm certs renew <name>`: a new certificate from the same CA, as an operator renews.
func (n *kubeadmNode) renew(name string) {
	n.t.Helper()
	n.run("certs", "renew", name, "--config", "/etc/kubernetes/kubeadm.yaml")
}

func (n *kubeadmNode) path(rel string) string { return filepath.Join(n.root, rel) }

func (n *kubeadmNode) write(rel, data string, mode os.FileMode) {
	n.t.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		n.t.Fatal(err)
	}
}

func (n *kubeadmNode) read(rel string) []byte {
	n.t.Helper()
	b, err := os.ReadFile(n.path(rel))
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

// kubeletFiles writes the kubelet's folder: kubelet.crt as the kubelet generates it (a leaf and the
// self-signed CA that signed it), and a client certificate signed by the cluster CA in a rotated file
// that kubelet-client-current.pem links to and kubelet.conf references, as after TLS bootstrap.
func (n *kubeadmNode) kubeletFiles() {
	n.t.Helper()
	caCert, caKey := selfSignedCA(n.t, "cp-1-ca@1764300000")
	leaf, leafKey := issue(n.t, caCert, caKey, "cp-1@1764300000", nil)
	n.write("var/lib/kubelet/pki/kubelet.crt", string(leaf)+string(pemCert(caCert.Raw)), 0o644)
	n.write("var/lib/kubelet/pki/kubelet.key", string(leafKey), 0o600)

	cc, ck := loadCA(n.t, n.read("etc/kubernetes/pki/ca.crt"), n.read("etc/kubernetes/pki/ca.key"))
	client, clientKey := issue(n.t, cc, ck, "system:node:cp-1", []string{"system:nodes"})
	n.write("var/lib/kubelet/pki/kubelet-client-2026-11-28-06-00-00.pem", string(client)+string(clientKey), 0o600)
	if err := os.Symlink("/var/lib/kubelet/pki/kubelet-client-2026-11-28-06-00-00.pem", n.path("var/lib/kubelet/pki/kubelet-client-current.pem")); err != nil {
		n.t.Fatal(err)
	}
	conf := string(n.read("etc/kubernetes/kubelet.conf"))
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		switch {
		case strings.Contains(l, "client-certificate-data:"):
			lines = append(lines, "    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem")
		case strings.Contains(l, "client-key-data:"):
			lines = append(lines, "    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem")
		default:
			lines = append(lines, l)
		}
	}
	n.write("etc/kubernetes/kubelet.conf", strings.Join(lines, "\n"), 0o600)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func selfSignedCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// issue signs a leaf for 127.0.0.1 and cn with ca; it returns PEM certificate and key.
func issue(t *testing.T, ca *x509.Certificate, caKey any, cn string, orgs []string) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(200 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func loadCA(t *testing.T, certPEM, keyPEM []byte) (*x509.Certificate, any) {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c, pair.PrivateKey
}
