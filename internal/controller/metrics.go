package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Counters and histograms are updated where the action happens; the per-workload gauges by the
// reconciler, which sees each workload whenever it or a certificate it uses changes.
var (
	restartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_total",
		Help: "Workload restarts certrollout started, by kind and result (success or error).",
	}, []string{"kind", "result"})
	blockedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_blocked_total",
		Help: "Restarts that were due but did not happen, by reason (DeploymentPaused, OnDeleteStrategy, StatefulSetPartition, BarePod, RateLimited).",
	}, []string{"reason"})
	rolloutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_rollouts_total",
		Help: "CertRollouts that finished, by result (Succeeded or Failed).",
	}, []string{"result"})
	renewalToRestart = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certrollout_renewal_to_restart_seconds",
		Help:    "Time from a certificate's data being written to certrollout starting the restart of a workload that uses it.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	})
	stalePodsDesc = prometheus.NewDesc("certrollout_workload_stale_pods",
		"Pods of a workload that started before the certificates they use were issued.",
		[]string{"namespace", "kind", "name"}, nil)
	workloadNotAfterDesc = prometheus.NewDesc("certrollout_workload_certificate_expiry_timestamp_seconds",
		"When the earliest-expiring certificate a workload's pods run on expires (Unix time).",
		[]string{"namespace", "kind", "name"}, nil)
)

// workloads holds the per-workload gauges as plain numbers, turned into samples only when Prometheus
// scrapes: a GaugeVec child costs about a kilobyte, which with thousands of workloads is a large share of
// the controller's memory.
var workloads = &workloadGauges{state: map[workloadKey]workloadState{}}

func init() {
	metrics.Registry.MustRegister(restartsTotal, blockedTotal, rolloutsTotal, renewalToRestart, workloads)
}

type workloadKey struct{ namespace, kind, name string }

type workloadState struct {
	stalePods int
	notAfter  int64
}

type workloadGauges struct {
	mu    sync.Mutex
	state map[workloadKey]workloadState
}

func (g *workloadGauges) set(k workloadKey, s workloadState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state[k] = s
}

func (g *workloadGauges) forget(k workloadKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.state, k)
}

func (g *workloadGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- stalePodsDesc
	ch <- workloadNotAfterDesc
}

func (g *workloadGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	snapshot := make(map[workloadKey]workloadState, len(g.state))
	for k, s := range g.state {
		snapshot[k] = s
	}
	g.mu.Unlock()
	for k, s := range snapshot {
		ch <- prometheus.MustNewConstMetric(stalePodsDesc, prometheus.GaugeValue, float64(s.stalePods), k.namespace, k.kind, k.name)
		ch <- prometheus.MustNewConstMetric(workloadNotAfterDesc, prometheus.GaugeValue, float64(s.notAfter), k.namespace, k.kind, k.name)
	}
}
