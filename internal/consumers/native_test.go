package consumers

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/testgen"
)

func TestFromPodSpecNativeSources(t *testing.T) {
	for name, tc := range map[string]struct {
		pod  testgen.PodOption
		want []Use
	}{
		"a ClusterTrustBundle projected by name is a volume use of that cluster-scoped bundle": {
			pod:  testgen.WithProjectedSources("ca", testgen.BundleByName("corp-roots")),
			want: []Use{{Ref: Ref{KindClusterTrustBundle, "corp-roots"}, Mode: ModeVolume, Container: "app"}},
		},
		"bundles projected by signer and selector are one use of the query": {
			pod:  testgen.WithProjectedSources("ca", testgen.BundleBySigner("example.com/corp", map[string]string{"tier": "prod"})),
			want: []Use{{Ref: Ref{KindClusterTrustBundleSigner, "example.com/corp tier=prod"}, Mode: ModeVolume, Container: "app"}},
		},
		"a signer without a selector is kept, and selects nothing": {
			pod:  testgen.WithProjectedSources("ca", testgen.BundleBySigner("example.com/corp", nil)),
			want: []Use{{Ref: Ref{KindClusterTrustBundleSigner, "example.com/corp <nothing>"}, Mode: ModeVolume, Container: "app"}},
		},
		"a pod certificate is a use of its signer": {
			pod:  testgen.WithProjectedSources("tls", testgen.PodCertificate("example.com/pods")),
			want: []Use{{Ref: Ref{KindPodCertificate, "example.com/pods"}, Mode: ModeVolume, Container: "app"}},
		},
		"one projected volume mixing a Secret, a bundle and a pod certificate brings in all three": {
			pod: testgen.WithProjectedSources("all", testgen.BundleByName("roots"), testgen.PodCertificate("example.com/pods")),
			want: []Use{
				{Ref: Ref{KindClusterTrustBundle, "roots"}, Mode: ModeVolume, Container: "app"},
				{Ref: Ref{KindPodCertificate, "example.com/pods"}, Mode: ModeVolume, Container: "app"},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			pod := testgen.PodSpec(tc.pod)
			got := FromPodSpec(&pod, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FromPodSpec:\n got %+v\nwant %+v", got, tc.want)
			}
			for _, u := range got {
				if !u.Kind.ClusterScoped() {
					t.Errorf("%s is not cluster-scoped", u.Ref)
				}
			}
		})
	}
}

func TestSignerRefQuery(t *testing.T) {
	for name, tc := range map[string]struct {
		sel     *metav1.LabelSelector
		labels  map[string]string
		signer  string
		matches bool
	}{
		"matching labels and signer select the bundle": {
			sel: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}, labels: map[string]string{"tier": "prod", "x": "y"},
			signer: "example.com/corp", matches: true,
		},
		"another signer's bundle is not selected whatever its labels": {
			sel: &metav1.LabelSelector{}, labels: map[string]string{}, signer: "example.com/other",
		},
		"an empty selector selects every bundle of the signer": {
			sel: &metav1.LabelSelector{}, labels: map[string]string{"any": "thing"}, signer: "example.com/corp", matches: true,
		},
		"a nil selector selects nothing, as the API documents": {
			labels: map[string]string{}, signer: "example.com/corp",
		},
		"an expression selector is kept exactly": {
			sel:    &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			labels: map[string]string{"tier": "b"}, signer: "example.com/corp", matches: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			q, err := SignerRef("example.com/corp", tc.sel).Query()
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Matches(tc.signer, tc.labels); got != tc.matches {
				t.Errorf("Matches = %v, want %v (query %+v)", got, tc.matches, q)
			}
		})
	}
	if _, err := (Ref{KindSecret, "x"}).Query(); err == nil {
		t.Error("Query of a Secret Ref: no error")
	}
}
