package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// Control-plane rollout counters, counted once per transition the controller writes (countControlPlane):
// a status update that fails is not counted, and one that succeeds is the only one that moves a rollout
// or a node from unfinished to finished.
var (
	cpRolloutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_control_plane_rollouts_total",
		Help: "ControlPlaneRollouts that finished, by result (Succeeded or Failed; refusals included).",
	}, []string{"result"})
	cpRefusalsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_control_plane_rollout_refusals_total",
		Help: "ControlPlaneRollouts refused before they touched anything, by reason (UnknownNode, ClusterDegraded, AgentMissing, RenewalNotPossible).",
	}, []string{"reason"})
	cpNodeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certrollout_control_plane_node_duration_seconds",
		Help:    "A control-plane node's time in a rollout, from its agent starting to its report of the end, by result (Succeeded or Failed).",
		Buckets: []float64{30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200},
	}, []string{"result"})
	cpComponentRestartsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certrollout_control_plane_component_restarts_total",
		Help: "Control-plane component restarts the node agents reported at the end of a node, by component and result (success: Verified, failure: Failed).",
	}, []string{"component", "result"})
)

// countControlPlane counts what the status written (now) finished that the one it replaced (before) had
// not: the rollout (and, when it never started, its refusal), and each node with its components.
func countControlPlane(before, now *api.ControlPlaneRolloutStatus) {
	if !before.Phase.Finished() && now.Phase.Finished() {
		cpRolloutsTotal.WithLabelValues(string(now.Phase)).Inc()
		if now.Phase == api.PhaseFailed && now.StartTime == nil {
			if c := apimeta.FindStatusCondition(now.Conditions, api.ConditionFailed); c != nil {
				cpRefusalsTotal.WithLabelValues(c.Reason).Inc()
			}
		}
	}
	was := map[string]api.NodeRolloutPhase{}
	for _, n := range before.Nodes {
		was[n.Name] = n.Phase
	}
	for _, n := range now.Nodes {
		if nodeFinished(was[n.Name]) || !nodeFinished(n.Phase) {
			continue
		}
		if n.StartedAt != nil && n.CompletedAt != nil {
			cpNodeDuration.WithLabelValues(string(n.Phase)).Observe(n.CompletedAt.Sub(n.StartedAt.Time).Seconds())
		}
		for _, c := range n.Components {
			switch c.State {
			case api.RestartVerified:
				cpComponentRestartsTotal.WithLabelValues(c.Name, "success").Inc()
			case api.RestartFailed:
				cpComponentRestartsTotal.WithLabelValues(c.Name, "failure").Inc()
			case api.RestartPending, api.RestartStopping, api.RestartStarting, api.RestartSkipped:
				// Not restarted, or not to an end: nothing to count.
			}
		}
	}
}

func nodeFinished(p api.NodeRolloutPhase) bool {
	return p == api.NodeSucceeded || p == api.NodeFailed
}
