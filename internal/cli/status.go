package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// StatusOptions holds the flags of `certrollout status`.
type StatusOptions struct {
	KubeFlags
	OutputFlag

	Names    []string
	Selector string
	Watch    bool
	Timeout  time.Duration
	// ControlPlane (--control-plane) describes a ControlPlaneRollout: the one Names names, or the newest.
	ControlPlane bool

	// Now is the clock ages and durations are computed against (tests fix it).
	Now func() time.Time
	// Tick paces the redraws of --watch; nil: every second.
	Tick <-chan time.Time

	IOStreams
}

func newStatusCommand(streams IOStreams) *cobra.Command {
	o := &StatusOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status [NAME... | --control-plane [NAME]]",
		Short: "Show CertRollouts and ControlPlaneRollouts: phase, steps and timings",
		Long: `Show CertRollouts, the records of orchestrated restarts.

Without a name, a table of the rollouts in the namespace (-A: all namespaces; -l: by label, for example
certrollout.io/policy=build), oldest first. With names, each rollout's steps: the workloads it quiesced
(original replicas, when scaled down, drained and restored), its targets (state, start, finish, duration,
message), its conditions and trigger. -w/--watch follows named rollouts until they finish, like
restart --wait.

ControlPlaneRollouts (cluster-scoped: one pass over the control-plane nodes, see restart --control-plane)
are listed in a table of their own under the CertRollouts, when you may list them. --control-plane [NAME]
describes one (NAME, or the newest): per node its phase, step, times and health checks, per component
its state (Stopping, Starting, Verified, Skipped, Failed) and reason (ServesOld, Current, NoManifest,
SystemdEtcd: the message says the command to run), the renewed files with their backups, the
kubeconfig copies and the etcd snapshot. With --watch it follows it until it finishes (exit 0
succeeded, 1 failed, 2 --timeout passed).`,
		Example: `  # The rollouts of the current namespace
  certrollout status

  # One rollout, step by step
  certrollout status build-x7k2p

  # Follow one until it finishes, at most 30 minutes (exit 0 done, 1 failed, 2 timed out)
  certrollout status build-x7k2p -w --timeout 30m

  # The rollouts of policy build everywhere, as JSON
  certrollout status -A -l certrollout.io/policy=build -o json

  # The newest ControlPlaneRollout, node by node and component by component
  certrollout status --control-plane

  # Follow one until it finishes
  certrollout status --control-plane control-plane-x7k2p --watch`,
		ValidArgsFunction: completeRollouts(&o.KubeFlags),
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
	f.StringVarP(&o.Selector, "selector", "l", "", "Only rollouts with these labels (for example certrollout.io/policy=build).")
	f.BoolVarP(&o.Watch, "watch", "w", false, "Follow the named rollouts until they finish; exit 1 if one fails.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --watch, stop after this long and exit 2 (0: no limit).")
	f.BoolVar(&o.ControlPlane, "control-plane", false, "Describe a ControlPlaneRollout node by node and component by component: the one named, or the newest.")
	return cmd
}

// completeRollouts completes CertRollout names of the namespace.
func completeRollouts(k *KubeFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return completeNames(k, func() client.ObjectList { return &api.CertRolloutList{} })
}

// Complete loads the kubeconfig.
func (o *StatusOptions) Complete() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o.KubeFlags.Complete()
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if err := o.validateOutput(); err != nil {
		return err
	}
	if err := o.validateControlPlane(); err != nil {
		return err
	}
	if o.Selector != "" {
		if _, err := labels.Parse(o.Selector); err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
		if len(o.Names) > 0 {
			return errors.New("name rollouts or select them with --selector, not both")
		}
	}
	if len(o.Names) > 0 && o.AllNamespaces && !o.ControlPlane {
		return errors.New("a rollout name needs its namespace: use -n NAMESPACE instead of -A")
	}
	if o.Watch && len(o.Names) == 0 && !o.ControlPlane {
		return errors.New("--watch follows named rollouts: certrollout status NAME --watch")
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Timeout > 0 && !o.Watch {
		return errors.New("--timeout only applies with --watch")
	}
	return nil
}

// Run prints the rollouts.
func (o *StatusOptions) Run(ctx context.Context) error {
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
	if len(o.Names) == 0 {
		return o.list(ctx, c)
	}
	ros := make([]api.CertRollout, 0, len(o.Names))
	for _, name := range o.Names {
		var ro api.CertRollout
		if err := c.Get(ctx, client.ObjectKey{Namespace: o.ResolvedNamespace(), Name: name}, &ro); err != nil {
			if isMissingObject(err, api.GroupVersion.Group) {
				return errors.New(notFound("CertRollout", name, o.ResolvedNamespace(), "certrollout status -n "+o.ResolvedNamespace()))
			}
			return explain(err, o.Config())
		}
		ros = append(ros, ro)
	}
	var waitErr error
	if o.Watch {
		ros, waitErr = o.follow(ctx, c, ros)
		if waitErr != nil && len(ros) == 0 {
			return waitErr
		}
	}
	if err := o.printDetails(o.Out, ros); err != nil {
		return err
	}
	return waitErr
}

func (o *StatusOptions) follow(ctx context.Context, c client.WithWatch, ros []api.CertRollout) ([]api.CertRollout, error) {
	keys := make([]types.NamespacedName, len(ros))
	for i := range ros {
		keys[i] = rolloutKey(&ros[i])
	}
	info := o.progressWriter(o.IOStreams)
	p := newProgressPrinter(info, o.Now)
	p.observe(ros)
	final, err := followFor(ctx, c, keys, p, o.Timeout, o.Tick)
	for i := range final {
		if final[i].Status.Phase == "" && ros[i].Status.Phase != "" {
			final[i] = ros[i]
		}
	}
	if !o.structured() {
		fmt.Fprintln(info)
	}
	return final, waitResult(final, err, o.Timeout, func(err error) error { return explain(err, o.Config()) })
}

func (o *StatusOptions) list(ctx context.Context, c client.Client) error {
	var selected []client.ListOption
	if o.Selector != "" {
		sel, _ := labels.Parse(o.Selector) // checked by Validate
		selected = append(selected, client.MatchingLabelsSelector{Selector: sel})
	}
	opts := append([]client.ListOption{client.InNamespace(o.ListNamespace())}, selected...)
	var list api.CertRolloutList
	if err := c.List(ctx, &list, opts...); err != nil {
		return explain(err, o.Config())
	}
	sortRollouts(list.Items)
	holds, err := o.holds(ctx, c, opts)
	if err != nil {
		return err
	}
	cps, err := listControlPlaneRollouts(ctx, c, selected...) // cluster-scoped: no namespace
	if err != nil {
		return explain(err, o.Config())
	}
	if o.structured() {
		doc := RolloutStatusList{APIVersion: ReportAPIVersion, Kind: "RolloutStatusList", Items: []RolloutStatus{}}
		for i := range list.Items {
			doc.Items = append(doc.Items, rolloutStatus(&list.Items[i], o.Now(), false))
		}
		for i := range holds {
			doc.Holds = append(doc.Holds, holdStatus(&holds[i], o.Now()))
		}
		for i := range cps {
			doc.ControlPlaneRollouts = append(doc.ControlPlaneRollouts, controlPlaneRolloutStatus(&cps[i], o.Now(), false))
		}
		return o.printDocument(o.Out, doc)
	}
	if len(list.Items) == 0 {
		if o.AllNamespaces {
			fmt.Fprintln(o.ErrOut, "No CertRollouts found.")
		} else {
			fmt.Fprintf(o.ErrOut, "No CertRollouts found in namespace %s.\n", o.ListNamespace())
		}
	} else if err := printRolloutTable(o.Out, list.Items, o.Now(), o.AllNamespaces, o.wide()); err != nil {
		return err
	}
	if len(holds) > 0 {
		if len(list.Items) > 0 {
			fmt.Fprintln(o.Out)
		}
		if err := newHoldTableView(holds, o.Now(), o.AllNamespaces, o.wide()).render(o.Out); err != nil {
			return err
		}
	}
	if len(cps) == 0 {
		return nil
	}
	if len(list.Items) > 0 || len(holds) > 0 {
		fmt.Fprintln(o.Out)
	}
	return printControlPlaneTable(o.Out, cps, o.Now(), o.wide())
}

// holds lists the MaintenanceHolds the listing shows, newest last; none when the cluster does not serve
// them (CRDs older than holds).
func (o *StatusOptions) holds(ctx context.Context, c client.Client, opts []client.ListOption) ([]api.MaintenanceHold, error) {
	var list api.MaintenanceHoldList
	if err := c.List(ctx, &list, opts...); err != nil {
		if isMissingObject(err, api.GroupVersion.Group) || isNotServed(err, api.GroupVersion.Group) || apimeta.IsNoMatchError(err) {
			return nil, nil
		}
		if apierrors.IsForbidden(err) {
			// Roles older than holds, or made by hand: the rollouts are still worth showing.
			fmt.Fprintln(o.ErrOut, "Note: MaintenanceHolds are not listed: you may not list them here.")
			return nil, nil
		}
		return nil, explain(err, o.Config())
	}
	sortHolds(list.Items)
	return list.Items, nil
}
