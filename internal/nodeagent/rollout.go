package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/cporchestrate"
)

// The agent's own defaults; a rollout's settings default as the controller's (cporchestrate.Settings).
const (
	DefaultStateDir       = "/var/lib/certrollout"
	DefaultRolloutPoll    = 2 * time.Second
	healthBeforeRetryFor  = 30 * time.Second
	componentPollInterval = time.Second
)

// RolloutOps are the host actions of a node's rollout that need more than files: seams, so that the
// procedure is tested without etcd or kubeadm and the agent wires the real ones.
type RolloutOps struct {
	// Health checks every API server and etcd member.
	Health func(ctx context.Context) api.ControlPlaneHealth
	// Snapshot saves etcd into dir (a path under the agent's host root), keeping keep snapshots.
	Snapshot func(ctx context.Context, dir string, keep int) (api.EtcdSnapshotStatus, error)
	// Renew renews the kubeadm files due within renewBefore, backing up the old ones into backupDir.
	Renew func(ctx context.Context, renewBefore, validity time.Duration, backupDir string) ([]api.RenewedFile, error)
}

// RolloutOptions turn on the agent's part in ControlPlaneRollouts.
type RolloutOptions struct {
	// Namespace holds the control-plane Lease (the agent's own namespace).
	Namespace string
	// StateDir is the agent's folder on the host (journal, staged manifests, backups): default
	// /var/lib/certrollout.
	StateDir string
	Ops      RolloutOps
	// Poll is how often the agent looks at rollouts while one is unfinished; default 2s.
	Poll time.Duration
	// LeaseDuration of the control-plane Lease; default DefaultLeaseDuration.
	LeaseDuration time.Duration
}

// errStopped says the node's work stopped: the report says why.
var errStopped = errors.New("stopped")

// nodeRun is one node's work on one rollout.
type nodeRun struct {
	a        *Agent
	r        *api.ControlPlaneRollout
	settings api.ControlPlanePolicySpec
	op       *api.NodeOperation
	mover    *Mover
	timeout  time.Duration
}

// rolloutsUnfinished lists the rollouts that are not finished, and the one whose turn is this node's.
func (a *Agent) rolloutsUnfinished(ctx context.Context) (bool, *api.ControlPlaneRollout, error) {
	var list api.ControlPlaneRolloutList
	if err := a.Client.List(ctx, &list); err != nil {
		return false, nil, fmt.Errorf("listing ControlPlaneRollouts: %w", err)
	}
	unfinished := false
	for i := range list.Items {
		r := &list.Items[i]
		if r.Status.Phase.Finished() {
			continue
		}
		unfinished = true
		if r.Status.CurrentNode != a.Node || nodePhase(r, a.Node) != api.NodeInProgress {
			continue
		}
		if op := a.operation(); op != nil && op.RolloutUID == string(r.UID) && (op.Phase == api.NodeSucceeded || op.Phase == api.NodeFailed) {
			continue // done; the controller has not read the report yet
		}
		return true, r, nil
	}
	return unfinished, nil, nil
}

func nodePhase(r *api.ControlPlaneRollout, node string) api.NodeRolloutPhase {
	for _, n := range r.Status.Nodes {
		if n.Name == node {
			return n.Phase
		}
	}
	return ""
}

// Work does this node's part of rollout r, from wherever the journal and the last report left it, and
// returns when the node succeeded or failed (the report says which) or ctx ended. A manifest it moved
// out is back in place when it returns, whatever happened.
func (a *Agent) Work(ctx context.Context, r *api.ControlPlaneRollout) error {
	ro := a.Rollouts
	stateDir := filepath.Join(a.Scan.root(), orDefault(ro.StateDir, DefaultStateDir))
	mover, err := a.loadMover(stateDir)
	if err != nil {
		return err
	}
	did, err := mover.Recover()
	for _, d := range did {
		a.Log.Info("Recovered from an interrupted restart", "node", klog.KRef("", a.Node), "what", d)
	}
	if err != nil {
		return fmt.Errorf("putting the static pod manifests back: %w", err)
	}
	n := &nodeRun{a: a, r: r, settings: settingsOf(r), mover: mover}
	n.timeout = n.settings.HealthTimeout.Duration
	n.op = a.operation()
	if n.op == nil || n.op.RolloutUID != string(r.UID) {
		now := metav1.NewTime(a.now().UTC().Truncate(time.Second))
		n.op = &api.NodeOperation{Rollout: r.Name, RolloutUID: string(r.UID),
			NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress, StartedAt: &now}}
	}
	if mover.Journal.RolloutUID != string(r.UID) {
		mover.Journal = Journal{Rollout: r.Name, RolloutUID: string(r.UID)}
		if err := mover.Journal.Save(mover.JournalPath); err != nil {
			return fmt.Errorf("starting the journal: %w", err)
		}
	}
	a.setOperation(n.op)
	lock := &NodeLock{Client: a.Client, Namespace: ro.Namespace, Holder: a.Node, Duration: ro.LeaseDuration, Now: a.Now}
	if err := n.acquire(ctx, lock); err != nil {
		return err
	}
	renewCtx, stopRenewing := context.WithCancel(ctx)
	go n.keepLease(renewCtx, lock)
	defer func() {
		stopRenewing()
		if did, err := mover.Recover(); err != nil || len(did) > 0 {
			a.Log.Info("Put manifests back before leaving the node's work", "did", did, "err", err)
		}
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			a.Log.Error(err, "Failed to release the control-plane Lease")
		}
	}()
	err = n.steps(ctx)
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// steps runs the node's steps in order, skipping those the report or journal show done.
func (n *nodeRun) steps(ctx context.Context) error {
	for _, step := range []struct {
		name api.NodeRolloutStep
		run  func(context.Context) error
	}{
		{api.StepHealth, n.healthBefore},
		{api.StepSnapshot, n.snapshot},
		{api.StepRenew, n.renew},
		{api.StepRestart, n.restarts},
		{api.StepKubeconfigs, n.kubeconfigs},
		{api.StepHealthAfter, n.healthAfter},
	} {
		if stepIndex(n.op.Step) > stepIndex(step.name) {
			continue
		}
		n.op.Step = step.name
		n.report(ctx)
		if err := step.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return n.fail(ctx, err)
		}
	}
	now := metav1.NewTime(n.a.now().UTC().Truncate(time.Second))
	n.op.Step, n.op.Phase, n.op.CompletedAt = api.StepDone, api.NodeSucceeded, &now
	n.op.Message = fmt.Sprintf("Node %s is done: %s", n.a.Node, n.summary())
	n.report(ctx)
	n.a.Log.Info("Finished the node's part of the control-plane rollout", "rollout", n.r.Name, "node", klog.KRef("", n.a.Node), "message", n.op.Message)
	return nil
}

func stepIndex(s api.NodeRolloutStep) int {
	for i, x := range []api.NodeRolloutStep{api.StepHealth, api.StepSnapshot, api.StepRenew, api.StepRestart, api.StepKubeconfigs, api.StepHealthAfter, api.StepDone} {
		if x == s {
			return i
		}
	}
	return -1
}

// fail records the failure and stops the node's work.
func (n *nodeRun) fail(ctx context.Context, err error) error {
	now := metav1.NewTime(n.a.now().UTC().Truncate(time.Second))
	n.op.Phase, n.op.CompletedAt = api.NodeFailed, &now
	n.op.Message = fmt.Sprintf("Step %s failed on %s: %v", n.op.Step, n.a.Node, err)
	n.report(ctx)
	n.a.Log.Error(err, "The node's part of the control-plane rollout failed", "rollout", n.r.Name, "node", klog.KRef("", n.a.Node), "step", n.op.Step)
	return errStopped
}

func (n *nodeRun) summary() string {
	restarted, skipped := 0, 0
	for _, c := range n.op.Components {
		switch c.State {
		case api.RestartVerified:
			restarted++
		case api.RestartSkipped:
			skipped++
		case api.RestartPending, api.RestartStopping, api.RestartStarting, api.RestartFailed:
		}
	}
	return fmt.Sprintf("%d files renewed, %d components restarted and verified, %d needed nothing", len(n.op.Renewed), restarted, skipped)
}

// report publishes a scan with the operation; errors are logged (the next report repeats it).
func (n *nodeRun) report(ctx context.Context) api.NodeCertificatesStatus {
	n.a.setOperation(n.op)
	st, _, err := n.a.Once(ctx)
	if err != nil {
		n.a.Log.Error(err, "Failed to report the node's progress", "rollout", n.r.Name)
	}
	return st
}

// acquire waits for the control-plane Lease, saying who holds it, while the rollout still gives this node
// its turn.
func (n *nodeRun) acquire(ctx context.Context, lock *NodeLock) error {
	for {
		holder, err := lock.TryAcquire(ctx, n.r.Name)
		if err == nil && holder == "" {
			return nil
		}
		if err != nil {
			n.op.Message = fmt.Sprintf("Could not take the Lease %s: %v", api.ControlPlaneLeaseName, err)
		} else {
			n.op.Message = fmt.Sprintf("Waiting for the Lease %s, held by %s.", api.ControlPlaneLeaseName, holder)
		}
		n.report(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(n.a.rolloutPoll()):
		}
		var r api.ControlPlaneRollout
		if err := n.a.Client.Get(ctx, client.ObjectKeyFromObject(n.r), &r); err == nil &&
			(r.UID != n.r.UID || r.Status.Phase.Finished() || nodePhase(&r, n.a.Node) != api.NodeInProgress) {
			return fmt.Errorf("rollout %s no longer gives %s its turn", n.r.Name, n.a.Node)
		}
	}
}

func (n *nodeRun) keepLease(ctx context.Context, lock *NodeLock) {
	every := lock.duration() / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if holder, err := lock.TryAcquire(ctx, n.r.Name); err != nil || holder != "" {
			n.a.Log.Error(err, "Could not renew the control-plane Lease", "holder", holder)
		}
	}
}

func (a *Agent) rolloutPoll() time.Duration {
	if a.Rollouts != nil && a.Rollouts.Poll > 0 {
		return a.Rollouts.Poll
	}
	return DefaultRolloutPoll
}

func (a *Agent) loadMover(stateDir string) (*Mover, error) {
	if a.mover != nil {
		return a.mover, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("the agent's state folder: %w", err)
	}
	path := filepath.Join(stateDir, "journal.json")
	j, err := LoadJournal(path)
	if err != nil {
		return nil, err
	}
	a.mover = &Mover{JournalPath: path, StagingDir: filepath.Join(stateDir, "staged-manifests"), Journal: j, Now: a.Now}
	return a.mover, nil
}

// settingsOf is the rollout's copy of the policy, with the defaults filled in as the controller fills them.
func settingsOf(r *api.ControlPlaneRollout) api.ControlPlanePolicySpec {
	return cporchestrate.Settings(r.Status.Settings)
}

// mirrorPod finds a component's mirror pod on node, as Started does.
func mirrorPod(pods []corev1.Pod, c Component, node string) *corev1.Pod {
	for i := range pods {
		if c.PodName != "" && pods[i].Name == c.PodName+"-"+node {
			return &pods[i]
		}
	}
	for i := range pods {
		if pods[i].Labels["component"] == c.Name {
			return &pods[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
