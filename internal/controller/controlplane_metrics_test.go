package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// The control-plane counters count each end once, when the status that records it is written: a
// refused rollout (a refusal by its reason), a node that ends (its time, its components' restarts), a
// finished rollout; writing the same finished status again counts nothing.
func TestControlPlaneMetricsCountEachEndOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	refused := api.ControlPlaneRolloutStatus{Phase: api.PhaseFailed, Conditions: []metav1.Condition{
		{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonRenewalNotPossible}}}
	running := api.ControlPlaneRolloutStatus{Phase: api.PhaseRestarting, StartTime: ts(0), Nodes: []api.ControlPlaneNodeStatus{
		{Name: "cp-1", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress, StartedAt: ts(0)}}}}
	nodeDone := *running.DeepCopy()
	nodeDone.Nodes[0].NodeRolloutReport = api.NodeRolloutReport{Phase: api.NodeSucceeded, StartedAt: ts(0), CompletedAt: ts(5 * time.Minute),
		Components: []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartVerified}, {Name: "etcd", State: api.RestartSkipped}}}
	succeeded := *nodeDone.DeepCopy()
	succeeded.Phase = api.PhaseSucceeded

	refusals0 := testutil.ToFloat64(cpRefusalsTotal.WithLabelValues(api.ReasonRenewalNotPossible))
	failed0 := testutil.ToFloat64(cpRolloutsTotal.WithLabelValues("Failed"))
	ok0 := testutil.ToFloat64(cpRolloutsTotal.WithLabelValues("Succeeded"))
	restarts0 := testutil.ToFloat64(cpComponentRestartsTotal.WithLabelValues("kube-apiserver", "success"))
	skipped0 := testutil.ToFloat64(cpComponentRestartsTotal.WithLabelValues("etcd", "success"))
	nodes0 := nodeSamples(t)

	countControlPlane(&api.ControlPlaneRolloutStatus{}, &refused)
	countControlPlane(&refused, &refused)
	countControlPlane(&api.ControlPlaneRolloutStatus{}, &running)
	countControlPlane(&running, &nodeDone)
	countControlPlane(&nodeDone, &succeeded)
	countControlPlane(&succeeded, &succeeded)

	for name, c := range map[string]struct{ got, want float64 }{
		"refusals RenewalNotPossible":     {testutil.ToFloat64(cpRefusalsTotal.WithLabelValues(api.ReasonRenewalNotPossible)) - refusals0, 1},
		"rollouts Failed":                 {testutil.ToFloat64(cpRolloutsTotal.WithLabelValues("Failed")) - failed0, 1},
		"rollouts Succeeded":              {testutil.ToFloat64(cpRolloutsTotal.WithLabelValues("Succeeded")) - ok0, 1},
		"kube-apiserver restarts success": {testutil.ToFloat64(cpComponentRestartsTotal.WithLabelValues("kube-apiserver", "success")) - restarts0, 1},
		"etcd (skipped) restarts":         {testutil.ToFloat64(cpComponentRestartsTotal.WithLabelValues("etcd", "success")) - skipped0, 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: counted %v, want %v", name, c.got, c.want)
		}
	}
	if got := nodeSamples(t) - nodes0; got != 1 {
		t.Errorf("the Succeeded node duration has %d new samples, want 1", got)
	}
}

// nodeSamples is how many Succeeded node durations were observed.
func nodeSamples(t *testing.T) uint64 {
	t.Helper()
	var m dto.Metric
	if err := cpNodeDuration.WithLabelValues("Succeeded").(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestControlPlaneRolloutsAreCountedByPhaseAtEachScrape(t *testing.T) {
	ch := make(chan prometheus.Metric, 10)
	collectControlPlaneRollouts(ch, []api.ControlPlaneRollout{
		{}, // not yet seen by the controller
		{Status: api.ControlPlaneRolloutStatus{Phase: api.PhaseRestarting}},
		{Status: api.ControlPlaneRolloutStatus{Phase: api.PhaseSucceeded}},
		{Status: api.ControlPlaneRolloutStatus{Phase: api.PhaseSucceeded}},
	})
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		got[pb.GetLabel()[0].GetValue()] = pb.GetGauge().GetValue()
	}
	if want := map[string]float64{"Pending": 1, "Restarting": 1, "Succeeded": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("certrollout_control_plane_rollouts: %v, want %v", got, want)
	}
}
