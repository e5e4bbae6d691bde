package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// controlPlaneEnv is restartEnv with two control-plane nodes reported by their (absent) agents. No
// controller runs: the test writes the rollouts' status as the controller would.
type controlPlaneEnv struct {
	*restartEnv
	cp1, cp2 string
}

func newControlPlaneEnv(t *testing.T) *controlPlaneEnv {
	t.Helper()
	e := &controlPlaneEnv{restartEnv: newRestartEnv(t)}
	ctx := context.Background()
	// NodeCertificates and ControlPlaneRollouts are cluster-scoped: names unique per test, and every
	// ControlPlaneRollout deleted after it (one unfinished would refuse the next test's).
	suffix := rand.String(5)
	e.cp1, e.cp2 = "cp-1-"+suffix, "cp-2-"+suffix
	for _, name := range []string{e.cp1, e.cp2} {
		nc := cpAgent(name)
		status := nc.Status
		if err := e.cl.Create(ctx, &nc); err != nil {
			t.Fatal(err)
		}
		nc.Status = status
		if err := e.cl.Status().Update(ctx, &nc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.cl.Delete(context.Background(), &nc) })
	}
	t.Cleanup(func() {
		_ = e.cl.DeleteAllOf(context.Background(), &api.ControlPlaneRollout{})
	})
	return e
}

func (e *controlPlaneEnv) controlPlaneRollouts() []api.ControlPlaneRollout {
	e.t.Helper()
	var list api.ControlPlaneRolloutList
	if err := e.cl.List(context.Background(), &list); err != nil {
		e.t.Fatal(err)
	}
	sortControlPlaneRollouts(list.Items)
	return list.Items
}

// awaitRollout waits for the command to create its ControlPlaneRollout.
func (e *controlPlaneEnv) awaitRollout() api.ControlPlaneRollout {
	e.t.Helper()
	var ro api.ControlPlaneRollout
	clustertest.Eventually(e.t, 30*time.Second, "the ControlPlaneRollout to be created", func(context.Context) (bool, error) {
		ros := e.controlPlaneRollouts()
		if len(ros) == 1 {
			ro = ros[0]
		}
		return len(ros) == 1, nil
	})
	return ro
}

// writeStatus writes the rollout's status as the controller does, then leaves the watch time to see it.
func (e *controlPlaneEnv) writeStatus(name string, mutate func(st *api.ControlPlaneRolloutStatus)) {
	e.t.Helper()
	var ro api.ControlPlaneRollout
	if err := e.cl.Get(context.Background(), client.ObjectKey{Name: name}, &ro); err != nil {
		e.t.Fatal(err)
	}
	mutate(&ro.Status)
	if err := e.cl.Status().Update(context.Background(), &ro); err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
}

// runAsync runs the command in the background; the result arrives on the channel.
func (e *controlPlaneEnv) runAsync(args ...string) <-chan [3]any {
	done := make(chan [3]any, 1)
	go func() {
		out, stderr, err := runContext(context.Background(), e.t, "certrollout", append(args, "--kubeconfig", e.kubeconfig)...)
		done <- [3]any{out, stderr, err}
	}()
	return done
}

func TestControlPlaneRestartWaitFollowsTheRolloutToItsVerdict(t *testing.T) {
	e := newControlPlaneEnv(t)
	started := metav1.Now()

	t.Run("exit 0 when it succeeds, each step told", func(t *testing.T) {
		done := e.runAsync("restart", "--control-plane", "--node", e.cp1, "--wait", "--timeout", "1m")
		ro := e.awaitRollout()
		if ro.Spec.Trigger != api.ControlPlaneTriggerByHand || strings.Join(ro.Spec.Nodes, ",") != e.cp1 || ro.Spec.Emergency != nil ||
			!strings.HasPrefix(ro.Name, controlPlaneRolloutPrefix) {
			t.Fatalf("created %s with spec %+v", ro.Name, ro.Spec)
		}
		e.writeStatus(ro.Name, func(st *api.ControlPlaneRolloutStatus) {
			st.Phase, st.StartTime, st.Progress, st.CurrentNode = api.PhaseRestarting, &started, "0/1 nodes", e.cp1
			st.Nodes = []api.ControlPlaneNodeStatus{{Name: e.cp1, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress, Step: api.StepRestart, StartedAt: &started}}}
			st.Snapshot = &api.EtcdSnapshotStatus{Node: e.cp1, Path: "/var/lib/certrollout/etcd-snapshots/s.db", SHA256: "abc123", Size: 10, TakenAt: started}
		})
		e.writeStatus(ro.Name, func(st *api.ControlPlaneRolloutStatus) {
			n := &st.Nodes[0]
			n.Phase, n.Step, n.CompletedAt = api.NodeSucceeded, api.StepDone, &started
			n.Components = []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartVerified, Reason: "ServesOld"},
				{Name: "etcd", State: api.RestartSkipped, Reason: "SystemdEtcd", Message: "run `systemctl restart etcd.service` on " + e.cp1}}
			st.Phase, st.Progress, st.Message, st.CompletionTime, st.CurrentNode = api.PhaseSucceeded, "1/1 nodes", "every node done", &started, ""
		})
		r := <-done
		out, stderr, err := r[0].(string), r[1].(string), r[2]
		if err != nil {
			t.Fatalf("want exit 0, got %v\n%s%s", err, out, stderr)
		}
		for _, want := range []string{
			"controlplanerollout.certrollout.io/" + ro.Name + " created: nodes " + e.cp1 + " (in this order: " + e.cp1 + ")",
			"etcd snapshot on " + e.cp1 + ": /var/lib/certrollout/etcd-snapshots/s.db (sha256 abc123, 10 bytes)",
			e.cp1 + " kube-apiserver verified (ServesOld)",
			e.cp1 + " etcd skipped (SystemdEtcd): run `systemctl restart etcd.service` on " + e.cp1,
			"Succeeded         1/1 nodes: every node done",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if n := len(timestamped.FindAllString(out, -1)); n < 4 {
			t.Errorf("want timestamped progress lines, got %d:\n%s", n, out)
		}
		if err := e.cl.Delete(context.Background(), &ro); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exit 1 when it fails, naming why", func(t *testing.T) {
		done := e.runAsync("restart", "--control-plane", "--wait")
		ro := e.awaitRollout()
		msg := "node " + e.cp2 + " failed: kube-apiserver did not serve the new certificate within 5m"
		e.writeStatus(ro.Name, func(st *api.ControlPlaneRolloutStatus) {
			st.Phase, st.StartTime, st.CompletionTime, st.Message, st.Progress = api.PhaseFailed, &started, &started, msg, "1/2 nodes"
			st.Nodes = []api.ControlPlaneNodeStatus{{Name: e.cp2, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeFailed, Step: api.StepRestart, Message: "kube-apiserver did not serve the new certificate within 5m",
				Components: []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartFailed, Reason: "ServesOld", Message: "still serves the old certificate"}}}}}
			st.Conditions = []metav1.Condition{{Type: api.ConditionFailed, Status: metav1.ConditionTrue, Reason: api.ReasonNodeFailed, Message: msg, LastTransitionTime: started}}
		})
		r := <-done
		out, err := r[0].(string), r[2].(error)
		var ee *exitError
		if !errors.Is(err, ErrRolloutFailed) || !errors.As(err, &ee) || exitCode(err) != ExitFailed ||
			!strings.Contains(err.Error(), e.cp2+" kube-apiserver: still serves the old certificate") {
			t.Fatalf("want exit 1 naming the component, got %v\n%s", err, out)
		}
		if !strings.Contains(out, "created: every control-plane node (in this order: "+e.cp1+", "+e.cp2+")") ||
			!strings.Contains(out, "Failed            1/2 nodes: NodeFailed: "+msg) {
			t.Errorf("output:\n%s", out)
		}
		if err := e.cl.Delete(context.Background(), &ro); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exit 2 when the timeout passes first; the rollout goes on", func(t *testing.T) {
		_, _, err := e.run("restart", "--control-plane", "--wait", "--timeout", "2s")
		if !errors.Is(err, ErrWaitTimedOut) || exitCode(err) != ExitTimedOut || !strings.Contains(err.Error(), "it goes on in the cluster") {
			t.Fatalf("want exit %d, got %v", ExitTimedOut, err)
		}
		if n := len(e.controlPlaneRollouts()); n != 1 {
			t.Errorf("%d ControlPlaneRollouts, want the one created", n)
		}
	})
}

func TestControlPlaneRestartRefusesEarlyAndSaysWhy(t *testing.T) {
	e := newControlPlaneEnv(t)

	_, _, err := e.run("restart", "--control-plane", "--node", "worker-7")
	if exitCode(err) != ExitFailed || err == nil || !strings.Contains(err.Error(), `node "worker-7" is not a control-plane node a node agent reports on`) ||
		!strings.Contains(err.Error(), e.cp1+", "+e.cp2) {
		t.Fatalf("unknown node: %v", err)
	}
	if n := len(e.controlPlaneRollouts()); n != 0 {
		t.Fatalf("a refused request created %d ControlPlaneRollout(s)", n)
	}

	running := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: "control-plane-running"}, Spec: api.ControlPlaneRolloutSpec{Nodes: []string{e.cp1}}}
	if err := e.cl.Create(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	running.Status.Phase = api.PhaseRestarting
	if err := e.cl.Status().Update(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.run("restart", "--control-plane", "--node", e.cp2)
	if exitCode(err) != ExitFailed || err == nil || !strings.Contains(err.Error(), "ControlPlaneRollout control-plane-running is Restarting") {
		t.Fatalf("another rollout running: %v", err)
	}
	out, _, err := e.run("restart", "--control-plane", "--node", e.cp1)
	if err != nil || !strings.Contains(out, "controlplanerollout.certrollout.io/control-plane-running exists for nodes "+e.cp1+", Manual (Restarting): following it instead of creating another") {
		t.Fatalf("the same request: %v\n%s", err, out)
	}
	if n := len(e.controlPlaneRollouts()); n != 1 {
		t.Errorf("%d ControlPlaneRollouts, want only the running one", n)
	}
}

func TestControlPlaneRestartDryRunsAndEmergency(t *testing.T) {
	e := newControlPlaneEnv(t)

	out, _, err := e.run("restart", "--control-plane", "--node", e.cp2, "--dry-run=server", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var report RestartReport
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("not a RestartReport: %v\n%s", err, out)
	}
	if !report.DryRun || report.DryRunMode != DryRunServer || len(report.ControlPlaneRollouts) != 1 || len(report.Rollouts) != 0 ||
		!strings.HasPrefix(report.ControlPlaneRollouts[0].Name, controlPlaneRolloutPrefix) || report.ControlPlaneRollouts[0].Kind != "ControlPlaneRollout" {
		t.Fatalf("server dry run report: %+v", report)
	}
	out, _, err = e.run("restart", "--control-plane", "--dry-run")
	if err != nil || !strings.Contains(out, "controlplanerollout.certrollout.io/control-plane-<generated> created (dry run): every control-plane node") {
		t.Fatalf("client dry run: %v\n%s", err, out)
	}
	if n := len(e.controlPlaneRollouts()); n != 0 {
		t.Fatalf("dry runs stored %d ControlPlaneRollout(s)", n)
	}

	out, _, err = e.run("restart", "--control-plane", "--now", "--reason", "INC-9: apiserver certificate expired", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	ros := e.controlPlaneRollouts()
	if len(ros) != 1 || ros[0].Spec.Emergency == nil || ros[0].Spec.Emergency.Reason != "INC-9: apiserver certificate expired" || ros[0].Spec.Emergency.RequestedBy == "" {
		t.Fatalf("emergency not recorded with who and why: %+v", ros)
	}
	if report.ControlPlaneRollouts[0].Name != ros[0].Name {
		t.Errorf("the report names %s, the cluster holds %s", report.ControlPlaneRollouts[0].Name, ros[0].Name)
	}
}

func TestControlPlaneStatusListsAndDescribesOnTheCluster(t *testing.T) {
	e := newControlPlaneEnv(t)
	snaps := controlPlaneSnapshots()
	for i, name := range []string{"control-plane-older", "control-plane-newer"} {
		ro := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := e.cl.Create(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
		ro.Status = snaps[len(snaps)-1-i].Status
		if err := e.cl.Status().Update(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // creation timestamps are to the second
	}
	out, _, err := e.run("status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "CONTROL-PLANE ROLLOUT   PHASE       TRIGGER   NODES       PROGRESS    AGE") ||
		!strings.Contains(out, "control-plane-older     Failed      Manual    cp-1,cp-2   1/2 nodes") ||
		!strings.Contains(out, "control-plane-newer     Restoring   Manual    cp-1,cp-2   1/2 nodes") {
		t.Errorf("status does not list the control-plane rollouts:\n%s", out)
	}
	out, _, err = e.run("status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list RolloutStatusList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if cps := list.ControlPlaneRollouts; len(cps) != 2 || cps[0].Name != "control-plane-older" || cps[1].Phase != "Restoring" || cps[1].Kind != "" {
		t.Errorf("the list document's controlPlaneRollouts: %+v", cps)
	}
	out, _, err = e.run("status", "-l", "x=y")
	if err != nil || strings.Contains(out, "CONTROL-PLANE ROLLOUT") {
		t.Errorf("a selector no ControlPlaneRollout matches still lists them: %v\n%s", err, out)
	}
	out, _, err = e.run("status", "--control-plane")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Name:        control-plane-newer\n") || !strings.Contains(out, "cp-1   etcd                      Skipped    SystemdEtcd") {
		t.Errorf("without a name, not the newest described:\n%s", out)
	}
	out, _, err = e.run("status", "--control-plane", "control-plane-older", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc ControlPlaneRolloutStatus
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "ControlPlaneRolloutStatus" || doc.Phase != "Failed" || len(doc.Nodes) != 2 || len(doc.Nodes[0].Components) != 4 || doc.Snapshot == nil {
		t.Errorf("document: %+v", doc)
	}
	_, _, err = e.run("status", "--control-plane", "control-plane-older", "--watch")
	if !errors.Is(err, ErrRolloutFailed) || exitCode(err) != ExitFailed {
		t.Errorf("watching a failed rollout: %v", err)
	}
	_, _, err = e.run("status", "--control-plane", "nope")
	if err == nil || !strings.Contains(err.Error(), `ControlPlaneRollout "nope" not found`) {
		t.Errorf("unknown name: %v", err)
	}
}

func TestControlPlaneRestartWithoutTheCRDSaysToInstallIt(t *testing.T) {
	// As TestRestartWithoutTheCRDsSaysToInstallThem: a REST mapper without the kind answers as a
	// cluster without the CRD (or with CRDs older than control-plane rollouts) does.
	c := clustertest.Cluster(t)
	cl, err := client.New(c.Config, client.Options{Scheme: Scheme(), Mapper: apimeta.NewDefaultRESTMapper(nil)})
	if err != nil {
		t.Fatal(err)
	}
	err = cl.List(context.Background(), &api.ControlPlaneRolloutList{})
	err = explainControlPlane(err, c.Config)
	if !errors.Is(err, ErrCRDsMissing) || !strings.Contains(err.Error(), "the ControlPlaneRollout CRD is not installed on "+c.Config.Host+": install config/crd") ||
		exitCode(err) != ExitFailed {
		t.Fatalf("want the CRD-missing hint, got %v", err)
	}
}
