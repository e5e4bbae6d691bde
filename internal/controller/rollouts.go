package controller

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/restart"
	"github.com/certrollout/certrollout/internal/rolloutstatus"
)

// rolloutReconciler drives CertRollouts through orchestrate.Next: observe the workloads, decide, make
// the writes, record the status.
type rolloutReconciler struct {
	*gatherer
	recorder events.EventRecorder
}

// observed is one workload as the reconcile saw it, with what a restart needs.
type observed struct {
	obj      client.Object
	kind     kind
	state    orchestrate.Workload
	notAfter time.Time
	// changedAt is when the data of the certificates it would restart onto was last written.
	changedAt time.Time
	// set is the certificates it would restart onto (and, restarted, should serve).
	set inventory.Set
}

func (r *rolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ro api.CertRollout
	if err := r.client.Get(ctx, req.NamespacedName, &ro); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ro.DeletionTimestamp != nil {
		return ctrl.Result{}, r.abandon(ctx, &ro)
	}
	if ro.Status.Phase.Finished() {
		// A rollout that finished before the kstatus conditions existed gets them, once: record writes
		// only a change.
		rec := rolloutstatus.New(&ro, r.opts.Clock())
		rec.SetKstatus()
		if err := r.record(ctx, &ro, rec.Outcome); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.removeFinalizer(ctx, &ro)
	}
	if ro.Spec.Cascade != nil {
		return r.reconcileCascade(ctx, &ro)
	}
	if !controllerutil.ContainsFinalizer(&ro, api.FinalizerRestore) {
		patch := client.MergeFromWithOptions(ro.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&ro, api.FinalizerRestore)
		if err := r.client.Patch(ctx, &ro, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	in, seen, err := r.observeRollout(ctx, &ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	res := orchestrate.Next(in)
	for _, a := range res.Actions {
		if a.Type == orchestrate.Restart && !r.limiter.AllowN(in.Now, 1) {
			// A direct restart took the token Next counted on: decide again rather than record a restart
			// that was not made (what was written so far is idempotent).
			blockedTotal.WithLabelValues(api.ReasonRateLimited).Inc()
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		if err := r.act(ctx, &ro, a, seen, in.Now); err != nil {
			if a.Type == orchestrate.Restart && apierrors.IsConflict(err) {
				// The target changed since it was observed, maybe restarted by someone else onto the
				// same certificates: decide again from a fresh observation rather than restart blindly.
				ctrl.LoggerFrom(ctx).V(1).Info("Target changed before its restart; observing it again", "workload", klog.KRef(ro.Namespace, a.Key.Name))
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, err
		}
	}
	if err := r.record(ctx, &ro, res.Outcome); err != nil {
		return ctrl.Result{}, err
	}
	if ro.Status.Phase.Finished() {
		return ctrl.Result{}, r.removeFinalizer(ctx, &ro)
	}
	return ctrl.Result{RequeueAfter: res.RequeueAfter}, nil
}

// record applies what a step of either state machine decided besides its writes, the one place that
// does so for both kinds of rollout: the step's Events, then the status when it changed. The Events go
// first, once the writes they describe are made: a status update that fails is decided again from the
// cluster, which no longer asks for those writes, so an Event recorded after it would be lost for good
// (an Event about the step itself may be recorded twice instead, which Event series absorb).
func (r *rolloutReconciler) record(ctx context.Context, ro *api.CertRollout, out rolloutstatus.Outcome) error {
	action := "Rollout"
	if ro.Spec.Cascade != nil {
		action = "Cascade"
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Decided the next step of CertRollout", "rollout", ro.Name, "phase", out.Status.Phase,
		"reason", readyReason(out.Status.Conditions), "events", len(out.Events), "requeueAfter", out.RequeueAfter)
	for _, e := range out.Events {
		r.recorder.Eventf(ro, nil, e.Type, e.Reason, action, "%s", fitNote(e.Message))
	}
	if !equality.Semantic.DeepEqual(out.Status, ro.Status) {
		finishing := !ro.Status.Phase.Finished() && out.Status.Phase.Finished()
		takesSlot := !holdsSlot(ro.Status.Phase) && holdsSlot(out.Status.Phase)
		verified := newVerifications(ro.Status.Targets, out.Status.Targets)
		ro.Status = out.Status
		if err := r.client.Status().Update(ctx, ro); err != nil {
			return err
		}
		for _, v := range verified {
			verificationsTotal.WithLabelValues(v).Inc()
		}
		if finishing {
			observeFinished(ro)
		}
		if takesSlot {
			r.awaitCache(ctx, ro)
		}
	}
	return nil
}

// newVerifications are the verifications (TargetStatus.Verification) in after that before did not have.
func newVerifications(before, after []api.TargetStatus) []string {
	var out []string
	for i, t := range after {
		if t.Verification != "" && (i >= len(before) || before[i].Verification == "") {
			out = append(out, t.Verification)
		}
	}
	return out
}

// holdsSlot reports whether a rollout in phase p counts against --max-concurrent-rollouts and its
// namespace's share (running counts the same phases).
func holdsSlot(p api.RolloutPhase) bool {
	return p == api.PhaseQuiescing || p == api.PhaseRestarting || p == api.PhaseRestoring
}

// awaitCache waits until the cache shows the rollout that just took a slot. The next rollout's start is
// decided by counting the running ones in the cache: a cache a moment behind this write would let it take
// the same slot, and a namespace would run more than its share. The cache shows it within milliseconds
// as a rule; the bound is generous because a loaded API server can lag by seconds (a 2 s bound let a third
// rollout of one namespace start on a loaded machine), and holding the one rollout worker that long is
// the price of a correct count.
func (r *rolloutReconciler) awaitCache(ctx context.Context, ro *api.CertRollout) {
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var seen api.CertRollout
		if err := r.client.Get(ctx, client.ObjectKeyFromObject(ro), &seen); err != nil {
			return apierrors.IsNotFound(err), nil
		}
		return seen.ResourceVersion == ro.ResourceVersion || holdsSlot(seen.Status.Phase) || seen.Status.Phase.Finished(), nil
	})
}

// observeFinished counts a rollout that just finished and times it from its start.
func observeFinished(ro *api.CertRollout) {
	typ, result := rolloutType(ro.Spec.Cascade != nil), string(ro.Status.Phase)
	rolloutsTotal.WithLabelValues(ro.Namespace, typ, result).Inc()
	if st, ct := ro.Status.StartTime, ro.Status.CompletionTime; st != nil && ct != nil {
		rolloutDuration.WithLabelValues(typ, result).Observe(ct.Sub(st.Time).Seconds())
	}
}

// observeRenewalToRestart times a rollout's restart from the write of the certificates it restarts onto,
// when a change of certificates caused it: the ledger records another set (or none). A restart onto the
// set the ledger already records (a Manual rollout of a workload already on its certificates) was caused
// by no renewal and is not timed.
func observeRenewalToRestart(o *observed, restartValue string, now time.Time) {
	if o.changedAt.IsZero() || o.state.LedgerHash == restartValue {
		return
	}
	renewalToRestart.Observe(now.Sub(o.changedAt).Seconds())
}

// readyReason is the reason of the kstatus Ready condition: why an object is, or is not yet, ready.
func readyReason(conditions []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conditions, api.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

// observeRollout builds orchestrate's input: the rollout's policy, the workloads it selects and touches,
// the other rollouts running and the restart tokens left. seen holds the workloads that exist, for the
// writes.
func (r *rolloutReconciler) observeRollout(ctx context.Context, ro *api.CertRollout) (orchestrate.Input, map[orchestrate.Key]*observed, error) {
	in := orchestrate.Input{Now: r.opts.Clock(), Rollout: ro, MaxRunning: r.opts.MaxConcurrentRollouts, MaxRunningHere: r.opts.MaxConcurrentRolloutsPerNamespace}
	if ro.Spec.Policy != "" {
		var p api.RolloutPolicy
		err := r.client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.Policy}, &p)
		switch {
		case apierrors.IsNotFound(err):
			in.PolicyMissing = true
		case err != nil:
			return in, nil, err
		default:
			if err := r.followPolicy(ctx, ro, &p, &in); err != nil {
				return in, nil, err
			}
		}
	}
	seen, err := r.observe(ctx, ro, &in)
	if err != nil {
		return in, nil, err
	}
	if in.Running, in.RunningHere, err = r.running(ctx, ro); err != nil {
		return in, nil, err
	}
	in.Throttled, in.RestartTokens = true, int(r.limiter.TokensAt(in.Now))
	return in, seen, nil
}

// followPolicy parses the rollout's policy into in, with the workloads it governs.
func (r *rolloutReconciler) followPolicy(ctx context.Context, ro *api.CertRollout, p *api.RolloutPolicy, in *orchestrate.Input) error {
	governed, err := r.governed(ctx, p)
	if err != nil {
		return err
	}
	if started(ro) {
		// Windows decide only when a rollout starts: once it has, they are not parsed again, so an
		// edit of the policy's schedule cannot reach a rollout in flight.
		p.Spec.Windows = nil
	}
	parsed, err := r.parsePolicy(ctx, p, governed)
	if err != nil {
		return err
	}
	in.Policy = &parsed
	for _, g := range governed {
		in.Selected = append(in.Selected, g.ref())
	}
	return nil
}

// started reports whether the rollout has left Pending and WaitingForWindow.
func started(ro *api.CertRollout) bool {
	switch ro.Status.Phase {
	case "", api.PhasePending, api.PhaseWaitingForWindow:
		return false
	default:
		return true
	}
}

// observe reads every workload the rollout may touch: its targets and the workloads it quiesces.
func (r *rolloutReconciler) observe(ctx context.Context, ro *api.CertRollout, in *orchestrate.Input) (map[orchestrate.Key]*observed, error) {
	keys := map[orchestrate.Key]bool{}
	for _, t := range ro.Status.Targets {
		keys[orchestrate.Key{Kind: t.Kind, Name: t.Name}] = true
	}
	for _, t := range ro.Spec.Targets {
		keys[orchestrate.Key{Kind: t.Kind, Name: t.Name}] = true
	}
	for _, t := range in.Selected {
		keys[orchestrate.Key{Kind: t.Kind, Name: t.Name}] = true
	}
	for _, q := range ro.Status.Quiesced {
		keys[orchestrate.Key{Kind: q.Kind, Name: q.Name}] = true
	}
	if in.Policy != nil {
		for _, q := range in.Policy.Spec.Quiesce {
			keys[orchestrate.Key{Kind: q.Kind, Name: q.Name}] = true
		}
	}
	// What this rollout holds at zero replicas, whether or not its status says so.
	held, err := quiescedBy(ctx, r.client, ro.Namespace, ro.Name)
	if err != nil {
		return nil, err
	}
	for _, o := range held {
		keys[orchestrate.Key{Kind: kindOf(o), Name: o.GetName()}] = true
	}
	in.Workloads = map[orchestrate.Key]orchestrate.Workload{}
	seen := map[orchestrate.Key]*observed{}
	for key := range keys {
		o, err := r.observeOne(ctx, ro.Namespace, key)
		if err != nil {
			return nil, err
		}
		if t := restartedTarget(ro, key); t != nil && o.state.Exists && o.state.Rollout.Done && (o.state.RolledBy == ro.Name || o.state.LedgerHash == t.RestartValue) {
			o.state.Verification = r.verifyTarget(ctx, o, t.StartedAt.Time)
		}
		in.Workloads[key] = o.state
		if o.state.Exists {
			seen[key] = o
		}
	}
	return seen, nil
}

func (r *rolloutReconciler) observeOne(ctx context.Context, ns string, key orchestrate.Key) (*observed, error) {
	k, ok := kindNamed(key.Kind)
	if !ok || !k.orchestrated {
		return &observed{}, nil
	}
	// Read from the API server, not the cache: a rollout decides from what it sees whether a target it
	// just restarted is healthy and whether a workload is still quiesced by it, and a cache that lags
	// (after its own write, or while its watch reconnects to a restarted API server) would pass a health
	// gate too early or skip a restore. Rollouts are few; their workloads are read a handful at a time.
	obj := k.newObj()
	if err := r.direct.Get(ctx, client.ObjectKey{Namespace: ns, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return &observed{}, nil
		}
		return nil, err
	}
	o := &observed{obj: obj, kind: k, state: orchestrate.Workload{
		Exists:           obj.GetDeletionTimestamp() == nil,
		OptedOut:         decide.OptedOut(obj.GetAnnotations()),
		QuiescedBy:       obj.GetAnnotations()[api.AnnotationQuiescedBy],
		QuiescedReplicas: restart.QuiescedReplicas(obj),
		RolledBy:         restart.RolledBy(obj),
		Labels:           obj.GetLabels(),
		Order:            obj.GetAnnotations()[api.AnnotationOrder],
	}}
	ledger := decide.ReadLedger(obj.GetAnnotations())
	o.state.LedgerHash, o.state.RunningNotAfter = ledger.Hash, ledger.NotAfter
	switch w := obj.(type) {
	case *appsv1.Deployment:
		o.state.Replicas = replicasOf(w.Spec.Replicas)
	case *appsv1.StatefulSet:
		o.state.Replicas = replicasOf(w.Spec.Replicas)
	}
	p := restart.RolloutStatus(obj)
	o.state.Rollout = orchestrate.Progress{Done: p.Done, Failed: p.Failed, Message: p.Message}
	if sel := k.selector(obj); sel != nil {
		selector, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, fmt.Errorf("selector of %s %s/%s: %w", k.name, ns, key.Name, err)
		}
		o.state.Pods = r.pods.present(ns, selector)
	}
	in, _, err := r.gather(ctx, k, obj)
	if err != nil {
		return nil, err
	}
	o.state.RestartValue, o.notAfter, o.changedAt = in.Set.Hash, in.Set.NotAfter, in.Set.ChangedAt
	o.set = in.Set
	return o, nil
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// running counts the other rollouts that are past waiting and not finished: across the cluster, and in
// self's namespace.
func (r *rolloutReconciler) running(ctx context.Context, self *api.CertRollout) (all, here int, err error) {
	var list api.CertRolloutList
	if err := r.client.List(ctx, &list); err != nil {
		return 0, 0, err
	}
	for _, ro := range list.Items {
		if ro.UID == self.UID {
			continue
		}
		if holdsSlot(ro.Status.Phase) {
			all++
			if ro.Namespace == self.Namespace {
				here++
			}
		}
	}
	return all, here, nil
}

func (r *rolloutReconciler) act(ctx context.Context, ro *api.CertRollout, a orchestrate.Action, seen map[orchestrate.Key]*observed, now time.Time) error {
	log := ctrl.LoggerFrom(ctx)
	o := seen[a.Key]
	if o == nil {
		return fmt.Errorf("%s %s %s vanished while the rollout acted on it", a.Type, a.Key.Kind, a.Key.Name)
	}
	// The workload gets an Event too, so `kubectl describe` on it shows what the rollout did to it.
	switch a.Type {
	case orchestrate.ScaleDown:
		if err := restart.Quiesce(ctx, r.client, o.obj, ro.Name, a.Replicas); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeNormal, api.ReasonScaledDown, "Quiesce",
			"Scaled from %d to 0 replicas for CertRollout %s; the count is recorded in %s", a.Replicas, ro.Name, api.AnnotationQuiescedReplicas)
		log.Info("Scaled "+a.Key.Kind+" to zero", "workload", klog.KRef(ro.Namespace, a.Key.Name), "replicas", a.Replicas, "rollout", ro.Name)
	case orchestrate.Restart:
		if err := restart.Rollout(ctx, r.client, o.obj, ro.Name, a.RestartValue, o.notAfter, now); err != nil {
			restartsTotal.WithLabelValues(a.Key.Kind, "error").Inc()
			return err
		}
		restartsTotal.WithLabelValues(a.Key.Kind, "success").Inc()
		workloads.restarted(workloadKey{ro.Namespace, a.Key.Kind, a.Key.Name}, now)
		observeRenewalToRestart(o, a.RestartValue, now)
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeNormal, api.ReasonRestarted, "Restart", "Restarted by CertRollout %s (%s)", ro.Name, ro.Spec.Trigger.Type)
		log.Info("Restarted "+a.Key.Kind, "workload", klog.KRef(ro.Namespace, a.Key.Name), "rollout", ro.Name, "hash", a.RestartValue)
	case orchestrate.Restore:
		if err := restart.Restore(ctx, r.client, o.obj, &a.Replicas); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeNormal, api.ReasonRestored, "Restore", "Restored to %d replicas by CertRollout %s", a.Replicas, ro.Name)
		log.Info("Restored "+a.Key.Kind, "workload", klog.KRef(ro.Namespace, a.Key.Name), "replicas", a.Replicas, "rollout", ro.Name)
	case orchestrate.Release:
		if err := restart.Restore(ctx, r.client, o.obj, nil); err != nil {
			return err
		}
		r.recorder.Eventf(o.obj, ro, corev1.EventTypeWarning, api.ReasonNothingRecorded, "Restore",
			"CertRollout %s found no recorded replica count; only the quiesce marks were removed: scale it by hand", ro.Name)
		log.Info("Released "+a.Key.Kind+" with no recorded count", "workload", klog.KRef(ro.Namespace, a.Key.Name), "rollout", ro.Name)
	default:
		return fmt.Errorf("unknown rollout action %q", a.Type)
	}
	return nil
}

// abandon restores what a deleted rollout quiesced, then lets it go. What it quiesced is what its status
// lists and what names it in its quiesce annotation: the status alone may have missed a scale-down.
func (r *rolloutReconciler) abandon(ctx context.Context, ro *api.CertRollout) error {
	if !controllerutil.ContainsFinalizer(ro, api.FinalizerRestore) {
		return nil
	}
	inStatus := map[orchestrate.Key]*int32{}
	for _, q := range ro.Status.Quiesced {
		inStatus[orchestrate.Key{Kind: q.Kind, Name: q.Name}] = q.OriginalReplicas
	}
	held, err := quiescedBy(ctx, r.client, ro.Namespace, ro.Name)
	if err != nil {
		return err
	}
	for _, o := range held {
		if k := (orchestrate.Key{Kind: kindOf(o), Name: o.GetName()}); inStatus[k] == nil {
			inStatus[k] = nil
		}
	}
	for key, recorded := range inStatus {
		o, err := r.observeOne(ctx, ro.Namespace, key)
		if err != nil {
			return err
		}
		if !o.state.Exists || o.state.QuiescedBy != ro.Name {
			continue
		}
		why := fmt.Sprintf("CertRollout %s was deleted mid-way", ro.Name)
		if err := restoreQuiesced(ctx, r.client, r.recorder, o.obj, recorded, corev1.EventTypeNormal, api.ReasonRestored, why); err != nil {
			return err
		}
	}
	return r.removeFinalizer(ctx, ro)
}

func (r *rolloutReconciler) removeFinalizer(ctx context.Context, ro *api.CertRollout) error {
	if !controllerutil.ContainsFinalizer(ro, api.FinalizerRestore) {
		return nil
	}
	patch := client.MergeFromWithOptions(ro.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(ro, api.FinalizerRestore)
	return client.IgnoreNotFound(r.client.Patch(ctx, ro, patch))
}
