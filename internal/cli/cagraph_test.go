package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/testgen"
)

// caGraphFixture is namespace shop, without a cluster: Issuer ca, whose CA renewed with the same key,
// signs api (issued before the renewal) and web (after it), and Certificate pending not issued yet.
func caGraphFixture(t *testing.T, now time.Time) (*checkSection, *cagraph.Graph) {
	t.Helper()
	ca := testgen.CA(t, "shop-ca", testgen.WithValidity(now.Add(-60*24*time.Hour), now.AddDate(3, 0, 0)))
	renewed := testgen.RenewCA(t, ca, testgen.WithValidity(now.Add(-24*time.Hour), now.AddDate(3, 0, 0)))
	api := testgen.Leaf(t, ca, "api", testgen.WithValidity(now.Add(-30*24*time.Hour), now.Add(60*24*time.Hour)))
	web := testgen.Leaf(t, renewed, "web", testgen.WithValidity(now.Add(-time.Hour), now.Add(89*24*time.Hour)))
	secret := func(name string, crt []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Data: map[string][]byte{"tls.crt": crt}}
	}
	secrets := []*corev1.Secret{secret("ca", renewed.PEM()), secret("api-tls", api.PEM()), secret("web-tls", web.PEM())}
	in := cagraph.Input{
		Issuers: cagraph.Issuers([]certmanager.Issuer{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca"},
			Spec: certmanager.IssuerSpec{CA: &certmanager.CAIssuer{SecretName: "ca"}}}}, nil, "cert-manager"),
		Secrets: map[types.NamespacedName][]byte{},
	}
	var sources []*inventory.Source
	for _, s := range secrets {
		in.Secrets[types.NamespacedName{Namespace: "shop", Name: s.Name}] = s.Data["tls.crt"]
		sources = append(sources, inventory.FromSecret(s))
	}
	for _, name := range []string{"api", "web", "pending"} {
		in.Certificates = append(in.Certificates, certmanager.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: certmanager.CertificateSpec{SecretName: name + "-tls", IssuerRef: certmanager.IssuerRef{Name: "ca"}}})
	}
	g := cagraph.Build(in)
	return buildClusterSection("shop", sources, nil, in.Certificates, labels.Everything(), &g), &g
}

func TestCheckCountsALeafNotIssuedByItsCurrentCAAsAWarning(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	s, _ := caGraphFixture(t, now)
	var out, errOut bytes.Buffer
	o := &CheckOptions{IOStreams: IOStreams{Out: &out, ErrOut: &errOut}}
	r := &checkResult{now: now, cluster: s}
	rep := r.report(o)
	if rep.Status != SeverityWarning || !strings.HasPrefix(rep.Reason, "WARNING: Secret shop/api-tls tls.crt is not issued by the current CA of Issuer shop/ca (IssuedUnderPreviousCA: ") ||
		!strings.HasSuffix(rep.Reason, "re-issue it: certrollout renew api -n shop") {
		t.Errorf("status %s, reason %q", rep.Status, rep.Reason)
	}
	severity := map[string]string{}
	for _, it := range rep.Items {
		severity[it.Source.Name+" "+it.Source.Key] = it.Severity
	}
	// web is current; pending has no certificate to judge (not issued is shown, not counted).
	if severity["api-tls tls.crt"] != SeverityWarning || severity["web-tls tls.crt"] != SeverityOK || severity["pending-tls "] != "" {
		t.Errorf("severities: %v", severity)
	}
	if len(rep.CAIssuers) != 1 || rep.CAIssuers[0].Leaves != 3 || rep.CAIssuers[0].NotCurrent != 1 || rep.CAIssuers[0].CA == nil {
		t.Errorf("caIssuers: %+v", rep.CAIssuers)
	}
	if err := o.printTables(r); err != nil {
		t.Fatal(err)
	}
	golden(t, "check-cagraph-table", out.String())
}

func TestPlanSaysWhetherALeafSecretIsCurrent(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	_, g := caGraphFixture(t, now)
	is, leaf := g.LeafOfSecret(types.NamespacedName{Namespace: "shop", Name: "api-tls"})
	ch := &CheckCAChain{Issuer: CheckIssuerRef{Kind: is.Kind, Namespace: is.Namespace, Name: is.Name}, Certificate: leaf.Certificate.Name,
		Status: string(leaf.Status), Message: leaf.Message, CAFingerprint: is.CA.Fingerprint}
	got := describeCAChain(ch, "shop")
	want := "issued by Issuer ca (CA sha256 " + is.CA.Fingerprint[:8] + "); not issued under its current CA (IssuedUnderPreviousCA: issued 2026-10-25T10:00:00Z, " +
		"before the CA's current certificate (2026-11-23T10:00:00Z): the CA was renewed with the same key): re-issue it (certrollout renew api -n shop)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	ch.Status, ch.Message = string(cagraph.Current), ""
	if got := describeCAChain(ch, "shop"); !strings.HasSuffix(got, ": current") {
		t.Errorf("current: %s", got)
	}
}

func TestCheckShowsASecretKeyHoldingAPrivateKeyWhereACertificateBelongs(t *testing.T) {
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	ca := testgen.CA(t, "root", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(1, 0, 0)))
	leaf := testgen.Leaf(t, ca, "portal", testgen.WithValidity(now.Add(-time.Hour), now.AddDate(0, 3, 0)))
	swapped := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "portal-tls"},
		Data: map[string][]byte{"tls.crt": leaf.KeyPEM(t), "tls.key": leaf.KeyPEM(t), "ca.crt": ca.PEM()}}
	s := buildClusterSection("shop", []*inventory.Source{inventory.FromSecret(inventory.ReduceSecret(swapped))}, nil, nil, labels.Everything(), nil)
	if len(s.problems) != 1 || s.problems[0].Source.Key != "tls.crt" || s.problems[0].Reason != "KeyWithoutCertificate" {
		t.Fatalf("problems %+v, want tls.crt (and not tls.key) as KeyWithoutCertificate", s.problems)
	}
	if len(s.items) != 1 || s.items[0].Source.Key != "ca.crt" {
		t.Errorf("items %+v, want ca.crt listed as ever", s.items)
	}
	var out bytes.Buffer
	o := &CheckOptions{IOStreams: IOStreams{Out: &out, ErrOut: &out}}
	if err := o.clusterProblems(s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "secret/portal-tls   tls.crt   holds a private key and no certificate") {
		t.Errorf("the problem row:\n%s", out.String())
	}
	status, reason := checkVerdict(nil, s.problems, now, &CheckOptions{})
	if status != SeverityWarning || reason != "WARNING: Secret shop/portal-tls tls.crt holds a private key and no certificate" {
		t.Errorf("verdict %s %q, want a warning naming the key", status, reason)
	}
}
