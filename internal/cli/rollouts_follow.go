package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Following objects until they finish: a list-then-watch that resumes, and the outcome of a followed wait.

// Errors of a followed rollout, for errors.Is; the messages users see say more.
var (
	// ErrRolloutFailed: a followed CertRollout ended Failed.
	ErrRolloutFailed = errors.New("rollout failed")
	// ErrWaitTimedOut: --timeout passed before everything followed finished; the work goes on.
	ErrWaitTimedOut = errors.New("timed out waiting")
)

// rolloutKey names a followed rollout.
func rolloutKey(ro *api.CertRollout) types.NamespacedName {
	return types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
}

// watchEvent is one observation from watchNamespace: an object's latest state, its deletion, the set of
// names a (re)list found, or an error that ends the watch.
type watchEvent struct {
	obj     client.Object
	deleted bool
	listed  map[string]bool
	ns      string
	err     error
}

// watchNamespace lists then watches the objects of newList's type in ns until ctx ends, sending what it
// sees to out. A watch the server closes (timeouts, expired resource versions) is resumed by listing
// again, so nothing is missed; the relist's names let the receiver notice deletions it did not see.
func watchNamespace(ctx context.Context, c client.WithWatch, ns string, newList func() client.ObjectList, out chan<- watchEvent) {
	send := func(ev watchEvent) bool {
		ev.ns = ns
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// A server that keeps closing watches at once must not turn this into a busy loop.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			if ctx.Err() == nil {
				send(watchEvent{err: err})
			}
			return
		}
		items, err := apimeta.ExtractList(list)
		if err != nil {
			send(watchEvent{err: err})
			return
		}
		names := map[string]bool{}
		for _, o := range items {
			if obj, ok := o.(client.Object); ok {
				names[obj.GetName()] = true
				if !send(watchEvent{obj: obj}) {
					return
				}
			}
		}
		if !send(watchEvent{listed: names}) {
			return
		}
		w, err := c.Watch(ctx, newList(), &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			if ctx.Err() == nil {
				send(watchEvent{err: err})
			}
			return
		}
		if !pumpWatch(ctx, w, send) {
			w.Stop()
			return
		}
		w.Stop()
	}
}

// pumpWatch forwards a watch's events until it closes or reports an error (then the caller lists again);
// false when the receiver is gone.
func pumpWatch(ctx context.Context, w watch.Interface, send func(watchEvent) bool) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true
			}
			obj, isObj := ev.Object.(client.Object)
			switch ev.Type {
			case watch.Added, watch.Modified:
				if isObj && !send(watchEvent{obj: obj}) {
					return false
				}
			case watch.Deleted:
				if isObj && !send(watchEvent{obj: obj, deleted: true}) {
					return false
				}
			case watch.Error:
				return true
			case watch.Bookmark:
			}
		}
	}
}

// followRollouts watches the rollouts keys until all have finished, handing every change to p (and
// calling p.tick every tick, for elapsed times on a terminal). It returns the rollouts as last seen,
// and an error when one is deleted before it finished, the watch fails, or ctx ends (ctx.Err wrapped).
func followRollouts(ctx context.Context, c client.WithWatch, keys []types.NamespacedName, p progressPrinter, tick <-chan time.Time) ([]api.CertRollout, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan watchEvent)
	namespaces := map[string]bool{}
	for _, k := range keys {
		if !namespaces[k.Namespace] {
			namespaces[k.Namespace] = true
			go watchNamespace(wctx, c, k.Namespace, func() client.ObjectList { return &api.CertRolloutList{} }, events)
		}
	}
	latest := map[types.NamespacedName]*api.CertRollout{}
	for _, k := range keys {
		latest[k] = &api.CertRollout{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
	}
	current := func() []api.CertRollout {
		out := make([]api.CertRollout, 0, len(keys))
		for _, k := range keys {
			out = append(out, *latest[k])
		}
		return out
	}
	finished := func() bool {
		for _, k := range keys {
			if !latest[k].Status.Phase.Finished() {
				return false
			}
		}
		return true
	}
	deleted := func(k types.NamespacedName) error {
		return fmt.Errorf("CertRollout %s was deleted in namespace %s before it finished (the controller restores what it quiesced)", k.Name, k.Namespace)
	}
	for {
		select {
		case <-ctx.Done():
			return current(), ctx.Err()
		case <-tick:
			p.tick(current())
		case ev := <-events:
			if ev.err != nil {
				return current(), ev.err
			}
			if ev.listed != nil {
				for _, k := range keys {
					if k.Namespace == ev.ns && !ev.listed[k.Name] {
						return current(), deleted(k)
					}
				}
				continue
			}
			ro, ok := ev.obj.(*api.CertRollout)
			if !ok {
				continue
			}
			k := rolloutKey(ro)
			if _, followed := latest[k]; !followed {
				continue
			}
			if ev.deleted {
				// A rollout deleted once it finished is history pruning; only an unfinished one is news.
				if latest[k].Status.Phase.Finished() {
					continue
				}
				return current(), deleted(k)
			}
			latest[k] = ro
			p.observe(current())
			if finished() {
				return current(), nil
			}
		}
	}
}

// followFor is followRollouts bounded by timeout (0: no limit) and paced by tick (nil: every second).
func followFor(ctx context.Context, c client.WithWatch, keys []types.NamespacedName, p progressPrinter, timeout time.Duration, tick <-chan time.Time) ([]api.CertRollout, error) {
	ctx, tick, stop := boundedWait(ctx, timeout, tick)
	defer stop()
	return followRollouts(ctx, c, keys, p, tick)
}

// boundedWait is ctx bounded by timeout (0: no limit) and tick, or a ticker every second when tick is
// nil; stop releases both.
func boundedWait(ctx context.Context, timeout time.Duration, tick <-chan time.Time) (context.Context, <-chan time.Time, func()) {
	cancel := func() {}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	if tick != nil {
		return ctx, tick, cancel
	}
	t := time.NewTicker(time.Second)
	return ctx, t.C, func() { t.Stop(); cancel() }
}

// waitResult turns what followRollouts returned into the command's outcome: nil when every rollout
// succeeded, exit code 1 naming each failed rollout, exit code 2 on --timeout (saying that the rollouts
// go on), or err.
func waitResult(ros []api.CertRollout, err error, timeout time.Duration, cfgErr func(error) error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		var running []string
		for _, ro := range ros {
			if !ro.Status.Phase.Finished() {
				running = append(running, fmt.Sprintf("%s (%s)", ro.Name, orElse(string(ro.Status.Phase), "not started")))
			}
		}
		return &exitError{code: ExitTimedOut, err: fmt.Errorf("%w: %s passed and %s not finished; it goes on in the cluster: follow it with `certrollout status %s`",
			ErrWaitTimedOut, timeout, strings.Join(running, ", "), statusHint(ros))}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopped waiting; the rollouts go on in the cluster: follow them with `certrollout status %s`: %w", statusHint(ros), err)
	}
	if err != nil {
		return cfgErr(err)
	}
	var failed []string
	for _, ro := range ros {
		if ro.Status.Phase == api.PhaseFailed {
			msg := fmt.Sprintf("CertRollout %s failed: %s", ro.Name, ro.Status.Message)
			// The rollout's message counts; the targets' say why.
			for _, t := range ro.Status.Targets {
				if t.State == api.TargetFailed {
					msg += fmt.Sprintf("; %s: %s", workloadKey(t.Kind, t.Name), t.Message)
				}
			}
			for _, q := range ro.Status.Quiesced {
				if q.State == api.QuiesceDrainTimedOut {
					msg += fmt.Sprintf("; %s did not drain: %s", workloadKey(q.Kind, q.Name), q.Message)
				}
			}
			failed = append(failed, msg)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: ExitFailed, err: fmt.Errorf("%w: %s", ErrRolloutFailed, strings.Join(failed, "; "))}
	}
	return nil
}

func statusHint(ros []api.CertRollout) string {
	if len(ros) == 1 {
		return ros[0].Name
	}
	if len(ros) > 0 {
		return "-n " + ros[0].Namespace
	}
	return ""
}
