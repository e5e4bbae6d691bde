package kubeadmrenew

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/disk"
)

// file is one named file as read: the Item reported, and what a renewal needs.
type file struct {
	Item
	rel, keyRel string
	kubeconfig  bool
	data        []byte
	mode        fs.FileMode
	keyData     []byte
	keyMode     fs.FileMode
	cert        *x509.Certificate
	// pub is the current key's public half (the key file's, or the kubeconfig's embedded key's).
	pub crypto.PublicKey
	// config, user and cluster: a kubeconfig's content, and the entries of its current context.
	config        *clientcmdapi.Config
	user, cluster string
}

// ReasonInterrupted: an interrupted run left the pair with its new key and its new certificate staged
// beside it; Renew completes the pair (it is not renewed again).
const ReasonInterrupted Reason = "Interrupted"

// Due reports, without changing anything, what Renew would renew and why, and why not for the others.
func Due(opts Options) ([]Item, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	f, err := openFolder(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := gather(f, &opts)
	items := make([]Item, len(files))
	for i, fl := range files {
		items[i] = fl.Item
	}
	return items, nil
}

// gather reads the named files and decides each.
func gather(f *folder, opts *Options) []*file {
	now := opts.Now()
	var files []*file
	for _, r := range renewable {
		if !slices.Contains(opts.Names, r.name) {
			continue
		}
		fl := &file{Item: Item{Name: r.name, CA: r.ca}, kubeconfig: r.kubeconfig}
		fl.rel, fl.keyRel = paths(r.name, r.kubeconfig)
		fl.Path, fl.KeyPath = f.path(fl.rel), f.path(fl.keyRel)
		fl.Reason, fl.Message = read(f, fl)
		if fl.Reason == "" {
			fl.Due, fl.Reason = decide(fl.NotAfter, now, opts.RenewBefore)
		}
		files = append(files, fl)
	}
	return files
}

// decide is the renewal rule: due when RenewBefore is 0 or the certificate expires within it.
func decide(notAfter, now time.Time, renewBefore time.Duration) (bool, Reason) {
	switch {
	case renewBefore == 0:
		return true, ReasonRenewAlways
	case notAfter.Sub(now) <= renewBefore:
		return true, ReasonDue
	default:
		return false, ReasonNotDue
	}
}

// read reads fl and its CA's key presence, in kubeadm's order: a missing file, then an externally
// managed CA, then the file's content. It returns a reason when fl cannot renew.
func read(f *folder, fl *file) (Reason, string) {
	ok, err := f.exists(fl.rel)
	if err != nil {
		return ReasonInvalid, err.Error()
	}
	if !ok {
		return ReasonMissing, ""
	}
	caKey := disk.KubeadmCAKeyPath(fl.CA)
	ok, err = f.exists(caKey)
	if err != nil {
		return ReasonInvalid, err.Error()
	}
	if fl.data, fl.mode, err = f.read(fl.rel); err != nil {
		return ReasonInvalid, err.Error()
	}
	if fl.kubeconfig {
		err = fl.parseKubeconfig()
	} else {
		err = fl.parsePair(f)
	}
	if fl.cert != nil {
		c := certs.FromX509(fl.cert)
		fl.Fingerprint, fl.NotAfter = c.Fingerprint, c.NotAfter
	}
	switch {
	case !ok:
		return ReasonExternallyManaged, "no " + f.path(caKey)
	case errors.Is(err, errStaged):
		return ReasonInterrupted, err.Error()
	case err != nil:
		return ReasonInvalid, err.Error()
	}
	return "", ""
}

// errStaged: the key is new and the new certificate is staged (see complete).
var errStaged = errors.New("the key was replaced and the new certificate is staged beside the old one")

func (fl *file) parsePair(f *folder) error {
	var err error
	if fl.cert, err = parseCertificate(fl.data); err != nil {
		return fmt.Errorf("%s: %w", fl.Path, err)
	}
	if fl.keyData, fl.keyMode, err = f.read(fl.keyRel); err != nil {
		return err
	}
	key, err := parseKey(fl.keyData)
	if err != nil {
		return fmt.Errorf("%s: %w", fl.KeyPath, err)
	}
	fl.pub = key.Public()
	if sameKey(fl.cert.PublicKey, fl.pub) {
		return nil
	}
	if staged, _, err := f.read(fl.rel + stagedSuffix); err == nil {
		if c, err := parseCertificate(staged); err == nil && sameKey(c.PublicKey, fl.pub) {
			return errStaged
		}
	}
	return fmt.Errorf("%s and %s do not match", fl.Path, fl.KeyPath)
}

// parseKubeconfig reads the client certificate and key of the current context, which kubeadm requires
// embedded, as it requires the cluster's CA.
func (fl *file) parseKubeconfig() error {
	cfg, err := clientcmd.Load(fl.data)
	if err != nil {
		return fmt.Errorf("%s: %w", fl.Path, err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return fmt.Errorf("%s: no context %q", fl.Path, cfg.CurrentContext)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	if !ok || len(cluster.CertificateAuthorityData) == 0 {
		return fmt.Errorf("%s: cluster %q has no embedded certificate authority", fl.Path, ctx.Cluster)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok || len(user.ClientCertificateData) == 0 {
		return fmt.Errorf("%s: user %q has no embedded client certificate", fl.Path, ctx.AuthInfo)
	}
	if fl.cert, err = parseCertificate(user.ClientCertificateData); err != nil {
		return fmt.Errorf("%s: user %q: %w", fl.Path, ctx.AuthInfo, err)
	}
	if key, err := parseKey(user.ClientKeyData); err == nil {
		fl.pub = key.Public()
	} else {
		fl.pub = fl.cert.PublicKey
	}
	fl.config, fl.user, fl.cluster = cfg, ctx.AuthInfo, ctx.Cluster
	return nil
}
