package staticpod

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// kubeletPKIDir is the host path of the kubelet's certificates.
const kubeletPKIDir = "/var/lib/kubelet/pki"

// KubeletClientCurrent is the host path of the kubelet's current client certificate and key, which
// kubelet.conf names after kubeadm's kubelet-finalize phase.
const KubeletClientCurrent = kubeletPKIDir + "/kubelet-client-current.pem"

// serveKubeletPort listens on the kubelet's port with the kubelet's serving certificate, generating it the
// way a kubelet without --tls-cert-file does when it is absent. Only /healthz is served: what matters to
// certificate tools is the certificate the port presents.
func (r *Runner) serveKubeletPort() (*http.Server, error) {
	crt := r.cfg.hostPath(filepath.Join(kubeletPKIDir, "kubelet.crt"))
	key := r.cfg.hostPath(filepath.Join(kubeletPKIDir, "kubelet.key"))
	if _, err := os.Stat(crt); errors.Is(err, os.ErrNotExist) {
		if err := writeKubeletServingCert(crt, key, r.cfg.NodeName, net.ParseIP(r.cfg.NodeIP), time.Now()); err != nil {
			return nil, fmt.Errorf("generating the kubelet serving certificate: %w", err)
		}
	}
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("loading the kubelet serving certificate: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	l, err := net.Listen("tcp", net.JoinHostPort(r.cfg.NodeIP, strconv.Itoa(r.cfg.KubeletPort)))
	if err != nil {
		return nil, fmt.Errorf("listening on the kubelet port: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	go func() {
		if err := srv.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error(err, "Kubelet port stopped serving")
		}
	}()
	return srv, nil
}

// writeKubeletServingCert writes what the kubelet writes when it has no serving certificate: a CA named
// "<host>-ca@<unix time>" and a serving certificate "<host>@<unix time>" signed by it, valid for a year,
// both in kubelet.crt (leaf first), and the leaf's key in kubelet.key.
func writeKubeletServingCert(crtPath, keyPath, host string, ip net.IP, now time.Time) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	stamp := strconv.FormatInt(now.Unix(), 10)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host + "-ca@" + stamp},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host + "@" + stamp},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{host}, IPAddresses: []net.IP{ip},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(crtPath), 0o750); err != nil {
		return err
	}
	certs := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(crtPath, certs, 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// finalizeKubeletClient does what kubeadm's kubelet-finalize phase leaves on a node: the client
// certificate and key embedded in kubelet.conf move to kubelet-client-<timestamp>.pem, the symlink
// kubelet-client-current.pem names that file, and kubelet.conf refers to the symlink. A kubelet.conf
// that already refers to a file is left alone (a restarted runner, or a node finalized earlier).
func finalizeKubeletClient(kubeconfig, hostRoot string, now time.Time) error {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return err
	}
	changed := false
	for _, a := range cfg.AuthInfos {
		if len(a.ClientCertificateData) == 0 || len(a.ClientKeyData) == 0 {
			continue
		}
		dir := filepath.Join(hostRoot, kubeletPKIDir)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		name := "kubelet-client-" + now.UTC().Format("2006-01-02-15-04-05") + ".pem"
		pemData := append(append([]byte{}, a.ClientCertificateData...), a.ClientKeyData...)
		if err := os.WriteFile(filepath.Join(dir, name), pemData, 0o600); err != nil {
			return err
		}
		link := filepath.Join(dir, filepath.Base(KubeletClientCurrent))
		_ = os.Remove(link)
		// Relative, unlike the kubelet's absolute link: it resolves both on the node's host path and
		// under the node's root folder on this machine.
		if err := os.Symlink(name, link); err != nil {
			return err
		}
		a.ClientCertificateData, a.ClientKeyData = nil, nil
		a.ClientCertificate, a.ClientKey = KubeletClientCurrent, KubeletClientCurrent
		changed = true
	}
	if !changed {
		return nil
	}
	return clientcmd.WriteToFile(*cfg, kubeconfig)
}
