package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/certmanager"
	"github.com/certrollout/certrollout/internal/controller"
	"github.com/certrollout/certrollout/internal/reissue"
)

// RenewOptions holds the flags of `certrollout renew`.
type RenewOptions struct {
	KubeFlags
	OutputFlag
	DryRunFlag

	Names    []string
	Selector string
	All      bool
	Wait     bool
	Timeout  time.Duration
	Restart  bool
	Reason   string

	// Now is the clock of the progress lines (tests fix it).
	Now func() time.Time
	// Tick paces the rollout progress display of --restart; nil: every second.
	Tick <-chan time.Time

	IOStreams
}

// Reason and message of the Issuing condition renew sets: the reason cert-manager's own tooling uses
// for a re-issuance asked for by hand, so cert-manager and people reading the condition know it.
const (
	reasonManuallyTriggered = "ManuallyTriggered"
	issuingMessage          = "Re-issuance triggered by certrollout renew"
)

// Outcomes of one Certificate in a RenewReport.
const (
	RenewTriggered      = "Triggered"
	RenewAlreadyIssuing = "AlreadyIssuing"
	RenewIssued         = "Issued"
	RenewFailed         = "Failed"
	RenewTimedOut       = "TimedOut"
)

// RenewReport is what `renew -o json|yaml` prints: each Certificate with what happened to it and, with
// --restart, the CertRollouts that rolled its consumers.
type RenewReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// DryRun is client or server under --dry-run: nothing was triggered.
	DryRun         string            `json:"dryRun,omitempty"`
	Certificates   []RenewedCert     `json:"certificates"`
	Rollouts       []api.CertRollout `json:"rollouts,omitempty"`
	NotRestartable []WorkloadNote    `json:"notRestartable,omitempty"`
}

// RenewedCert is one Certificate of a RenewReport.
type RenewedCert struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	SecretName string `json:"secretName"`
	// Result: Triggered (no --wait), AlreadyIssuing (not triggered again; with --wait, waited for),
	// Issued, Failed, TimedOut.
	Result string `json:"result"`
	// PreviousRevision is status.revision before; Revision the one at the end (with --wait).
	PreviousRevision *int `json:"previousRevision,omitempty"`
	Revision         *int `json:"revision,omitempty"`
	// PreviousNotAfter is status.notAfter before; NotAfter the one at the end (with --wait).
	PreviousNotAfter *time.Time `json:"previousNotAfter,omitempty"`
	NotAfter         *time.Time `json:"notAfter,omitempty"`
	Ready            bool       `json:"ready"`
	Message          string     `json:"message,omitempty"`

	// datesTellApart is false when the previous certificate was issued in the second the renewal was
	// triggered: certificates have one-second dates, so the new one may carry the very same, and only the
	// revision can say the renewal is done.
	datesTellApart bool
}

func newRenewCommand(streams IOStreams) *cobra.Command {
	o := &RenewOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "renew (CERTIFICATE... | -l SELECTOR | --all)",
		Short: "Renew cert-manager Certificates now, wait for them, and restart what uses them",
		Long: `Ask cert-manager to issue Certificates again, now.

Like cmctl renew, it sets the condition Issuing=True (reason ManuallyTriggered) on each Certificate's
status; cert-manager then issues a new certificate into the Certificate's Secret. A Certificate already
being issued is not triggered twice.

--wait blocks until each Certificate's status.revision has moved past the one it had and it is Ready,
printing one timestamped line per change; it stops at the first sign of a failed issuance.
--restart (implies --wait) then restarts the workloads that use the Certificates' Secrets, as
certrollout restart --secret does: through the RolloutPolicies that govern them, and follows those
rollouts to the end. It restarts each workload once for the renewal, even alongside the controller: a
workload its policy's rollout already covers is left to that rollout (followed instead), and one the
controller already restarted onto the new certificates is skipped.

--dry-run=client (or --dry-run alone) prints what would be triggered and sends nothing;
--dry-run=server sends the status patches with dryRun=All (RBAC and admission judge them) and stores
nothing.

Exit status: 0 when done, 1 when an issuance or rollout failed, 2 when --timeout passed first (what was
started goes on in the cluster), 3 when the cluster cannot be reached.`,
		Example: `  # Renew one Certificate and wait until the new one is issued and Ready
  certrollout renew api-tls --wait

  # Renew every Certificate labelled team=payments in all namespaces
  certrollout renew -A -l team=payments

  # Renew, wait, then roll the consumers of its Secret through their policies
  certrollout renew api-tls --restart --timeout 20m

  # Which Certificates would -l select, and may I renew them? (nothing stored)
  certrollout renew -l team=payments --dry-run=server`,
		ValidArgsFunction: completeCertificates(&o.KubeFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Names = args
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addKubeFlags(cmd, true)
	o.addOutputFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Renew the Certificates with these labels.")
	f.BoolVar(&o.All, "all", false, "Renew every Certificate in the namespace (or, with -A, in the cluster).")
	addWaitFlag(cmd, &o.Wait, "Wait until each Certificate has a new revision and is Ready.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --wait or --restart, stop waiting after this long and exit 2 (0: no limit).")
	f.BoolVar(&o.Restart, "restart", false, "After the renewal, restart the workloads that use the Certificates' Secrets through their policies (implies --wait).")
	f.StringVar(&o.Reason, "reason", "", "With --restart, the rollouts' spec.trigger.message (default: which Certificates were renewed).")
	o.addDryRunFlag(cmd, "the Issuing condition on each Certificate's status")
	return cmd
}

// completeCertificates completes Certificate names of the namespace.
func completeCertificates(k *KubeFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(k, func() client.ObjectList { return &certmanager.CertificateList{} })
}

// Validate checks the flags.
func (o *RenewOptions) Validate() error {
	if err := o.validateOutput(); err != nil {
		return err
	}
	if o.Output == OutputWide {
		return errors.New("--output wide is for tables: renew prints lines, json or yaml")
	}
	if err := o.validateDryRun(); err != nil {
		return err
	}
	if o.dryRun() && (o.Wait || o.Restart || o.Timeout != 0) {
		return errors.New("--dry-run triggers nothing to wait for or restart after: drop --wait, --restart and --timeout")
	}
	n := 0
	for _, set := range []bool{len(o.Names) > 0, o.Selector != "", o.All} {
		if set {
			n++
		}
	}
	if n == 0 {
		return errors.New("name Certificates, or select them with -l SELECTOR or --all")
	}
	if n > 1 {
		return errors.New("name Certificates or select them with -l or --all, not both")
	}
	if len(o.Names) > 0 && o.AllNamespaces {
		return errors.New("a Certificate name needs its namespace: use -n NAMESPACE instead of -A")
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Restart {
		o.Wait = true
	}
	if o.Timeout > 0 && !o.Wait {
		return errors.New("--timeout only applies with --wait or --restart")
	}
	if o.Reason != "" && !o.Restart {
		return errors.New("--reason is recorded on the rollouts of --restart")
	}
	return nil
}

// Complete loads the kubeconfig.
func (o *RenewOptions) Complete() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o.KubeFlags.Complete()
}

// certRef names a Certificate.
func certRef(c *certmanager.Certificate) types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
}

// Run renews, waits and restarts.
func (o *RenewOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	certs, err := o.certificates(ctx, c)
	if err != nil {
		return err
	}
	info := o.Out
	if o.structured() {
		info = o.ErrOut
	}
	report := RenewReport{APIVersion: ReportAPIVersion, Kind: "RenewReport"}
	if o.dryRun() {
		report.DryRun = o.DryRun
	}
	for i := range certs {
		crt := &certs[i]
		rc := RenewedCert{Namespace: crt.Namespace, Name: crt.Name, SecretName: crt.Spec.SecretName, PreviousRevision: crt.Status.Revision, PreviousNotAfter: notAfterOf(crt), Ready: crt.Ready(),
			datesTellApart: crt.Status.NotBefore == nil || o.Now().Sub(crt.Status.NotBefore.Time) > 2*time.Second}
		if issuing := crt.Condition(certmanager.ConditionIssuing); issuing != nil && issuing.Status == string(metav1.ConditionTrue) {
			rc.Result, rc.Message = RenewAlreadyIssuing, "already being issued: "+orElse(issuing.Message, issuing.Reason)
			fmt.Fprintf(info, "%s already issuing (%s): not triggered again\n", o.certName(crt), revisionString(crt.Status.Revision))
		} else {
			if !o.clientDryRun() {
				if err := reissue.Trigger(ctx, o.writer(c), crt, reasonManuallyTriggered, issuingMessage, o.Now()); err != nil {
					return o.explainCert(err, crt)
				}
			}
			rc.Result = RenewTriggered
			fmt.Fprintf(info, "%s renewal triggered%s (%s)\n", o.certName(crt), o.dryRunSuffix(), revisionString(crt.Status.Revision))
		}
		report.Certificates = append(report.Certificates, rc)
	}
	var failure error
	// --timeout bounds the whole wait: the renewals and then the rollouts of --restart.
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	if o.Wait {
		failure = o.wait(wctx, c, info, &report)
	}
	if o.Restart && failure == nil {
		failure = o.restart(wctx, c, &report)
	}
	if o.structured() {
		if err := o.printDocument(o.Out, report); err != nil {
			return err
		}
	}
	return failure
}

// certName is how lines name a Certificate: kubectl's resource/name, with -n under -A so the line can
// be pasted into kubectl.
func (o *RenewOptions) certName(c *certmanager.Certificate) string {
	s := "certificate.cert-manager.io/" + c.Name
	if o.AllNamespaces {
		s += " -n " + c.Namespace
	}
	return s
}

func revisionString(r *int) string {
	if r == nil {
		return "never issued"
	}
	return fmt.Sprintf("revision %d", *r)
}

// explainCert turns a Certificate's errors into actionable ones.
func (o *RenewOptions) explainCert(err error, crt *certmanager.Certificate) error {
	if apierrors.IsNotFound(err) && !isNotServed(err, certmanager.GroupVersion.Group) {
		return fmt.Errorf("Certificate %q not found in namespace %q (list them with `kubectl get certificates -n %s`)", crt.Name, crt.Namespace, crt.Namespace) //nolint:staticcheck // a kind name starts the sentence
	}
	return explain(err, o.Config())
}

// certificates resolves the arguments: every named one must exist (nothing is triggered otherwise);
// a selector or --all must match at least one.
func (o *RenewOptions) certificates(ctx context.Context, c client.Client) ([]certmanager.Certificate, error) {
	if len(o.Names) > 0 {
		var out []certmanager.Certificate
		var missing []string
		seen := map[string]bool{}
		for _, name := range o.Names {
			if seen[name] {
				continue
			}
			seen[name] = true
			var crt certmanager.Certificate
			if err := c.Get(ctx, client.ObjectKey{Namespace: o.ResolvedNamespace(), Name: name}, &crt); err != nil {
				if apierrors.IsNotFound(err) && !isNotServed(err, certmanager.GroupVersion.Group) {
					missing = append(missing, fmt.Sprintf("Certificate %q not found in namespace %q", name, o.ResolvedNamespace()))
					continue
				}
				return nil, explain(err, o.Config())
			}
			out = append(out, crt)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s (list them with `kubectl get certificates -n %s`); nothing was renewed", strings.Join(missing, "; "), o.ResolvedNamespace())
		}
		return out, nil
	}
	opts := []client.ListOption{client.InNamespace(o.ListNamespace())}
	if o.Selector != "" {
		sel, _ := labels.Parse(o.Selector) // checked by Validate
		opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
	}
	var list certmanager.CertificateList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, explain(err, o.Config())
	}
	if len(list.Items) == 0 {
		where := "in namespace " + o.ListNamespace()
		if o.AllNamespaces {
			where = "in any namespace"
		}
		if o.Selector != "" {
			return nil, fmt.Errorf("no Certificate matches %q %s", o.Selector, where)
		}
		return nil, fmt.Errorf("no Certificate %s", where)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return list.Items, nil
}

// certProgress is what the renewal printer last showed of a Certificate.
type certProgress struct {
	message string
	done    bool
	failed  bool
}

// renewDone reports whether crt has a revision past prevRevision, is Ready, and describes the new
// certificate. cert-manager's issuing controller moves the revision on; its readiness controller updates
// notAfter a moment later, and Ready stays True from the previous certificate meanwhile: until notAfter
// moves past prevNotAfter the status still describes the old certificate.
func renewDone(crt *certmanager.Certificate, prevRevision *int, prevNotAfter *time.Time) bool {
	if crt.Status.Revision == nil || !crt.Ready() {
		return false
	}
	if prevRevision != nil && *crt.Status.Revision <= *prevRevision {
		return false
	}
	na := notAfterOf(crt)
	return prevNotAfter == nil || (na != nil && !na.Equal(*prevNotAfter))
}

// previousNotAfterIfDistinct is PreviousNotAfter when a new certificate's expiry must differ from it.
func (rc *RenewedCert) previousNotAfterIfDistinct() *time.Time {
	if !rc.datesTellApart {
		return nil
	}
	return rc.PreviousNotAfter
}

// notAfterOf is the expiry of the certificate crt's status describes; nil before the first issuance.
func notAfterOf(crt *certmanager.Certificate) *time.Time {
	if crt.Status.NotAfter == nil {
		return nil
	}
	t := crt.Status.NotAfter.UTC()
	return &t
}

// wait watches the Certificates until each is issued (or failed), printing a line per change.
func (o *RenewOptions) wait(ctx context.Context, c client.WithWatch, info io.Writer, report *RenewReport) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := map[types.NamespacedName]int{}
	namespaces := map[string]bool{}
	events := make(chan watchEvent)
	for i, rc := range report.Certificates {
		idx[types.NamespacedName{Namespace: rc.Namespace, Name: rc.Name}] = i
		if !namespaces[rc.Namespace] {
			namespaces[rc.Namespace] = true
			go watchNamespace(wctx, c, rc.Namespace, func() client.ObjectList { return &certmanager.CertificateList{} }, events)
		}
	}
	seen := make([]certProgress, len(report.Certificates))
	pending := len(report.Certificates)
	width := 0
	for _, rc := range report.Certificates {
		width = max(width, len(o.certName(&certmanager.Certificate{ObjectMeta: metav1.ObjectMeta{Name: rc.Name, Namespace: rc.Namespace}})))
	}
	line := func(crt *certmanager.Certificate, state, text string) {
		fmt.Fprintf(info, "%s  %-*s  %-8s  %s\n", timestamp(o.Now()), width, o.certName(crt), state, text)
	}
	for pending > 0 {
		var ev watchEvent
		select {
		case <-wctx.Done():
			return o.waitFailed(ctx.Err(), report)
		case ev = <-events:
		}
		if ev.err != nil {
			return explain(ev.err, o.Config())
		}
		if ev.listed != nil {
			for _, rc := range report.Certificates {
				if rc.Namespace == ev.ns && !ev.listed[rc.Name] && rc.Result != RenewIssued {
					return fmt.Errorf("Certificate %s/%s was deleted while waiting for its renewal", rc.Namespace, rc.Name) //nolint:staticcheck // a kind name starts the sentence
				}
			}
			continue
		}
		crt, ok := ev.obj.(*certmanager.Certificate)
		if !ok {
			continue
		}
		i, followed := idx[certRef(crt)]
		if !followed || seen[i].done || seen[i].failed {
			continue
		}
		rc := &report.Certificates[i]
		if ev.deleted {
			return fmt.Errorf("Certificate %s/%s was deleted while waiting for its renewal", crt.Namespace, crt.Name) //nolint:staticcheck // a kind name starts the sentence
		}
		s := &seen[i]
		rc.Revision, rc.NotAfter, rc.Ready = crt.Status.Revision, notAfterOf(crt), crt.Ready()
		switch msg, failed := reissue.Failed(crt); {
		case renewDone(crt, rc.PreviousRevision, rc.previousNotAfterIfDistinct()):
			s.done, rc.Result, rc.Message = true, RenewIssued, ""
			pending--
			text := fmt.Sprintf("%s, Ready", revisionString(crt.Status.Revision))
			if crt.Status.NotAfter != nil {
				text += ", valid until " + timestamp(crt.Status.NotAfter.Time)
			}
			line(crt, "Issued", text)
		case failed:
			s.failed, rc.Result, rc.Message = true, RenewFailed, msg
			pending--
			line(crt, "Failed", msg)
		default:
			st := "Issuing"
			var msgNow string
			if cnd := crt.Condition(certmanager.ConditionIssuing); cnd != nil {
				msgNow = cnd.Message
			} else if r := crt.Condition(certmanager.ConditionReady); r != nil {
				st, msgNow = "Waiting", "Ready="+r.Status+": "+r.Message
			}
			if msgNow != s.message {
				line(crt, st, msgNow)
			}
			s.message = msgNow
		}
	}
	var failed []string
	for _, rc := range report.Certificates {
		if rc.Result == RenewFailed {
			failed = append(failed, fmt.Sprintf("Certificate %s/%s: %s", rc.Namespace, rc.Name, rc.Message))
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("issuance failed: %s (cert-manager retries with a back-off; `kubectl describe certificaterequests -n %s` says more)",
			strings.Join(failed, "; "), report.Certificates[0].Namespace)}
	}
	return nil
}

// waitFailed is the error for a wait that ctx ended (--timeout or an interrupt).
func (o *RenewOptions) waitFailed(err error, report *RenewReport) error {
	var waiting []string
	for i := range report.Certificates {
		rc := &report.Certificates[i]
		if rc.Result == RenewTriggered || rc.Result == RenewAlreadyIssuing {
			rc.Result = RenewTimedOut
			waiting = append(waiting, rc.Namespace+"/"+rc.Name)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopped waiting for %s; cert-manager goes on issuing: %w", strings.Join(waiting, ", "), err)
	}
	return &exitError{code: ExitTimedOut, err: fmt.Errorf("%w: %s passed and %s not issued yet; cert-manager goes on (watch with `kubectl get certificates -w -n %s`)",
		ErrWaitTimedOut, o.Timeout, strings.Join(waiting, ", "), report.Certificates[0].Namespace)}
}

// restart rolls the consumers of the renewed Certificates' Secrets through their policies, namespace by
// namespace, with the same planning as restart --secret, and follows the rollouts. Unlike restart
// --secret it is tied to one renewal: each rollout records the certificates each consumer uses now
// (spec.trigger.certificates), so a consumer the controller restarts onto them on its own (opted in) is
// skipped rather than restarted again, and a governed consumer that its policy's unfinished rollout
// already covers is left to that rollout, which is followed instead. One renewal, one rollout per
// workload.
func (o *RenewOptions) restart(ctx context.Context, c client.WithWatch, report *RenewReport) error {
	secrets := map[string][]string{}
	var certNames []string
	for _, rc := range report.Certificates {
		if rc.Result == RenewIssued && !contains(secrets[rc.Namespace], rc.SecretName) {
			secrets[rc.Namespace] = append(secrets[rc.Namespace], rc.SecretName)
			certNames = append(certNames, rc.Name)
		}
	}
	if len(secrets) == 0 {
		return nil
	}
	snap, err := o.Snapshot(ctx, controller.Options{})
	if err != nil {
		return err
	}
	defer snap.Close()
	message := o.Reason
	if message == "" {
		message = "renewed by certrollout renew: Certificate " + strings.Join(certNames, ", ")
	}
	namespaces := make([]string, 0, len(secrets))
	for ns := range secrets {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var plans, followed []plannedRollout
	for _, ns := range namespaces {
		refs, notes, err := secretConsumers(ctx, snap, ns, secrets[ns])
		if err != nil {
			return explain(err, o.Config())
		}
		report.NotRestartable = append(report.NotRestartable, notes...)
		if len(refs) == 0 {
			fmt.Fprintf(o.ErrOut, "No workload in namespace %s uses Secret %s: nothing to restart.\n", ns, strings.Join(secrets[ns], ", "))
			continue
		}
		hashes, err := certificateHashes(ctx, snap, ns, refs)
		if err != nil {
			return explain(err, o.Config())
		}
		p := &planner{c: c, ns: ns, message: message}
		found, rest := []plannedRollout(nil), refs
		if snap.Policies {
			if found, rest, err = p.coveredByPolicyRollouts(ctx, refs, hashes); err != nil {
				return explain(err, o.Config())
			}
		}
		followed = append(followed, found...)
		if len(rest) == 0 {
			continue
		}
		got, err := p.forWorkloads(ctx, rest, secrets[ns][0])
		if err != nil {
			return explain(err, o.Config())
		}
		withCertificates(got, hashes)
		plans = append(plans, got...)
	}
	if len(plans) == 0 && len(followed) == 0 {
		return nil
	}
	// ctx carries the deadline of --timeout: the rollouts get what the renewals left of it.
	return runRollouts(ctx, c, o.Config(), rolloutRun{
		plans: plans, followed: followed, notes: report.NotRestartable, wait: true, timeout: o.Timeout,
		output: o.OutputFlag, now: o.Now, tick: o.Tick, streams: o.IOStreams,
	}, &report.Rollouts)
}

// certificateHashes returns the certificate set each of refs uses now, as the controller computes it
// (the hash its ledger records once its pods run on it); a workload that uses none is left out.
func certificateHashes(ctx context.Context, snap *controller.Snapshot, ns string, refs []api.WorkloadReference) (map[api.WorkloadReference]string, error) {
	out := map[api.WorkloadReference]string{}
	for _, ref := range refs {
		w, found, err := snap.Workload(ctx, ref.Kind, ns, ref.Name)
		if err != nil {
			return nil, err
		}
		if found && w.Input.Set.Hash != "" {
			out[api.WorkloadReference{Kind: ref.Kind, Name: ref.Name}] = w.Input.Set.Hash
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
