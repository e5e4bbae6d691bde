package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// Snapshot saves etcd into dir, a slash-separated folder under the agent's state folder (opened as
	// stateDir, so nothing is written outside it), keeping keep snapshots.
	Snapshot func(ctx context.Context, stateDir *os.Root, dir string, keep int) (api.EtcdSnapshotStatus, error)
	// Renew renews the kubeadm files due within renewBefore, backing up the old ones into backupDir.
	Renew func(ctx context.Context, renewBefore, validity time.Duration, backupDir string) ([]api.RenewedFile, error)
	// Observe is what the node's components serve and use now: the scan's Gather and Decide, run
	// locally, apart from publishing (a report that cannot be written must not change what is
	// restarted). nil: Agent.Observe.
	Observe func(ctx context.Context) (api.NodeCertificatesStatus, error)
}

// observeTries is how often Observe tries before it gives up on listing the mirror pods.
const observeTries = 3

// Observe gathers and decides the node's status locally, without publishing it, retrying a failed
// listing of the mirror pods: a restart decision rests on the containers' start times.
func (a *Agent) Observe(ctx context.Context) (api.NodeCertificatesStatus, error) {
	var err error
	for try := range observeTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return api.NodeCertificatesStatus{}, ctx.Err()
			case <-time.After(a.rolloutPoll()):
			}
		}
		var in Input
		if in, err = a.gather(ctx, nil, a.prev); err == nil {
			return Decide(in), nil
		}
	}
	return api.NodeCertificatesStatus{}, fmt.Errorf("observing the node's components (%d tries): %w", observeTries, err)
}

// RolloutOptions turn on the agent's part in ControlPlaneRollouts.
type RolloutOptions struct {
	// Namespace holds the control-plane Lease (the agent's own namespace).
	Namespace string
	// StateDir is the agent's folder on the host (journal, staged manifests, backups): default
	// /var/lib/certrollout.
	StateDir string
	Ops      RolloutOps
	// Poll is how often the agent looks at rollouts while this node is current or next in one; default 2s.
	Poll time.Duration
	// LeaseDuration of the control-plane Lease; default DefaultLeaseDuration.
	LeaseDuration time.Duration
	// KubeconfigCopyDirs are the host folders (mounted into the agent) where the policy's kubeconfig
	// copies may be written; a copy elsewhere fails the node.
	KubeconfigCopyDirs []string
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
	lock     *NodeLock
	timeout  time.Duration
}

// rolloutsUnfinished reads the rollouts that are not finished: it says whether this node is current or
// next in one (the agent then looks again every Poll, else every Interval) and returns the one whose
// turn is this node's.
// What this node did is the host journal's to say, not the last scan's: a rollout the journal says this
// node finished is never worked on again (its report is published again instead), and an unreadable
// journal is an error, retried.
func (a *Agent) rolloutsUnfinished(ctx context.Context) (bool, *api.ControlPlaneRollout, error) {
	mover, err := a.loadMover(a.stateDir())
	if err != nil {
		return false, nil, err
	}
	var list api.ControlPlaneRolloutList
	if err := a.Client.List(ctx, &list); err != nil {
		return false, nil, fmt.Errorf("listing ControlPlaneRollouts: %w", err)
	}
	soon := false
	for i := range list.Items {
		r := &list.Items[i]
		if r.Status.Phase.Finished() {
			continue
		}
		soon = soon || currentOrNext(r, a.Node)
		if r.Status.CurrentNode != a.Node || nodePhase(r, a.Node) != api.NodeInProgress {
			continue
		}
		if mover.Journal.FinishedPhase(string(r.UID)) != "" {
			if op := a.operation(); (op == nil || op.RolloutUID != string(r.UID)) && mover.Journal.RolloutUID == string(r.UID) {
				a.setOperation(mover.Journal.Operation()) // the controller has not read the report yet
			}
			continue
		}
		if op := a.operation(); op != nil && op.RolloutUID == string(r.UID) && (op.Phase == api.NodeSucceeded || op.Phase == api.NodeFailed) {
			continue // done; the controller has not read the report yet
		}
		return true, r, nil
	}
	return soon, nil, nil
}

// currentOrNext: node is r's current node, or the next one to get its turn (the first still Pending).
func currentOrNext(r *api.ControlPlaneRollout, node string) bool {
	if r.Status.CurrentNode == node {
		return true
	}
	for _, n := range r.Status.Nodes {
		if n.Phase == "" || n.Phase == api.NodePending {
			return n.Name == node
		}
	}
	return false
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
	mover, err := a.loadMover(a.stateDir())
	if err != nil {
		return err
	}
	if err := a.recoverManifests(mover); err != nil {
		return err
	}
	op, err := a.resumeOperation(ctx, r, mover)
	if err != nil {
		return err
	}
	a.setOperation(op)
	n := &nodeRun{a: a, r: r, settings: settingsOf(r), mover: mover, op: op}
	n.timeout = n.settings.HealthTimeout.Duration
	if op.Phase == api.NodeSucceeded || op.Phase == api.NodeFailed {
		n.report(ctx)
		return nil
	}
	lock := &NodeLock{Client: a.Client, Namespace: ro.Namespace, Holder: a.Node, Duration: ro.LeaseDuration, Now: a.Now}
	n.lock = lock
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

// recoverManifests puts back what the journal says a crash left out.
func (a *Agent) recoverManifests(mover *Mover) error {
	did, err := mover.Recover()
	for _, d := range did {
		a.Log.Info("Recovered from an interrupted restart", "node", klog.KRef("", a.Node), "what", d)
	}
	if err != nil {
		return fmt.Errorf("putting the static pod manifests back: %w", err)
	}
	return nil
}

// resumeOperation is the report to go on from: the journal's record of r (written before every report)
// merged with the last report read from NodeCertificates, or a new operation when neither knows r. A
// NodeCertificates the agent could never read is retried, not taken for "nothing done": the journal
// may be younger than the report (an agent that ran elsewhere before), and starting afresh would redo
// what the report says is done.
func (a *Agent) resumeOperation(ctx context.Context, r *api.ControlPlaneRollout, mover *Mover) (*api.NodeOperation, error) {
	uid := string(r.UID)
	j := &mover.Journal
	reported := a.operation()
	if a.prev == nil && j.RolloutUID != uid {
		var err error
		if reported, _, err = a.readOperation(ctx); err != nil {
			return nil, fmt.Errorf("reading the report of rollout %s in NodeCertificates %s before resuming it (retried next round; nothing was started): %w", r.Name, a.Node, err)
		}
	}
	var op *api.NodeOperation
	switch {
	case j.RolloutUID == uid:
		op = j.Operation()
		if reported != nil && reported.RolloutUID == uid {
			// The report holds what the journal does not keep: health, messages, copies.
			op.Health, op.KubeconfigCopies = reported.Health, reported.KubeconfigCopies
			if op.Step == "" && op.Phase == api.NodeInProgress {
				// A journal written before it kept the step: the report knows it.
				op.Step = reported.Step
			}
			if op.Phase == api.NodeInProgress && stepIndex(reported.Step) == stepIndex(op.Step) {
				op.Components = mergeComponents(op.Components, reported.Components)
			}
		}
	case reported != nil && reported.RolloutUID == uid:
		op = reported.DeepCopy()
		j.Start(r, a.now())
		j.Phase, j.Step, j.Snapshot, j.RenewedFiles = op.Phase, op.Step, op.Snapshot.DeepCopy(), op.Renewed
		j.Renewed = stepIndex(op.Step) > stepIndex(api.StepRenew)
	default:
		j.Start(r, a.now())
		op = j.Operation()
		op.Step = ""
	}
	if err := j.Save(mover.JournalPath); err != nil {
		return nil, fmt.Errorf("writing the journal: %w", err)
	}
	return op, nil
}

// readOperation reads the operation this node last reported, trying a few times; found is false when
// there is no NodeCertificates yet.
func (a *Agent) readOperation(ctx context.Context) (op *api.NodeOperation, found bool, err error) {
	for try := range 3 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, false, ctx.Err()
			case <-time.After(a.rolloutPoll()):
			}
		}
		var obj api.NodeCertificates
		err = a.Client.Get(ctx, client.ObjectKey{Name: a.Node}, &obj)
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		if err == nil {
			return obj.Status.Operation, true, nil
		}
	}
	return nil, false, err
}

// mergeComponents keeps the reported messages and reasons of the components the journal knows nothing
// more of.
func mergeComponents(fromJournal, reported []api.ComponentRestart) []api.ComponentRestart {
	out := append([]api.ComponentRestart(nil), reported...)
	for _, j := range fromJournal {
		found := false
		for i := range out {
			if out[i].Name == j.Name {
				found = true
				if out[i].State != j.State {
					out[i].State = j.State
				}
			}
		}
		if !found {
			out = append(out, j)
		}
	}
	return out
}

func (a *Agent) stateDir() string {
	return filepath.Join(a.Scan.root(), orDefault(a.Rollouts.StateDir, DefaultStateDir))
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
		if err := n.journalStep(step.name); err != nil {
			return n.fail(ctx, err)
		}
		n.report(ctx)
		if err := step.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return n.fail(ctx, err)
		}
	}
	n.op.Step = api.StepDone
	n.finish(api.NodeSucceeded, fmt.Sprintf("Node %s is done: %s", n.a.Node, n.summary()))
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
	msg := fmt.Sprintf("Step %s failed on %s: %v", n.op.Step, n.a.Node, err)
	// A failed node leaves every manifest in place: put back whatever is out before saying Failed.
	if did, rerr := n.mover.Recover(); rerr != nil {
		msg += fmt.Sprintf("; putting the static pod manifests back failed too: %v", rerr)
	} else if len(did) > 0 {
		msg += "; " + strings.Join(did, "; ")
	}
	n.finish(api.NodeFailed, msg)
	n.report(ctx)
	n.a.Log.Error(err, "The node's part of the control-plane rollout failed", "rollout", n.r.Name, "node", klog.KRef("", n.a.Node), "step", n.op.Step)
	return errStopped
}

// journalStep records, journal first, that the node is at step.
func (n *nodeRun) journalStep(step api.NodeRolloutStep) error {
	n.mover.Journal.Step = step
	if err := n.mover.Journal.Save(n.mover.JournalPath); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	n.op.Step = step
	return nil
}

// finish records the node's outcome, journal first: once it is on the host, the node is never redone
// for this rollout. A journal that cannot be written is logged; the report still says the outcome.
func (n *nodeRun) finish(phase api.NodeRolloutPhase, message string) {
	now := n.a.now().UTC().Truncate(time.Second)
	j := &n.mover.Journal
	j.Phase, j.Step, j.CompletedAt, j.Message = phase, n.op.Step, &now, message
	if err := j.Save(n.mover.JournalPath); err != nil {
		n.a.Log.Error(err, "Failed to write the node's outcome in the journal", "rollout", n.r.Name, "phase", phase)
	}
	t := metav1.NewTime(now)
	n.op.Phase, n.op.CompletedAt, n.op.Message = phase, &t, message
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
