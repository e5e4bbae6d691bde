package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/certs"
)

const testFingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestCascadeRolloutNamesAreDeterministicAndValid(t *testing.T) {
	if got := cascadeRolloutName("ca", testFingerprint); got != "cascade-ca-0123456789" {
		t.Errorf("name = %q", got)
	}
	if a, b := cascadeRolloutName("ca", testFingerprint), cascadeRolloutName("ca", strings.Repeat("f", 64)); a == b {
		t.Errorf("another CA certificate must get another rollout, both are %q", a)
	}
	for _, issuer := range []string{
		strings.Repeat("a", 253),
		strings.Repeat("a", 233) + "." + strings.Repeat("b", 19), // the cut ends on the dot
		strings.Repeat("a", 233) + "-" + strings.Repeat("b", 19), // the cut ends on a dash
	} {
		name := cascadeRolloutName(issuer, testFingerprint)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%q (%d characters) is not a valid name: %v", name, len(name), errs)
		}
		if !strings.HasSuffix(name, "-0123456789") {
			t.Errorf("%q lost its fingerprint", name)
		}
	}
}

func TestCascadeDue(t *testing.T) {
	ca := &certs.Certificate{Fingerprint: testFingerprint}
	leaf := func(name string, s cagraph.Status) cagraph.Leaf {
		return cagraph.Leaf{Certificate: types.NamespacedName{Namespace: "shop", Name: name}, Status: s}
	}
	issuer := func(cascade bool, ca *certs.Certificate, leaves ...cagraph.Leaf) *cagraph.Issuer {
		return &cagraph.Issuer{CAIssuer: cagraph.CAIssuer{IssuerRef: cagraph.IssuerRef{Kind: "Issuer", Namespace: "shop", Name: "ca"}, Cascade: cascade}, CA: ca, Leaves: leaves}
	}
	stale := []cagraph.Leaf{leaf("api", cagraph.NotSignedByCurrentCA), leaf("db", cagraph.Current), leaf("web", cagraph.IssuedUnderPreviousCA), leaf("new", cagraph.NotIssued)}
	for name, tc := range map[string]struct {
		issuer *cagraph.Issuer
		all    bool
		want   bool
	}{
		"annotated with stale leaves":           {issuer(true, ca, stale...), false, true},
		"not annotated, --ca-cascade":           {issuer(false, ca, stale...), true, true},
		"not annotated: no cascade":             {issuer(false, ca, stale...), false, false},
		"every leaf current or not yet issued":  {issuer(true, ca, leaf("db", cagraph.Current), leaf("new", cagraph.NotIssued)), true, false},
		"no leaves":                             {issuer(true, ca), true, false},
		"CA certificate unreadable: no verdict": {issuer(true, nil, leaf("api", cagraph.Unknown)), true, false},
		"no issuer":                             {nil, true, false},
	} {
		t.Run(name, func(t *testing.T) {
			due, msg := cascadeDue(tc.issuer, tc.all)
			if due != tc.want {
				t.Fatalf("due = %v (%q), want %v", due, msg, tc.want)
			}
			if due && msg != "Issuer shop/ca has CA certificate 0123456789; 2 leaf Certificate(s) were issued under another: shop/api, shop/web" {
				t.Errorf("message = %q", msg)
			}
		})
	}
}

func TestCascadeDueShortensALongList(t *testing.T) {
	is := &cagraph.Issuer{CAIssuer: cagraph.CAIssuer{IssuerRef: cagraph.IssuerRef{Kind: "ClusterIssuer", Name: "root"}, Cascade: true}, CA: &certs.Certificate{Fingerprint: testFingerprint}}
	for i := range 12 {
		is.Leaves = append(is.Leaves, cagraph.Leaf{Certificate: types.NamespacedName{Namespace: "ns", Name: string(rune('a' + i))}, Status: cagraph.NotSignedByCurrentCA})
	}
	_, msg := cascadeDue(is, false)
	if !strings.HasPrefix(msg, "ClusterIssuer root has CA certificate 0123456789; 12 leaf") || !strings.HasSuffix(msg, "ns/j and 2 more") {
		t.Errorf("message = %q", msg)
	}
}

func TestCascadeRolloutSpec(t *testing.T) {
	ref := api.IssuerReference{Kind: certmanager.KindClusterIssuer, Name: "root"}
	ro := cascadeRollout(ref, "cert-manager", testFingerprint, "why")
	if ro.Namespace != "cert-manager" || ro.Name != "cascade-root-0123456789" {
		t.Errorf("object %s/%s", ro.Namespace, ro.Name)
	}
	if ro.Spec.Trigger.Type != api.TriggerCARotated || ro.Spec.Trigger.Message != "why" {
		t.Errorf("trigger = %+v", ro.Spec.Trigger)
	}
	if c := ro.Spec.Cascade; c == nil || c.IssuerRef != ref || c.CAFingerprint != testFingerprint {
		t.Errorf("cascade = %+v", c)
	}
	if ro.Spec.Policy != "" || len(ro.Spec.Targets) != 0 {
		t.Errorf("a cascade restarts nothing itself: %+v", ro.Spec)
	}
}

func TestCascadeIssuerKeys(t *testing.T) {
	if got := cascadeIssuerKey(certmanager.KindIssuer, "shop", "ca"); got != "Issuer/shop/ca" {
		t.Errorf("Issuer key %q", got)
	}
	// A ClusterIssuer's key names the namespace of the rollout: only the cluster resource namespace's
	// rollouts are looked up, so a tenant's CertRollout naming the ClusterIssuer holds no restart.
	if got := cascadeIssuerKey(certmanager.KindClusterIssuer, "cert-manager", "root"); got != "ClusterIssuer/cert-manager/root" {
		t.Errorf("ClusterIssuer key %q", got)
	}
}

func TestACascadingIssuerWhoseCACannotBeReadIsReported(t *testing.T) {
	ref := api.IssuerReference{Kind: certmanager.KindIssuer, Name: "ca"}
	annotated := &certmanager.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca", Annotations: map[string]string{api.AnnotationCascade: "true"}}}
	plain := &certmanager.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca"}}
	problem := "CA Secret shop/ca-key-pair not found"
	for name, tc := range map[string]struct {
		obj     *certmanager.Issuer
		problem string
		all     bool
		want    string
	}{
		"an annotated issuer with a missing CA Secret is reported": {annotated, problem, false,
			"Issuer shop/ca cascades, but CA Secret shop/ca-key-pair not found; the leaves it signed are neither checked nor re-issued"},
		"an issuer that does not cascade is not reported": {plain, problem, false, ""},
		"under --ca-cascade every CA issuer is":           {plain, problem, true, "Issuer shop/ca cascades, but CA Secret"},
		"an issuer whose CA can be read is not reported":  {annotated, "", true, ""},
	} {
		got := cascadeBlocked(ref, "shop", tc.obj, tc.problem, tc.all)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want %q", name, got, tc.want)
		}
	}
}
