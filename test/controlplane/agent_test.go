package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/charttest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

const agentNamespace = "certrollout-system"

var (
	buildOnce   sync.Once
	certrollout string
	buildErr    error
)

// certrolloutBinary builds certrollout from this checkout once per test run.
func certrolloutBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := localcluster.FindRepoRoot(".")
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "certrollout-cp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		certrollout = filepath.Join(dir, "certrollout")
		build := exec.Command("go", "build", "-o", certrollout, "./cmd/certrollout")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building certrollout: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return certrollout
}

// admin is a cluster-admin client at the last node's API server: the test restarts node 1's components,
// and its own requests must not depend on them.
func admin(t *testing.T, cp *localcluster.ControlPlane) (*rest.Config, kubernetes.Interface, client.Client) {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	cfg.Host = cp.Nodes[len(cp.Nodes)-1].APIServerURL()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := api.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cs, c
}

// installAgent applies what the chart ships for the node agent (ServiceAccount, RBAC, admission policy,
// DaemonSet) and the CRDs, as `helm install --set nodeAgent.enabled=true` would.
func installAgent(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane, cfg *rest.Config, cs kubernetes.Interface) *appsv1.DaemonSet {
	t.Helper()
	installCRDs(t, ctx, cp)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ch, err := charttest.Load()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := charttest.Values("nodeAgent:\n  enabled: true\n")
	if err != nil {
		t.Fatal(err)
	}
	r, err := charttest.Render(ch, "certrollout", agentNamespace, vals)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := r.YAML(func(u *unstructured.Unstructured) bool {
		return !strings.Contains(u.GetName(), "node-agent") && !strings.Contains(u.GetName(), "node-certificates")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, cfg, manifests); err != nil {
		t.Fatalf("applying the node agent's objects: %v\n%s", err, manifests)
	}
	ds, err := cs.AppsV1().DaemonSets(agentNamespace).Get(ctx, "certrollout-node-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// agentPod waits for the DaemonSet's pod on node made from its current template (its arguments and
// environment). A pod of an earlier template (or one the rolling update is deleting) is deleted at once,
// as the node's kubelet would confirm: no kubelet runs the agents' pods here.
func agentPod(t *testing.T, ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet, node string) *corev1.Pod {
	t.Helper()
	want := ds.Spec.Template.Spec.Containers[0]
	var found *corev1.Pod
	eventuallyWithin(t, 2*time.Minute, "the DaemonSet's pod on "+node, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(ds.Spec.Selector)})
		if err != nil {
			return false, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Spec.NodeName != node {
				continue
			}
			got := p.Spec.Containers[0]
			if p.DeletionTimestamp == nil && equality.Semantic.DeepEqual(got.Args, want.Args) && equality.Semantic.DeepEqual(got.Env, want.Env) {
				found = p
				return true, nil
			}
			if err := cs.CoreV1().Pods(agentNamespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return false, nil
	})
	return found
}

// runAgent runs the agent of pod as its kubelet would: the container's arguments and environment, a
// token bound to the pod (so the admission policy sees the node), and the pod's hostPath volumes
// bind-mounted where the pod mounts them, read-only where it says so, in a private mount namespace. The
// container's root is a folder of the test (there is no container runtime here), so --host-root and
// the mount paths are under it; a DirectoryOrCreate hostPath is created as the kubelet would. The agent
// scans every 2 seconds. server is the API server it talks to.
func runAgent(t *testing.T, ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, n localcluster.ControlPlaneNode, server string) *process {
	t.Helper()
	tok, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr(int64(3600)),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := tokenKubeconfig(t, dir, server, filepath.Join(n.Root, "etc", "kubernetes", "pki", "ca.crt"), tok.Status.Token)

	container := pod.Spec.Containers[0]
	rootfs := filepath.Join(dir, "rootfs")
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	var script strings.Builder
	script.WriteString("set -e; mount --make-rprivate /\n")
	for _, m := range container.VolumeMounts {
		v, ok := volumes[m.Name]
		if ok && v.Projected != nil && m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount" {
			continue // the pod's token: given to the agent in its kubeconfig instead
		}
		if !ok || v.HostPath == nil {
			t.Fatalf("the agent mounts %s, which is not a hostPath volume of its pod", m.Name)
		}
		target := filepath.Join(rootfs, m.MountPath)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		source := filepath.Join(n.Root, v.HostPath.Path)
		if v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectoryOrCreate {
			if err := os.MkdirAll(source, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&script, "mount --bind %q %q\n", source, target)
		if m.ReadOnly {
			fmt.Fprintf(&script, "mount -o remount,bind,ro %q\n", target)
		}
	}
	script.WriteString(`exec "$@"` + "\n")
	args := []string{"unshare", "-m", "sh", "-c", script.String(), "sh", certrolloutBinary(t)}
	for _, a := range container.Args {
		if h, ok := strings.CutPrefix(a, "--host-root="); ok {
			a = "--host-root=" + filepath.Join(rootfs, h)
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+kubeconfig, "--interval=2s", "--heartbeat=1m", "--health-probe-bind-address=0")
	env := os.Environ()
	for _, e := range container.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env = append(env, e.Name+"="+pod.Spec.NodeName)
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+pod.Namespace)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		default:
			t.Fatalf("the agent's environment variable %s comes from %v, which this test does not provide", e.Name, e.ValueFrom)
		}
	}
	return startProcess(t, "agent on "+n.Name, filepath.Join(dir, "agent.log"), env, args)
}

// tokenKubeconfig writes dir/kubeconfig: server, its CA file, and a bearer token.
func tokenKubeconfig(t *testing.T, dir, server, caFile, token string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["user"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	kc.CurrentContext = "user"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTheAgentsShowNodeOneServingOldCertificatesAfterKubeadmRenewsThemUntilItsStaticPodsMove(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg, cs, c := admin(t, cp)
	ds := installAgent(t, ctx, cp, cfg, cs)
	server := cp.Nodes[len(cp.Nodes)-1].APIServerURL()
	for _, n := range cp.Nodes {
		runAgent(t, ctx, cs, agentPod(t, ctx, cs, ds, n.Name), n, server)
	}

	// Every node reports, every component current.
	before := map[string]api.NodeCertificates{}
	for _, n := range cp.Nodes {
		before[n.Name] = waitFor(t, c, n.Name, "every component Current", allCurrent)
		nc := before[n.Name]
		if len(nc.OwnerReferences) != 1 || nc.OwnerReferences[0].Kind != "Node" || nc.OwnerReferences[0].Name != n.Name {
			t.Errorf("NodeCertificates %s is owned by %v, want its Node", n.Name, nc.OwnerReferences)
		}
		for _, want := range []string{"apiserver", "apiserver-etcd-client", "etcd-peer", "admin.conf", "controller-manager.conf", "ca", "kubelet-client", "kubelet-serving"} {
			if fileNamed(nc, want) == nil {
				t.Errorf("%s: no file %s in %v", n.Name, want, fileNames(nc))
			}
		}
	}
	out, code := check(t, cp, "--control-plane")
	if code != 0 {
		t.Fatalf("check --control-plane exited %d before any renewal:\n%s", code, out)
	}
	for _, n := range cp.Nodes {
		if !strings.Contains(out, n.Name) {
			t.Errorf("check --control-plane does not list %s:\n%s", n.Name, out)
		}
	}
	t.Logf("before:\n%s", out)

	// Real kubeadm renews every certificate of node 1.
	n1 := cp.Nodes[0]
	if out, err := cp.Kubeadm(ctx, n1.Name, "certs", "renew", "all", "--config", n1.KubeadmConfig); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	renewed := waitFor(t, c, n1.Name, "the renewed files seen and the components that use them ServesOld", func(nc api.NodeCertificates) bool {
		for _, name := range []string{"apiserver", "apiserver-etcd-client", "scheduler.conf", "controller-manager.conf"} {
			if f := fileNamed(nc, name); f == nil || f.Fingerprint == fingerprintOf(before[n1.Name], name) {
				return false
			}
		}
		for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			if comp := componentNamed(nc, name); comp == nil || comp.State != api.ComponentServesOld {
				return false
			}
		}
		return true
	})
	for _, name := range []string{"ca", "etcd-ca", "front-proxy-ca"} {
		if fingerprintOf(renewed, name) == "" || fingerprintOf(renewed, name) != fingerprintOf(before[n1.Name], name) {
			t.Errorf("kubeadm certs renew all changed the CA %s: it renews leaves only", name)
		}
	}
	for _, comp := range renewed.Status.Components {
		t.Logf("%s after renewal: %s %s", comp.Name, comp.State, comp.Message)
	}
	// Nodes 2 and 3 are untouched.
	for _, n := range cp.Nodes[1:] {
		nc := get(t, c, n.Name)
		if !allCurrent(nc) {
			t.Errorf("%s is not all Current after node 1's renewal: %+v", n.Name, nc.Status.Components)
		}
		for _, f := range before[n.Name].Status.Files {
			if g := fileNamed(nc, f.Name); g == nil || g.Fingerprint != f.Fingerprint {
				t.Errorf("%s: %s changed after a renewal on node 1", n.Name, f.Name)
			}
		}
	}
	out, code = check(t, cp, "--control-plane")
	t.Logf("after the renewal (exit %d):\n%s", code, out)
	if code == 0 {
		t.Errorf("check --control-plane exited 0 while node 1's components serve old certificates")
	}
	if !strings.Contains(out, "old certificate since") {
		t.Errorf("check --control-plane does not say which files are served old:\n%s", out)
	}

	// Restarting the components the kubeadm way (the manifest out of the folder and back) makes them
	// current. etcd is restarted only when the agent says it needs it.
	for _, comp := range []string{"kube-apiserver", "kube-scheduler", "kube-controller-manager", "etcd"} {
		if componentNamed(get(t, c, n1.Name), comp).State != api.ComponentServesOld {
			continue
		}
		moveManifest(t, cp, cs, n1, comp)
	}
	waitFor(t, c, n1.Name, "every component Current after the manifest moves", allCurrent)
	out, code = check(t, cp, "--control-plane")
	if code != 0 {
		t.Errorf("check --control-plane exited %d after the restarts:\n%s", code, out)
	}
	t.Logf("after the restarts:\n%s", out)
}

// moveManifest restarts a static pod as kubeadm's documentation says: its manifest leaves the manifests
// folder, the component stops, the manifest comes back and it starts again.
func moveManifest(t *testing.T, cp *localcluster.ControlPlane, cs kubernetes.Interface, n localcluster.ControlPlaneNode, component string) {
	t.Helper()
	pid := pids(t, cp, n.Name)[component]
	manifest := n.ManifestPath(component)
	aside := filepath.Join(n.Root, component+".yaml.moved")
	if err := os.Rename(manifest, aside); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 2*time.Minute, component+" on "+n.Name+" to stop", func(context.Context) (bool, error) {
		return syscall.Kill(pid, 0) != nil, nil
	})
	if err := os.Rename(aside, manifest); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 3*time.Minute, component+" on "+n.Name+" to run again, Ready", func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("kube-system").Get(ctx, component+"-"+n.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // the mirror pod comes back with the component
		}
		newPID, err := cp.ComponentPID(n.Name, component)
		return err == nil && newPID != pid && localcluster.PodReady(p), nil
	})
}

func allCurrent(nc api.NodeCertificates) bool {
	if len(nc.Status.Components) < 5 {
		return false
	}
	for _, comp := range nc.Status.Components {
		if comp.State != api.ComponentCurrent {
			return false
		}
	}
	return true
}

func get(t *testing.T, c client.Client, name string) api.NodeCertificates {
	t.Helper()
	var nc api.NodeCertificates
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &nc); err != nil {
		t.Fatal(err)
	}
	return nc
}

// waitFor waits until the NodeCertificates of node satisfies cond, and returns it.
func waitFor(t *testing.T, c client.Client, node, what string, cond func(api.NodeCertificates) bool) api.NodeCertificates {
	t.Helper()
	var nc api.NodeCertificates
	eventuallyWithin(t, 4*time.Minute, node+": "+what, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Name: node}, &nc)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && cond(nc), err
	})
	return nc
}

func fileNamed(nc api.NodeCertificates, name string) *api.NodeCertificateFile {
	for i := range nc.Status.Files {
		if nc.Status.Files[i].Name == name {
			return &nc.Status.Files[i]
		}
	}
	return nil
}

// fingerprintOf is the fingerprint of the file named name, "" when there is none.
func fingerprintOf(nc api.NodeCertificates, name string) string {
	if f := fileNamed(nc, name); f != nil {
		return f.Fingerprint
	}
	return ""
}

func fileNames(nc api.NodeCertificates) []string {
	var out []string
	for _, f := range nc.Status.Files {
		out = append(out, f.Name)
	}
	return out
}

func componentNamed(nc api.NodeCertificates, name string) *api.ControlPlaneComponent {
	for i := range nc.Status.Components {
		if nc.Status.Components[i].Name == name {
			return &nc.Status.Components[i]
		}
	}
	return &api.ControlPlaneComponent{Name: name}
}

// check runs `certrollout check ARGS` with the admin kubeconfig at the last node's API server.
func check(t *testing.T, cp *localcluster.ControlPlane, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(certrolloutBinary(t), append([]string{"check", "--server", cp.Nodes[len(cp.Nodes)-1].APIServerURL()}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func eventuallyWithin(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ok, err := cond(ctx)
		cancel()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			fatalf(t, "gave up waiting for %s (last error: %v)", what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ptr[T any](v T) *T { return &v }
