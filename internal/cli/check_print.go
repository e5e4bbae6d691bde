package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// kubeadmTime is how `kubeadm certs check-expiration` prints expiry: "Feb 20, 2026 17:12 UTC".
const kubeadmTime = "Jan 02, 2006 15:04 MST"

// printTables prints each section that was read (kubeadm, files, cluster), then the problems, with a
// blank line between tables.
func (o *CheckOptions) printTables(r *checkResult) error {
	var tables []func() error
	add := func(f func() error) { tables = append(tables, f) }
	if s := r.kubeadm; s != nil {
		var leaves, cas []CheckItem
		for _, it := range s.items {
			if isKubeadmCA(it) {
				cas = append(cas, it)
			} else {
				leaves = append(leaves, it)
			}
		}
		if len(leaves) > 0 {
			add(func() error { return o.kubeadmTable(leaves, r.now, false) })
		}
		if len(cas) > 0 {
			add(func() error { return o.kubeadmTable(cas, r.now, true) })
		}
	}
	if s := r.files; s != nil {
		if len(s.items) > 0 {
			add(func() error { return o.filesTable(s.items, r.now) })
		} else if len(s.problems) == 0 {
			fmt.Fprintln(o.ErrOut, "No certificates found in the --files given.")
		}
	}
	if s := r.cluster; s != nil {
		if len(s.items) > 0 {
			add(func() error { return o.clusterTable(s, r.now) })
		} else {
			where := "in any namespace"
			if s.namespace != "" {
				where = "in namespace " + s.namespace
			}
			if o.Selector != "" {
				where += " matching " + o.Selector
			}
			fmt.Fprintf(o.ErrOut, "No certificates found %s.\n", where)
		}
	}
	var diskProblems []CheckProblem
	for _, s := range []*checkSection{r.kubeadm, r.files} {
		if s != nil {
			diskProblems = append(diskProblems, s.problems...)
		}
	}
	if len(diskProblems) > 0 {
		add(func() error {
			t := newTable(o.Out, "FILE", "PROBLEM")
			for _, p := range diskProblems {
				t.row(p.Source.Path, p.Message)
			}
			return t.flush()
		})
	}
	if s := r.cluster; s != nil && len(s.problems) > 0 {
		add(func() error { return o.clusterProblems(s) })
	}
	for i, f := range tables {
		if i > 0 {
			if _, err := fmt.Fprintln(o.Out); err != nil {
				return err
			}
		}
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// clusterTable has one row per certificate key. NAMESPACE comes first under -A, as in kubectl.
func (o *CheckOptions) clusterTable(s *checkSection, now time.Time) error {
	all := s.namespace == ""
	headers := []string{"NAME", "KEY", "SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL", "CERTIFICATE", "REVISION", "READY", "RENEWS IN", "CONSUMERS", "STALE PODS"}
	if all {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	if o.wide() {
		headers = append(headers, "CERTS", "SERIAL", "FINGERPRINT", "NOT BEFORE", "USED BY")
	}
	t := newTable(o.Out, headers...)
	for _, it := range s.items {
		var row []string
		if all {
			row = append(row, it.Source.Namespace)
		}
		row = append(row, strings.ToLower(it.Source.Kind)+"/"+it.Source.Name, it.Source.Key)
		row = append(row, certCells(it.Certificate, now)...)
		if it.Certificate == nil {
			row[len(row)-1] = "not issued"
		}
		if cm := it.CertManager; cm != nil {
			revision := ""
			if cm.Revision > 0 {
				revision = strconv.Itoa(cm.Revision)
			}
			renews := ""
			if cm.RenewalTime != nil {
				renews = renewsIn(*cm.RenewalTime, now)
			}
			ready := strconv.FormatBool(cm.Ready)
			row = append(row, cm.Name, revision, strings.ToUpper(ready[:1])+ready[1:], renews)
		} else {
			row = append(row, "", "", "", "")
		}
		row = append(row, strconv.Itoa(len(it.Consumers)), strconv.Itoa(it.StalePods))
		if o.wide() {
			row = append(row, wideCells(it)...)
			var used []string
			for _, c := range it.Consumers {
				used = append(used, strings.ToLower(c.Kind)+"/"+c.Name)
			}
			row = append(row, strings.Join(used, ","))
		}
		t.row(row...)
	}
	return t.flush()
}

func (o *CheckOptions) clusterProblems(s *checkSection) error {
	headers := []string{"NAME", "KEY", "PROBLEM"}
	if s.namespace == "" {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	t := newTable(o.Out, headers...)
	for _, p := range s.problems {
		row := []string{strings.ToLower(p.Source.Kind) + "/" + p.Source.Name, p.Source.Key, p.Message}
		if s.namespace == "" {
			row = append([]string{p.Source.Namespace}, row...)
		}
		t.row(row...)
	}
	return t.flush()
}

// kubeadmTable prints kubeadm's columns, so people who know `kubeadm certs check-expiration` read it at
// once; cas selects its second table, the certificate authorities.
func (o *CheckOptions) kubeadmTable(items []CheckItem, now time.Time, cas bool) error {
	headers := []string{"CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"}
	if cas {
		headers = []string{"CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"}
	}
	if o.wide() {
		headers = append(headers, "SUBJECT", "CERTS", "SERIAL", "FINGERPRINT", "NOT BEFORE", "PATH")
	}
	t := newTable(o.Out, headers...)
	for _, it := range items {
		c, k := it.Certificate, it.Kubeadm
		name := k.Name
		if it.Source.Entry != "" && cas {
			name += " (" + it.Source.Entry + ")"
		}
		row := []string{name, c.NotAfter.UTC().Format(kubeadmTime), residual(c.NotAfter, now)}
		if !cas {
			row = append(row, k.CertificateAuthority)
		}
		row = append(row, yesNo(k.ExternallyManaged))
		if o.wide() {
			row = append(row, c.Subject)
			row = append(row, wideCells(it)...)
			row = append(row, it.Source.Path)
		}
		t.row(row...)
	}
	return t.flush()
}

// filesTable has one row per file, or per kubeconfig entry.
func (o *CheckOptions) filesTable(items []CheckItem, now time.Time) error {
	headers := []string{"FILE", "SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL"}
	if o.wide() {
		headers = append(headers, "CERTS", "SERIAL", "FINGERPRINT", "NOT BEFORE", "PATH")
	}
	t := newTable(o.Out, headers...)
	for _, it := range items {
		name := it.Source.Name
		if it.Source.Entry != "" {
			name += " (" + it.Source.Entry + ")"
		}
		row := append([]string{name}, certCells(it.Certificate, now)...)
		if o.wide() {
			row = append(row, wideCells(it)...)
			row = append(row, it.Source.Path)
		}
		t.row(row...)
	}
	return t.flush()
}

// certCells are SUBJECT, ISSUER, EXPIRES and RESIDUAL: common names when there are, else the whole
// distinguished name.
func certCells(c *CheckCertificate, now time.Time) []string {
	if c == nil {
		return []string{"", "", "", ""}
	}
	return []string{orDN(c.CommonName, c.Subject), orDN(c.IssuerCommonName, c.Issuer), timestamp(c.NotAfter), residual(c.NotAfter, now)}
}

// wideCells are CERTS, SERIAL, FINGERPRINT (the first 16 hex digits, enough to tell certificates apart
// by eye; JSON has all 64) and NOT BEFORE.
func wideCells(it CheckItem) []string {
	c := it.Certificate
	if c == nil {
		return []string{"0", "", "", ""}
	}
	fp := c.Fingerprint
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return []string{strconv.Itoa(it.Certificates), c.SerialNumber, fp, timestamp(c.NotBefore)}
}

func orDN(cn, dn string) string {
	if cn != "" {
		return cn
	}
	return dn
}

// renewsIn is how long until cert-manager renews, or how long ago it should have.
func renewsIn(t, now time.Time) string {
	if d := t.Sub(now); d < 0 {
		return "overdue " + duration.HumanDuration(-d)
	}
	return duration.HumanDuration(t.Sub(now))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
