// Package nodeagent is `certrollout node-agent`: on one control-plane node it reads the kubeadm PKI and
// kubeconfigs, the kubelet's certificates and an external etcd's folder (Scan), learns from the static pod
// manifests which component serves or uses which file (Manifests), connects to every serving endpoint to
// see the certificate it really presents (Probe), decides per component whether it still serves or uses
// an old certificate (Decide, pure), and publishes the result as the node's NodeCertificates (Publisher).
//
// It reads files and never writes them; private keys are skipped by internal/certs and never kept.
package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/disk"
)

// Defaults of the folders read, as paths on the host.
const (
	DefaultHostRoot      = "/host"
	DefaultKubeadmDir    = disk.DefaultKubeadmDir
	DefaultKubeletPKIDir = "/var/lib/kubelet/pki"
)

// Kubelet file names, as NodeCertificateFile.Name.
const (
	FileKubeletClient  = "kubelet-client"
	FileKubeletServing = "kubelet-serving"
)

// ScanOptions are the folders to read. Dirs are paths on the host; HostRoot is where the host is mounted
// ("/" or "" when running on the host itself).
type ScanOptions struct {
	HostRoot      string
	KubeadmDir    string
	KubeletPKIDir string
	// EtcdCertDir is an external etcd's certificate folder (kubespray's /etc/ssl/etcd); empty: none.
	EtcdCertDir string
}

func (o ScanOptions) root() string {
	if o.HostRoot == "/" {
		return ""
	}
	return strings.TrimRight(o.HostRoot, "/")
}

// hostPath strips the root from a path read under it.
func (o ScanOptions) hostPath(p string) string {
	r := o.root()
	if r == "" {
		return p
	}
	rel := strings.TrimPrefix(p, r)
	if !strings.HasPrefix(rel, "/") {
		rel = "/" + rel
	}
	return rel
}

// ScannedFile is one file found, before since is settled.
type ScannedFile struct {
	File api.NodeCertificateFile
	// ModTime is the file's modification time, since's value the first time the agent sees it.
	ModTime time.Time
}

// ScanResult is what Scan read.
type ScanResult struct {
	// KubeadmDir is the folder read, on the host.
	KubeadmDir string
	// KubeadmFound: the kubeadm folder exists and holds at least one of kubeadm's files.
	KubeadmFound bool
	Files        []ScannedFile
	Problems     []api.NodeProblem
}

// Scan reads the node's certificate files. It never fails: what it cannot read is a problem.
func Scan(o ScanOptions) ScanResult {
	if o.KubeadmDir == "" {
		o.KubeadmDir = DefaultKubeadmDir
	}
	if o.KubeletPKIDir == "" {
		o.KubeletPKIDir = DefaultKubeletPKIDir
	}
	out := ScanResult{KubeadmDir: o.KubeadmDir}
	root := o.root()
	problems := func(r disk.Result) {
		for _, p := range r.Problems {
			out.Problems = append(out.Problems, api.NodeProblem{Path: o.hostPath(p.Path), Message: p.Message})
		}
	}

	// kubeadm's, in its order.
	kdir := filepath.Join(root, o.KubeadmDir)
	kr := disk.KubeadmAt(root, o.KubeadmDir)
	problems(kr)
	out.KubeadmFound = len(kr.Certificates) > 0
	cas := disk.KubeadmCAs(kdir, kr)
	for _, name := range kubeadmOrder {
		c, path := pick(kr.Certificates, name)
		if c == nil {
			// disk skips a file that holds no certificate (it may be a key); kubeadm's names hold one.
			p := filepath.Join(kdir, disk.KubeadmPath(name))
			if _, err := os.Stat(p); err == nil && !out.hasProblem(o.hostPath(p)) {
				out.Problems = append(out.Problems, api.NodeProblem{Path: o.hostPath(p), Message: "holds no certificate"})
			}
			continue
		}
		f := api.NodeCertificateFile{Name: name, Path: o.hostPath(path), Set: api.FileSetKubeadm, RenewedBy: api.RenewedByKubeadm}
		for _, ca := range cas {
			if ca.Name == name {
				f.CertificateAuthority = true
				f.ExternallyManaged = ca.External
			}
		}
		if by := disk.SignerOf(cas, c); by != nil {
			f.Authority = by.Name
			f.ExternallyManaged = by.External
		}
		switch {
		case f.ExternallyManaged:
			f.RenewedBy = api.RenewedByExternal
		case f.CertificateAuthority:
			// `kubeadm certs renew` renews leaves and kubeconfigs only; its CAs (ten years) are renewed
			// by nothing, by hand.
			f.RenewedBy = api.RenewedByNobody
		}
		out.add(f, c, path)
	}

	// The kubelet's.
	kubelet := []struct{ name, file, renewedBy string }{
		{FileKubeletClient, "kubelet-client-current.pem", api.RenewedByKubelet},
		// With serving certificate rotation (serverTLSBootstrap) the kubelet asks the API for one and
		// rotates it; without, it generated kubelet.crt itself once and nobody ever renews it.
		{FileKubeletServing, "kubelet-server-current.pem", api.RenewedByKubelet},
		{FileKubeletServing, "kubelet.crt", api.RenewedByNobody},
	}
	for _, k := range kubelet {
		if out.has(k.name) {
			continue
		}
		path := filepath.Join(root, o.KubeletPKIDir, k.file)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// kubelet-client-current.pem links to /var/lib/kubelet/pki/kubelet-client-<time>.pem: on the host.
		real := disk.ResolveUnder(root, filepath.Join(o.KubeletPKIDir, k.file))
		r := disk.Files([]string{real})
		for _, p := range r.Problems {
			out.Problems = append(out.Problems, api.NodeProblem{Path: o.hostPath(path), Message: p.Message})
		}
		c, _ := pick(r.Certificates, "")
		if c == nil {
			if len(r.Problems) == 0 {
				out.Problems = append(out.Problems, api.NodeProblem{Path: o.hostPath(path), Message: "holds no certificate"})
			}
			continue
		}
		f := api.NodeCertificateFile{Name: k.name, Path: o.hostPath(path), Set: api.FileSetKubelet, RenewedBy: k.renewedBy}
		if by := disk.SignerOf(cas, c); by != nil {
			f.Authority = by.Name
		}
		out.add(f, c, real)
	}

	// A kubelet.conf that references the kubelet's rotated client certificate (as after TLS bootstrap)
	// is renewed by the kubelet, not by kubeadm.
	for i := range out.Files {
		for _, k := range out.Files {
			if out.Files[i].File.Name == "kubelet.conf" && k.File.Name == FileKubeletClient && k.File.Fingerprint == out.Files[i].File.Fingerprint {
				out.Files[i].File.RenewedBy = api.RenewedByKubelet
			}
		}
	}

	// An external etcd's folder: every certificate file in it, renewed by whoever installed etcd.
	if o.EtcdCertDir != "" {
		dir := filepath.Join(root, o.EtcdCertDir)
		r := disk.Files([]string{dir})
		problems(r)
		seen := map[string]bool{}
		for _, fd := range r.Certificates {
			if seen[fd.Source.Path] {
				continue
			}
			seen[fd.Source.Path] = true
			c, _ := pick(r.Certificates, fd.Source.Name)
			if c == nil {
				continue // a kubeconfig whose only certificate is its cluster's CA: no certificate of its own
			}
			rel, err := filepath.Rel(dir, fd.Source.Path)
			if err != nil {
				rel = filepath.Base(fd.Source.Path)
			}
			f := api.NodeCertificateFile{
				Name: "etcd/" + rel, Path: o.hostPath(fd.Source.Path), Set: api.FileSetEtcd, RenewedBy: api.RenewedByExternal,
				CertificateAuthority: c.IsCA && c.SelfSigned(),
			}
			out.add(f, c, fd.Source.Path)
		}
	}
	return out
}

// kubeadmOrder is kubeadm's order (`kubeadm certs check-expiration`): its leaves, then its CAs.
var kubeadmOrder = []string{
	"admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf",
	"apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client",
	"etcd-server", "etcd-peer", "etcd-healthcheck-client",
	"ca", "front-proxy-ca", "etcd-ca",
}

// pick returns the certificate that stands for a file (by Source.Name, any when name is ""): a
// kubeconfig's client certificate (its users' entries, not the CA it embeds), else the file's leaf.
func pick(found []disk.Found, name string) (*certs.Certificate, string) {
	var b certs.Bundle
	path := ""
	user := false
	for _, f := range found {
		if name != "" && f.Source.Name != name {
			continue
		}
		if path != "" && f.Source.Path != path {
			continue
		}
		path = f.Source.Path
		if strings.HasPrefix(f.Source.Entry, "user/") {
			if !user {
				b.Certificates = nil
				user = true
			}
			b.Certificates = append(b.Certificates, f.Certificate)
		} else if !user && !strings.HasPrefix(f.Source.Entry, "cluster/") {
			b.Certificates = append(b.Certificates, f.Certificate)
		}
	}
	if len(b.Certificates) == 0 {
		return nil, path
	}
	// A CA file is its first certificate; anything else is its leaf.
	c := b.Leaf()
	return c, path
}

func (r *ScanResult) hasProblem(path string) bool {
	for _, p := range r.Problems {
		if p.Path == path {
			return true
		}
	}
	return false
}

func (r *ScanResult) has(name string) bool {
	for _, f := range r.Files {
		if f.File.Name == name {
			return true
		}
	}
	return false
}

func (r *ScanResult) add(f api.NodeCertificateFile, c *certs.Certificate, path string) {
	f.Subject, f.Issuer = c.Subject, c.Issuer
	f.NotBefore, f.NotAfter = metav1.NewTime(c.NotBefore), metav1.NewTime(c.NotAfter)
	f.Fingerprint = c.Fingerprint
	sf := ScannedFile{File: f}
	if fi, err := os.Stat(path); err == nil {
		sf.ModTime = fi.ModTime()
	} else {
		r.Problems = append(r.Problems, api.NodeProblem{Path: f.Path, Message: fmt.Sprintf("reading its modification time: %v", err)})
	}
	r.Files = append(r.Files, sf)
}

// Since settles when each file's certificate appeared at its path: the previous scan's since when the
// fingerprint there is unchanged; the file's modification time the first time (no previous status, or a
// path it did not list). When the fingerprint changed, it changed after the previous scan (prevScan) and
// by now: the modification time, kept within those two. Not simply now: an agent that starts after a
// reboot sees a renewal made before the reboot, and components restarted by the reboot loaded it.
// Times are whole seconds, as the API stores them.
func Since(files []ScannedFile, prev []api.NodeCertificateFile, prevScan, now time.Time) []api.NodeCertificateFile {
	out := make([]api.NodeCertificateFile, 0, len(files))
	for _, sf := range files {
		f := sf.File
		since := sf.ModTime
		for _, p := range prev {
			if p.Path != f.Path || p.Name != f.Name {
				continue
			}
			switch {
			case p.Fingerprint == f.Fingerprint:
				since = p.Since.Time
			case since.After(now):
				since = now
			case since.Before(prevScan):
				since = prevScan
			}
		}
		f.Since = metav1.NewTime(since.UTC().Truncate(time.Second))
		out = append(out, f)
	}
	return out
}
