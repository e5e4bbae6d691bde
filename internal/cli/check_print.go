package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/certrollout/certrollout/internal/cagraph"
)

// kubeadmTime is how `kubeadm certs check-expiration` prints expiry: "Feb 20, 2026 17:12 UTC".
const kubeadmTime = "Jan 02, 2006 15:04 MST"

// printTables prints each section that was read (kubeadm, files, cluster), then the problems, with a
// blank line between tables.
//
// Long: one table per section, in the order printed; split, the order would be spread over functions.
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
	if s := r.controlPlane; s != nil {
		tables = append(tables, o.controlPlaneTables(s, r.now)...)
		if len(s.nodes) == 0 {
			fmt.Fprintln(o.ErrOut, "No NodeCertificates found: is the node agent installed (chart nodeAgent.enabled)?")
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
			if stale := staleLeaves(s.items); len(stale) > 0 {
				add(func() error { return o.staleLeavesTable(s, stale) })
			}
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
	if s := r.cluster; s != nil && o.wide() && len(s.caIssuers) > 0 {
		add(func() error { return o.caIssuersTable(s, r.now) })
	}
	if s := r.cluster; s != nil && o.Probe {
		if len(s.probes) > 0 {
			add(func() error { return probeTable(o.Out, s.probes) })
		} else {
			noProbes(o.ErrOut)
		}
	}
	if s := r.cluster; s != nil && s.caIncomplete != "" {
		fmt.Fprintf(o.ErrOut, "Note: %s.\n", s.caIncomplete)
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

// clusterTable has one row per certificate key. NAMESPACE comes first under -A, as in kubectl. CA CHAIN
// (and CA ISSUER under -o wide) appear only when a CA issuer signs a Certificate listed, so a cluster
// without CA issuers reads as before.
func (o *CheckOptions) clusterTable(s *checkSection, now time.Time) error {
	all := s.namespace == ""
	chain := false
	for _, it := range s.items {
		chain = chain || it.CAChain != nil
	}
	headers := []string{"NAME", "KEY", "SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL", "CERTIFICATE", "REVISION", "READY", "RENEWS IN", "CONSUMERS", "STALE PODS"}
	if all {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	if chain {
		headers = append(headers, "CA CHAIN")
	}
	if o.wide() {
		headers = append(headers, "CERTS", "SERIAL", "FINGERPRINT", "NOT BEFORE")
		if chain {
			headers = append(headers, "CA ISSUER")
		}
		headers = append(headers, "USED BY")
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
		if chain {
			row = append(row, chainCell(it))
		}
		if o.wide() {
			row = append(row, wideCells(it)...)
			if chain {
				issuer := ""
				if it.CAChain != nil {
					issuer = issuerRefName(it.CAChain.Issuer)
				}
				row = append(row, issuer)
			}
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

// chainCell is the CA CHAIN column: a leaf's status, or which issuers a CA Secret's tls.crt is the CA of.
func chainCell(it CheckItem) string {
	if it.CAChain != nil {
		return it.CAChain.Status
	}
	if len(it.CAOf) > 0 {
		names := make([]string, 0, len(it.CAOf))
		for _, r := range it.CAOf {
			names = append(names, issuerRefName(r))
		}
		return "CA of " + strings.Join(names, ",")
	}
	return ""
}

// issuerRefName is kubectl's kind/name: issuer/ca, clusterissuer/root.
func issuerRefName(r CheckIssuerRef) string {
	return strings.ToLower(r.Kind) + "/" + r.Name
}

// staleLeaves are the items whose certificate their issuer's current CA did not issue.
func staleLeaves(items []CheckItem) []CheckItem {
	var out []CheckItem
	for _, it := range items {
		if it.CAChain != nil && cagraph.Status(it.CAChain.Status).NeedsReissue() {
			out = append(out, it)
		}
	}
	return out
}

// staleLeavesTable lists the leaves not issued by their issuer's current CA, why, and the command that
// re-issues each.
func (o *CheckOptions) staleLeavesTable(s *checkSection, items []CheckItem) error {
	headers := []string{"LEAF", "ISSUER", "CA CHAIN", "WHY"}
	if s.namespace == "" {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	t := newTable(o.Out, headers...)
	for _, it := range items {
		ch := it.CAChain
		row := []string{"certificate/" + ch.Certificate, issuerRefName(ch.Issuer), ch.Status, ch.Message + "; re-issue it: " + renewHint(ch.Certificate, it.Source.Namespace)}
		if s.namespace == "" {
			row = append([]string{it.Source.Namespace}, row...)
		}
		t.row(row...)
	}
	return t.flush()
}

// caIssuersTable (-o wide) lists the CA issuers with their CA certificate and how many leaves each signs.
func (o *CheckOptions) caIssuersTable(s *checkSection, now time.Time) error {
	t := newTable(o.Out, "CA ISSUER", "NAMESPACE", "CA SECRET", "CA SUBJECT", "CA EXPIRES", "CA FINGERPRINT", "READY", "CASCADE", "LEAVES", "NOT CURRENT", "PROBLEM")
	for _, ci := range s.caIssuers {
		subject, expires, fp := "", "", ""
		if c := ci.CA; c != nil {
			subject, expires, fp = orDN(c.CommonName, c.Subject), timestamp(c.NotAfter)+" ("+residual(c.NotAfter, now)+")", shortHash16(c.Fingerprint)
		}
		t.row(issuerRefName(ci.CheckIssuerRef), ci.Namespace, ci.Secret.Namespace+"/"+ci.Secret.Name, subject, expires, fp,
			strconv.FormatBool(ci.Ready), strconv.FormatBool(ci.Cascade), strconv.Itoa(ci.Leaves), strconv.Itoa(ci.NotCurrent), ci.Problem)
	}
	return t.flush()
}

// shortHash16 is the first 16 hex digits of a fingerprint, as FINGERPRINT shows it.
func shortHash16(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
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
