package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

// controlPlaneSnapshots are the statuses of a two-node ControlPlaneRollout as the controller writes them:
// workers quiesced, cp-1 done step by step (snapshot, renewal, a restart, skips, a kubeconfig copy), cp-2
// failing its health check, the workers restored, the verdict.
func controlPlaneSnapshots() []api.ControlPlaneRollout {
	ro := api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-x7k2p"}, Spec: api.ControlPlaneRolloutSpec{Trigger: api.ControlPlaneTriggerByHand}}
	var out []api.ControlPlaneRollout
	snap := func(mutate func(st *api.ControlPlaneRolloutStatus)) {
		mutate(&ro.Status)
		out = append(out, *ro.DeepCopy())
	}
	worker := api.ControlPlaneQuiescedWorkload{Namespace: "batch", QuiescedWorkload: api.QuiescedWorkload{Kind: "Deployment", Name: "workers",
		OriginalReplicas: ptr.To[int32](2), State: api.QuiesceDraining, ScaledDownAt: at(time.Second)}}
	snap(func(st *api.ControlPlaneRolloutStatus) {}) // not picked up yet
	snap(func(st *api.ControlPlaneRolloutStatus) {
		st.Phase, st.StartTime, st.Progress = api.PhaseQuiescing, at(time.Second), "0/2 nodes"
		st.Quiesced = []api.ControlPlaneQuiescedWorkload{worker}
		st.Nodes = []api.ControlPlaneNodeStatus{{Name: "cp-1", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}},
			{Name: "cp-2", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}}}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		st.Phase, st.CurrentNode = api.PhaseRestarting, "cp-1"
		st.Quiesced[0].State, st.Quiesced[0].DrainedAt = api.QuiesceDrained, at(5*time.Second)
		st.Nodes[0].NodeRolloutReport = api.NodeRolloutReport{Phase: api.NodeInProgress, Step: api.StepHealth, StartedAt: at(6 * time.Second)}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		n := &st.Nodes[0]
		n.Step = api.StepRenew
		n.Health = &api.ControlPlaneHealth{CheckedAt: *at(7 * time.Second), Healthy: true,
			APIServers:  []api.EndpointHealth{{Name: "cp-1", Healthy: true}, {Name: "cp-2", Healthy: true}},
			EtcdMembers: []api.EndpointHealth{{Name: "cp-1", Healthy: true, Leader: true}, {Name: "cp-2", Healthy: true}}}
		st.Snapshot = &api.EtcdSnapshotStatus{Node: "cp-1", Path: "/var/lib/certrollout/etcd-snapshots/control-plane-x7k2p.db",
			SHA256: "9f2c0d", Size: 4096, Revision: 42, TakenAt: *at(8 * time.Second)}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		n := &st.Nodes[0]
		n.Step = api.StepRestart
		n.Renewed = []api.RenewedFile{{Name: "apiserver", OldNotAfter: at(time.Hour), NewNotAfter: *at(8760 * time.Hour), Backup: "/etc/kubernetes/tmp/certrollout-1"}}
		n.Components = []api.ComponentRestart{
			{Name: "kube-apiserver", State: api.RestartStopping, Reason: "ServesOld", StoppedAt: at(10 * time.Second)},
			{Name: "kube-scheduler", State: api.RestartPending},
			{Name: "kube-controller-manager", State: api.RestartPending},
			{Name: "etcd", State: api.RestartPending},
		}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		n := &st.Nodes[0]
		n.Step = api.StepKubeconfigs
		n.Components[0].State, n.Components[0].VerifiedAt = api.RestartVerified, at(25*time.Second)
		n.Components[1] = api.ComponentRestart{Name: "kube-scheduler", State: api.RestartSkipped, Reason: "Current"}
		n.Components[2] = api.ComponentRestart{Name: "kube-controller-manager", State: api.RestartSkipped, Reason: "NoManifest", Message: "no manifest in /etc/kubernetes/manifests"}
		n.Components[3] = api.ComponentRestart{Name: "etcd", State: api.RestartSkipped, Reason: "SystemdEtcd",
			Message: "etcd runs under systemd: renew its certificates with the tool that owns them, then run `systemctl restart etcd.service` on cp-1"}
		n.KubeconfigCopies = []api.CopiedFile{{Path: "/root/.kube/config", Backup: "/root/.kube/config.certrollout-20261124T010230Z"}}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		st.Progress, st.CurrentNode = "1/2 nodes", "cp-2"
		st.Nodes[0].Phase, st.Nodes[0].Step, st.Nodes[0].CompletedAt = api.NodeSucceeded, api.StepDone, at(40*time.Second)
		st.Nodes[1].NodeRolloutReport = api.NodeRolloutReport{Phase: api.NodeInProgress, Step: api.StepHealth, StartedAt: at(70 * time.Second)}
	})
	msg := "node cp-2 failed: etcd member cp-3 is unhealthy"
	snap(func(st *api.ControlPlaneRolloutStatus) {
		st.Phase, st.Message, st.CurrentNode = api.PhaseRestoring, msg, ""
		n := &st.Nodes[1]
		n.Phase, n.CompletedAt, n.Message = api.NodeFailed, at(75*time.Second), "etcd member cp-3 is unhealthy"
		n.Health = &api.ControlPlaneHealth{CheckedAt: *at(74 * time.Second), Reasons: []string{"etcd member cp-3 is unhealthy"}}
		st.Conditions = []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonNodeFailed, Message: msg, LastTransitionTime: *at(75 * time.Second)}}
	})
	snap(func(st *api.ControlPlaneRolloutStatus) {
		st.Phase, st.CompletionTime = api.PhaseFailed, at(80*time.Second)
		st.Quiesced[0].State, st.Quiesced[0].RestoredAt = api.QuiesceRestored, at(79*time.Second)
	})
	return out
}

func TestControlPlaneProgressLinesTellEachStepOnce(t *testing.T) {
	var out bytes.Buffer
	p := newControlPlanePrinter(&out, fakeClock(t0, time.Second))
	for _, s := range controlPlaneSnapshots() {
		p.observe(&s)
		p.observe(&s) // the same status again (a relist) prints nothing
	}
	golden(t, "controlplane-progress-lines", out.String())
	for _, want := range []string{
		"Restarting        etcd snapshot on cp-1: /var/lib/certrollout/etcd-snapshots/control-plane-x7k2p.db (sha256 9f2c0d, 4096 bytes, revision 42)",
		"cp-1 etcd skipped (SystemdEtcd): etcd runs under systemd: renew its certificates with the tool that owns them, then run `systemctl restart etcd.service` on cp-1",
		"Failed            1/2 nodes: NodeFailed: node cp-2 failed: etcd member cp-3 is unhealthy (took 79s)",
	} {
		if strings.Count(out.String(), want) != 1 {
			t.Errorf("want once %q in:\n%s", want, out.String())
		}
	}
}

func TestControlPlaneProgressSaysWhyARolloutWasRefused(t *testing.T) {
	msg := "node cp-9 is not a control-plane Node (labelled node-role.kubernetes.io/control-plane); nothing was touched"
	ro := api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-abcde"}, Status: api.ControlPlaneRolloutStatus{
		Phase: api.PhaseFailed, Message: msg, Progress: "0/0 nodes",
		Conditions: []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonUnknownNode, Message: msg}}}}
	var out bytes.Buffer
	newControlPlanePrinter(&out, fakeClock(t0, time.Second)).observe(&ro)
	want := "2026-11-24T01:02:04Z  control-plane-abcde  Failed            0/0 nodes: UnknownNode: " + msg + "\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}

func TestControlPlaneProgressSaysWhenNoControllerPicksItUp(t *testing.T) {
	var out bytes.Buffer
	now := t0
	p := newControlPlanePrinter(&out, func() time.Time { return now })
	ro := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-abcde"}}
	p.observe(ro)
	now = now.Add(29 * time.Second)
	p.tick(ro)
	if out.Len() != 0 {
		t.Fatalf("warned before %s: %q", unclaimedAfter, out.String())
	}
	now = now.Add(time.Second)
	p.tick(ro)
	p.tick(ro)
	if got := strings.Count(out.String(), "is `certrollout controller` running cluster-wide"); got != 1 {
		t.Fatalf("want the notice once, got %d times:\n%s", got, out.String())
	}
}

func TestControlPlaneProgressBlockRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	p := &controlPlaneBlockPrinter{blockPrinter: blockPrinter{w: &out, now: fakeClock(t0, 3*time.Second)}}
	for _, s := range controlPlaneSnapshots() {
		p.observe(&s)
	}
	got := out.String()
	frames := strings.Split(got, ansiAutowrapOff)[1:]
	if len(frames) != len(controlPlaneSnapshots()) {
		t.Fatalf("%d frames, want one per observation", len(frames))
	}
	for i := 1; i < len(frames); i++ {
		if !strings.HasPrefix(frames[i], "\x1b[") || !strings.Contains(frames[i], "A\r") {
			t.Errorf("frame %d does not move up to redraw: %q", i, frames[i][:min(len(frames[i]), 8)])
		}
	}
	golden(t, "controlplane-progress-block", visibleEscapes(got))
}

func TestControlPlaneStatusDescribesNodesAndComponents(t *testing.T) {
	snaps := controlPlaneSnapshots()
	ro := snaps[len(snaps)-1]
	ro.CreationTimestamp = metav1.Time{Time: t0}
	var out bytes.Buffer
	if err := newControlPlaneDescription(&ro, t0.Add(2*time.Minute)).render(&out); err != nil {
		t.Fatal(err)
	}
	golden(t, "controlplane-status-describe", out.String())
	var table bytes.Buffer
	if err := printControlPlaneTable(&table, []api.ControlPlaneRollout{ro}, t0.Add(2*time.Minute), false); err != nil {
		t.Fatal(err)
	}
	want := "CONTROL-PLANE ROLLOUT   PHASE    TRIGGER   NODES       PROGRESS    AGE\n" +
		"control-plane-x7k2p     Failed   Manual    cp-1,cp-2   1/2 nodes   2m\n"
	if table.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", table.String(), want)
	}
}

func TestControlPlaneWaitResultDistinguishesSuccessFailureAndTimeout(t *testing.T) {
	snaps := controlPlaneSnapshots()
	failed := snaps[len(snaps)-1]
	cfgErr := func(err error) error { return err }
	var ee *exitError
	err := controlPlaneWaitResult(&failed, nil, 0, cfgErr)
	if !errors.Is(err, ErrRolloutFailed) || !errors.As(err, &ee) || ee.code != ExitFailed || !strings.Contains(err.Error(), "etcd member cp-3 is unhealthy") {
		t.Errorf("failed: %v", err)
	}
	running := snaps[3]
	err = controlPlaneWaitResult(&running, context.DeadlineExceeded, time.Minute, cfgErr)
	if !errors.Is(err, ErrWaitTimedOut) || !errors.As(err, &ee) || ee.code != ExitTimedOut || !strings.Contains(err.Error(), "certrollout status --control-plane control-plane-x7k2p --watch") {
		t.Errorf("timed out: %v", err)
	}
	succeeded := running
	succeeded.Status.Phase = api.PhaseSucceeded
	if err := controlPlaneWaitResult(&succeeded, nil, 0, cfgErr); err != nil {
		t.Errorf("succeeded: %v", err)
	}
}

// cpAgent is the NodeCertificates of a node whose agent reports the static pods of a control plane.
func cpAgent(name string) api.NodeCertificates {
	return api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: api.NodeCertificatesStatus{
		Components: []api.ControlPlaneComponent{{Name: "kube-apiserver", State: api.ComponentCurrent, Manifest: "/etc/kubernetes/manifests/kube-apiserver.yaml"}, {Name: "kubelet", State: api.ComponentCurrent}}}}
}

func TestControlPlaneRestartDecision(t *testing.T) {
	worker := api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: api.NodeCertificatesStatus{
		Components: []api.ControlPlaneComponent{{Name: "kubelet", State: api.ComponentCurrent}}}}
	agents := []api.NodeCertificates{cpAgent("cp-2"), cpAgent("cp-1"), worker}
	running := func(nodes ...string) api.ControlPlaneRollout {
		return api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-old"}, Spec: api.ControlPlaneRolloutSpec{Nodes: nodes},
			Status: api.ControlPlaneRolloutStatus{Phase: api.PhaseRestarting}}
	}
	finished := running()
	finished.Status.Phase = api.PhaseSucceeded
	suspended := &api.ControlPlanePolicy{Spec: api.ControlPlanePolicySpec{Suspend: true, NodeOrder: []string{"cp-2"}}}
	emergency := &api.EmergencySpec{Reason: "INC-1", RequestedBy: "dana"}
	for name, tc := range map[string]struct {
		world     controlPlaneWorld
		nodes     []string
		emergency *api.EmergencySpec
		wantErr   string
		follows   bool
		order     string
		note      string
	}{
		"refuses a node no agent reports as control plane, listing the known ones": {
			world: controlPlaneWorld{agents: agents}, nodes: []string{"worker-1"},
			wantErr: `node "worker-1" is not a control-plane node a node agent reports on; the known ones are cp-1, cp-2`},
		"refuses when no agent reports a control-plane node": {
			world: controlPlaneWorld{agents: []api.NodeCertificates{worker}}, wantErr: "no node agent reports a control-plane node"},
		"refuses while another rollout runs, naming it": {
			world:   controlPlaneWorld{agents: agents, rollouts: []api.ControlPlaneRollout{running("cp-1")}},
			wantErr: "ControlPlaneRollout control-plane-old is Restarting (nodes cp-1, Manual): one control-plane rollout at a time"},
		"follows a running rollout that is the same request": {
			world: controlPlaneWorld{agents: agents, rollouts: []api.ControlPlaneRollout{running("cp-2", "cp-1")}}, nodes: []string{"cp-1", "cp-2"}, follows: true},
		"an emergency is not the same request as an ordinary rollout": {
			world: controlPlaneWorld{agents: agents, rollouts: []api.ControlPlaneRollout{running()}}, emergency: emergency, wantErr: "one control-plane rollout at a time"},
		"a finished rollout does not stand in the way; nodes follow the policy's order": {
			world: controlPlaneWorld{agents: agents, rollouts: []api.ControlPlaneRollout{finished}, policy: &api.ControlPlanePolicy{Spec: api.ControlPlanePolicySpec{NodeOrder: []string{"cp-2"}}}},
			order: "cp-2 cp-1"},
		"says that a suspended policy keeps the rollout waiting": {
			world: controlPlaneWorld{agents: agents, policy: suspended}, order: "cp-2 cp-1", note: "is suspended"},
		"an emergency ignores suspension": {
			world: controlPlaneWorld{agents: agents, policy: suspended}, emergency: emergency, order: "cp-2 cp-1"},
		"checks no node when NodeCertificates cannot be read": {
			world: controlPlaneWorld{agentsUnread: "forbidden"}, nodes: []string{"anything"}, order: "anything"},
	} {
		t.Run(name, func(t *testing.T) {
			want := &api.ControlPlaneRollout{Spec: api.ControlPlaneRolloutSpec{Nodes: tc.nodes, Emergency: tc.emergency}}
			tc.world.now = t0
			d, err := decideControlPlaneRestart(tc.world, want)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (d.existing != nil) != tc.follows {
				t.Errorf("follows an existing rollout: %v, want %v", d.existing != nil, tc.follows)
			}
			if !tc.follows && strings.Join(d.order, " ") != tc.order {
				t.Errorf("order %v, want %s", d.order, tc.order)
			}
			if notes := strings.Join(d.notes, "\n"); (tc.note == "") != (notes == "") || !strings.Contains(notes, tc.note) {
				t.Errorf("notes %q, want %q", notes, tc.note)
			}
		})
	}
}

func TestControlPlaneFlagsAreValidated(t *testing.T) {
	for args, want := range map[string]string{
		"restart --control-plane deploy/web":             "not workloads: drop deploy/web",
		"restart --control-plane --policy p":             "drop --policy",
		"restart --control-plane --secret s":             "drop --secret",
		"restart --node cp-1 deploy/web":                 "use it with --control-plane",
		"restart --control-plane --now":                  `--now needs --reason "..."`,
		"restart --control-plane --timeout 1m":           "--timeout only applies with --wait",
		"restart --control-plane --dry-run --wait":       "--dry-run creates nothing to wait for",
		"restart --control-plane --node=":                "--node must name a node",
		"status --control-plane a b":                     "describes one ControlPlaneRollout",
		"status --control-plane -l x=y":                  "--selector selects CertRollouts",
		"status --control-plane --timeout 1m":            "--timeout only applies with --watch",
		"restart --control-plane --dry-run=maybe":        `--dry-run must be "none", "client" or "server"`,
		"restart --control-plane -o wide --dry-run=none": "--output wide is for tables",
	} {
		_, _, err := run(t, "certrollout", strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", args, err, want)
		}
	}
}

func TestControlPlaneHelpTeachesWhatHappensAndTheRightsNeeded(t *testing.T) {
	out, _, err := run(t, "certrollout", "restart", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--control-plane [--node NODE]...", "takes an etcd snapshot", "kube-apiserver, kube-scheduler, kube-controller-manager, then etcd",
		"--control-plane-rollouts", `the verb "emergency" on controlplanerollouts`, "create controlplanerollouts", "2 when --timeout passed first",
		"certrollout restart --control-plane --wait",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("restart --help lacks %q", want)
		}
	}
	out, _, err = run(t, "certrollout", "status", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "--control-plane [NAME]") || !strings.Contains(out, "SystemdEtcd") {
		t.Errorf("status --help does not teach --control-plane:\n%s", out)
	}
}

func TestRenewedFilesReadAsOneLinePerRenewal(t *testing.T) {
	year := metav1.NewTime(time.Date(2027, 11, 28, 13, 34, 26, 0, time.UTC))
	later := metav1.NewTime(year.Add(time.Hour))
	got := renewedLines([]api.RenewedFile{
		{Name: "admin.conf", NewNotAfter: year, Backup: "/var/lib/certrollout/backups/r/1"},
		{Name: "apiserver", NewNotAfter: year, Backup: "/var/lib/certrollout/backups/r/1"},
		{Name: "etcd-server", NewNotAfter: later, Backup: "/var/lib/certrollout/backups/r/2"},
	})
	want := []string{
		"renewed 2 files (admin.conf, apiserver), valid until 2027-11-28T13:34:26Z, old files kept in /var/lib/certrollout/backups/r/1",
		"renewed etcd-server, valid until 2027-11-28T14:34:26Z, old files kept in /var/lib/certrollout/backups/r/2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
