package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/certrollout/certrollout/internal/version"
)

// Counters and histograms are updated where the action happens. The per-workload series (workloads.go),
// the certificate expiry (collector.go), the rollout and policy series (objects.go) and the control-plane
// series (controlplane.go) are collected when Prometheus scrapes; the control-plane rollout counters are
// in controlplane_metrics.go. docs/metrics.md lists every series; a test keeps it and the registry equal.
var (
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "certrollout_build_info",
		Help: "The running build: always 1, with its version, commit and Go version as labels.",
	}, []string{"version", "git_commit", "go_version"})
	leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "certrollout_controller_leader",
		Help: "1 on the replica that holds the leader lease (and acts), 0 on the others.",
	})
	decisionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_decisions_total",
		Help: "Workload decisions, by action (None, Record, Restart, Block, Wait, Delegate) and reason.",
	}, []string{"action", "reason"})
	restartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_total",
		Help: "Workload restarts certrollout started, by kind and result (success or error).",
	}, []string{"kind", "result"})
	blockedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_restarts_blocked_total",
		Help: "Restarts that were due but did not happen, by reason (DeploymentPaused, OnDeleteStrategy, StatefulSetPartition, BarePod, StaleRunningJobs, RestartBudgetExhausted, RateLimited).",
	}, []string{"reason"})
	verificationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_verifications_total",
		Help: "Restarts and reloads verified by probing what the pods serve afterwards, by result (Verified, NotVerified).",
	}, []string{"result"})
	rolloutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_rollouts_total",
		Help: "CertRollouts that finished, by namespace, type (restart or cascade) and result (Succeeded or Failed).",
	}, []string{"namespace", "type", "result"})
	rolloutDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certrollout_rollout_duration_seconds",
		Help:    "A finished CertRollout's time from its start (after any window wait) to its completion, by type and result.",
		Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
	}, []string{"type", "result"})
	renewalToRestart = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certrollout_renewal_to_restart_seconds",
		Help:    "Time from a certificate's data being written to certrollout starting the restart of a workload that uses it.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
	})
	restartToReady = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certrollout_restart_to_ready_seconds",
		Help:    "Time from certrollout restarting a workload to every pod of it having started after the restart and being ready.",
		Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	})
)

// collectors are every certrollout series the controller exports (docs/metrics.md lists them).
var collectors = []prometheus.Collector{buildInfo, leader, decisionsTotal, restartsTotal, blockedTotal, verificationsTotal, rolloutsTotal,
	rolloutDuration, renewalToRestart, restartToReady, workloads, objects, certificates, apiRequests, controlPlane,
	cpRolloutsTotal, cpRefusalsTotal, cpNodeDuration, cpComponentRestartsTotal}

func init() {
	v := version.Get()
	buildInfo.WithLabelValues(v.Version, v.GitCommit, v.GoVersion).Set(1)
	metrics.Registry.MustRegister(collectors...)
}

// rolloutType is the type label of the rollout series.
func rolloutType(cascade bool) string {
	if cascade {
		return "cascade"
	}
	return "restart"
}
