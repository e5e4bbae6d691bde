package inventory

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/testgen"
)

func bundle(name string, pems ...[]byte) certificatesv1beta1.ClusterTrustBundle {
	return certificatesv1beta1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       certificatesv1beta1.ClusterTrustBundleSpec{TrustBundle: string(testgen.Concat(pems...))},
	}
}

// reencode writes a PEM blob again with headers and different line wrapping: same certificates, other
// bytes.
func reencode(p []byte) []byte {
	block, _ := pem.Decode(p)
	b64 := base64.StdEncoding.EncodeToString(block.Bytes)
	var out bytes.Buffer
	out.WriteString("# comment before the block\n-----BEGIN CERTIFICATE-----\n")
	for len(b64) > 40 {
		out.WriteString(b64[:40] + "\n")
		b64 = b64[40:]
	}
	out.WriteString(b64 + "\n-----END CERTIFICATE-----\n")
	return out.Bytes()
}

func TestClusterTrustBundleSetIgnoresOrderAndEncoding(t *testing.T) {
	a, b := testgen.CA(t, "a"), testgen.CA(t, "b")
	ref := consumers.Ref{Kind: consumers.KindClusterTrustBundle, Name: "roots"}
	uses := []consumers.Use{{Ref: ref, Mode: consumers.ModeVolume}}
	setOf := func(bundles ...certificatesv1beta1.ClusterTrustBundle) Set {
		return SetOf(uses, map[consumers.Ref]*Source{ref: FromClusterTrustBundles(ref, bundles)})
	}
	before := setOf(bundle("roots", a.PEM(), b.PEM()))
	if len(before.Fingerprints) != 2 {
		t.Fatalf("fingerprints = %v, want both CAs", before.Fingerprints)
	}
	if got := setOf(bundle("roots", reencode(b.PEM()), a.PEM())); got.Hash != before.Hash {
		t.Errorf("reordered, re-encoded bundle: hash %s, want %s", got.Hash, before.Hash)
	}
	if got := setOf(bundle("roots", a.PEM())); got.Hash == before.Hash {
		t.Error("a bundle without one CA kept the same hash")
	}
	// A signer query over two bundles is the union of their CAs.
	if got := setOf(bundle("one", a.PEM()), bundle("two", b.PEM())); got.Hash != before.Hash {
		t.Errorf("two bundles holding the same CAs: hash %s, want %s", got.Hash, before.Hash)
	}
}

func TestCompareCAs(t *testing.T) {
	old, next, other := testgen.CA(t, "old"), testgen.CA(t, "next"), testgen.CA(t, "other")
	cas := func(pems ...[]byte) []byte { return testgen.Concat(pems...) }
	for name, tc := range map[string]struct {
		before, after []byte
		addsOnly      bool
		none          bool
		says          string
	}{
		"adding the next CA next to the old one is the trust-first step": {
			before: cas(old.PEM()), after: cas(old.PEM(), next.PEM()), addsOnly: true, says: "adds 1 CA only",
		},
		"dropping the old CA removes trust": {
			before: cas(old.PEM(), next.PEM()), after: cas(next.PEM()), says: "removes 1 CA:",
		},
		"swapping one CA for another removes and adds": {
			before: cas(old.PEM()), after: cas(next.PEM(), other.PEM()), says: "removes 1 CA and adds 2 CAs",
		},
		"reordering and re-encoding is no change": {
			before: cas(old.PEM(), next.PEM()), after: cas(reencode(next.PEM()), old.PEM()), none: true, says: "same CAs",
		},
	} {
		t.Run(name, func(t *testing.T) {
			b1, b2 := bundle("x", tc.before), bundle("x", tc.after)
			c := CompareCAs(BundleCAs(&b1), BundleCAs(&b2))
			if c.AddsOnly() != tc.addsOnly || c.None() != tc.none {
				t.Errorf("AddsOnly=%v None=%v, want %v %v (%+v)", c.AddsOnly(), c.None(), tc.addsOnly, tc.none, c)
			}
			if !strings.Contains(c.String(), tc.says) {
				t.Errorf("String() = %q, want it to contain %q", c.String(), tc.says)
			}
		})
	}
}

// The cache keeps of a bundle only when its trustBundle was written: the issuance time the decision reads.
func TestTransformBundleKeepsOnlyTheTrustBundleWriteTime(t *testing.T) {
	ca := testgen.CA(t, "a")
	early, late := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	b := bundle("roots", ca.PEM())
	b.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: "{...}", "keep": "me"}
	b.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "kubectl", Time: &early, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:trustBundle":{}}}`)},
		{Manager: "labeller", Time: &late, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{}}}`)},
	}
	out, err := TransformBundle(&b)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*certificatesv1beta1.ClusterTrustBundle)
	if len(got.ManagedFields) != 1 || !got.ManagedFields[0].Time.Equal(&early) {
		t.Errorf("managedFields = %+v, want one entry at the trustBundle write %s", got.ManagedFields, early)
	}
	ref := consumers.Ref{Kind: consumers.KindClusterTrustBundle, Name: "roots"}
	if w := FromClusterTrustBundles(ref, []certificatesv1beta1.ClusterTrustBundle{*got}).DataWrittenAt; !w.Equal(early.Time) {
		t.Errorf("DataWrittenAt of the transformed bundle = %s, want %s", w, early)
	}
	if _, ok := got.Annotations[corev1.LastAppliedConfigAnnotation]; ok || got.Annotations["keep"] != "me" {
		t.Errorf("annotations = %v, want only the last-applied one dropped", got.Annotations)
	}
}
