package cli

import (
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certrollout/certrollout/internal/testgen"
)

// The golden tests of check read committed certificates (testdata/kubeadm, testdata/files): generated
// keys are random, so certificates made at test time would change serials and fingerprints on every run.
// `go test ./internal/cli -run TestCheck -regenerate-fixtures -update` makes new ones (and new golden
// files). No private key is committed: the *.key files are placeholders, since check only looks at
// whether a CA's key exists (kubeadm's "externally managed").
var regenerateFixtures = flag.Bool("regenerate-fixtures", false, "rewrite testdata/kubeadm and testdata/files with new certificates")

// checkNow is the fixed clock of the disk golden tests: the fixtures' certificates expire between 6 days
// and 9 years after it.
var checkNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fixtureDay(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func writeFixture(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fixtureKubeconfig(ca, client *testgen.Cert, user string) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca.PEM()) + `
users:
- name: ` + user + `
  user:
    client-certificate-data: ` + base64.StdEncoding.EncodeToString(client.PEM()) + `
contexts:
- name: ` + user + `@kubernetes
  context: {cluster: kubernetes, user: ` + user + `}
current-context: ` + user + `@kubernetes
`)
}

// regenerateCheckFixtures writes a kubeadm-like /etc/kubernetes (three CAs, the serving and client
// certificates, kubeconfigs with embedded and referenced certificates; front-proxy-ca without its key, so
// externally managed) and a folder of loose files (a chain, a DER CA, a kubeconfig, a broken PEM).
func regenerateCheckFixtures(t *testing.T) {
	t.Helper()
	const key = "placeholder: certrollout check only tests that this file exists\n"
	root := filepath.Join("testdata", "kubeadm")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	validity := func(y int, m time.Month, d int) testgen.CertOption {
		return testgen.WithValidity(fixtureDay(2026, 1, 1), fixtureDay(y, m, d))
	}
	ca := testgen.CA(t, "kubernetes", validity(2035, 12, 30))
	etcdCA := testgen.CA(t, "etcd-ca", validity(2035, 12, 30))
	fpCA := testgen.CA(t, "front-proxy-ca", validity(2035, 12, 29))
	leaf := func(signer *testgen.Cert, cn string, y int, m time.Month, d int) *testgen.Cert {
		return testgen.Leaf(t, signer, cn, validity(y, m, d))
	}
	files := map[string][]byte{
		"pki/ca.crt":                       ca.PEM(),
		"pki/ca.key":                       []byte(key),
		"pki/apiserver.crt":                leaf(ca, "kube-apiserver", 2027, 1, 1).PEM(),
		"pki/apiserver-kubelet-client.crt": leaf(ca, "kube-apiserver-kubelet-client", 2027, 1, 2).PEM(),
		"pki/apiserver-etcd-client.crt":    leaf(etcdCA, "kube-apiserver-etcd-client", 2027, 1, 3).PEM(),
		"pki/front-proxy-ca.crt":           fpCA.PEM(),
		"pki/front-proxy-client.crt":       leaf(fpCA, "front-proxy-client", 2027, 1, 4).PEM(),
		"pki/etcd/ca.crt":                  etcdCA.PEM(),
		"pki/etcd/ca.key":                  []byte(key),
		"pki/etcd/server.crt":              leaf(etcdCA, "etcd-server", 2026, 12, 10).PEM(), // 15 days after checkNow
		"pki/etcd/peer.crt":                leaf(etcdCA, "etcd-peer", 2027, 1, 5).PEM(),
		"pki/etcd/healthcheck-client.crt":  leaf(etcdCA, "kube-etcd-healthcheck-client", 2027, 1, 6).PEM(),
		"admin.conf":                       fixtureKubeconfig(ca, leaf(ca, "kubernetes-admin", 2027, 1, 7), "kubernetes-admin"),
		"controller-manager.conf":          fixtureKubeconfig(ca, leaf(ca, "system:kube-controller-manager", 2027, 1, 8), "system:kube-controller-manager"),
		"scheduler.conf":                   fixtureKubeconfig(ca, leaf(ca, "system:kube-scheduler", 2027, 1, 9), "system:kube-scheduler"),
		// kubelet.conf references its rotating client certificate, as kubeadm writes it.
		"kubelet-client-current.pem": leaf(ca, "system:node:cp-1", 2026, 12, 20).PEM(),
		"kubelet.conf": []byte(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: ` + base64.StdEncoding.EncodeToString(ca.PEM()) + `}
users:
- name: system:node:cp-1
  user: {client-certificate: kubelet-client-current.pem}
`),
	}
	for p, data := range files {
		writeFixture(t, filepath.Join(root, p), data)
	}

	root = filepath.Join("testdata", "files")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	filesCA := testgen.CA(t, "files-root", validity(2030, 6, 1))
	web := testgen.Leaf(t, filesCA, "web.example.com", validity(2026, 12, 1)) // 6 days after checkNow
	dev := testgen.Leaf(t, filesCA, "dev-user", validity(2027, 6, 1))
	writeFixture(t, filepath.Join(root, "web.pem"), testgen.Concat(web.PEM(), filesCA.PEM()))
	writeFixture(t, filepath.Join(root, "root.der"), filesCA.DER)
	writeFixture(t, filepath.Join(root, "dev.kubeconfig"), fixtureKubeconfig(filesCA, dev, "dev-user"))
	writeFixture(t, filepath.Join(root, "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"))
}
