// Package kubeadmrenew renews a kubeadm control plane's certificates on the host, producing what
// `kubeadm certs renew` (v1.34) produces: the same names, subject, SANs, usages, validity and backdating,
// a new private key for every renewed certificate, kubeconfigs whose embedded client certificate and key
// are replaced (and whose CA is refreshed from ca.crt). It is pure Go: no kubeadm binary at run time.
//
// Every file it replaces is first copied to a backup folder and fsynced. Replacements are written to a
// staged name beside the file, fsynced and renamed into place, the key before the certificate; an
// interrupted run leaves at worst a pair whose key is new and whose certificate is staged, which the next
// Renew completes before anything else. So Renew may be killed at any instant and run again: it ends with
// every pair matching and renews no file twice in one due window. See design/2026-11-28-kubeadm-renewal.md.
//
// Files are opened through an os.Root on Options.Dir, so a symbolic link that leads out of the folder is
// never followed.
package kubeadmrenew

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/certrollout/certrollout/internal/disk"
)

// kubeadm's defaults: the validity of a certificate when the ClusterConfiguration sets none (v1beta4
// defaults certificateValidityPeriod to it), and how far NotBefore is set back from the start of the run.
const (
	DefaultValidity = 365 * 24 * time.Hour
	Backdate        = 5 * time.Minute
)

// Options say which files to renew, when, and where the old ones go.
type Options struct {
	// Dir is the kubeadm folder (a host's /etc/kubernetes); the certificates are under Dir/pki, as
	// kubeadm's default certificatesDir.
	Dir string
	// Names are kubeadm's names to consider ("apiserver", "admin.conf", ...); empty means every file
	// `kubeadm certs renew all` renews (Names()).
	Names []string
	// RenewBefore: a file renews when its notAfter is within this of Now. 0 renews every named file on
	// every run (kubeadm's own behaviour); otherwise it must be shorter than the validity, so a renewed
	// file is not due again.
	RenewBefore time.Duration
	// Validity is ClusterConfiguration.certificateValidityPeriod; 0 is its default, a year. It counts
	// from the start of the run, not from the backdated NotBefore.
	Validity time.Duration
	// KeyAlgorithm is ClusterConfiguration.encryptionAlgorithm ("RSA-2048", "RSA-3072", "RSA-4096",
	// "ECDSA-P256", "ECDSA-P384"); empty keeps each certificate's current key type and size, which is
	// what kubeadm produces when the files were made with the cluster's configuration.
	KeyAlgorithm string
	// BackupDir receives a copy of every file before it is replaced (required): one folder per run, named
	// by the run's UTC time (20261128T094643Z, with -2, -3... if taken), holding the files at their paths
	// relative to Dir (pki/apiserver.crt, pki/apiserver.key, admin.conf), modes kept. A run's folder is
	// written as <name>.partial and renamed when complete. Renew keeps its lock file (.lock) here.
	BackupDir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// step, when set, is called after each step of a renewal (see the step constants); an error stops
	// Renew there, as a crash would. Tests use it to interrupt Renew at every point.
	step func(step, name string) error
}

// Reason says why a file is or is not renewed. Reasons are stable: callers use them in events and
// conditions.
type Reason string

const (
	// ReasonDue: the file's notAfter is within RenewBefore of now.
	ReasonDue Reason = "Due"
	// ReasonRenewAlways: RenewBefore is 0, so every named file renews.
	ReasonRenewAlways Reason = "RenewAlways"
	// ReasonNotDue: the file expires later than RenewBefore from now.
	ReasonNotDue Reason = "NotDue"
	// ReasonExternallyManaged: its CA's key is not in the folder (kubeadm: "Detected external CA").
	ReasonExternallyManaged Reason = "ExternallyManaged"
	// ReasonMissing: the file does not exist (kubeadm: "MISSING!").
	ReasonMissing Reason = "Missing"
	// ReasonInvalid: the file, its key or its CA cannot be read or used; Message says why.
	ReasonInvalid Reason = "Invalid"
)

// Item is one named file and what Renew would do with it.
type Item struct {
	// Name is kubeadm's.
	Name string
	// Path is the certificate file or kubeconfig; KeyPath the key beside a certificate ("" for a
	// kubeconfig, which holds its key).
	Path, KeyPath string
	// CA is the name of the CA that signs it (ca, etcd-ca, front-proxy-ca).
	CA string
	// Fingerprint and NotAfter are the current certificate's (empty when it cannot be read).
	Fingerprint string
	NotAfter    time.Time
	// Due: Renew renews it. Reason says why or why not; Message adds detail for ReasonInvalid.
	Due     bool
	Reason  Reason
	Message string
}

// Renewed is a file Renew replaced.
type Renewed struct {
	Name, Path, KeyPath            string
	OldFingerprint, NewFingerprint string
	OldNotAfter, NewNotAfter       time.Time
	// Backup and KeyBackup are the copies of Path and KeyPath taken before the replacement.
	Backup, KeyBackup string
}

// Result is what Renew did.
type Result struct {
	// BackupDir is this run's backup folder; "" when nothing was renewed.
	BackupDir string
	// Completed are the pairs an interrupted run had half replaced, finished before anything else.
	Completed []string
	Renewed   []Renewed
	// Skipped are the named files not renewed, with the reason.
	Skipped []Item
}

// Names are the files `kubeadm certs renew all` renews, in kubeadm's order (by name). CAs are never
// renewed, nor kubelet.conf (the kubelet rotates its own client certificate).
func Names() []string {
	names := make([]string, len(renewable))
	for i, r := range renewable {
		names[i] = r.name
	}
	return names
}

// renewable are the files kubeadm's renewal manager knows, the CA that signs each, and whether it is a
// kubeconfig (whose client certificate and key are embedded).
var renewable = []struct {
	name, ca   string
	kubeconfig bool
}{
	{"admin.conf", "ca", true},
	{"apiserver", "ca", false},
	{"apiserver-etcd-client", "etcd-ca", false},
	{"apiserver-kubelet-client", "ca", false},
	{"controller-manager.conf", "ca", true},
	{"etcd-healthcheck-client", "etcd-ca", false},
	{"etcd-peer", "etcd-ca", false},
	{"etcd-server", "etcd-ca", false},
	{"front-proxy-client", "front-proxy-ca", false},
	{"scheduler.conf", "ca", true},
	{"super-admin.conf", "ca", true},
}

// validate checks opts and fills the defaults.
func (opts *Options) validate() error {
	if opts.Dir == "" {
		return errors.New("kubeadm folder not set")
	}
	if opts.BackupDir == "" {
		return errors.New("backup folder not set: every replaced file is backed up first")
	}
	if opts.RenewBefore < 0 || opts.Validity < 0 {
		return errors.New("renewBefore and validity cannot be negative")
	}
	if opts.RenewBefore > 0 && opts.RenewBefore >= opts.validity() {
		return fmt.Errorf("renewBefore %s is not shorter than the validity %s: every file would renew on every run", opts.RenewBefore, opts.validity())
	}
	if opts.KeyAlgorithm != "" {
		if _, err := keyGenerator(opts.KeyAlgorithm, nil); err != nil {
			return err
		}
	}
	if len(opts.Names) == 0 {
		opts.Names = Names()
	}
	known := Names()
	for _, n := range opts.Names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%s is not a file kubeadm renews (%v)", n, known)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return nil
}

func (opts *Options) validity() time.Duration {
	if opts.Validity == 0 {
		return DefaultValidity
	}
	return opts.Validity
}

// paths returns where the file kubeadm calls name is, relative to Dir, and its key ("" for a kubeconfig).
func paths(name string, kubeconfig bool) (file, key string) {
	file = disk.KubeadmPath(name)
	if kubeconfig {
		return file, ""
	}
	return file, file[:len(file)-len(filepath.Ext(file))] + ".key"
}
