package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	info := o.progressWriter(o.IOStreams)
	report := RenewReport{APIVersion: ReportAPIVersion, Kind: "RenewReport"}
	if o.dryRun() {
		report.DryRun, report.DryRunMode = true, o.DryRun
	}
	for i := range certs {
		crt := &certs[i]
		rc := RenewedCert{Namespace: crt.Namespace, Name: crt.Name, SecretName: crt.Spec.SecretName, PreviousRevision: crt.Status.Revision, PreviousNotAfter: notAfterOf(crt), Ready: crt.Ready(),
			datesTellApart: crt.Status.NotBefore == nil || o.Now().Sub(crt.Status.NotBefore.Time) > 2*time.Second}
		if issuing := crt.Condition(certmanager.ConditionIssuing); issuing != nil && issuing.Status == string(metav1.ConditionTrue) {
			rc.Result, rc.Message = RenewAlreadyIssuing, "already being issued: "+orElse(issuing.Message, issuing.Reason)
			fmt.Fprintf(info, "%s already issuing (%s): not triggered again\n", o.certName(crt.Namespace, crt.Name), revisionString(crt.Status.Revision))
		} else {
			if !o.clientDryRun() {
				if err := reissue.Trigger(ctx, o.writer(c), crt, reasonManuallyTriggered, issuingMessage, o.Now()); err != nil {
					return o.explainCert(err, crt)
				}
			}
			rc.Result = RenewTriggered
			fmt.Fprintf(info, "%s renewal triggered%s (%s)\n", o.certName(crt.Namespace, crt.Name), o.dryRunSuffix(), revisionString(crt.Status.Revision))
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

// explainCert turns a Certificate's errors into actionable ones.
func (o *RenewOptions) explainCert(err error, crt *certmanager.Certificate) error {
	if isMissingObject(err, certmanager.GroupVersion.Group) {
		return errors.New(notFound("Certificate", crt.Name, crt.Namespace, "kubectl get certificates -n "+crt.Namespace))
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
				if isMissingObject(err, certmanager.GroupVersion.Group) {
					missing = append(missing, notFound("Certificate", name, o.ResolvedNamespace(), ""))
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
		if rc.Result == RenewIssued && !slices.Contains(secrets[rc.Namespace], rc.SecretName) {
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
