package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/nodeagent"
)

// cli runs certrollout as a user would, with the admin's kubeconfig through the load balancer.
type cli struct {
	t          *testing.T
	kubeconfig string
}

func newCLI(t *testing.T, cp *localcluster.ControlPlane) *cli {
	t.Helper()
	agentClient(t, cp) // starts the load balancer
	kc, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		fatalf(t, "%v", err)
	}
	for _, c := range kc.Clusters {
		c.Server = lb.URL()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		fatalf(t, "%v", err)
	}
	return &cli{t: t, kubeconfig: path}
}

// start runs certrollout args in the background; wait gives its output and exit code.
func (c *cli) start(args ...string) (wait func() (string, int)) {
	c.t.Helper()
	cmd := exec.Command(certrolloutBinary(c.t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	var out clustertest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		fatalf(c.t, "%v", err)
	}
	var once sync.Once
	var code int
	done := func() (string, int) {
		once.Do(func() {
			err := cmd.Wait()
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				code = ee.ExitCode()
			case err != nil:
				fatalf(c.t, "%v", err)
			}
		})
		return out.String(), code
	}
	c.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		done()
	})
	return done
}

// statefulSet creates a StatefulSet of replicas pods on the kwok node and waits until they are ready.
func statefulSet(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: name, Selector: &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:   []corev1.Container{{Name: "db", Image: "registry.invalid/db:1"}},
					NodeSelector: map[string]string{"type": "kwok"},
					Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		fatalf(t, "%v", err)
	}
	eventually(t, "StatefulSet "+name+" to be ready", func(ctx context.Context) (bool, error) {
		got, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.ReadyReplicas == replicas, err
	})
}

// quiesceWatch samples the StatefulSet and the rollout together: while any node is in progress the
// StatefulSet must be scaled to 0 with no pod left.
type quiesceWatch struct {
	mu         sync.Mutex
	samples    int // samples taken while a node was in progress
	violations []string
	replicas   []int32 // every distinct spec.replicas seen, in order
}

func watchQuiesce(ctx context.Context, c client.Client, cs kubernetes.Interface, ns, name string, rollout func() *api.ControlPlaneRollout) *quiesceWatch {
	w := &quiesceWatch{}
	go func() {
		for ctx.Err() == nil {
			ro := rollout()
			var cur *api.ControlPlaneRollout
			if ro != nil {
				cur = &api.ControlPlaneRollout{}
				if c.Get(ctx, client.ObjectKeyFromObject(ro), cur) != nil {
					cur = nil
				}
			}
			if sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && (ro == nil || cur != nil) {
				w.observe(sts, cur)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return w
}

func (w *quiesceWatch) observe(sts *appsv1.StatefulSet, ro *api.ControlPlaneRollout) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := *sts.Spec.Replicas; len(w.replicas) == 0 || w.replicas[len(w.replicas)-1] != r {
		w.replicas = append(w.replicas, r)
	}
	if ro == nil {
		return // the rollout not created yet
	}
	for _, n := range ro.Status.Nodes {
		if n.Phase != api.NodeInProgress {
			continue
		}
		w.samples++
		if *sts.Spec.Replicas != 0 || sts.Status.Replicas != 0 {
			w.violations = append(w.violations, fmt.Sprintf("%s in progress with the StatefulSet at %d replicas (%d pods)", n.Name, *sts.Spec.Replicas, sts.Status.Replicas))
		}
	}
}

func (w *quiesceWatch) report() (int, []string, []int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, append([]string(nil), w.violations...), append([]int32(nil), w.replicas...)
}

// newRollout waits for the ControlPlaneRollout created after since, and returns it.
func newRollout(t *testing.T, c client.Client, since time.Time) *api.ControlPlaneRollout {
	t.Helper()
	var found *api.ControlPlaneRollout
	eventually(t, "a ControlPlaneRollout to be created", func(ctx context.Context) (bool, error) {
		var list api.ControlPlaneRolloutList
		if err := c.List(ctx, &list); err != nil {
			return false, err
		}
		for i := range list.Items {
			if !list.Items[i].CreationTimestamp.Time.Before(since.Truncate(time.Second)) {
				found = &list.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// The runbook, done by certrollout: the three nodes' kubeadm PKI 20 days from expiry, one `certrollout
// restart --control-plane --wait` quiesces a StatefulSet, snapshots etcd, then node by node (1, 2, 3)
// renews the certificates, restarts in order the components that serve or use old ones, verifies each,
// refreshes the operator's kubeconfig, and restores the StatefulSet exactly. A client polling /readyz
// through the load balancer sees no outage as long as one API server's restart. The node 2 agent and the
// controller are SIGKILLed while a node 2 manifest is out; the rollout still finishes with every
// manifest in place and no component restarted twice.
//
// Long: one end-to-end story, its checks in the order a reader follows the rollout.
func TestRestartControlPlaneWaitRollsEveryNodeInOrderThroughCrashesWhileTheAPIStaysUp(t *testing.T) {
	repeatFailuresLast(t)
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	_, cs, _ := admin(t, cp)
	c := agentClient(t, cp)
	fl := installFleet(t, ctx, cp)
	user := newCLI(t, cp)

	ns := prepare(t, ctx, cp, cs, "cp-e2e-")
	statefulSet(t, ctx, cs, ns, "db", 2)
	for _, n := range cp.Nodes {
		kube := filepath.Join(n.Root, "root", ".kube")
		if err := os.MkdirAll(kube, 0o700); err != nil {
			fatalf(t, "%v", err)
		}
		if err := os.WriteFile(filepath.Join(kube, "config"), []byte("old copy on "+n.Name+"\n"), 0o600); err != nil {
			fatalf(t, "%v", err)
		}
	}
	policy := &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: api.ControlPlanePolicySpec{
		Trigger:           api.ControlPlaneTriggerManual,
		HealthTimeout:     metav1.Duration{Duration: 4 * time.Minute},
		PauseBetweenNodes: &metav1.Duration{Duration: 2 * time.Second},
		Quiesce:           []api.ControlPlaneQuiesceTarget{{Kind: "StatefulSet", Namespace: ns, Name: "db"}},
		KubeconfigCopies:  []api.KubeconfigCopy{{From: "admin.conf", To: "/root/.kube/config"}},
	}}
	if err := c.Create(ctx, policy); err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), policy) })

	for _, n := range cp.Nodes {
		agePKI(t, ctx, cp, n)
	}
	for _, n := range cp.Nodes {
		eventually(t, "the agent on "+n.Name+" to see its files within the renewal threshold and components on old certificates", func(ctx context.Context) (bool, error) {
			nc := get(t, c, n.Name)
			return nc.Status.ComponentsServingOld >= 1 && nc.Status.ObservedAt != nil, nil
		})
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	avail := pollAvailability(watchCtx, lbClient(t, cp), lb.URL()+"/readyz", readyzOK)
	components := watchComponents(watchCtx, cp)
	var mu sync.Mutex
	var rollout *api.ControlPlaneRollout
	current := func() *api.ControlPlaneRollout { mu.Lock(); defer mu.Unlock(); return rollout }
	quiesce := watchQuiesce(watchCtx, c, cs, ns, "db", current)

	started := time.Now()
	wait := user.start("restart", "--control-plane", "--wait", "--timeout=25m")
	ro := newRollout(t, c, started)
	mu.Lock()
	rollout = ro
	mu.Unlock()

	// Node 2, a manifest out: its agent and the controller crash.
	second := cp.Nodes[1].Name
	eventuallyWithin(t, 15*time.Minute, "a manifest of "+second+" to be out", func(ctx context.Context) (bool, error) {
		return componentMoving(operationOf(ctx, c, second, ro)), nil
	})
	fl.agents[second].crash(t)
	fl.controller.crash(t)
	waitReadyz(t, fl.probes)

	out, code := wait()
	stopWatching()
	if code != 0 {
		fatalf(t, "certrollout restart --control-plane --wait exited %d:\n%s", code, out)
	}
	t.Logf("certrollout restart --control-plane --wait:\n%s", out)
	if err := c.Get(ctx, client.ObjectKeyFromObject(ro), ro); err != nil {
		fatalf(t, "%v", err)
	}
	if ro.Status.Phase != api.PhaseSucceeded {
		fatalf(t, "the rollout ended %s: %s", ro.Status.Phase, ro.Status.Message)
	}
	// The last sample: the restore is written before the rollout says Succeeded.
	if sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{}); err == nil {
		quiesce.observe(sts, ro)
	} else {
		fatalf(t, "%v", err)
	}

	// In order, each node all the way.
	var order []string
	for _, n := range ro.Status.Nodes {
		order = append(order, n.Name)
		if n.Phase != api.NodeSucceeded || n.Step != api.StepDone {
			errorf(t, "%s ended %s at %s: %s", n.Name, n.Phase, n.Step, n.Message)
		}
	}
	if want := []string{cp.Nodes[0].Name, cp.Nodes[1].Name, cp.Nodes[2].Name}; fmt.Sprint(order) != fmt.Sprint(want) {
		errorf(t, "nodes in the order %v, want %v", order, want)
	}
	for i := 1; i < len(ro.Status.Nodes); i++ {
		prev, next := ro.Status.Nodes[i-1], ro.Status.Nodes[i]
		if prev.CompletedAt == nil || next.StartedAt == nil || next.StartedAt.Before(prev.CompletedAt) {
			errorf(t, "%s started at %v, before %s completed at %v", next.Name, next.StartedAt, prev.Name, prev.CompletedAt)
		}
	}

	// The snapshot, before the first node's changes, as reported.
	snap := ro.Status.Snapshot
	if snap == nil || snap.Node != cp.Nodes[0].Name {
		fatalf(t, "the snapshot: %+v; want one taken on %s", snap, cp.Nodes[0].Name)
	}
	data, err := os.ReadFile(filepath.Join(cp.Nodes[0].Root, snap.Path))
	if err != nil {
		fatalf(t, "%v", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != snap.SHA256 {
		errorf(t, "the snapshot file's SHA-256 differs from the rollout's record %s", snap.SHA256)
	}

	// Per node: renewed as kubeadm would, restarted exactly what served or used old certificates, once each.
	for i, n := range cp.Nodes {
		st := ro.Status.Nodes[i]
		if len(st.Renewed) < 10 {
			errorf(t, "%s renewed %d files; want every leaf and kubeconfig kubeadm renews", n.Name, len(st.Renewed))
		}
		if out, err := cp.Kubeadm(ctx, n.Name, "certs", "check-expiration", "--config", n.KubeadmConfig); err != nil || !strings.Contains(string(out), "364d") {
			errorf(t, "kubeadm certs check-expiration on %s: %v\n%s", n.Name, err, out)
		}
		var names []string
		for _, comp := range st.Components {
			names = append(names, comp.Name)
			want := 0
			if comp.State == api.RestartVerified {
				want = 1
			} else if comp.State != api.RestartSkipped {
				errorf(t, "%s on %s ended %s: %s", comp.Name, n.Name, comp.State, comp.Message)
			}
			// Restarted once: one process started from its manifest put back (a move the kubelet never saw,
			// the agent killed right after it, is made again), none for a component left alone.
			moves, processes, started := components.restarts(t, n.Name, comp.Name)
			if started != want || (want == 0) != (moves == 0) {
				errorf(t, "%s on %s (%s): the kubelet started %d processes from its manifest (%d processes in all), its manifest left %d times; want %d",
					comp.Name, n.Name, comp.State, started, processes, moves, want)
			}
		}
		if fmt.Sprint(names) != "[kube-apiserver kube-scheduler kube-controller-manager etcd]" {
			errorf(t, "%s: components in the order %v, want the runbook's", n.Name, names)
		}
		if st.Components[0].State != api.RestartVerified {
			errorf(t, "%s: the API server was not restarted onto its renewed certificates: %+v", n.Name, st.Components[0])
		}
		adminConf, _ := os.ReadFile(filepath.Join(n.Root, "etc", "kubernetes", "admin.conf"))
		if got, _ := os.ReadFile(filepath.Join(n.Root, "root", ".kube", "config")); !bytes.Equal(got, adminConf) {
			errorf(t, "%s: /root/.kube/config is not the renewed admin.conf", n.Name)
		}
		nc := get(t, c, n.Name)
		if !allCurrent(nc) {
			errorf(t, "%s: after the rollout not every component is Current: %+v", n.Name, nc.Status.Components)
		}
	}
	manifestsInPlace(t, cp)
	if holder, err := nodeagent.HeldBy(ctx, c, agentNamespace, time.Now()); err != nil || holder != "" {
		errorf(t, "the Lease is held by %q (%v) after the rollout", holder, err)
	}

	// The StatefulSet: stopped before the first node, restored exactly after the last.
	samples, violations, replicas := quiesce.report()
	if samples == 0 || len(violations) > 0 {
		errorf(t, "%d samples with a node in progress; quiesce violations: %v", samples, violations)
	}
	if fmt.Sprint(replicas) != "[2 0 2]" {
		errorf(t, "the StatefulSet's replicas went %v; want [2 0 2]", replicas)
	}
	eventually(t, "the StatefulSet to be ready again", func(ctx context.Context) (bool, error) {
		sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && sts.Status.ReadyReplicas == 2, err
	})

	// The API stayed up: no outage as long as one API server's restart.
	longest, polls, failed := avail.longest()
	shortest, restarts := components.shortestRestart()
	t.Logf("/readyz through the load balancer: %d polls, %d failed, longest outage %s; %d API server restarts seen, the shortest %s",
		polls, failed, longest, restarts, shortest)
	if restarts < len(cp.Nodes) {
		errorf(t, "the load balancer saw %d API server restarts; want one per node at least", restarts)
	}
	if polls < 100 || longest >= shortest {
		errorf(t, "the API was unavailable for %s (%d of %d polls failed), as long as an API server's restart (%s)", longest, failed, polls, shortest)
	}
	for _, n := range cp.Nodes {
		if !strings.Contains(out, n.Name) {
			errorf(t, "the --wait output never names %s", n.Name)
		}
	}
}

// The automatic trigger: with trigger Automatic and a window that opens in the next minutes, node 3's
// files coming within renewBefore make the controller create a rollout by itself, which waits for the
// window, then renews and restarts on node 3 only what needs it; nodes 1 and 2, already current, pass
// their health checks and keep every process. No second rollout follows the first.
func TestTheAutomaticTriggerRollsTheNodeThatNeedsItInsideTheWindow(t *testing.T) {
	repeatFailuresLast(t)
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := agentClient(t, cp)
	installFleet(t, ctx, cp)
	for _, n := range cp.Nodes[:2] {
		renewNow(t, ctx, cp, n)
	}
	// The next minute at least 40 seconds away: the rollout is created and seen waiting before it opens.
	open := time.Now().UTC().Add(40 * time.Second).Truncate(time.Minute).Add(time.Minute)
	policy := &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: api.ControlPlanePolicySpec{
		Trigger:       api.ControlPlaneTriggerAutomatic,
		Windows:       []api.MaintenanceWindow{{Schedule: fmt.Sprintf("%d %d * * *", open.Minute(), open.Hour()), Duration: metav1.Duration{Duration: time.Hour}}},
		HealthTimeout: metav1.Duration{Duration: 4 * time.Minute},
	}}
	if err := c.Create(ctx, policy); err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), policy) })
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	components := watchComponents(watchCtx, cp)
	third := cp.Nodes[2]
	created := time.Now()
	agePKI(t, ctx, cp, third)

	ro := newRollout(t, c, created)
	if ro.Spec.Trigger != api.ControlPlaneTriggerExpiring && ro.Spec.Trigger != api.ControlPlaneTriggerServesOld {
		errorf(t, "the rollout's trigger is %q, want Expiring or ServingOld", ro.Spec.Trigger)
	}
	if time.Now().Before(open.Add(-10 * time.Second)) {
		eventually(t, "the rollout to wait for the window", func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, client.ObjectKeyFromObject(ro), ro)
			return err == nil && ro.Status.Phase == api.PhaseWaitingForWindow, err
		})
		if ro.Status.NextWindow == nil || !ro.Status.NextWindow.Time.Equal(open) {
			errorf(t, "the rollout waits for %v, want the window at %s", ro.Status.NextWindow, open)
		}
	}
	eventuallyWithin(t, 15*time.Minute, "the automatic rollout to end", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(ro), ro)
		return err == nil && ro.Status.Phase.Finished(), err
	})
	if ro.Status.Phase != api.PhaseSucceeded {
		fatalf(t, "the automatic rollout ended %s: %s (%s)", ro.Status.Phase, ro.Status.Message, joinNames(ro.Status.Nodes))
	}
	if ro.Status.StartTime == nil || ro.Status.StartTime.Time.Before(open) {
		errorf(t, "the rollout started at %v, before the window opened at %s", ro.Status.StartTime, open)
	}
	stopWatching()
	for _, n := range cp.Nodes {
		for _, comp := range localcluster.ControlPlaneComponents {
			moves, _, started := components.restarts(t, n.Name, comp)
			want := 0
			if n.Name == third.Name && comp != "etcd" {
				want = 1 // its API server, scheduler and controller-manager ran on the aged certificates
			}
			if started != want || moves != want {
				errorf(t, "%s on %s: its manifest left %d times and the kubelet started it %d times from it, want %d", comp, n.Name, moves, started, want)
			}
		}
	}
	if out, err := cp.Kubeadm(ctx, third.Name, "certs", "check-expiration", "--config", third.KubeadmConfig); err != nil || !strings.Contains(string(out), "364d") {
		errorf(t, "kubeadm certs check-expiration on %s: %v\n%s", third.Name, err, out)
	}
	manifestsInPlace(t, cp)
	// The rollout's own renewal is not a reason for another one: two agent scans later there is still one.
	time.Sleep(6 * time.Second)
	var list api.ControlPlaneRolloutList
	if err := c.List(ctx, &list); err != nil {
		fatalf(t, "%v", err)
	}
	var since []string
	for _, r := range list.Items {
		if !r.CreationTimestamp.Time.Before(created.Truncate(time.Second)) {
			since = append(since, r.Name)
		}
	}
	if len(since) != 1 {
		errorf(t, "rollouts created since the PKI aged: %v; want exactly one", since)
	}
}

// renewNow brings node's PKI to the validity the cluster's kubeadm-config gives (a year), as a finished
// rollout leaves it, and restarts what then runs on old certificates, so that the node needs nothing.
func renewNow(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane, n localcluster.ControlPlaneNode) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	data, err := os.ReadFile(n.KubeadmConfig)
	if err != nil {
		fatalf(t, "%v", err)
	}
	var kept []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "certificateValidityPeriod:") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(cfg, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		fatalf(t, "%v", err)
	}
	if out, err := cp.Kubeadm(ctx, n.Name, "certs", "renew", "all", "--config", cfg); err != nil {
		fatalf(t, "kubeadm certs renew all on %s: %v\n%s", n.Name, err, out)
	}
	_, cs, _ := admin(t, cp)
	for _, comp := range localcluster.ControlPlaneComponents {
		moveManifest(t, cp, cs, n, comp)
	}
	c := agentClient(t, cp)
	eventually(t, "every component on "+n.Name+" to be current", func(ctx context.Context) (bool, error) {
		return allCurrent(get(t, c, n.Name)), nil
	})
}

// A degraded etcd member (node 3's stopped) makes `certrollout restart --control-plane --wait` fail before
// anything changes, with the member named; every process keeps running.
func TestADegradedEtcdMemberMakesTheRolloutRefuseWithTheReason(t *testing.T) {
	repeatFailuresLast(t)
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := agentClient(t, cp)
	installFleet(t, ctx, cp)
	user := newCLI(t, cp)
	policy := &api.ControlPlanePolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: api.ControlPlanePolicySpec{
		Trigger: api.ControlPlaneTriggerManual, HealthTimeout: metav1.Duration{Duration: time.Minute}}}
	if err := c.Create(ctx, policy); err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), policy) })
	down := cp.Nodes[2]
	stopEtcd(t, cp, down)
	before := map[string]map[string]int{}
	for _, n := range cp.Nodes[:2] {
		before[n.Name] = pids(t, cp, n.Name)
	}
	out, code := user.start("restart", "--control-plane", "--wait", "--timeout=8m")()
	if code != 1 {
		fatalf(t, "exit code %d, want 1 (the rollout failed):\n%s", code, out)
	}
	t.Logf("certrollout restart --control-plane --wait (exit %d):\n%s", code, out)
	var list api.ControlPlaneRolloutList
	if err := c.List(ctx, &list); err != nil {
		fatalf(t, "%v", err)
	}
	var ro *api.ControlPlaneRollout
	for i := range list.Items {
		if ro == nil || ro.CreationTimestamp.Before(&list.Items[i].CreationTimestamp) {
			ro = &list.Items[i]
		}
	}
	if ro == nil || ro.Status.Phase != api.PhaseFailed || !strings.Contains(ro.Status.Message, down.Name) {
		fatalf(t, "the rollout: %+v; want Failed naming %s", ro, down.Name)
	}
	if !strings.Contains(out, down.Name) {
		errorf(t, "the output never names %s:\n%s", down.Name, out)
	}
	for _, n := range ro.Status.Nodes {
		if len(n.Renewed) != 0 || len(n.Components) != 0 || n.Phase == api.NodeSucceeded {
			errorf(t, "%s did something on a degraded cluster: %+v", n.Name, n.NodeRolloutReport)
		}
	}
	if ro.Status.Snapshot != nil {
		errorf(t, "a snapshot was taken on a degraded cluster: %+v", ro.Status.Snapshot)
	}
	for name, pidsBefore := range before {
		if after := pids(t, cp, name); fmt.Sprint(after) != fmt.Sprint(pidsBefore) {
			errorf(t, "%s: processes changed: %v → %v", name, pidsBefore, after)
		}
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ro) })
}

// stopEtcd stops node's etcd member (its manifest moved aside) until the test ends.
func stopEtcd(t *testing.T, cp *localcluster.ControlPlane, n localcluster.ControlPlaneNode) {
	t.Helper()
	aside := filepath.Join(n.Root, "etcd.yaml.aside")
	if err := os.Rename(n.ManifestPath("etcd"), aside); err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() {
		_ = os.Rename(aside, n.ManifestPath("etcd"))
		eventually(t, "etcd on "+n.Name+" to be back", func(ctx context.Context) (bool, error) {
			m, err := cp.EtcdMembers(ctx, n.Name)
			return err == nil && len(m) == 3, nil
		})
	})
	eventually(t, "etcd on "+n.Name+" to stop", func(context.Context) (bool, error) {
		_, err := cp.ComponentPID(n.Name, "etcd")
		return err != nil, nil
	})
	// Its API server has lost its etcd: the load balancer's health check takes it out of rotation, and
	// the other members agree on a leader again (writes through the load balancer succeed).
	c := agentClient(t, cp)
	eventually(t, "the load balancer to stop sending to "+n.Name+"'s API server and writes to succeed", func(ctx context.Context) (bool, error) {
		for i, m := range cp.Nodes {
			if m.Name == n.Name && lb.Ready()[i] {
				return false, nil
			}
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "write-probe-", Namespace: metav1.NamespaceDefault}}
		if err := c.Create(ctx, cm); err != nil {
			return false, err
		}
		return true, c.Delete(ctx, cm)
	})
}
