// Package testgen builds test objects: certificate chains here, Kubernetes objects with functional
// options elsewhere. Tests and the benchmark import it; nothing that ships does.
package testgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// TB is the part of testing.TB the builders use, so that the benchmark (not a test) can use them too.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Cert is a generated certificate with its key.
type Cert struct {
	X509 *x509.Certificate
	DER  []byte
	Key  crypto.Signer
}

// PEM is the certificate in PEM.
func (c *Cert) PEM() []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}) }

// KeyPEM is the private key in PEM (PKCS#8).
func (c *Cert) KeyPEM(t TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CertOption adjusts a certificate template.
type CertOption func(*x509.Certificate)

// WithValidity sets notBefore and notAfter.
func WithValidity(notBefore, notAfter time.Time) CertOption {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// WithDNSNames sets the DNS SANs.
func WithDNSNames(names ...string) CertOption {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

// WithIPs sets the IP SANs.
func WithIPs(ips ...string) CertOption {
	return func(c *x509.Certificate) {
		for _, ip := range ips {
			c.IPAddresses = append(c.IPAddresses, net.ParseIP(ip))
		}
	}
}

// WithSubjectKeyID sets the subject key ID instead of deriving it from the key: a CA that claims another
// CA's key ID, whose leaves name the right ID yet do not verify.
func WithSubjectKeyID(id []byte) CertOption {
	return func(c *x509.Certificate) { c.SubjectKeyId = id }
}

// CA generates a self-signed CA certificate valid from an hour ago for a year.
func CA(t TB, cn string, opts ...CertOption) *Cert {
	t.Helper()
	return issue(t, caTemplate(cn), nil, nil, opts)
}

// RenewCA re-issues a self-signed CA with the same subject and the same key, as cert-manager renews a CA
// Certificate with privateKey.rotationPolicy Never (the default before v1.18): a new certificate whose
// leaves' signatures and key IDs still match the old one's.
func RenewCA(t TB, ca *Cert, opts ...CertOption) *Cert {
	t.Helper()
	tmpl := caTemplate(ca.X509.Subject.CommonName)
	return issue(t, tmpl, nil, ca.Key, opts)
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// Leaf generates a server certificate signed by ca, valid from an hour ago for 90 days.
func Leaf(t TB, ca *Cert, cn string, opts ...CertOption) *Cert {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{cn},
	}
	return issue(t, tmpl, ca, nil, opts)
}

// issue signs tmpl with parent (nil: self-signed) for key (nil: a new P-256 key).
func issue(t TB, tmpl *x509.Certificate, parent *Cert, key crypto.Signer, opts []CertOption) *Cert {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(90*24*time.Hour)
	if tmpl.IsCA {
		tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	for _, o := range opts {
		o(tmpl)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if key == nil {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.X509, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{X509: x, DER: der, Key: key}
}

// Concat joins PEM blobs into one bundle.
func Concat(blobs ...[]byte) []byte {
	var out []byte
	for _, b := range blobs {
		out = append(out, b...)
	}
	return out
}

// CertManagerChain is cert-manager YAML for namespace ns: a self-signed Issuer, a CA Certificate "ca",
// a CA Issuer "ca" and a leaf Certificate named leaf writing Secret secret. renewBefore may be empty.
func CertManagerChain(ns, leaf, secret, duration, renewBefore string) string {
	renew := ""
	if renewBefore != "" {
		renew = ", renewBefore: " + renewBefore
	}
	return `apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: selfsigned, namespace: ` + ns + `}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ca, namespace: ` + ns + `}
spec: {isCA: true, commonName: test-ca, secretName: ca, issuerRef: {name: selfsigned, kind: Issuer}}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: ca, namespace: ` + ns + `}
spec: {ca: {secretName: ca}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + leaf + `, namespace: ` + ns + `}
spec: {secretName: ` + secret + `, commonName: ` + leaf + `, dnsNames: [` + leaf + `], duration: ` + duration + renew + `, issuerRef: {name: ca, kind: Issuer}}
`
}
