package inventory

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/testgen"
)

func certificate(ns, name, secret string, revision int, ready bool) certmanager.Certificate {
	status := "False"
	if ready {
		status = "True"
	}
	return certmanager.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       certmanager.CertificateSpec{SecretName: secret},
		Status: certmanager.CertificateStatus{
			Revision:    &revision,
			RenewalTime: &metav1.Time{Time: time.Unix(1_800_000_000, 0)},
			NotAfter:    &metav1.Time{Time: time.Unix(1_900_000_000, 0)},
			Conditions:  []certmanager.Condition{{Type: certmanager.ConditionReady, Status: status, Message: "Issuing certificate as Secret does not exist"}},
		},
	}
}

func secretSource(ns, name, annotated string) *Source {
	return &Source{Namespace: ns, Ref: consumers.Ref{Kind: consumers.KindSecret, Name: name}, Certificate: annotated}
}

func TestLinkCertificate(t *testing.T) {
	list := []certmanager.Certificate{
		certificate("app", "web", "web-tls", 3, true),
		certificate("other", "web", "web-tls", 9, true),
		certificate("app", "b-dup", "shared-tls", 1, true),
		certificate("app", "a-dup", "shared-tls", 2, true),
		certificate("app", "moved", "new-tls", 4, false),
	}
	for _, tc := range []struct {
		name string
		src  *Source
		want string // "" for no link
		rev  int
	}{
		{"by spec.secretName in the same namespace only", secretSource("app", "web-tls", ""), "web", 3},
		{"the annotation agrees", secretSource("app", "web-tls", "web"), "web", 3},
		{"several writers: the annotated one", secretSource("app", "shared-tls", "b-dup"), "b-dup", 1},
		{"several writers, none annotated: the first by name", secretSource("app", "shared-tls", ""), "a-dup", 2},
		{"the annotated Certificate now writes another Secret: still the last issuer", secretSource("app", "old-tls", "moved"), "moved", 4},
		{"a Certificate that writes the Secret beats a stale annotation", secretSource("app", "web-tls", "moved"), "web", 3},
		{"the annotated Certificate is gone", secretSource("app", "lost-tls", "gone"), "", 0},
		{"unrelated", secretSource("app", "plain", ""), "", 0},
		{"a ConfigMap is never issued by cert-manager", &Source{Namespace: "app", Ref: consumers.Ref{Kind: consumers.KindConfigMap, Name: "web-tls"}}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LinkCertificate(tc.src, list)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("want no link, got %+v", got)
				}
				return
			}
			if got == nil || got.Certificate != tc.want || got.Revision != tc.rev {
				t.Fatalf("want %s revision %d, got %+v", tc.want, tc.rev, got)
			}
		})
	}
}

func TestIssuanceCarriesTheCertificateStatus(t *testing.T) {
	list := []certmanager.Certificate{certificate("app", "moved", "new-tls", 4, false)}
	is := LinkCertificate(secretSource("app", "new-tls", ""), list)
	if is.Ready || is.ReadyMessage == "" || !is.RenewalTime.Equal(time.Unix(1_800_000_000, 0)) || !is.NotAfter.Equal(time.Unix(1_900_000_000, 0)) {
		t.Fatalf("status not carried: %+v", is)
	}
	if is.Current {
		t.Error("a Secret without a tls.crt leaf cannot be matched to the status")
	}
	if got, want := is.String(), "Certificate moved (its status still describes the previous certificate, revision 4)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	ca := testgen.CA(t, "root")
	issued := func(notAfter int64) *Source {
		leaf := testgen.Leaf(t, ca, "web", testgen.WithValidity(time.Unix(1_700_000_000, 0), time.Unix(notAfter, 0)))
		return FromSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-tls"},
			Data: map[string][]byte{corev1.TLSCertKey: testgen.Concat(leaf.PEM(), ca.PEM())}})
	}
	web := []certmanager.Certificate{certificate("app", "web", "web-tls", 3, true)}
	ready := LinkCertificate(issued(1_900_000_000), web)
	if got, want := ready.String(), "Certificate web revision 3 (Ready)"; !ready.Current || got != want {
		t.Errorf("String() = %q, want %q (current %v)", got, want, ready.Current)
	}
	notReady := LinkCertificate(issued(1_900_000_000), []certmanager.Certificate{certificate("app", "web", "web-tls", 3, false)})
	if got, want := notReady.String(), "Certificate web revision 3 (not Ready: Issuing certificate as Secret does not exist)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if lagging := LinkCertificate(issued(1_950_000_000), web); lagging.Current {
		t.Error("a status whose notAfter is not the leaf's describes another certificate")
	}
	fresh := certificate("app", "new", "new-tls", 0, false)
	fresh.Status = certmanager.CertificateStatus{}
	if is := LinkCertificate(secretSource("app", "new-tls", ""), []certmanager.Certificate{fresh}); is == nil || is.Revision != 0 || is.Ready {
		t.Errorf("a Certificate with no status yet links with revision 0, not Ready: %+v", is)
	}
}
