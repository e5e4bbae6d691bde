package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/clustertest"
)

// fakeAgents play the node agents of named fake control-plane nodes, through the API only, as the real
// agent does: they keep their NodeCertificates fresh and, when a rollout hands their node its turn, take
// the Lease, report InProgress, then Succeeded (a component Verified, served certificates now Current)
// or Failed, and release the Lease. They record what the test asserts: each node's turns, the order,
// and whether two nodes were ever in progress at once.
type fakeAgents struct {
	t       *testing.T
	cl      client.Client
	leaseNS string
	nodes   []string

	mu sync.Mutex
	// fail makes a node's agent report Failed; hold keeps a node in progress until the channel closes.
	fail map[string]bool
	hold map[string]chan struct{}
	// servesOld makes a node report kube-apiserver ServesOld until a rollout is done on it.
	servesOld map[string]bool
	// readOnly makes a node's agent report that it cannot write the kubeadm PKI.
	readOnly map[string]bool
	// onStart runs when a node starts its work.
	onStart func(node string)

	turns     map[string]int
	order     []string
	active    map[string]time.Time // node → when it started, while in progress
	overlaps  []string
	heartbeat map[string]time.Time
	stop      func()
}

const fakeLeaseSeconds = 15

// newFakeAgents creates the Nodes (Ready, labelled and tainted as kubeadm does) and their
// NodeCertificates, and starts the agents; everything is deleted when the test ends.
func newFakeAgents(t *testing.T, cl client.Client, leaseNS string, nodes ...string) *fakeAgents {
	t.Helper()
	a := &fakeAgents{t: t, cl: cl, leaseNS: leaseNS, nodes: nodes, fail: map[string]bool{}, hold: map[string]chan struct{}{},
		servesOld: map[string]bool{}, readOnly: map[string]bool{}, turns: map[string]int{}, active: map[string]time.Time{}, heartbeat: map[string]time.Time{}}
	ctx := context.Background()
	for _, n := range nodes {
		a.createNode(ctx, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = cl.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
			_ = cl.Delete(context.Background(), &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	return a
}

func (a *fakeAgents) createNode(ctx context.Context, name string) {
	a.t.Helper()
	_ = a.cl.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	_ = a.cl.Delete(ctx, &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: name}})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelControlPlaneRole: "", "kubernetes.io/hostname": name}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: api.LabelControlPlaneRole, Effect: corev1.TaintEffectNoSchedule}}}}
	clustertest.Eventually(a.t, time.Minute, "Node "+name+" to be created", func(ctx context.Context) (bool, error) {
		err := a.cl.Create(ctx, node)
		return err == nil, client.IgnoreAlreadyExists(err)
	})
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := a.cl.Status().Update(ctx, node); err != nil && !apierrors.IsConflict(err) {
		a.t.Fatal(err) // a conflict: kwok got there first, and marks it Ready itself
	}
	clustertest.Eventually(a.t, time.Minute, "NodeCertificates "+name+" to be created", func(ctx context.Context) (bool, error) {
		err := a.cl.Create(ctx, &api.NodeCertificates{ObjectMeta: metav1.ObjectMeta{Name: name}})
		return err == nil, client.IgnoreAlreadyExists(err)
	})
	a.report(ctx, name, func(*api.NodeCertificatesStatus) {})
}

// start runs the agents until the test ends or stopAgents.
func (a *fakeAgents) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, n := range a.nodes {
				if err := a.tick(ctx, n); err != nil && ctx.Err() == nil {
					a.t.Logf("fake agent %s: %v", n, err)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	a.stop = func() { cancel(); <-done }
	a.t.Cleanup(a.stop)
}

// report writes the node's status: what the agent found (its files, its components) plus change.
func (a *fakeAgents) report(ctx context.Context, node string, change func(*api.NodeCertificatesStatus)) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var nc api.NodeCertificates
		if err := a.cl.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
			return err
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		nc.Status.ObservedAt = &now
		nc.Status.Files = []api.NodeCertificateFile{nodeFile("apiserver", api.FileSetKubeadm, time.Now().Add(300*24*time.Hour).Truncate(time.Second))}
		nc.Status.FileCount = 1
		a.mu.Lock()
		state := api.ComponentCurrent
		if a.servesOld[node] {
			state = api.ComponentServesOld
		}
		nc.Status.Rollouts = &api.NodeRolloutAbilities{Enabled: true, CanRenew: true}
		if a.readOnly[node] {
			nc.Status.Rollouts = &api.NodeRolloutAbilities{Enabled: true, Message: "cannot write /host/etc/kubernetes: read-only file system"}
		}
		a.mu.Unlock()
		nc.Status.Components = []api.ControlPlaneComponent{{Name: "kube-apiserver", State: state}}
		change(&nc.Status)
		return a.cl.Status().Update(ctx, &nc)
	})
	if err != nil && ctx.Err() == nil {
		a.t.Errorf("fake agent %s: reporting: %v", node, err)
	}
	a.mu.Lock()
	a.heartbeat[node] = time.Now()
	a.mu.Unlock()
}

// tick is one pass of a node's agent: heartbeat, then act on the rollout that names it, if any.
func (a *fakeAgents) tick(ctx context.Context, node string) error {
	a.mu.Lock()
	beat := time.Since(a.heartbeat[node]) > 5*time.Second
	a.mu.Unlock()
	if beat {
		a.report(ctx, node, func(*api.NodeCertificatesStatus) {})
	}
	var list api.ControlPlaneRolloutList
	if err := a.cl.List(ctx, &list); err != nil {
		return err
	}
	var nc api.NodeCertificates
	if err := a.cl.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
		return err
	}
	for i := range list.Items {
		ro := &list.Items[i]
		if ro.Status.Phase.Finished() || ro.Status.CurrentNode != node || !myTurn(ro, node) {
			continue
		}
		op := nc.Status.Operation
		switch {
		case op == nil || op.RolloutUID != string(ro.UID):
			return a.begin(ctx, ro, node)
		case op.Phase == api.NodeInProgress:
			return a.end(ctx, ro, node, op)
		}
		// Succeeded or Failed for this rollout: its journal says done, nothing is done twice.
	}
	return nil
}

func myTurn(ro *api.ControlPlaneRollout, node string) bool {
	for _, n := range ro.Status.Nodes {
		if n.Name == node {
			return n.Phase == api.NodeInProgress
		}
	}
	return false
}

// begin takes the Lease (waiting while another node holds it) and reports the node in progress.
func (a *fakeAgents) begin(ctx context.Context, ro *api.ControlPlaneRollout, node string) error {
	if ok, err := a.takeLease(ctx, node); err != nil || !ok {
		return err
	}
	a.mu.Lock()
	for other, since := range a.active {
		a.overlaps = append(a.overlaps, fmt.Sprintf("%s started while %s was in progress (since %s)", node, other, since.Format(time.RFC3339Nano)))
	}
	inProgress := 0
	for _, n := range ro.Status.Nodes {
		if n.Phase == api.NodeInProgress {
			inProgress++
		}
	}
	if inProgress != 1 {
		a.overlaps = append(a.overlaps, fmt.Sprintf("rollout %s has %d nodes in progress when %s starts", ro.Name, inProgress, node))
	}
	a.active[node] = time.Now()
	a.turns[node]++
	a.order = append(a.order, node)
	onStart := a.onStart
	a.mu.Unlock()
	if onStart != nil {
		onStart(node)
	}
	now := metav1.Now()
	a.report(ctx, node, func(st *api.NodeCertificatesStatus) {
		st.Operation = &api.NodeOperation{Rollout: ro.Name, RolloutUID: string(ro.UID), NodeRolloutReport: api.NodeRolloutReport{
			Phase: api.NodeInProgress, Step: api.StepRestart, StartedAt: &now, Message: "restarting kube-apiserver",
			Components: []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartStopping}}}}
	})
	return nil
}

// end finishes the node, unless the test holds it, after a moment in progress.
func (a *fakeAgents) end(ctx context.Context, ro *api.ControlPlaneRollout, node string, op *api.NodeOperation) error {
	a.mu.Lock()
	hold, fail, since := a.hold[node], a.fail[node], a.active[node]
	a.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		default:
			return nil
		}
	}
	if !since.IsZero() && time.Since(since) < 500*time.Millisecond {
		return nil
	}
	a.mu.Lock()
	delete(a.active, node)
	if !fail {
		a.servesOld[node] = false
	}
	a.mu.Unlock()
	now := metav1.Now()
	a.report(ctx, node, func(st *api.NodeCertificatesStatus) {
		st.Operation = op.DeepCopy()
		st.Operation.CompletedAt, st.Operation.Step = &now, api.StepDone
		st.Operation.Phase, st.Operation.Message = api.NodeSucceeded, "every component serves its certificates"
		st.Operation.Components = []api.ComponentRestart{{Name: "kube-apiserver", State: api.RestartVerified, Reason: "ServesOld", VerifiedAt: &now}}
		if fail {
			st.Operation.Phase, st.Operation.Message = api.NodeFailed, "kube-apiserver did not become ready within 5m0s"
			st.Operation.Components[0].State = api.RestartFailed
		}
	})
	return a.cl.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: a.leaseNS, Name: api.ControlPlaneLeaseName}})
}

// takeLease takes the Lease for node unless another node holds it, unexpired.
func (a *fakeAgents) takeLease(ctx context.Context, node string) (bool, error) {
	now := metav1.NewMicroTime(time.Now())
	var l coordinationv1.Lease
	err := a.cl.Get(ctx, client.ObjectKey{Namespace: a.leaseNS, Name: api.ControlPlaneLeaseName}, &l)
	if apierrors.IsNotFound(err) {
		l = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: a.leaseNS, Name: api.ControlPlaneLeaseName},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To[int32](fakeLeaseSeconds), AcquireTime: &now, RenewTime: &now}}
		err = a.cl.Create(ctx, &l)
		return err == nil, client.IgnoreAlreadyExists(err)
	}
	if err != nil {
		return false, err
	}
	if h := l.Spec.HolderIdentity; h != nil && *h != node && l.Spec.RenewTime != nil &&
		time.Since(l.Spec.RenewTime.Time) < time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0))*time.Second {
		return false, nil
	}
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.AcquireTime, l.Spec.LeaseDurationSeconds = ptr.To(node), &now, &now, ptr.To[int32](fakeLeaseSeconds)
	err = a.cl.Update(ctx, &l)
	return err == nil, client.IgnoreNotFound(err)
}

// check asserts each of nodes had exactly one turn, in that order, and that no two overlapped.
func (a *fakeAgents) check(nodes ...string) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Equal(a.order, nodes) {
		a.t.Errorf("the agents worked on %v, want %v, one turn each", a.order, nodes)
	}
	for _, n := range nodes {
		if a.turns[n] != 1 {
			a.t.Errorf("node %s had %d turns, want 1", n, a.turns[n])
		}
	}
	for _, o := range a.overlaps {
		a.t.Error(o)
	}
}

func (a *fakeAgents) set(f func(a *fakeAgents)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}
