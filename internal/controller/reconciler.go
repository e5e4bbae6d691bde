package controller

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"golang.org/x/time/rate"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/consumers"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/restart"
)

// workloadReconciler reconciles one workload kind: gather, decide, act. It keeps no state between calls
// beyond metrics: everything it needs is on the cluster (the ledger annotations).
type workloadReconciler struct {
	*gatherer
	kind     kind
	recorder events.EventRecorder
}

// gatherer reads the caches and builds policy inputs. The workload, RolloutPolicy and CertRollout
// controllers and the CLI's Snapshot share one, built by newGatherer, so they decide alike.
type gatherer struct {
	client client.Client
	// direct reads what lies outside the watched namespaces (a ClusterIssuer's CA Secret).
	direct client.Reader
	pods   *podCache
	linker *certificateLinker
	opts   Options
	capabilities
	// limiter is the global restart rate: direct restarts and rollouts' restarts take from it alike.
	limiter *rate.Limiter
	// prober reads what pods serve; nil when probes are off.
	prober *prober
	// acting is set on the controller's own gatherer, not a CLI snapshot's: what the controller cannot
	// do (probe, with --probe=false) makes a policy that requires it invalid.
	acting bool
	// served are the workloads' latest decisions made with probes, for their policies (decideGoverned).
	served *servedDecisions
}

func (r *workloadReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, err := r.get(ctx, req.NamespacedName)
	if apierrors.IsNotFound(err) {
		r.forget(req.Namespace, req.Name)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if obj.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil
	}
	in, issuers, err := r.gather(ctx, r.kind, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	d, problems := r.decideServing(ctx, r.kind, obj, &in)
	if d.Action == decide.ActionRestart {
		_, d.Verify = r.verifiable(obj, in.Set)
	}
	for _, p := range problems {
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, p.reason, "Probe", "%s", fitNote(p.message))
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Decided", "workload", klog.KObj(obj), "kind", r.kind.name, "action", d.Action,
		"reason", d.Reason, "stalePods", len(d.StalePods), "hash", d.Set.Hash, "message", d.Message, "requeueAfter", d.RequeueAfter)
	r.report(obj, in, d)
	res, err := r.act(ctx, obj, d, in, issuers)
	if err != nil {
		return res, err
	}
	if after := r.verifyRestart(ctx, obj, in, d); after > 0 && (res.RequeueAfter == 0 || after < res.RequeueAfter) {
		res.RequeueAfter = after
	}
	return res, nil
}

// get reads the workload from the cache; a pod only if it is bare (the workload of other pods is their
// controller).
func (r *workloadReconciler) get(ctx context.Context, key types.NamespacedName) (client.Object, error) {
	if r.kind.name == api.KindPod {
		p := r.pods.get(key.Namespace, key.Name)
		if p == nil || !p.Bare {
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), key.Name)
		}
		return p.pod(), nil
	}
	obj := r.kind.newObj()
	return obj, r.client.Get(ctx, key, obj)
}

// gather builds the policy input from the cache, and describes the cert-manager Certificates that issue
// the Secrets the workload uses.
func (r *gatherer) gather(ctx context.Context, k kind, obj client.Object) (decide.Input, []string, error) {
	uses := consumers.FromPodSpec(k.podSpec(obj), obj.GetAnnotations())
	sources := map[consumers.Ref]*inventory.Source{}
	var issuers []string
	for _, ref := range consumers.Refs(uses) {
		src, found, err := r.source(ctx, obj.GetNamespace(), ref)
		if err != nil {
			return decide.Input{}, nil, err
		}
		if !found {
			continue
		}
		sources[ref] = src
		if err := r.linker.link(ctx, src); err != nil {
			return decide.Input{}, nil, err
		}
		if src.Issuance != nil {
			issuers = append(issuers, "Secret "+src.Name+" from cert-manager "+src.Issuance.String())
		}
	}
	pods, err := r.podsOf(k, obj)
	if err != nil {
		return decide.Input{}, nil, err
	}
	w := decide.Workload{Kind: k.name, Namespace: obj.GetNamespace(), Name: obj.GetName(), Annotations: obj.GetAnnotations()}
	k.describe(obj, &w)
	in := decide.Input{
		Now:                r.opts.Clock(),
		Workload:           w,
		Set:                inventory.SetOf(uses, sources),
		Pods:               pods,
		Auto:               r.opts.Auto,
		MinRestartInterval: r.opts.MinRestartInterval,
		SettlePeriod:       r.opts.SettlePeriod,
		RestartBudget:      r.opts.MaxRestartsPerDay,
	}
	for _, ref := range consumers.Refs(uses) {
		in.NeverRefreshed = in.NeverRefreshed || consumers.NeverRefreshed(uses, ref)
	}
	hold, held, err := r.cascadeHold(ctx, obj.GetNamespace(), uses, sources)
	if err != nil {
		return decide.Input{}, nil, err
	}
	if held {
		in.Hold = &hold
	}
	if k.orchestrated {
		p, found, err := r.governing(ctx, obj)
		if err != nil {
			return decide.Input{}, nil, err
		}
		if found {
			in.Policy, in.PolicySuspended = p.Name, p.Spec.Suspend
			if p.Spec.MinRestartInterval != nil {
				in.MinRestartInterval = p.Spec.MinRestartInterval.Duration
			}
		}
	}
	return in, issuers, nil
}

// source reads a Secret or ConfigMap from the cache (reduced); found is false when it does not exist.
func (r *gatherer) source(ctx context.Context, ns string, ref consumers.Ref) (src *inventory.Source, found bool, err error) {
	key := client.ObjectKey{Namespace: ns, Name: ref.Name}
	switch ref.Kind {
	case consumers.KindSecret:
		s := &corev1.Secret{}
		if err = r.client.Get(ctx, key, s); err == nil {
			return inventory.FromSecret(s), true, nil
		}
	case consumers.KindConfigMap:
		cm := &corev1.ConfigMap{}
		if err = r.client.Get(ctx, key, cm); err == nil {
			return inventory.FromConfigMap(cm), true, nil
		}
	case consumers.KindClusterTrustBundle, consumers.KindClusterTrustBundleSigner:
		return r.bundleSource(ctx, ref)
	case consumers.KindPodCertificate:
		return nil, false, nil // the kubelet's, per pod: reported, never a reason to restart
	}
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	return nil, false, err
}

// podsOf lists the workload's pods that are not being deleted (a bare pod is its own).
func (r *gatherer) podsOf(k kind, obj client.Object) ([]decide.Pod, error) {
	if k.name == api.KindPod {
		if p := r.pods.get(obj.GetNamespace(), obj.GetName()); p != nil {
			return []decide.Pod{{Name: p.Name, Started: p.Started, IP: p.IP}}, nil
		}
		return nil, nil
	}
	if cj, ok := obj.(*batchv1.CronJob); ok {
		return r.jobPods(cj)
	}
	sel := k.selector(obj)
	if sel == nil {
		return nil, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("selector of %s %s/%s: %w", k.name, obj.GetNamespace(), obj.GetName(), err)
	}
	return r.pods.selected(obj.GetNamespace(), selector)
}

// matcher finds the workload's pods in the pod cache, as podsOf does, for counting at scrape time.
func (r *gatherer) matcher(k kind, obj client.Object) podMatcher {
	m := podMatcher{cache: r.pods}
	switch o := obj.(type) {
	case *batchv1.CronJob:
		for _, job := range o.Status.Active {
			if job.UID != "" {
				m.selectors = append(m.selectors, labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(job.UID)}))
			}
		}
		return m
	}
	if k.name == api.KindPod {
		m.bare = obj.GetName()
		return m
	}
	if sel := k.selector(obj); sel != nil {
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			m.selectors = []labels.Selector{s}
		}
	}
	return m
}

// jobPods lists the running pods of a CronJob's active Jobs, as the CronJob controller records them.
func (r *gatherer) jobPods(cj *batchv1.CronJob) ([]decide.Pod, error) {
	var out []decide.Pod
	for _, job := range cj.Status.Active {
		if job.UID == "" {
			continue
		}
		sel := labels.SelectorFromSet(labels.Set{batchv1.ControllerUidLabel: string(job.UID)})
		pods, err := r.pods.selected(cj.Namespace, sel)
		if err != nil {
			return nil, err
		}
		for i := range pods {
			pods[i].Job = job.Name
		}
		out = append(out, pods...)
	}
	return out, nil
}

func (r *workloadReconciler) act(ctx context.Context, obj client.Object, d decide.Decision, in decide.Input, issuers []string) (ctrl.Result, error) {
	log, now := ctrl.LoggerFrom(ctx), in.Now
	switch d.Action {
	case decide.ActionNone:
		return ctrl.Result{}, nil
	case decide.ActionDelegate:
		return ctrl.Result{}, nil
	case decide.ActionReload:
		return r.reload(ctx, obj, d, in)
	case decide.ActionWait:
		return ctrl.Result{RequeueAfter: d.RequeueAfter}, nil
	case decide.ActionBlock:
		blockedTotal.WithLabelValues(d.Reason).Inc()
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, d.Reason, "Restart", "%s", fitNote(d.Message))
		return ctrl.Result{RequeueAfter: d.RequeueAfter}, nil
	case decide.ActionRecord:
		if err := restart.Record(ctx, r.client, obj, d, now); err != nil {
			return ctrl.Result{}, err
		}
		if d.Reason == api.ReasonReloadedByItself || d.Reason == api.ReasonReloaded {
			r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, d.Reason, "Probe", "%s", fitNote(d.Message))
		}
		return ctrl.Result{}, nil
	case decide.ActionRestart:
		res := r.limiter.ReserveN(now, 1)
		if delay := res.DelayFrom(now); !res.OK() || delay > 0 {
			res.CancelAt(now)
			blockedTotal.WithLabelValues(api.ReasonRateLimited).Inc()
			workloads.block(r.key(obj), api.ReasonRateLimited)
			log.Info("Delayed restart by the global rate limit", "workload", klog.KObj(obj), "after", delay)
			return ctrl.Result{RequeueAfter: max(delay, time.Second)}, nil
		}
		if err := restart.Restart(ctx, r.client, r.kind.name, obj, d, now); err != nil {
			restartsTotal.WithLabelValues(r.kind.name, "error").Inc()
			return ctrl.Result{}, err
		}
		restartsTotal.WithLabelValues(r.kind.name, "success").Inc()
		workloads.restarted(r.key(obj), now)
		if !d.Set.ChangedAt.IsZero() {
			renewalToRestart.Observe(now.Sub(d.Set.ChangedAt).Seconds())
		}
		note := fmt.Sprintf("Restarted for certificates %s expiring %s (%s): %s", d.Set.Hash, d.Set.NotAfter.Format(time.RFC3339), d.Reason, d.Message)
		if len(issuers) > 0 {
			note += "; " + strings.Join(issuers, "; ")
		}
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, api.ReasonRestarted, "Restart", "%s", fitNote(note))
		log.Info("Restarted "+r.kind.name, "workload", klog.KObj(obj), "reason", d.Reason, "hash", d.Set.Hash, "stalePods", len(d.StalePods), "issuers", issuers)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, fmt.Errorf("unknown action %q", d.Action)
}

// report records what the decision saw for the metrics (workloads.go): the current certificates, what
// stale pods run on, whether a due restart is blocked.
func (r *workloadReconciler) report(obj client.Object, in decide.Input, d decide.Decision) {
	decisionsTotal.WithLabelValues(string(d.Action), d.Reason).Inc()
	if d.Set.Empty() {
		r.forget(obj.GetNamespace(), obj.GetName())
		return
	}
	s := workloadState{
		pods:     r.matcher(r.kind, obj),
		issuedAt: d.Set.IssuedAt,
		hash:     d.Set.Hash,
		current:  d.Set.NotAfter.Unix(),
		older:    olderNotAfter(obj.GetAnnotations(), d.Set.Hash),
		// Pods a verification saw serving an old certificate stay stale, whatever their start time.
		servingOld: decide.ServingOld(obj.GetAnnotations(), d.Set.Hash),
	}
	if in.Reloads() || in.ServesCurrent() || d.Reason == api.ReasonReloadedByItself || d.Reason == api.ReasonReloaded {
		// No pod is stale: the processes reload, or probes saw every pod serve the current set
		// (decide.Stale of a zero issuance).
		s.issuedAt = time.Time{}
	}
	if d.Action == decide.ActionBlock {
		s.blocked = d.Reason
	}
	workloads.set(r.key(obj), s)
}

// olderNotAfter is, from the ledger, the expiry of the certificates that pods predating the set hash run
// on (Unix time): the ledger's set when it records another one (the restart has not happened), the set
// before it when it records this one (the restart has, and AnnotationPreviousNotAfter says what it
// replaced); 0 when the ledger does not say.
func olderNotAfter(annotations map[string]string, hash string) int64 {
	l := decide.ReadLedger(annotations)
	var t time.Time
	switch {
	case l.Hash == "":
	case l.Hash != hash:
		t = l.NotAfter
	default:
		t, _ = time.Parse(time.RFC3339, annotations[api.AnnotationPreviousNotAfter])
	}
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (r *workloadReconciler) key(obj client.Object) workloadKey {
	return workloadKey{obj.GetNamespace(), r.kind.name, obj.GetName()}
}

func (r *workloadReconciler) forget(ns, name string) {
	workloads.forget(workloadKey{ns, r.kind.name, name})
	r.served.drop(workloadKey{ns, r.kind.name, name})
}

// maxNote is the longest Event note the API server accepts.
const maxNote = 1024

// fitNote shortens a note to what an Event can carry, marking the cut.
func fitNote(note string) string {
	if len(note) <= maxNote {
		return note
	}
	cut := maxNote - len("…")
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + "…"
}
