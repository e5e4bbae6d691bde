package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/decide"
)

// describeCAChain says whether a leaf Secret was issued by its CA issuer's current CA, and what to do
// when it was not.
func describeCAChain(ch *CheckCAChain, ns string) string {
	issuer := issuerRefString(ch.Issuer)
	if ch.Issuer.Namespace != "" {
		issuer = ch.Issuer.Kind + " " + ch.Issuer.Name // the workload's namespace
	}
	if ch.CAFingerprint != "" {
		issuer += " (CA sha256 " + shortHash(ch.CAFingerprint) + ")"
	}
	switch cagraph.Status(ch.Status) {
	case cagraph.Current:
		return "issued by " + issuer + ": current"
	case cagraph.NotIssued:
		return "to be issued by " + issuer + ": not issued yet (" + ch.Message + ")"
	case cagraph.Unknown:
		return "issued by " + issuer + ": cannot tell whether by its current CA (" + ch.Message + ")"
	case cagraph.IssuedUnderPreviousCA, cagraph.NotSignedByCurrentCA:
	}
	return fmt.Sprintf("issued by %s; not issued under its current CA (%s: %s): re-issue it (%s)", issuer, ch.Status, ch.Message, renewHint(ch.Certificate, ns))
}

// planTable prints one line per workload.
func planTable(w io.Writer, items []WorkloadPlan, allNamespaces, wide bool, now time.Time) error {
	headers := []string{"WORKLOAD", "PODS", "STALE", "CERTIFICATES", "EXPIRES", "POLICY", "ACTION", "WHY"}
	if allNamespaces {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	if wide {
		headers = append(headers, "NEXT", "SOURCES")
	}
	t := newTable(w, headers...)
	for _, p := range items {
		certsCol := shortHash(p.Certificates.Current)
		if p.Certificates.Running != "" && p.Certificates.Running != p.Certificates.Current {
			certsCol = shortHash(p.Certificates.Running) + "→" + shortHash(p.Certificates.Current)
		}
		expires := ""
		if p.Certificates.CurrentNotAfter != nil {
			expires = residual(*p.Certificates.CurrentNotAfter, now)
		}
		pol := "-"
		if p.Policy != nil {
			pol = p.Policy.Name
		}
		row := []string{strings.ToLower(p.Kind) + "/" + p.Name, fmt.Sprint(p.Pods), fmt.Sprint(len(p.StalePods)), certsCol, expires, pol, shortAction(&p, now), p.Reason}
		if allNamespaces {
			row = append([]string{p.Namespace}, row...)
		}
		if wide {
			var srcs []string
			for _, s := range p.Sources {
				srcs = append(srcs, strings.ToLower(s.Kind)+"/"+s.Name)
			}
			row = append(row, p.Next, strings.Join(srcs, ","))
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	return emergencyNotes(w, items)
}

// emergencyNotes follows the table with the command for each held workload whose certificate nears its
// expiry (WorkloadPlan.Emergency).
func emergencyNotes(w io.Writer, items []WorkloadPlan) error {
	for _, p := range items {
		if p.Emergency == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "\n%s/%s is held while the certificate its pods run on nears its expiry; to restart it now:\n  %s\n",
			strings.ToLower(p.Kind), p.Name, p.Emergency); err != nil {
			return err
		}
	}
	return nil
}

// shortAction is the ACTION column: what the controller does, in a few words.
func shortAction(p *WorkloadPlan, now time.Time) string {
	when := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return " in " + residual(*t, now)
	}
	switch decide.Action(p.Action) {
	case decide.ActionNone:
		return "none"
	case decide.ActionRecord:
		if p.Reason == api.ReasonReloadedByItself {
			return "reloaded by itself"
		}
		if p.Reason == api.ReasonReloaded {
			return "reloaded"
		}
		return "record"
	case decide.ActionRestart:
		return "restart now"
	case decide.ActionReload:
		return "reload now"
	case decide.ActionBlock:
		return "blocked"
	case decide.ActionWait:
		return "wait" + when(p.NextAt)
	case decide.ActionDelegate:
		pp := p.Policy
		switch {
		case pp == nil:
			return "policy"
		case pp.ActiveRollout != "":
			return "rolling (" + pp.ActiveRollout + ")"
		case pp.Invalid != "":
			return "held: invalid policy"
		case pp.Suspended:
			return "held: suspended"
		case p.NextAt != nil:
			return "rollout" + when(p.NextAt)
		}
		return "rollout now"
	}
	return p.Action
}

func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// describePlans prints each workload in detail, as kubectl describe does.
func describePlans(w io.Writer, items []WorkloadPlan, now time.Time) error {
	var b strings.Builder
	for i, p := range items {
		if i > 0 {
			b.WriteString("\n")
		}
		p.describe(&b, now)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// describe writes the plan of one workload: what it runs on, what it uses, its policy.
func (p WorkloadPlan) describe(b *strings.Builder, now time.Time) {
	line := func(k, v string) {
		if v == "" {
			v = "<none>"
		}
		fmt.Fprintf(b, "%-14s %s\n", k+":", v)
	}
	line("Workload", p.Kind+" "+p.Namespace+"/"+p.Name)
	stale := "no"
	if len(p.StalePods) > 0 {
		stale = fmt.Sprintf("yes: %d of %d pod(s) started before their certificates were issued (%s)", len(p.StalePods), p.Pods, strings.Join(p.StalePods, ", "))
	} else if p.Pods > 0 {
		stale = fmt.Sprintf("no: all %d pod(s) started after their certificates were issued", p.Pods)
	}
	line("Stale", stale)
	line("Enabled", fmt.Sprint(p.Enabled))
	line("Decision", p.Action+" ("+p.Reason+"): "+p.Message)
	line("Next", p.Next)
	running, current := p.Certificates.describe(now)
	line("Running on", running)
	line("Current", current)
	b.WriteString("Sources:\n")
	for _, s := range p.Sources {
		s.describe(b, p.Namespace, now)
	}
	for _, m := range p.Unread {
		fmt.Fprintf(b, "  %s: you may not read it (the controller does)\n", m)
	}
	for _, m := range p.Missing {
		fmt.Fprintf(b, "  %s: does not exist\n", m)
	}
	if p.Policy != nil {
		p.Policy.describe(b, now)
	}
	if p.Emergency != "" {
		line("Emergency", "held while the certificate its pods run on nears its expiry; to restart it now: "+p.Emergency)
	}
}

// describe says what the pods run on and what the workload uses now.
func (c PlanCertificates) describe(now time.Time) (running, current string) {
	running = orElse(c.Running, "not recorded yet")
	if c.RunningNotAfter != nil {
		running += ", expires " + c.RunningNotAfter.Format(time.RFC3339) + " (" + residual(*c.RunningNotAfter, now) + ")"
	}
	current = c.Current
	if c.CurrentNotAfter != nil {
		current += ", expires " + c.CurrentNotAfter.Format(time.RFC3339) + " (" + residual(*c.CurrentNotAfter, now) + ")"
	}
	if c.IssuedAt != nil {
		current += ", issued " + c.IssuedAt.Format(time.RFC3339)
	}
	return running, current
}

// describe writes one Secret or ConfigMap a workload of namespace ns uses, and its leaf certificate.
func (s PlanSource) describe(b *strings.Builder, ns string, now time.Time) {
	keys := "all keys"
	if len(s.Keys) > 0 {
		keys = strings.Join(s.Keys, ",")
	}
	how := strings.Join(s.Modes, ",")
	if s.NeverRefreshed {
		how += "; never refreshed in a running pod"
	}
	fmt.Fprintf(b, "  %s %s [%s] (%s)\n", s.Kind, s.Name, keys, how)
	if s.Leaf != nil {
		fmt.Fprintf(b, "    %s, issued by %s, serial %s, sha256 %s\n", s.Leaf.Subject, s.Leaf.Issuer, s.Leaf.Serial, shortHash(s.Leaf.Fingerprint))
		fmt.Fprintf(b, "    valid %s to %s (%s)", s.Leaf.NotBefore.Format(time.RFC3339), s.Leaf.NotAfter.Format(time.RFC3339), residual(s.Leaf.NotAfter, now))
		if s.IssuedAt != nil {
			fmt.Fprintf(b, ", issued %s", s.IssuedAt.Format(time.RFC3339))
		}
		b.WriteString("\n")
	} else {
		b.WriteString("    no certificates\n")
	}
	if s.CertManager != "" {
		fmt.Fprintf(b, "    from cert-manager %s\n", s.CertManager)
	}
	if s.CAChain != nil {
		fmt.Fprintf(b, "    %s\n", describeCAChain(s.CAChain, ns))
	}
}

// describe writes the RolloutPolicy as it applies to the workload.
func (pp PlanPolicy) describe(b *strings.Builder, now time.Time) {
	fmt.Fprintf(b, "Policy:        RolloutPolicy %s\n", pp.Name)
	if pp.Invalid != "" {
		fmt.Fprintf(b, "  Invalid:     %s\n", pp.Invalid)
	}
	for _, w := range pp.Warnings {
		fmt.Fprintf(b, "  Warning:     %s\n", w)
	}
	if pp.Suspended {
		b.WriteString("  Suspended:   true\n")
	}
	switch {
	case pp.WindowOpen:
		b.WriteString("  Window:      open now (or no windows)\n")
	case pp.NextWindow != nil:
		fmt.Fprintf(b, "  Window:      closed; next opens %s (in %s)\n", pp.NextWindow.Format(time.RFC3339), residual(*pp.NextWindow, now))
	}
	if pp.ExpiryDeadline != "" {
		at := "when the certificate the pods run on is known"
		if pp.DeadlineAt != nil {
			at = pp.DeadlineAt.Format(time.RFC3339)
		}
		fmt.Fprintf(b, "  Deadline:    %s before expiry: %s\n", pp.ExpiryDeadline, at)
	}
	for _, q := range pp.Quiesce {
		fmt.Fprintf(b, "  Quiesces:    %s/%s (drain timeout %s)\n", q.Kind, q.Name, q.DrainTimeout)
	}
	if pp.ActiveRollout != "" {
		fmt.Fprintf(b, "  Rollout:     %s (%s)\n", pp.ActiveRollout, pp.ActiveRolloutPhase)
	}
	if pp.Creates != "" {
		fmt.Fprintf(b, "  Creates:     CertRollout %s\n", pp.Creates)
	}
	if pp.PendingReason != "" {
		fmt.Fprintf(b, "  Pending:     %s: %s\n", pp.PendingReason, pp.Pending)
	}
}
