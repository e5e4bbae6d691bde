package cporchestrate

import (
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

var (
	now     = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	workers = Key{Kind: "StatefulSet", Namespace: "akash", Name: "provider"}
	uid     = "uid-1"
)

func at(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

// world is three Ready control-plane nodes with fresh agents, no Lease, no policy and a Pending rollout.
func world() Input {
	in := Input{
		Now:     now,
		Rollout: &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-x", UID: "uid-1", Generation: 1}},
		Agents:  map[string]*Agent{},
		Workloads: map[Key]Workload{
			workers: {Exists: true, Replicas: 3, Pods: 3},
		},
	}
	for _, n := range []string{"cp-3", "cp-1", "cp-2"} {
		in.Nodes = append(in.Nodes, Node{Name: n, Ready: true})
		in.Agents[n] = &Agent{ObservedAt: now.Add(-time.Minute), Files: []api.NodeCertificateFile{
			{Name: "apiserver", RenewedBy: api.RenewedByKubeadm, NotAfter: metav1.NewTime(now.Add(20 * 24 * time.Hour))},
		}, Rollouts: &api.NodeRolloutAbilities{Enabled: true, CanRenew: true}}
	}
	return in
}

// started is the world with the rollout started (settings copied, nodes listed) in phase.
func started(phase api.RolloutPhase, quiesce bool) func(*Input) {
	return func(in *Input) {
		p := &api.ControlPlanePolicySpec{}
		if quiesce {
			p.Quiesce = []api.ControlPlaneQuiesceTarget{{Kind: workers.Kind, Namespace: workers.Namespace, Name: workers.Name}}
		}
		st := &in.Rollout.Status
		s := Settings(p)
		st.Settings, st.Phase, st.StartTime = &s, phase, at(now.Add(-10*time.Minute))
		for _, n := range []string{"cp-1", "cp-2", "cp-3"} {
			st.Nodes = append(st.Nodes, api.ControlPlaneNodeStatus{Name: n, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}})
		}
		if quiesce {
			st.Quiesced = []api.ControlPlaneQuiescedWorkload{{Namespace: workers.Namespace,
				QuiescedWorkload: api.QuiescedWorkload{Kind: workers.Kind, Name: workers.Name, State: api.QuiescePending}}}
		}
	}
}

// node sets a node's phase in the stored status, completed ago when it ended.
func node(name string, phase api.NodeRolloutPhase, ago time.Duration) func(*Input) {
	return func(in *Input) {
		for i := range in.Rollout.Status.Nodes {
			if n := &in.Rollout.Status.Nodes[i]; n.Name == name {
				n.Phase, n.StartedAt = phase, at(now.Add(-ago-time.Minute))
				if phase == api.NodeSucceeded || phase == api.NodeFailed {
					n.CompletedAt = at(now.Add(-ago))
				}
				if phase == api.NodeInProgress {
					in.Rollout.Status.CurrentNode = name
				}
			}
		}
	}
}

// reports makes the agent of name report phase for rollout uid.
func reports(name string, phase api.NodeRolloutPhase, rolloutUID string) func(*Input) {
	return func(in *Input) {
		in.Agents[name].Operation = &api.NodeOperation{Rollout: "control-plane-x", RolloutUID: rolloutUID,
			NodeRolloutReport: api.NodeRolloutReport{Phase: phase, Step: api.StepRestart, Message: "restarting kube-apiserver",
				Components: []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartVerified}}}}
	}
}

func quiescedAt(state api.QuiesceState, original *int32, by string, scaledAgo time.Duration) func(*Input) {
	return func(in *Input) {
		q := &in.Rollout.Status.Quiesced[0]
		q.State, q.OriginalReplicas = state, original
		if state != api.QuiescePending {
			q.ScaledDownAt = at(now.Add(-scaledAgo))
		}
		w := in.Workloads[workers]
		if by != "" {
			w.QuiescedBy, w.QuiescedReplicas, w.Replicas = by, original, 0
		}
		in.Workloads[workers] = w
	}
}

type want struct {
	phase     api.RolloutPhase
	reason    string // of the Failed condition, when it fails
	message   string // a fragment
	current   string
	actions   []Action
	nodes     map[string]api.NodeRolloutPhase
	noActions bool
	order     string // the nodes' order, comma-separated
	count     *int32 // the quiesced workload's recorded count
}

func check(t *testing.T, in Input, w want) Result {
	t.Helper()
	res := Next(in)
	st := res.Status
	if st.Phase != w.phase {
		t.Errorf("phase %s, want %s (message %q)", st.Phase, w.phase, st.Message)
	}
	if w.reason != "" {
		c := apimeta.FindStatusCondition(st.Conditions, api.ConditionFailed)
		if c == nil || c.Reason != w.reason || c.Status != metav1.ConditionTrue {
			t.Errorf("Failed condition %+v, want reason %s", c, w.reason)
		}
	}
	if !strings.Contains(st.Message, w.message) {
		t.Errorf("message %q, want it to contain %q", st.Message, w.message)
	}
	if st.CurrentNode != w.current {
		t.Errorf("current node %q, want %q", st.CurrentNode, w.current)
	}
	if w.actions != nil || w.noActions {
		if len(res.Actions) != len(w.actions) {
			t.Fatalf("actions %+v, want %+v", res.Actions, w.actions)
		}
		for i := range w.actions {
			if res.Actions[i] != w.actions[i] {
				t.Errorf("action %d %+v, want %+v", i, res.Actions[i], w.actions[i])
			}
		}
	}
	for name, phase := range w.nodes {
		found := false
		for _, n := range st.Nodes {
			if n.Name == name {
				found = true
				if n.Phase != phase {
					t.Errorf("node %s %s, want %s", name, n.Phase, phase)
				}
			}
		}
		if !found {
			t.Errorf("node %s not in the status", name)
		}
	}
	if w.order != "" {
		var names []string
		for _, n := range st.Nodes {
			names = append(names, n.Name)
		}
		if got := strings.Join(names, ","); got != w.order {
			t.Errorf("node order %s, want %s", got, w.order)
		}
	}
	if w.count != nil && (len(st.Quiesced) == 0 || st.Quiesced[0].OriginalReplicas == nil || *st.Quiesced[0].OriginalReplicas != *w.count) {
		t.Errorf("quiesced %+v, want the count %d recorded", st.Quiesced, *w.count)
	}
	if apimeta.FindStatusCondition(st.Conditions, api.ConditionReady) == nil {
		t.Error("no kstatus Ready condition")
	}
	return res
}

func TestNextDecidesEveryTransition(t *testing.T) {
	pending := map[string]api.NodeRolloutPhase{"cp-1": api.NodePending, "cp-2": api.NodePending, "cp-3": api.NodePending}
	for name, tc := range map[string]struct {
		setup []func(*Input)
		want  want
	}{
		"a new rollout without a policy starts at once on every node, by name, and quiesces nothing": {
			want: want{phase: api.PhaseRestarting, message: "restarting", nodes: pending, noActions: true, order: "cp-1,cp-2,cp-3"},
		},
		"a node of spec.nodes that is not a control-plane node fails the rollout as UnknownNode": {
			setup: []func(*Input){func(in *Input) { in.Rollout.Spec.Nodes = []string{"cp-1", "worker-1"} }},
			want:  want{phase: api.PhaseFailed, reason: api.ReasonUnknownNode, message: "worker-1", noActions: true},
		},
		"a NotReady target node refuses the start as ClusterDegraded, naming it, nothing touched": {
			setup: []func(*Input){func(in *Input) { in.Nodes[2].Ready, in.Nodes[2].Message = false, "kubelet stopped posting" }},
			want:  want{phase: api.PhaseFailed, reason: api.ReasonClusterDegraded, message: "cp-2 is not Ready: kubelet stopped posting", noActions: true},
		},
		"a target node without NodeCertificates refuses the start as AgentMissing": {
			setup: []func(*Input){func(in *Input) { delete(in.Agents, "cp-3") }},
			want:  want{phase: api.PhaseFailed, reason: api.ReasonAgentMissing, message: "cp-3 has no NodeCertificates", noActions: true},
		},
		"an agent that has not reported for 16 minutes refuses the start as AgentMissing": {
			setup: []func(*Input){func(in *Input) { in.Agents["cp-1"].ObservedAt = now.Add(-16 * time.Minute) }},
			want:  want{phase: api.PhaseFailed, reason: api.ReasonAgentMissing, message: "agent on cp-1", noActions: true},
		},
		"an agent that does not do rollouts refuses the start as AgentMissing, naming every such node": {
			setup: []func(*Input){func(in *Input) { in.Agents["cp-1"].Rollouts.Enabled = false; in.Agents["cp-2"].Rollouts = nil }},
			want:  want{phase: api.PhaseFailed, reason: api.ReasonAgentMissing, message: "agent on cp-1, cp-2 does not do ControlPlaneRollouts (chart: nodeAgent.controlPlaneRollouts.enabled", noActions: true},
		},
		"with renewal on, an agent that cannot write the PKI refuses the start as RenewalNotPossible, naming the nodes and the chart key": {
			setup: []func(*Input){func(in *Input) {
				in.Agents["cp-3"].Rollouts.CanRenew = false
				in.Agents["cp-2"].Rollouts = &api.NodeRolloutAbilities{Enabled: true, Message: "cannot write /etc/kubernetes/pki: read-only file system"}
			}},
			want: want{phase: api.PhaseFailed, reason: api.ReasonRenewalNotPossible,
				message: "agent on cp-3, cp-2 cannot write the kubeadm PKI (cp-2: cannot write /etc/kubernetes/pki: read-only file system): set the chart key nodeAgent.controlPlaneRollouts.renew", noActions: true},
		},
		"with renewal off, an agent that cannot write the PKI does not stop the start": {
			setup: []func(*Input){func(in *Input) {
				in.Agents["cp-3"].Rollouts.CanRenew = false
				in.Policy = &api.ControlPlanePolicySpec{Renewal: api.ControlPlaneRenewal{Enabled: ptr.To(false)}}
			}},
			want: want{phase: api.PhaseRestarting},
		},
		"a NotReady node that is not a target does not stop a rollout of spec.nodes": {
			setup: []func(*Input){func(in *Input) { in.Rollout.Spec.Nodes = []string{"cp-1"}; in.Nodes[0].Ready = false }},
			want:  want{phase: api.PhaseRestarting, nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodePending}},
		},
		"another rollout in progress keeps it Pending, even an emergency": {
			setup: []func(*Input){func(in *Input) {
				in.Running = []string{"control-plane-a"}
				in.Rollout.Spec.Emergency = &api.EmergencySpec{Reason: "expired"}
			}},
			want: want{phase: api.PhasePending, message: "waiting for ControlPlaneRollout control-plane-a", noActions: true},
		},
		"a suspended policy keeps the rollout Pending": {
			setup: []func(*Input){func(in *Input) { in.Policy = &api.ControlPlanePolicySpec{Suspend: true} }},
			want:  want{phase: api.PhasePending, message: "suspended", noActions: true},
		},
		"a closed window makes it wait for the next, with nextWindow": {
			setup: []func(*Input){closedWindow},
			want:  want{phase: api.PhaseWaitingForWindow, message: "2026-11-29T02:00:00Z", noActions: true},
		},
		"an emergency ignores a closed window and suspension": {
			setup: []func(*Input){closedWindow, func(in *Input) {
				in.Policy.Suspend = true
				in.Rollout.Spec.Emergency = &api.EmergencySpec{Reason: "expired"}
			}},
			want: want{phase: api.PhaseRestarting, nodes: pending},
		},
		"an emergency still refuses a degraded cluster": {
			setup: []func(*Input){func(in *Input) {
				in.Rollout.Spec.Emergency = &api.EmergencySpec{Reason: "expired"}
				in.Nodes[0].Ready = false
			}},
			want: want{phase: api.PhaseFailed, reason: api.ReasonClusterDegraded, message: "cp-3"},
		},
		"a certificate within the expiry deadline starts it in a closed window": {
			setup: []func(*Input){closedWindow, func(in *Input) { in.Policy.ExpiryDeadline = &metav1.Duration{Duration: 21 * 24 * time.Hour} }},
			want:  want{phase: api.PhaseRestarting},
		},
		"with a quiesce list it starts by quiescing, recording the list first": {
			setup: []func(*Input){func(in *Input) {
				in.Policy = &api.ControlPlanePolicySpec{Quiesce: []api.ControlPlaneQuiesceTarget{{Kind: workers.Kind, Namespace: workers.Namespace, Name: workers.Name}}}
			}},
			want: want{phase: api.PhaseQuiescing, noActions: true},
		},
		"quiescing records the replica count in the status before scaling down": {
			setup: []func(*Input){started(api.PhaseQuiescing, true)},
			want:  want{phase: api.PhaseQuiescing, message: "0/1 drained", noActions: true, count: ptr.To[int32](3)},
		},
		"quiescing scales down once the stored status holds the count": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiescePending, ptr.To[int32](3), "", 0)},
			want:  want{phase: api.PhaseQuiescing, actions: []Action{{Type: ScaleDown, Key: workers, Replicas: 3}}},
		},
		"a workload scaled by someone since its count was stored gets the new count stored first": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiescePending, ptr.To[int32](2), "", 0)},
			want:  want{phase: api.PhaseQuiescing, noActions: true, count: ptr.To[int32](3)},
		},
		"a workload this rollout scaled before a crash is not scaled again": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiescePending, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", 0)},
			want:  want{phase: api.PhaseQuiescing, noActions: true},
		},
		"a workload quiesced by someone else is waited for": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiescePending, ptr.To[int32](3), "MaintenanceHold/m", 0)},
			want:  want{phase: api.PhaseQuiescing, message: "0/1 drained", noActions: true},
		},
		"no node starts while the quiesced workload still has pods": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiesceDraining, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", time.Minute),
				func(in *Input) { w := in.Workloads[workers]; w.Pods = 1; in.Workloads[workers] = w }},
			want: want{phase: api.PhaseQuiescing, nodes: pending, noActions: true},
		},
		"once drained it restarts": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiesceDraining, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", time.Minute),
				func(in *Input) { w := in.Workloads[workers]; w.Pods = 0; in.Workloads[workers] = w }},
			want: want{phase: api.PhaseRestarting, nodes: pending},
		},
		"a workload that does not drain in time aborts the rollout before any node, then restores": {
			setup: []func(*Input){started(api.PhaseQuiescing, true), quiescedAt(api.QuiesceDraining, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", 2*time.Hour)},
			want:  want{phase: api.PhaseRestoring, message: "did not drain", nodes: pending},
		},
		"the first node gets its turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false)},
			want: want{phase: api.PhaseRestarting, current: "cp-1",
				nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeInProgress, "cp-2": api.NodePending, "cp-3": api.NodePending}},
		},
		"policy nodeOrder comes first, then by name": {
			setup: []func(*Input){func(in *Input) { in.Policy = &api.ControlPlanePolicySpec{NodeOrder: []string{"cp-3"}} }},
			want:  want{phase: api.PhaseRestarting, order: "cp-3,cp-1,cp-2"},
		},
		"no turn while the Lease is held, unexpired, by another node": {
			setup: []func(*Input){started(api.PhaseRestarting, false), func(in *Input) {
				in.Lease = Lease{Holder: "cp-9", RenewTime: now.Add(-5 * time.Second), Duration: 15 * time.Second}
			}},
			want: want{phase: api.PhaseRestarting, message: "held by node cp-9", nodes: pending},
		},
		"an expired Lease of another node does not stop the turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false), func(in *Input) {
				in.Lease = Lease{Holder: "cp-9", RenewTime: now.Add(-time.Minute), Duration: 15 * time.Second}
			}},
			want: want{phase: api.PhaseRestarting, current: "cp-1"},
		},
		"the Lease held by the node whose turn it is does not stop it": {
			setup: []func(*Input){started(api.PhaseRestarting, false), func(in *Input) {
				in.Lease = Lease{Holder: "cp-1", RenewTime: now, Duration: 15 * time.Second}
			}},
			want: want{phase: api.PhaseRestarting, current: "cp-1"},
		},
		"the agent's report is copied and the node stays in progress": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeInProgress, 0), reports("cp-1", api.NodeInProgress, uid)},
			want:  want{phase: api.PhaseRestarting, current: "cp-1", message: "restarting kube-apiserver", nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeInProgress, "cp-2": api.NodePending}},
		},
		"a report for another rollout (same name, other UID) is ignored": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeInProgress, 0), reports("cp-1", api.NodeSucceeded, "uid-0")},
			want:  want{phase: api.PhaseRestarting, current: "cp-1", message: "waiting for its node agent", nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeInProgress}},
		},
		"a node whose agent succeeded is done and the next waits for the pause": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeInProgress, 0), reports("cp-1", api.NodeSucceeded, uid)},
			want:  want{phase: api.PhaseRestarting, message: "pausing", nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeSucceeded, "cp-2": api.NodePending}},
		},
		"after the pause the next node gets its turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeSucceeded, time.Minute)},
			want:  want{phase: api.PhaseRestarting, current: "cp-2", nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeSucceeded, "cp-2": api.NodeInProgress, "cp-3": api.NodePending}},
		},
		"a node whose agent failed stops the rollout: the next never gets a turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeSucceeded, time.Hour), node("cp-2", api.NodeInProgress, 0), reports("cp-2", api.NodeFailed, uid)},
			want:  want{phase: api.PhaseRestoring, message: "node cp-2 failed", nodes: map[string]api.NodeRolloutPhase{"cp-2": api.NodeFailed, "cp-3": api.NodePending}},
		},
		"a silent agent of the node in progress is waited for, and no other node gets a turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeInProgress, 0), reports("cp-1", api.NodeInProgress, uid),
				func(in *Input) { in.Agents["cp-1"].ObservedAt = now.Add(-time.Hour) }},
			want: want{phase: api.PhaseRestarting, current: "cp-1", message: "has not reported since", nodes: map[string]api.NodeRolloutPhase{"cp-2": api.NodePending}},
		},
		"resumed after a crash with a node in progress, it hands out no second turn": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-2", api.NodeInProgress, 0), node("cp-1", api.NodeSucceeded, time.Hour)},
			want:  want{phase: api.PhaseRestarting, current: "cp-2", nodes: map[string]api.NodeRolloutPhase{"cp-1": api.NodeSucceeded, "cp-2": api.NodeInProgress, "cp-3": api.NodePending}},
		},
		"a NotReady next node waits rather than fails mid-rollout": {
			setup: []func(*Input){started(api.PhaseRestarting, false), node("cp-1", api.NodeSucceeded, time.Hour), func(in *Input) { in.Nodes[2].Ready = false }},
			want:  want{phase: api.PhaseRestarting, message: "not Ready", nodes: map[string]api.NodeRolloutPhase{"cp-2": api.NodePending}},
		},
		"every node done: it restores": {
			setup: []func(*Input){started(api.PhaseRestarting, true), node("cp-1", api.NodeSucceeded, time.Hour), node("cp-2", api.NodeSucceeded, time.Hour), node("cp-3", api.NodeSucceeded, time.Hour)},
			want:  want{phase: api.PhaseRestoring},
		},
		"restoring gives the workload exactly its count and succeeds": {
			setup: []func(*Input){started(api.PhaseRestoring, true), quiescedAt(api.QuiesceDrained, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", time.Hour)},
			want:  want{phase: api.PhaseSucceeded, actions: []Action{{Type: Restore, Key: workers, Replicas: 3}}},
		},
		"restoring after a failure restores and fails with the node's reason": {
			setup: []func(*Input){started(api.PhaseRestoring, true), quiescedAt(api.QuiesceDrained, ptr.To[int32](3), "ControlPlaneRollout/control-plane-x", time.Hour),
				func(in *Input) {
					apimeta.SetStatusCondition(&in.Rollout.Status.Conditions, metav1.Condition{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonNodeFailed, Message: "node cp-2 failed"})
				}},
			want: want{phase: api.PhaseFailed, reason: api.ReasonNodeFailed, message: "quiesced workloads restored", actions: []Action{{Type: Restore, Key: workers, Replicas: 3}}},
		},
		"a workload someone else took over is not restored by this rollout": {
			setup: []func(*Input){started(api.PhaseRestoring, true), quiescedAt(api.QuiesceDrained, ptr.To[int32](3), "MaintenanceHold/m", time.Hour)},
			want:  want{phase: api.PhaseSucceeded, noActions: true},
		},
		"a workload with no count anywhere is released, not guessed": {
			setup: []func(*Input){started(api.PhaseRestoring, true), quiescedAt(api.QuiesceDrained, nil, "ControlPlaneRollout/control-plane-x", time.Hour)},
			want:  want{phase: api.PhaseSucceeded, actions: []Action{{Type: Release, Key: workers}}},
		},
		"a finished rollout does nothing": {
			setup: []func(*Input){started(api.PhaseSucceeded, true)},
			want:  want{phase: api.PhaseSucceeded, noActions: true, nodes: pending},
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := world()
			for _, f := range tc.setup {
				f(&in)
			}
			check(t, in, tc.want)
		})
	}
}

// closedWindow is a policy whose one window opens at 02:00 UTC, closed at noon.
func closedWindow(in *Input) {
	in.Policy = &api.ControlPlanePolicySpec{Windows: []api.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}}
}

func TestAStartedRolloutRecordsTheSettingsWithEveryDefault(t *testing.T) {
	res := Next(world())
	s := res.Status.Settings
	if s == nil {
		t.Fatal("no settings recorded")
	}
	if s.HealthTimeout.Duration != 5*time.Minute || s.PauseBetweenNodes.Duration != 30*time.Second ||
		!*s.Renewal.Enabled || s.Renewal.RenewBefore.Duration != 720*time.Hour ||
		!*s.EtcdSnapshot.Enabled || s.EtcdSnapshot.HostPath != "/var/lib/certrollout/etcd-snapshots" || s.EtcdSnapshot.Keep != 3 ||
		strings.Join(s.ComponentOrder, ",") != "kube-apiserver,kube-scheduler,kube-controller-manager,etcd" {
		t.Errorf("settings %+v", s)
	}
	if res.Status.StartTime == nil {
		t.Error("no start time")
	}
}

func TestNodesAreOrderedByNodeOrderThenName(t *testing.T) {
	got := strings.Join(Order([]string{"cp-c", "cp-a", "cp-b", "cp-d"}, []string{"cp-d", "cp-x", "cp-b"}), ",")
	if got != "cp-d,cp-b,cp-a,cp-c" {
		t.Errorf("order %s", got)
	}
}

func TestAWaitingRolloutRecordsTheNextWindowAndTheExpiryDeadline(t *testing.T) {
	in := world()
	closedWindow(&in)
	in.Policy.ExpiryDeadline = &metav1.Duration{Duration: 7 * 24 * time.Hour}
	st := Next(in).Status
	if st.NextWindow == nil || !st.NextWindow.Time.Equal(time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("nextWindow %v", st.NextWindow)
	}
	if st.ExpiryDeadline == nil || !st.ExpiryDeadline.Time.Equal(now.Add(13*24*time.Hour)) {
		t.Errorf("expiryDeadline %v", st.ExpiryDeadline)
	}
}

func TestASnapshotTheAgentReportsIsCopiedToTheRollout(t *testing.T) {
	in := world()
	started(api.PhaseRestarting, false)(&in)
	node("cp-1", api.NodeInProgress, 0)(&in)
	reports("cp-1", api.NodeInProgress, uid)(&in)
	in.Agents["cp-1"].Operation.Snapshot = &api.EtcdSnapshotStatus{Node: "cp-1", Path: "/var/lib/x.db", SHA256: "ab", Size: 10}
	st := Next(in).Status
	if st.Snapshot == nil || st.Snapshot.Path != "/var/lib/x.db" {
		t.Errorf("snapshot %+v", st.Snapshot)
	}
	if len(st.Nodes[0].Components) != 1 || st.Nodes[0].Components[0].State != api.RestartVerified {
		t.Errorf("components %+v", st.Nodes[0].Components)
	}
}

func TestDueSaysServingOldBeforeExpiring(t *testing.T) {
	nc := &api.NodeCertificates{Status: api.NodeCertificatesStatus{
		Files:      []api.NodeCertificateFile{{Name: "apiserver", RenewedBy: api.RenewedByKubeadm, NotAfter: metav1.NewTime(now.Add(24 * time.Hour))}},
		Components: []api.ControlPlaneComponent{{Name: "kube-apiserver", State: api.ComponentServesOld}},
	}}
	if got := Due(nc, api.DefaultComponentOrder(), 720*time.Hour, now); got != api.ControlPlaneTriggerServesOld {
		t.Errorf("due %q", got)
	}
	if got := Due(nc, []string{"kube-scheduler"}, 720*time.Hour, now); got != api.ControlPlaneTriggerExpiring {
		t.Errorf("due %q: an API server the order leaves out cannot ask for a restart", got)
	}
	nc.Status.Components = []api.ControlPlaneComponent{{Name: "kubelet", State: api.ComponentServesOld}}
	if got := Due(nc, api.DefaultComponentOrder(), 720*time.Hour, now); got != api.ControlPlaneTriggerExpiring {
		t.Errorf("due %q: no rollout restarts the kubelet, so it cannot ask for one", got)
	}
	nc.Status.Components = nil
	if got := Due(nc, api.DefaultComponentOrder(), 720*time.Hour, now); got != api.ControlPlaneTriggerExpiring {
		t.Errorf("due %q", got)
	}
	if got := Due(nc, api.DefaultComponentOrder(), time.Hour, now); got != "" {
		t.Errorf("due %q with a file a day from expiry and renewBefore 1h", got)
	}
	nc.Status.Files[0].RenewedBy = api.RenewedByKubelet
	if got := Due(nc, api.DefaultComponentOrder(), 720*time.Hour, now); got != "" {
		t.Errorf("due %q for a file kubeadm does not renew", got)
	}
}

// A refusal for want of renewal is said in an Event of its own reason, not only in the Failed one, so
// `kubectl get events --field-selector reason=RenewalNotPossible` finds it.
func TestARenewalRefusalIsAnEventOfItsOwnReason(t *testing.T) {
	in := world()
	in.Agents["cp-1"].Rollouts.CanRenew = false
	res := Next(in)
	for _, e := range res.Events {
		if e.Reason == api.ReasonRenewalNotPossible && strings.Contains(e.Message, "cp-1") && strings.Contains(e.Message, "nodeAgent.controlPlaneRollouts.renew") {
			return
		}
	}
	t.Errorf("no Event RenewalNotPossible naming cp-1 and the chart key: %+v", res.Events)
}
