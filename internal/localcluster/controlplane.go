package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/certrollout/certrollout/internal/staticpod"
)

// ControlPlaneOptions configure a kubeadm-shaped control plane.
type ControlPlaneOptions struct {
	// Dir holds everything: nodes/cp-N (each node's root folder), logs, state and kubeconfig.
	Dir string
	// Nodes is the number of control-plane nodes, 1 to 9; default 3.
	Nodes int
	// Versions of the components; zero means VersionsFromEnv.
	Versions Versions
	// Binaries to run; nil means EnsureBinaries. Kubeadm is required.
	Binaries *Binaries
	// RepoRoot is the certrollout checkout, to build the static-pod runner; empty means search upwards.
	RepoRoot string
	// KwokNodes adds that many kwok nodes for ordinary workloads (default none); kwok manages only them.
	KwokNodes int
	// Detach starts components that outlive the calling process (`hack/cluster up --control-plane`).
	Detach bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Timeout bounds the start (building the runner included); default 8 minutes.
	Timeout time.Duration
	// CertificateValidity is kubeadm's certificateValidityPeriod for the leaf certificates; zero:
	// kubeadm's default (a year). Short values make a PKI "close to expiry".
	CertificateValidity time.Duration
}

// ControlPlane is a running kubeadm-shaped control plane: every node a folder laid out like a kubeadm
// node's root, its static pods run by a staticpod runner of its own.
type ControlPlane struct {
	*Cluster
	Nodes []ControlPlaneNode
	// Ports are the same on every node (as on real nodes); the addresses differ.
	Ports   ControlPlanePorts
	kubeadm string
}

// ControlPlaneNode is one control-plane node.
type ControlPlaneNode struct {
	Name string // cp-N
	IP   string // 127.0.0.N
	// Root is the node's root folder: host paths such as /etc/kubernetes/pki are under it.
	Root string
	// KubeadmConfig is the kubeadm configuration file the node's PKI was written with (Root/kubeadm.yaml).
	KubeadmConfig string
	Ports         ControlPlanePorts
}

// ControlPlanePorts are the ports of a node's listeners, on the node's address.
type ControlPlanePorts struct {
	APIServer         int `json:"apiServer"`
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	EtcdMetrics       int `json:"etcdMetrics"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
	Kubelet           int `json:"kubelet"`
}

// APIServerURL is the node's API server.
func (n ControlPlaneNode) APIServerURL() string {
	return "https://" + net.JoinHostPort(n.IP, strconv.Itoa(n.Ports.APIServer))
}

// ControlPlaneComponents are the static pods of every node (manifest metadata.name, also the component
// label).
var ControlPlaneComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

const controlPlaneFile = "controlplane.json"

// StartControlPlane brings a control plane up in opts.Dir and returns when every API server is ready,
// etcd has all its members, every node is Ready and every mirror pod is Running and Ready. A healthy
// control plane already running there is returned untouched; anything else there is stopped and
// replaced. On failure everything started is stopped.
func StartControlPlane(ctx context.Context, opts ControlPlaneOptions) (*ControlPlane, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(opts.Dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	if c, err := attach(opts.Dir); err == nil {
		if cp, err := attachControlPlane(c); err == nil && c.healthy(ctx) == nil {
			fmt.Fprintf(opts.Log, "A control plane is already running in %s.\n", opts.Dir)
			return cp, nil
		}
		fmt.Fprintf(opts.Log, "Stopping the cluster left in %s.\n", opts.Dir)
		if err := c.Stop(); err != nil {
			return nil, err
		}
	}
	if opts.Binaries == nil {
		bins, err := EnsureBinaries(ctx, BuildOptions{Versions: opts.Versions, RepoRoot: opts.RepoRoot, Log: opts.Log})
		if err != nil {
			return nil, err
		}
		opts.Binaries = bins
	}
	if opts.Binaries.Kubeadm == "" {
		return nil, errNoKubeadm
	}
	cp := &ControlPlane{
		Cluster: &Cluster{Dir: opts.Dir, Kubeconfig: filepath.Join(opts.Dir, kubeconfigFile), log: opts.Log},
		kubeadm: opts.Binaries.Kubeadm,
	}
	if !opts.Detach {
		cp.spawner = newSpawner()
	}
	if err := cp.start(ctx, opts); err != nil {
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return cp, nil
}

func (o *ControlPlaneOptions) complete() error {
	if o.Dir == "" {
		return errors.New("localcluster: ControlPlaneOptions.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	o.Dir = dir
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > 9 {
		return fmt.Errorf("localcluster: %d control-plane nodes: want 1 to 9", o.Nodes)
	}
	if o.Versions == (Versions{}) {
		if o.Versions, err = VersionsFromEnv(); err != nil {
			return err
		}
	}
	if o.RepoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if o.RepoRoot, err = FindRepoRoot(wd); err != nil {
			return err
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = 8 * time.Minute
	}
	return nil
}

func (cp *ControlPlane) start(ctx context.Context, opts ControlPlaneOptions) error {
	for _, sub := range []string{"nodes", "logs", "bin"} {
		if err := os.RemoveAll(filepath.Join(cp.Dir, sub)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(cp.Dir, "logs"), 0o755); err != nil {
		return err
	}
	var ips []string
	for i := 1; i <= opts.Nodes; i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(i))
	}
	ports, err := freePortsOnAll(ips, 7)
	if err != nil {
		return err
	}
	cp.Ports = ControlPlanePorts{
		APIServer: ports[0], EtcdClient: ports[1], EtcdPeer: ports[2], EtcdMetrics: ports[3],
		ControllerManager: ports[4], Scheduler: ports[5], Kubelet: ports[6],
	}
	for i, ip := range ips {
		name := "cp-" + strconv.Itoa(i+1)
		root := filepath.Join(cp.Dir, "nodes", name)
		cp.Nodes = append(cp.Nodes, ControlPlaneNode{Name: name, IP: ip, Root: root, KubeadmConfig: filepath.Join(root, "kubeadm.yaml"), Ports: cp.Ports})
	}
	cp.state = state{
		Owner: os.Getpid(), Detached: opts.Detach, Server: cp.Nodes[0].APIServerURL(),
		Versions: opts.Versions, StartedAt: time.Now().UTC(),
	}
	if err := cp.saveControlPlane(); err != nil {
		return err
	}

	fmt.Fprintf(cp.log, "Writing the PKI and kubeconfigs of %d control-plane nodes with kubeadm.\n", opts.Nodes)
	for i, n := range cp.Nodes {
		for _, d := range []string{"etc/kubernetes/manifests", "var/lib/kubelet/pki"} {
			if err := os.MkdirAll(filepath.Join(n.Root, d), 0o755); err != nil {
				return err
			}
		}
		// etcd refuses a data folder others can read.
		if err := os.MkdirAll(filepath.Join(n.Root, "var", "lib", "etcd"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(n.KubeadmConfig, []byte(kubeadmConfig(n, i+1, opts.Versions.Kubernetes, opts.CertificateValidity)), 0o644); err != nil {
			return err
		}
		if err := cp.kubeadmPhases(ctx, n, cp.Nodes[0]); err != nil {
			return err
		}
		if err := writeManifests(n, cp.Nodes, opts.Versions.Kubernetes); err != nil {
			return err
		}
	}
	// Until the kubeadm:cluster-admins binding exists only super-admin.conf may do anything; it is
	// what kubeadm init uses for the same bootstrap.
	if err := cp.useKubeconfig(filepath.Join(cp.Nodes[0].Root, "etc", "kubernetes", "super-admin.conf")); err != nil {
		return err
	}

	fmt.Fprintln(cp.log, "Building the static-pod runner.")
	runner := filepath.Join(cp.Dir, "bin", "staticpod-runner")
	build := exec.CommandContext(ctx, "go", "build", "-o", runner, "./hack/staticpod-runner")
	build.Dir = opts.RepoRoot
	build.Stdout, build.Stderr = cp.log, cp.log
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the static-pod runner: %w", err)
	}

	fmt.Fprintln(cp.log, "Starting a static-pod runner per node (etcd, kube-apiserver, kube-controller-manager, kube-scheduler).")
	bins := opts.Binaries
	for _, n := range cp.Nodes {
		logDir := filepath.Join(cp.Dir, "logs", n.Name)
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		if _, err := cp.run("staticpod-runner-"+n.Name, runner,
			"--node-name="+n.Name, "--node-ip="+n.IP, "--host-root="+n.Root, "--log-dir="+logDir,
			"--kubelet-port="+strconv.Itoa(n.Ports.Kubelet), "--kubelet-version="+opts.Versions.Kubernetes,
			"--command=etcd="+bins.Etcd, "--command=kube-apiserver="+bins.APIServer,
			"--command=kube-controller-manager="+bins.ControllerManager, "--command=kube-scheduler="+bins.Scheduler,
		); err != nil {
			return err
		}
	}
	for _, n := range cp.Nodes {
		if err := cp.waitFor(ctx, cp.componentLog(n, "kube-apiserver"), "kube-apiserver on "+n.Name+" to be ready", func(ctx context.Context) (bool, error) {
			return cp.apiServerReady(ctx, n), nil
		}); err != nil {
			return err
		}
	}
	if err := cp.waitFor(ctx, cp.componentLog(cp.Nodes[0], "etcd"), fmt.Sprintf("etcd to have %d members", len(cp.Nodes)), func(ctx context.Context) (bool, error) {
		members, err := cp.EtcdMembers(ctx, cp.Nodes[0].Name)
		return err == nil && len(members) == len(cp.Nodes), err
	}); err != nil {
		return err
	}
	if err := cp.bindClusterAdmins(ctx); err != nil {
		return err
	}
	if err := cp.uploadKubeadmConfig(ctx); err != nil {
		return err
	}
	if err := cp.writeAdminKubeconfig(); err != nil {
		return err
	}
	if err := cp.useKubeconfig(cp.Kubeconfig); err != nil {
		return err
	}
	if err := cp.waitFor(ctx, cp.componentLog(cp.Nodes[0], "kube-apiserver"), "the control-plane nodes to register and be marked", cp.markControlPlane); err != nil {
		return err
	}
	if err := cp.waitFor(ctx, cp.procs[0], "every control-plane node Ready and every mirror pod Running and Ready", cp.allReady); err != nil {
		return err
	}
	if opts.KwokNodes > 0 {
		if err := cp.startKwok(ctx, opts); err != nil {
			return err
		}
	}
	fmt.Fprintf(cp.log, "Control plane is ready: export KUBECONFIG=%s\n", cp.Kubeconfig)
	return nil
}

// componentLog stands for a static pod in waitFor: a timeout shows the end of its log.
func (cp *ControlPlane) componentLog(n ControlPlaneNode, component string) *proc {
	return &proc{Name: component + " on " + n.Name, Log: filepath.Join(cp.Dir, "logs", n.Name, component+".log")}
}

// useKubeconfig points the cluster's clients at kubeconfig.
func (cp *ControlPlane) useKubeconfig(path string) error {
	kc := cp.Kubeconfig
	cp.Kubeconfig = path
	err := cp.connect()
	cp.Kubeconfig = kc
	return err
}

// freePortsOnAll finds n ports free on every one of ips at once, holding them all until it returns so
// that no port is handed out twice.
func freePortsOnAll(ips []string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100 {
			return nil, fmt.Errorf("finding %d ports free on %v", n, ips)
		}
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		held := []net.Listener{first}
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		ls = append(ls, held...)
		if ok {
			ports = append(ports, port)
		}
	}
	return ports, nil
}

func (cp *ControlPlane) tlsClient(n ControlPlaneNode, caFile, certFile, keyFile string) (*http.Client, error) {
	pki := filepath.Join(n.Root, "etc", "kubernetes", "pki")
	ca, err := os.ReadFile(filepath.Join(pki, caFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(pki, certFile), filepath.Join(pki, keyFile))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}, nil
}

// apiServerReady asks the node's API server for /readyz, which anonymous clients may read.
func (cp *ControlPlane) apiServerReady(ctx context.Context, n ControlPlaneNode) bool {
	client, err := cp.tlsClient(n, "ca.crt", "", "")
	if err != nil {
		return false
	}
	return httpOK(ctx, client, n.APIServerURL()+"/readyz")
}

// EtcdMember is one member as etcd lists it.
type EtcdMember struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

// EtcdMembers lists the etcd members through the node's etcd (its JSON gateway), with kubeadm's
// healthcheck client certificate.
func (cp *ControlPlane) EtcdMembers(ctx context.Context, node string) ([]EtcdMember, error) {
	n, err := cp.Node(node)
	if err != nil {
		return nil, err
	}
	client, err := cp.tlsClient(n, "etcd/ca.crt", "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key")
	if err != nil {
		return nil, err
	}
	url := "https://" + net.JoinHostPort(n.IP, strconv.Itoa(n.Ports.EtcdClient)) + "/v3/cluster/member/list"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd member list on %s: %s: %s", node, resp.Status, body)
	}
	var out struct {
		Members []EtcdMember `json:"members"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w", node, err)
	}
	return out.Members, nil
}

// bindClusterAdmins gives admin.conf's group its rights, as kubeadm init does with super-admin.conf.
func (cp *ControlPlane) bindClusterAdmins(ctx context.Context) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:cluster-admins"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "kubeadm:cluster-admins"}},
	}
	_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding kubeadm:cluster-admins: %w", err)
	}
	return nil
}

// writeAdminKubeconfig copies node 1's admin.conf (whose server is node 1's API server) to Dir/kubeconfig.
func (cp *ControlPlane) writeAdminKubeconfig() error {
	data, err := os.ReadFile(filepath.Join(cp.Nodes[0].Root, "etc", "kubernetes", "admin.conf"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(cp.Kubeconfig, data, 0o600); err != nil {
		return err
	}
	return setServer(cp.Kubeconfig, cp.Nodes[0].APIServerURL())
}

// markControlPlane labels the registered nodes as kubeadm's mark-control-plane phase does (a kubelet may
// not set node-role labels on itself). It holds once every node is registered and marked.
func (cp *ControlPlane) markControlPlane(ctx context.Context) (bool, error) {
	for _, n := range cp.Nodes {
		node, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; ok {
			continue
		}
		patch := []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":"","node.kubernetes.io/exclude-from-external-load-balancers":""}}}`)
		if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return false, fmt.Errorf("marking %s as a control-plane node: %w", n.Name, err)
		}
	}
	return true, nil
}

// allReady holds when every control-plane node is Ready and every mirror pod Running and Ready.
func (cp *ControlPlane) allReady(ctx context.Context) (bool, error) {
	for _, n := range cp.Nodes {
		node, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if !nodeIsReady(node) {
			return false, nil
		}
		for _, comp := range ControlPlaneComponents {
			pod, err := cp.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, staticpod.MirrorPodName(comp, n.Name), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if !PodReady(pod) {
				return false, nil
			}
		}
	}
	return true, nil
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodReady reports a pod Running with its Ready condition true.
func PodReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ComponentPID returns the PID of a node's static pod process (component is the manifest's
// metadata.name, such as kube-apiserver), as its runner recorded it, if that process is alive.
func (cp *ControlPlane) ComponentPID(node, component string) (int, error) {
	n, err := cp.Node(node)
	if err != nil {
		return 0, err
	}
	pid, err := staticpod.ReadPID(n.Root, component)
	if err != nil {
		return 0, fmt.Errorf("no running %s on %s: %w", component, node, err)
	}
	if !pidAlive(pid) {
		return 0, fmt.Errorf("%s on %s (pid %d) is not running", component, node, pid)
	}
	return pid, nil
}

// KillComponent sends sig to a node's static pod process group, as a crash or an operator would; its
// runner restarts it.
func (cp *ControlPlane) KillComponent(node, component string, sig syscall.Signal) error {
	pid, err := cp.ComponentPID(node, component)
	if err != nil {
		return err
	}
	return syscall.Kill(-pid, sig)
}

// ManifestPath is where a node's static pod manifest for component lives.
func (n ControlPlaneNode) ManifestPath(component string) string {
	return filepath.Join(n.Root, "etc", "kubernetes", "manifests", component+".yaml")
}

// controlPlaneRecord is what a later process needs to attach to a running control plane.
type controlPlaneRecord struct {
	Nodes   []ControlPlaneNode `json:"nodes"`
	Ports   ControlPlanePorts  `json:"ports"`
	Kubeadm string             `json:"kubeadm"`
}

func (cp *ControlPlane) saveControlPlane() error {
	data, err := json.MarshalIndent(controlPlaneRecord{Nodes: cp.Nodes, Ports: cp.Ports, Kubeadm: cp.kubeadm}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cp.Dir, controlPlaneFile), data, 0o644)
}

func attachControlPlane(c *Cluster) (*ControlPlane, error) {
	data, err := os.ReadFile(filepath.Join(c.Dir, controlPlaneFile))
	if err != nil {
		return nil, err
	}
	var rec controlPlaneRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("reading %s: %w", controlPlaneFile, err)
	}
	return &ControlPlane{Cluster: c, Nodes: rec.Nodes, Ports: rec.Ports, kubeadm: rec.Kubeadm}, nil
}

// AttachControlPlane returns the running control plane recorded in dir (`hack/cluster up --control-plane`).
func AttachControlPlane(ctx context.Context, dir string) (*ControlPlane, error) {
	c, err := Attach(ctx, dir)
	if err != nil {
		return nil, err
	}
	return attachControlPlane(c)
}

// startKwok runs kwok for ordinary workloads on fake nodes. It manages only nodes annotated
// kwok.x-k8s.io/node=fake: the control-plane nodes belong to their runners.
func (cp *ControlPlane) startKwok(ctx context.Context, opts ControlPlaneOptions) error {
	stages, ok := opts.Binaries.KwokStages["general"]
	if !ok {
		return errors.New("no kwok stage file for general")
	}
	fmt.Fprintln(cp.log, "Starting kwok.")
	kwok, err := cp.run("kwok", opts.Binaries.Kwok,
		"--kubeconfig="+cp.Kubeconfig, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--server-address=127.0.0.1:0", "--node-port=0",
		"--node-lease-duration-seconds=40", "--config="+stages)
	if err != nil {
		return err
	}
	if err := cp.createNodes(ctx, opts.KwokNodes); err != nil {
		return err
	}
	return cp.waitFor(ctx, kwok, "the kwok nodes to be Ready", func(ctx context.Context) (bool, error) {
		for i := range opts.KwokNodes {
			n, err := cp.Client.CoreV1().Nodes().Get(ctx, NodeName(i), metav1.GetOptions{})
			if err != nil || !nodeIsReady(n) {
				return false, err
			}
		}
		return true, nil
	})
}

// NodeClient is a client with the node's kubelet credentials (kubelet.conf), for tests of what a node may do.
func (cp *ControlPlane) NodeClient(node string) (kubernetes.Interface, error) {
	n, err := cp.Node(node)
	if err != nil {
		return nil, err
	}
	cfg, err := staticpod.RESTConfig(filepath.Join(n.Root, "etc", "kubernetes", "kubelet.conf"), n.Root)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
