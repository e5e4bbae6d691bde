package controller

import (
	"context"
	"sync/atomic"
	"time"

	api "github.com/certrollout/certrollout/api/v1alpha1"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var (
	rolloutsDesc = prometheus.NewDesc("certrollout_rollouts",
		"CertRollouts that exist, by namespace, type (restart or cascade) and phase.",
		[]string{"namespace", "type", "phase"}, nil)
	rolloutDeadlineDesc = prometheus.NewDesc("certrollout_rollout_deadline_timestamp_seconds",
		"For a CertRollout still waiting to start under a policy with an expiryDeadline: when the deadline lets it start whatever the windows (Unix time).",
		[]string{"namespace", "name"}, nil)
	cascadeCertificatesDesc = prometheus.NewDesc("certrollout_cascade_certificates",
		"Leaf certificates of unfinished CA cascades, by state.",
		[]string{"namespace", "name", "state"}, nil)
	cpRolloutsDesc = prometheus.NewDesc("certrollout_control_plane_rollouts",
		"ControlPlaneRollouts that exist, by phase (cluster-wide mode only).",
		[]string{"phase"}, nil)
	policyInvalidDesc = prometheus.NewDesc("certrollout_rolloutpolicy_invalid",
		"1 for a RolloutPolicy that is invalid (its Stalled condition is True), with the reason.",
		[]string{"namespace", "name", "reason"}, nil)
)

// objects reports CertRollouts and RolloutPolicies from the manager's cache when Prometheus scrapes:
// they are few (finished rollouts are pruned to the policies' history limits) and already decoded, so
// nothing is kept between scrapes.
var objects = &objectCollector{}

type objectCollector struct {
	reader atomic.Pointer[client.Reader]
	// controlPlane: the manager watches ControlPlaneRollouts (cluster-wide mode); else listing them would
	// start an informer the controller has no rights for.
	controlPlane atomic.Bool
}

// use points the collector at a manager's cache (the one that watches CertRollouts).
func (c *objectCollector) use(r client.Reader) { c.reader.Store(&r) }

func (c *objectCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rolloutsDesc
	ch <- rolloutDeadlineDesc
	ch <- cascadeCertificatesDesc
	ch <- policyInvalidDesc
	ch <- cpRolloutsDesc
}

func (c *objectCollector) Collect(ch chan<- prometheus.Metric) {
	rp := c.reader.Load()
	if rp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rollouts api.CertRolloutList
	if err := (*rp).List(ctx, &rollouts, client.UnsafeDisableDeepCopy); err == nil {
		collectRollouts(ch, rollouts.Items)
	}
	if c.controlPlane.Load() {
		var cps api.ControlPlaneRolloutList
		if err := (*rp).List(ctx, &cps, client.UnsafeDisableDeepCopy); err == nil {
			collectControlPlaneRollouts(ch, cps.Items)
		}
	}
	var policies api.RolloutPolicyList
	if err := (*rp).List(ctx, &policies, client.UnsafeDisableDeepCopy); err == nil {
		for i := range policies.Items {
			p := &policies.Items[i]
			if cond := meta.FindStatusCondition(p.Status.Conditions, api.ConditionStalled); cond != nil && cond.Status == "True" {
				ch <- prometheus.MustNewConstMetric(policyInvalidDesc, prometheus.GaugeValue, 1, p.Namespace, p.Name, cond.Reason)
			}
		}
	}
}

type phaseKey struct{ namespace, typ, phase string }

// collectControlPlaneRollouts counts ControlPlaneRollouts by phase (one not yet seen by the controller
// is Pending).
func collectControlPlaneRollouts(ch chan<- prometheus.Metric, rollouts []api.ControlPlaneRollout) {
	counts := map[api.RolloutPhase]int{}
	for i := range rollouts {
		phase := rollouts[i].Status.Phase
		if phase == "" {
			phase = api.PhasePending
		}
		counts[phase]++
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(cpRolloutsDesc, prometheus.GaugeValue, float64(n), string(phase))
	}
}

func collectRollouts(ch chan<- prometheus.Metric, rollouts []api.CertRollout) {
	counts := map[phaseKey]int{}
	for i := range rollouts {
		ro := &rollouts[i]
		phase := ro.Status.Phase
		if phase == "" {
			phase = api.PhasePending
		}
		counts[phaseKey{ro.Namespace, rolloutType(ro.Spec.Cascade != nil), string(phase)}]++
		waiting := phase == api.PhasePending || phase == api.PhaseWaitingForWindow
		if waiting && ro.Status.ExpiryDeadline != nil {
			ch <- prometheus.MustNewConstMetric(rolloutDeadlineDesc, prometheus.GaugeValue, float64(ro.Status.ExpiryDeadline.Unix()), ro.Namespace, ro.Name)
		}
		if ro.Spec.Cascade != nil && !phase.Finished() {
			leaves := map[api.LeafState]int{}
			for _, l := range ro.Status.Certificates {
				leaves[l.State]++
			}
			for state, n := range leaves {
				ch <- prometheus.MustNewConstMetric(cascadeCertificatesDesc, prometheus.GaugeValue, float64(n), ro.Namespace, ro.Name, string(state))
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(rolloutsDesc, prometheus.GaugeValue, float64(n), k.namespace, k.typ, k.phase)
	}
}
