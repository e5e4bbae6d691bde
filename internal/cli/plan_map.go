package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
)

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// planOf turns the controller's view of a workload into its plan; graph (may be nil) says which of its
// Secrets are leaves of a CA issuer.
func planOf(w *controller.Workload, now time.Time, graph *cagraph.Graph) WorkloadPlan {
	d := w.Decision
	ledger := decide.ReadLedger(w.Object.GetAnnotations())
	p := WorkloadPlan{
		Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
		Enabled:   decide.Enabled(w.Object.GetAnnotations(), w.Input.Auto || w.Input.Policy != ""),
		Pods:      len(w.Input.Pods),
		StalePods: d.StalePods,
		Action:    string(d.Action), Reason: d.Reason, Message: d.Message,
		Certificates: PlanCertificates{
			Running: ledger.Hash, RunningNotAfter: optTime(ledger.NotAfter),
			Current: d.Set.Hash, CurrentNotAfter: optTime(d.Set.NotAfter), IssuedAt: optTime(d.Set.IssuedAt),
		},
		Sources: []PlanSource{},
	}
	for _, ref := range consumers.Refs(w.Uses) {
		ps := PlanSource{Kind: string(ref.Kind), Name: ref.Name, Keys: consumers.KeysOf(w.Uses, ref), NeverRefreshed: consumers.NeverRefreshed(w.Uses, ref)}
		for _, u := range w.Uses {
			if u.Ref == ref && !slices.Contains(ps.Modes, string(u.Mode)) {
				ps.Modes = append(ps.Modes, string(u.Mode))
			}
		}
		if src := w.Sources[ref]; src != nil {
			if leaf := leafOf(src, ps.Keys); leaf != nil {
				ps.Leaf = planCertificate(leaf)
				ps.IssuedAt = optTime(src.IssuedAt(ps.Keys))
			}
			if src.Issuance != nil {
				ps.CertManager = src.Issuance.String()
			}
		}
		if ref.Kind == consumers.KindSecret {
			if is, leaf := graph.LeafOfSecret(types.NamespacedName{Namespace: w.Namespace, Name: ref.Name}); leaf != nil {
				ps.CAChain = &CheckCAChain{Issuer: CheckIssuerRef{Kind: is.Kind, Namespace: is.Namespace, Name: is.Name},
					Certificate: leaf.Certificate.Name, Status: string(leaf.Status), Message: leaf.Message}
				if is.CA != nil {
					ps.CAChain.CAFingerprint = is.CA.Fingerprint
				}
			}
		}
		p.Sources = append(p.Sources, ps)
	}
	for _, m := range w.Unread {
		p.Unread = append(p.Unread, m.String())
	}
	for _, m := range w.Missing {
		p.Missing = append(p.Missing, m.String())
	}
	if pv := w.Policy; pv != nil {
		pp := &PlanPolicy{Name: pv.Policy.Name, Invalid: pv.Invalid, Warnings: pv.Warnings, Suspended: pv.Policy.Spec.Suspend,
			WindowOpen: pv.Window.Open, NextWindow: optTime(pv.Window.NextOpen), DeadlineAt: optTime(pv.Deadline)}
		if dl := pv.Policy.Spec.ExpiryDeadline; dl != nil {
			pp.ExpiryDeadline = dl.Duration.String()
		}
		for _, q := range pv.Policy.Spec.Quiesce {
			pp.Quiesce = append(pp.Quiesce, PlanQuiesce{Kind: q.Kind, Name: q.Name, DrainTimeout: q.EffectiveDrainTimeout().String()})
		}
		if c := apimeta.FindStatusCondition(pv.Next.Status.Conditions, api.ConditionPending); c != nil && c.Status == metav1.ConditionTrue {
			pp.PendingReason, pp.Pending = c.Reason, c.Message
		}
		if pv.Next.Create != nil {
			pp.Creates = pv.Next.Create.Name
		}
		if pv.Active != nil {
			pp.ActiveRollout, pp.ActiveRolloutPhase = pv.Active.Name, orElse(string(pv.Active.Status.Phase), string(api.PhasePending))
		}
		p.Policy = pp
	}
	var gate orchestrate.Gate
	if w.Policy != nil {
		gate = w.Policy.Gate
	}
	p.Next, p.NextAt = nextStep(&p, d, now, gate)
	p.Emergency = emergencyCommand(&p, d, gate, now)
	return p
}

// defaultEmergencyHorizon is how close to its expiry the certificate a held workload's pods run on must
// be for plan to offer the emergency restart, when no policy or one without expiryDeadline governs it.
const defaultEmergencyHorizon = 7 * 24 * time.Hour

// emergencyCommand is the `certrollout restart --now` command for a workload whose needed restart is
// held back while the certificate its pods run on comes within the policy's expiry deadline (or
// defaultEmergencyHorizon without one); "" otherwise. The deadline is judged by the policy's own
// predicate (RolloutPolicySpec.PastDeadline), so plan offers it exactly from when that deadline is due.
func emergencyCommand(p *WorkloadPlan, d decide.Decision, gate orchestrate.Gate, now time.Time) string {
	na := p.Certificates.RunningNotAfter
	if na == nil || !held(p, d, gate) {
		return ""
	}
	switch p.Kind {
	case api.KindDeployment, api.KindStatefulSet, api.KindDaemonSet:
	default:
		return "" // restart cannot restart it
	}
	horizon := api.RolloutPolicySpec{ExpiryDeadline: &metav1.Duration{Duration: defaultEmergencyHorizon}}
	if p.Policy != nil && p.Policy.ExpiryDeadline != "" {
		if dl, err := time.ParseDuration(p.Policy.ExpiryDeadline); err == nil {
			horizon.ExpiryDeadline.Duration = dl
		}
	}
	if !horizon.PastDeadline(*na, now) {
		return ""
	}
	return fmt.Sprintf(`certrollout restart %s/%s -n %s --now --reason "the certificate its pods run on expires at %s"`,
		strings.ToLower(p.Kind), p.Name, p.Namespace, na.UTC().Format(time.RFC3339))
}

// held reports whether a restart the workload needs is held back: its policy's rollout waits for a
// window, or the policy is suspended, invalid or saw its last rollout fail; the controller waits
// (settle period, cooldown, a CA cascade); or the restart budget is spent.
func held(p *WorkloadPlan, d decide.Decision, gate orchestrate.Gate) bool {
	switch d.Action {
	case decide.ActionWait:
		return true
	case decide.ActionBlock:
		return d.Reason == api.ReasonRestartBudget
	case decide.ActionDelegate:
		pp := p.Policy
		if pp == nil {
			return false
		}
		if pp.ActiveRollout != "" {
			return pp.ActiveRolloutPhase == string(api.PhasePending) || pp.ActiveRolloutPhase == string(api.PhaseWaitingForWindow)
		}
		switch pp.PendingReason {
		case api.ReasonSuspended, api.ReasonInvalidPolicy, api.ReasonLastRolloutFailed:
			return true
		}
		return !gate.Open
	case decide.ActionNone, decide.ActionRecord, decide.ActionRestart, decide.ActionReload:
	}
	return false
}

// leafOf is the certificate a workload is served or identified by among the keys it reads (nil: all):
// the first non-CA certificate, looking at tls.crt first, else the first certificate (a CA bundle).
func leafOf(src *inventory.Source, keys []string) *certs.Certificate {
	if keys == nil {
		for k := range src.Keys {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			if (a == corev1.TLSCertKey) != (b == corev1.TLSCertKey) {
				if a == corev1.TLSCertKey {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
	}
	var first *certs.Certificate
	for _, k := range keys {
		b := src.Keys[k]
		if b == nil {
			continue
		}
		if l := b.Leaf(); l != nil && !l.IsCA {
			return l
		}
		if first == nil && len(b.Certificates) > 0 {
			first = &b.Certificates[0]
		}
	}
	return first
}

func planCertificate(c *certs.Certificate) *PlanCertificate {
	return &PlanCertificate{Subject: c.Subject, Issuer: c.Issuer, Serial: c.SerialNumber, Fingerprint: c.Fingerprint,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

// nextStep says what the controller does next with the workload, and when. For a governed workload it
// follows the RolloutPolicy controller: an active rollout runs on; an invalid or suspended policy holds;
// otherwise a CertRollout starts now, in the next window, or at the deadline if that comes first.
func nextStep(p *WorkloadPlan, d decide.Decision, now time.Time, gate orchestrate.Gate) (string, *time.Time) {
	switch d.Action {
	case decide.ActionNone:
		switch d.Reason {
		case api.ReasonNotEnabled:
			return "nothing: not enabled (annotate " + api.AnnotationEnabled + "=true, or select it with a RolloutPolicy)", nil
		case api.ReasonUpToDate:
			return "nothing: the pods run on the current certificates", nil
		}
		return "nothing", nil
	case decide.ActionRecord:
		switch d.Reason {
		case api.ReasonReloadedByItself:
			return "records the current certificates on the workload; no restart: its pods reloaded them by themselves (they serve them, probed)", nil
		case api.ReasonReloaded:
			return "records the current certificates on the workload; no restart: its reload hook worked (its pods serve them, probed)", nil
		}
		return "records the current certificates on the workload; no restart (the pods already run on them)", nil
	case decide.ActionRestart:
		return "restarts it now", nil
	case decide.ActionReload:
		return "calls its reload hook on each pod now, then probes them; restarts it if they do not serve the new certificates in time", nil
	case decide.ActionBlock:
		return "nothing it can do: " + d.Message, nil
	case decide.ActionWait:
		at := now.Add(d.RequeueAfter).UTC()
		what := "waits"
		switch d.Reason {
		case api.ReasonCooldown:
			what = "waits for the per-workload cooldown"
		case api.ReasonSettling:
			what = "waits for the settle period"
		case api.ReasonCascadeInProgress:
			what = "waits for the CA cascade to re-issue its leaf (" + d.Message + ")"
		case api.ReasonReloading:
			what = "waits for its pods to serve the new certificates after its reload hook"
		}
		if p.Policy != nil {
			return fmt.Sprintf("%s, then hands it to RolloutPolicy %s, at %s", what, p.Policy.Name, at.Format(time.RFC3339)), &at
		}
		return fmt.Sprintf("%s, then restarts it at %s", what, at.Format(time.RFC3339)), &at
	case decide.ActionDelegate:
		return policyStep(p.Policy, gate)
	}
	return string(d.Action), nil
}

// policyStep says what the RolloutPolicy controller does with a due workload, as governor.Decide decided
// it: an active rollout runs on; an invalid or suspended policy, or a failed rollout for these very
// certificates, creates none; otherwise the CertRollout it creates starts when the start gate
// (orchestrate.StartGate, the rollout's own rule) opens.
func policyStep(pp *PlanPolicy, gate orchestrate.Gate) (string, *time.Time) {
	if pp == nil {
		return "restarts it through its RolloutPolicy", nil
	}
	switch {
	case pp.ActiveRollout != "":
		return fmt.Sprintf("CertRollout %s is %s; it includes this workload if it was due when the rollout was created", pp.ActiveRollout, pp.ActiveRolloutPhase), nil
	case pp.PendingReason == api.ReasonInvalidPolicy:
		return fmt.Sprintf("waits: RolloutPolicy %s is invalid (%s)", pp.Name, pp.Invalid), nil
	case pp.PendingReason == api.ReasonSuspended:
		return fmt.Sprintf("waits: RolloutPolicy %s is suspended", pp.Name), nil
	case pp.PendingReason == api.ReasonLastRolloutFailed:
		return fmt.Sprintf("waits: RolloutPolicy %s: %s", pp.Name, pp.Pending), nil
	case gate.Reason == api.ReasonDeadlineOverride:
		return fmt.Sprintf("RolloutPolicy %s starts a CertRollout now, outside its windows: the certificate the pods run on expires within its expiryDeadline %s%s",
			pp.Name, pp.ExpiryDeadline, quiesceNote(pp)), nil
	case gate.Open:
		return fmt.Sprintf("RolloutPolicy %s starts a CertRollout now (a window is open)%s", pp.Name, quiesceNote(pp)), nil
	case gate.ByDeadline:
		at := gate.At.UTC()
		return fmt.Sprintf("RolloutPolicy %s restarts it at %s, before its next window (%s): the expiry deadline comes first%s",
			pp.Name, at.Format(time.RFC3339), formatOpt(pp.NextWindow), quiesceNote(pp)), &at
	case !gate.At.IsZero():
		at := gate.At.UTC()
		return fmt.Sprintf("RolloutPolicy %s restarts it in the next maintenance window, at %s%s", pp.Name, at.Format(time.RFC3339), quiesceNote(pp)), &at
	}
	return fmt.Sprintf("RolloutPolicy %s restarts it through a CertRollout%s", pp.Name, quiesceNote(pp)), nil
}

// formatOpt is t in RFC 3339, or "none".
func formatOpt(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.Format(time.RFC3339)
}

func quiesceNote(pp *PlanPolicy) string {
	if len(pp.Quiesce) == 0 {
		return ""
	}
	names := make([]string, 0, len(pp.Quiesce))
	for _, q := range pp.Quiesce {
		names = append(names, api.WorkloadReference{Kind: q.Kind, Name: q.Name}.Key())
	}
	return ", after scaling " + strings.Join(names, ", ") + " to zero"
}
