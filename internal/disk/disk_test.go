package disk

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/testgen"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func days(n int) time.Time { return base.AddDate(0, 0, n) }

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func kubeconfig(ca, client *testgen.Cert, t *testing.T) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca.PEM()) + `}
users:
- name: admin
  user: {client-certificate-data: ` + base64.StdEncoding.EncodeToString(client.PEM()) + `, client-key-data: ` + base64.StdEncoding.EncodeToString(client.KeyPEM(t)) + `}
contexts:
- {name: admin@kubernetes, context: {cluster: kubernetes, user: admin}}
current-context: admin@kubernetes
`)
}

// kubeadmTree writes a kubeadm-like /etc/kubernetes: the CAs, the serving and client certificates, the
// kubeconfigs, and files that are not certificates (keys, sa.pub), with distinct expiries.
func kubeadmTree(t *testing.T) string {
	dir := t.TempDir()
	ca := testgen.CA(t, "kubernetes", testgen.WithValidity(days(-1), days(3650)))
	etcdCA := testgen.CA(t, "etcd-ca", testgen.WithValidity(days(-1), days(3649)))
	fpCA := testgen.CA(t, "front-proxy-ca", testgen.WithValidity(days(-1), days(3648)))
	leaf := func(signer *testgen.Cert, cn string, expires int) *testgen.Cert {
		return testgen.Leaf(t, signer, cn, testgen.WithValidity(days(-1), days(expires)))
	}
	write(t, filepath.Join(dir, "pki/ca.crt"), ca.PEM())
	write(t, filepath.Join(dir, "pki/ca.key"), ca.KeyPEM(t))
	write(t, filepath.Join(dir, "pki/sa.pub"), []byte("-----BEGIN PUBLIC KEY-----\nMAo=\n-----END PUBLIC KEY-----\n"))
	write(t, filepath.Join(dir, "pki/apiserver.crt"), leaf(ca, "kube-apiserver", 300).PEM())
	write(t, filepath.Join(dir, "pki/apiserver-kubelet-client.crt"), leaf(ca, "kube-apiserver-kubelet-client", 301).PEM())
	write(t, filepath.Join(dir, "pki/apiserver-etcd-client.crt"), leaf(etcdCA, "kube-apiserver-etcd-client", 302).PEM())
	write(t, filepath.Join(dir, "pki/front-proxy-ca.crt"), fpCA.PEM())
	write(t, filepath.Join(dir, "pki/front-proxy-client.crt"), leaf(fpCA, "front-proxy-client", 303).PEM())
	write(t, filepath.Join(dir, "pki/etcd/ca.crt"), etcdCA.PEM())
	write(t, filepath.Join(dir, "pki/etcd/server.crt"), leaf(etcdCA, "etcd-server", 20).PEM()) // soonest
	write(t, filepath.Join(dir, "pki/etcd/peer.crt"), leaf(etcdCA, "etcd-peer", 304).PEM())
	write(t, filepath.Join(dir, "pki/etcd/healthcheck-client.crt"), leaf(etcdCA, "kube-etcd-healthcheck-client", 305).PEM())
	write(t, filepath.Join(dir, "admin.conf"), kubeconfig(ca, leaf(ca, "kubernetes-admin", 306), t))
	write(t, filepath.Join(dir, "controller-manager.conf"), kubeconfig(ca, leaf(ca, "system:kube-controller-manager", 307), t))
	write(t, filepath.Join(dir, "scheduler.conf"), kubeconfig(ca, leaf(ca, "system:kube-scheduler", 308), t))
	// kubelet.conf references its rotating client certificate by path, as kubeadm writes it.
	kubelet := leaf(ca, "system:node:cp-1", 30)
	write(t, filepath.Join(dir, "kubelet-client-current.pem"), append(kubelet.PEM(), kubelet.KeyPEM(t)...))
	write(t, filepath.Join(dir, "kubelet.conf"), []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: `+base64.StdEncoding.EncodeToString(ca.PEM())+`}
users:
- name: system:node:cp-1
  user: {client-certificate: kubelet-client-current.pem, client-key: kubelet-client-current.pem}
`))
	return dir
}

func names(r Result) []string {
	var out []string
	for _, f := range r.Certificates {
		n := f.Source.Name
		if f.Source.Entry != "" {
			n += "#" + f.Source.Entry
		}
		out = append(out, n)
	}
	return out
}

func TestKubeadmFindsEveryCertificateByItsKubeadmNameSoonestFirst(t *testing.T) {
	r := Kubeadm(kubeadmTree(t))
	if len(r.Problems) != 0 {
		t.Fatalf("problems: %v", r.Problems)
	}
	got := names(r)
	// 10 certificate files + 4 kubeconfigs × (CA + client).
	if len(got) != 18 {
		t.Fatalf("%d certificates: %v", len(got), got)
	}
	if got[0] != "etcd-server" || got[1] != "kubelet.conf#user/system:node:cp-1" {
		t.Errorf("soonest first: want etcd-server then the kubelet client, got %v", got[:3])
	}
	for _, want := range []string{"admin.conf#user/admin", "admin.conf#cluster/kubernetes", "apiserver", "etcd-ca", "front-proxy-client"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("%s not found in %v", want, got)
		}
	}
	for _, f := range r.Certificates {
		if f.Source.Name == "apiserver" && (f.Certificate.Subject != "CN=kube-apiserver" || f.Certificate.Issuer != "CN=kubernetes") {
			t.Errorf("apiserver facts: %+v", f.Certificate)
		}
	}
}

func TestKubeadmSaysWhenTheFolderIsNotAKubeadmOne(t *testing.T) {
	r := Kubeadm(t.TempDir())
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Message, "no kubeadm certificates") {
		t.Fatalf("problems: %v", r.Problems)
	}
	r = Kubeadm(filepath.Join(t.TempDir(), "missing"))
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0].Message, "no such file") {
		t.Fatalf("problems: %v", r.Problems)
	}
}

func TestFilesReadsPEMDERKubeconfigsAndFoldersAndNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	ca := testgen.CA(t, "root", testgen.WithValidity(days(-1), days(100)))
	leaf := testgen.Leaf(t, ca, "web", testgen.WithValidity(days(-1), days(10)))
	write(t, filepath.Join(dir, "web.pem"), testgen.Concat(leaf.PEM(), ca.PEM()))
	write(t, filepath.Join(dir, "web.der"), leaf.DER)
	write(t, filepath.Join(dir, "web.key"), leaf.KeyPEM(t))
	write(t, filepath.Join(dir, "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
	write(t, filepath.Join(dir, "conf/other.kubeconfig"), []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster: {server: https://x, certificate-authority: missing-ca.crt}\nusers: []\n"))
	r := Files([]string{filepath.Join(dir, "*.pem"), filepath.Join(dir, "web.der"), filepath.Join(dir, "conf"), filepath.Join(dir, "nope-*.crt")})
	got := names(r)
	if strings.Join(got, ",") != "web.der,web.pem,web.pem" {
		t.Errorf("certificates: %v (want the DER leaf and the PEM leaf, soonest first, then its CA)", got)
	}
	var problems []string
	for _, p := range r.Problems {
		problems = append(problems, filepath.Base(p.Path)+": "+p.Message)
	}
	for _, want := range []string{"broken.pem: ", "other.kubeconfig: cluster/x references", "nope-*.crt: no such file"} {
		found := false
		for _, p := range problems {
			found = found || strings.HasPrefix(p, want)
		}
		if !found {
			t.Errorf("no problem %q in %v", want, problems)
		}
	}
	if len(r.Problems) != 3 {
		t.Errorf("the key file is not a problem: it holds no certificate: %v", problems)
	}
}

// A kubeconfig that names a device (or a folder that holds a pipe) is a problem, not a hang: a read of
// /dev/zero never ends, a FIFO blocks until someone writes.
func TestFilesRefuseDevicesAndPipesInsteadOfHanging(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.crt")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	write(t, filepath.Join(dir, "zero.kubeconfig"), []byte("apiVersion: v1\nkind: Config\nclusters: []\nusers:\n- name: z\n  user: {client-certificate: /dev/zero}\n"))
	done := make(chan Result, 1)
	go func() { done <- Files([]string{dir}) }()
	var r Result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Files blocked on a device or a pipe")
	}
	var problems []string
	for _, p := range r.Problems {
		problems = append(problems, p.Error())
	}
	all := strings.Join(problems, "\n")
	if !strings.Contains(all, "pipe.crt: not a regular file") || !strings.Contains(all, "user/z references /dev/zero: not a regular file") {
		t.Fatalf("problems:\n%s\nwant the pipe and /dev/zero named as not regular files", all)
	}
}

// FuzzKubeconfig reads whatever a file named like a kubeconfig holds: it never panics, and every
// certificate it reports parsed.
func FuzzKubeconfig(f *testing.F) {
	ca := testgen.CA(f, "root")
	b64 := base64.StdEncoding.EncodeToString(ca.PEM())
	f.Add([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://x, certificate-authority-data: " + b64 + "}\nusers:\n- name: u\n  user: {client-certificate-data: " + b64 + "}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {certificate-authority: ca.crt}\nusers: []\n"))
	f.Add([]byte("kind: Config\nclusters: [[[\n"))
	f.Add([]byte("clusters:\nusers:\n"))
	dir := f.TempDir()
	write(f, filepath.Join(dir, "ca.crt"), ca.PEM())
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := Files([]string{path})
		for _, c := range r.Certificates {
			if c.Certificate.Fingerprint == "" || c.Certificate.NotAfter.IsZero() {
				t.Fatalf("reported a certificate that did not parse: %+v", c)
			}
		}
	})
}

func TestAKeyWithoutACertificateIsReportedWhereACertificateIsExpected(t *testing.T) {
	dir := t.TempDir()
	ca := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "portal")
	for _, f := range []string{"key.pem", "privkey.pem", "portal.key", "server.pem", "sub/tls.crt"} {
		write(t, filepath.Join(dir, f), leaf.KeyPEM(t))
	}
	write(t, filepath.Join(dir, "cert.pem"), leaf.PEM())
	found := func(r Result) []string {
		var out []string
		for _, s := range r.KeysWithoutCertificate {
			out = append(out, s.Name)
		}
		return out
	}
	for name, tc := range map[string]struct {
		patterns []string
		want     string
	}{
		"a key file alone is reported: no certificate found must not read as all is well": {[]string{filepath.Join(dir, "key.pem")}, "key.pem"},
		"beside a certificate, only the names that expect one are reported (the shell expands *.pem)": {
			[]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "privkey.pem"), filepath.Join(dir, "server.pem")}, "server.pem"},
		"a folder's walk reports only the names that expect a certificate": {[]string{dir}, filepath.Base(dir) + "/server.pem," + filepath.Base(dir) + "/sub/tls.crt"},
		"a .key file beside a certificate is no finding":                   {[]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "portal.key")}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := Files(tc.patterns)
			if got := strings.Join(found(r), ","); got != tc.want {
				t.Errorf("keys without certificate: %q, want %q", got, tc.want)
			}
			if len(r.Problems) != 0 {
				t.Errorf("a key file is not a read problem: %v", r.Problems)
			}
		})
	}
}

func TestKubeadmAtReadsReferencesAndLinksOnTheHost(t *testing.T) {
	root := t.TempDir()
	ca := testgen.CA(t, "kubernetes", testgen.WithValidity(days(-1), days(3650)))
	client := testgen.Leaf(t, ca, "system:node:cp-1", testgen.WithValidity(days(-1), days(30)))
	write(t, filepath.Join(root, "etc/kubernetes/pki/ca.crt"), ca.PEM())
	write(t, filepath.Join(root, "var/lib/kubelet/pki/kubelet-client-2026.pem"), append(client.PEM(), client.KeyPEM(t)...))
	// The kubelet's link and kubelet.conf's reference are absolute paths on the host.
	if err := os.Symlink("/var/lib/kubelet/pki/kubelet-client-2026.pem", filepath.Join(root, "var/lib/kubelet/pki/kubelet-client-current.pem")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/kubernetes/kubelet.conf"), []byte(`apiVersion: v1
kind: Config
users:
- name: system:node:cp-1
  user: {client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem, client-key: /var/lib/kubelet/pki/kubelet-client-current.pem}
`))
	r := KubeadmAt(root, "/etc/kubernetes")
	if len(r.Problems) > 0 {
		t.Fatal(r.Problems)
	}
	var got []string
	for _, f := range r.Certificates {
		got = append(got, f.Source.Name+" "+f.Certificate.Subject)
	}
	if strings.Join(got, ",") != "kubelet.conf CN=system:node:cp-1,ca CN=kubernetes" {
		t.Errorf("found %v", got)
	}
	cas := KubeadmCAs(filepath.Join(root, "etc/kubernetes"), r)
	if len(cas) != 1 || cas[0].Name != "ca" || !cas[0].External {
		t.Errorf("CAs %+v: ca without its key is external", cas)
	}
	if by := SignerOf(cas, &r.Certificates[0].Certificate); by == nil || by.Name != "ca" {
		t.Errorf("signer of the kubelet's client certificate: %+v", by)
	}
}
