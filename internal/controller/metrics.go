package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Counters and histograms are updated where the action happens; state gauges by the reconciler, which
// sees each workload whenever it or a certificate it uses changes.
var (
	restartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_total",
		Help: "Workload restarts certrollout started, by kind and result (success or error).",
	}, []string{"kind", "result"})
	blockedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_blocked_total",
		Help: "Restarts that were due but did not happen, by reason (DeploymentPaused, OnDeleteStrategy, StatefulSetPartition, BarePod, RateLimited).",
	}, []string{"reason"})
	renewalToRestart = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certrollout_renewal_to_restart_seconds",
		Help:    "Time from a certificate's data being written to certrollout starting the restart of a workload that uses it.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	})
	stalePods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "certrollout_workload_stale_pods",
		Help: "Pods of a workload that started before the certificates they use were issued.",
	}, []string{"namespace", "kind", "name"})
	certificateNotAfter = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "certrollout_workload_certificate_expiry_timestamp_seconds",
		Help: "When the earliest-expiring certificate a workload's pods run on expires (Unix time).",
	}, []string{"namespace", "kind", "name"})
)

func init() {
	metrics.Registry.MustRegister(restartsTotal, blockedTotal, renewalToRestart, stalePods, certificateNotAfter)
}
