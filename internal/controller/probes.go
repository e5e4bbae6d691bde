package controller

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certrollout/certrollout/internal/decide"
	"github.com/certrollout/certrollout/internal/probe"
)

// maxProbedPods bounds the pods one decision probes; the others are judged by their start time. With
// probe.DefaultTimeout and probesPerWorkload it bounds how long a workload whose pods do not answer holds
// a reconcile worker (64/16 × 3 s), so one tenant's silent pods cannot hold the others' reconciles for long.
const maxProbedPods = 64

// probesPerWorkload is how many pods of one workload are probed at once.
const probesPerWorkload = 16

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

// probeStale probes the pods a start-time rule would call stale, when the outcome can change the
// decision: the certificates changed since the ledger was written, and the workload declares TLS ports.
// It sets each probed pod's Serves and returns why the workload's probe declaration is unusable ("" when
// it is fine), for the reconciler to report.
func (r *gatherer) probeStale(ctx context.Context, k kind, obj client.Object, in *decide.Input) string {
	if r.prober == nil || in.Set.Empty() || decide.ReadLedger(in.Workload.Annotations).Hash == in.Set.Hash {
		return ""
	}
	ports, err := probe.Ports(obj.GetAnnotations(), k.podSpec(obj))
	problem := ""
	if err != nil {
		problem = err.Error()
	}
	if len(ports) == 0 {
		return problem
	}
	var todo []int
	for i, p := range in.Pods {
		if p.IP != "" && decide.Stale(p.Started, in.Set.IssuedAt) && len(todo) < maxProbedPods {
			todo = append(todo, i)
		}
	}
	r.prober.judge(ctx, in.Pods, todo, ports, probe.ServerName(in.Set.ServerNames), in.Set.Fingerprints)
	return problem
}

// judge probes pods[i] for each i in todo and records the verdict in pods[i].Serves.
func (p *prober) judge(ctx context.Context, pods []decide.Pod, todo []int, ports []probe.Port, serverName string, expected []string) {
	p.each(ctx, todo, func(i int) {
		pods[i].Serves = probe.Judge(p.Pod(ctx, pods[i].IP, ports, serverName), expected)
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
