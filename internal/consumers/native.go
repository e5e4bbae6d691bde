package consumers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// selectNothing stands for a nil label selector in a SignerRef. The API reads a nil selector next to a
// signerName as "match nothing" and an empty one as "match everything"; both print as "" in the usual
// selector syntax, so nil gets a spelling of its own.
const selectNothing = "<nothing>"

// signerSeparator splits a SignerRef's name into signer and selector. Signer names are
// "domain/path" and never hold a space.
const signerSeparator = " "

// SignerRef is the use of every ClusterTrustBundle of signer whose labels sel matches. The selector is
// kept in its canonical text, so two pods that spell the same selector differently share one Ref.
func SignerRef(signer string, sel *metav1.LabelSelector) Ref {
	text := selectNothing
	if sel != nil {
		// An invalid selector (the API server rejects those) selects nothing, as the kubelet could not
		// project it either.
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			text = s.String()
		}
	}
	return Ref{Kind: KindClusterTrustBundleSigner, Name: signer + signerSeparator + text}
}

// BundleQuery is what a KindClusterTrustBundleSigner Ref selects.
type BundleQuery struct {
	Signer   string
	Selector labels.Selector
}

// Matches reports whether a ClusterTrustBundle with signerName signer and labels lbls is selected.
func (q BundleQuery) Matches(signer string, lbls map[string]string) bool {
	return signer == q.Signer && q.Selector.Matches(labels.Set(lbls))
}

// Query parses a KindClusterTrustBundleSigner Ref back into its signer and selector.
func (r Ref) Query() (BundleQuery, error) {
	if r.Kind != KindClusterTrustBundleSigner {
		return BundleQuery{}, fmt.Errorf("%s is not a ClusterTrustBundle signer query", r)
	}
	signer, text, _ := strings.Cut(r.Name, signerSeparator)
	if text == selectNothing {
		return BundleQuery{Signer: signer, Selector: labels.Nothing()}, nil
	}
	sel, err := labels.Parse(text)
	if err != nil {
		return BundleQuery{}, fmt.Errorf("selector of %s: %w", r, err)
	}
	return BundleQuery{Signer: signer, Selector: sel}, nil
}

// nativeSources lists what one projected volume source brings in from the certificates.k8s.io API:
// ClusterTrustBundles, by name or by signer and selector, and the pod's own certificate.
func nativeSources(p corev1.VolumeProjection) []volumeSource {
	var out []volumeSource
	if b := p.ClusterTrustBundle; b != nil {
		switch {
		case b.Name != nil && *b.Name != "":
			out = append(out, volumeSource{ref: Ref{KindClusterTrustBundle, *b.Name}, optional: deref(b.Optional)})
		case b.SignerName != nil && *b.SignerName != "":
			out = append(out, volumeSource{ref: SignerRef(*b.SignerName, b.LabelSelector), optional: deref(b.Optional)})
		}
	}
	if c := p.PodCertificate; c != nil && c.SignerName != "" {
		out = append(out, volumeSource{ref: Ref{KindPodCertificate, c.SignerName}})
	}
	return out
}
