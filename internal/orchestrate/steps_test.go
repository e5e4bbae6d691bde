package orchestrate

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// An API-Connect-like rollout: management first, then the portal's two parts together, then the gateway,
// each step healthy before the next; the rollout lists them in another order.
func TestStepsRestartInTheirOrderEachFinishingBeforeTheNextAndInParallelInside(t *testing.T) {
	mgmt, portalWeb, portalDB, gateway := Key{"Deployment", "management"}, Key{"Deployment", "portal-web"}, Key{"StatefulSet", "portal-db"}, Key{"Deployment", "gateway"}
	c := newCluster()
	for k, lbl := range map[Key]string{mgmt: "management", portalWeb: "portal", portalDB: "portal", gateway: "gateway"} {
		c.w[k] = Workload{Exists: true, Replicas: 1, Pods: 1, RestartValue: "hash-" + k.Name, Labels: map[string]string{"subsystem": lbl}}
	}
	r := rollout("", gateway, portalDB, portalWeb, mgmt)
	p := policy(func(p *Policy) {
		p.Spec.Quiesce = nil
		p.Spec.Order, p.Spec.MaxConcurrent = api.OrderParallel, 5
		p.Spec.Steps = []api.RolloutStep{
			{Name: "management", Workloads: []api.WorkloadReference{{Kind: "Deployment", Name: "management"}}},
			{Name: "portal", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"subsystem": "portal"}}},
			// the gateway is in no step: it goes last
		}
	})
	var rounds [][]string // the targets each call started
	clock := now
	for i := 0; i < 50 && !r.Status.Phase.Finished(); i++ {
		res := Next(Input{Now: clock, Rollout: r, Policy: p, Workloads: c.w})
		var started []string
		for _, a := range res.Actions {
			if a.Type == Restart {
				started = append(started, a.Key.Name)
			}
		}
		if len(started) > 0 {
			slices.Sort(started)
			rounds = append(rounds, started)
		}
		c.apply(r, res.Actions)
		r.Status = res.Status
		c.catchUp()
		clock = clock.Add(res.RequeueAfter)
	}
	if r.Status.Phase != api.PhaseSucceeded {
		t.Fatalf("phase %s: %s", r.Status.Phase, r.Status.Message)
	}
	want := [][]string{{"management"}, {"portal-db", "portal-web"}, {"gateway"}}
	if !slices.EqualFunc(rounds, want, slices.Equal[[]string]) {
		t.Errorf("restarted in rounds %v, want %v", rounds, want)
	}
	var steps []string
	for _, ts := range r.Status.Targets {
		steps = append(steps, ts.Name+":"+strconv.Itoa(int(ts.Step)))
	}
	if got := strings.Join(steps, " "); got != "management:1 portal-db:2 portal-web:2 gateway:3" {
		t.Errorf("status targets %q: want step order, the rollout's order kept inside a step", got)
	}
}

func TestAssignSteps(t *testing.T) {
	a, b, c := Key{"Deployment", "a"}, Key{"Deployment", "b"}, Key{"Deployment", "c"}
	targets := func(keys ...Key) []api.TargetStatus {
		var out []api.TargetStatus
		for _, k := range keys {
			out = append(out, api.TargetStatus{Kind: k.Kind, Name: k.Name, State: api.TargetPending})
		}
		return out
	}
	order := func(a, b, c string) map[Key]Workload {
		return map[Key]Workload{{"Deployment", "a"}: {Order: a}, {"Deployment", "b"}: {Order: b}, {"Deployment", "c"}: {Order: c}}
	}
	for name, tc := range map[string]struct {
		policy *Policy
		ws     map[Key]Workload
		want   string
	}{
		"a rollout without a policy has no steps, whatever the annotations": {nil, order("2", "1", "0"), "a:0 b:0 c:0"},
		"the order annotation makes a step per distinct value, lower first": {&Policy{}, order("10", "-1", "10"), "b:1 a:2 c:2"},
		"an absent or unreadable annotation counts as 0":                    {&Policy{}, order("1", "", "x"), "b:1 c:1 a:2"},
		"one value for all is a single group: no steps":                     {&Policy{}, order("5", "5", "5"), "a:0 b:0 c:0"},
		"the policy's steps win over the annotations": {&Policy{Spec: api.RolloutPolicySpec{Steps: []api.RolloutStep{
			{Workloads: []api.WorkloadReference{{Kind: "Deployment", Name: "c"}}}}}}, order("0", "0", "9"), "c:1 a:2 b:2"},
		"a workload named by two steps is in the first": {&Policy{Spec: api.RolloutPolicySpec{Steps: []api.RolloutStep{
			{Workloads: []api.WorkloadReference{{Kind: "Deployment", Name: "b"}}},
			{Workloads: []api.WorkloadReference{{Kind: "Deployment", Name: "b"}, {Kind: "Deployment", Name: "a"}}}}}}, nil, "b:1 a:2 c:3"},
		"a kind must match as well as the name": {&Policy{Spec: api.RolloutPolicySpec{Steps: []api.RolloutStep{
			{Workloads: []api.WorkloadReference{{Kind: "StatefulSet", Name: "a"}}}}}}, nil, "a:0 b:0 c:0"},
	} {
		t.Run(name, func(t *testing.T) {
			ts := targets(a, b, c)
			assignSteps(tc.policy, ts, tc.ws)
			var got []string
			for _, x := range ts {
				got = append(got, x.Name+":"+strconv.Itoa(int(x.Step)))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}
