// Package controlplane tests the kubeadm-shaped local control plane (localcluster.StartControlPlane and
// the staticpod runner) against its real processes: three API servers, a three-member etcd, mirror pods
// posted the way the kubelet posts them, and real kubeadm reading a node's folder. On it, the end-to-end
// test of the control-plane read side: the node agent installed as the chart ships it (its RBAC, its
// admission policy, its read-only host mounts), real `kubeadm certs renew all` on one node,
// `certrollout check --control-plane`, and the manifest move that restarts a static pod.
package controlplane

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certrollout/certrollout/internal/localcluster"
	"github.com/certrollout/certrollout/internal/staticpod"
)

// envControlPlane names a folder holding a control plane started by `hack/cluster up --control-plane`;
// when set, the tests use it instead of starting their own (quick iteration).
const envControlPlane = "CERTROLLOUT_TEST_CONTROL_PLANE"

var shared *localcluster.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx := context.Background()
	if dir := os.Getenv(envControlPlane); dir != "" {
		cp, err := localcluster.AttachControlPlane(ctx, dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "controlplane: %s=%s: %v\n", envControlPlane, dir, err)
			return 1
		}
		shared = cp
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "certrollout-cp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	cp, err := localcluster.StartControlPlane(ctx, localcluster.ControlPlaneOptions{Dir: dir, Log: os.Stderr, CertificateValidity: agedValidity, KwokNodes: 1})
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: starting the control plane: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "controlplane: ready in %s (%s)\n", time.Since(start).Round(time.Second), dir)
	shared = cp
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: stopping: %v\n", err)
		code = 1
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "controlplane: logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

// agedValidity is the validity of the test control plane's first certificates: they expire within the
// default renewBefore (30 days), as if written by kubeadm 345 days ago.
const agedValidity = 20 * 24 * time.Hour

func controlPlane(t *testing.T) *localcluster.ControlPlane {
	t.Helper()
	if shared == nil {
		t.Skip("needs the local control plane: run without -short")
	}
	return shared
}

// eventually polls cond until it holds; the timeout is generous (two shared cores), never asserted.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			fatalf(t, "timed out waiting for %s (last error: %v)", what, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func mirrorPod(ctx context.Context, cp *localcluster.ControlPlane, component, node string) (*corev1.Pod, error) {
	return cp.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, staticpod.MirrorPodName(component, node), metav1.GetOptions{})
}

func startedAt(p *corev1.Pod) time.Time {
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
		return time.Time{}
	}
	return p.Status.ContainerStatuses[0].State.Running.StartedAt.Time
}

func TestEveryAPIServerIsReadyAndEtcdHasAMemberPerNode(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	if len(cp.Nodes) != 3 {
		t.Fatalf("want 3 nodes, got %d", len(cp.Nodes))
	}
	for i, n := range cp.Nodes {
		if want := "cp-" + strconv.Itoa(i+1); n.Name != want || n.IP != "127.0.0."+strconv.Itoa(i+1) {
			t.Errorf("node %d is %s on %s, want %s on 127.0.0.%d", i, n.Name, n.IP, want, i+1)
		}
		// Each API server answers on its own address with the kubeadm certificate of its own node.
		client, err := cp.NodeClient(n.Name)
		if err != nil {
			t.Fatal(err)
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Errorf("/readyz of %s: %q, %v", n.APIServerURL(), body, err)
		}
	}
	for _, n := range cp.Nodes {
		members, err := cp.EtcdMembers(ctx, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, m := range members {
			names[m.Name] = true
			for _, u := range append(m.PeerURLs, m.ClientURLs...) {
				if !strings.HasPrefix(u, "https://") {
					t.Errorf("member %s speaks plain HTTP: %s", m.Name, u)
				}
			}
		}
		if len(members) != 3 || !names["cp-1"] || !names["cp-2"] || !names["cp-3"] {
			t.Errorf("etcd on %s lists members %v, want cp-1, cp-2, cp-3", n.Name, names)
		}
	}
}

func TestMirrorPodsLookLikeTheKubeletsAndAreReady(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	pods, err := cp.Client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		byName[p.Name] = p
	}
	if len(byName) != 12 {
		t.Errorf("want 12 control-plane mirror pods, got %d", len(byName))
	}
	for _, n := range cp.Nodes {
		for _, comp := range localcluster.ControlPlaneComponents {
			name := staticpod.MirrorPodName(comp, n.Name)
			p, ok := byName[name]
			if !ok {
				t.Errorf("no mirror pod %s", name)
				continue
			}
			hash := p.Annotations[staticpod.AnnotationConfigHash]
			if hash == "" || p.Annotations[staticpod.AnnotationConfigMirror] != hash || p.Annotations[staticpod.AnnotationConfigSource] != "file" || p.Annotations[staticpod.AnnotationConfigSeen] == "" {
				t.Errorf("%s: kubelet annotations missing or inconsistent: %v", name, p.Annotations)
			}
			if p.Labels["component"] != comp || p.Labels["tier"] != "control-plane" {
				t.Errorf("%s: labels %v", name, p.Labels)
			}
			if p.Spec.NodeName != n.Name || len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "Node" || p.OwnerReferences[0].Name != n.Name {
				t.Errorf("%s: not bound to and owned by Node %s: nodeName %q, owners %v", name, n.Name, p.Spec.NodeName, p.OwnerReferences)
			}
			if !localcluster.PodReady(&p) || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready || startedAt(&p).IsZero() {
				t.Errorf("%s: not Running and Ready with a start time: %+v", name, p.Status)
			}
			pid, err := cp.ComponentPID(n.Name, comp)
			if err != nil {
				t.Error(err)
			} else if got, want := p.Status.ContainerStatuses[0].ContainerID, staticpod.ContainerIDPrefix+strconv.Itoa(pid); got != want {
				t.Errorf("%s: containerID %s, want %s", name, got, want)
			}
		}
		node, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; !ok || len(node.Spec.Taints) == 0 || node.Spec.Taints[0].Key != "node-role.kubernetes.io/control-plane" {
			t.Errorf("Node %s not marked as control plane: labels %v, taints %v", n.Name, node.Labels, node.Spec.Taints)
		}
		if node.Status.DaemonEndpoints.KubeletEndpoint.Port != int32(n.Ports.Kubelet) { //nolint:gosec // a port number
			t.Errorf("Node %s: kubelet port %d, want %d", n.Name, node.Status.DaemonEndpoints.KubeletEndpoint.Port, n.Ports.Kubelet)
		}
	}
}

// The runbook trap: `kubectl delete pod -l component=kube-apiserver` deletes the mirror pod, the runner
// (like the kubelet) posts it again, and the API server process never restarted.
func TestDeletingAMirrorPodRestartsNothing(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	const comp, node = "kube-apiserver", "cp-1"
	before, err := mirrorPod(ctx, cp, comp, node)
	if err != nil {
		t.Fatal(err)
	}
	pidBefore, err := cp.ComponentPID(node, comp)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.CoreV1().Pods(metav1.NamespaceSystem).Delete(ctx, before.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var after *corev1.Pod
	eventually(t, "the mirror pod to be posted again", func(ctx context.Context) (bool, error) {
		p, err := mirrorPod(ctx, cp, comp, node)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		after = p
		return p.UID != before.UID && p.DeletionTimestamp == nil && localcluster.PodReady(p), nil
	})
	if !startedAt(after).Equal(startedAt(before)) {
		t.Errorf("startedAt changed from %s to %s: the process should not have restarted", startedAt(before), startedAt(after))
	}
	if after.Status.ContainerStatuses[0].RestartCount != before.Status.ContainerStatuses[0].RestartCount {
		t.Errorf("restartCount changed from %d to %d", before.Status.ContainerStatuses[0].RestartCount, after.Status.ContainerStatuses[0].RestartCount)
	}
	pidAfter, err := cp.ComponentPID(node, comp)
	if err != nil {
		t.Fatal(err)
	}
	if pidAfter != pidBefore || after.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID {
		t.Errorf("the process changed: pid %d → %d, containerID %s → %s", pidBefore, pidAfter,
			before.Status.ContainerStatuses[0].ContainerID, after.Status.ContainerStatuses[0].ContainerID)
	}
}

// Moving a manifest out of the folder is how kubeadm's runbooks restart a static pod for real.
func TestMovingAManifestOutStopsTheProcessAndBackStartsANewOne(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	const comp = "kube-scheduler"
	n, err := cp.Node("cp-1")
	if err != nil {
		t.Fatal(err)
	}
	before, err := mirrorPod(ctx, cp, comp, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	pidBefore, err := cp.ComponentPID(n.Name, comp)
	if err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(t.TempDir(), comp+".yaml")
	if err := os.Rename(n.ManifestPath(comp), aside); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = os.Rename(aside, n.ManifestPath(comp))
		}
	})
	eventually(t, "the scheduler process to stop and its mirror pod to go", func(ctx context.Context) (bool, error) {
		_, err := mirrorPod(ctx, cp, comp, n.Name)
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return apierrors.IsNotFound(err) && processGone(pidBefore), nil
	})
	if _, err := cp.ComponentPID(n.Name, comp); err == nil {
		t.Error("a PID is still recorded for the removed static pod")
	}
	// The mirror pod's startedAt has a resolution of a second: make the new start visibly later.
	time.Sleep(1100 * time.Millisecond)
	if err := os.Rename(aside, n.ManifestPath(comp)); err != nil {
		t.Fatal(err)
	}
	restored = true
	var after *corev1.Pod
	eventually(t, "a new scheduler process and mirror pod", func(ctx context.Context) (bool, error) {
		p, err := mirrorPod(ctx, cp, comp, n.Name)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		after = p
		return err == nil && localcluster.PodReady(p), err
	})
	pidAfter, err := cp.ComponentPID(n.Name, comp)
	if err != nil {
		t.Fatal(err)
	}
	if pidAfter == pidBefore {
		t.Errorf("same PID %d after the manifest came back", pidAfter)
	}
	if !startedAt(after).After(startedAt(before)) {
		t.Errorf("startedAt %s is not later than %s", startedAt(after), startedAt(before))
	}
	if after.Annotations[staticpod.AnnotationConfigHash] != before.Annotations[staticpod.AnnotationConfigHash] {
		t.Errorf("the same manifest got another hash: %s → %s", before.Annotations[staticpod.AnnotationConfigHash], after.Annotations[staticpod.AnnotationConfigHash])
	}
}

// A crash is not the trap: the runner restarts the process and counts it, as the kubelet does.
func TestAKilledComponentIsRestartedAndCounted(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	const comp, node = "kube-controller-manager", "cp-2"
	before, err := mirrorPod(ctx, cp, comp, node)
	if err != nil {
		t.Fatal(err)
	}
	pidBefore, err := cp.ComponentPID(node, comp)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.KillComponent(node, comp, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the controller-manager to run again with restartCount+1", func(ctx context.Context) (bool, error) {
		p, err := mirrorPod(ctx, cp, comp, node)
		if err != nil {
			return false, err
		}
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == before.Status.ContainerStatuses[0].RestartCount+1 &&
			cs[0].State.Running != nil && cs[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID &&
			cs[0].LastTerminationState.Terminated != nil && localcluster.PodReady(p), nil
	})
	if pid, err := cp.ComponentPID(node, comp); err != nil || pid == pidBefore {
		t.Errorf("PID after the crash: %d, %v (before %d)", pid, err, pidBefore)
	}
}

func TestRealKubeadmChecksTheExpirationOfANode(t *testing.T) {
	cp := controlPlane(t)
	n, err := cp.Node("cp-2")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cp.Kubeadm(context.Background(), n.Name, "certs", "check-expiration", "--config", n.KubeadmConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"CERTIFICATE", "admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf",
		"apiserver ", "apiserver-etcd-client", "apiserver-kubelet-client", "etcd-healthcheck-client",
		"etcd-peer", "etcd-server", "front-proxy-client", "CERTIFICATE AUTHORITY", "etcd-ca", "front-proxy-ca",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubeadm certs check-expiration does not list %q:\n%s", want, out)
		}
	}
	// Every row is a certificate kubeadm wrote a moment ago: none is missing or expired.
	for _, bad := range []string{"<invalid>", "MISSING", "missing"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("kubeadm reports %q:\n%s", bad, out)
		}
	}
}

// processGone reports that pid no longer exists (its runner reaps it, so no zombie is left).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
