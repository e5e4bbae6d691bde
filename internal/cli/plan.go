package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/certrollout/certrollout/internal/controller"
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
	// ProbeFlags are --probe and --probe-timeout: what the workloads' pods serve, through port-forward.
	ProbeFlags
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
quiesce list, and what blocks it.

-o html writes one self-contained page: a timeline of when the certificates each workload's pods run on
expire (and the current ones a restart loads), coloured by time left, and the plan's table.

--probe asks instead of inferring: for each listed workload with TLS ports (annotation
certrollout.io/probe: "8443,https", or container ports named https or *tls*), each of its pods is
reached through the API server's port-forward (RBAC: create pods/portforward), a TLS handshake is made
with the certificate's first DNS name as SNI, and a second table shows per pod and port the served
fingerprint (12 hex digits; all 64 in -o json/yaml) against the expected ones: current, OLD, or "not
probed: why". A few pods are probed at a time, each port within --probe-timeout; a failed probe is
reported on its row and never fails the command.`,
		Example: `  # Everything in the current namespace that uses certificates
  certrollout plan

  # And what the pods actually serve on their TLS ports, through port-forward
  certrollout plan --probe --probe-timeout 5s

  # Only what runs on old certificates, across the cluster
  certrollout plan -A --stale

  # Does the build service need a restart, and when will it happen?
  certrollout plan deployment/opschain-build-service -n opschain

  # What if the controller ran with --auto?
  certrollout plan -A --auto -o json

  # The plan as a page to open in a browser
  certrollout plan -A -o html > plan.html`,
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
	o.addReportOutputFlag(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "Only workloads with these labels (e.g. app=web,tier!=cache).")
	f.BoolVar(&o.StaleOnly, "stale", false, "Only workloads whose pods run on old certificates.")
	o.addProbeFlags(cmd)
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
	if o.Probe && o.ProbeTimeout <= 0 {
		errs = append(errs, errors.New("--probe-timeout must be positive, e.g. 3s"))
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
	if o.Probe {
		// Decide as the controller does with its probes: a pod that already serves the renewed
		// certificate is not stale ("reloaded by itself").
		if o.Controller.Options.ProbeDialer, err = decisionProber(o.Config(), o.ListNamespace()); err != nil {
			return err
		}
		o.Controller.Options.Probes, o.Controller.Options.ProbeTimeout = true, o.ProbeTimeout
	}
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
		Controller: o.Controller.Assumed, Incomplete: snap.CAGraphIncomplete(), BundlesUnread: snap.BundlesUnread, Items: []WorkloadPlan{}}
	var listed []controller.Workload
	for i := range found {
		w := &found[i]
		if o.selector != nil && !o.selector.Matches(labels.Set(w.Object.GetLabels())) {
			continue
		}
		p := planOf(w, o.Now(), graph)
		if len(o.Workloads) == 0 && p.Reason == api.ReasonNoCertificates && len(p.Unread) == 0 {
			continue // uses Secrets or ConfigMaps, none with certificates
		}
		if o.StaleOnly && len(p.StalePods) == 0 {
			continue
		}
		report.Items = append(report.Items, p)
		listed = append(listed, *w)
	}
	if o.Probe {
		if report.Probes, err = probeWorkloads(ctx, o.Config(), o.ProbeTimeout, listed); err != nil {
			return err
		}
	}
	return o.print(report)
}

// print writes the report in the format asked for, with the notes on stderr.
func (o *PlanOptions) print(report PlanReport) error {
	if !o.structured() {
		report.Controller.note(o.ErrOut)
		if report.Incomplete != "" {
			fmt.Fprintf(o.ErrOut, "Not shown: %s (CA cascades of those issuers cannot hold restarts in this plan).\n", report.Incomplete)
		}
		if report.BundlesUnread {
			fmt.Fprintln(o.ErrOut, "Not shown: ClusterTrustBundles, which you may not list: workloads that project one are planned without it, while the controller restarts them when it changes.")
		}
	}
	switch {
	case o.structured():
		return o.printDocument(o.Out, report)
	case o.page():
		return o.printHTML(report)
	case len(o.Workloads) > 0:
		if err := describePlans(o.Out, report.Items, o.Now()); err != nil {
			return err
		}
		return o.printProbes(report.Probes)
	default:
		if len(report.Items) == 0 {
			_, err := fmt.Fprintf(o.ErrOut, "No workloads using certificates found%s.\n", inNamespace(o.ListNamespace()))
			return err
		}
		if err := planTable(o.Out, report.Items, o.AllNamespaces, o.wide(), o.Now()); err != nil {
			return err
		}
		return o.printProbes(report.Probes)
	}
}

// printProbes prints, with --probe, what the pods served, below the plan.
func (o *PlanOptions) printProbes(probes []WorkloadProbe) error {
	if !o.Probe {
		return nil
	}
	if len(probes) == 0 {
		noProbes(o.ErrOut)
		return nil
	}
	if _, err := fmt.Fprintln(o.Out); err != nil {
		return err
	}
	return probeTable(o.Out, probes)
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}
