package nodeagent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	api "github.com/certrollout/certrollout/api/v1alpha1"
)

const (
	testNode    = "cp-1"
	testLeaseNS = "certrollout-system"
)

// fakeHost is a control-plane node for the agent's procedure: a host folder with static pod manifests, a
// kubelet that runs a container for every manifest in the folder (started when the manifest appeared),
// and the host actions (health, snapshot, renewal) as seams that record their calls. A component serves
// old certificates when its container started before the renewal.
type fakeHost struct {
	t    *testing.T
	root string

	mu      sync.Mutex
	calls   []string
	started map[string]time.Time
	// seen is the manifest file (inode and change time) each container was started from: a manifest replaced between two
	// looks is a restart, as the kubelet sees a pod removed and added.
	seen      map[string]uint64
	renewedAt time.Time
	unhealthy string
	renewErr  error
}

var testManifests = map[string]string{
	KubeAPIServer: "  - kube-apiserver\n    - --advertise-address=192.0.2.10\n    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n",
	KubeScheduler: "  - kube-scheduler\n    - --kubeconfig=/etc/kubernetes/scheduler.conf\n",
}

func newFakeHost(t *testing.T, components ...string) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, root: t.TempDir(), started: map[string]time.Time{}, seen: map[string]uint64{}}
	mustMkdir(t, h.manifestsDir())
	for _, c := range components {
		h.writeManifest(c)
		h.started[c] = time.Now().Add(-time.Hour)
		h.seen[c] = inode(filepath.Join(h.manifestsDir(), c+".yaml"))
	}
	return h
}

func (h *fakeHost) manifestsDir() string { return filepath.Join(h.root, "etc/kubernetes/manifests") }

func (h *fakeHost) writeManifest(c string) {
	h.t.Helper()
	cmd := strings.Replace(testManifests[c], "  - ", "    - ", 1)
	data := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + c + "\n  namespace: kube-system\n  labels:\n    component: " + c +
		"\nspec:\n  containers:\n  - name: " + c + "\n    command:\n" + cmd
	if err := os.WriteFile(filepath.Join(h.manifestsDir(), c+".yaml"), []byte(data), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) record(call string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, call)
}

func (h *fakeHost) callsSoFar() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// pods is the kubelet: a running, Ready mirror pod for each manifest in the folder.
func (h *fakeHost) pods(context.Context, string) ([]corev1.Pod, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []corev1.Pod
	for _, c := range []string{KubeAPIServer, KubeScheduler, KubeControllerManager, Etcd} {
		ino := inode(filepath.Join(h.manifestsDir(), c+".yaml"))
		present := ino != 0
		start, running := h.started[c]
		switch {
		case present && (!running || h.seen[c] != ino):
			start, running = time.Now(), true
			h.started[c], h.seen[c] = start, ino
		case !present && running:
			delete(h.started, c)
			running = false
		}
		if !running {
			continue
		}
		out = append(out, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: c + "-" + testNode, Namespace: metav1.NamespaceSystem, Labels: map[string]string{"component": c}},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: c, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(start)}}}}},
		})
	}
	return out, nil
}

// observe is the served truth: a component whose container started before the renewal serves old.
func (h *fakeHost) observe(ctx context.Context) (api.NodeCertificatesStatus, error) {
	pods, _ := h.pods(ctx, testNode)
	h.mu.Lock()
	defer h.mu.Unlock()
	var st api.NodeCertificatesStatus
	for _, p := range pods {
		c := p.Labels["component"]
		cc := api.ControlPlaneComponent{Name: c, State: api.ComponentCurrent, Message: "Serves and uses the certificates on disk."}
		if !h.renewedAt.IsZero() && Stale(h.started[c], h.renewedAt) {
			cc.State, cc.Message = api.ComponentServesOld, "Started before the renewal."
		}
		st.Components = append(st.Components, cc)
	}
	return st, nil
}

func (h *fakeHost) health(context.Context) api.ControlPlaneHealth {
	h.record("Health")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unhealthy != "" {
		return api.ControlPlaneHealth{Reasons: []string{h.unhealthy}}
	}
	return api.ControlPlaneHealth{Healthy: true}
}

func (h *fakeHost) snapshot(_ context.Context, stateDir *os.Root, dir string, _ int) (api.EtcdSnapshotStatus, error) {
	h.record("Snapshot")
	return api.EtcdSnapshotStatus{Path: filepath.Join(stateDir.Name(), dir, "etcd-snapshot.db"), SHA256: "abc", Size: 1}, nil
}

func (h *fakeHost) renew(context.Context, time.Duration, time.Duration, string) ([]api.RenewedFile, error) {
	h.record("Renew")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.renewErr != nil {
		return nil, h.renewErr
	}
	h.renewedAt = time.Now()
	return []api.RenewedFile{{Name: "apiserver", NewNotAfter: metav1.NewTime(h.renewedAt.AddDate(1, 0, 0))}}, nil
}

func inode(p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	st := fi.Sys().(*syscall.Stat_t)
	// An inode number may be reused at once; with its change time it names one file.
	return st.Ino ^ uint64(st.Ctim.Nano()) //nolint:gosec // an identity, not a quantity
}

func refuse(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("connection refused")
}

// testRollout is a rollout that gives testNode its turn.
func testRollout(uid string) *api.ControlPlaneRollout {
	return &api.ControlPlaneRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "renew-1", UID: types.UID(uid)},
		Status: api.ControlPlaneRolloutStatus{Phase: api.PhaseRestarting, CurrentNode: testNode,
			Nodes:    []api.ControlPlaneNodeStatus{{Name: testNode, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress}}, {Name: "cp-2"}},
			Settings: &api.ControlPlanePolicySpec{HealthTimeout: metav1.Duration{Duration: 2 * time.Second}}},
	}
}

// newTestAgent is an agent on h, with a fake API holding the Node and r (if any).
func newTestAgent(t *testing.T, h *fakeHost, funcs interceptor.Funcs, objs ...client.Object) (*Agent, client.Client) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = api.AddToScheme(scheme)
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "node-uid"}})
	cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&api.NodeCertificates{}, &api.ControlPlaneRollout{}).WithInterceptorFuncs(funcs).Build()
	a := &Agent{Node: testNode, Scan: ScanOptions{HostRoot: h.root}, Client: cl, Pods: h.pods, Dial: refuse, ProbeTimeout: 50 * time.Millisecond,
		Log: logr.Discard(), Rollouts: &RolloutOptions{Namespace: testLeaseNS, Poll: 10 * time.Millisecond,
			Ops: RolloutOps{Health: h.health, Snapshot: h.snapshot, Renew: h.renew, Observe: h.observe}}}
	return a, cl
}

// failNodeCertificatesGet makes every read of a NodeCertificates fail, as an API server that times out.
func failNodeCertificatesGet() interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*api.NodeCertificates); ok {
			return errors.New("the server was unable to return a response in the time allotted")
		}
		return c.Get(ctx, key, obj, opts...)
	}}
}

func writeJournal(t *testing.T, h *fakeHost, j Journal) {
	t.Helper()
	dir := filepath.Join(h.root, DefaultStateDir)
	mustMkdir(t, dir)
	if err := j.Save(filepath.Join(dir, "journal.json")); err != nil {
		t.Fatal(err)
	}
}

func readJournal(t *testing.T, h *fakeHost) Journal {
	t.Helper()
	j, err := LoadJournal(filepath.Join(h.root, DefaultStateDir, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func leaseHolder(t *testing.T, cl client.Client) string {
	t.Helper()
	var l coordinationv1.Lease
	if err := cl.Get(context.Background(), client.ObjectKey{Namespace: testLeaseNS, Name: api.ControlPlaneLeaseName}, &l); err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func work(t *testing.T, a *Agent, r *api.ControlPlaneRollout) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Work(ctx, r)
}

func TestANodeTheJournalSaysFailedIsNeverRedoneForTheSameRollout(t *testing.T) {
	h := newFakeHost(t)
	r := testRollout("uid-1")
	writeJournal(t, h, Journal{Rollout: r.Name, RolloutUID: "uid-1", Phase: api.NodeFailed, Step: api.StepRenew, Message: "Step Renew failed on cp-1: boom"})
	// The NodeCertificates cannot be read: the report the agent would resume from is out of reach.
	a, _ := newTestAgent(t, h, failNodeCertificatesGet(), r)
	_, mine, err := a.rolloutsUnfinished(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if mine != nil {
		t.Fatalf("the agent took rollout %s up again after failing it", mine.Name)
	}
	if op := a.operation(); op == nil || op.Phase != api.NodeFailed || op.RolloutUID != "uid-1" {
		t.Errorf("the report to publish again is %+v, want the journal's Failed", op)
	}
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	if calls := h.callsSoFar(); len(calls) != 0 {
		t.Errorf("the failed node was worked on again: %v", calls)
	}
}

func TestAnUnreadableNodeCertificatesIsRetriedNotTakenForAFreshStart(t *testing.T) {
	h := newFakeHost(t)
	r := testRollout("uid-1")
	a, _ := newTestAgent(t, h, failNodeCertificatesGet(), r)
	err := work(t, a, r)
	if err == nil || !strings.Contains(err.Error(), "retried next round") {
		t.Fatalf("Work = %v, want an error saying it is retried", err)
	}
	if calls := h.callsSoFar(); len(calls) != 0 {
		t.Errorf("the agent started a fresh operation: %v", calls)
	}
	if j := readJournal(t, h); j.RolloutUID == "uid-1" {
		t.Errorf("the journal was started for the rollout: %+v", j)
	}
}

func TestAResumedNodeGoesOnAtTheJournalsStepWhenItsReportCannotBeRead(t *testing.T) {
	for name, tc := range map[string]struct {
		journal   Journal
		wantCalls []string
	}{
		"after the snapshot, renewal is next and health before is not run again": {
			journal:   Journal{Step: api.StepRenew, Snapshot: &api.EtcdSnapshotStatus{Path: "/var/lib/certrollout/etcd-snapshots/s.db", SHA256: "abc"}},
			wantCalls: []string{"Renew", "Health"},
		},
		"mid-restart, renewal done: the restarts go on and only health after runs": {
			journal:   Journal{Step: api.StepRestart, Renewed: true, RenewedFiles: []api.RenewedFile{{Name: "apiserver"}}},
			wantCalls: []string{"Health"},
		},
		"at health before: it is checked again": {
			journal:   Journal{Step: api.StepHealth},
			wantCalls: []string{"Health", "Snapshot", "Renew", "Health"},
		},
		"at the kubeconfig copies": {
			journal:   Journal{Step: api.StepKubeconfigs, Renewed: true},
			wantCalls: []string{"Health"},
		},
		"at health after": {
			journal:   Journal{Step: api.StepHealthAfter, Renewed: true},
			wantCalls: []string{"Health"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			r := testRollout("uid-1")
			tc.journal.Rollout, tc.journal.RolloutUID, tc.journal.Phase = r.Name, "uid-1", api.NodeInProgress
			writeJournal(t, h, tc.journal)
			a, cl := newTestAgent(t, h, failNodeCertificatesGet(), r)
			if err := work(t, a, r); err != nil {
				t.Fatal(err)
			}
			if calls := h.callsSoFar(); !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("calls %v, want %v", calls, tc.wantCalls)
			}
			j := readJournal(t, h)
			if j.Phase != api.NodeSucceeded || j.Step != api.StepDone {
				t.Errorf("journal phase %s step %s, want Succeeded at Done", j.Phase, j.Step)
			}
			if tc.journal.Snapshot != nil && (j.Snapshot == nil || j.Snapshot.SHA256 != "abc") {
				t.Errorf("the journal lost the snapshot: %+v", j.Snapshot)
			}
			if holder := leaseHolder(t, cl); holder != "" {
				t.Errorf("the Lease is still held by %s", holder)
			}
		})
	}
}

func restartOf(op *api.NodeOperation, name string) api.ComponentRestart {
	for _, c := range op.Components {
		if c.Name == name {
			return c
		}
	}
	return api.ComponentRestart{}
}

func TestARenewedNodeRestartsEachComponentThatServesOldAndVerifiesIt(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer, KubeScheduler)
	r := testRollout("uid-1")
	a, cl := newTestAgent(t, h, interceptor.Funcs{}, r)
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	op := a.operation()
	if op.Phase != api.NodeSucceeded {
		t.Fatalf("phase %s: %s", op.Phase, op.Message)
	}
	for _, c := range []string{KubeAPIServer, KubeScheduler} {
		if got := restartOf(op, c); got.State != api.RestartVerified || got.Reason != ReasonServesOld {
			t.Errorf("%s: %+v, want Verified after ServesOld", c, got)
		}
		if _, err := os.Stat(filepath.Join(h.manifestsDir(), c+".yaml")); err != nil {
			t.Errorf("the manifest of %s is not in place: %v", c, err)
		}
	}
	if got := restartOf(op, KubeControllerManager); got.State != api.RestartSkipped || got.Reason != ReasonNoManifest {
		t.Errorf("kube-controller-manager without a manifest: %+v", got)
	}
	var nc api.NodeCertificates
	if err := cl.Get(context.Background(), client.ObjectKey{Name: testNode}, &nc); err != nil || nc.Status.Operation == nil || nc.Status.Operation.Phase != api.NodeSucceeded {
		t.Errorf("the published report: %+v (%v)", nc.Status.Operation, err)
	}
}

func TestAManifestTheAgentCannotReadFailsTheNodeInsteadOfSkippingItsComponent(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer)
	// kube-scheduler.yaml cannot be read (a folder where the file should be).
	mustMkdir(t, filepath.Join(h.manifestsDir(), KubeScheduler+".yaml"))
	r := testRollout("uid-1")
	a, _ := newTestAgent(t, h, interceptor.Funcs{}, r)
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	op := a.operation()
	if op.Phase != api.NodeFailed || op.Step != api.StepRestart || !strings.Contains(op.Message, "could not read every static pod manifest") ||
		!strings.Contains(op.Message, "/etc/kubernetes/manifests/kube-scheduler.yaml") {
		t.Errorf("phase %s step %s message %q, want Failed at Restart naming the manifest", op.Phase, op.Step, op.Message)
	}
	if got := restartOf(op, KubeScheduler); got.State == api.RestartSkipped {
		t.Errorf("kube-scheduler was skipped: %+v", got)
	}
	if j := readJournal(t, h); j.Phase != api.NodeFailed {
		t.Errorf("journal phase %s, want Failed", j.Phase)
	}
}

// kubeconfigHost is a host with admin.conf in kubeadm's folder, a copy folder /root/.kube the agent
// may write, and a folder /etc/secret it may not.
func kubeconfigHost(t *testing.T) (*fakeHost, *nodeRun) {
	t.Helper()
	h := newFakeHost(t)
	for _, d := range []string{"etc/kubernetes", "root/.kube", "etc/secret", DefaultStateDir} {
		mustMkdir(t, filepath.Join(h.root, d))
	}
	if err := os.WriteFile(filepath.Join(h.root, "etc/kubernetes/admin.conf"), []byte("new admin"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAgent(t, h, interceptor.Funcs{})
	a.Rollouts.KubeconfigCopyDirs = []string{"/root/.kube"}
	n := &nodeRun{a: a, r: testRollout("uid-1"), op: &api.NodeOperation{}}
	return h, n
}

func TestKubeconfigCopiesAreWrittenOnlyInsideTheCopyFolders(t *testing.T) {
	for name, tc := range map[string]struct {
		to      string
		setup   func(t *testing.T, h *fakeHost)
		wantErr string
	}{
		"writes a copy in a copy folder and keeps the previous one": {
			to: "/root/.kube/config",
			setup: func(t *testing.T, h *fakeHost) {
				mustWrite(t, filepath.Join(h.root, "root/.kube/config"), "old admin")
			},
		},
		"refuses a folder it was not given, naming the path and the allowed folders": {
			to: "/etc/secret/config", wantErr: "/etc/secret/config is outside the folders the node agent may write (--kubeconfig-copy-dirs: /root/.kube",
		},
		"refuses a path that climbs out of a copy folder": {
			to: "/root/.kube/../../etc/secret/config", wantErr: "outside the folders the node agent may write",
		},
		"refuses kubeadm's folder": {
			to: "/etc/kubernetes/admin-copy.conf", wantErr: "in /etc/kubernetes, which the agent never writes copies into",
		},
		"refuses the state folder": {
			to: "/var/lib/certrollout/journal.json", wantErr: "in /var/lib/certrollout, which the agent never writes copies into",
		},
		"refuses a link that leads out of the copy folder": {
			to: "/root/.kube/escape/config", wantErr: "links out of it refused",
			setup: func(t *testing.T, h *fakeHost) {
				if err := os.Symlink(filepath.Join(h.root, "etc/secret"), filepath.Join(h.root, "root/.kube/escape")); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			h, n := kubeconfigHost(t)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			n.settings.KubeconfigCopies = []api.KubeconfigCopy{{From: "admin.conf", To: tc.to}}
			err := n.kubeconfigs(context.Background())
			if entries, _ := os.ReadDir(filepath.Join(h.root, "etc/secret")); len(entries) != 0 {
				t.Errorf("%d files were written outside the copy folders", len(entries))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(filepath.Join(h.root, "root/.kube/config")); string(data) != "new admin" {
				t.Errorf("the copy holds %q", data)
			}
			if len(n.op.KubeconfigCopies) != 1 || !strings.HasPrefix(n.op.KubeconfigCopies[0].Backup, "/root/.kube/config.certrollout-") {
				t.Fatalf("copies %+v, want one with a backup", n.op.KubeconfigCopies)
			}
			if data, _ := os.ReadFile(filepath.Join(h.root, n.op.KubeconfigCopies[0].Backup)); string(data) != "old admin" {
				t.Errorf("the backup holds %q", data)
			}
		})
	}
}

func TestTheEtcdSnapshotIsTakenOnlyInsideTheStateFolder(t *testing.T) {
	for name, tc := range map[string]struct {
		hostPath, wantDir, wantErr string
	}{
		"the default folder, under the state folder":   {hostPath: "/var/lib/certrollout/etcd-snapshots", wantDir: "etcd-snapshots"},
		"a folder outside the state folder is refused": {hostPath: "/etc/kubernetes/pki", wantErr: "is not inside the agent's state folder /var/lib/certrollout (--state-dir)"},
		"a path climbing out of it is refused":         {hostPath: "/var/lib/certrollout/../../../etc", wantErr: "is not inside the agent's state folder"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			r := testRollout("uid-1")
			r.Status.Settings.EtcdSnapshot.HostPath = tc.hostPath
			a, _ := newTestAgent(t, h, interceptor.Funcs{})
			mustMkdir(t, a.stateDir())
			var gotDir string
			a.Rollouts.Ops.Snapshot = func(_ context.Context, stateDir *os.Root, dir string, _ int) (api.EtcdSnapshotStatus, error) {
				gotDir = dir
				return api.EtcdSnapshotStatus{Path: filepath.Join(stateDir.Name(), dir, "s.db")}, nil
			}
			mover, err := a.loadMover(a.stateDir())
			if err != nil {
				t.Fatal(err)
			}
			n := &nodeRun{a: a, r: r, settings: settingsOf(r), op: &api.NodeOperation{}, mover: mover}
			err = n.snapshot(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || gotDir != "" {
					t.Fatalf("err %v (snapshot into %q), want one saying %q and no snapshot", err, gotDir, tc.wantErr)
				}
				return
			}
			if err != nil || gotDir != tc.wantDir {
				t.Fatalf("snapshot into %q (%v), want %q", gotDir, err, tc.wantDir)
			}
			if n.op.Snapshot == nil || n.op.Snapshot.Path != "/var/lib/certrollout/etcd-snapshots/s.db" {
				t.Errorf("reported snapshot %+v", n.op.Snapshot)
			}
		})
	}
}

func TestALeaseLostMidNodeStopsBeforeTheNextMoveWithEveryManifestInPlace(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer, KubeScheduler)
	r := testRollout("uid-1")
	stolen := false
	// Once the report says the API server is starting again, another node holds the Lease (this node's
	// renewals failed long enough for it to expire and be taken).
	steal := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		if nc, ok := obj.(*api.NodeCertificates); ok && !stolen && nc.Status.Operation != nil && restartOf(nc.Status.Operation, KubeAPIServer).State == api.RestartStarting {
			var l coordinationv1.Lease
			if err := c.Get(ctx, client.ObjectKey{Namespace: testLeaseNS, Name: api.ControlPlaneLeaseName}, &l); err != nil {
				return err
			}
			other, now := "cp-2", metav1.NewMicroTime(time.Now())
			l.Spec.HolderIdentity, l.Spec.RenewTime = &other, &now
			if err := c.Update(ctx, &l); err != nil {
				return err
			}
			stolen = true
		}
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}}
	a, cl := newTestAgent(t, h, steal, r)
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	op := a.operation()
	if !stolen {
		t.Fatal("the Lease was never taken away")
	}
	if op.Phase != api.NodeFailed || !strings.Contains(op.Message, "no longer holds the control-plane Lease") || !strings.Contains(op.Message, "held by cp-2") {
		t.Errorf("phase %s message %q, want Failed saying the Lease is held by cp-2", op.Phase, op.Message)
	}
	if got := restartOf(op, KubeScheduler); got.State != api.RestartFailed {
		t.Errorf("kube-scheduler %+v, want Failed before its move", got)
	}
	for _, c := range []string{KubeAPIServer, KubeScheduler} {
		if _, err := os.Stat(filepath.Join(h.manifestsDir(), c+".yaml")); err != nil {
			t.Errorf("the manifest of %s is not in place: %v", c, err)
		}
	}
	if e, ok := readJournal(t, h).Components[KubeScheduler]; ok {
		t.Errorf("kube-scheduler's manifest was moved after the Lease was lost: %+v", e)
	}
	if holder := leaseHolder(t, cl); holder != "cp-2" {
		t.Errorf("the Lease is held by %q, want cp-2's (never released by a node that lost it)", holder)
	}
}

func TestAManifestBackWhoseMoveTheKubeletNeverSawGetsItsOneRestart(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer)
	h.renewedAt = time.Now().Add(-30 * time.Second)
	r := testRollout("uid-1")
	outAt := time.Now().Add(-20 * time.Second)
	manifest := filepath.Join(h.manifestsDir(), KubeAPIServer+".yaml")
	// Killed after putting the manifest back, before the kubelet stopped the old container: no stoppedAt.
	writeJournal(t, h, Journal{Rollout: r.Name, RolloutUID: "uid-1", Phase: api.NodeInProgress, Step: api.StepRestart, Renewed: true,
		Components: map[string]JournalEntry{KubeAPIServer: {State: JournalBack, Manifest: manifest, OutAt: &outAt, At: outAt}}})
	a, _ := newTestAgent(t, h, interceptor.Funcs{}, r)
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	op := a.operation()
	if op.Phase != api.NodeSucceeded {
		t.Fatalf("phase %s: %s", op.Phase, op.Message)
	}
	if got := restartOf(op, KubeAPIServer); got.State != api.RestartVerified {
		t.Errorf("kube-apiserver %+v, want Verified", got)
	}
	if e := readJournal(t, h).Components[KubeAPIServer]; !e.Again || e.State != JournalVerified {
		t.Errorf("journal entry %+v, want Verified after its one further restart", e)
	}
}

func TestEveryRoundPutsBackAManifestTheJournalSaysIsOut(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer)
	a, _ := newTestAgent(t, h, interceptor.Funcs{})
	mover, err := a.loadMover(a.stateDir())
	if err != nil {
		t.Fatal(err)
	}
	// A round after the agent started: a manifest went out (and the agent's work was cut short).
	if err := mover.MoveOut(KubeAPIServer, filepath.Join(h.manifestsDir(), KubeAPIServer+".yaml")); err != nil {
		t.Fatal(err)
	}
	a.rolloutRound(context.Background())
	if _, err := os.Stat(filepath.Join(h.manifestsDir(), KubeAPIServer+".yaml")); err != nil {
		t.Errorf("the manifest is still out after a round: %v", err)
	}
}

func TestTheAgentPollsFastOnlyWhileItsNodeIsCurrentOrNext(t *testing.T) {
	for name, tc := range map[string]struct {
		current string
		nodes   []api.ControlPlaneNodeStatus
		want    bool
	}{
		"fast: next after the current node": {current: "cp-0", want: true,
			nodes: []api.ControlPlaneNodeStatus{{Name: "cp-0", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress}}, {Name: testNode, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}}, {Name: "cp-2"}}},
		"normal interval: two nodes before its turn": {current: "cp-0", want: false,
			nodes: []api.ControlPlaneNodeStatus{{Name: "cp-0", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress}}, {Name: "cp-2", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodePending}}, {Name: testNode}}},
		"normal interval: its part is done": {current: "cp-2", want: false,
			nodes: []api.ControlPlaneNodeStatus{{Name: testNode, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeSucceeded}}, {Name: "cp-2", NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress}}}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			r := testRollout("uid-1")
			r.Status.CurrentNode, r.Status.Nodes = tc.current, tc.nodes
			a, _ := newTestAgent(t, h, interceptor.Funcs{}, r)
			soon, mine, err := a.rolloutsUnfinished(context.Background())
			if err != nil || mine != nil || soon != tc.want {
				t.Errorf("soon %v mine %v (%v), want soon %v and no turn", soon, mine, err, tc.want)
			}
		})
	}
}

func TestAFailedStepStopsTheNodeWithNothingAfterItDone(t *testing.T) {
	for name, tc := range map[string]struct {
		unhealthy string
		renewErr  error
		wantStep  api.NodeRolloutStep
		wantMsg   string
		wantCalls []string
	}{
		"an unhealthy control plane: nothing is touched": {unhealthy: "etcd member cp-2 is unhealthy", wantStep: api.StepHealth,
			wantMsg: "etcd member cp-2 is unhealthy", wantCalls: []string{"Health"}},
		"a failed renewal: nothing is restarted": {renewErr: errors.New("the CA key is missing"), wantStep: api.StepRenew,
			wantMsg: "the CA key is missing", wantCalls: []string{"Health", "Snapshot", "Renew"}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t, KubeAPIServer)
			h.unhealthy, h.renewErr = tc.unhealthy, tc.renewErr
			before := h.started[KubeAPIServer]
			r := testRollout("uid-1")
			a, cl := newTestAgent(t, h, interceptor.Funcs{}, r)
			if err := work(t, a, r); err != nil {
				t.Fatal(err)
			}
			op := a.operation()
			if op.Phase != api.NodeFailed || op.Step != tc.wantStep || !strings.Contains(op.Message, tc.wantMsg) {
				t.Errorf("phase %s step %s message %q, want Failed at %s saying %q", op.Phase, op.Step, op.Message, tc.wantStep, tc.wantMsg)
			}
			if calls := h.callsSoFar(); !slices.Equal(slices.Compact(calls), tc.wantCalls) {
				t.Errorf("calls %v, want %v", calls, tc.wantCalls)
			}
			if got := h.started[KubeAPIServer]; !got.Equal(before) {
				t.Error("kube-apiserver was restarted")
			}
			if j := readJournal(t, h); j.Phase != api.NodeFailed || len(j.Components) != 0 {
				t.Errorf("journal %+v, want Failed with no move", j)
			}
			if holder := leaseHolder(t, cl); holder != "" {
				t.Errorf("the Lease is still held by %s", holder)
			}
			// Never redone for this rollout.
			if _, mine, _ := a.rolloutsUnfinished(context.Background()); mine != nil {
				t.Error("the failed node would be worked on again")
			}
		})
	}
}

// etcd run by systemd (kubespray: /etc/etcd.env, no static pod) is never touched: the node's report
// says so with the command to run there by hand, and the static pods are restarted as usual.
func TestEtcdUnderSystemdIsReportedWithTheCommandToRunAndLeftAlone(t *testing.T) {
	h := newFakeHost(t, KubeAPIServer, KubeScheduler)
	mustMkdir(t, filepath.Join(h.root, "etc"))
	if err := os.WriteFile(filepath.Join(h.root, "etc", "etcd.env"), []byte("ETCD_DATA_DIR=/var/lib/etcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testRollout("uid-systemd")
	a, _ := newTestAgent(t, h, interceptor.Funcs{}, r)
	if err := work(t, a, r); err != nil {
		t.Fatal(err)
	}
	op := a.operation()
	if op.Phase != api.NodeSucceeded {
		t.Fatalf("phase %s: %s", op.Phase, op.Message)
	}
	etcd := restartOf(op, Etcd)
	if etcd.State != api.RestartSkipped || etcd.Reason != ReasonSystemdEtcd || !strings.Contains(etcd.Message, "systemctl restart etcd.service") ||
		!strings.Contains(etcd.Message, testNode) {
		t.Errorf("etcd under systemd: %+v; want Skipped (SystemdEtcd) with the command to run on %s", etcd, testNode)
	}
	if got := restartOf(op, KubeAPIServer); got.State != api.RestartVerified {
		t.Errorf("kube-apiserver: %+v, want Verified", got)
	}

	// Without etcd.env, a node with no etcd manifest simply has no etcd here.
	h2 := newFakeHost(t, KubeAPIServer)
	r2 := testRollout("uid-no-etcd")
	a2, _ := newTestAgent(t, h2, interceptor.Funcs{}, r2)
	if err := work(t, a2, r2); err != nil {
		t.Fatal(err)
	}
	if got := restartOf(a2.operation(), Etcd); got.Reason != ReasonNoManifest {
		t.Errorf("etcd with neither a manifest nor etcd.env: %+v, want NoManifest", got)
	}
}
