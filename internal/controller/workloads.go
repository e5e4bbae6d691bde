package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/certrollout/certrollout/internal/decide"
)

var (
	stalePodsDesc = prometheus.NewDesc("certrollout_workload_stale_pods",
		"Pods of a workload that exist now and run on old certificates, counted when scraped: they started before the certificates they use were issued, or a probe after its restart saw them serve an old one.",
		[]string{"namespace", "kind", "name"}, nil)
	workloadNotAfterDesc = prometheus.NewDesc("certrollout_workload_certificate_expiry_timestamp_seconds",
		"When the earliest-expiring certificate a workload should run on (its current certificates) expires (Unix time).",
		[]string{"namespace", "kind", "name"}, nil)
	runningNotAfterDesc = prometheus.NewDesc("certrollout_workload_running_certificate_expiry_timestamp_seconds",
		"When the earliest-expiring certificate a workload's pods actually run on expires (Unix time): the older set while any pod predates the current one.",
		[]string{"namespace", "kind", "name"}, nil)
	servingOldDesc = prometheus.NewDesc("certrollout_workload_serving_old_pods",
		"Pods of a workload that exist now and that a probe after certrollout's restart or reload saw still serving an old certificate: the restart did not help (NotVerified). Only workloads with such a record have the series.",
		[]string{"namespace", "kind", "name"}, nil)
	restartBlockedDesc = prometheus.NewDesc("certrollout_workload_restart_blocked",
		"1 while a workload's due restart is blocked, with the reason.",
		[]string{"namespace", "kind", "name", "reason"}, nil)
)

// workloads holds the per-workload series as plain values, turned into samples only when Prometheus
// scrapes: a GaugeVec child costs about a kilobyte, which with thousands of workloads is a large share of
// the controller's memory. Stale pods are not a value kept here but counted from the pod cache at scrape
// time, so the number is the pods that exist, whether or not anything reconciled the workload since they
// went away.
var workloads = newWorkloadGauges()

func newWorkloadGauges() *workloadGauges {
	return &workloadGauges{state: map[workloadKey]*workloadState{}, pending: map[workloadKey]struct{}{}}
}

type workloadKey struct{ namespace, kind, name string }

// workloadState is what the reconciler last saw of a workload.
type workloadState struct {
	pods podMatcher
	// issuedAt is when the current certificates were issued: a pod started at or before it is stale.
	issuedAt time.Time
	hash     string
	// current is the current set's expiry; older the expiry of the set that stale pods run on, 0 when
	// unknown.
	current, older int64
	// blocked is why a due restart is blocked, "" when it is not.
	blocked string
	// restartedAt is a restart not yet seen complete (restart_to_ready), zero when none.
	restartedAt time.Time
	// servingOld are pods probes saw serving an old certificate after a restart (the workload's
	// verification record): stale whatever their start time, while they exist.
	servingOld []string
}

// podMatcher finds a workload's pods in the pod cache: by selector (one per active Job of a CronJob), or
// by name for a bare pod.
type podMatcher struct {
	cache     *podCache
	selectors []labels.Selector
	bare      string
}

// each calls fn for each running pod of the workload in ns.
func (m podMatcher) each(ns string, fn func(*cachedPod)) {
	if m.cache == nil {
		return
	}
	if m.bare != "" {
		if p := m.cache.get(ns, m.bare); p != nil && running(p) {
			fn(p)
		}
		return
	}
	for _, sel := range m.selectors {
		m.cache.eachSelected(ns, sel, fn)
	}
}

type workloadGauges struct {
	mu    sync.Mutex
	state map[workloadKey]*workloadState
	// pending are the workloads with a restart not yet seen complete.
	pending map[workloadKey]struct{}
}

// set records what a reconcile saw. When the ledger cannot say what stale pods run on (a workload
// certrollout may not touch has none), memory does: after a change of certificates the previous set's
// expiry stands in (it is what they ran on), and it stays until the certificates change again. A pending
// restart_to_ready observation carries over.
func (g *workloadGauges) set(k workloadKey, s workloadState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if prev := g.state[k]; prev != nil {
		switch {
		case s.older != 0 || prev.hash == "":
		case prev.hash != s.hash:
			s.older = prev.running(prev.stale(k.namespace))
		default:
			// The same certificates as last time: what the stale pods run on has not changed either.
			s.older = prev.older
		}
		if s.restartedAt.IsZero() {
			s.restartedAt = prev.restartedAt
		}
	}
	g.state[k] = &s
}

// restarted marks a restart of the workload at, to be timed until its pods are all new and ready.
func (g *workloadGauges) restarted(k workloadKey, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.state[k]; s != nil {
		s.restartedAt = at
		g.pending[k] = struct{}{}
	}
}

func (g *workloadGauges) forget(k workloadKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.state, k)
	delete(g.pending, k)
}

// settle observes restart_to_ready for the workloads of ns whose restart has completed at now: they have
// pods, and every one started after the restart and is ready. The pod cache calls it when a pod of ns changes.
func (g *workloadGauges) settle(ns string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.pending {
		s := g.state[k]
		if k.namespace != ns || s == nil {
			continue
		}
		// Start times have one-second resolution: a pod started in the second of the restart is new.
		since, pods, done := s.restartedAt.Truncate(time.Second), 0, true
		s.pods.each(ns, func(p *cachedPod) {
			pods++
			done = done && p.Ready && !p.Started.IsZero() && !p.Started.Before(since)
		})
		if pods > 0 && done {
			restartToReady.Observe(now.Sub(s.restartedAt).Seconds())
			s.restartedAt = time.Time{}
			delete(g.pending, k)
		}
	}
}

// stale counts the workload's pods that started before its current certificates were issued.
func (s *workloadState) stale(ns string) int {
	n := 0
	s.pods.each(ns, func(p *cachedPod) {
		if decide.Stale(p.Started, s.issuedAt) || slices.Contains(s.servingOld, p.Name) {
			n++
		}
	})
	return n
}

// servingOldNow counts the pods a verification saw serving an old certificate that still exist.
func (s *workloadState) servingOldNow(ns string) int {
	n := 0
	s.pods.each(ns, func(p *cachedPod) {
		if slices.Contains(s.servingOld, p.Name) {
			n++
		}
	})
	return n
}

// running is the expiry of what the pods run on, given how many are stale; 0 when unknown.
func (s *workloadState) running(stale int) int64 {
	if stale == 0 {
		return s.current
	}
	return s.older
}

func (g *workloadGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- stalePodsDesc
	ch <- workloadNotAfterDesc
	ch <- runningNotAfterDesc
	ch <- servingOldDesc
	ch <- restartBlockedDesc
}

func (g *workloadGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, s := range g.state {
		stale := s.stale(k.namespace)
		ch <- prometheus.MustNewConstMetric(stalePodsDesc, prometheus.GaugeValue, float64(stale), k.namespace, k.kind, k.name)
		ch <- prometheus.MustNewConstMetric(workloadNotAfterDesc, prometheus.GaugeValue, float64(s.current), k.namespace, k.kind, k.name)
		if running := s.running(stale); running != 0 {
			ch <- prometheus.MustNewConstMetric(runningNotAfterDesc, prometheus.GaugeValue, float64(running), k.namespace, k.kind, k.name)
		}
		if len(s.servingOld) > 0 {
			ch <- prometheus.MustNewConstMetric(servingOldDesc, prometheus.GaugeValue, float64(s.servingOldNow(k.namespace)), k.namespace, k.kind, k.name)
		}
		if s.blocked != "" {
			ch <- prometheus.MustNewConstMetric(restartBlockedDesc, prometheus.GaugeValue, 1, k.namespace, k.kind, k.name, s.blocked)
		}
	}
}

// block marks the workload's due restart as blocked for reason until its next decision.
func (g *workloadGauges) block(k workloadKey, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.state[k]; s != nil {
		s.blocked = reason
	}
}
