package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// -o kubeadm prints exactly what `kubeadm certs check-expiration` (v1.34) prints, byte for byte, so
// scripts and people that read kubeadm's text keep working. kubeadm's text differs from check's default
// kubeadm table on purpose: kubeadm lists a fixed set of names sorted by name (kubeconfigs and PKI
// interleaved), leaves out kubelet.conf (the kubelet rotates it), prints "!MISSING! name" for an absent
// file, takes a certificate's CA from that fixed set rather than from its issuer, prints "<invalid>" as
// the residual time of an expired certificate and pads EXTERNALLY MANAGED to eight characters (trailing
// spaces). The default table stays soonest-first, with kubelet.conf, as check has always printed it.

// kubeadmExpirationCerts are the certificates kubeadm's renewal manager knows (cmd/kubeadm/app/phases/
// certs/renewal.NewManager), with the CA kubeadm attributes each to, in kubeadm's order (by name).
var kubeadmExpirationCerts = []struct{ name, ca string }{
	{"admin.conf", "ca"},
	{"apiserver", "ca"},
	{"apiserver-etcd-client", "etcd-ca"},
	{"apiserver-kubelet-client", "ca"},
	{"controller-manager.conf", "ca"},
	{"etcd-healthcheck-client", "etcd-ca"},
	{"etcd-peer", "etcd-ca"},
	{"etcd-server", "etcd-ca"},
	{"front-proxy-client", "front-proxy-ca"},
	{"scheduler.conf", "ca"},
	{"super-admin.conf", "ca"},
}

// kubeadmExpirationCAs are kubeadm's CAs, by name.
var kubeadmExpirationCAs = []string{"ca", "etcd-ca", "front-proxy-ca"}

// kubeadmEtcdNames are the names kubeadm leaves out with an external etcd (certsphase.GetCertsWithoutEtcd).
var kubeadmEtcdNames = map[string]bool{
	"apiserver-etcd-client": true, "etcd-healthcheck-client": true, "etcd-peer": true, "etcd-server": true, "etcd-ca": true,
}

// kubeadmExpiration is one node's kubeadm files as kubeadm's check-expiration sees them.
type kubeadmExpiration struct {
	// notAfter by kubeadm name, for the files found (a kubeconfig's: its user's client certificate).
	notAfter map[string]time.Time
	// external is, by CA name, whether the CA's key is absent (kubeadm's "externally managed").
	external map[string]bool
}

// externalEtcd guesses what kubeadm reads from its ClusterConfiguration: a node with none of the local
// etcd's files uses an external etcd, and kubeadm then does not list them.
func (k kubeadmExpiration) externalEtcd() bool {
	for name := range kubeadmEtcdNames {
		if _, ok := k.notAfter[name]; ok {
			return false
		}
	}
	return true
}

// kubeadmExpirationFromItems reads the --kubeadm section's items: a file's certificate, a kubeconfig's
// user certificate (never the cluster's CA it embeds).
func kubeadmExpirationFromItems(items []CheckItem) kubeadmExpiration {
	k := kubeadmExpiration{notAfter: map[string]time.Time{}, external: map[string]bool{}}
	for _, it := range items {
		if it.Kubeadm == nil || it.Certificate == nil {
			continue
		}
		if e := it.Source.Entry; e != "" && !strings.HasPrefix(e, "user/") {
			continue
		}
		if _, seen := k.notAfter[it.Kubeadm.Name]; !seen {
			k.notAfter[it.Kubeadm.Name] = it.Certificate.NotAfter
		}
		if it.Source.Entry == "" && isKubeadmCA(it) {
			k.external[it.Kubeadm.Name] = it.Kubeadm.ExternallyManaged
		}
	}
	return k
}

// kubeadmExpirationFromNode reads a NodeCertificates' kubeadm set.
func kubeadmExpirationFromNode(nc *api.NodeCertificates) kubeadmExpiration {
	k := kubeadmExpiration{notAfter: map[string]time.Time{}, external: map[string]bool{}}
	for _, f := range nc.Status.Files {
		if f.Set != api.FileSetKubeadm {
			continue
		}
		if _, seen := k.notAfter[f.Name]; !seen {
			k.notAfter[f.Name] = f.NotAfter.UTC()
		}
		if f.CertificateAuthority {
			k.external[f.Name] = f.ExternallyManaged
		}
	}
	return k
}

// printKubeadmExpiration writes kubeadm's text, as cmd/kubeadm/app/cmd/certs.go's certTextPrinter does.
func printKubeadmExpiration(w io.Writer, k kubeadmExpiration, now time.Time) error {
	skipEtcd := k.externalEtcd()
	residualTime := func(notAfter time.Time) string {
		// kubeadm: ResidualTimeSeconds = int64(time.Until(notAfter)/time.Second), printed with
		// HumanDuration, which says "<invalid>" below -1s.
		return duration.HumanDuration(time.Duration(int64(notAfter.Sub(now)/time.Second)) * time.Second)
	}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	tabw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tabw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED")
	for _, c := range kubeadmExpirationCerts {
		if skipEtcd && kubeadmEtcdNames[c.name] {
			continue
		}
		notAfter, ok := k.notAfter[c.name]
		if !ok {
			fmt.Fprintln(tabw, "!MISSING! "+c.name+"\t\t\t\t")
			continue
		}
		fmt.Fprintf(tabw, "%s\t%s\t%s\t%s\t%-8v\n", c.name, notAfter.UTC().Format(kubeadmTime), residualTime(notAfter), c.ca, yesNo(k.external[c.ca]))
	}
	fmt.Fprintln(tabw)
	fmt.Fprintln(tabw, "CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
	for _, name := range kubeadmExpirationCAs {
		if skipEtcd && kubeadmEtcdNames[name] {
			continue
		}
		notAfter, ok := k.notAfter[name]
		if !ok {
			fmt.Fprintln(tabw, "!MISSING! "+name+"\t\t\t")
			continue
		}
		fmt.Fprintf(tabw, "%s\t%s\t%s\t%-8v\n", name, notAfter.UTC().Format(kubeadmTime), residualTime(notAfter), yesNo(k.external[name]))
	}
	return tabw.Flush()
}
