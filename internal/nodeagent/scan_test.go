package nodeagent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
)

func fileByName(t *testing.T, files []ScannedFile, name string) api.NodeCertificateFile {
	t.Helper()
	for _, f := range files {
		if f.File.Name == name {
			return f.File
		}
	}
	t.Fatalf("no file %s among %d", name, len(files))
	return api.NodeCertificateFile{}
}

func fingerprintOf(t *testing.T, data []byte) string {
	t.Helper()
	b, err := certs.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return b.Leaf().Fingerprint
}

func TestScanReadsWhatKubeadmWrote(t *testing.T) {
	n := newKubeadmNode(t)
	r := Scan(ScanOptions{HostRoot: n.root})
	if len(r.Problems) > 0 {
		t.Fatalf("problems: %+v", r.Problems)
	}
	if !r.KubeadmFound || r.KubeadmDir != "/etc/kubernetes" {
		t.Errorf("KubeadmFound %v, KubeadmDir %q", r.KubeadmFound, r.KubeadmDir)
	}
	var names []string
	for _, f := range r.Files {
		names = append(names, f.File.Name)
	}
	want := append(append([]string{}, kubeadmOrder...), FileKubeletClient, FileKubeletServing)
	if len(names) != len(want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("files %v, want %v (kubeadm's order, then the kubelet's)", names, want)
		}
	}
	cases := map[string]struct {
		path, set, authority, renewedBy string
		ca                              bool
		file                            string // whose leaf is the fingerprint, under the root
	}{
		"apiserver":               {"/etc/kubernetes/pki/apiserver.crt", api.FileSetKubeadm, "ca", api.RenewedByKubeadm, false, "etc/kubernetes/pki/apiserver.crt"},
		"etcd-peer":               {"/etc/kubernetes/pki/etcd/peer.crt", api.FileSetKubeadm, "etcd-ca", api.RenewedByKubeadm, false, "etc/kubernetes/pki/etcd/peer.crt"},
		"front-proxy-client":      {"/etc/kubernetes/pki/front-proxy-client.crt", api.FileSetKubeadm, "front-proxy-ca", api.RenewedByKubeadm, false, "etc/kubernetes/pki/front-proxy-client.crt"},
		"etcd-ca":                 {"/etc/kubernetes/pki/etcd/ca.crt", api.FileSetKubeadm, "", api.RenewedByNobody, true, "etc/kubernetes/pki/etcd/ca.crt"},
		"kubelet.conf":            {"/etc/kubernetes/kubelet.conf", api.FileSetKubeadm, "ca", api.RenewedByKubelet, false, "var/lib/kubelet/pki/kubelet-client-2026-11-28-06-00-00.pem"},
		FileKubeletClient:         {"/var/lib/kubelet/pki/kubelet-client-current.pem", api.FileSetKubelet, "ca", api.RenewedByKubelet, false, "var/lib/kubelet/pki/kubelet-client-2026-11-28-06-00-00.pem"},
		FileKubeletServing:        {"/var/lib/kubelet/pki/kubelet.crt", api.FileSetKubelet, "", api.RenewedByNobody, false, "var/lib/kubelet/pki/kubelet.crt"},
		"controller-manager.conf": {"/etc/kubernetes/controller-manager.conf", api.FileSetKubeadm, "ca", api.RenewedByKubeadm, false, ""},
	}
	for name, c := range cases {
		f := fileByName(t, r.Files, name)
		if f.Path != c.path || f.Set != c.set || f.Authority != c.authority || f.RenewedBy != c.renewedBy || f.CertificateAuthority != c.ca || f.ExternallyManaged {
			t.Errorf("%s: %+v, want path %s set %s authority %q renewedBy %s ca %v", name, f, c.path, c.set, c.authority, c.renewedBy, c.ca)
		}
		if c.file != "" {
			if fp := fingerprintOf(t, n.read(c.file)); f.Fingerprint != fp {
				t.Errorf("%s: fingerprint %s, want the leaf of %s, %s", name, f.Fingerprint, c.file, fp)
			}
		}
		if f.Subject == "" || f.NotAfter.IsZero() || f.NotBefore.IsZero() {
			t.Errorf("%s: subject or validity missing: %+v", name, f)
		}
	}
	if f := fileByName(t, r.Files, "controller-manager.conf"); f.Subject != "CN=system:kube-controller-manager" {
		t.Errorf("controller-manager.conf stands for its client certificate, not its CA: subject %s", f.Subject)
	}

	// Since: the modification time the first time; kept while the fingerprint stays; now when it changed.
	fi, err := os.Stat(n.path("etc/kubernetes/pki/apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	first := Since(r.Files, nil, time.Time{}, t0)
	api0 := first[5]
	if api0.Name != "apiserver" || !api0.Since.Time.Equal(fi.ModTime().UTC().Truncate(time.Second)) {
		t.Errorf("first since of %s is %s, want the file's modification time %s", api0.Name, api0.Since, fi.ModTime())
	}
	n.renew("apiserver")
	t1 := t0.Add(time.Hour)
	second := Since(Scan(ScanOptions{HostRoot: n.root}).Files, first, t0, t1)
	for i := range second {
		f := second[i]
		switch {
		case f.Name == "apiserver" && !f.Since.Time.Equal(t1):
			t.Errorf("renewed apiserver: since %s, want the scan's time %s", f.Since, t1)
		case f.Name != "apiserver" && !f.Since.Equal(&first[i].Since):
			t.Errorf("%s did not change but its since moved from %s to %s", f.Name, first[i].Since, f.Since)
		}
	}

	// A CA whose key is elsewhere: kubeadm cannot renew what it signs.
	if err := os.Remove(n.path("etc/kubernetes/pki/front-proxy-ca.key")); err != nil {
		t.Fatal(err)
	}
	r = Scan(ScanOptions{HostRoot: n.root})
	for _, name := range []string{"front-proxy-ca", "front-proxy-client"} {
		if f := fileByName(t, r.Files, name); !f.ExternallyManaged || f.RenewedBy != api.RenewedByExternal {
			t.Errorf("%s without front-proxy-ca.key: externallyManaged %v renewedBy %s", name, f.ExternallyManaged, f.RenewedBy)
		}
	}
	if f := fileByName(t, r.Files, "apiserver"); f.ExternallyManaged {
		t.Errorf("apiserver is signed by ca, whose key is there: %+v", f)
	}
}

func TestScanReportsWhatItCannotRead(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "etc/kubernetes/pki/apiserver.crt"), "not a certificate")
	mustWrite(t, filepath.Join(root, "var/lib/kubelet/pki/kubelet.crt"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	mustWrite(t, filepath.Join(root, "etc/ssl/etcd/member.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	r := Scan(ScanOptions{HostRoot: root, EtcdCertDir: "/etc/ssl/etcd"})
	if r.KubeadmFound {
		t.Error("a folder whose only file is not a certificate is not a kubeadm folder that was read")
	}
	paths := map[string]bool{}
	for _, p := range r.Problems {
		paths[p.Path] = true
		if p.Message == "" {
			t.Errorf("problem without a message: %+v", p)
		}
	}
	for _, want := range []string{"/etc/kubernetes/pki/apiserver.crt", "/var/lib/kubelet/pki/kubelet.crt", "/etc/ssl/etcd/member.pem"} {
		if !paths[want] {
			t.Errorf("no problem for %s (host path, without the root) in %+v", want, r.Problems)
		}
	}
	if len(r.Files) != 0 {
		t.Errorf("files %+v", r.Files)
	}
}

func TestScanReadsAnExternalEtcdFolder(t *testing.T) {
	root := t.TempDir()
	ca, caKey := selfSignedCA(t, "etcd-ca")
	leaf, key := issue(t, ca, caKey, "member-1", nil)
	mustWrite(t, filepath.Join(root, "etc/ssl/etcd/ssl/ca.pem"), string(pemCert(ca.Raw)))
	mustWrite(t, filepath.Join(root, "etc/ssl/etcd/ssl/member-1.pem"), string(leaf))
	mustWrite(t, filepath.Join(root, "etc/ssl/etcd/ssl/member-1-key.pem"), string(key))
	r := Scan(ScanOptions{HostRoot: root, EtcdCertDir: "/etc/ssl/etcd"})
	if len(r.Files) != 2 {
		t.Fatalf("files %+v problems %+v", r.Files, r.Problems)
	}
	got := map[string]api.NodeCertificateFile{}
	for _, f := range r.Files {
		got[f.File.Name] = f.File
	}
	if f := got["etcd/ssl/ca.pem"]; !f.CertificateAuthority || f.Set != api.FileSetEtcd || f.RenewedBy != api.RenewedByExternal || f.Path != "/etc/ssl/etcd/ssl/ca.pem" {
		t.Errorf("ca.pem: %+v", f)
	}
	if f := got["etcd/ssl/member-1.pem"]; f.CertificateAuthority || f.Subject != "CN=member-1" || f.RenewedBy != api.RenewedByExternal {
		t.Errorf("member-1.pem: %+v", f)
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
