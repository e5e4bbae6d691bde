package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Following one ControlPlaneRollout until it finishes: watchNamespace's list-then-watch (cluster-scoped:
// namespace ""), and the outcome as the command's exit code.

// controlPlanePrinter shows a followed ControlPlaneRollout as it changes: observe after each change,
// tick once a second.
type controlPlanePrinter interface {
	observe(ro *api.ControlPlaneRollout)
	tick(ro *api.ControlPlaneRollout)
}

// followControlPlane watches the ControlPlaneRollout name until it finishes, handing every change to p.
// It returns the rollout as last seen (nil before it was seen), and an error when it is deleted before
// it finished, the watch fails, or ctx ends (ctx.Err wrapped).
func followControlPlane(ctx context.Context, c client.WithWatch, name string, p controlPlanePrinter, tick <-chan time.Time) (*api.ControlPlaneRollout, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan watchEvent)
	go watchNamespace(wctx, c, "", func() client.ObjectList { return &api.ControlPlaneRolloutList{} }, events)
	var latest *api.ControlPlaneRollout
	deleted := func() error {
		return fmt.Errorf("ControlPlaneRollout %s was deleted before it finished (the controller restores what it quiesced; a node agent finishes the component it is restarting)", name)
	}
	for {
		select {
		case <-ctx.Done():
			return latest, ctx.Err()
		case <-tick:
			if latest != nil {
				p.tick(latest)
			}
		case ev := <-events:
			if ev.err != nil {
				return latest, ev.err
			}
			if ev.listed != nil {
				if !ev.listed[name] {
					return latest, deleted()
				}
				continue
			}
			ro, ok := ev.obj.(*api.ControlPlaneRollout)
			if !ok || ro.Name != name {
				continue
			}
			if ev.deleted {
				if latest != nil && latest.Status.Phase.Finished() {
					continue
				}
				return latest, deleted()
			}
			latest = ro
			p.observe(ro)
			if ro.Status.Phase.Finished() {
				return latest, nil
			}
		}
	}
}

// followControlPlaneFor is followControlPlane bounded by timeout (0: no limit) and paced by tick (nil:
// every second).
func followControlPlaneFor(ctx context.Context, c client.WithWatch, name string, p controlPlanePrinter, timeout time.Duration, tick <-chan time.Time) (*api.ControlPlaneRollout, error) {
	ctx, tick, stop := boundedWait(ctx, timeout, tick)
	defer stop()
	return followControlPlane(ctx, c, name, p, tick)
}

// controlPlaneWaitResult is waitResult for a ControlPlaneRollout: nil when it succeeded, exit code 1
// naming why it and its failed node failed, exit code 2 on --timeout, or err.
func controlPlaneWaitResult(ro *api.ControlPlaneRollout, err error, timeout time.Duration, cfgErr func(error) error) error {
	follow := "follow it with `certrollout status --control-plane " + ro.Name + " --watch`"
	if errors.Is(err, context.DeadlineExceeded) {
		return &exitError{code: ExitTimedOut, err: fmt.Errorf("%w: %s passed and ControlPlaneRollout %s is not finished (%s); it goes on in the cluster: %s",
			ErrWaitTimedOut, timeout, ro.Name, orElse(string(ro.Status.Phase), "not started"), follow)}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopped waiting; the rollout goes on in the cluster: %s: %w", follow, err)
	}
	if err != nil {
		return cfgErr(err)
	}
	if ro.Status.Phase != api.PhaseFailed {
		return nil
	}
	msg := []string{fmt.Sprintf("ControlPlaneRollout %s failed: %s", ro.Name, ro.Status.Message)}
	for _, n := range ro.Status.Nodes {
		// The rollout's message names the node; its components say which one and why.
		for _, c := range n.Components {
			if c.State == api.RestartFailed {
				msg = append(msg, fmt.Sprintf("%s %s: %s", n.Name, c.Name, c.Message))
			}
		}
	}
	return &exitError{code: ExitFailed, err: fmt.Errorf("%w: %s", ErrRolloutFailed, strings.Join(msg, "; "))}
}
