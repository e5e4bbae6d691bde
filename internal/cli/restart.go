package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/controller"
)

// RestartOptions holds the flags of `certrollout restart`.
type RestartOptions struct {
	KubeFlags
	OutputFlag
	DryRunFlag

	Workloads []string
	Policy    string
	Secret    string
	Reason    string
	Wait      bool
	Timeout   time.Duration

	// Now is the clock of the progress display (tests fix it).
	Now func() time.Time
	// Tick paces redraws and the no-controller notice; nil: every second.
	Tick <-chan time.Time
	// args is the command line, for the default trigger message.
	args []string

	IOStreams
}

// RestartReport is what `restart -o json|yaml` prints: the CertRollouts created (or, under --dry-run,
// those that would be), as they finished with --wait, and the consumers of --secret that cannot be
// restarted. Rollouts are the API's own CertRollout objects.
type RestartReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	DryRun     bool   `json:"dryRun,omitempty"`
	// DryRunMode is client or server under --dry-run.
	DryRunMode     string            `json:"dryRunMode,omitempty"`
	Rollouts       []api.CertRollout `json:"rollouts"`
	NotRestartable []WorkloadNote    `json:"notRestartable,omitempty"`
}

func newRestartCommand(streams IOStreams) *cobra.Command {
	o := &RestartOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "restart (WORKLOAD... | --policy POLICY | --secret SECRET)",
		Short: "Restart workloads through a CertRollout, following their RolloutPolicy",
		Long: `Restart workloads by creating CertRollouts, and optionally follow them to the end.

Workloads a RolloutPolicy governs are restarted through a CertRollout that follows it, so its quiesce
list, maintenance windows, order and health timeout apply: one rollout per policy. Workloads no policy
governs go into one rollout without a policy (restarted in order, each healthy before the next).

  WORKLOAD...     Deployments, StatefulSets and DaemonSets as KIND/NAME (deployment/web, deploy/web,
                  sts/db, ds/agent).
  --policy P      everything RolloutPolicy P governs, as P orders it.
  --secret S      every workload that uses Secret S (as the controller finds them: volumes, projected
                  volumes, env, envFrom, certrollout.io/secrets); CronJobs and bare Pods are named but
                  cannot be restarted.

The controller (certrollout controller) does the work; this command only creates the CertRollouts. With
--wait it follows them: on a terminal a progress block redrawn in place, otherwise one timestamped line
per change. It exits 0 when all succeeded, 1 when one failed, 2 when --timeout passed first (the rollouts
go on in the cluster), 3 when the cluster cannot be reached.

--dry-run=client (or --dry-run alone) reads the cluster to plan and prints the CertRollouts, sending
nothing; --dry-run=server sends them with dryRun=All, so the API server validates them and its admission
(the ValidatingAdmissionPolicy of config/admission: may you patch what you restart?) judges them, and
stores nothing.`,
		Example: `  # Restart a Deployment and wait until it is rolled out and healthy
  certrollout restart deploy/web --wait

  # Restart everything policy build governs, quiescing its workers first, within 30 minutes
  certrollout restart --policy build --wait --timeout 30m --reason "CA bundle updated"

  # What would restarting the consumers of a Secret create? (nothing sent)
  certrollout restart --secret api-tls --dry-run -o yaml

  # Would the API server accept it from me? (validated and admitted, nothing stored)
  certrollout restart --secret api-tls --dry-run=server`,
		ValidArgsFunction: completeWorkloads(&o.KubeFlags),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Workloads = args
			o.args = restartCommandLine(cmd, args)
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.addKubeFlags(cmd, false)
	o.addOutputFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Policy, "policy", "", "Restart everything this RolloutPolicy governs, in its order.")
	f.StringVar(&o.Secret, "secret", "", "Restart the workloads that use this Secret.")
	f.StringVar(&o.Reason, "reason", "", "Why, recorded as the rollouts' spec.trigger.message (default: the command line).")
	addWaitFlag(cmd, &o.Wait, "Follow the rollouts until they finish; exit 1 if one fails.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --wait, stop waiting after this long and exit 2 (0: no limit); the rollouts go on.")
	o.addDryRunFlag(cmd, "the CertRollouts")
	return cmd
}

// restartCommandLine is how the user ran the command, for the default trigger message.
func restartCommandLine(cmd *cobra.Command, args []string) []string {
	line := []string{cmd.CommandPath()}
	line = append(line, args...)
	for _, name := range []string{"policy", "secret"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			line = append(line, "--"+name, f.Value.String())
		}
	}
	return line
}

// Complete loads the kubeconfig and fills defaults.
func (o *RestartOptions) Complete() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Reason == "" {
		o.Reason = "restarted by hand: " + strings.Join(o.args, " ")
	}
	return o.KubeFlags.Complete()
}

// Validate checks the flags.
func (o *RestartOptions) Validate() error {
	if err := o.validateOutput(); err != nil {
		return err
	}
	if err := o.validateDryRun(); err != nil {
		return err
	}
	if o.Output == OutputWide {
		return errors.New("--output wide is for tables: restart prints lines, json or yaml")
	}
	n := 0
	for _, set := range []bool{len(o.Workloads) > 0, o.Policy != "", o.Secret != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("name what to restart: workloads (deploy/web sts/db), --policy POLICY or --secret SECRET, one of them")
	}
	for _, w := range o.Workloads {
		if _, err := parseWorkload(w); err != nil {
			return err
		}
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Timeout > 0 && !o.Wait {
		return errors.New("--timeout only applies with --wait")
	}
	if o.dryRun() && o.Wait {
		return errors.New("--dry-run creates nothing to wait for: use one or the other")
	}
	return nil
}

// Run creates the rollouts and, with --wait, follows them.
func (o *RestartOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns := o.ResolvedNamespace()
	p := &planner{c: c, ns: ns, message: o.Reason}
	var plans []plannedRollout
	var notes []WorkloadNote
	switch {
	case o.Policy != "":
		plan, err := p.forPolicy(ctx, o.Policy)
		if err != nil {
			return explain(err, o.Config())
		}
		plans = []plannedRollout{plan}
	case o.Secret != "":
		plans, notes, err = o.planSecret(ctx, p)
		if err != nil {
			return err
		}
	default:
		refs := make([]api.WorkloadReference, 0, len(o.Workloads))
		for _, w := range o.Workloads {
			ref, _ := parseWorkload(w) // checked by Validate
			refs = append(refs, ref)
		}
		if plans, err = p.forWorkloads(ctx, refs, "restart"); err != nil {
			return explain(err, o.Config())
		}
	}
	return runRollouts(ctx, c, o.Config(), rolloutRun{
		plans: plans, notes: notes, dryRun: o.DryRunFlag, wait: o.Wait, timeout: o.Timeout,
		output: o.OutputFlag, now: o.Now, tick: o.Tick, streams: o.IOStreams,
	}, nil)
}

// planSecret plans the rollouts of the consumers of --secret.
func (o *RestartOptions) planSecret(ctx context.Context, p *planner) ([]plannedRollout, []WorkloadNote, error) {
	snap, err := o.Snapshot(ctx, controller.Options{})
	if err != nil {
		return nil, nil, err
	}
	defer snap.Close()
	refs, notes, err := secretConsumers(ctx, snap, p.ns, []string{o.Secret})
	if err != nil {
		return nil, nil, explain(err, o.Config())
	}
	if len(refs) == 0 {
		if len(notes) > 0 {
			return nil, notes, fmt.Errorf("no workload that uses Secret %q in namespace %q can be restarted: %s", o.Secret, p.ns, notesString(notes))
		}
		return nil, nil, fmt.Errorf("no workload uses Secret %q in namespace %q", o.Secret, p.ns)
	}
	plans, err := p.forWorkloads(ctx, refs, o.Secret)
	if err != nil {
		return nil, nil, explain(err, o.Config())
	}
	return plans, notes, nil
}

func notesString(notes []WorkloadNote) string {
	s := make([]string, len(notes))
	for i, n := range notes {
		s[i] = n.Kind + "/" + n.Name + " (" + n.Reason + ")"
	}
	return strings.Join(s, "; ")
}

// rolloutRun is one create-and-maybe-follow of planned rollouts, shared by restart and renew --restart.
type rolloutRun struct {
	plans []plannedRollout
	// followed are existing rollouts to follow along with the created ones (renew --restart: the policy's
	// rollout for the same renewal), first.
	followed []plannedRollout
	notes    []WorkloadNote
	dryRun   DryRunFlag
	wait     bool
	timeout  time.Duration
	output   OutputFlag
	now      func() time.Time
	tick     <-chan time.Time
	streams  IOStreams
}

// runRollouts creates the planned rollouts, prints what it created, follows them with --wait and prints
// the RestartReport under -o json|yaml (report, when not nil, receives the rollouts instead, for a
// caller printing a report of its own). Progress goes to stdout, or to stderr when stdout carries a
// document.
func runRollouts(ctx context.Context, c client.WithWatch, cfg *rest.Config, r rolloutRun, report *[]api.CertRollout) error {
	info := r.streams.Out
	if r.output.structured() {
		info = r.streams.ErrOut
	}
	for _, n := range r.notes {
		fmt.Fprintf(r.streams.ErrOut, "Warning: %s/%s uses the Secret but is not restarted: %s\n", n.Kind, n.Name, n.Reason)
	}
	for _, p := range r.followed {
		if !r.output.structured() {
			fmt.Fprintln(info, followedLine(p))
		}
	}
	err := createRollouts(ctx, c, r.plans, r.dryRun, func(p plannedRollout) {
		if !r.output.structured() {
			fmt.Fprintln(info, createdLine(p, r.dryRun))
		}
	})
	if err != nil {
		return explain(err, cfg)
	}
	all := append(slices.Clip(r.followed), r.plans...)
	ros := make([]api.CertRollout, len(all))
	keys := make([]types.NamespacedName, len(all))
	for i, p := range all {
		ros[i], keys[i] = *p.Rollout, rolloutKey(p.Rollout)
	}
	var waitErr error
	if r.wait && !r.dryRun.dryRun() {
		wctx := ctx
		if r.timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, r.timeout)
			defer cancel()
		}
		tick := r.tick
		if tick == nil {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			tick = t.C
		}
		var final []api.CertRollout
		final, waitErr = followRollouts(wctx, c, keys, newProgressPrinter(info, r.now), tick)
		for i := range final {
			if final[i].Status.Phase != "" {
				final[i].APIVersion, final[i].Kind, final[i].ManagedFields = api.GroupVersion.String(), "CertRollout", nil
				ros[i] = final[i]
			}
		}
		waitErr = waitResult(final, waitErr, r.timeout, func(err error) error { return explain(err, cfg) })
	}
	if report != nil {
		*report = ros
		return waitErr
	}
	if r.output.structured() {
		doc := RestartReport{APIVersion: ReportAPIVersion, Kind: "RestartReport", Rollouts: ros, NotRestartable: r.notes}
		if r.dryRun.dryRun() {
			doc.DryRun, doc.DryRunMode = true, r.dryRun.DryRun
		}
		if err := r.output.printDocument(r.streams.Out, doc); err != nil {
			return err
		}
	}
	return waitErr
}
