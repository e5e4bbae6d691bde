package kubeadmrenew

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"slices"
	"time"

	"k8s.io/client-go/util/keyutil"
)

// keyGenerator returns what makes a new key: of the kubeadm encryption algorithm alg, or, when alg is
// empty, of current's type and size.
func keyGenerator(alg string, current crypto.PublicKey) (func() (crypto.Signer, error), error) {
	rsaKey := func(bits int) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
	}
	ecKey := func(c elliptic.Curve) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
	}
	switch alg {
	case "RSA-2048":
		return rsaKey(2048), nil
	case "RSA-3072":
		return rsaKey(3072), nil
	case "RSA-4096":
		return rsaKey(4096), nil
	case "ECDSA-P256":
		return ecKey(elliptic.P256()), nil
	case "ECDSA-P384":
		return ecKey(elliptic.P384()), nil
	case "":
	default:
		return nil, fmt.Errorf("unknown key algorithm %q (kubeadm's encryptionAlgorithm: RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384)", alg)
	}
	switch k := current.(type) {
	case *rsa.PublicKey:
		return rsaKey(k.N.BitLen()), nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return ecKey(k.Curve), nil
		}
	}
	return nil, fmt.Errorf("current key is %T: not one kubeadm makes; set the key algorithm", current)
}

// sameKey reports whether a and b are the same public key.
func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// parseCertificate is the first certificate of PEM data.
func parseCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// parseKey is the private key of PEM data (PKCS #1, SEC 1 or PKCS #8).
func parseKey(data []byte) (crypto.Signer, error) {
	k, err := keyutil.ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a signing key", k)
	}
	return s, nil
}

func encodeCertificate(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// issue signs, with the CA, the certificate kubeadm makes in place of old for key, at start (the start of
// the run: every file of a run gets the same NotBefore, as kubeadm's do). kubeadm keeps of the old
// certificate only the common name, organisations, DNS names (sorted, without duplicates), IP addresses
// and extended key usages; the rest is fixed: digital signature and key encipherment, not a CA, no
// subject key ID (the authority key ID is the CA's), a random serial, NotBefore backdated, NotAfter
// start+validity. It is not capped at the CA's NotAfter.
func issue(old, caCert *x509.Certificate, caKey crypto.Signer, key crypto.Signer, start time.Time, validity time.Duration) (*x509.Certificate, error) {
	if old.Subject.CommonName == "" {
		return nil, errors.New("the certificate has no common name")
	}
	if len(old.ExtKeyUsage) == 0 {
		return nil, errors.New("the certificate has no extended key usage")
	}
	// Uniform in [1, MaxInt64), as kubeadm draws it.
	serial, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt64-1))
	if err != nil {
		return nil, err
	}
	serial.Add(serial, big.NewInt(1))
	dns := slices.Clone(old.DNSNames)
	slices.Sort(dns)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: old.Subject.CommonName, Organization: old.Subject.Organization},
		DNSNames:              slices.Compact(dns),
		IPAddresses:           uniqueIPs(old.IPAddresses),
		SerialNumber:          serial,
		NotBefore:             start.UTC().Add(-Backdate),
		NotAfter:              start.UTC().Add(validity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           old.ExtKeyUsage,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// uniqueIPs drops repeated addresses, keeping the first of each in order.
func uniqueIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}
