// Package trustsync computes what a TrustBundleSync writes into its target: the CA certificates of its
// sources, in source order and without duplicates, then those kept from before for an overlap
// (keepPrevious), never past their expiry. It is pure: the controller reads the sources and the target,
// calls Compute, and writes Bundle when Changed.
package trustsync

import (
	"bytes"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
)

// Cert is one certificate of a source or of the target, with its PEM block.
type Cert struct {
	certs.Certificate
	PEM []byte
}

// Anchor reports whether the certificate can anchor trust: a CA, or a self-signed certificate (its own
// trust anchor, as some identity providers publish).
func (c Cert) Anchor() bool { return c.IsCA || c.SelfSigned() }

// ErrNoCertificate means a value holds no certificate.
var ErrNoCertificate = errors.New("no certificate")

// Parse reads every certificate of a PEM value, in order, each with its own PEM block.
func Parse(data []byte) ([]Cert, error) {
	var out []Cert
	err := certs.EachBlock(data, func(block *pem.Block, _, _ int) error {
		if block.Type != "CERTIFICATE" {
			return nil
		}
		one := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes})
		b, err := certs.ParsePEM(one)
		if err != nil {
			return err
		}
		out = append(out, Cert{Certificate: b.Certificates[0], PEM: one})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNoCertificate
	}
	return out, nil
}

// Anchors keeps the certificates that can anchor trust (Anchor), in order.
func Anchors(cs []Cert) []Cert {
	var out []Cert
	for _, c := range cs {
		if c.Anchor() {
			out = append(out, c)
		}
	}
	return out
}

// Input is what Compute looks at.
type Input struct {
	Now time.Time
	// Sources are each source's trust anchors, in spec order.
	Sources [][]Cert
	// Current is every certificate the target key holds now, in order.
	Current []Cert
	// Retained is the status' record of the CAs kept after they left the sources.
	Retained []api.RetainedCA
	// KeepPrevious is spec.keepPrevious (0: none).
	KeepPrevious time.Duration
}

// Result is what the target should hold.
type Result struct {
	// Bundle is the target's certificates, in order: the sources', then the retained ones.
	Bundle []Cert
	// Retained is the new status record of the CAs kept after they left the sources.
	Retained []api.RetainedCA
	// Changed says the target must be written: Bundle differs from Current (certificates or order).
	Changed bool
	// NextChange is when a retained CA leaves the target; zero when none is retained.
	NextChange time.Time
}

// Compute decides the target's bundle.
func Compute(in Input) Result {
	var r Result
	inBundle := map[string]bool{}
	for _, src := range in.Sources {
		for _, c := range src {
			if !inBundle[c.Fingerprint] {
				inBundle[c.Fingerprint] = true
				r.Bundle = append(r.Bundle, c)
			}
		}
	}
	left := map[string]metav1.Time{}
	for _, k := range in.Retained {
		left[k.Fingerprint] = k.LeftSourcesAt
	}
	for _, c := range in.Current {
		// Only a trust anchor is kept: anything else in the target was never the sync's to keep.
		if inBundle[c.Fingerprint] || !c.Anchor() || in.KeepPrevious <= 0 {
			continue
		}
		at, ok := left[c.Fingerprint]
		if !ok {
			at = metav1.Time{Time: in.Now.UTC().Truncate(time.Second)}
		}
		until := at.Add(in.KeepPrevious)
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
		if !in.Now.Before(until) {
			continue
		}
		inBundle[c.Fingerprint] = true
		r.Bundle = append(r.Bundle, c)
		r.Retained = append(r.Retained, api.RetainedCA{Fingerprint: c.Fingerprint, Subject: c.Subject, LeftSourcesAt: at, Until: metav1.Time{Time: until.UTC()}})
		if r.NextChange.IsZero() || until.Before(r.NextChange) {
			r.NextChange = until
		}
	}
	r.Changed = !slices.Equal(Fingerprints(r.Bundle), Fingerprints(in.Current))
	return r
}

// Fingerprints lists the certificates' fingerprints, in order.
func Fingerprints(cs []Cert) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Fingerprint
	}
	return out
}

// Encode is the PEM bundle the target key is written with.
func Encode(cs []Cert) []byte {
	var b bytes.Buffer
	for _, c := range cs {
		b.Write(c.PEM)
	}
	return b.Bytes()
}

// Subjects names the certificates for a message: "CN=root-2, CN=root-1".
func Subjects(cs []Cert) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Subject
	}
	return strings.Join(names, ", ")
}
