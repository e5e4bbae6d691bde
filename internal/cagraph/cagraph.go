// Package cagraph finds which cert-manager CA issuers sign which Certificates, and which of those leaves
// no longer chain to their issuer's current CA certificate (design/2026-11-24-ca-rotation.md). It is pure:
// the caller reads the issuers, Certificates and Secrets, Build decides. check and plan show the graph;
// the CA cascade will re-issue the leaves it reports as not current.
//
// The verdict is level-based: it compares each leaf with the CA certificate in the issuer's Secret now,
// so it needs no record of the CA seen before and reaches the same answer after any restart.
package cagraph

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/certs"
)

// Status says whether a leaf chains to its issuer's current CA certificate.
type Status string

// The statuses of a leaf, as the design note defines them.
const (
	// Current: the leaf names the CA's key, its signature verifies with the CA's current certificate, and
	// it was issued at or after that certificate.
	Current Status = "Current"
	// IssuedUnderPreviousCA: the signature verifies (the CA kept its key on renewal) but the leaf was
	// issued before the CA's current certificate: its Secret's ca.crt still carries the old CA.
	IssuedUnderPreviousCA Status = "IssuedUnderPreviousCA"
	// NotSignedByCurrentCA: the leaf names another key than the CA's, or its signature does not verify
	// with the CA's current certificate (the CA key rotated, or the issuer points at another CA).
	NotSignedByCurrentCA Status = "NotSignedByCurrentCA"
	// NotIssued: the Certificate's Secret does not exist or holds no certificate yet.
	NotIssued Status = "NotIssued"
	// Unknown: the issuer's CA certificate could not be read (see Issuer.Problem), so the leaf cannot be
	// judged.
	Unknown Status = "Unknown"
)

// NeedsReissue reports whether a leaf with this status has a certificate that its issuer's current CA
// did not issue: the leaves the cascade re-issues and check counts as a warning.
func (s Status) NeedsReissue() bool {
	return s == IssuedUnderPreviousCA || s == NotSignedByCurrentCA
}

// IssuerRef names an Issuer (Namespace set) or a ClusterIssuer (Namespace empty).
type IssuerRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String reads like "Issuer shop/ca" or "ClusterIssuer root".
func (r IssuerRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// CAIssuer is an Issuer or ClusterIssuer of the CA type, as Build needs it.
type CAIssuer struct {
	IssuerRef
	// Secret is the CA Secret: spec.ca.secretName, in the Issuer's namespace or, for a ClusterIssuer,
	// cert-manager's cluster resource namespace.
	Secret types.NamespacedName
	// Cascade is the certrollout.io/cascade annotation.
	Cascade bool
	Ready   bool
}

// Issuers returns the CA issuers among issuers and clusterIssuers (other types have no CA Secret), their
// ClusterIssuers' Secrets in clusterResourceNamespace.
func Issuers(issuers []certmanager.Issuer, clusterIssuers []certmanager.ClusterIssuer, clusterResourceNamespace string) []CAIssuer {
	var out []CAIssuer
	for i := range issuers {
		is := &issuers[i]
		if is.Spec.CA == nil {
			continue
		}
		out = append(out, CAIssuer{
			IssuerRef: IssuerRef{Kind: certmanager.KindIssuer, Namespace: is.Namespace, Name: is.Name},
			Secret:    types.NamespacedName{Namespace: is.Namespace, Name: is.Spec.CA.SecretName},
			Cascade:   is.Annotations[api.AnnotationCascade] == "true", Ready: is.Status.Ready(),
		})
	}
	for i := range clusterIssuers {
		is := &clusterIssuers[i]
		if is.Spec.CA == nil {
			continue
		}
		out = append(out, CAIssuer{
			IssuerRef: IssuerRef{Kind: certmanager.KindClusterIssuer, Name: is.Name},
			Secret:    types.NamespacedName{Namespace: clusterResourceNamespace, Name: is.Spec.CA.SecretName},
			Cascade:   is.Annotations[api.AnnotationCascade] == "true", Ready: is.Status.Ready(),
		})
	}
	return out
}

// IssuerOf is the issuer a Certificate's spec.issuerRef names; ok is false for external issuers (another
// group than cert-manager.io). The kind defaults to Issuer, as in cert-manager.
func IssuerOf(c *certmanager.Certificate) (ref IssuerRef, ok bool) {
	r := c.Spec.IssuerRef
	if r.Group != "" && r.Group != certmanager.GroupVersion.Group {
		return IssuerRef{}, false
	}
	switch r.Kind {
	case "", certmanager.KindIssuer:
		return IssuerRef{Kind: certmanager.KindIssuer, Namespace: c.Namespace, Name: r.Name}, true
	case certmanager.KindClusterIssuer:
		return IssuerRef{Kind: certmanager.KindClusterIssuer, Name: r.Name}, true
	}
	return IssuerRef{}, false
}

// Input is everything Build reads.
type Input struct {
	Issuers []CAIssuer
	// Certificates are cert-manager Certificates; those whose issuer is not among Issuers are ignored.
	Certificates []certmanager.Certificate
	// Secrets holds, for each Secret that exists among those SecretsNeeded names, its tls.crt (nil when
	// it has none). Only CERTIFICATE blocks are read: reduced (cached) Secrets will do.
	Secrets map[types.NamespacedName][]byte
	// Unreadable holds the Secrets that could not be read, and why (Forbidden).
	Unreadable map[types.NamespacedName]string
}

// SecretsNeeded are the Secrets Build reads for these issuers and Certificates: each CA Secret, and the
// Secret of each Certificate one of the issuers signs. The gatherer reads only these.
func SecretsNeeded(issuers []CAIssuer, certificates []certmanager.Certificate) []types.NamespacedName {
	known := map[IssuerRef]bool{}
	var out []types.NamespacedName
	for _, is := range issuers {
		known[is.IssuerRef] = true
		out = append(out, is.Secret)
	}
	for i := range certificates {
		c := &certificates[i]
		if ref, ok := IssuerOf(c); ok && known[ref] && c.Spec.SecretName != "" {
			out = append(out, types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.SecretName})
		}
	}
	slices.SortFunc(out, compareNames)
	return slices.Compact(out)
}

// Graph is the CA issuers and their leaves.
type Graph struct {
	// Issuers are sorted by kind (ClusterIssuers first), namespace and name.
	Issuers []Issuer
}

// Issuer is one CA issuer with its CA certificate and the leaves it signs.
type Issuer struct {
	CAIssuer
	// CA is the certificate in the CA Secret's tls.crt (the first: cert-manager signs with it); nil when
	// Problem says why there is none.
	CA      *certs.Certificate
	Problem string
	// Leaves are the Certificates that name this issuer, sorted by namespace and name.
	Leaves []Leaf
}

// Leaf is one cert-manager Certificate signed by a CA issuer.
type Leaf struct {
	// Certificate names the cert-manager Certificate; Secret its spec.secretName.
	Certificate types.NamespacedName
	Secret      types.NamespacedName
	// Leaf is the first certificate of the Secret's tls.crt; nil when not issued.
	Leaf   *certs.Certificate
	Status Status
	// Message says why the leaf is not current (empty when it is).
	Message string
}

// NotCurrent counts the leaves that need re-issuing.
func (is *Issuer) NotCurrent() int {
	n := 0
	for _, l := range is.Leaves {
		if l.Status.NeedsReissue() {
			n++
		}
	}
	return n
}

// LeafOfSecret finds the leaf written to the Secret and its issuer; nil when no CA issuer signs it.
func (g *Graph) LeafOfSecret(secret types.NamespacedName) (*Issuer, *Leaf) {
	if g == nil {
		return nil, nil
	}
	for i := range g.Issuers {
		is := &g.Issuers[i]
		for j := range is.Leaves {
			if is.Leaves[j].Secret == secret {
				return is, &is.Leaves[j]
			}
		}
	}
	return nil, nil
}

// Build links each Certificate to the CA issuer it names and judges its leaf against the CA's current
// certificate.
func Build(in Input) Graph {
	g := Graph{}
	index := map[IssuerRef]int{}
	cas := map[IssuerRef]*x509.Certificate{}
	for _, ci := range in.Issuers {
		is := Issuer{CAIssuer: ci}
		facts, x, err := firstCertificate(in, ci.Secret)
		switch {
		case err != nil:
			is.Problem = fmt.Sprintf("CA Secret %s: %v", ci.Secret, err)
		default:
			is.CA = facts
			cas[ci.IssuerRef] = x
		}
		index[ci.IssuerRef] = len(g.Issuers)
		g.Issuers = append(g.Issuers, is)
	}
	for i := range in.Certificates {
		c := &in.Certificates[i]
		ref, ok := IssuerOf(c)
		if !ok {
			continue
		}
		n, ok := index[ref]
		if !ok {
			continue
		}
		is := &g.Issuers[n]
		leaf := Leaf{
			Certificate: types.NamespacedName{Namespace: c.Namespace, Name: c.Name},
			Secret:      types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.SecretName},
		}
		facts, x, err := firstCertificate(in, leaf.Secret)
		switch {
		case err != nil:
			leaf.Status, leaf.Message = NotIssued, fmt.Sprintf("Secret %s: %v", leaf.Secret, err)
		case is.CA == nil:
			leaf.Leaf = facts
			leaf.Status, leaf.Message = Unknown, "the issuer's CA certificate cannot be read: "+is.Problem
		default:
			leaf.Leaf = facts
			leaf.Status, leaf.Message = judge(facts, x, is.CA, cas[ref])
		}
		is.Leaves = append(is.Leaves, leaf)
	}
	for i := range g.Issuers {
		slices.SortFunc(g.Issuers[i].Leaves, func(a, b Leaf) int { return compareNames(a.Certificate, b.Certificate) })
	}
	slices.SortFunc(g.Issuers, func(a, b Issuer) int {
		return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name, b.Kind+"\x00"+b.Namespace+"\x00"+b.Name)
	})
	return g
}

// judge applies the design note's two conditions, the key and signature first: a leaf signed by another
// key is NotSignedByCurrentCA whatever its dates.
func judge(leaf *certs.Certificate, leafX *x509.Certificate, ca *certs.Certificate, caX *x509.Certificate) (Status, string) {
	if !NamesKey(leaf, ca) {
		if leaf.AuthorityKeyID != "" && ca.SubjectKeyID != "" {
			return NotSignedByCurrentCA, fmt.Sprintf("its authority key ID %s is not the CA's subject key ID %s: signed by another CA key", shortID(leaf.AuthorityKeyID), shortID(ca.SubjectKeyID))
		}
		return NotSignedByCurrentCA, fmt.Sprintf("its issuer %q is not the CA's subject %q", leaf.Issuer, ca.Subject)
	}
	if err := leafX.CheckSignatureFrom(caX); err != nil {
		return NotSignedByCurrentCA, fmt.Sprintf("its signature does not verify with the CA's current certificate: %v", err)
	}
	if leaf.NotBefore.Before(ca.NotBefore) {
		return IssuedUnderPreviousCA, fmt.Sprintf("issued %s, before the CA's current certificate (%s): the CA was renewed with the same key",
			leaf.NotBefore.UTC().Format(time.RFC3339), ca.NotBefore.UTC().Format(time.RFC3339))
	}
	return Current, ""
}

// NamesKey reports whether leaf names ca's key: its authority key ID is ca's subject key ID, or, when
// either ID is absent, its issuer DN is ca's subject.
func NamesKey(leaf, ca *certs.Certificate) bool {
	if leaf.AuthorityKeyID != "" && ca.SubjectKeyID != "" {
		return leaf.AuthorityKeyID == ca.SubjectKeyID
	}
	return leaf.Issuer == ca.Subject
}

var (
	errNotFound      = errors.New("not found")
	errNoCertificate = errors.New("holds no certificate in " + corev1.TLSCertKey)
)

// firstCertificate parses the first certificate of the Secret's tls.crt: the leaf of an issued
// Certificate, or the signing certificate of a CA Secret.
func firstCertificate(in Input, name types.NamespacedName) (*certs.Certificate, *x509.Certificate, error) {
	if why, ok := in.Unreadable[name]; ok {
		return nil, nil, errors.New(why)
	}
	data, ok := in.Secrets[name]
	if !ok {
		return nil, nil, errNotFound
	}
	var der []byte
	err := certs.EachBlock(data, func(b *pem.Block, _, _ int) error {
		if der == nil && b.Type == "CERTIFICATE" {
			der = b.Bytes
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", corev1.TLSCertKey, err)
	}
	if der == nil {
		return nil, nil, errNoCertificate
	}
	bundle, err := certs.Parse(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", corev1.TLSCertKey, err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", corev1.TLSCertKey, err)
	}
	return &bundle.Certificates[0], x, nil
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

func compareNames(a, b types.NamespacedName) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}
