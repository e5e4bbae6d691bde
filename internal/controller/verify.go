package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
	"github.com/certrollout/certrollout/internal/orchestrate"
	"github.com/certrollout/certrollout/internal/probe"
	"github.com/certrollout/certrollout/internal/restart"
)

// verifyPoll is how often a restarted workload is looked at until its new pods can be verified.
const verifyPoll = 5 * time.Second

// verifyTimeout is how long after a restart the verification waits for every pod to be new, ready and
// answering its probe before it records the restart as not verified.
const verifyTimeout = 10 * time.Minute

// verifiable reports whether a restart of the workload can be verified by probes, and on which ports.
func (r *workloadReconciler) verifiable(obj client.Object, set inventory.Set) ([]probe.Port, bool) {
	switch {
	case r.prober == nil, len(set.Leaves) == 0:
		return nil, false
	case r.kind.name != api.KindDeployment && r.kind.name != api.KindStatefulSet && r.kind.name != api.KindDaemonSet:
		return nil, false
	}
	ports, _ := probe.Ports(obj.GetAnnotations(), r.kind.podSpec(obj))
	return ports, len(ports) > 0
}

// verifyRestart proves a direct restart worked. The restart wrote a pending verification
// (decide.Decision.Verify); once every pod of the workload started after it and is ready and answers
// its probe, it probes them all and records on the workload (api.AnnotationVerification) and in an
// Event whether each serves the certificates the ledger names, naming the pods that do not. It returns
// when to look again (0: nothing left to verify). Only certrollout's own direct restarts are verified
// here: restarts by others are not its to judge, and a CertRollout verifies its targets itself.
func (r *workloadReconciler) verifyRestart(ctx context.Context, obj client.Object, in decide.Input, d decide.Decision) time.Duration {
	if d.Action == decide.ActionRestart && d.Verify {
		return verifyPoll // the restart was just written; its pods come later
	}
	pending, ok := decide.ReadVerification(obj.GetAnnotations())
	l := decide.ReadLedger(obj.GetAnnotations())
	if !ok || !pending.Pending || pending.Hash != l.Hash || d.Reason != api.ReasonUpToDate {
		return 0
	}
	ports, ok := r.verifiable(obj, in.Set)
	if !ok {
		return 0
	}
	late := !in.Now.Before(pending.At.Add(verifyTimeout))
	pods, waiting := r.podsSince(r.kind, obj, pending.At)
	switch {
	case waiting == noPods:
		r.recordVerification(ctx, obj, decide.Verification{Hash: l.Hash, How: decide.HowRestarted, At: in.Now, Message: "not verified: " + noPods}, false)
		return 0
	case waiting != "" && !late:
		return verifyPoll
	}
	v := decide.Verification{Hash: l.Hash, How: decide.HowRestarted, At: in.Now}
	if waiting != "" {
		v.Message = fmt.Sprintf("not verified within %s of the restart: %s", verifyTimeout, waiting)
	} else {
		res := r.prober.verify(ctx, pods, ports, in.Set)
		if !res.answered && !late {
			return verifyPoll
		}
		v.Verified, v.Message, v.OldPods = res.verified, res.message, res.oldPods
	}
	r.recordVerification(ctx, obj, v, true)
	return 0
}

// noPods is why a workload scaled to zero after its restart is not verified.
const noPods = "the workload has no running pod"

// podsSince are the workload's running pods, all started after restartedAt and ready; waiting says what
// is not yet so ("" when every pod is).
func (r *gatherer) podsSince(k kind, obj client.Object, restartedAt time.Time) (pods []decide.Pod, waiting string) {
	since := restartedAt.Truncate(time.Second) // start times have one-second resolution
	old, unready := 0, 0
	r.matcher(k, obj).each(obj.GetNamespace(), func(p *cachedPod) {
		switch {
		case p.Started.IsZero() || p.Started.Before(since):
			old++
		case !p.Ready || p.IP == "":
			unready++
		default:
			pods = append(pods, decide.Pod{Name: p.Name, Started: p.Started, IP: p.IP})
		}
	})
	switch {
	case old > 0:
		return nil, fmt.Sprintf("%d pod(s) from before the restart still run", old)
	case unready > 0:
		return nil, fmt.Sprintf("%d new pod(s) are not ready", unready)
	case len(pods) == 0:
		return nil, noPods
	}
	return pods, ""
}

// restartedTarget is the rollout's target key while it is restarting; nil otherwise.
func restartedTarget(ro *api.CertRollout, key orchestrate.Key) *api.TargetStatus {
	for i, t := range ro.Status.Targets {
		if t.Kind == key.Kind && t.Name == key.Name && t.State == api.TargetRestarting && t.StartedAt != nil {
			return &ro.Status.Targets[i]
		}
	}
	return nil
}

// verifyTarget probes the pods of a rollout's target whose rollout is done, for orchestrate to judge.
func (r *gatherer) verifyTarget(ctx context.Context, o *observed, restartedAt time.Time) *orchestrate.Verification {
	if r.prober == nil {
		return nil
	}
	ports, _ := probe.Ports(o.obj.GetAnnotations(), o.kind.podSpec(o.obj))
	if len(ports) == 0 {
		return &orchestrate.Verification{}
	}
	pods, waiting := r.podsSince(o.kind, o.obj, restartedAt)
	if waiting != "" {
		return &orchestrate.Verification{Probed: true, Message: waiting}
	}
	res := r.prober.verify(ctx, pods, ports, o.set)
	return &orchestrate.Verification{Probed: true, Answered: res.answered, Verified: res.verified, Message: res.message}
}

// verifyResult is what probing a workload's pods after a restart found.
type verifyResult struct {
	// verified: every pod serves the set; answered is false when no port of any pod answered (too
	// early to say).
	verified, answered bool
	// message names the pods that serve something else and what.
	message string
	// oldPods are the pods that serve a certificate outside the set.
	oldPods []string
}

// verify probes pods and says whether every one serves the set.
func (p *prober) verify(ctx context.Context, pods []decide.Pod, ports []probe.Port, set inventory.Set) verifyResult {
	total := len(pods)
	if len(pods) > maxProbedPods {
		pods = pods[:maxProbedPods]
	}
	served := make([][]probe.Served, len(pods))
	todo := make([]int, len(pods))
	for i := range pods {
		todo[i] = i
	}
	p.each(ctx, todo, func(i int) {
		served[i] = p.Pod(ctx, pods[i].IP, ports, probe.ServerName(set.ServerNames))
	})
	var old, oldPods, silent []string
	current := 0
	expected := set.Expectation()
	for i, ss := range served {
		switch expected.Judge(ss) {
		case probe.Current:
			current++
		case probe.Old:
			old = append(old, pods[i].Name+" serves "+describeServed(ss, set.Fingerprints))
			oldPods = append(oldPods, pods[i].Name)
		default:
			if slices.ContainsFunc(ss, probe.Served.OK) {
				silent = append(silent, pods[i].Name+" (serves no certificate of its set: "+describeServed(ss, nil)+")")
				continue
			}
			silent = append(silent, pods[i].Name+" ("+firstError(ss)+")")
		}
	}
	slices.Sort(old)
	slices.Sort(oldPods)
	slices.Sort(silent)
	// Answered only once every pod did: a pod whose listener starts after it is ready is looked at again
	// until the timeout rather than judged silent at once.
	res := verifyResult{answered: len(silent) == 0, oldPods: oldPods}
	switch {
	case len(old) > 0:
		res.message = fmt.Sprintf("%d of %d probed pod(s) still serve an old certificate after the restart: %s", len(old), len(pods), strings.Join(old, "; "))
	case len(silent) > 0:
		res.message = fmt.Sprintf("%d of %d probed pod(s) serve %s; %d did not answer: %s", current, len(pods), set.Hash, len(silent), strings.Join(silent, "; "))
	default:
		res.verified = true
		res.message = fmt.Sprintf("all %d probed pod(s) serve the certificates %s (on %s)", current, set.Hash, portList(ports))
	}
	if total > len(pods) {
		res.message += fmt.Sprintf("; %d more pod(s) not probed (at most %d are)", total-len(pods), maxProbedPods)
	}
	return res
}

// describeServed names what a pod serves on the ports whose leaf is not expected: "1a2b3c4d5e6f (CN=api) on 8443".
func describeServed(served []probe.Served, expected []string) string {
	var parts []string
	for _, s := range served {
		if s.OK() && !slices.Contains(expected, s.Leaf.Fingerprint) {
			parts = append(parts, fmt.Sprintf("%s (%s, expires %s) on %s", s.Leaf.Fingerprint[:12], s.Leaf.Subject, s.Leaf.NotAfter.UTC().Format(time.RFC3339), s.Port))
		}
	}
	return strings.Join(parts, ", ")
}

func firstError(served []probe.Served) string {
	for _, s := range served {
		if s.Err != nil {
			return fmt.Sprintf("%s: %v", s.Port, s.Err)
		}
	}
	return "no port"
}

func portList(ports []probe.Port) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

// recordVerification writes the verification on the workload and, when it is a verdict, as an Event
// and in the metric.
func (r *workloadReconciler) recordVerification(ctx context.Context, obj client.Object, v decide.Verification, verdict bool) {
	log := ctrl.LoggerFrom(ctx)
	if err := restart.Annotate(ctx, r.client, obj, map[string]string{api.AnnotationVerification: v.Annotation()}); err != nil {
		log.Error(err, "Could not record a verification", "workload", klog.KObj(obj))
		return
	}
	if !verdict {
		return
	}
	reason, eventType := api.ReasonVerified, corev1.EventTypeNormal
	if !v.Verified {
		reason, eventType = api.ReasonNotVerified, corev1.EventTypeWarning
	}
	verificationsTotal.WithLabelValues(reason).Inc()
	r.recorder.Eventf(obj, nil, eventType, reason, "Verify", "%s", fitNote(v.Message))
	log.Info("Probed a restarted workload", "workload", klog.KObj(obj), "verified", v.Verified, "hash", v.Hash, "message", v.Message)
}
