package inventory

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
)

// FromClusterTrustBundles reads the ClusterTrustBundles a use ref resolves to (one for a use by name,
// every matching one for a signer query) as one cluster-scoped Source: each bundle's spec.trustBundle
// under a key named after the bundle, so Set compares fingerprints and a reordered or re-encoded bundle
// changes nothing.
func FromClusterTrustBundles(ref consumers.Ref, bundles []certificatesv1beta1.ClusterTrustBundle) *Source {
	src := &Source{Ref: ref, Keys: map[string]*certs.Bundle{}, Invalid: map[string]error{}}
	for i := range bundles {
		b := &bundles[i]
		if t := bundleWriteTime(b); t.After(src.DataWrittenAt) {
			src.DataWrittenAt = t
		}
		src.add(b.Name, []byte(b.Spec.TrustBundle))
	}
	return src
}

// bundleWriteTime is when a field manager last wrote the bundle's spec.trustBundle (zero when unknown): the
// settle period runs from there, as it does from a Secret's data write.
func bundleWriteTime(b *certificatesv1beta1.ClusterTrustBundle) time.Time {
	var t time.Time
	for _, e := range b.ManagedFields {
		if e.Time == nil || e.FieldsV1 == nil || !bytes.Contains(e.FieldsV1.GetRawBytes(), []byte(`"f:trustBundle"`)) {
			continue
		}
		if e.Time.After(t) {
			t = e.Time.UTC()
		}
	}
	return t
}

// BundleCAs parses a ClusterTrustBundle's spec.trustBundle; an unparsable bundle holds no CA.
func BundleCAs(b *certificatesv1beta1.ClusterTrustBundle) []certs.Certificate {
	parsed, err := certs.ParsePEM([]byte(b.Spec.TrustBundle))
	if err != nil {
		return nil
	}
	return parsed.Certificates
}

// CAChange is how the set of CA certificates trusted through a bundle changed, by fingerprint: order and
// encoding do not count.
type CAChange struct {
	Added, Removed []string // fingerprints, sorted
}

// CompareCAs compares the CAs a bundle held before and after a write.
func CompareCAs(before, after []certs.Certificate) CAChange {
	had, has := fingerprintSet(before), fingerprintSet(after)
	var c CAChange
	for fp := range has {
		if !had[fp] {
			c.Added = append(c.Added, fp)
		}
	}
	for fp := range had {
		if !has[fp] {
			c.Removed = append(c.Removed, fp)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	return c
}

func fingerprintSet(cs []certs.Certificate) map[string]bool {
	out := make(map[string]bool, len(cs))
	for _, c := range cs {
		out[c.Fingerprint] = true
	}
	return out
}

// None reports whether the trusted CAs are the same set.
func (c CAChange) None() bool { return len(c.Added) == 0 && len(c.Removed) == 0 }

// AddsOnly reports whether the change only adds CAs: the safe first step of a CA rotation, after which
// every certificate trusted before is still trusted.
func (c CAChange) AddsOnly() bool { return len(c.Added) > 0 && len(c.Removed) == 0 }

// String says what the change means for trust, for decision messages and Events.
func (c CAChange) String() string {
	switch {
	case c.None():
		return "trusts the same CAs"
	case c.AddsOnly():
		return fmt.Sprintf("adds %s only (trust-first step: nothing loses trust)", plural(len(c.Added), "CA"))
	case len(c.Added) == 0:
		return fmt.Sprintf("removes %s: certificates they signed are no longer trusted", plural(len(c.Removed), "CA"))
	default:
		return fmt.Sprintf("removes %s and adds %s: certificates the removed ones signed are no longer trusted",
			plural(len(c.Removed), "CA"), plural(len(c.Added), "CA"))
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// bundleWriteFields is the one managedFields entry TransformBundle keeps: enough for bundleWriteTime.
const bundleWriteFields = `{"f:spec":{"f:trustBundle":{}}}`

// TransformBundle is the cache transform of ClusterTrustBundles: it keeps, of managedFields, only when
// spec.trustBundle was last written (what the settle period and the issuance time read), and drops the
// last-applied annotation, which may embed the whole bundle a second time.
func TransformBundle(obj any) (any, error) {
	b, ok := obj.(*certificatesv1beta1.ClusterTrustBundle)
	if !ok {
		return obj, nil
	}
	written := bundleWriteTime(b)
	b.ManagedFields = nil
	if !written.IsZero() {
		at := metav1.NewTime(written)
		b.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: reducedManager, Operation: metav1.ManagedFieldsOperationUpdate,
			Time: &at, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(bundleWriteFields)}}
	}
	delete(b.Annotations, corev1.LastAppliedConfigAnnotation)
	return b, nil
}
