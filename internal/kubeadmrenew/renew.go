package kubeadmrenew

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/keyutil"

	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/disk"
)

// The steps of a run, in order, as Options.step sees them. A crash may happen after any of them.
const (
	stepCompleted   = "completed"    // an interrupted pair was completed
	stepBackedUp    = "backed-up"    // every due file is copied to the backup folder
	stepStaged      = "staged"       // the new file (and key) are written beside the old ones
	stepKeyReplaced = "key-replaced" // a pair's new key is in place, its certificate still staged
	stepReplaced    = "replaced"     // the file is renewed
)

// Renew renews what is due (see Due): it first completes any pair an interrupted run left half replaced,
// then backs up every due file, then replaces them one by one. What it did so far is returned with an
// error too. It holds a lock in BackupDir while it runs: a second Renew at the same time fails.
func Renew(opts Options) (Result, error) {
	var res Result
	if err := opts.validate(); err != nil {
		return res, err
	}
	release, err := lock(opts.BackupDir)
	if err != nil {
		return res, err
	}
	defer release()
	f, err := openFolder(opts.Dir)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if res.Completed, err = complete(f, &opts); err != nil {
		return res, err
	}
	var due []*file
	for _, fl := range gather(f, &opts) {
		if fl.Due {
			due = append(due, fl)
		} else {
			res.Skipped = append(res.Skipped, fl.Item)
		}
	}
	if len(due) == 0 {
		return res, nil
	}
	start := opts.Now()
	b, err := newBackup(opts.BackupDir, start)
	if err != nil {
		return res, fmt.Errorf("making the backup folder: %w", err)
	}
	defer b.Close()
	for _, fl := range due {
		if err := backUp(b, fl); err != nil {
			return res, fmt.Errorf("backing up %s: %w", fl.Name, err)
		}
	}
	if err := b.commit(); err != nil {
		return res, fmt.Errorf("backing up: %w", err)
	}
	res.BackupDir = b.name
	done := make([]Renewed, len(due))
	for i, fl := range due {
		done[i] = Renewed{Name: fl.Name, Path: fl.Path, KeyPath: fl.KeyPath, OldFingerprint: fl.Fingerprint, OldNotAfter: fl.NotAfter, Backup: b.path(fl.rel), KeyBackup: b.path(fl.keyRel)}
	}
	if err := opts.stepped(stepBackedUp, ""); err != nil {
		return res, err
	}
	s := signers{f: f}
	for i, fl := range due {
		if err := renewOne(f, &s, fl, &opts, start, &done[i]); err != nil {
			return res, fmt.Errorf("renewing %s: %w", fl.Name, err)
		}
		res.Renewed = append(res.Renewed, done[i])
	}
	return res, nil
}

func (opts *Options) stepped(step, name string) error {
	if opts.step == nil {
		return nil
	}
	return opts.step(step, name)
}

// backUp copies fl (and its key) to the backup folder.
func backUp(b *backup, fl *file) error {
	if err := b.save(fl.rel, fl.data, fl.mode); err != nil {
		return err
	}
	if fl.keyRel == "" {
		return nil
	}
	return b.save(fl.keyRel, fl.keyData, fl.keyMode)
}

// renewOne issues fl's new certificate and key and puts them in place: staged, then renamed, the key
// first.
func renewOne(f *folder, s *signers, fl *file, opts *Options, start time.Time, r *Renewed) error {
	caCert, caKey, err := s.get(fl.CA)
	if err != nil {
		return err
	}
	gen, err := keyGenerator(opts.KeyAlgorithm, fl.pub)
	if err != nil {
		return err
	}
	key, err := gen()
	if err != nil {
		return err
	}
	cert, err := issue(fl.cert, caCert, caKey, key, start, opts.validity())
	if err != nil {
		return err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	c := certs.FromX509(cert)
	r.NewFingerprint, r.NewNotAfter = c.Fingerprint, c.NotAfter
	if fl.kubeconfig {
		return replaceKubeconfig(f, fl, opts, caCert, cert, keyPEM)
	}
	if err := f.write(fl.keyRel+stagedSuffix, keyPEM, fl.keyMode); err != nil {
		return err
	}
	if err := f.write(fl.rel+stagedSuffix, encodeCertificate(cert), fl.mode); err != nil {
		return err
	}
	if err := f.syncDir(fl.rel); err != nil {
		return err
	}
	if err := opts.stepped(stepStaged, fl.Name); err != nil {
		return err
	}
	if err := f.replace(fl.keyRel); err != nil {
		return err
	}
	if err := opts.stepped(stepKeyReplaced, fl.Name); err != nil {
		return err
	}
	if err := f.replace(fl.rel); err != nil {
		return err
	}
	return opts.stepped(stepReplaced, fl.Name)
}

// replaceKubeconfig writes the kubeconfig with the new client certificate and key, and the cluster's CA
// from ca.crt (as kubeadm does), in one rename.
func replaceKubeconfig(f *folder, fl *file, opts *Options, caCert, cert *x509.Certificate, keyPEM []byte) error {
	cfg := fl.config.DeepCopy()
	cfg.Clusters[fl.cluster].CertificateAuthorityData = encodeCertificate(caCert)
	cfg.AuthInfos[fl.user].ClientCertificateData = encodeCertificate(cert)
	cfg.AuthInfos[fl.user].ClientKeyData = keyPEM
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if err := f.write(fl.rel+stagedSuffix, data, fl.mode); err != nil {
		return err
	}
	if err := opts.stepped(stepStaged, fl.Name); err != nil {
		return err
	}
	if err := f.replace(fl.rel); err != nil {
		return err
	}
	return opts.stepped(stepReplaced, fl.Name)
}

// signers loads each CA once per run.
type signers struct {
	f     *folder
	certs map[string]*x509.Certificate
	keys  map[string]crypto.Signer
}

func (s *signers) get(ca string) (*x509.Certificate, crypto.Signer, error) {
	if c, ok := s.certs[ca]; ok {
		return c, s.keys[ca], nil
	}
	certData, _, err := s.f.read(disk.KubeadmPath(ca))
	if err != nil {
		return nil, nil, err
	}
	cert, err := parseCertificate(certData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ca, err)
	}
	keyData, _, err := s.f.read(disk.KubeadmCAKeyPath(ca))
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(keyData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s key: %w", ca, err)
	}
	if !sameKey(cert.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%s: certificate and key do not match", ca)
	}
	if s.certs == nil {
		s.certs, s.keys = map[string]*x509.Certificate{}, map[string]crypto.Signer{}
	}
	s.certs[ca], s.keys[ca] = cert, key
	return cert, key, nil
}

// complete finishes what an interrupted run left, for every file kubeadm renews (whatever the names of
// this run): a pair whose key is new and whose certificate does not match it gets its staged certificate
// renamed into place; every other staged file (written, never put in place) is removed. It returns the
// names of the pairs completed.
func complete(f *folder, opts *Options) ([]string, error) {
	var completed []string
	for _, r := range renewable {
		rel, keyRel := paths(r.name, r.kubeconfig)
		fl := &file{Item: Item{Name: r.name, Path: f.path(rel), KeyPath: f.path(keyRel)}, rel: rel, keyRel: keyRel}
		if !r.kubeconfig {
			if ok, _ := f.exists(rel + stagedSuffix); ok {
				if fl.data, fl.mode, _ = f.read(rel); fl.data != nil && errors.Is(fl.parsePair(f), errStaged) {
					if err := f.replace(rel); err != nil {
						return completed, fmt.Errorf("completing %s: %w", r.name, err)
					}
					completed = append(completed, r.name)
					if err := opts.stepped(stepCompleted, r.name); err != nil {
						return completed, err
					}
				}
			}
		}
		for _, p := range []string{rel, keyRel} {
			if err := removeStaged(f, p); err != nil {
				return completed, err
			}
		}
	}
	return completed, nil
}

// removeStaged removes rel's staged replacement, if any.
func removeStaged(f *folder, rel string) error {
	if rel == "" {
		return nil
	}
	err := f.root.Remove(rel + stagedSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.syncDir(rel)
}
