package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/htmlreport"
)

// printHTML writes the plan as one HTML page.
func (o *PlanOptions) printHTML(rep PlanReport) error {
	return htmlreport.Render(o.Out, planPage(rep, pageFacts(&o.KubeFlags, true)))
}

// planPage maps a PlanReport onto a page: a timeline row per workload (the expiry its pods run on, and
// the current one a restart would load), then the workloads table.
func planPage(rep PlanReport, facts []htmlreport.Fact) htmlreport.Page {
	now := rep.GeneratedAt
	facts = append(facts, htmlreport.Fact{Name: "Controller settings", Value: rep.Controller.Source})
	s := htmlreport.Section{Title: "Workloads", Empty: "No workloads using certificates found.", Note: rep.Controller.describe()}
	if rep.Incomplete != "" {
		s.Note += ". Not shown: " + rep.Incomplete + "."
	}
	s.Table.Headers = []string{"Runs on (expires in)", "Workload", "Pods", "Action", "Why", "Next", "Certificates", "Policy", "Sources"}
	items := soonestFirst(rep.Items)
	for i := range items {
		s.Table.Rows = append(s.Table.Rows, planRow(&items[i], now))
	}
	return htmlreport.Page{
		Title: "Restart plan", Meta: facts, GeneratedAt: now, CountNoun: "workloads",
		Timeline: planTimeline(items, now), Sections: []htmlreport.Section{s}, Footer: pageFooter(),
	}
}

// soonestFirst orders workloads as check orders certificates: the soonest expiry their pods run on
// first, those without certificates last, and by namespace and name among equals.
func soonestFirst(items []WorkloadPlan) []WorkloadPlan {
	out := slices.Clone(items)
	key := func(p *WorkloadPlan) time.Time {
		if t := runningOn(p); !t.IsZero() {
			return t
		}
		return time.Unix(1<<62, 0)
	}
	slices.SortStableFunc(out, func(a, b WorkloadPlan) int {
		if c := key(&a).Compare(key(&b)); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// runningOn is when the certificates a workload's pods run on expire: the recorded running set's, else
// the current set's (nothing recorded: the pods were started for the current certificates, or certrollout
// has not seen them restart).
func runningOn(p *WorkloadPlan) time.Time {
	if t := p.Certificates.RunningNotAfter; t != nil {
		return *t
	}
	if t := p.Certificates.CurrentNotAfter; t != nil {
		return *t
	}
	return time.Time{}
}

// planTimeline has a row per workload with certificates: a dot at the expiry its pods run on, a ring at
// the current certificates' when a restart would change it.
func planTimeline(items []WorkloadPlan, now time.Time) *htmlreport.Timeline {
	t := &htmlreport.Timeline{Now: now, Note: "Dot: when the certificates the pods run on expire. Ring: when the current certificates, which a restart loads, expire."}
	namespaces := map[string]bool{}
	for _, p := range items {
		namespaces[p.Namespace] = true
	}
	n := 0
	for i := range items {
		p := &items[i]
		at := runningOn(p)
		if at.IsZero() {
			continue
		}
		if n++; n > timelineLimit {
			continue
		}
		row := htmlreport.TimelineRow{Label: strings.ToLower(p.Kind) + "/" + p.Name, Detail: shortAction(p, now)}
		if len(namespaces) > 1 {
			row.Label = p.Namespace + " · " + row.Label
		}
		if len(p.StalePods) > 0 {
			row.Detail = plural(len(p.StalePods), "stale pod") + " · " + row.Detail
		}
		row.Markers = append(row.Markers, htmlreport.Marker{At: at, Text: residual(at, now), Title: "pods run on certificates that expire " + timestamp(at)})
		if c := p.Certificates.CurrentNotAfter; c != nil && !c.Equal(at) {
			row.Markers = append(row.Markers, htmlreport.Marker{At: *c, Hollow: true, Title: "current certificates expire " + timestamp(*c)})
		}
		t.Rows = append(t.Rows, row)
	}
	if n > timelineLimit {
		t.Note = fmt.Sprintf("The first %d of %d workloads are drawn; the table lists them all. ", timelineLimit, n) + t.Note
	}
	return t
}

// planRow is one workload: its pods (stale ones highlighted), the decision, and what it runs on.
func planRow(p *WorkloadPlan, now time.Time) htmlreport.Row {
	pods := htmlreport.Text(strconv.Itoa(p.Pods))
	if n := len(p.StalePods); n > 0 {
		pods = htmlreport.Cell{}.Add(htmlreport.Span{Text: strconv.Itoa(p.Pods) + " "}, htmlreport.Span{Text: strconv.Itoa(n) + " stale", Class: "stale"})
		for _, name := range p.StalePods {
			pods = pods.Add(htmlreport.Span{Text: "↳ " + name, Class: "stale-pod"})
		}
	}
	workload := htmlreport.Text(strings.ToLower(p.Kind) + "/" + p.Name).Add(htmlreport.Span{Text: p.Namespace, Class: "muted"})
	if !p.Enabled {
		workload = workload.Add(htmlreport.Span{Text: "not enabled", Class: "muted"})
	}
	next := htmlreport.Text(p.Next)
	next.Class = "prose"
	if p.NextAt != nil {
		next = next.Add(htmlreport.Span{Text: timestamp(*p.NextAt), Class: "muted"})
	}
	policy := htmlreport.Muted("-")
	if pp := p.Policy; pp != nil {
		policy = htmlreport.Text(pp.Name)
		if pp.Invalid != "" {
			policy = policy.Add(htmlreport.Span{Text: "invalid: " + pp.Invalid, Class: "bad"})
		}
		for _, w := range pp.Warnings {
			policy = policy.Add(htmlreport.Span{Text: "warning: " + w, Class: "stale"})
		}
	}
	return htmlreport.Row{Class: string(htmlreport.ClassOf(runningOn(p), now)), Cells: []htmlreport.Cell{
		expiryCell(runningOn(p), now), workload, pods, actionCell(p, now),
		htmlreport.Cell{Class: "prose"}.Add(htmlreport.Span{Text: p.Reason}).Add(htmlreport.Span{Text: p.Message, Class: "muted"}),
		next, planCertificatesCell(p.Certificates, now), policy, planSourcesCell(p),
	}}
}

// actionCell is the decision in a few words, in colour when it restarts or is blocked.
func actionCell(p *WorkloadPlan, now time.Time) htmlreport.Cell {
	class := ""
	switch decide.Action(p.Action) {
	case decide.ActionRestart, decide.ActionDelegate, decide.ActionReload:
		class = "good"
	case decide.ActionBlock:
		class = "bad"
	case decide.ActionNone, decide.ActionRecord, decide.ActionWait:
	}
	return htmlreport.Cell{Class: "nowrap"}.Add(htmlreport.Span{Text: shortAction(p, now), Class: class, Title: p.Action})
}

// planCertificatesCell compares the certificate set the pods run on with the current one.
func planCertificatesCell(c PlanCertificates, now time.Time) htmlreport.Cell {
	line := func(what, hash string, notAfter *time.Time) []htmlreport.Span {
		out := []htmlreport.Span{{Text: what + " "}, {Text: orElse(shortHash(hash), "not recorded"), Class: "mono", Title: hash}}
		if notAfter != nil {
			out = append(out, htmlreport.Span{Text: " "}, htmlreport.Span{Text: residual(*notAfter, now), Class: "chip " + string(htmlreport.ClassOf(*notAfter, now)), Title: timestamp(*notAfter)})
		}
		return out
	}
	cell := htmlreport.Cell{Class: "nowrap"}.Add(line("running", c.Running, c.RunningNotAfter)...)
	if c.Running == "" || c.Running != c.Current {
		cell = cell.Add(line("current", c.Current, c.CurrentNotAfter)...)
	}
	return cell
}

// planSourcesCell lists the Secrets and ConfigMaps the workload uses, with their cert-manager
// Certificate and CA chain.
func planSourcesCell(p *WorkloadPlan) htmlreport.Cell {
	var c htmlreport.Cell
	for _, s := range p.Sources {
		line := []htmlreport.Span{{Text: strings.ToLower(s.Kind) + "/" + s.Name}}
		if s.NeverRefreshed {
			line = append(line, htmlreport.Span{Text: " (" + strings.Join(s.Modes, ",") + ": never refreshed)", Class: "muted"})
		}
		if s.CertManager != "" {
			line = append(line, htmlreport.Span{Text: " · certificate/" + s.CertManager, Class: "muted"})
		}
		if s.CAChain != nil {
			line = append(line, htmlreport.Span{Text: " · " + s.CAChain.Status, Class: "muted", Title: describeCAChain(s.CAChain, p.Namespace)})
		}
		c = c.Add(line...)
	}
	for _, m := range p.Missing {
		c = c.Add(htmlreport.Span{Text: m + ": does not exist", Class: "bad"})
	}
	return c
}
