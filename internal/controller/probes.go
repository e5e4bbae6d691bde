package controller

import (
	"context"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/probe"
)

// maxProbedPods bounds the pods one decision probes; the others are judged by their start time. With
// probe.DefaultTimeout and probesPerWorkload it bounds how long a workload whose pods do not answer holds
// a reconcile worker (64/16 × 3 s), so one tenant's silent pods cannot hold the others' reconciles for long.
const maxProbedPods = 64

// probesPerWorkload is how many pods of one workload are probed at once.
const probesPerWorkload = 16

// DefaultProbeGrace is how long after its certificates changed a pod may still serve the old ones before
// a probe's "old" counts: the kubelet writes renewed Secret and ConfigMap files into running pods on its
// next sync (a minute, plus its cache's), and a process that reloads them needs a moment more.
const DefaultProbeGrace = 2 * time.Minute

// prober probes the pods of workloads that declare TLS ports (probe.Ports). The controller dials pod IPs;
// the CLI dials through the API server's port-forward; tests map pod addresses to listeners of their own
// (Options.ProbeDialer).
type prober struct {
	probe.Prober
	// slots bound the probes in flight across all workloads.
	slots chan struct{}
}

func newProber(o Options) *prober {
	if !o.Probes {
		return nil
	}
	return &prober{Prober: probe.Prober{Dialer: o.ProbeDialer, Timeout: o.ProbeTimeout}, slots: make(chan struct{}, 4*probesPerWorkload)}
}

// decideServing decides on the workload as decide.Restart does and, when that decision would restart it
// (directly or through its policy) and probes can change it, probes the pods the start-time rule calls
// stale and decides again with what they serve. Steady state, workloads that are not due a restart and
// workloads certrollout may not restart cost no dial. It returns what is wrong with the workload's probe
// or reload declarations, when that matters to this decision, for the caller to report; an unusable
// reload hook is ignored and a bad probe entry dropped.
func (r *gatherer) decideServing(ctx context.Context, k kind, obj client.Object, in *decide.Input) (decide.Decision, []problem) {
	d, work, problems := r.probePlan(k, obj, in)
	key := workloadKey{obj.GetNamespace(), k.name, obj.GetName()}
	if work == nil {
		r.served.drop(key)
		return d, problems
	}
	r.prober.judge(ctx, in.Pods, work.todo, work.ports, probe.ServerName(in.Set.ServerNames), in.Set.Expectation())
	d = decide.Restart(*in)
	r.served.set(key, in.Set.Hash, d)
	return d, problems
}

// probeWork is what decideServing probes: the indexes of in.Pods, on ports.
type probeWork struct {
	todo  []int
	ports []probe.Port
}

// probePlan decides on the workload as decide.Restart does, and says what to probe when probes can change
// that decision (nil when they cannot), preparing in for it.
func (r *gatherer) probePlan(k kind, obj client.Object, in *decide.Input) (decide.Decision, *probeWork, []problem) {
	h, declared, reloadErr := decide.ParseReloadHook(obj.GetAnnotations())
	if declared && reloadErr == nil && !in.NeverRefreshed {
		in.Reload = &h
	}
	d := decide.Restart(*in)
	if d.Action != decide.ActionRestart && d.Action != decide.ActionDelegate {
		return d, nil, nil
	}
	var problems []problem
	if reloadErr != nil {
		problems = append(problems, problem{api.ReasonInvalidReload, reloadErr.Error() + "; the workload is restarted instead"})
	}
	if r.prober == nil || len(in.Set.Leaves) == 0 {
		return d, nil, problems // nothing to probe with, or for: a set of CAs says nothing of what a pod serves
	}
	ports, err := probe.Ports(obj.GetAnnotations(), k.podSpec(obj))
	if err != nil {
		problems = append(problems, problem{api.ReasonInvalidProbe, err.Error() + "; those entries are not probed"})
	}
	if len(ports) == 0 {
		return d, nil, problems
	}
	work := &probeWork{ports: ports}
	for i, p := range in.Pods {
		if p.IP != "" && decide.Stale(p.Started, in.Set.IssuedAt) {
			work.todo = append(work.todo, i)
		}
	}
	if len(work.todo) > maxProbedPods {
		// Too many pods to prove a reload of each: judge the first ones, restart rather than reload.
		work.todo, in.Reload = work.todo[:maxProbedPods], nil
	}
	in.Probed, in.ProbeGrace = true, r.opts.ProbeGrace
	return d, work, problems
}

// decideGoverned is decideServing for the policy reconciler, which decides on every workload its policy
// governs. In the controller it never dials: where probes can change the decision it takes the one the
// workload's own reconciler made with them for the same certificates, or waits for it, so one tenant's
// pods that never answer cannot hold the one policy worker every namespace shares. A CLI snapshot, where
// no workload reconciler runs, probes when it has no such decision.
//
// pending is true while such a decision is missing and the certificates changed less than
// probeBatchWait ago: the policy then holds its other due workloads too, so that one renewal makes one
// CertRollout rather than one per workload as their reconcilers finish probing.
func (r *gatherer) decideGoverned(ctx context.Context, k kind, obj client.Object, in *decide.Input) (d decide.Decision, pending bool) {
	key := workloadKey{obj.GetNamespace(), k.name, obj.GetName()}
	probed := *in
	d, work, _ := r.probePlan(k, obj, &probed)
	if work == nil {
		return d, false
	}
	if sd, ok := r.served.get(key, in.Set.Hash); ok {
		return sd, false
	}
	if !r.acting {
		d, _ := r.decideServing(ctx, k, obj, in)
		return d, false
	}
	young := !in.Set.ChangedAt.IsZero() && in.Now.Sub(in.Set.ChangedAt) < probeBatchWait
	return decide.Decision{Action: decide.ActionWait, Reason: api.ReasonPropagating, RequeueAfter: servedPoll, Set: in.Set, StalePods: d.StalePods,
		Message: "probes decide whether its pods need a restart; waiting for the workload's own reconciler to probe them"}, young
}

// servedPoll is how soon a policy looks again for a governed workload's probed decision.
const servedPoll = 5 * time.Second

// probeBatchWait bounds how long a policy holds its due workloads for another's probed decision: a
// workload reconciler that keeps failing must not hold the others for ever.
const probeBatchWait = time.Minute

// servedDecisions keeps, per workload, the last decision its own reconciler made with probes and the
// certificate set it was for (decideGoverned).
type servedDecisions struct {
	mu sync.Mutex
	m  map[workloadKey]servedDecision
}

type servedDecision struct {
	hash string
	d    decide.Decision
}

func newServedDecisions() *servedDecisions {
	return &servedDecisions{m: map[workloadKey]servedDecision{}}
}

func (s *servedDecisions) set(k workloadKey, hash string, d decide.Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = servedDecision{hash: hash, d: d}
}

func (s *servedDecisions) get(k workloadKey, hash string) (decide.Decision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sd, ok := s.m[k]
	return sd.d, ok && sd.hash == hash
}

func (s *servedDecisions) drop(k workloadKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
}

// problem is something wrong with a workload's declarations, reported as a Warning Event with reason.
type problem struct{ reason, message string }

// judge probes pods[i] for each i in todo and records the verdict in pods[i].Serves.
func (p *prober) judge(ctx context.Context, pods []decide.Pod, todo []int, ports []probe.Port, serverName string, expected probe.Expectation) {
	p.each(ctx, todo, func(i int) {
		pods[i].Serves = expected.Judge(p.Pod(ctx, pods[i].IP, ports, serverName))
	})
}

// each calls fn for each index in todo, probesPerWorkload at a time and within the prober's slots across
// workloads; an index whose turn comes after ctx ends is skipped.
func (p *prober) each(ctx context.Context, todo []int, fn func(i int)) {
	var wg sync.WaitGroup
	perWorkload := make(chan struct{}, probesPerWorkload)
	for _, i := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			perWorkload <- struct{}{}
			defer func() { <-perWorkload }()
			select {
			case p.slots <- struct{}{}:
				defer func() { <-p.slots }()
			case <-ctx.Done():
				return
			}
			fn(i)
		}()
	}
	wg.Wait()
}
