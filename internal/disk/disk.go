// Package disk finds certificates on disk for `certrollout check`: PEM and DER files, kubeconfigs (the
// certificates they embed and the files they reference), and a kubeadm control plane's PKI folder. It reads
// files and parses; it never keeps a private key (certs skips key blocks) and never writes.
package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/certrollout/certrollout/internal/certs"
)

// Source is one place a certificate was found.
type Source struct {
	// Path is the file.
	Path string `json:"path"`
	// Entry is where in a kubeconfig: "cluster/<name>" or "user/<name>"; empty for a certificate file.
	Entry string `json:"entry,omitempty"`
	// Name is a short name for tables: the kubeadm name ("apiserver", "etcd-peer", "admin.conf") or the
	// path relative to the folder searched.
	Name string `json:"name"`
}

// Found is a certificate and where it was.
type Found struct {
	Source      Source            `json:"source"`
	Certificate certs.Certificate `json:"certificate"`
}

// Problem is a file that could not be read or parsed, and why.
type Problem struct {
	Path string `json:"path"`
	Err  error  `json:"-"`
	// Message is Err's text, for JSON.
	Message string `json:"message"`
}

func (p Problem) Error() string { return p.Path + ": " + p.Message }

// Result is everything a scan found.
type Result struct {
	Certificates []Found   `json:"certificates"`
	Problems     []Problem `json:"problems,omitempty"`
	// KeysWithoutCertificate are files that hold a private key and no certificate where one is expected:
	// a name that does not say "key" (server.pem, tls.crt; certs.NamedLikeKey), or any key file when the
	// scan found no certificate at all (check --files key.pem must not just say "no certificates").
	KeysWithoutCertificate []Source `json:"keysWithoutCertificate,omitempty"`
	// keyFiles are the key-named files holding only a key: expected beside certificates (privkey.pem).
	keyFiles []Source
	// root is prefixed to the absolute paths kubeconfigs reference (KubeadmAt): a node's kubelet.conf names
	// /var/lib/kubelet/pki/kubelet-client-current.pem, which a container sees under the host's mount.
	root string
}

func (r *Result) problem(path string, err error) {
	r.Problems = append(r.Problems, Problem{Path: path, Err: err, Message: err.Error()})
}

// Files scans the files that patterns (shell globs) match. A pattern that matches nothing is a problem:
// a typo must not look like "no certificates". A folder is walked.
func Files(patterns []string) Result {
	var r Result
	seen := map[string]bool{}
	for _, pattern := range patterns {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			r.problem(pattern, fmt.Errorf("bad pattern: %w", err))
			continue
		}
		if len(matches) == 0 {
			r.problem(pattern, errors.New("no such file"))
			continue
		}
		for _, m := range matches {
			r.walk(m, seen)
		}
	}
	r.sort()
	return r
}

func (r *Result) walk(root string, seen map[string]bool) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			r.problem(path, err)
			return nil
		}
		if d.IsDir() || seen[path] {
			return nil
		}
		seen[path] = true
		name, _ := filepath.Rel(filepath.Dir(root), path)
		if root == path {
			name = filepath.Base(path)
		}
		r.file(path, name)
		return nil
	})
	if err != nil {
		r.problem(root, err)
	}
}

// file reads one file as a kubeconfig if it looks like one, else as certificates. Files that hold neither
// (keys, sa.pub, notes) are skipped, but a private key where a certificate is expected is reported (see
// KeysWithoutCertificate).
func (r *Result) file(path, name string) {
	data, err := readFile(path)
	if err != nil {
		r.problem(path, err)
		return
	}
	if looksLikeKubeconfig(data) {
		r.kubeconfig(path, name, data)
		return
	}
	b, err := certs.Parse(data)
	if errors.Is(err, certs.ErrNoCertificate) {
		switch {
		case !certs.KeyWithoutCertificate(data):
		case certs.NamedLikeKey(name):
			r.keyFiles = append(r.keyFiles, Source{Path: path, Name: name})
		default:
			r.KeysWithoutCertificate = append(r.KeysWithoutCertificate, Source{Path: path, Name: name})
		}
		return
	}
	if err != nil {
		r.problem(path, err)
		return
	}
	for _, c := range b.Certificates {
		r.Certificates = append(r.Certificates, Found{Source: Source{Path: path, Name: name}, Certificate: c})
	}
}

// maxFile bounds what is read of one file: certificate files and kubeconfigs are kilobytes.
const maxFile = 16 << 20

// readFile reads a regular file of at most maxFile bytes. A device, a FIFO or a socket (a kubeconfig may
// name /dev/zero, a folder may hold a pipe) would block or never end; a huge file is not a certificate.
func readFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) //nolint:gosec // the files the user named, or that a kubeconfig they named references, as kubectl reads them
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("larger than %d MiB: not a certificate file", maxFile>>20)
	}
	return data, nil
}

func looksLikeKubeconfig(data []byte) bool {
	s := string(data)
	return strings.Contains(s, "kind: Config") || (strings.Contains(s, "clusters:") && strings.Contains(s, "users:"))
}

// kubeconfig reads the certificates a kubeconfig embeds or references: each cluster's certificate
// authority and each user's client certificate. Referenced paths are relative to the kubeconfig's folder.
func (r *Result) kubeconfig(path, name string, data []byte) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		r.problem(path, fmt.Errorf("not a valid kubeconfig: %w", err))
		return
	}
	dir := filepath.Dir(path)
	add := func(entry string, inline []byte, file string) {
		if len(inline) == 0 && file == "" {
			return
		}
		from := path
		if len(inline) == 0 {
			switch {
			case !filepath.IsAbs(file):
				file = filepath.Join(dir, file)
			case r.root != "":
				file = ResolveUnder(r.root, file)
			}
			data, err := readFile(file)
			if err != nil {
				r.problem(path, fmt.Errorf("%s references %s: %w", entry, file, err))
				return
			}
			inline, from = data, file
		}
		b, err := certs.Parse(inline)
		if err != nil {
			r.problem(from, fmt.Errorf("%s: %w", entry, err))
			return
		}
		for _, c := range b.Certificates {
			r.Certificates = append(r.Certificates, Found{Source: Source{Path: path, Entry: entry, Name: name}, Certificate: c})
		}
	}
	for _, n := range sortedKeys(cfg.Clusters) {
		c := cfg.Clusters[n]
		add("cluster/"+n, c.CertificateAuthorityData, c.CertificateAuthority)
	}
	for _, n := range sortedKeys(cfg.AuthInfos) {
		u := cfg.AuthInfos[n]
		add("user/"+n, u.ClientCertificateData, u.ClientCertificate)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sort orders the certificates soonest first, and settles which key files to report.
func (r *Result) sort() {
	if len(r.Certificates) == 0 {
		r.KeysWithoutCertificate = append(r.KeysWithoutCertificate, r.keyFiles...)
	}
	r.keyFiles = nil
	sort.SliceStable(r.Certificates, func(i, j int) bool {
		a, b := r.Certificates[i], r.Certificates[j]
		if !a.Certificate.NotAfter.Equal(b.Certificate.NotAfter) {
			return a.Certificate.NotAfter.Before(b.Certificate.NotAfter)
		}
		return a.Source.Name+a.Source.Entry < b.Source.Name+b.Source.Entry
	})
}

// DefaultKubeadmDir is where kubeadm keeps a control plane's configuration.
const DefaultKubeadmDir = "/etc/kubernetes"

// kubeadmLayout names what kubeadm writes under its folder, as `kubeadm certs check-expiration` lists it.
var kubeadmLayout = []struct{ name, path string }{
	{"admin.conf", "admin.conf"},
	{"super-admin.conf", "super-admin.conf"},
	{"controller-manager.conf", "controller-manager.conf"},
	{"scheduler.conf", "scheduler.conf"},
	{"kubelet.conf", "kubelet.conf"},
	{"apiserver", "pki/apiserver.crt"},
	{"apiserver-kubelet-client", "pki/apiserver-kubelet-client.crt"},
	{"apiserver-etcd-client", "pki/apiserver-etcd-client.crt"},
	{"front-proxy-client", "pki/front-proxy-client.crt"},
	{"etcd-server", "pki/etcd/server.crt"},
	{"etcd-peer", "pki/etcd/peer.crt"},
	{"etcd-healthcheck-client", "pki/etcd/healthcheck-client.crt"},
	{"ca", "pki/ca.crt"},
	{"front-proxy-ca", "pki/front-proxy-ca.crt"},
	{"etcd-ca", "pki/etcd/ca.crt"},
}

// Kubeadm scans a kubeadm control plane's folder (DefaultKubeadmDir when dir is empty): the certificates
// and kubeconfigs kubeadm writes, by their kubeadm names. Files kubeadm may not have written (an external
// etcd, super-admin.conf before v1.29, kubelet.conf on a control plane that rotates it) are skipped when
// absent; a folder without any of them is a problem.
func Kubeadm(dir string) Result {
	return KubeadmAt("", dir)
}

// KubeadmAt is Kubeadm for a host mounted at root ("" or "/" for this one): dir is the folder on the host,
// and the absolute paths its kubeconfigs reference are read under root too. Paths in the result are under
// root.
func KubeadmAt(root, dir string) Result {
	if dir == "" {
		dir = DefaultKubeadmDir
	}
	if root == "/" {
		root = ""
	}
	r := Result{root: root}
	if root != "" {
		dir = filepath.Join(root, dir)
	}
	if _, err := os.Stat(dir); err != nil {
		r.problem(dir, err)
		return r
	}
	found := 0
	for _, f := range kubeadmLayout {
		path := filepath.Join(dir, f.path)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		found++
		r.file(path, f.name)
	}
	if found == 0 {
		r.problem(dir, errors.New("no kubeadm certificates or kubeconfigs here (expected pki/ca.crt, admin.conf...)"))
	}
	r.sort()
	return r
}

// KubeadmPath returns where kubeadm keeps the file it calls name, relative to its folder ("" for a name
// it does not write).
func KubeadmPath(name string) string {
	for _, f := range kubeadmLayout {
		if f.name == name {
			return f.path
		}
	}
	return ""
}

// ResolveUnder returns the file that path (absolute, on a host mounted at root) names, under root: its
// symbolic links are followed with absolute targets taken on the host, as the kubelet's
// kubelet-client-current.pem -> /var/lib/kubelet/pki/kubelet-client-<time>.pem is. Only links in the
// last element are followed (the folders kubeadm and the kubelet use are real folders). What cannot be
// resolved is returned as it is, for the read to report.
func ResolveUnder(root, path string) string {
	p := filepath.Join(root, path)
	for range 16 {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p
		}
		target, err := os.Readlink(p)
		if err != nil {
			return p
		}
		if filepath.IsAbs(target) {
			p = filepath.Join(root, target)
		} else {
			p = filepath.Join(filepath.Dir(p), target)
		}
	}
	return p
}

// KubeadmCA is one of a kubeadm folder's certificate authorities.
type KubeadmCA struct {
	// Name is kubeadm's: ca, etcd-ca or front-proxy-ca.
	Name        string
	Certificate certs.Certificate
	// External: its key is not in the folder, so kubeadm cannot renew what it signs.
	External bool
}

// kubeadmCAKeys are kubeadm's CAs and where it keeps their keys (relative to its folder).
var kubeadmCAKeys = []struct{ name, key string }{
	{"ca", "pki/ca.key"},
	{"etcd-ca", "pki/etcd/ca.key"},
	{"front-proxy-ca", "pki/front-proxy-ca.key"},
}

// KubeadmCAKeyPath returns where kubeadm keeps the key of its CA named ca (ca, etcd-ca or front-proxy-ca),
// relative to its folder; "" for another name.
func KubeadmCAKeyPath(ca string) string {
	for _, k := range kubeadmCAKeys {
		if k.name == ca {
			return k.key
		}
	}
	return ""
}

// KubeadmCAs returns the CAs a Kubeadm or KubeadmAt result found in dir (the folder as read, under the
// root), each with whether its key is absent. The keys are only stat'ed, never opened. This is the rule
// `check --kubeadm` applies (internal/cli.kubeadmItems).
func KubeadmCAs(dir string, r Result) []KubeadmCA {
	var cas []KubeadmCA
	for _, k := range kubeadmCAKeys {
		for _, f := range r.Certificates {
			if f.Source.Name == k.name && f.Source.Entry == "" {
				_, err := os.Stat(filepath.Join(dir, k.key))
				cas = append(cas, KubeadmCA{Name: k.name, Certificate: f.Certificate, External: errors.Is(err, fs.ErrNotExist)})
				break
			}
		}
	}
	return cas
}

// SignerOf returns the CA among cas that signed c, by authority and subject key IDs when both are known,
// else by issuer name; nil when none did or c is one of them.
func SignerOf(cas []KubeadmCA, c *certs.Certificate) *KubeadmCA {
	for i := range cas {
		ca := &cas[i]
		if ca.Certificate.Fingerprint == c.Fingerprint {
			continue
		}
		if c.AuthorityKeyID != "" && ca.Certificate.SubjectKeyID != "" {
			if c.AuthorityKeyID == ca.Certificate.SubjectKeyID {
				return ca
			}
			continue
		}
		if c.Issuer == ca.Certificate.Subject {
			return ca
		}
	}
	return nil
}
