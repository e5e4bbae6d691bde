package cagraph

import (
	"strings"
	"testing"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/testgen"
)

func certificate(ns, name, secret string, ref certmanager.IssuerRef) certmanager.Certificate {
	return certmanager.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: certmanager.CertificateSpec{SecretName: secret, IssuerRef: ref}}
}

func caIssuer(ns, name, secret string) certmanager.Issuer {
	return certmanager.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: certmanager.IssuerSpec{CA: &certmanager.CAIssuer{SecretName: secret}}}
}

func nn(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }

func TestLeafStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ca := testgen.CA(t, "shop-ca", testgen.WithValidity(now.Add(-30*24*time.Hour), now.AddDate(3, 0, 0)))
	// cert-manager before v1.18 keeps the CA's key when it renews the CA Certificate.
	renewed := testgen.RenewCA(t, ca, testgen.WithValidity(now.Add(-time.Hour), now.AddDate(3, 0, 0)))
	rotated := testgen.CA(t, "shop-ca", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(3, 0, 0)))
	// Claims the first CA's key ID with another key: only the signature tells them apart.
	impostor := testgen.CA(t, "shop-ca", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(3, 0, 0)), testgen.WithSubjectKeyID(ca.X509.SubjectKeyId))
	other := testgen.CA(t, "other-ca", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(3, 0, 0)))
	leafBefore := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-10*24*time.Hour), now.Add(80*24*time.Hour)))
	leafAfter := testgen.Leaf(t, renewed, "api", testgen.WithValidity(now.Add(-time.Minute), now.Add(90*24*time.Hour)))
	sameSecond := testgen.Leaf(t, renewed, "api", testgen.WithValidity(now.Add(-time.Hour), now.Add(90*24*time.Hour)))

	for name, tc := range map[string]struct {
		ca      *testgen.Cert // in the CA Secret; nil: no CA Secret
		leaf    []byte        // the leaf Secret's tls.crt; nil: no leaf Secret
		want    Status
		message string
	}{
		"a leaf issued by the CA's current certificate is current": {
			ca: ca, leaf: testgen.Concat(leafBefore.PEM(), ca.PEM()), want: Current},
		"a leaf issued in the same second as the CA is current (notBefore ≥ the CA's)": {
			ca: renewed, leaf: sameSecond.PEM(), want: Current},
		"a leaf re-issued after the CA renewed is current": {
			ca: renewed, leaf: leafAfter.PEM(), want: Current},
		"a leaf issued before the CA renewed with the same key still verifies, but was issued under the previous CA": {
			ca: renewed, leaf: testgen.Concat(leafBefore.PEM(), ca.PEM()), want: IssuedUnderPreviousCA, message: "before the CA's current certificate"},
		"a leaf of a CA whose key rotated names another key": {
			ca: rotated, leaf: leafBefore.PEM(), want: NotSignedByCurrentCA, message: "is not the CA's subject key ID"},
		"a leaf naming the CA's key ID whose signature does not verify is not signed by the current CA": {
			ca: impostor, leaf: leafBefore.PEM(), want: NotSignedByCurrentCA, message: "signature does not verify"},
		"a leaf of an issuer now pointing at another CA is not signed by it": {
			ca: other, leaf: leafBefore.PEM(), want: NotSignedByCurrentCA, message: "signed by another CA key"},
		"a Certificate whose Secret does not exist is not issued": {
			ca: ca, leaf: nil, want: NotIssued, message: "Secret shop/api-tls: not found"},
		"a Certificate whose Secret holds no certificate is not issued": {
			ca: ca, leaf: []byte{}, want: NotIssued, message: "holds no certificate in tls.crt"},
		"a leaf cannot be judged when the CA Secret is missing": {
			ca: nil, leaf: leafBefore.PEM(), want: Unknown, message: "CA Secret shop/ca-key-pair: not found"},
	} {
		t.Run(name, func(t *testing.T) {
			in := Input{
				Issuers:      Issuers([]certmanager.Issuer{caIssuer("shop", "ca", "ca-key-pair")}, nil, "cert-manager"),
				Certificates: []certmanager.Certificate{certificate("shop", "api", "api-tls", certmanager.IssuerRef{Name: "ca"})},
				Secrets:      map[types.NamespacedName][]byte{},
			}
			if tc.ca != nil {
				in.Secrets[nn("shop", "ca-key-pair")] = tc.ca.PEM()
			}
			if tc.leaf != nil {
				in.Secrets[nn("shop", "api-tls")] = tc.leaf
			}
			g := Build(in)
			if len(g.Issuers) != 1 || len(g.Issuers[0].Leaves) != 1 {
				t.Fatalf("want one issuer with one leaf: %+v", g)
			}
			l := g.Issuers[0].Leaves[0]
			if l.Status != tc.want || !strings.Contains(l.Message, tc.message) {
				t.Fatalf("got %s (%s), want %s (%q)", l.Status, l.Message, tc.want, tc.message)
			}
			if (l.Status == Current) != (l.Message == "") {
				t.Errorf("a message explains exactly the leaves that are not current: %q", l.Message)
			}
			if is, got := g.LeafOfSecret(nn("shop", "api-tls")); got == nil || is.Name != "ca" {
				t.Errorf("LeafOfSecret does not find the leaf")
			}
			if want := map[bool]int{true: 1, false: 0}[tc.want.NeedsReissue()]; g.Issuers[0].NotCurrent() != want {
				t.Errorf("NotCurrent %d, want %d", g.Issuers[0].NotCurrent(), want)
			}
		})
	}
}

func TestGraphLinksCertificatesToTheirIssuers(t *testing.T) {
	ca := testgen.CA(t, "shop-ca")
	root := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, ca, "api")
	rootLeaf := testgen.Leaf(t, root, "db")
	cascading := caIssuer("shop", "ca", "ca-key-pair")
	cascading.Annotations = map[string]string{api.AnnotationCascade: "true"}
	acme := certmanager.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "letsencrypt"}}
	clusterCA := certmanager.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: certmanager.IssuerSpec{CA: &certmanager.CAIssuer{SecretName: "root-ca"}}}
	certificates := []certmanager.Certificate{
		certificate("shop", "web", "web-tls", certmanager.IssuerRef{Name: "ca", Kind: "Issuer", Group: "cert-manager.io"}),
		certificate("shop", "api", "api-tls", certmanager.IssuerRef{Name: "ca"}),
		certificate("other", "api", "api-tls", certmanager.IssuerRef{Name: "ca"}), // another namespace's Issuer ca
		certificate("shop", "db", "db-tls", certmanager.IssuerRef{Name: "root", Kind: "ClusterIssuer"}),
		certificate("shop", "public", "public-tls", certmanager.IssuerRef{Name: "letsencrypt"}),
		certificate("shop", "ext", "ext-tls", certmanager.IssuerRef{Name: "ca", Kind: "Issuer", Group: "awspca.cert-manager.io"}),
	}
	issuers := Issuers([]certmanager.Issuer{cascading, acme}, []certmanager.ClusterIssuer{clusterCA}, "cert-manager")
	needed := SecretsNeeded(issuers, certificates)
	want := []types.NamespacedName{nn("cert-manager", "root-ca"), nn("shop", "api-tls"), nn("shop", "ca-key-pair"), nn("shop", "db-tls"), nn("shop", "web-tls")}
	if len(needed) != len(want) {
		t.Fatalf("SecretsNeeded: got %v, want %v", needed, want)
	}
	for i := range want {
		if needed[i] != want[i] {
			t.Fatalf("SecretsNeeded: got %v, want %v", needed, want)
		}
	}
	g := Build(Input{Issuers: issuers, Certificates: certificates,
		Secrets: map[types.NamespacedName][]byte{
			nn("shop", "ca-key-pair"): ca.PEM(), nn("shop", "api-tls"): leaf.PEM(),
			nn("shop", "db-tls"): rootLeaf.PEM(), nn("cert-manager", "root-ca"): root.PEM(),
		}})
	if len(g.Issuers) != 2 {
		t.Fatalf("want the two CA issuers, not the ACME one: %+v", g.Issuers)
	}
	cluster, shop := g.Issuers[0], g.Issuers[1]
	if cluster.String() != "ClusterIssuer root" || cluster.Secret != nn("cert-manager", "root-ca") || cluster.CA == nil || cluster.CA.Subject != "CN=root" {
		t.Errorf("ClusterIssuers come first, their CA Secret in the cluster resource namespace: %+v", cluster)
	}
	if len(cluster.Leaves) != 1 || cluster.Leaves[0].Certificate != nn("shop", "db") || cluster.Leaves[0].Status != Current {
		t.Errorf("ClusterIssuer root signs shop/db: %+v", cluster.Leaves)
	}
	if shop.String() != "Issuer shop/ca" || !shop.Cascade || len(shop.Leaves) != 2 {
		t.Fatalf("Issuer shop/ca (cascading) signs api and web, not other/api nor the external issuer's: %+v", shop)
	}
	if shop.Leaves[0].Certificate.Name != "api" || shop.Leaves[0].Status != Current || shop.Leaves[1].Certificate.Name != "web" || shop.Leaves[1].Status != NotIssued {
		t.Errorf("leaves sorted by name, web not issued: %+v", shop.Leaves)
	}
	if is, l := g.LeafOfSecret(nn("other", "api-tls")); is != nil || l != nil {
		t.Errorf("other/api names an Issuer that is not a CA issuer here: %+v", l)
	}
}

func TestAnUnreadableCASecretIsAProblemOfItsIssuer(t *testing.T) {
	issuers := Issuers(nil, []certmanager.ClusterIssuer{{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: certmanager.IssuerSpec{CA: &certmanager.CAIssuer{SecretName: "root-ca"}}}}, "cert-manager")
	g := Build(Input{Issuers: issuers, Unreadable: map[types.NamespacedName]string{nn("cert-manager", "root-ca"): `secrets "root-ca" is forbidden`}})
	if p := g.Issuers[0].Problem; g.Issuers[0].CA != nil || p != `CA Secret cert-manager/root-ca: secrets "root-ca" is forbidden` {
		t.Fatalf("problem %q", p)
	}
	g = Build(Input{Issuers: issuers, Secrets: map[types.NamespacedName][]byte{nn("cert-manager", "root-ca"): nil}})
	if p := g.Issuers[0].Problem; p != "CA Secret cert-manager/root-ca: holds no certificate in tls.crt" {
		t.Fatalf("problem %q", p)
	}
}

func TestNamesKeyFallsBackToTheIssuerDNWithoutKeyIDs(t *testing.T) {
	ca := &certs.Certificate{Subject: "CN=ca"}
	for name, tc := range map[string]struct {
		leaf certs.Certificate
		want bool
	}{
		"the issuer DN decides when the leaf has no authority key ID":         {certs.Certificate{Issuer: "CN=ca"}, true},
		"another issuer DN does not name the CA":                              {certs.Certificate{Issuer: "CN=other"}, false},
		"an authority key ID is not compared with a CA that has no key ID":    {certs.Certificate{Issuer: "CN=ca", AuthorityKeyID: "01"}, true},
		"key IDs decide over the DN when both are present (checked with SKI)": {certs.Certificate{Issuer: "CN=ca", AuthorityKeyID: "01"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := *ca
			if strings.Contains(name, "both are present") {
				c.SubjectKeyID = "02"
			}
			if got := NamesKey(&tc.leaf, &c); got != tc.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}
