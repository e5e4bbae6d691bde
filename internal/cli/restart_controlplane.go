package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cporchestrate"
	"github.com/certrollout/certrollout/internal/schedule"
)

// `restart --control-plane`: gather (the ControlPlanePolicy, the agents' NodeCertificates, the
// ControlPlaneRollouts), decide (decideControlPlaneRestart, pure), then create one ControlPlaneRollout
// and, with --wait, follow it (controlplane_follow.go, controlplane_progress.go).

// controlPlaneRestartHelp is the part of `restart --help` about --control-plane.
const controlPlaneRestartHelp = `--control-plane restarts a kubeadm control plane instead, through one ControlPlaneRollout (cluster-scoped,
named control-plane-<random>) over every control-plane node, or those --node names. One node at a time, in
the ControlPlanePolicy default's nodeOrder (then by name), the node agent on that node:
  1. checks health: every API server's /readyz and every etcd member (a degraded cluster: nothing is
     touched, the rollout fails and says why);
  2. on the first node only, takes an etcd snapshot (path and sha256 are shown);
  3. renews the kubeadm certificates due within renewBefore, as kubeadm certs renew does, old files
     backed up;
  4. restarts, in order, kube-apiserver, kube-scheduler, kube-controller-manager, then etcd, each only
     if it serves or uses an old certificate, and verifies each serves the new one (etcd run by systemd
     is not restarted: the command to run is shown);
  5. refreshes the kubeconfig copies the policy lists (/root/.kube/config), the previous copy kept;
  6. checks health again, then hands over to the next node.
Workloads the policy lists under quiesce are scaled to zero before the first node and restored after.
The controller (certrollout controller, cluster-wide) and the node agents started with
--control-plane-rollouts do the work; this command only creates the ControlPlaneRollout. It refuses
early, saying why, when a --node is not a control-plane node a node agent reports on, when another
ControlPlaneRollout is unfinished (the same request is followed instead), or when the CRD is not
installed. Without --now the rollout waits for the policy's windows and suspension. It needs the right to
create controlplanerollouts (and to read controlplanepolicies, controlplanerollouts and nodecertificates);
--now --reason also needs the verb "emergency" on controlplanerollouts. --wait shows the phases, the
snapshot and, per node, each step, health check, renewed file, component and kubeconfig copy; it exits 0
when the rollout succeeded, 1 when it failed or was refused, 2 when --timeout passed first (it goes on),
3 when the cluster cannot be reached.`

// controlPlaneRestartExamples are restart's examples of --control-plane.
const controlPlaneRestartExamples = `  # Renew and restart the control plane, node by node, and follow it
  certrollout restart --control-plane --wait --timeout 1h

  # Only one control-plane node, at once whatever the windows say
  certrollout restart --control-plane --node cp-2 --now --reason "INC-43: apiserver serves an expired certificate" --wait

  # The ControlPlaneRollout that would be created (nothing sent)
  certrollout restart --control-plane --dry-run -o yaml`

// controlPlaneRolloutPrefix is the generateName of the rollouts the command creates.
const controlPlaneRolloutPrefix = "control-plane-"

// addControlPlaneFlags registers --control-plane and --node.
func (o *RestartOptions) addControlPlaneFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.ControlPlane, "control-plane", false, "Restart the control plane: create a ControlPlaneRollout that renews the kubeadm certificates and restarts the static pods node by node.")
	f.StringArrayVar(&o.Nodes, "node", nil, "With --control-plane, only this control-plane node (repeat for several; default: every one).")
}

// validateControlPlane checks the flags of --control-plane: nothing else names what to restart.
func (o *RestartOptions) validateControlPlane() error {
	if !o.ControlPlane {
		if len(o.Nodes) > 0 {
			return errors.New("--node names control-plane nodes: use it with --control-plane")
		}
		return nil
	}
	switch {
	case len(o.Workloads) > 0:
		return fmt.Errorf("--control-plane restarts the static pods of the control-plane nodes, not workloads: drop %s, or run a second `certrollout restart` for them", strings.Join(o.Workloads, " "))
	case o.Policy != "":
		return errors.New("--control-plane follows the ControlPlanePolicy default, not a RolloutPolicy: drop --policy")
	case o.Secret != "":
		return errors.New("--control-plane restarts what the node agents find serving old certificates, not the consumers of a Secret: drop --secret")
	}
	for _, n := range o.Nodes {
		if strings.TrimSpace(n) == "" {
			return errors.New("--node must name a node")
		}
	}
	return nil
}

// controlPlaneWorld is what the command reads before it creates a ControlPlaneRollout.
type controlPlaneWorld struct {
	now time.Time
	// policy is the ControlPlanePolicy default; nil when there is none (the defaults apply).
	policy *api.ControlPlanePolicy
	// agents are the NodeCertificates; agentsUnread says why they could not be read (then nodes are
	// not checked here: the controller still refuses an unknown one).
	agents       []api.NodeCertificates
	agentsUnread string
	rollouts     []api.ControlPlaneRollout
}

// controlPlaneDecision is what the command does: follow an existing rollout that already does what was
// asked, or create rollout; order is the order its nodes will be done in, notes what the user should
// know before waiting (a suspended policy, a closed window).
type controlPlaneDecision struct {
	existing *api.ControlPlaneRollout
	rollout  *api.ControlPlaneRollout
	order    []string
	notes    []string
}

// controlPlaneNodes are the nodes whose agents report control-plane components (a static pod
// manifest), by name: the nodes a ControlPlaneRollout can do.
func controlPlaneNodes(agents []api.NodeCertificates) []string {
	var out []string
	for i := range agents {
		if slices.ContainsFunc(agents[i].Status.Components, func(c api.ControlPlaneComponent) bool { return c.Manifest != "" }) {
			out = append(out, agents[i].Name)
		}
	}
	slices.Sort(out)
	return out
}

// decideControlPlaneRestart decides from w whether the rollout want may be created. It refuses an
// unknown node and another unfinished rollout (unless that one is the same request: then it is
// followed), and says when the policy will keep the new rollout waiting.
func decideControlPlaneRestart(w controlPlaneWorld, want *api.ControlPlaneRollout) (controlPlaneDecision, error) {
	d := controlPlaneDecision{rollout: want}
	targets := want.Spec.Nodes
	if w.agentsUnread == "" {
		known := controlPlaneNodes(w.agents)
		if len(known) == 0 {
			return d, errors.New("no node agent reports a control-plane node (NodeCertificates with static pods): install the node agent on the control-plane nodes with --control-plane-rollouts (chart nodeAgent.enabled and nodeAgent.controlPlaneRollouts.enabled)")
		}
		for _, n := range targets {
			if !slices.Contains(known, n) {
				return d, fmt.Errorf("node %q is not a control-plane node a node agent reports on; the known ones are %s", n, strings.Join(known, ", "))
			}
		}
		if len(targets) == 0 {
			targets = known
		}
	}
	for i := range w.rollouts {
		ro := &w.rollouts[i]
		if ro.Status.Phase.Finished() || ro.DeletionTimestamp != nil {
			continue
		}
		if sameControlPlaneRequest(ro.Spec, want.Spec) {
			d.existing = ro
			return d, nil
		}
		return d, fmt.Errorf("ControlPlaneRollout %s is %s (%s): one control-plane rollout at a time; follow it with `certrollout status --control-plane %s --watch`, or delete it first",
			ro.Name, orElse(string(ro.Status.Phase), "not started"), describeControlPlaneSpec(ro.Spec), ro.Name)
	}
	settings := cporchestrate.Settings(nil)
	if w.policy != nil {
		settings = cporchestrate.Settings(&w.policy.Spec)
	}
	d.order = cporchestrate.Order(targets, settings.NodeOrder)
	if want.Spec.Emergency != nil {
		return d, nil
	}
	if settings.Suspend {
		d.notes = append(d.notes, "the ControlPlanePolicy default is suspended: the rollout waits (Pending) until it is resumed; --now --reason starts it at once")
	} else if windows, err := cporchestrate.Windows(settings.Windows); err == nil {
		if st := schedule.At(windows, w.now); !st.Open && !st.NextOpen.IsZero() {
			d.notes = append(d.notes, fmt.Sprintf("the ControlPlanePolicy's windows are closed: the rollout waits for the next one, at %s (in %s), unless a certificate is within its expiryDeadline; --now --reason starts it at once",
				timestamp(st.NextOpen), residual(st.NextOpen, w.now)))
		}
	}
	return d, nil
}

// sameControlPlaneRequest reports whether two rollouts ask for the same thing: the same nodes (in any
// order; none is every node) and both, or neither, an emergency.
func sameControlPlaneRequest(a, b api.ControlPlaneRolloutSpec) bool {
	an, bn := slices.Sorted(slices.Values(a.Nodes)), slices.Sorted(slices.Values(b.Nodes))
	return slices.Equal(an, bn) && (a.Emergency == nil) == (b.Emergency == nil)
}

// describeControlPlaneSpec says what a rollout does, in a few words.
func describeControlPlaneSpec(spec api.ControlPlaneRolloutSpec) string {
	s := "every control-plane node"
	if len(spec.Nodes) > 0 {
		s = "nodes " + strings.Join(spec.Nodes, ", ")
	}
	s += ", " + orElse(string(spec.Trigger), string(api.ControlPlaneTriggerByHand))
	if spec.Emergency != nil {
		s += ", emergency"
	}
	return s
}

// newControlPlaneRollout is the rollout the flags ask for.
func (o *RestartOptions) newControlPlaneRollout(ctx context.Context, c client.Client) *api.ControlPlaneRollout {
	ro := &api.ControlPlaneRollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: api.GroupVersion.String(), Kind: "ControlPlaneRollout"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: controlPlaneRolloutPrefix},
		Spec:       api.ControlPlaneRolloutSpec{Nodes: slices.Clone(o.Nodes), Trigger: api.ControlPlaneTriggerByHand},
	}
	if o.Emergency {
		ro.Spec.Emergency = &api.EmergencySpec{Reason: strings.TrimSpace(o.Reason), RequestedBy: o.whoAmI(ctx, c)}
	}
	return ro
}

// runControlPlane is Run for --control-plane.
func (o *RestartOptions) runControlPlane(ctx context.Context, c client.WithWatch) error {
	want := o.newControlPlaneRollout(ctx, c)
	w, err := o.readControlPlane(ctx, c)
	if err != nil {
		return err
	}
	if w.agentsUnread != "" {
		fmt.Fprintf(o.ErrOut, "Warning: %s; the nodes are not checked here (the controller still refuses an unknown one)\n", w.agentsUnread)
	}
	d, err := decideControlPlaneRestart(w, want)
	if err != nil {
		return err
	}
	info := o.progressWriter(o.IOStreams)
	ro := d.existing
	if ro != nil {
		if !o.structured() {
			fmt.Fprintf(info, "controlplanerollout.certrollout.io/%s exists for %s (%s): following it instead of creating another\n",
				ro.Name, describeControlPlaneSpec(ro.Spec), orElse(string(ro.Status.Phase), "not started"))
		}
	} else {
		ro = d.rollout
		if !o.clientDryRun() {
			if err := o.DryRunFlag.writer(c).Create(ctx, ro); err != nil {
				return explainControlPlane(fmt.Errorf("creating a ControlPlaneRollout: %w", err), o.Config())
			}
		}
		ro.APIVersion, ro.Kind, ro.ManagedFields = api.GroupVersion.String(), "ControlPlaneRollout", nil
		if !o.structured() {
			fmt.Fprintln(info, controlPlaneCreatedLine(ro, d.order, o.DryRunFlag))
		}
		for _, n := range d.notes {
			fmt.Fprintln(o.ErrOut, "Note: "+n)
		}
	}
	var waitErr error
	if o.Wait && !o.dryRun() {
		var final *api.ControlPlaneRollout
		final, waitErr = followControlPlaneFor(ctx, c, ro.Name, newControlPlanePrinter(info, o.Now), o.Timeout, o.Tick)
		if final != nil && final.Status.Phase != "" {
			final.APIVersion, final.Kind, final.ManagedFields = api.GroupVersion.String(), "ControlPlaneRollout", nil
			ro = final
		}
		waitErr = controlPlaneWaitResult(ro, waitErr, o.Timeout, func(err error) error { return explainControlPlane(err, o.Config()) })
	}
	if o.structured() {
		doc := RestartReport{APIVersion: ReportAPIVersion, Kind: "RestartReport", Rollouts: []api.CertRollout{}, ControlPlaneRollouts: []api.ControlPlaneRollout{*ro}}
		if o.dryRun() {
			doc.DryRun, doc.DryRunMode = true, o.DryRun
		}
		if err := o.printDocument(o.Out, doc); err != nil {
			return err
		}
	}
	return waitErr
}

// readControlPlane gathers what decideControlPlaneRestart decides from.
func (o *RestartOptions) readControlPlane(ctx context.Context, c client.Client) (controlPlaneWorld, error) {
	w := controlPlaneWorld{now: o.Now()}
	var ros api.ControlPlaneRolloutList
	if err := c.List(ctx, &ros); err != nil {
		return w, explainControlPlane(err, o.Config())
	}
	w.rollouts = ros.Items
	var policy api.ControlPlanePolicy
	switch err := c.Get(ctx, client.ObjectKey{Name: api.ControlPlanePolicyName}, &policy); {
	case err == nil:
		w.policy = &policy
	case isMissingObject(err, api.GroupVersion.Group):
		// No policy: the defaults apply.
	case apierrors.IsForbidden(err):
		fmt.Fprintln(o.ErrOut, "Note: the ControlPlanePolicy default could not be read (forbidden): its windows and suspension are not checked here")
	default:
		return w, explainControlPlane(err, o.Config())
	}
	var agents api.NodeCertificatesList
	switch err := c.List(ctx, &agents); {
	case err == nil:
		w.agents = agents.Items
	case apierrors.IsForbidden(err):
		w.agentsUnread = "you may not list NodeCertificates"
	default:
		return w, explainControlPlane(err, o.Config())
	}
	return w, nil
}

// explainControlPlane is explain, naming the CRD to install when the control-plane kinds are not
// served (a cluster whose CRDs are older than control-plane rollouts serves certrollout.io without
// them).
func explainControlPlane(err error, cfg *rest.Config) error {
	var noMatch *apimeta.NoKindMatchError
	var noResource *apimeta.NoResourceMatchError
	if errors.As(err, &noMatch) && noMatch.GroupKind.Group == api.GroupVersion.Group ||
		errors.As(err, &noResource) && noResource.PartialResource.Group == api.GroupVersion.Group ||
		isNotServed(err, api.GroupVersion.Group) {
		server := "the API server"
		if cfg != nil && cfg.Host != "" {
			server = cfg.Host
		}
		return &hint{err: err, kind: ErrCRDsMissing, msg: fmt.Sprintf(
			"the ControlPlaneRollout CRD is not installed on %s: install config/crd (`kubectl apply -k config/crd`) or the chart", server)}
	}
	return explain(err, cfg)
}

// controlPlaneCreatedLine is what kubectl prints for a created object, with the nodes in their order.
func controlPlaneCreatedLine(ro *api.ControlPlaneRollout, order []string, dryRun DryRunFlag) string {
	name := ro.Name
	if name == "" {
		name = ro.GenerateName + "<generated>"
	}
	what := "every control-plane node"
	if len(ro.Spec.Nodes) > 0 {
		what = "nodes " + strings.Join(ro.Spec.Nodes, ", ")
	}
	if len(order) > 0 {
		what += " (in this order: " + strings.Join(order, ", ") + ")"
	}
	s := fmt.Sprintf("controlplanerollout.certrollout.io/%s created%s: %s", name, dryRun.dryRunSuffix(), what)
	if e := ro.Spec.Emergency; e != nil {
		s += fmt.Sprintf(" (EMERGENCY: starts at once, requested by %s: %s)", orElse(e.RequestedBy, "an unnamed user"), e.Reason)
	}
	return s
}
