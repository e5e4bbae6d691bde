package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/nodeagent"
)

// nodeTurn creates a rollout and gives node its turn, as the controller does.
func nodeTurn(t *testing.T, ctx context.Context, c client.Client, node string, settings api.ControlPlanePolicySpec) *api.ControlPlaneRollout {
	t.Helper()
	r := &api.ControlPlaneRollout{ObjectMeta: metav1.ObjectMeta{GenerateName: "node-turn-"}, Spec: api.ControlPlaneRolloutSpec{Nodes: []string{node}}}
	// Retried: while an etcd member is down the API may time out a write until etcd has its leader.
	eventually(t, "the rollout to be created", func(ctx context.Context) (bool, error) {
		return c.Create(ctx, r) == nil, nil
	})
	t.Cleanup(func() { _ = c.Delete(context.Background(), r) })
	status := api.ControlPlaneRolloutStatus{Phase: api.PhaseRestarting, Settings: &settings, CurrentNode: node,
		Nodes: []api.ControlPlaneNodeStatus{{Name: node, NodeRolloutReport: api.NodeRolloutReport{Phase: api.NodeInProgress}}}}
	eventually(t, "the rollout to give "+node+" its turn", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, nil //nolint:nilerr // retried
		}
		r.Status = status
		return c.Status().Update(ctx, r) == nil, nil
	})
	return r
}

// inProcessAgent is the node agent of n, in this process, reading n's folder as its host, with the
// agent's own health checks, etcd snapshots and renewal.
func inProcessAgent(t *testing.T, c client.Client, n localcluster.ControlPlaneNode, namespace string) *nodeagent.Agent {
	a := &nodeagent.Agent{
		Node:         n.Name,
		Scan:         nodeagent.ScanOptions{HostRoot: n.Root},
		Client:       c,
		ProbeTimeout: 2 * time.Second,
		Log:          testr.New(t),
		Rollouts:     &nodeagent.RolloutOptions{Namespace: namespace, Poll: 500 * time.Millisecond, KubeconfigCopyDirs: []string{"/root/.kube"}},
	}
	a.Rollouts.Ops = a.HostOps()
	return a
}

var (
	lbOnce sync.Once
	lb     *localcluster.LoadBalancer
	lbErr  error
)

// agentClient is a client with the built-in kinds and certrollout's, through a load balancer in front
// of every API server (as a kubeadm HA cluster's controlPlaneEndpoint), so that it keeps working while
// one API server restarts or loses its etcd.
func agentClient(t *testing.T, cp *localcluster.ControlPlane) client.Client {
	t.Helper()
	lbOnce.Do(func() { lb, lbErr = cp.ControlPlaneLoadBalancer() })
	if lbErr != nil {
		t.Fatal(lbErr)
	}
	cfg, _, _ := admin(t, cp)
	cfg.Host = lb.URL()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := api.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pids are the processes of node's components, once every one runs (a component the kubelet is
// restarting after a crash is waited for).
func pids(t *testing.T, cp *localcluster.ControlPlane, node string) map[string]int {
	t.Helper()
	out := map[string]int{}
	eventually(t, "every component on "+node+" to run", func(context.Context) (bool, error) {
		for _, comp := range localcluster.ControlPlaneComponents {
			pid, err := cp.ComponentPID(node, comp)
			if err != nil {
				return false, fmt.Errorf("%s on %s: %w", comp, node, err)
			}
			out[comp] = pid
		}
		return true, nil
	})
	return out
}

// Node 2's part of a rollout, its certificates 20 days from expiry: it checks the control plane, takes
// the etcd snapshot, renews the certificates as kubeadm would, restarts by moving their manifests exactly
// the components that then serve or use old certificates, in the runbook's order, verifies each serves
// what is on disk, refreshes the operator's kubeconfig copy (keeping the old one), leaves etcd (which
// reloads its certificates) running, and gives the Lease back.
func TestTheAgentRestartsWhatServesOldCertificatesOnItsNodeAndVerifiesIt(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	_, cs, _ := admin(t, cp)
	c := agentClient(t, cp)
	n := cp.Nodes[1]
	ns := prepare(t, ctx, cp, cs, "cp-rollout-")
	agePKI(t, ctx, cp, n) // whatever earlier tests did to node 2, its files are 20 days from expiry
	kubeDir := filepath.Join(n.Root, "root", ".kube")
	if err := os.MkdirAll(kubeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kubeDir, "config"), []byte("old copy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := inProcessAgent(t, c, n, ns)
	before := pids(t, cp, n.Name)
	r := nodeTurn(t, ctx, c, n.Name, api.ControlPlanePolicySpec{
		EtcdSnapshot:     api.EtcdSnapshotSettings{Keep: 2},
		HealthTimeout:    metav1.Duration{Duration: 4 * time.Minute},
		KubeconfigCopies: []api.KubeconfigCopy{{From: "admin.conf", To: "/root/.kube/config"}},
	})
	started := time.Now()
	if err := agent.Work(ctx, r); err != nil {
		t.Fatal(err)
	}
	nc := get(t, c, n.Name)
	op := nc.Status.Operation
	if op == nil || op.RolloutUID != string(r.UID) || op.Phase != api.NodeSucceeded || op.Step != api.StepDone {
		t.Fatalf("the agent's report: %+v", op)
	}
	// Renewed as kubeadm certs renew would (the files were 20 days from expiry, within the default 30):
	// every file kubeadm renews, for kubeadm's default year, and kubeadm itself reads them.
	if len(op.Renewed) < 10 {
		t.Errorf("renewed %d files: %+v; want every leaf and kubeconfig kubeadm renews", len(op.Renewed), op.Renewed)
	}
	for _, f := range op.Renewed {
		if f.NewNotAfter.Before(&metav1.Time{Time: started.Add(360 * 24 * time.Hour)}) || f.Backup == "" {
			t.Errorf("%s renewed until %s with backup %q; want a year and a backup", f.Name, f.NewNotAfter, f.Backup)
		}
	}
	if out, err := cp.Kubeadm(ctx, n.Name, "certs", "check-expiration", "--config", n.KubeadmConfig); err != nil || !strings.Contains(string(out), "364d") {
		t.Errorf("kubeadm certs check-expiration after the renewal: %v\n%s", err, out)
	}
	want := map[string]api.ComponentRestartState{"kube-apiserver": api.RestartVerified, "kube-scheduler": api.RestartVerified,
		"kube-controller-manager": api.RestartVerified, "etcd": api.RestartSkipped}
	var order []string
	for _, comp := range op.Components {
		order = append(order, comp.Name)
		if comp.State != want[comp.Name] {
			t.Errorf("%s: %s (%s), want %s", comp.Name, comp.State, comp.Message, want[comp.Name])
		}
	}
	if fmt.Sprint(order) != "[kube-apiserver kube-scheduler kube-controller-manager etcd]" {
		t.Errorf("components in the order %v, want the runbook's", order)
	}
	after := pids(t, cp, n.Name)
	for comp, st := range want {
		if restarted := after[comp] != before[comp]; restarted != (st == api.RestartVerified) {
			t.Errorf("%s: pid %d → %d, want restarted=%v", comp, before[comp], after[comp], st == api.RestartVerified)
		}
	}
	for _, comp := range localcluster.ControlPlaneComponents {
		if _, err := os.Stat(n.ManifestPath(comp)); err != nil {
			t.Errorf("the manifest of %s is not in place: %v", comp, err)
		}
	}
	if !allCurrent(nc) {
		t.Errorf("after the restarts not every component is Current: %+v", nc.Status.Components)
	}
	adminConf, _ := os.ReadFile(filepath.Join(n.Root, "etc", "kubernetes", "admin.conf"))
	if got, _ := os.ReadFile(filepath.Join(kubeDir, "config")); !bytes.Equal(got, adminConf) {
		t.Error("/root/.kube/config is not a copy of the renewed admin.conf")
	}
	if len(op.KubeconfigCopies) != 1 || op.KubeconfigCopies[0].Backup == "" {
		t.Fatalf("kubeconfig copies reported: %+v", op.KubeconfigCopies)
	}
	if old, err := os.ReadFile(filepath.Join(n.Root, op.KubeconfigCopies[0].Backup)); err != nil || string(old) != "old copy\n" {
		t.Errorf("the previous copy was not kept at %s: %q %v", op.KubeconfigCopies[0].Backup, old, err)
	}
	if h := op.Health; h == nil || !h.Healthy || len(h.APIServers) != 3 || len(h.EtcdMembers) != 3 {
		t.Errorf("the last health check: %+v; want three ready API servers and three healthy etcd members", h)
	}
	snap := op.Snapshot
	if snap == nil || snap.Node != n.Name || !strings.HasPrefix(snap.Path, "/var/lib/certrollout/etcd-snapshots/") || snap.Size == 0 {
		t.Fatalf("the snapshot reported: %+v", snap)
	}
	data, err := os.ReadFile(filepath.Join(n.Root, snap.Path))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != snap.SHA256 || int64(len(data)) != snap.Size {
		t.Errorf("the snapshot file's SHA-256 and size differ from the report (%s, %d)", snap.SHA256, snap.Size)
	}
	var lease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: api.ControlPlaneLeaseName}, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil {
		t.Errorf("the Lease is still held by %s", *lease.Spec.HolderIdentity)
	}
}

// An agent killed while a manifest is out comes back, puts it back (which completes that restart) and
// goes on from its journal: no component is restarted twice.
func TestAnAgentKilledWithAManifestOutPutsItBackAndRestartsNothingTwice(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	_, cs, _ := admin(t, cp)
	c := agentClient(t, cp)
	n := cp.Nodes[1]
	ns := prepare(t, ctx, cp, cs, "cp-resume-")
	agePKI(t, ctx, cp, n)
	first := inProcessAgent(t, c, n, ns)
	eventually(t, "the agent to see node 2's components on old certificates", func(ctx context.Context) (bool, error) {
		st, _, err := first.Once(ctx)
		return err == nil && st.ComponentsServingOld >= 3, err
	})
	no := false
	r := nodeTurn(t, ctx, c, n.Name, api.ControlPlanePolicySpec{
		Renewal: api.ControlPlaneRenewal{Enabled: &no}, EtcdSnapshot: api.EtcdSnapshotSettings{Enabled: &no},
		HealthTimeout: metav1.Duration{Duration: 4 * time.Minute}})

	// What an agent killed the moment the API server's manifest left leaves behind: the journal, the
	// staged manifest, and no API server on the node.
	state := filepath.Join(n.Root, "var", "lib", "certrollout")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	crashed := &nodeagent.Mover{JournalPath: filepath.Join(state, "journal.json"), StagingDir: filepath.Join(state, "staged-manifests"),
		Journal: nodeagent.Journal{Rollout: r.Name, RolloutUID: string(r.UID)}}
	if err := crashed.MoveOut("kube-apiserver", n.ManifestPath("kube-apiserver")); err != nil {
		t.Fatal(err)
	}
	before := pids(t, cp, n.Name)
	eventually(t, "the API server on node 2 to be down", func(context.Context) (bool, error) {
		_, err := cp.ComponentPID(n.Name, "kube-apiserver")
		return err != nil, nil
	})

	// Every process each component runs while the new agent works.
	seen := map[string]map[int]bool{}
	for comp, pid := range before {
		seen[comp] = map[int]bool{pid: true}
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			for _, comp := range localcluster.ControlPlaneComponents {
				if pid, err := cp.ComponentPID(n.Name, comp); err == nil {
					seen[comp][pid] = true
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	second := inProcessAgent(t, c, n, ns)
	err := second.Work(ctx, r)
	stopWatching()
	<-watched
	if err != nil {
		t.Fatal(err)
	}
	for comp, want := range map[string]int{"kube-apiserver": 2, "kube-scheduler": 2, "kube-controller-manager": 2, "etcd": 1} {
		if got := len(seen[comp]); got != want {
			t.Errorf("%s ran %d processes (%v); want %d: the one before and, if it needed a restart, exactly one after", comp, got, seen[comp], want)
		}
	}
	op := get(t, c, n.Name).Status.Operation
	if op == nil || op.Phase != api.NodeSucceeded {
		t.Fatalf("after the resume the report is %+v", op)
	}
	j, err := nodeagent.LoadJournal(filepath.Join(state, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager"} {
		if j.Components[comp].State != nodeagent.JournalVerified {
			t.Errorf("%s: journal says %q, want Verified", comp, j.Components[comp].State)
		}
	}
}

// prepare installs the CRDs and creates a namespace for the test's Lease.
func prepare(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	installCRDs(t, ctx, cp)
	ns := prefix + string(uuid.NewUUID())[:8]
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func installCRDs(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane) {
	t.Helper()
	root, err := localcluster.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs under config/crd/bases: %v", err)
	}
	var docs [][]byte
	for _, f := range crds {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, data)
	}
	if err := cp.InstallCRDs(ctx, api.GroupVersion.Group, docs...); err != nil {
		t.Fatal(err)
	}
}

// A degraded etcd (one member stopped) makes the node's part refuse before anything changes, naming the
// member; the Lease is released and every component keeps running.
func TestADegradedEtcdMemberMakesTheNodeRefuseWithTheReasonAndChangeNothing(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, cs, _ := admin(t, cp)
	c := agentClient(t, cp)
	n, down := cp.Nodes[1], cp.Nodes[2]
	ns := prepare(t, ctx, cp, cs, "cp-degraded-")
	stopEtcd(t, cp, down)
	before := pids(t, cp, n.Name)
	no := false
	r := nodeTurn(t, ctx, c, n.Name, api.ControlPlanePolicySpec{Renewal: api.ControlPlaneRenewal{Enabled: &no}})
	if err := inProcessAgent(t, c, n, ns).Work(ctx, r); err != nil {
		t.Fatal(err)
	}
	op := get(t, c, n.Name).Status.Operation
	if op == nil || op.Phase != api.NodeFailed || op.Step != api.StepHealth {
		t.Fatalf("the report: %+v; want Failed at step Health", op)
	}
	if !strings.Contains(op.Message, "nothing was changed") || !strings.Contains(op.Message, down.Name) {
		t.Errorf("message %q; want it to say nothing was changed and name %s", op.Message, down.Name)
	}
	if op.Snapshot != nil || len(op.Components) != 0 {
		t.Errorf("a refused node took a snapshot or touched components: %+v", op)
	}
	if after := pids(t, cp, n.Name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("processes changed: %v → %v", before, after)
	}
	if holder, err := nodeagent.HeldBy(ctx, c, ns, time.Now()); err != nil || holder != "" {
		t.Errorf("the Lease is held by %q (%v) after the refusal", holder, err)
	}
}
