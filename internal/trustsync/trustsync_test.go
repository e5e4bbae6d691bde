package trustsync

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/testgen"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, blobs ...[]byte) []Cert {
	t.Helper()
	cs, err := Parse(testgen.Concat(blobs...))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func names(cs []Cert) string { return Subjects(cs) }

func TestParseKeepsEachCertificatesPEMAndAnchorsDropsLeaves(t *testing.T) {
	root := testgen.CA(t, "root")
	leaf := testgen.Leaf(t, root, "dex")
	cs := parse(t, leaf.PEM(), []byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"), root.PEM())
	if len(cs) != 2 || string(cs[1].PEM) != string(root.PEM()) {
		t.Fatalf("got %d certificates; the second's PEM should be the root's exactly", len(cs))
	}
	if got := names(Anchors(cs)); got != "CN=root" {
		t.Errorf("anchors %q, want the root alone: a leaf anchors nothing", got)
	}
	if _, err := Parse([]byte("no PEM here")); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("a value without certificates: %v", err)
	}
	if _, err := Parse([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Errorf("a malformed certificate must be an error, not skipped")
	}
}

func TestCompute(t *testing.T) {
	oldCA := testgen.CA(t, "root-1", testgen.WithValidity(now.Add(-365*24*time.Hour), now.Add(30*24*time.Hour)))
	newCA := testgen.RenewCA(t, oldCA, testgen.WithValidity(now.Add(-time.Hour), now.Add(3*365*24*time.Hour)))
	other := testgen.CA(t, "partner")
	dying := testgen.CA(t, "dying", testgen.WithValidity(now.Add(-365*24*time.Hour), now.Add(2*time.Hour)))
	leaf := testgen.Leaf(t, newCA, "stray")
	c := func(x *testgen.Cert) []Cert { return parse(t, x.PEM()) }
	cat := func(xs ...[]Cert) []Cert {
		var out []Cert
		for _, x := range xs {
			out = append(out, x...)
		}
		return out
	}
	left := metav1.Time{Time: now.Add(-24 * time.Hour)}
	for name, tc := range map[string]struct {
		in           Input
		want         string
		changed      bool
		retained     string
		nextChangeIn time.Duration
	}{
		"an empty target gets the sources' CAs, in source order": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA), c(other)}},
			want: "CN=root-1, CN=partner", changed: true,
		},
		"a CA in two sources is written once": {
			in:   Input{Now: now, Sources: [][]Cert{c(other), cat(c(newCA), c(other))}, Current: cat(c(other), c(newCA))},
			want: "CN=partner, CN=root-1", changed: false,
		},
		"a renewed CA replaces the old one when nothing is kept": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: c(oldCA)},
			want: "CN=root-1", changed: true,
		},
		"with keepPrevious the old CA stays after the new one, recorded from now": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: c(oldCA), KeepPrevious: 7 * 24 * time.Hour},
			want: "CN=root-1, CN=root-1", changed: true, retained: "root-1 from now for 168h0m0s", nextChangeIn: 7 * 24 * time.Hour,
		},
		"a kept CA keeps the time it left, so the overlap does not restart at every sync": {
			in: Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: cat(c(newCA), c(oldCA)), KeepPrevious: 7 * 24 * time.Hour,
				Retained: []api.RetainedCA{{Fingerprint: c(oldCA)[0].Fingerprint, LeftSourcesAt: left}}},
			want: "CN=root-1, CN=root-1", changed: false, retained: "root-1 from a day ago for 168h0m0s", nextChangeIn: 6 * 24 * time.Hour,
		},
		"a kept CA leaves once the overlap is over": {
			in: Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: cat(c(newCA), c(oldCA)), KeepPrevious: 12 * time.Hour,
				Retained: []api.RetainedCA{{Fingerprint: c(oldCA)[0].Fingerprint, LeftSourcesAt: left}}},
			want: "CN=root-1", changed: true,
		},
		"a kept CA never outlives its own expiry": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: cat(c(newCA), c(dying)), KeepPrevious: 30 * 24 * time.Hour},
			want: "CN=root-1, CN=dying", changed: false, retained: "dying from now for 2h0m0s", nextChangeIn: 2 * time.Hour,
		},
		"a leaf someone put in the target is not kept": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA)}, Current: cat(c(newCA), c(leaf)), KeepPrevious: 30 * 24 * time.Hour},
			want: "CN=root-1", changed: true,
		},
		"the same certificates in another order are rewritten in the sources' order": {
			in:   Input{Now: now, Sources: [][]Cert{c(newCA), c(other)}, Current: cat(c(other), c(newCA))},
			want: "CN=root-1, CN=partner", changed: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := Compute(tc.in)
			if got := names(r.Bundle); got != tc.want || r.Changed != tc.changed {
				t.Errorf("bundle %q changed %v, want %q changed %v", got, r.Changed, tc.want, tc.changed)
			}
			var kept []string
			for _, k := range r.Retained {
				from := "now"
				if !k.LeftSourcesAt.Time.Equal(now) {
					from = "a day ago"
				}
				kept = append(kept, strings.TrimPrefix(k.Subject, "CN=")+" from "+from+" for "+k.Until.Sub(k.LeftSourcesAt.Time).String())
			}
			if got := strings.Join(kept, "; "); got != tc.retained {
				t.Errorf("retained %q, want %q", got, tc.retained)
			}
			if tc.nextChangeIn == 0 && !r.NextChange.IsZero() || tc.nextChangeIn != 0 && !r.NextChange.Equal(now.Add(tc.nextChangeIn)) {
				t.Errorf("next change %v, want in %v", r.NextChange, tc.nextChangeIn)
			}
			if back, err := Parse(Encode(r.Bundle)); err != nil || !slices.Equal(Fingerprints(back), Fingerprints(r.Bundle)) {
				t.Errorf("the encoded bundle does not read back as the bundle: %v", err)
			}
		})
	}
}
