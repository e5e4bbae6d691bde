package controlplane

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	api "github.com/certrollout/certrollout/api/v1alpha1"
	"github.com/certrollout/certrollout/internal/charttest"
	"github.com/certrollout/certrollout/internal/localcluster"
)

// fleetValues are the chart values of the control-plane mode: the node agent on every control-plane
// node doing its node's part of rollouts, renewal on, the operator's /root/.kube refreshed.
const fleetValues = `nodeAgent:
  enabled: true
  controlPlaneRollouts:
    enabled: true
    kubeconfigCopyDirs: [/root/.kube]
`

// fleet is certrollout as the chart installs it in the control-plane mode: the controller and one agent
// per control-plane node, each a process of this test (there is no container runtime) run with exactly
// the rendered arguments, under the chart's ServiceAccounts and RBAC, through the load balancer in front
// of the API servers; the test can SIGKILL any of them.
type fleet struct {
	controller *process
	agents     map[string]*process
	probes     string // the controller's /readyz address
}

// installFleet applies the chart's objects (but the controller's Deployment: its process runs here) and
// starts the controller and the three agents.
func installFleet(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane) *fleet {
	t.Helper()
	cfg, cs, _ := admin(t, cp)
	agentClient(t, cp) // starts the load balancer
	installCRDs(t, ctx, cp)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ch, err := charttest.Load()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := charttest.Values(fleetValues)
	if err != nil {
		t.Fatal(err)
	}
	r, err := charttest.Render(ch, "certrollout", agentNamespace, vals)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := r.YAML(func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "CustomResourceDefinition" || u.GetKind() == "Deployment"
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Apply(ctx, cfg, manifests); err != nil {
		t.Fatalf("applying the chart's objects: %v", err)
	}
	f := &fleet{agents: map[string]*process{}}
	f.controller, f.probes = runController(t, ctx, cp, cs, r)
	ds, err := cs.AppsV1().DaemonSets(agentNamespace).Get(ctx, "certrollout-node-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cp.Nodes {
		f.agents[n.Name] = runAgent(t, ctx, cs, agentPod(t, ctx, cs, ds, n.Name), n, lb.URL())
	}
	return f
}

// runController runs the chart's controller container as a process: its arguments, as its
// ServiceAccount, through the load balancer. Out of a pod it cannot find its namespace, so the Lease's is
// given, and its endpoints listen on free loopback ports.
func runController(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane, cs kubernetes.Interface, r charttest.Rendered) (*process, string) {
	t.Helper()
	var dep appsv1.Deployment
	deps := r.OfKind("Deployment")
	if len(deps) != 1 {
		t.Fatalf("the chart renders %d Deployments, want the controller's", len(deps))
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(deps[0].Object, &dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	tok, err := cs.CoreV1().ServiceAccounts(agentNamespace).CreateToken(ctx, pod.ServiceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := tokenKubeconfig(t, dir, lb.URL(), filepath.Join(cp.Nodes[0].Root, "etc", "kubernetes", "pki", "ca.crt"), tok.Status.Token)
	probes, metrics := freeAddress(t), freeAddress(t)
	var container corev1.Container
	for _, c := range pod.Containers {
		if c.Name == "controller" {
			container = c
		}
	}
	if container.Name == "" {
		t.Fatal("no controller container rendered")
	}
	args := append([]string{certrolloutBinary(t)}, container.Args...)
	args = append(args, "--kubeconfig="+kubeconfig, "--leader-election-namespace="+agentNamespace,
		"--health-probe-bind-address="+probes, "--metrics-bind-address="+metrics)
	p := startProcess(t, "controller", filepath.Join(dir, "controller.log"), os.Environ(), args)
	waitReadyz(t, probes)
	return p, probes
}

// waitReadyz waits until the controller at addr answers /readyz.
func waitReadyz(t *testing.T, addr string) {
	t.Helper()
	eventually(t, "the controller's /readyz", func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// agePKI renews every kubeadm certificate and kubeconfig of node with real kubeadm and the node's
// configuration, whose validity is agedValidity: the files are then within the default renewBefore, and
// every component still serves or uses the ones it loaded.
func agePKI(t *testing.T, ctx context.Context, cp *localcluster.ControlPlane, n localcluster.ControlPlaneNode) {
	t.Helper()
	if out, err := cp.Kubeadm(ctx, n.Name, "certs", "renew", "all", "--config", n.KubeadmConfig); err != nil {
		t.Fatalf("kubeadm certs renew all on %s: %v\n%s", n.Name, err, out)
	}
}

// outage is a span of time in which a poller's every request failed.
type outage struct{ from, to time.Time }

func (o outage) length() time.Duration { return o.to.Sub(o.from) }

// availability polls url every 100 ms through client and keeps the spans in which it failed.
type availability struct {
	mu      sync.Mutex
	outages []outage
	polls   int
	failed  int
	down    *time.Time
}

func pollAvailability(ctx context.Context, c *http.Client, url string, ok func(*http.Response) bool) *availability {
	a := &availability{}
	go func() {
		for ctx.Err() == nil {
			at := time.Now()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			up := err == nil && ok(resp)
			if err == nil {
				_ = resp.Body.Close()
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			a.observe(at, up)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return a
}

func (a *availability) observe(at time.Time, up bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.polls++
	switch {
	case !up && a.down == nil:
		a.failed++
		a.down = &at
	case !up:
		a.failed++
	case a.down != nil:
		a.outages = append(a.outages, outage{*a.down, at})
		a.down = nil
	}
}

// longest is the longest outage so far (one still going counts until now), and how many polls were made.
func (a *availability) longest() (time.Duration, int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var d time.Duration
	for _, o := range a.outages {
		d = max(d, o.length())
	}
	if a.down != nil {
		d = max(d, time.Since(*a.down))
	}
	return d, a.polls, a.failed
}

// readyzOK is an API server's /readyz answering 200.
func readyzOK(r *http.Response) bool { return r.StatusCode == http.StatusOK }

// lbClient is an HTTP client with the admin's credentials, for the load balancer's address.
func lbClient(t *testing.T, cp *localcluster.ControlPlane) *http.Client {
	t.Helper()
	cfg, _, _ := admin(t, cp)
	cfg = rest.CopyConfig(cfg)
	cfg.Host = lb.URL()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// componentWatch counts, for every control-plane component on every node, the times its manifest left
// the manifests folder and the processes it ran; and the spans in which the load balancer's health check
// found each node's API server unready (its restarts). Which processes the kubelet started from a
// manifest put back (a restart by certrollout), rather than after a crash, its log says.
type componentWatch struct {
	cp       *localcluster.ControlPlane
	logFrom  map[string]int64 // node → size of its static-pod runner's log when the watch began
	mu       sync.Mutex
	moves    map[string]map[string]int          // node → component → times its manifest left
	out      map[string]map[string]bool         // node → component → its manifest is out now
	pids     map[string]map[string]map[int]bool // node → component → processes
	unready  map[int][]outage                   // node index → spans
	downFrom map[int]time.Time
}

func watchComponents(ctx context.Context, cp *localcluster.ControlPlane) *componentWatch {
	w := &componentWatch{cp: cp, logFrom: map[string]int64{}, moves: map[string]map[string]int{}, out: map[string]map[string]bool{},
		pids: map[string]map[string]map[int]bool{}, unready: map[int][]outage{}, downFrom: map[int]time.Time{}}
	for _, n := range cp.Nodes {
		if fi, err := os.Stat(runnerLog(cp, n.Name)); err == nil {
			w.logFrom[n.Name] = fi.Size()
		}
		w.moves[n.Name], w.out[n.Name], w.pids[n.Name] = map[string]int{}, map[string]bool{}, map[string]map[int]bool{}
		for _, comp := range localcluster.ControlPlaneComponents {
			w.pids[n.Name][comp] = map[int]bool{}
		}
	}
	go func() {
		for ctx.Err() == nil {
			w.sample(cp, time.Now())
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func (w *componentWatch) sample(cp *localcluster.ControlPlane, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range cp.Nodes {
		for _, comp := range localcluster.ControlPlaneComponents {
			_, err := os.Stat(n.ManifestPath(comp))
			out := err != nil
			if out && !w.out[n.Name][comp] {
				w.moves[n.Name][comp]++
			}
			w.out[n.Name][comp] = out
			if pid, err := cp.ComponentPID(n.Name, comp); err == nil {
				w.pids[n.Name][comp][pid] = true
			}
		}
	}
	for i, ready := range lb.Ready() {
		from, down := w.downFrom[i]
		switch {
		case !ready && !down:
			w.downFrom[i] = now
		case ready && down:
			w.unready[i] = append(w.unready[i], outage{from, now})
			delete(w.downFrom, i)
		}
	}
}

// restarts is how many times component's manifest left the manifests folder on node while watched, how
// many processes it ran, and how many of them the kubelet started from its manifest (not after a crash).
func (w *componentWatch) restarts(t *testing.T, node, component string) (moves, processes, fromManifest int) {
	t.Helper()
	f, err := os.Open(runnerLog(w.cp, node))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(w.logFrom[node], 0); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"Started static pod" pod="`+component+`"`) && strings.Contains(line, "restartCount=0") {
			fromManifest++
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moves[node][component], len(w.pids[node][component]), fromManifest
}

// runnerLog is the log of node's static-pod runner (its kubelet).
func runnerLog(cp *localcluster.ControlPlane, node string) string {
	return filepath.Join(cp.Dir, "logs", "staticpod-runner-"+node+".log")
}

// shortestRestart is the shortest span in which one API server was out of the load balancer's rotation.
func (w *componentWatch) shortestRestart() (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var shortest time.Duration
	count := 0
	for _, spans := range w.unready {
		for _, s := range spans {
			if count == 0 || s.length() < shortest {
				shortest = s.length()
			}
			count++
		}
	}
	return shortest, count
}

// operationOf is node's report of its part in rollout, nil when it reports another rollout.
func operationOf(ctx context.Context, c client.Client, node string, rollout *api.ControlPlaneRollout) *api.NodeOperation {
	var nc api.NodeCertificates
	if err := c.Get(ctx, client.ObjectKey{Name: node}, &nc); err != nil {
		return nil
	}
	if op := nc.Status.Operation; op != nil && op.RolloutUID == string(rollout.UID) {
		return op
	}
	return nil
}

// componentMoving says whether a component of op is between its manifest's move out and its verification.
func componentMoving(op *api.NodeOperation) bool {
	if op == nil || op.Step != api.StepRestart {
		return false
	}
	for _, c := range op.Components {
		if c.State == api.RestartStopping || c.State == api.RestartStarting {
			return true
		}
	}
	return false
}

func manifestsInPlace(t *testing.T, cp *localcluster.ControlPlane) {
	t.Helper()
	for _, n := range cp.Nodes {
		for _, comp := range localcluster.ControlPlaneComponents {
			if _, err := os.Stat(n.ManifestPath(comp)); err != nil {
				t.Errorf("%s on %s: its manifest is not in place: %v", comp, n.Name, err)
			}
		}
		staged, _ := filepath.Glob(filepath.Join(n.Root, "var", "lib", "certrollout", "staged-manifests", "*"))
		if len(staged) != 0 {
			t.Errorf("%s: staged manifests left behind: %v", n.Name, staged)
		}
		hidden, _ := filepath.Glob(filepath.Join(filepath.Dir(n.ManifestPath("etcd")), ".*"))
		if len(hidden) != 0 {
			t.Errorf("%s: hidden files left in the manifests folder: %v", n.Name, hidden)
		}
	}
}

func joinNames(nodes []api.ControlPlaneNodeStatus) string {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name+":"+string(n.Phase))
	}
	return strings.Join(names, " ")
}
