package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/certrollout/certrollout/internal/htmlreport"
)

// kubeadmSection is the control plane's certificates and kubeconfigs, as kubeadm names them.
func kubeadmSection(items []CheckItem, now time.Time) htmlreport.Section {
	s := htmlreport.Section{Title: "Control plane (kubeadm)",
		Note: "Externally managed: the signing CA's key is not in the folder, so kubeadm certs renew cannot renew it."}
	s.Table.Headers = []string{"Expires in", "Certificate", "Certificate authority", "Externally managed", "Subject", "Path"}
	for _, it := range items {
		name := it.Kubeadm.Name
		if it.Source.Entry != "" {
			name += " (" + it.Source.Entry + ")"
		}
		ca := it.Kubeadm.CertificateAuthority
		if isKubeadmCA(it) {
			ca = "(certificate authority)"
		}
		s.Table.Rows = append(s.Table.Rows, htmlreport.Row{Class: itemClass(it, now), Cells: []htmlreport.Cell{
			expiryCell(it.Certificate.NotAfter, now), htmlreport.Text(name), htmlreport.Text(ca),
			htmlreport.Text(yesNo(it.Kubeadm.ExternallyManaged)), htmlreport.Text(it.Certificate.Subject),
			{Class: "mono", Lines: []htmlreport.Line{{{Text: it.Source.Path}}}},
		}})
	}
	return s
}

// filesSection is one row per file, or per kubeconfig entry, given to --files.
func filesSection(items []CheckItem, now time.Time) htmlreport.Section {
	s := htmlreport.Section{Title: "Files"}
	s.Table.Headers = []string{"Expires in", "File", "Certificate", "Certificates", "Path"}
	for _, it := range items {
		name := it.Source.Name
		if it.Source.Entry != "" {
			name += " (" + it.Source.Entry + ")"
		}
		s.Table.Rows = append(s.Table.Rows, htmlreport.Row{Class: itemClass(it, now), Cells: []htmlreport.Cell{
			expiryCell(it.Certificate.NotAfter, now), htmlreport.Text(name), certificateCell(it.Certificate),
			htmlreport.Text(strconv.Itoa(it.Certificates)), {Class: "mono", Lines: []htmlreport.Line{{{Text: it.Source.Path}}}},
		}})
	}
	return s
}

// caIssuersSection lists the cert-manager CA issuers, their CA certificate and how many leaves each signs
// (the CA graph).
func caIssuersSection(rep CheckReport, now time.Time) htmlreport.Section {
	s := htmlreport.Section{Title: "CA issuers", Note: rep.CAIssuersIncomplete, Empty: "No CA issuers could be listed."}
	s.Table.Headers = []string{"CA expires in", "Issuer", "CA Secret", "CA certificate", "Ready", "Cascade", "Leaves", "Not current", "Problem"}
	for _, ci := range rep.CAIssuers {
		var notAfter time.Time
		class := string(htmlreport.ClassNone)
		if ci.CA != nil {
			notAfter = ci.CA.NotAfter
			class = string(htmlreport.ClassOf(notAfter, now))
		}
		notCurrent := htmlreport.Text(strconv.Itoa(ci.NotCurrent))
		if ci.NotCurrent > 0 {
			notCurrent = htmlreport.Cell{}.Add(htmlreport.Span{Text: strconv.Itoa(ci.NotCurrent), Class: "bad"})
		}
		s.Table.Rows = append(s.Table.Rows, htmlreport.Row{Class: class, Cells: []htmlreport.Cell{
			expiryCell(notAfter, now), htmlreport.Text(issuerRefString(ci.CheckIssuerRef)),
			htmlreport.Text(ci.Secret.Namespace + "/" + ci.Secret.Name), certificateCell(ci.CA),
			htmlreport.Text(yesNo(ci.Ready)), htmlreport.Text(yesNo(ci.Cascade)),
			htmlreport.Text(strconv.Itoa(ci.Leaves)), notCurrent, htmlreport.Text(ci.Problem),
		}})
	}
	return s
}

// problemsSection lists what could not be read or parsed.
func problemsSection(problems []CheckProblem) htmlreport.Section {
	s := htmlreport.Section{Title: "Problems", Note: "Certificate data that could not be read or parsed: whatever loads it fails as surely as on an expiry."}
	s.Table.Headers = []string{"Source", "Problem"}
	for _, p := range problems {
		s.Table.Rows = append(s.Table.Rows, htmlreport.Row{Class: string(htmlreport.ClassExpired), Cells: []htmlreport.Cell{
			htmlreport.Text(p.Source.describe()), htmlreport.Cell{}.Add(htmlreport.Span{Text: p.Message, Class: "bad"}),
		}})
	}
	return s
}

// controlPlaneSections are one section per control-plane node: its files with time left and what the
// components that serve or use them do, soonest first; a node without a recent report says so.
func controlPlaneSections(items []CheckItem, nodes []CheckNode, incomplete string, now time.Time) []htmlreport.Section {
	byNode := map[string][]CheckItem{}
	for _, it := range items {
		byNode[it.Source.Node] = append(byNode[it.Source.Node], it)
	}
	var out []htmlreport.Section
	for i, n := range nodes {
		s := htmlreport.Section{Title: "Control-plane node " + n.Name, Note: n.Warning,
			Empty: "No agent report from this node: is the node agent installed (chart nodeAgent.enabled)?"}
		if i == 0 && incomplete != "" {
			s.Note = strings.TrimSpace(s.Note + " " + incomplete + ".")
		}
		if n.ObservedAt != nil && n.Warning == "" {
			s.Note = "Reported " + age(*n.ObservedAt, now) + " ago by the node agent " + n.AgentVersion + "."
		}
		s.Table.Headers = []string{"Expires in", "Certificate", "Certificate authority", "Externally managed", "Serving", "Path"}
		for _, it := range byNode[n.Name] {
			ca := it.Kubeadm.CertificateAuthority
			if it.ControlPlane.CertificateAuthority {
				ca = "(certificate authority)"
			}
			serving := htmlreport.Text(servingCell(it, now))
			if servesOld(it) != nil {
				serving = htmlreport.Cell{}.Add(htmlreport.Span{Text: servingCell(it, now), Class: "bad"})
			}
			s.Table.Rows = append(s.Table.Rows, htmlreport.Row{Class: itemClass(it, now), Cells: []htmlreport.Cell{
				expiryCell(it.Certificate.NotAfter, now), htmlreport.Text(it.Source.Name), htmlreport.Text(ca),
				htmlreport.Text(yesNo(it.Kubeadm.ExternallyManaged)), serving,
				{Class: "mono", Lines: []htmlreport.Line{{{Text: it.Source.Path}}}},
			}})
		}
		out = append(out, s)
	}
	return out
}
