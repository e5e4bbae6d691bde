package kubeadmrenew

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/certrollout/certrollout/internal/certs"
)

// onDisk is one renewable file of a folder as the tests read it: its certificate, the public half of its
// key, its content and mode, and a kubeconfig's content.
type onDisk struct {
	cert              *x509.Certificate
	pub               crypto.PublicKey
	data, keyData     []byte
	mode, keyMode     fs.FileMode
	config            *clientcmdapi.Config
	keyType, certPath string
}

// readOnDisk reads the file kubeadm calls name in dir; nil when it is missing.
func readOnDisk(t *testing.T, dir, name string) *onDisk {
	t.Helper()
	var kubeconfig bool
	for _, r := range renewable {
		if r.name == name {
			kubeconfig = r.kubeconfig
		}
	}
	rel, keyRel := paths(name, kubeconfig)
	d := &onDisk{certPath: filepath.Join(dir, rel)}
	var err error
	if d.data, d.mode, err = readMode(d.certPath); os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	if kubeconfig {
		if d.config, err = clientcmd.Load(d.data); err != nil {
			t.Fatal(err)
		}
		u := d.config.AuthInfos[d.config.Contexts[d.config.CurrentContext].AuthInfo]
		d.data, d.keyData = u.ClientCertificateData, u.ClientKeyData
	} else if d.keyData, d.keyMode, err = readMode(filepath.Join(dir, keyRel)); err != nil {
		t.Fatal(err)
	}
	if d.cert, err = parseCertificate(d.data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	key, err := parseKey(d.keyData)
	if err != nil {
		t.Fatalf("%s key: %v", name, err)
	}
	d.pub = key.Public()
	d.keyType = keyDescription(d.pub)
	return d
}

func readMode(path string) ([]byte, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(path) //nolint:gosec // the test's own folder
	return data, fi.Mode().Perm(), err
}

// keyDescription is a public key's algorithm and size ("RSA 2048", "ECDSA P-256").
func keyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("%T", pub)
}

// matches reports whether the file's certificate is for its key.
func (d *onDisk) matches() bool { return sameKey(d.cert.PublicKey, d.pub) }

// fingerprints are the certificates of every renewable file in dir, by name (missing ones absent).
func fingerprints(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range Names() {
		if d := readOnDisk(t, dir, name); d != nil {
			out[name] = certs.FromX509(d.cert).Fingerprint
		}
	}
	return out
}
