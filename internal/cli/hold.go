package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/kinds"
)

// HoldOptions holds the flags of `certrollout hold`.
type HoldOptions struct {
	KubeFlags

	Name      string
	Workloads []string
	Selector  string
	For       time.Duration
	Wait      bool
	Timeout   time.Duration

	// Now is the clock --for counts from (tests fix it); Poll paces --wait (nil: every second).
	Now  func() time.Time
	Poll time.Duration

	targets api.HoldTargets
	IOStreams
}

func newHoldCommand(streams IOStreams) *cobra.Command {
	o := &HoldOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "hold NAME (--selector SELECTOR | KIND/NAME...) [--for DURATION] [--wait]",
		Short: "Stop workloads for a maintenance and keep them stopped until released",
		Long: `Create a MaintenanceHold: the controller records the replica count of each Deployment and StatefulSet
it names (on the workload and in the hold's status), scales it to zero, verifies that no pod is left, and
keeps it at zero until the hold is released (certrollout release NAME), expires (--for) or is deleted;
then each gets back exactly the count it had. A HorizontalPodAutoscaler or a person that scales a held
workload up is undone at once (Event HoldEnforced, and the hold's message says something fights it); the
HPA itself is never edited. The hold survives controller restarts: its state is on the workloads and in
its status.

  KIND/NAME...    Deployments and StatefulSets (deploy/worker, sts/provider).
  --selector S    every Deployment and StatefulSet of the namespace whose labels match S, when the hold
                  starts (one created later is not held).

With --wait the command returns once every workload is held and has no pod left (the hold is Ready),
the runbook's "verify it stopped". It exits 1 if the hold cannot be held (its message says why), 2 when
--timeout passes first. Creating a hold needs the right to patch the workloads it holds (the admission
policy of config/admission checks it).`,
		Example: `  # The Akash runbook: stop the provider before maintenance and verify it stopped
  certrollout hold provider-maintenance -n akash-services sts/akash-provider --for 2h --wait

  # ... the maintenance ...

  # Scale it back to exactly the replicas it had, and wait until it is restored
  certrollout release provider-maintenance -n akash-services --wait

  # Hold everything labelled tier=workers until released
  certrollout hold batch-pause -n jobs --selector tier=workers`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name, o.Workloads = args[0], args[1:]
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
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Hold the Deployments and StatefulSets whose labels match this selector (key=value,...).")
	f.DurationVar(&o.For, "for", 0, "Release the hold by itself after this long (spec.expiresAt); 0: until released.")
	addWaitFlag(cmd, &o.Wait, "Wait until every workload is at zero replicas with no pod left.")
	f.DurationVar(&o.Timeout, "timeout", 0, "With --wait, stop waiting after this long and exit 2 (0: no limit); the hold goes on.")
	return cmd
}

// Validate checks the arguments and flags.
func (o *HoldOptions) Validate() error {
	if o.Name == "" {
		return errors.New("name the hold: certrollout hold NAME (--selector S | KIND/NAME...)")
	}
	if strings.Contains(o.Name, "/") {
		return fmt.Errorf("%q is a workload, not a hold name: certrollout hold NAME KIND/NAME... (for example: certrollout hold maintenance %s)", o.Name, o.Name)
	}
	if len(o.Workloads) == 0 && o.Selector == "" {
		return errors.New("name what to hold: workloads (sts/provider deploy/worker) or --selector S")
	}
	if o.Selector != "" {
		sel, err := metav1.ParseToLabelSelector(o.Selector)
		if err != nil {
			return fmt.Errorf("--selector %q: %w", o.Selector, err)
		}
		o.targets.Selector = sel
	}
	for _, w := range o.Workloads {
		k, name, err := parseKindName(w)
		if err != nil {
			return err
		}
		if !kinds.Scalable(k.Name) {
			return fmt.Errorf("cannot hold %s/%s: a hold scales Deployments and StatefulSets to zero (a DaemonSet, CronJob or Pod has no replica count)", k.Name, name)
		}
		o.targets.Workloads = append(o.targets.Workloads, api.ScalableWorkloadReference{Kind: k.Name, Name: name})
	}
	if o.For < 0 {
		return errors.New("--for must not be negative")
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Timeout > 0 && !o.Wait {
		return errors.New("--timeout only applies with --wait")
	}
	return nil
}

// Complete loads the kubeconfig and fills defaults.
func (o *HoldOptions) Complete() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	return o.KubeFlags.Complete()
}

// Run creates the hold and, with --wait, waits until it is held.
func (o *HoldOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns := o.ResolvedNamespace()
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.Name}, Spec: api.MaintenanceHoldSpec{Targets: o.targets}}
	if o.For > 0 {
		h.Spec.ExpiresAt = &metav1.Time{Time: o.Now().Add(o.For).UTC().Truncate(time.Second)}
	}
	if err := c.Create(ctx, h); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("MaintenanceHold %s/%s already exists: release it (certrollout release %s -n %s) or pick another name", ns, o.Name, o.Name, ns)
		}
		return explain(err, o.Config())
	}
	what := describeTargets(o.targets)
	until := "until released"
	if h.Spec.ExpiresAt != nil {
		until = "until released or " + h.Spec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	_, _ = fmt.Fprintf(o.Out, "MaintenanceHold %s/%s created: holding %s at zero replicas %s\n", ns, o.Name, what, until)
	if !o.Wait {
		return nil
	}
	return waitHold(ctx, c, client.ObjectKeyFromObject(h), o.Timeout, o.pollEvery(), o.Out, func(h *api.MaintenanceHold) (bool, error) {
		switch {
		case h.Status.Phase == api.HoldPhaseHeld:
			return true, nil
		case h.Status.Phase == api.HoldPhaseReleasing || h.Status.Phase == api.HoldPhaseReleased:
			return false, fmt.Errorf("MaintenanceHold %s/%s was released before it held: %s", h.Namespace, h.Name, h.Status.Message)
		case stalled(h) != "":
			return false, fmt.Errorf("MaintenanceHold %s/%s cannot hold: %s (fix it, or delete the hold)", h.Namespace, h.Name, stalled(h))
		}
		return false, nil
	})
}

func (o *HoldOptions) pollEvery() time.Duration {
	if o.Poll > 0 {
		return o.Poll
	}
	return time.Second
}

// describeTargets reads "StatefulSet/provider" or "the workloads matching tier=workers".
func describeTargets(t api.HoldTargets) string {
	var parts []string
	for _, w := range t.Workloads {
		parts = append(parts, w.Key())
	}
	if t.Selector != nil {
		parts = append(parts, "the Deployments and StatefulSets matching "+metav1.FormatLabelSelector(t.Selector))
	}
	return strings.Join(parts, ", ")
}

// stalled is the message of a hold's Stalled condition, when it is True.
func stalled(h *api.MaintenanceHold) string {
	for _, c := range h.Status.Conditions {
		if c.Type == api.ConditionStalled && c.Status == metav1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// waitHold polls the hold until done says so, printing each new status message. It returns an
// exitError with ExitTimedOut when timeout (if any) passes first.
func waitHold(ctx context.Context, c client.Client, key client.ObjectKey, timeout, every time.Duration, out io.Writer, done func(*api.MaintenanceHold) (bool, error)) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := ""
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var h api.MaintenanceHold
		if err := c.Get(ctx, key, &h); err != nil {
			if ctx.Err() != nil {
				break
			}
			return explain(err, nil)
		}
		if h.Status.Message != "" && h.Status.Message != last {
			last = h.Status.Message
			_, _ = fmt.Fprintln(out, last)
		}
		ok, err := done(&h)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	return &exitError{code: ExitTimedOut, err: fmt.Errorf("MaintenanceHold %s/%s: --timeout %s passed; the hold goes on in the cluster (certrollout status shows it)", key.Namespace, key.Name, timeout)}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ReleaseOptions holds the flags of `certrollout release`.
type ReleaseOptions struct {
	KubeFlags

	Name    string
	Wait    bool
	Timeout time.Duration
	Poll    time.Duration

	IOStreams
}

func newReleaseCommand(streams IOStreams) *cobra.Command {
	o := &ReleaseOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "release NAME [--wait]",
		Short: "Release a MaintenanceHold: scale its workloads back to the replicas they had",
		Long: `Release a MaintenanceHold (spec.release: true): the controller scales every workload it holds back to the
replica count recorded when the hold scaled it down, exactly, whatever scaled it in between. The hold stays,
with phase Released, as the record of the maintenance; delete it when you no longer need it (deleting an
unreleased hold releases it too).

With --wait the command returns once every workload is restored. It exits 2 when --timeout passes first.`,
		Example: `  # After the maintenance: bring the Akash provider back and wait for it
  certrollout release provider-maintenance -n akash-services --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
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
	addWaitFlag(cmd, &o.Wait, "Wait until every held workload is restored.")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 0, "With --wait, stop waiting after this long and exit 2 (0: no limit); the release goes on.")
	return cmd
}

// Validate checks the flags.
func (o *ReleaseOptions) Validate() error {
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Timeout > 0 && !o.Wait {
		return errors.New("--timeout only applies with --wait")
	}
	return nil
}

// Complete loads the kubeconfig and fills defaults.
func (o *ReleaseOptions) Complete() error {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	return o.KubeFlags.Complete()
}

// Run sets spec.release and, with --wait, waits until the hold is released.
func (o *ReleaseOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns := o.ResolvedNamespace()
	h := &api.MaintenanceHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.Name}}
	if err := c.Patch(ctx, h, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"release":true}}`))); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no MaintenanceHold %q in namespace %s (certrollout status -n %s lists them)", o.Name, ns, ns)
		}
		return explain(err, o.Config())
	}
	_, _ = fmt.Fprintf(o.Out, "MaintenanceHold %s/%s released: its workloads get their recorded replicas back\n", ns, o.Name)
	if !o.Wait {
		return nil
	}
	return waitHold(ctx, c, client.ObjectKeyFromObject(h), o.Timeout, o.Poll, o.Out, func(h *api.MaintenanceHold) (bool, error) {
		return h.Status.Phase == api.HoldPhaseReleased, nil
	})
}
