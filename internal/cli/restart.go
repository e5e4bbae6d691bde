package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
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
	// Emergency (--now) makes the rollouts emergencies: they start at once, whatever their policy's
	// windows and suspension say (spec.emergency, with Reason and the user's name).
	Emergency bool
	// ControlPlane (--control-plane) restarts the control plane instead of workloads: one
	// ControlPlaneRollout, over Nodes (--node) or every control-plane node.
	ControlPlane bool
	Nodes        []string

	// Now is the clock of the progress display (tests fix it).
	Now func() time.Time
	// Tick paces redraws and the no-controller notice; nil: every second.
	Tick <-chan time.Time
	// args is the command line, for the default trigger message.
	args []string

	IOStreams
}

func newRestartCommand(streams IOStreams) *cobra.Command {
	o := &RestartOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "restart (WORKLOAD... | --policy POLICY | --secret SECRET | --control-plane [--node NODE]...)",
		Short: "Restart workloads through a CertRollout, or the control plane through a ControlPlaneRollout",
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

--now --reason "..." is for an emergency, when waiting would cost more than the disruption: a certificate
expires before the next maintenance window, the service is already down on an expired one. The rollouts
start at once, even outside the policy's windows, on a suspended or invalid policy and ahead of other
namespaces' rollouts (--max-concurrent-rollouts); they still quiesce, order and health-gate as the policy
says, and still wait for their namespace's share of running rollouts. Your name and the reason are
recorded in the CertRollout (spec.emergency, the Emergency condition) and on an EmergencyStart Event. It
needs the verb "emergency" on certrollouts (ClusterRole certrollout-emergency), on top of the rights of an
ordinary restart. Without --now a governed workload waits for its policy's window.

--dry-run=client (or --dry-run alone) reads the cluster to plan and prints the CertRollouts, sending
nothing; --dry-run=server sends them with dryRun=All, so the API server validates them and its admission
(the ValidatingAdmissionPolicy of config/admission: may you patch what you restart?) judges them, and
stores nothing.

` + controlPlaneRestartHelp,
		Example: `  # Restart a Deployment and wait until it is rolled out and healthy
  certrollout restart deploy/web --wait

  # Restart everything policy build governs, quiescing its workers first, within 30 minutes
  certrollout restart --policy build --wait --timeout 30m --reason "CA bundle updated"

  # What would restarting the consumers of a Secret create? (nothing sent)
  certrollout restart --secret api-tls --dry-run -o yaml

  # Would the API server accept it from me? (validated and admitted, nothing stored)
  certrollout restart --secret api-tls --dry-run=server

  # Emergency: the certificate expires before the window; restart now, recorded with who and why
  certrollout restart deploy/portal --now --reason "INC-42: certificate expires at 14:00" --wait

` + controlPlaneRestartExamples,
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
	f.StringVar(&o.Reason, "reason", "", "Why, recorded as the rollouts' spec.trigger.message (default: the command line); required with --now.")
	f.BoolVar(&o.Emergency, "now", false, "Emergency: start at once, whatever the policy's windows and suspension say (needs --reason and the verb emergency on certrollouts).")
	addWaitFlag(cmd, &o.Wait, "Follow the rollouts until they finish; exit 1 if one fails.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --wait, stop waiting after this long and exit 2 (0: no limit); the rollouts go on.")
	o.addControlPlaneFlags(cmd)
	o.addDryRunFlag(cmd, "the CertRollouts (or the ControlPlaneRollout)")
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
	if err := o.validateControlPlane(); err != nil {
		return err
	}
	if o.ControlPlane {
		n++
	}
	if n != 1 {
		return errors.New("name what to restart: workloads (deploy/web sts/db), --policy POLICY, --secret SECRET or --control-plane, one of them")
	}
	for _, w := range o.Workloads {
		if _, err := parseRestartable(w); err != nil {
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
	if o.Emergency {
		reason := strings.TrimSpace(o.Reason)
		if reason == "" {
			return errors.New(`--now needs --reason "...": an emergency restart overrides the policy's windows and suspension, and why is recorded with your name on the rollout and its Events`)
		}
		if len(reason) > maxEmergencyReason {
			return fmt.Errorf("--reason is %d characters: an emergency's reason holds at most %d", len(reason), maxEmergencyReason)
		}
	}
	return nil
}

// maxEmergencyReason is the most spec.emergency.reason holds (the CRD's maxLength).
const maxEmergencyReason = 1024

// Run creates the rollouts and, with --wait, follows them.
func (o *RestartOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	if o.ControlPlane {
		return o.runControlPlane(ctx, c)
	}
	ns := o.ResolvedNamespace()
	p := &planner{c: c, ns: ns, message: o.Reason}
	if o.Emergency {
		p.emergency = &api.EmergencySpec{Reason: strings.TrimSpace(o.Reason), RequestedBy: o.whoAmI(ctx, c)}
	}
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
			ref, _ := parseRestartable(w) // checked by Validate
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

// whoAmI is the user's name as the API server authenticates it (a SelfSubjectReview), recorded as
// spec.emergency.requestedBy: the admission policy admits an emergency only when it names its creator.
// Empty, with a warning, when the API server does not say.
func (o *RestartOptions) whoAmI(ctx context.Context, c client.Client) string {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		fmt.Fprintf(o.ErrOut, "Warning: could not learn your user name from the API server (%v); spec.emergency.requestedBy is left empty, which the admission policy refuses\n", err)
		return ""
	}
	return review.Status.UserInfo.Username
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
