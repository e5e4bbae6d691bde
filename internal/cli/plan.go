package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cagraph"
	"github.com/certrollout/certrollout/internal/certs"
	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/policy"
)

// PlanOptions holds the flags of `certrollout plan`.
type PlanOptions struct {
	KubeFlags
	OutputFlag
	// Selector filters workloads by label.
	Selector string
	// StaleOnly lists only workloads whose pods run on old certificates.
	StaleOnly bool
	// Workloads are the KIND/NAME arguments; empty means every workload that uses a Secret or ConfigMap.
	Workloads []WorkloadArg
	// Controller are the controller settings the decisions depend on: those it publishes, under the
	// flags given here (--auto, cooldown, settle period, restart budget).
	Controller ControllerFlags
	// Now is the clock (tests fix it).
	Now func() time.Time

	selector labels.Selector
	IOStreams
}

func newPlanCommand(streams IOStreams) *cobra.Command {
	o := &PlanOptions{IOStreams: streams, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "plan [KIND/NAME...]",
		Short: "Show which workloads run on old certificates and what certrollout will do about them",
		Long: `Show, for each workload that uses a Secret or ConfigMap, whether its pods run on old certificates and
what the certrollout controller will do about it: restart it now, wait (settle period, cooldown, the
next maintenance window of its RolloutPolicy), or nothing, and why (up to date, not enabled, a paused
Deployment, an OnDelete strategy, a suspended or invalid policy).

plan reads the cluster through the controller's own caches and runs the controller's own decision code,
so what it prints is what the controller does. It decides with the settings the controller publishes
(ConfigMap certrollout-settings in the controller's namespace: --auto, --settle-period,
--min-restart-interval, --max-restarts-per-day, ...) and says which it assumed; a flag given here wins
over the published value, to ask "what if".

A pod is stale when it started before the certificates it uses were issued. CERTIFICATES shows the
certificate set the pods were last restarted for (as recorded on the workload) and the current one.

Name workloads as kubectl does (deployment/web, sts/db, ds/agent, cronjob/report, pod/tool) to see
each one in detail: the certificates it uses and how, its pods, its policy's windows, deadline and
quiesce list, and what blocks it.`,
		Example: `  # Everything in the current namespace that uses certificates
  certrollout plan

  # Only what runs on old certificates, across the cluster
  certrollout plan -A --stale

  # Does the build service need a restart, and when will it happen?
  certrollout plan deployment/opschain-build-service -n opschain

  # What if the controller ran with --auto?
  certrollout plan -A --auto -o json`,
		ValidArgsFunction: completeWorkloads(&o.KubeFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addKubeFlags(cmd, true)
	o.addOutputFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Only workloads with these labels (e.g. app=web,tier!=cache).")
	f.BoolVar(&o.StaleOnly, "stale", false, "Only workloads whose pods run on old certificates.")
	o.Controller.addControllerFlags(cmd, "auto", "min-restart-interval", "settle-period", "max-restarts-per-day", "cluster-resource-namespace")
	return cmd
}

// Complete parses the arguments and loads the kubeconfig.
func (o *PlanOptions) Complete(args []string) error {
	for _, a := range args {
		w, err := ParseWorkloadArg(a)
		if err != nil {
			return err
		}
		o.Workloads = append(o.Workloads, w)
	}
	if o.Selector != "" {
		sel, err := labels.Parse(o.Selector)
		if err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
		o.selector = sel
	}
	return o.KubeFlags.Complete()
}

// Validate checks the flags.
func (o *PlanOptions) Validate() error {
	var errs []error
	if err := o.validateOutput(); err != nil {
		errs = append(errs, err)
	}
	if c := o.Controller.Options; c.MinRestartInterval < 0 || c.SettlePeriod < 0 || c.MaxRestartsPerDay < 0 {
		errs = append(errs, errors.New("--min-restart-interval, --settle-period and --max-restarts-per-day must not be negative"))
	}
	if len(o.Workloads) > 0 && o.AllNamespaces {
		errs = append(errs, errors.New("name workloads in one namespace (-n), not with --all-namespaces"))
	}
	return errors.Join(errs...)
}

// Run prints the plan.
func (o *PlanOptions) Run(ctx context.Context) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	if err := o.Controller.Resolve(ctx, c, o.ListNamespace()); err != nil {
		return explain(err, o.Config())
	}
	o.Controller.Options.Clock = o.Now
	snap, err := o.Snapshot(ctx, o.Controller.Options)
	if err != nil {
		return err
	}
	defer snap.Close()
	var found []controller.Workload
	graphNS := o.ListNamespace()
	if len(o.Workloads) > 0 {
		graphNS = o.ResolvedNamespace()
	}
	graph, err := snap.CAGraph(ctx, graphNS)
	if err != nil {
		return explain(err, o.Config())
	}
	if len(o.Workloads) > 0 {
		for _, a := range o.Workloads {
			w, ok, err := snap.Workload(ctx, a.Kind, o.ResolvedNamespace(), a.Name)
			if err != nil {
				return explain(err, o.Config())
			}
			if !ok {
				return fmt.Errorf("%s %s not found in namespace %s", a.Kind, a.Name, o.ResolvedNamespace())
			}
			found = append(found, w)
		}
	} else {
		all, err := snap.Workloads(ctx, o.ListNamespace())
		if err != nil {
			return explain(err, o.Config())
		}
		found = all
	}
	report := PlanReport{APIVersion: ReportAPIVersion, Kind: "PlanReport", GeneratedAt: o.Now().UTC().Truncate(time.Second),
		Controller: o.Controller.Assumed, Items: []WorkloadPlan{}}
	for i := range found {
		w := &found[i]
		if o.selector != nil && !o.selector.Matches(labels.Set(w.Object.GetLabels())) {
			continue
		}
		p := planOf(w, o.Now(), graph)
		if len(o.Workloads) == 0 && p.Reason == policy.ReasonNoCertificates {
			continue // uses Secrets or ConfigMaps, none with certificates
		}
		if o.StaleOnly && len(p.StalePods) == 0 {
			continue
		}
		report.Items = append(report.Items, p)
	}
	if !o.structured() {
		report.Controller.note(o.ErrOut)
	}
	switch {
	case o.structured():
		return o.printDocument(o.Out, report)
	case len(o.Workloads) > 0:
		return describePlans(o.Out, report.Items, o.Now())
	default:
		if len(report.Items) == 0 {
			_, err := fmt.Fprintf(o.ErrOut, "No workloads using certificates found%s.\n", inNamespace(o.ListNamespace()))
			return err
		}
		return planTable(o.Out, report.Items, o.AllNamespaces, o.wide(), o.Now())
	}
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}

// PlanReport is the JSON/YAML document of `certrollout plan` (kind PlanReport; schema in docs/plan.md).
type PlanReport struct {
	APIVersion  string    `json:"apiVersion"`
	Kind        string    `json:"kind"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Controller says which controller settings the decisions assume, and where they came from.
	Controller AssumedSettings `json:"controller"`
	Items      []WorkloadPlan  `json:"items"`
}

// WorkloadPlan is what certrollout knows and will do about one workload.
type WorkloadPlan struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// Enabled: certrollout may restart it (annotation, --auto, or selected by a RolloutPolicy).
	Enabled bool `json:"enabled"`
	// Pods counts its running pods; StalePods names those started before their certificates were issued.
	Pods      int      `json:"pods"`
	StalePods []string `json:"stalePods,omitempty"`
	// Action is the controller's decision: None, Record, Restart, Block, Wait or Delegate (to a policy).
	Action string `json:"action"`
	// Reason is the decision's reason (the words Events and metrics use); Message explains it.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Next says in one sentence what happens next; NextAt is when, if known.
	Next   string     `json:"next"`
	NextAt *time.Time `json:"nextAt,omitempty"`
	// Certificates compares what the pods run on with what the workload uses now.
	Certificates PlanCertificates `json:"certificates"`
	// Sources are the Secrets and ConfigMaps it uses; Missing those it names that do not exist.
	Sources []PlanSource `json:"sources"`
	Missing []string     `json:"missing,omitempty"`
	// Policy is the RolloutPolicy that governs it; absent when none does.
	Policy *PlanPolicy `json:"policy,omitempty"`
}

// PlanCertificates are certificate sets, identified by the hash certrollout records on workloads.
type PlanCertificates struct {
	// Running is the set the pods were last (re)started for, from the workload's
	// certrollout.io/certificate-hash annotation; empty when certrollout has not recorded one yet.
	Running string `json:"running,omitempty"`
	// RunningNotAfter is when the earliest certificate of the running set expires.
	RunningNotAfter *time.Time `json:"runningNotAfter,omitempty"`
	// Current is the set the workload's Secrets and ConfigMaps hold now.
	Current         string     `json:"current,omitempty"`
	CurrentNotAfter *time.Time `json:"currentNotAfter,omitempty"`
	// IssuedAt is when the newest of the current certificates was issued: pods started before it are stale.
	IssuedAt *time.Time `json:"issuedAt,omitempty"`
}

// PlanSource is one Secret or ConfigMap a workload uses.
type PlanSource struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Keys it reads (empty: all), and how: volume, subPath, env, annotation.
	Keys  []string `json:"keys,omitempty"`
	Modes []string `json:"modes"`
	// NeverRefreshed: env or subPath, which no certificate reload inside the process can pick up.
	NeverRefreshed bool `json:"neverRefreshed,omitempty"`
	// Leaf is the first certificate of the keys it reads (the serving or client certificate).
	Leaf     *PlanCertificate `json:"leaf,omitempty"`
	IssuedAt *time.Time       `json:"issuedAt,omitempty"`
	// CertManager names the cert-manager Certificate that issues it.
	CertManager string `json:"certManager,omitempty"`
	// CAChain is set when that Certificate is signed by a cert-manager CA Issuer or ClusterIssuer: whether
	// the Secret's certificate was issued by the issuer's current CA (as in CheckReport).
	CAChain *CheckCAChain `json:"caChain,omitempty"`
}

// PlanCertificate identifies one certificate.
type PlanCertificate struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serialNumber"`
	Fingerprint string    `json:"sha256Fingerprint"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
}

// PlanPolicy is the RolloutPolicy that governs a workload, as it applies to it.
type PlanPolicy struct {
	Name string `json:"name"`
	// Invalid says why the policy cannot be followed; empty when it can.
	Invalid   string `json:"invalid,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
	// WindowOpen is true when a maintenance window is open now (or the policy has none); NextWindow is
	// when the next opens.
	WindowOpen bool       `json:"windowOpen"`
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// ExpiryDeadline is spec.expiryDeadline; DeadlineAt is when it lets a rollout start outside the
	// windows for this workload (expiry of the certificate its pods run on, minus the deadline).
	ExpiryDeadline string     `json:"expiryDeadline,omitempty"`
	DeadlineAt     *time.Time `json:"deadlineAt,omitempty"`
	// Quiesce lists what is scaled to zero before the restart and restored after.
	Quiesce []PlanQuiesce `json:"quiesce,omitempty"`
	// ActiveRollout is the policy's CertRollout in progress, with its phase.
	ActiveRollout      string `json:"activeRollout,omitempty"`
	ActiveRolloutPhase string `json:"activeRolloutPhase,omitempty"`
}

// PlanQuiesce is one workload a policy quiesces.
type PlanQuiesce struct {
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	DrainTimeout string `json:"drainTimeout,omitempty"`
}

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
	ledger := policy.ReadLedger(w.Object.GetAnnotations())
	p := WorkloadPlan{
		Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
		Enabled:   policy.Enabled(w.Object.GetAnnotations(), w.Input.Auto || w.Input.Policy != ""),
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
	for _, m := range w.Missing {
		p.Missing = append(p.Missing, m.String())
	}
	if pv := w.Policy; pv != nil {
		pp := &PlanPolicy{Name: pv.Policy.Name, Invalid: pv.Invalid, Suspended: pv.Policy.Spec.Suspend,
			WindowOpen: pv.Window.Open, NextWindow: optTime(pv.Window.NextOpen), DeadlineAt: optTime(pv.Deadline)}
		if dl := pv.Policy.Spec.ExpiryDeadline; dl != nil {
			pp.ExpiryDeadline = dl.Duration.String()
		}
		for _, q := range pv.Policy.Spec.Quiesce {
			pp.Quiesce = append(pp.Quiesce, PlanQuiesce{Kind: q.Kind, Name: q.Name, DrainTimeout: q.EffectiveDrainTimeout().String()})
		}
		if pv.Active != nil {
			pp.ActiveRollout, pp.ActiveRolloutPhase = pv.Active.Name, orDefault(string(pv.Active.Status.Phase), string(api.PhasePending))
		}
		p.Policy = pp
	}
	var gate orchestrate.Gate
	if w.Policy != nil {
		gate = w.Policy.Gate
	}
	p.Next, p.NextAt = nextStep(&p, d, now, gate)
	return p
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

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// nextStep says what the controller does next with the workload, and when. For a governed workload it
// follows the RolloutPolicy controller: an active rollout runs on; an invalid or suspended policy holds;
// otherwise a CertRollout starts now, in the next window, or at the deadline if that comes first.
func nextStep(p *WorkloadPlan, d policy.Decision, now time.Time, gate orchestrate.Gate) (string, *time.Time) {
	switch d.Action {
	case policy.ActionNone:
		switch d.Reason {
		case policy.ReasonNotEnabled:
			return "nothing: not enabled (annotate " + policy.AnnotationEnabled + "=true, or select it with a RolloutPolicy)", nil
		case policy.ReasonUpToDate:
			return "nothing: the pods run on the current certificates", nil
		}
		return "nothing", nil
	case policy.ActionRecord:
		return "records the current certificates on the workload; no restart (the pods already run on them)", nil
	case policy.ActionRestart:
		return "restarts it now", nil
	case policy.ActionBlock:
		return "nothing it can do: " + d.Message, nil
	case policy.ActionWait:
		at := now.Add(d.RequeueAfter).UTC()
		what := "waits"
		switch d.Reason {
		case policy.ReasonCooldown:
			what = "waits for the per-workload cooldown"
		case policy.ReasonSettling:
			what = "waits for the settle period"
		case policy.ReasonCascadeInProgress:
			what = "waits for the CA cascade to re-issue its leaf (" + d.Message + ")"
		}
		if p.Policy != nil {
			return fmt.Sprintf("%s, then hands it to RolloutPolicy %s, at %s", what, p.Policy.Name, at.Format(time.RFC3339)), &at
		}
		return fmt.Sprintf("%s, then restarts it at %s", what, at.Format(time.RFC3339)), &at
	case policy.ActionDelegate:
		return policyStep(p.Policy, gate)
	}
	return string(d.Action), nil
}

// policyStep says what the RolloutPolicy controller does with a due workload: an active rollout runs on;
// an invalid or suspended policy creates none; otherwise a CertRollout starts when the start gate
// (orchestrate.StartGate, the rollout's own rule) opens.
func policyStep(pp *PlanPolicy, gate orchestrate.Gate) (string, *time.Time) {
	if pp == nil {
		return "restarts it through its RolloutPolicy", nil
	}
	switch {
	case pp.ActiveRollout != "":
		return fmt.Sprintf("CertRollout %s is %s; it includes this workload if it was due when the rollout was created", pp.ActiveRollout, pp.ActiveRolloutPhase), nil
	case pp.Invalid != "":
		return fmt.Sprintf("waits: RolloutPolicy %s is invalid (%s)", pp.Name, pp.Invalid), nil
	case pp.Suspended:
		return fmt.Sprintf("waits: RolloutPolicy %s is suspended", pp.Name), nil
	case gate.Reason == orchestrate.ReasonDeadlineOverride:
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
		names = append(names, q.Kind+"/"+q.Name)
	}
	return ", after scaling " + strings.Join(names, ", ") + " to zero"
}

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
	return t.flush()
}

// shortAction is the ACTION column: what the controller does, in a few words.
func shortAction(p *WorkloadPlan, now time.Time) string {
	when := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return " in " + residual(*t, now)
	}
	switch policy.Action(p.Action) {
	case policy.ActionNone:
		return "none"
	case policy.ActionRecord:
		return "record"
	case policy.ActionRestart:
		return "restart now"
	case policy.ActionBlock:
		return "blocked"
	case policy.ActionWait:
		return "wait" + when(p.NextAt)
	case policy.ActionDelegate:
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
		line := func(k, v string) {
			if v == "" {
				v = "<none>"
			}
			fmt.Fprintf(&b, "%-14s %s\n", k+":", v)
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
		c := p.Certificates
		running := orDefault(c.Running, "not recorded yet")
		if c.RunningNotAfter != nil {
			running += ", expires " + c.RunningNotAfter.Format(time.RFC3339) + " (" + residual(*c.RunningNotAfter, now) + ")"
		}
		line("Running on", running)
		current := c.Current
		if c.CurrentNotAfter != nil {
			current += ", expires " + c.CurrentNotAfter.Format(time.RFC3339) + " (" + residual(*c.CurrentNotAfter, now) + ")"
		}
		if c.IssuedAt != nil {
			current += ", issued " + c.IssuedAt.Format(time.RFC3339)
		}
		line("Current", current)
		b.WriteString("Sources:\n")
		for _, s := range p.Sources {
			keys := "all keys"
			if len(s.Keys) > 0 {
				keys = strings.Join(s.Keys, ",")
			}
			how := strings.Join(s.Modes, ",")
			if s.NeverRefreshed {
				how += "; never refreshed in a running pod"
			}
			fmt.Fprintf(&b, "  %s %s [%s] (%s)\n", s.Kind, s.Name, keys, how)
			if s.Leaf != nil {
				fmt.Fprintf(&b, "    %s, issued by %s, serial %s, sha256 %s\n", s.Leaf.Subject, s.Leaf.Issuer, s.Leaf.Serial, shortHash(s.Leaf.Fingerprint))
				fmt.Fprintf(&b, "    valid %s to %s (%s)", s.Leaf.NotBefore.Format(time.RFC3339), s.Leaf.NotAfter.Format(time.RFC3339), residual(s.Leaf.NotAfter, now))
				if s.IssuedAt != nil {
					fmt.Fprintf(&b, ", issued %s", s.IssuedAt.Format(time.RFC3339))
				}
				b.WriteString("\n")
			} else {
				b.WriteString("    no certificates\n")
			}
			if s.CertManager != "" {
				fmt.Fprintf(&b, "    from cert-manager %s\n", s.CertManager)
			}
			if s.CAChain != nil {
				fmt.Fprintf(&b, "    %s\n", describeCAChain(s.CAChain, p.Namespace))
			}
		}
		for _, m := range p.Missing {
			fmt.Fprintf(&b, "  %s: does not exist\n", m)
		}
		if pp := p.Policy; pp != nil {
			fmt.Fprintf(&b, "Policy:        RolloutPolicy %s\n", pp.Name)
			if pp.Invalid != "" {
				fmt.Fprintf(&b, "  Invalid:     %s\n", pp.Invalid)
			}
			if pp.Suspended {
				b.WriteString("  Suspended:   true\n")
			}
			switch {
			case pp.WindowOpen:
				b.WriteString("  Window:      open now (or no windows)\n")
			case pp.NextWindow != nil:
				fmt.Fprintf(&b, "  Window:      closed; next opens %s (in %s)\n", pp.NextWindow.Format(time.RFC3339), residual(*pp.NextWindow, now))
			}
			if pp.ExpiryDeadline != "" {
				at := "when the certificate the pods run on is known"
				if pp.DeadlineAt != nil {
					at = pp.DeadlineAt.Format(time.RFC3339)
				}
				fmt.Fprintf(&b, "  Deadline:    %s before expiry: %s\n", pp.ExpiryDeadline, at)
			}
			for _, q := range pp.Quiesce {
				fmt.Fprintf(&b, "  Quiesces:    %s/%s (drain timeout %s)\n", q.Kind, q.Name, q.DrainTimeout)
			}
			if pp.ActiveRollout != "" {
				fmt.Fprintf(&b, "  Rollout:     %s (%s)\n", pp.ActiveRollout, pp.ActiveRolloutPhase)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
