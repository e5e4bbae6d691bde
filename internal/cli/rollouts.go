package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Code shared by restart and renew --restart: creating the planned CertRollouts and following them to
// the end (rollouts_plan.go plans them, rollouts_follow.go watches them, rollouts_progress.go shows them).

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
	info := r.output.progressWriter(r.streams)
	for _, n := range r.notes {
		fmt.Fprintf(r.streams.ErrOut, "Warning: %s uses the Secret but is not restarted: %s\n", workloadKey(n.Kind, n.Name), n.Reason)
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
		var final []api.CertRollout
		final, waitErr = followFor(ctx, c, keys, newProgressPrinter(info, r.now), r.timeout, r.tick)
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

// createRollouts creates each planned rollout and calls created after each, so that a failure part-way
// still reports what exists. Under --dry-run=server the creates carry dryRun=All (the CRD's validation
// and admission run, nothing is stored); under --dry-run=client nothing is sent.
func createRollouts(ctx context.Context, c client.Client, plans []plannedRollout, dryRun DryRunFlag, created func(plannedRollout)) error {
	for _, p := range plans {
		if !dryRun.clientDryRun() {
			if err := dryRun.writer(c).Create(ctx, p.Rollout); err != nil {
				return fmt.Errorf("creating a CertRollout for %s: %w", describePlan(p), err)
			}
		}
		// The typed client drops apiVersion and kind on decode; the documents we print carry them.
		p.Rollout.APIVersion, p.Rollout.Kind = api.GroupVersion.String(), "CertRollout"
		p.Rollout.ManagedFields = nil
		created(p)
	}
	return nil
}
