// Package certs reads X.509 certificates out of the bytes Kubernetes objects and files hold (PEM bundles
// such as tls.crt, ca.crt and CA bundles, or single DER certificates) and reduces each to the facts
// certrollout reasons about. It is pure: no clients, no clock. Private keys and other non-certificate
// blocks are counted and dropped, never decoded or kept.
package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Certificate is what certrollout knows about one certificate.
type Certificate struct {
	// Fingerprint is the hex SHA-256 of the DER encoding: the certificate's identity.
	Fingerprint    string    `json:"fingerprint"`
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	SerialNumber   string    `json:"serialNumber"` // hex
	DNSNames       []string  `json:"dnsNames,omitempty"`
	IPAddresses    []string  `json:"ipAddresses,omitempty"`
	URIs           []string  `json:"uris,omitempty"`
	EmailAddresses []string  `json:"emailAddresses,omitempty"`
	NotBefore      time.Time `json:"notBefore"`
	NotAfter       time.Time `json:"notAfter"`
	IsCA           bool      `json:"isCA"`
	SubjectKeyID   string    `json:"subjectKeyID,omitempty"`   // hex
	AuthorityKeyID string    `json:"authorityKeyID,omitempty"` // hex
}

// SelfSigned reports whether the certificate names itself as issuer (a root, or a self-signed leaf).
func (c *Certificate) SelfSigned() bool {
	if c.AuthorityKeyID != "" && c.SubjectKeyID != "" {
		return c.AuthorityKeyID == c.SubjectKeyID
	}
	return c.Subject == c.Issuer
}

// Bundle is the certificates found in one blob, in the order they appear.
type Bundle struct {
	Certificates []Certificate `json:"certificates"`
	// Skipped counts PEM blocks that are not certificates (private keys, CSRs, parameters).
	Skipped int `json:"skipped,omitempty"`
}

// Leaf returns the first certificate that is not a CA, or else the first certificate; nil if empty. In
// a tls.crt the leaf comes first and its chain follows.
func (b *Bundle) Leaf() *Certificate {
	for i := range b.Certificates {
		if !b.Certificates[i].IsCA {
			return &b.Certificates[i]
		}
	}
	if len(b.Certificates) > 0 {
		return &b.Certificates[0]
	}
	return nil
}

// Fingerprints returns the fingerprints of all certificates, sorted and without duplicates.
func (b *Bundle) Fingerprints() []string {
	fps := make([]string, 0, len(b.Certificates))
	for _, c := range b.Certificates {
		fps = append(fps, c.Fingerprint)
	}
	slices.Sort(fps)
	return slices.Compact(fps)
}

// FirstToExpire returns the certificate of the bundle that expires first; nil for an empty bundle.
func (b *Bundle) FirstToExpire() *Certificate {
	var first *Certificate
	for i := range b.Certificates {
		if first == nil || b.Certificates[i].NotAfter.Before(first.NotAfter) {
			first = &b.Certificates[i]
		}
	}
	return first
}

// ErrNoCertificate means the input holds no certificate at all.
var ErrNoCertificate = errors.New("no certificate found")

// ParseError says which part of the input is malformed and why.
type ParseError struct {
	Block int // 1-based index of the PEM block; 0 for DER input
	Line  int // line where the block starts; 0 for DER input
	Type  string
	Err   error
}

func (e *ParseError) Error() string {
	if e.Block == 0 {
		return fmt.Sprintf("DER certificate: %v", e.Err)
	}
	return fmt.Sprintf("PEM block %d (%s) at line %d: %v", e.Block, e.Type, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

var (
	pemBegin       = []byte("-----BEGIN ")
	pemEnd         = []byte("-----END ")
	pemCertificate = []byte("-----BEGIN CERTIFICATE-----")
)

// HasPEMCertificate is a cheap test for data worth parsing: it contains a PEM certificate header.
func HasPEMCertificate(data []byte) bool {
	return bytes.Contains(data, pemCertificate)
}

// HasPEMPrivateKey is a cheap test for a PEM private key (PKCS #8, PKCS #1, SEC 1, encrypted): it reads the
// headers only, never the key.
func HasPEMPrivateKey(data []byte) bool {
	for rest := data; ; {
		i := bytes.Index(rest, pemBegin)
		if i < 0 {
			return false
		}
		if strings.HasSuffix(blockType(rest[i:]), "PRIVATE KEY") {
			return true
		}
		rest = rest[i+len(pemBegin):]
	}
}

// KeyWithoutCertificate reports whether data holds a private key and no certificate: a key file, or a
// certificate file or Secret key filled with the wrong half of a pair.
func KeyWithoutCertificate(data []byte) bool {
	return !HasPEMCertificate(data) && HasPEMPrivateKey(data)
}

// NamedLikeKey reports whether a file or Secret key's name says it holds a private key (tls.key, ca.key,
// privkey.pem, tls-key.pem, server_key.pem): a key there is expected and not worth a word. Any other name
// holding only a key (tls.crt, ca.pem, server.pem) is where something expects a certificate.
func NamedLikeKey(name string) bool {
	base := strings.ToLower(name)
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		stem, ext = base[:i], base[i+1:]
	}
	return ext == "key" || strings.HasSuffix(stem, "key")
}

// EachBlock calls fn for every PEM block of data, in order, with its 1-based index and the line it
// starts on. Each block is cut out (BEGIN line to END line) and decoded on its own: pem.Decode alone
// would silently skip a malformed block when a valid one follows. A block that does not decode, or a
// BEGIN without END, stops the walk with a ParseError; so does an error from fn.
func EachBlock(data []byte, fn func(block *pem.Block, n, line int) error) error {
	rest := data
	line := 1 // the line rest starts on: counted as the walk goes, so it stays linear in len(data)
	for n := 1; ; n++ {
		start := bytes.Index(rest, pemBegin)
		if start < 0 {
			return nil
		}
		line += bytes.Count(rest[:start], []byte("\n"))
		seg := rest[start:]
		malformed := func(why string) error {
			return &ParseError{Block: n, Line: line, Type: blockType(seg), Err: errors.New(why)}
		}
		end := bytes.Index(seg, pemEnd)
		if end < 0 {
			return malformed("no END line")
		}
		eol := bytes.IndexByte(seg[end:], '\n')
		if eol < 0 {
			eol = len(seg) - end
		} else {
			eol++
		}
		block, _ := pem.Decode(seg[:end+eol])
		if block == nil {
			return malformed("malformed PEM encoding")
		}
		if err := fn(block, n, line); err != nil {
			return err
		}
		line += bytes.Count(seg[:end+eol], []byte("\n"))
		rest = seg[end+eol:]
	}
}

// ParsePEM reads every PEM block of data. CERTIFICATE blocks become Certificates; other block types are
// counted in Skipped without being decoded further. A block that cannot be decoded, or a CERTIFICATE that
// is not valid DER, is an error naming the block; data with no certificate returns ErrNoCertificate.
func ParsePEM(data []byte) (*Bundle, error) {
	b := &Bundle{}
	err := EachBlock(data, func(block *pem.Block, n, line int) error {
		if block.Type != "CERTIFICATE" {
			b.Skipped++
			return nil
		}
		c, err := fromDER(block.Bytes)
		if err != nil {
			return &ParseError{Block: n, Line: line, Type: block.Type, Err: err}
		}
		b.Certificates = append(b.Certificates, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(b.Certificates) == 0 {
		return b, ErrNoCertificate
	}
	return b, nil
}

// Parse reads PEM, or a single DER certificate when data holds no PEM at all (as .der and .cer files do).
func Parse(data []byte) (*Bundle, error) {
	if bytes.Contains(data, pemBegin) {
		return ParsePEM(data)
	}
	if len(data) == 0 || data[0] != 0x30 { // a DER certificate is an ASN.1 SEQUENCE
		return &Bundle{}, ErrNoCertificate
	}
	c, err := fromDER(data)
	if err != nil {
		return nil, &ParseError{Err: err}
	}
	return &Bundle{Certificates: []Certificate{c}}, nil
}

// blockType extracts the label of a PEM header for error messages, bounded so garbage cannot make it long.
func blockType(data []byte) string {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	label := strings.TrimSuffix(strings.TrimPrefix(string(line), string(pemBegin)), "-----")
	label = strings.TrimSpace(strings.TrimRight(label, "-\r"))
	if len(label) > 40 {
		label = label[:40] + "…"
	}
	if label == "" {
		return "unlabelled"
	}
	return label
}

func fromDER(der []byte) (Certificate, error) {
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return Certificate{}, err
	}
	return FromX509(x), nil
}

// FromX509 is a parsed certificate's summary; its Fingerprint is the SHA-256 of x.Raw.
func FromX509(x *x509.Certificate) Certificate {
	sum := sha256.Sum256(x.Raw)
	c := Certificate{
		Fingerprint:    hex.EncodeToString(sum[:]),
		Subject:        x.Subject.String(),
		Issuer:         x.Issuer.String(),
		SerialNumber:   x.SerialNumber.Text(16),
		DNSNames:       x.DNSNames,
		EmailAddresses: x.EmailAddresses,
		NotBefore:      x.NotBefore.UTC(),
		NotAfter:       x.NotAfter.UTC(),
		IsCA:           x.IsCA,
		SubjectKeyID:   hex.EncodeToString(x.SubjectKeyId),
		AuthorityKeyID: hex.EncodeToString(x.AuthorityKeyId),
	}
	for _, ip := range x.IPAddresses {
		c.IPAddresses = append(c.IPAddresses, ip.String())
	}
	for _, u := range x.URIs {
		c.URIs = append(c.URIs, u.String())
	}
	return c
}
