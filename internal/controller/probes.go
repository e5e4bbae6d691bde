package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/inventory"
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

	// verdicts remember each recent verdict for verdictTTL: a governed workload is decided by its own
	// reconciler and by its policy's, and a rollout's pod events wake the policy's often; they share one
	// probe of each pod.
	mu       sync.Mutex
	verdicts map[verdictKey]verdictAt
}

// verdictTTL is how long a verdict is reused; well under the re-probe period of a pod that is still
// propagating (decide's poll), so no decision waits on a stale verdict for a whole poll.
const verdictTTL = 5 * time.Second

// verdictKey is what a verdict answers: one pod, probed on ports with a server name, judged against a
// certificate set.
type verdictKey struct{ ip, ports, serverName, set string }

type verdictAt struct {
	serves probe.Verdict
	at     time.Time
}

func newProber(o Options) *prober {
	if !o.Probes {
		return nil
	}
	return &prober{Prober: probe.Prober{Dialer: o.ProbeDialer, Timeout: o.ProbeTimeout}, slots: make(chan struct{}, 4*probesPerWorkload),
		verdicts: map[verdictKey]verdictAt{}}
}

// decideServing decides on the workload as decide.Restart does and, when that decision would restart it
// (directly or through its policy) and probes can change it, probes the pods the start-time rule calls
// stale and decides again with what they serve. Steady state, workloads that are not due a restart and
// workloads certrollout may not restart cost no dial. It returns what is wrong with the workload's probe
// or reload declarations, when that matters to this decision, for the caller to report; an unusable
// reload hook is ignored and a bad probe entry dropped.
func (r *gatherer) decideServing(ctx context.Context, k kind, obj client.Object, in *decide.Input) (decide.Decision, []problem) {
	h, declared, reloadErr := decide.ParseReloadHook(obj.GetAnnotations())
	if declared && reloadErr == nil && !in.NeverRefreshed {
		in.Reload = &h
	}
	d := decide.Restart(*in)
	if d.Action != decide.ActionRestart && d.Action != decide.ActionDelegate {
		return d, nil
	}
	var problems []problem
	if reloadErr != nil {
		problems = append(problems, problem{api.ReasonInvalidReload, reloadErr.Error() + "; the workload is restarted instead"})
	}
	if r.prober == nil || len(in.Set.Leaves) == 0 {
		return d, problems // nothing to probe with, or for: a set of CAs says nothing of what a pod serves
	}
	ports, err := probe.Ports(obj.GetAnnotations(), k.podSpec(obj))
	if err != nil {
		problems = append(problems, problem{api.ReasonInvalidProbe, err.Error() + "; those entries are not probed"})
	}
	if len(ports) == 0 {
		return d, problems
	}
	var todo []int
	for i, p := range in.Pods {
		if p.IP != "" && decide.Stale(p.Started, in.Set.IssuedAt) {
			todo = append(todo, i)
		}
	}
	if len(todo) > maxProbedPods {
		// Too many pods to prove a reload of each: judge the first ones, restart rather than reload.
		todo, in.Reload = todo[:maxProbedPods], nil
	}
	in.Probed, in.ProbeGrace = true, r.opts.ProbeGrace
	r.prober.judge(ctx, in.Pods, todo, ports, probe.ServerName(in.Set.ServerNames), in.Set)
	return decide.Restart(*in), problems
}

// problem is something wrong with a workload's declarations, reported as a Warning Event with reason.
type problem struct{ reason, message string }

// judge probes pods[i] for each i in todo and records in pods[i].Serves what it serves, judged against
// set; a verdict younger than verdictTTL is reused.
func (p *prober) judge(ctx context.Context, pods []decide.Pod, todo []int, ports []probe.Port, serverName string, set inventory.Set) {
	expected := set.Expectation()
	portList := fmt.Sprint(ports)
	p.each(ctx, todo, func(i int) {
		key := verdictKey{ip: pods[i].IP, ports: portList, serverName: serverName, set: set.Hash}
		if v, ok := p.recent(key); ok {
			pods[i].Serves = v
			return
		}
		pods[i].Serves = expected.Judge(p.Pod(ctx, pods[i].IP, ports, serverName))
		p.remember(key, pods[i].Serves)
	})
}

func (p *prober) recent(key verdictKey) (probe.Verdict, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.verdicts[key]
	if !ok || time.Since(v.at) >= verdictTTL {
		return "", false
	}
	return v.serves, true
}

// remember records a verdict and forgets the expired ones, so the map holds only what was probed in the
// last verdictTTL.
func (p *prober) remember(key verdictKey, v probe.Verdict) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for k, old := range p.verdicts {
		if now.Sub(old.at) >= verdictTTL {
			delete(p.verdicts, k)
		}
	}
	p.verdicts[key] = verdictAt{serves: v, at: now}
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
