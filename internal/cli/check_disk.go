package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/disk"
)

// diskGroup is the certificates of one file, or of one entry of a kubeconfig.
type diskGroup struct {
	source disk.Source
	certs  []certs.Certificate
}

// groupFound groups what disk found by file and kubeconfig entry, in the order first seen.
func groupFound(found []disk.Found) []*diskGroup {
	var out []*diskGroup
	byKey := map[disk.Source]*diskGroup{}
	for _, f := range found {
		g := byKey[f.Source]
		if g == nil {
			g = &diskGroup{source: f.Source}
			byKey[f.Source] = g
			out = append(out, g)
		}
		g.certs = append(g.certs, f.Certificate)
	}
	return out
}

func (g *diskGroup) earliest() *certs.Certificate {
	b := certs.Bundle{Certificates: g.certs}
	return b.FirstToExpire()
}

func (g *diskGroup) item() CheckItem {
	return CheckItem{
		Source:       CheckSource{Kind: checkKindFile, Name: g.source.Name, Path: g.source.Path, Entry: g.source.Entry},
		Certificate:  checkCertificate(g.earliest()),
		Certificates: len(g.certs),
	}
}

func diskProblems(r disk.Result) []CheckProblem {
	out := make([]CheckProblem, 0, len(r.Problems))
	for _, p := range r.Problems {
		out = append(out, CheckProblem{Source: CheckSource{Kind: checkKindFile, Name: filepath.Base(p.Path), Path: p.Path}, Message: p.Message})
	}
	for _, k := range r.KeysWithoutCertificate {
		out = append(out, keyWithoutCertificate(CheckSource{Kind: checkKindFile, Name: k.Name, Path: k.Path}))
	}
	return out
}

// checkFileItems is the --files section: one item per file or kubeconfig entry.
func checkFileItems(r disk.Result) *checkSection {
	s := &checkSection{problems: diskProblems(r)}
	for _, g := range groupFound(r.Certificates) {
		s.items = append(s.items, g.item())
	}
	return s
}

// kubeadmCAs are the certificate authorities of a kubeadm control plane and where kubeadm keeps their
// keys (relative to its folder). A CA whose key is absent is managed outside kubeadm, and so is every
// certificate it signs: `kubeadm certs renew` cannot renew them.
var kubeadmCAs = []struct{ name, key string }{
	{"ca", "pki/ca.key"},
	{"etcd-ca", "pki/etcd/ca.key"},
	{"front-proxy-ca", "pki/front-proxy-ca.key"},
}

// kubeadmItems is the --kubeadm section: kubeadm's names, each certificate's signing CA among the
// folder's, and whether that CA is managed outside kubeadm.
func kubeadmItems(dir string, r disk.Result) *checkSection {
	s := &checkSection{problems: diskProblems(r), dir: dir}
	type ca struct {
		name     string
		cert     *certs.Certificate
		external bool
	}
	var cas []ca
	groups := groupFound(r.Certificates)
	for _, k := range kubeadmCAs {
		for _, g := range groups {
			if g.source.Name == k.name && g.source.Entry == "" {
				// Only the key's existence is looked at: it is never opened.
				_, err := os.Stat(filepath.Join(dir, k.key))
				cas = append(cas, ca{name: k.name, cert: g.earliest(), external: errors.Is(err, fs.ErrNotExist)})
			}
		}
	}
	signer := func(c *certs.Certificate) *ca {
		for i := range cas {
			if cas[i].cert.Fingerprint == c.Fingerprint {
				continue // a CA does not sign itself here
			}
			if c.AuthorityKeyID != "" && cas[i].cert.SubjectKeyID != "" {
				if c.AuthorityKeyID == cas[i].cert.SubjectKeyID {
					return &cas[i]
				}
				continue
			}
			if c.Issuer == cas[i].cert.Subject {
				return &cas[i]
			}
		}
		return nil
	}
	isCAFile := func(fp string) *ca {
		for i := range cas {
			if cas[i].cert.Fingerprint == fp {
				return &cas[i]
			}
		}
		return nil
	}
	for _, g := range groups {
		c := g.earliest()
		it := g.item()
		k := &CheckKubeadm{Name: g.source.Name}
		if self := isCAFile(c.Fingerprint); self != nil {
			if g.source.Entry != "" {
				// A kubeconfig embedding the CA that pki/ holds adds nothing to the CA's own row.
				continue
			}
			k.ExternallyManaged = self.external
		}
		if by := signer(c); by != nil {
			k.CertificateAuthority = by.name
			k.ExternallyManaged = by.external
		}
		it.Kubeadm = k
		s.items = append(s.items, it)
	}
	return s
}

// isKubeadmCA reports whether the item is one of kubeadm's CAs (its second table).
func isKubeadmCA(it CheckItem) bool {
	if it.Kubeadm == nil {
		return false
	}
	if it.Source.Entry != "" {
		// A kubeconfig embedding a CA that is not the folder's: list it with the CAs.
		return it.Certificate != nil && it.Certificate.IsCA
	}
	for _, k := range kubeadmCAs {
		if it.Kubeadm.Name == k.name {
			return true
		}
	}
	return false
}
